"""Desired-state reconciliation: make Prometheus and Alertmanager hold what the portal holds.

Each pass renders, hashes, compares, writes atomically, validates with the backend's own tool
(`promtool` / `amtool`), reloads, verifies, and records a `SyncState` row the pages show. Passes
are idempotent: run them as often as you like. A configuration that fails validation is never
written; the last good one stays and the error is shown.

Rule files are one per tenant, so a tenant's bad rule never blocks another tenant. The
Alertmanager configuration is one file for all tenants: each tenant contributes a fragment, and
a fragment that does not validate is replaced by that tenant's fragment from the file in use
(its last good one), so other tenants still get their changes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass

import yaml
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import tenant_context

from alerts.models import (
    AlertingSettings,
    NotificationPolicy,
    Receiver,
    RuleGroup,
    Silence,
    SyncState,
)
from alerts.render import (
    GroupSpec,
    PolicySpec,
    ReceiverSpec,
    RuleSpec,
    TenantAlerting,
    content_hash,
    render_alertmanager_config,
    render_rule_file,
    render_tenant_fragment,
)
from portal.backends.alertmanager import AlertmanagerBackend as Alertmanager
from portal.backends.base import BackendError
from portal.backends.prometheus import PrometheusBackend as Prometheus
from tenants.fanout import active_tenants
from tenants.links import public_url

logger = logging.getLogger(__name__)

Target = SyncState.Target
Status = SyncState.Status
# One Alertmanager file for the platform: passes that write it take turns (advisory lock key).
_AM_LOCK = 0x414C4D47


# ---- backend clients -------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _client(backend_class: type, base_url: str):
    return backend_class(base_url)


def prometheus_client() -> Prometheus:
    """This process's Prometheus client for the configured URL, kept open between passes:
    building an HTTP client (its TLS context) costs more than a whole pass of a small tenant."""
    return _client(Prometheus, settings.PROMETHEUS_URL or "")


def alertmanager_client() -> Alertmanager:
    """This process's Alertmanager client for the configured URL, kept open between passes."""
    return _client(Alertmanager, settings.ALERTMANAGER_URL or "")


@contextlib.contextmanager
def _kept_open(backend):
    """`with` for a shared client: the pass uses it, nobody closes it."""
    yield backend


# ---- reading the portal's state --------------------------------------------------------------


def rule_groups() -> list[GroupSpec]:
    """The current tenant's enabled rules, grouped, in a stable order."""
    groups = []
    for group in RuleGroup.objects.prefetch_related("rules").order_by("name"):
        rules = tuple(
            RuleSpec(
                kind=r.kind,
                name=r.name,
                expr=r.expr,
                for_duration=r.for_duration,
                keep_firing_for=r.keep_firing_for,
                severity=r.severity,
                category=r.category,
                labels=r.labels,
                annotations=r.annotations,
            )
            for r in sorted(group.rules.all(), key=lambda r: (r.position, r.name))
            if r.enabled
        )
        groups.append(GroupSpec(name=group.name, interval=group.interval, rules=rules))
    return groups


def intake_url(tenant) -> str:
    base = getattr(settings, "ALERTMANAGER_WEBHOOK_BASE_URL", "") or public_url("")
    return f"{base.rstrip('/')}/hooks/alertmanager/{tenant.public_id}/"


def receiver_is_usable(receiver: Receiver) -> bool:
    """A receiver sends once it is enabled and has what its kind needs."""
    if not receiver.enabled:
        return False
    if receiver.kind == Receiver.Kind.EMAIL:
        return bool((receiver.settings or {}).get("to"))
    return bool(receiver.secret)


def tenant_alerting(tenant) -> TenantAlerting:
    """Everything about the current tenant that Alertmanager needs."""
    intake = AlertingSettings.objects.first()
    receivers = tuple(
        ReceiverSpec(id=str(r.public_id), kind=r.kind, settings=r.settings, secret=r.secret)
        for r in Receiver.objects.order_by("name")
        if receiver_is_usable(r)
    )
    usable = {r.id for r in receivers}
    # .all() on the prefetched relations: values_list() would query again for every policy.
    stored = list(NotificationPolicy.objects.prefetch_related("receivers", "mute_timings"))
    policies = tuple(
        PolicySpec(
            severity=p.severity,
            receiver_ids=tuple(
                sorted(str(r.public_id) for r in p.receivers.all() if str(r.public_id) in usable)
            ),
            group_by=tuple(p.group_by or ["alertname"]),
            group_wait=p.group_wait,
            group_interval=p.group_interval,
            repeat_interval=p.repeat_interval,
            mute_timings=tuple(sorted(t.name for t in p.mute_timings.all())),
        )
        for p in stored
    )
    mutes = {t.name: t.intervals for p in stored for t in p.mute_timings.all()}
    url = intake_url(tenant)
    return TenantAlerting(
        schema=tenant.schema_name,
        intake_url=url,
        relay_url=f"{url}relay/",
        webhook_secret=intake.webhook_secret if intake else "",
        receivers=receivers,
        policies=policies,
        mute_timings=mutes,
    )


# ---- recording state -------------------------------------------------------------------------


def _state(target: str) -> SyncState:
    state, _ = SyncState.objects.get_or_create(target=target)
    return state


def _record(
    target: str,
    *,
    started,
    status: str,
    error: str = "",
    applied_hash: str = "",
    desired_hash: str = "",
) -> SyncState:
    """Write the outcome of a pass; a pass that started before the last change cannot mark the
    target synced (that change is not in what it applied)."""
    with transaction.atomic():
        state = SyncState.objects.select_for_update().get_or_create(target=target)[0]
        now = timezone.now()
        state.last_attempt_at = now
        if desired_hash:
            state.desired_hash = desired_hash
        if status == Status.SYNCED:
            state.applied_hash = applied_hash
            state.last_success_at = now
            state.attempts = 0
            state.error = ""
            stale = state.changed_at is not None and state.changed_at > started
            state.status = Status.PENDING if stale else Status.SYNCED
        else:
            state.status = status
            state.error = error[:4000]
            state.attempts += 1
        state.save()
        return state


# ---- Prometheus rules ------------------------------------------------------------------------


@dataclass(frozen=True)
class PassResult:
    status: str
    error: str = ""
    transient: bool = False


def expected_groups(schema: str, groups: list[GroupSpec]) -> dict[str, int]:
    """{group name as Prometheus shows it: number of rules} for a tenant's rendered file."""
    return {f"{schema}/{g.name}": len(g.rules) for g in groups if g.rules}


def sync_rules(tenant) -> PassResult:
    """Bring the tenant's rule file in Prometheus in step (run inside the tenant's schema).

    An unchanged file whose groups Prometheus already holds costs one API call and no reload,
    so the reconciler can run this for every tenant every minute.
    """
    started = timezone.now()
    schema = tenant.schema_name
    groups = rule_groups()
    try:
        text = render_rule_file(schema, groups)
    except ValueError as exc:  # a stored expression the scoping refuses (written past the forms)
        message = f"a stored rule cannot be scoped to this tenant: {exc}"
        _record(Target.PROMETHEUS_RULES, started=started, status=Status.FAILED, error=message)
        return PassResult(Status.FAILED, message)
    digest = content_hash(text)
    with _kept_open(prometheus_client()) as prometheus:
        try:
            changed = prometheus.write_rule_file(schema, text)
            if not prometheus.configured:
                message = (
                    "Prometheus is not connected (PROMETHEUS_URL unset); the rule file is ready."
                )
                _record(
                    Target.PROMETHEUS_RULES,
                    started=started,
                    status=Status.PENDING,
                    error=message,
                    desired_hash=digest,
                )
                return PassResult(Status.PENDING, message)
            expected = expected_groups(schema, groups)
            prefix = f"{schema}/"
            # A file written by a pass whose reload failed is on disk but maybe not loaded: only
            # a recorded success for this very content spares the reload.
            applied = _state(Target.PROMETHEUS_RULES).applied_hash == digest
            if changed or not applied or prometheus.rule_group_sizes(prefix=prefix) != expected:
                prometheus.reload()
                loaded = prometheus.rule_group_sizes(prefix=prefix)
                if loaded != expected:
                    raise BackendError(
                        f"after reload Prometheus holds {loaded or 'no groups'} for this tenant, "
                        f"expected {expected or 'none'}",
                        backend=prometheus.name,
                        permanent=False,
                    )
        except BackendError as exc:
            _record(
                Target.PROMETHEUS_RULES,
                started=started,
                status=Status.FAILED,
                error=str(exc),
                desired_hash=digest,
            )
            return PassResult(Status.FAILED, str(exc), transient=not exc.permanent)
    state = _record(
        Target.PROMETHEUS_RULES,
        started=started,
        status=Status.SYNCED,
        applied_hash=digest,
        desired_hash=digest,
    )
    return PassResult(state.status)


def remove_rules(schema: str) -> bool:
    """A deactivated tenant's rules stop being evaluated; returns whether there was a file."""
    with _kept_open(prometheus_client()) as prometheus:
        removed = prometheus.remove_rule_file(schema)
        if removed and prometheus.configured:
            prometheus.reload()
    return removed


def remove_orphan_rule_files() -> list[str]:
    """Rule files of tenants that are gone or inactive (a clean-up the queue may have lost)."""
    active = set(active_tenants().values_list("schema_name", flat=True))
    with _kept_open(prometheus_client()) as prometheus:
        orphans = [name for name in prometheus.rule_file_names() if name not in active]
        for name in orphans:
            prometheus.remove_rule_file(name)
        if orphans and prometheus.configured:
            prometheus.reload()
    return orphans


# ---- Alertmanager configuration --------------------------------------------------------------


def _fragments_in_use(text: str) -> dict[str, dict]:
    """Each tenant's fragment of the configuration file in use (its last good one)."""
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return {}
    fragments: dict[str, dict] = {}
    for route in (document.get("route") or {}).get("routes") or []:
        matchers = route.get("matchers") or []
        if len(matchers) == 1 and matchers[0].startswith('tenant="'):
            schema = matchers[0][len('tenant="') : -1]
            prefix = f"{schema}__"
            fragments[schema] = {
                "route": route,
                "receivers": [
                    r
                    for r in document.get("receivers") or []
                    if r.get("name", "").startswith(prefix)
                ],
                "inhibit_rules": [
                    i
                    for i in document.get("inhibit_rules") or []
                    if f'tenant="{schema}"' in (i.get("source_matchers") or [])
                ],
                "time_intervals": [
                    t
                    for t in document.get("time_intervals") or []
                    if t.get("name", "").startswith(prefix)
                ],
            }
    return fragments


def global_config() -> dict:
    """Alertmanager's global section: the platform's mail relay for e-mail receivers."""
    config: dict = {"resolve_timeout": "5m"}
    host = getattr(settings, "ALERTMANAGER_SMTP_SMARTHOST", "")
    if host:
        config["smtp_smarthost"] = host
        config["smtp_from"] = (
            getattr(settings, "ALERTMANAGER_SMTP_FROM", "") or settings.DEFAULT_FROM_EMAIL
        )
        config["smtp_require_tls"] = bool(getattr(settings, "ALERTMANAGER_SMTP_REQUIRE_TLS", True))
    return config


def _refused_fragments(alertmanager, candidates: dict[str, dict], glob: dict) -> dict[str, str]:
    """Tenants whose fragment amtool refuses, with its reason (checked alone, one by one)."""
    try:
        alertmanager.check_config(render_alertmanager_config(candidates, glob))
        return {}
    except BackendError:
        pass
    refused: dict[str, str] = {}
    for schema, fragment in candidates.items():
        try:
            alertmanager.check_config(render_alertmanager_config({schema: fragment}, glob))
        except BackendError as exc:
            refused[schema] = exc.message
    return refused


def _apply_alertmanager_config(alertmanager, text: str) -> None:
    """Write (validated), reload if Alertmanager runs anything else, verify; BackendError if not."""
    changed = alertmanager.write_config(text)  # validates again before replacing the file
    if not alertmanager.configured:
        return
    if changed or alertmanager.loaded_config_hash() != content_hash(text):
        alertmanager.reload()
        if alertmanager.loaded_config_hash() != content_hash(text):
            raise BackendError(
                "after reload Alertmanager runs another configuration",
                backend=alertmanager.name,
                permanent=False,
            )


def sync_alertmanager() -> dict[str, PassResult]:
    """Render every active tenant's fragment, validate, write, reload, verify. Platform-wide.

    A fragment amtool refuses is replaced by that tenant's fragment in the file in use, so one
    tenant's broken receiver never holds back the others' changes.
    """
    started = timezone.now()
    results: dict[str, PassResult] = {}
    with _kept_open(alertmanager_client()) as alertmanager, transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_AM_LOCK])
        current = alertmanager.read_config()
        candidates: dict[str, dict] = {}
        tenants = list(active_tenants())
        for tenant in tenants:
            with tenant_context(tenant):
                candidates[tenant.schema_name] = render_tenant_fragment(tenant_alerting(tenant))
        glob = global_config()
        text = render_alertmanager_config(candidates, glob)
        # The file in use passed amtool already: an unchanged configuration needs no check.
        refused = (
            {} if alertmanager.holds(text) else _refused_fragments(alertmanager, candidates, glob)
        )
        if refused:
            in_use = _fragments_in_use(current)
            merged = {
                schema: in_use[schema] if schema in refused else fragment
                for schema, fragment in candidates.items()
                if schema not in refused or schema in in_use
            }
            text = render_alertmanager_config(merged, glob)
        error, transient = "", False
        try:
            _apply_alertmanager_config(alertmanager, text)
        except BackendError as exc:
            error, transient = str(exc), not exc.permanent
    for tenant in tenants:
        schema = tenant.schema_name
        digest = content_hash(yaml.safe_dump(candidates[schema], sort_keys=True))
        if schema in refused:
            status = Status.FAILED
            message = f"Alertmanager refused this tenant's configuration: {refused[schema]}"
            outcome = PassResult(status, message)
        elif error:
            status, message = Status.FAILED, error
            outcome = PassResult(status, message, transient)
        elif not alertmanager.configured:
            status = Status.PENDING
            message = (
                "Alertmanager is not connected (ALERTMANAGER_URL unset); "
                "the configuration is ready."
            )
            outcome = PassResult(status, message)
        else:
            status, message, outcome = Status.SYNCED, "", None
        with tenant_context(tenant):
            state = _record(
                Target.ALERTMANAGER,
                started=started,
                status=status,
                error=message,
                applied_hash=digest if status == Status.SYNCED else "",
                desired_hash=digest,
            )
        results[schema] = outcome or PassResult(state.status)
    return results


# ---- silences --------------------------------------------------------------------------------


def sync_silences(tenant) -> PassResult:
    """Create, re-create (after an Alertmanager restart lost them) and expire silences."""
    started = timezone.now()
    with _kept_open(alertmanager_client()) as alertmanager:
        if not alertmanager.configured:
            message = "Alertmanager is not connected (ALERTMANAGER_URL unset)."
            _record(Target.SILENCES, started=started, status=Status.PENDING, error=message)
            return PassResult(Status.PENDING, message)
        try:
            _apply_silences(alertmanager, tenant.schema_name)
        except BackendError as exc:
            _record(Target.SILENCES, started=started, status=Status.FAILED, error=str(exc))
            return PassResult(Status.FAILED, str(exc), transient=not exc.permanent)
    state = _record(Target.SILENCES, started=started, status=Status.SYNCED)
    return PassResult(state.status)


def _apply_silences(alertmanager, schema: str) -> None:
    now = timezone.now()
    active_ids = alertmanager.active_silence_ids(tenant=schema)
    for silence in Silence.objects.filter(expired_at__isnull=True, ends_at__gt=now):
        if silence.alertmanager_id and silence.alertmanager_id in active_ids:
            continue
        # The tenant matcher is the portal's: a silence can only ever mute this tenant's alerts.
        matchers = [
            *silence.matchers,
            {"name": "tenant", "value": schema, "isRegex": False, "isEqual": True},
        ]
        silence.alertmanager_id = alertmanager.create_silence(
            matchers=matchers,
            starts_at=max(silence.starts_at, now),
            ends_at=silence.ends_at,
            created_by=silence.created_by,
            comment=silence.comment,
        )
        silence.synced = True
        silence.save(update_fields=["alertmanager_id", "synced"])
    # Expired here but still active there, whether or not the row was marked unsynced.
    expired = Silence.objects.filter(expired_at__isnull=False).filter(
        Q(synced=False) | Q(alertmanager_id__in=active_ids)
    )
    for silence in expired:
        if silence.alertmanager_id in active_ids:
            alertmanager.expire_silence(silence.alertmanager_id)
        silence.synced = True
        silence.save(update_fields=["synced"])


def silences_need_sync() -> bool:
    """Whether the current tenant has silences Alertmanager should hold or drop, or a state
    that is not synced (a tenant without silences costs the reconciler nothing)."""
    state = SyncState.objects.filter(target=Target.SILENCES).first()
    if state is not None and state.status != Status.SYNCED:
        return True
    now = timezone.now()
    return (
        Silence.objects.filter(expired_at__isnull=True, ends_at__gt=now).exists()
        or Silence.objects.filter(expired_at__isnull=False, synced=False).exists()
    )
