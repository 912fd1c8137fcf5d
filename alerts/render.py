"""Desired state as the backends read it: a tenant's rule file, and its Alertmanager route.

Pure functions over plain specs (no ORM, no I/O), so rendering is deterministic: the same portal
state always gives byte-identical output, which is what lets sync compare hashes instead of
rewriting and reloading on every pass.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field

import yaml

from alerts.promql import scope_to_tenant

# Alertmanager severities as the portal names them; P0 silences the rest of the same alert.
SEVERITIES = ("P0", "P1", "P2", "P3")
# The severity whose e-mail receivers get the periodic digest instead of one message per alert.
DIGEST_SEVERITY = "P3"
EMAIL = "email"  # the receiver kind the digest replaces (alerts.models.Receiver.Kind.EMAIL)


@dataclass(frozen=True)
class RuleSpec:
    kind: str  # "alert" | "record"
    name: str
    expr: str
    for_duration: str = ""
    keep_firing_for: str = ""
    severity: str = "P2"
    category: str = "availability"
    labels: dict = field(default_factory=dict)
    annotations: dict = field(default_factory=dict)


@dataclass(frozen=True)
class GroupSpec:
    name: str
    interval: str
    rules: tuple[RuleSpec, ...]


@dataclass(frozen=True)
class ReceiverSpec:
    id: str  # public id, stable across renames
    kind: str
    settings: dict
    secret: str


@dataclass(frozen=True)
class PolicySpec:
    severity: str
    receiver_ids: tuple[str, ...]
    group_by: tuple[str, ...] = ("alertname",)
    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"
    mute_timings: tuple[str, ...] = ()


@dataclass(frozen=True)
class TenantAlerting:
    """Everything Alertmanager needs to know about one tenant."""

    schema: str
    intake_url: str  # the portal's webhook for this tenant (every alert goes there too)
    relay_url: str  # base URL for relayed receivers: f"{relay_url}{receiver id}/"
    webhook_secret: str
    receivers: tuple[ReceiverSpec, ...] = ()
    policies: tuple[PolicySpec, ...] = ()
    mute_timings: dict = field(default_factory=dict)  # name -> time_intervals entries


# libyaml's dumper when available: the same output, several times faster for big rule files.
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
# Scoping parses the expression; a tenant's rules are rendered again on every sync pass.
_scoped = functools.lru_cache(maxsize=65536)(scope_to_tenant)


def _dump(document: dict) -> str:
    return yaml.dump(document, Dumper=_DUMPER, sort_keys=False, allow_unicode=True, width=1000)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def render_rule(rule: RuleSpec, schema: str) -> dict:
    """One rule as Prometheus reads it: scoped expression, and the tenant label always set, so
    its alerts route to this tenant even when the expression has no selector (`vector(1)`)."""
    labels = {**rule.labels}
    if rule.kind == "alert":
        labels.update(severity=rule.severity, category=rule.category)
    labels["tenant"] = schema
    if rule.kind == "record":
        return {"record": rule.name, "expr": _scoped(rule.expr, schema), "labels": labels}
    out: dict = {"alert": rule.name, "expr": _scoped(rule.expr, schema)}
    if rule.for_duration:
        out["for"] = rule.for_duration
    if rule.keep_firing_for:
        out["keep_firing_for"] = rule.keep_firing_for
    out["labels"] = labels
    annotations = {k: v for k, v in rule.annotations.items() if v}
    if annotations:
        out["annotations"] = annotations
    return out


def render_rule_file(schema: str, groups: list[GroupSpec]) -> str:
    """The tenant's whole rule file. Group names carry the schema: Prometheus keys its groups by
    file and name, and the rules API shows names without the file."""
    document = {
        "groups": [
            {
                "name": f"{schema}/{group.name}",
                "interval": group.interval,
                "rules": [render_rule(rule, schema) for rule in group.rules],
            }
            for group in groups
            if group.rules
        ]
    }
    return _dump(document)


def receiver_name(schema: str, suffix: str) -> str:
    """Alertmanager receiver names are global: every one of a tenant's starts with its schema."""
    return f"{schema}__{suffix}"


def _bearer(secret: str) -> dict:
    return {"authorization": {"type": "Bearer", "credentials": secret}}


def _receiver_configs(receiver: ReceiverSpec, tenant: TenantAlerting) -> tuple[str, dict]:
    """(Alertmanager config key, one config entry) for one portal receiver."""
    s = receiver.settings
    if receiver.kind == "slack":
        entry = {"api_url": receiver.secret, "send_resolved": True}
        if s.get("channel"):
            entry["channel"] = s["channel"]
        return "slack_configs", entry
    if receiver.kind == "pagerduty":
        entry = {"routing_key": receiver.secret, "send_resolved": True}
        if s.get("url"):
            entry["url"] = s["url"]
        return "pagerduty_configs", entry
    if receiver.kind == EMAIL:
        entry = {"to": s["to"], "send_resolved": True}
        for key in ("from", "smarthost", "auth_username", "require_tls"):
            if s.get(key) not in (None, ""):
                entry[key] = s[key]
        if receiver.secret:
            entry["auth_password"] = receiver.secret
        return "email_configs", entry
    if receiver.kind == "webhook":
        return "webhook_configs", {"url": receiver.secret, "send_resolved": True}
    # Teams (before Alertmanager 0.26) and SMS: Alertmanager calls the portal, which relays.
    return "webhook_configs", {
        "url": f"{tenant.relay_url}{receiver.id}/",
        "send_resolved": receiver.kind != "sms",
        "http_config": _bearer(tenant.webhook_secret),
    }


def render_tenant_fragment(tenant: TenantAlerting) -> dict:
    """The tenant's part of the Alertmanager configuration: route, receivers, inhibitions,
    time intervals — every name prefixed with the schema, every match on `tenant`."""
    schema = tenant.schema
    by_id = {r.id: r for r in tenant.receivers}
    intake = receiver_name(schema, "portal")
    receivers = [
        {
            "name": intake,
            "webhook_configs": [
                {
                    "url": tenant.intake_url,
                    "send_resolved": True,
                    "http_config": _bearer(tenant.webhook_secret),
                }
            ],
        }
    ]
    routes: list[dict] = [
        # Every alert reaches the portal's incident record first, one alert per group, and its
        # resolution within 10 s (not the root's 5 min); `continue` lets it go on.
        {
            "receiver": intake,
            "group_by": ["..."],
            "group_wait": "0s",
            "group_interval": "10s",
            "continue": True,
        }
    ]
    for policy in sorted(tenant.policies, key=lambda p: p.severity):
        configs: dict[str, list] = {}
        for rid in policy.receiver_ids:
            if rid in by_id:
                if policy.severity == DIGEST_SEVERITY and by_id[rid].kind == EMAIL:
                    continue  # told by the portal's digest (alerts.digest), not alert by alert
                key, entry = _receiver_configs(by_id[rid], tenant)
                configs.setdefault(key, []).append(entry)
        name = receiver_name(schema, policy.severity)
        receivers.append({"name": name, **configs})
        route = {
            "receiver": name,
            "matchers": [f'severity="{policy.severity}"'],
            "group_by": list(policy.group_by) or ["alertname"],
            "group_wait": policy.group_wait,
            "group_interval": policy.group_interval,
            "repeat_interval": policy.repeat_interval,
        }
        if policy.mute_timings:
            route["mute_time_intervals"] = [receiver_name(schema, m) for m in policy.mute_timings]
        routes.append(route)
    lower = "|".join(SEVERITIES[1:])
    return {
        "route": {"receiver": intake, "matchers": [f'tenant="{schema}"'], "routes": routes},
        "receivers": receivers,
        "inhibit_rules": [
            {
                "source_matchers": [f'tenant="{schema}"', 'severity="P0"'],
                "target_matchers": [f'tenant="{schema}"', f'severity=~"{lower}"'],
                "equal": ["alertname", "tenant"],
            }
        ],
        "time_intervals": [
            {"name": receiver_name(schema, name), "time_intervals": intervals}
            for name, intervals in sorted(tenant.mute_timings.items())
        ],
    }


def render_alertmanager_config(
    fragments: dict[str, dict], global_config: dict | None = None
) -> str:
    """The whole Alertmanager configuration from each tenant's fragment (schema -> fragment).

    Alerts of no known tenant go nowhere: the root receiver has no configs.
    """
    routes, receivers, inhibit, intervals = [], [{"name": "unrouted"}], [], []
    for schema in sorted(fragments):
        fragment = fragments[schema]
        routes.append(fragment["route"])
        receivers.extend(fragment["receivers"])
        inhibit.extend(fragment["inhibit_rules"])
        intervals.extend(fragment["time_intervals"])
    document: dict = {}
    if global_config:
        document["global"] = global_config
    document["route"] = {
        "receiver": "unrouted",
        "group_by": ["alertname", "tenant"],
        "routes": routes,
    }
    document["receivers"] = receivers
    if inhibit:
        document["inhibit_rules"] = inhibit
    if intervals:
        document["time_intervals"] = intervals
    return _dump(document)
