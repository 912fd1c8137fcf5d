"""Rules as code: a tenant's rules as a Prometheus rule file, and such a file brought back in.

Import reads the format `promtool check rules` accepts (many groups, alerting and recording
rules), checks every group and rule with the same forms as the editor, maps the `severity`
label onto the portal's severities (critical -> P0, warning -> P2, info -> P3, ...), and plans
what would be added, changed and removed. Applying a plan goes through `alerts.services` in one
transaction: each write is audited, and either all of the file is in or none of it.

Disabled rules are not exported, and an import leaves them alone: exporting and importing again
changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime

import yaml
from django.db import transaction
from django.utils import timezone

from alerts import services
from alerts.forms import AlertRuleForm, RuleGroupForm
from alerts.models import AlertRule, Category, RuleGroup, Severity
from tenants import audit

MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_GROUPS = 500
MAX_RULES = 5000
MAX_ERRORS = 50
# The `severity` label of rule files written for plain Prometheus, as the portal maps it.
SEVERITY_OF_LABEL = {
    "critical": Severity.P0,
    "page": Severity.P0,
    "major": Severity.P1,
    "error": Severity.P1,
    "high": Severity.P1,
    "warning": Severity.P2,
    "minor": Severity.P2,
    "medium": Severity.P2,
    "info": Severity.P3,
    "low": Severity.P3,
    "none": Severity.P3,
    **{s.value.lower(): s for s in Severity},
}
DEFAULT_SEVERITY = Severity.P2
_PORTAL_SEVERITIES = {s.value.lower() for s in Severity}
_GROUP_KEYS = {"name", "interval", "rules"}
_IGNORED_GROUP_KEYS = {"limit"}
_RULE_KEYS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
# Annotations other tools use for what the portal calls description and runbook_url.
_ANNOTATION_ALIASES = {"message": "description", "runbook": "runbook_url"}
_COMPARED = (
    "kind",
    "expr",
    "for_duration",
    "keep_firing_for",
    "severity",
    "category",
    "labels",
    "annotations",
)


class RuleFileError(ValueError):
    """The file cannot be imported; `errors` says where and why (at most MAX_ERRORS)."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class StalePlan(RuleFileError):
    """The tenant's rules changed after the preview: what would be applied is no longer it."""


@dataclass(frozen=True)
class ImportedRule:
    group: str
    kind: str
    name: str
    expr: str
    for_duration: str
    keep_firing_for: str
    severity: str
    category: str
    labels: dict
    annotations: dict

    def values(self) -> dict:
        """The values `alerts.services.create_rule` / `update_rule` take."""
        return {
            "kind": self.kind,
            "name": self.name,
            "expr": self.expr,
            "for_duration": self.for_duration,
            "keep_firing_for": self.keep_firing_for,
            "severity": self.severity,
            "category": self.category,
            "labels": self.labels,
            "annotations": self.annotations,
        }


@dataclass(frozen=True)
class ImportedGroup:
    name: str
    interval: str
    rules: tuple[ImportedRule, ...]


@dataclass
class ParsedFile:
    groups: list[ImportedGroup]
    warnings: list[str] = field(default_factory=list)
    # (label value as written, severity it became): number of rules
    severity_mapping: Counter = field(default_factory=Counter)

    @property
    def rule_count(self) -> int:
        return sum(len(g.rules) for g in self.groups)


# ---- export ------------------------------------------------------------------------------------


def _rule_document(rule: AlertRule) -> dict:
    if rule.kind == AlertRule.Kind.RECORD:
        out: dict = {"record": rule.name, "expr": rule.expr}
        if rule.labels:
            out["labels"] = dict(rule.labels)
        return out
    out = {"alert": rule.name, "expr": rule.expr}
    if rule.for_duration:
        out["for"] = rule.for_duration
    if rule.keep_firing_for:
        out["keep_firing_for"] = rule.keep_firing_for
    out["labels"] = {**rule.labels, "severity": rule.severity, "category": rule.category}
    if rule.annotations:
        out["annotations"] = dict(rule.annotations)
    return out


class _RuleFileDumper(yaml.SafeDumper):
    """Multi-line expressions as literal blocks (`expr: |`), as people write them."""


def _represent_text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_RuleFileDumper.add_representer(str, _represent_text)


def export_rule_file(tenant_name: str = "", now: datetime | None = None) -> str:
    """The current tenant's enabled rules as a Prometheus rule file, as the tenant wrote them.

    The portal adds the tenant's matcher and label when it renders rules for Prometheus; the
    export leaves them out, so the file can be imported again (here or into another tenant).
    """
    groups = []
    for group in RuleGroup.objects.prefetch_related("rules").order_by("name"):
        rules = sorted(group.rules.all(), key=lambda r: (r.position, r.name))
        enabled = [_rule_document(r) for r in rules if r.enabled]
        if enabled:
            groups.append({"name": group.name, "interval": group.interval, "rules": enabled})
    when = (now or timezone.now()).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"# Alert and recording rules of {tenant_name or 'this tenant'}, exported {when}.\n"
        "# Severity labels are the portal's: P0 critical, P1 major, P2 minor, P3 info.\n"
        "# Disabled rules are not included. The portal adds the tenant matcher itself.\n"
    )
    body = yaml.dump(
        {"groups": groups},
        Dumper=_RuleFileDumper,
        sort_keys=False,
        allow_unicode=True,
        width=1000,
        default_flow_style=False,
    )
    return header + body


# ---- parsing -----------------------------------------------------------------------------------


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors and aliases: a few bytes of aliases can expand to gigabytes."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases are not accepted", event.start_mark
            )
        return super().compose_node(parent, index)


def _text(value) -> str:
    """A scalar as Prometheus reads it into a string field."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value if isinstance(value, str) else ""


def _string_map(value, where: str, errors: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.append(f"{where}: must be a mapping of names to text.")
        return {}
    out = {}
    for key, text in value.items():
        if isinstance(text, dict | list) or text is None:
            errors.append(f"{where}: the value of '{str(key)[:50]}' must be text.")
            continue
        out[str(key)] = _text(text)
    return out


def load_document(text: str | bytes) -> dict:
    """The YAML document of a rule file; RuleFileError when it is not one."""
    if isinstance(text, bytes):
        if len(text) > MAX_FILE_BYTES:
            raise RuleFileError([f"The file is larger than {MAX_FILE_BYTES // 1024} KiB."])
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise RuleFileError(["The file is not UTF-8 text."]) from None
    if len(text.encode()) > MAX_FILE_BYTES:
        raise RuleFileError([f"The file is larger than {MAX_FILE_BYTES // 1024} KiB."])
    if "\x00" in text:
        raise RuleFileError(["The file contains a NUL character."])
    try:
        document = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RuleFileError([f"The file is not valid YAML{where}: {problem}."]) from None
    if not isinstance(document, dict) or not isinstance(document.get("groups"), list):
        raise RuleFileError(["A rule file is a mapping with a list of 'groups'."])
    unknown = sorted(str(k) for k in document if k != "groups")
    if unknown:
        raise RuleFileError([f"Unknown top-level key(s): {', '.join(unknown)[:200]}."])
    return document


def parse_rule_file(text: str | bytes, *, schema: str) -> ParsedFile:
    """Every group and rule of the file, checked as the editor checks them; RuleFileError lists
    what is wrong (group and rule named) when anything is."""
    document = load_document(text)
    raw_groups = document["groups"]
    if len(raw_groups) > MAX_GROUPS:
        raise RuleFileError([f"The file has more than {MAX_GROUPS} groups."])
    errors: list[str] = []
    parsed = ParsedFile(groups=[])
    seen_groups: set[str] = set()
    total = 0
    for index, raw in enumerate(raw_groups, start=1):
        if not isinstance(raw, dict):
            errors.append(f"Group {index}: must be a mapping with name, interval and rules.")
            continue
        group_name = _text(raw.get("name")).strip() or f"#{index}"
        where = f"Group '{group_name[:100]}'"
        unknown = sorted(str(k) for k in raw if k not in _GROUP_KEYS | _IGNORED_GROUP_KEYS)
        if unknown:
            errors.append(f"{where}: unknown key(s) {', '.join(unknown)[:200]}.")
        for key in sorted(_IGNORED_GROUP_KEYS & set(raw)):
            parsed.warnings.append(f"{where}: '{key}' is not supported and was left out.")
        form = RuleGroupForm(
            data={"name": _text(raw.get("name")), "interval": _text(raw.get("interval")) or "1m"}
        )
        if not form.is_valid():
            errors.extend(f"{where}: {m}" for msgs in form.errors.values() for m in msgs)
            continue
        name, interval = form.cleaned_data["name"], form.cleaned_data["interval"]
        if name in seen_groups:
            errors.append(f"{where}: the group name is repeated in the file.")
            continue
        seen_groups.add(name)
        rules_raw = raw.get("rules")
        if not isinstance(rules_raw, list):
            errors.append(f"{where}: 'rules' must be a list.")
            continue
        total += len(rules_raw)
        if total > MAX_RULES:
            raise RuleFileError([f"The file has more than {MAX_RULES} rules."])
        rules = [
            rule
            for position, rule_raw in enumerate(rules_raw, start=1)
            if (rule := _parse_rule(rule_raw, name, position, schema, parsed, errors)) is not None
        ]
        parsed.groups.extend(_split_duplicates(name, interval, rules, parsed.warnings))
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        more = len(errors) - MAX_ERRORS
        shown = errors[:MAX_ERRORS] + ([f"… and {more} more."] if more > 0 else [])
        raise RuleFileError(shown)
    names = [g.name for g in parsed.groups]
    if len(names) != len(set(names)):
        raise RuleFileError(["Two groups end up with the same name; rename one in the file."])
    return parsed


def _parse_rule(
    raw, group: str, position: int, schema: str, parsed: ParsedFile, errors: list[str]
) -> ImportedRule | None:
    where = f"Group '{group[:100]}', rule {position}"
    if not isinstance(raw, dict):
        errors.append(f"{where}: must be a mapping (alert or record, expr, ...).")
        return None
    if ("alert" in raw) == ("record" in raw):
        errors.append(f"{where}: give exactly one of 'alert' and 'record'.")
        return None
    kind = "alert" if "alert" in raw else "record"
    name = _text(raw.get(kind))
    if name:
        where = f"Group '{group[:100]}', rule '{name[:100]}'"
    unknown = sorted(str(k) for k in raw if k not in _RULE_KEYS)
    if unknown:
        errors.append(f"{where}: unknown key(s) {', '.join(unknown)[:200]}.")
        return None
    local: list[str] = []
    labels = _string_map(raw.get("labels"), f"{where}: labels", local)
    annotations = _string_map(raw.get("annotations"), f"{where}: annotations", local)
    if local:
        errors.extend(local)
        return None
    severity, category = DEFAULT_SEVERITY, Category.AVAILABILITY
    written_severity = labels.pop("severity", None)
    written_category = labels.pop("category", None)
    if kind == "alert":
        if written_severity is None:
            parsed.warnings.append(f"{where}: no severity label; it becomes {DEFAULT_SEVERITY}.")
        else:
            mapped = SEVERITY_OF_LABEL.get(written_severity.strip().lower())
            if mapped is None:
                known = ", ".join(k for k in SEVERITY_OF_LABEL if k not in _PORTAL_SEVERITIES)
                errors.append(
                    f"{where}: severity '{written_severity[:50]}' is not one the portal maps "
                    f"({known}, or P0 to P3)."
                )
                return None
            severity = mapped
        parsed.severity_mapping[(written_severity or "(none)", str(severity))] += 1
        if written_category is not None:
            if written_category not in Category.values:
                errors.append(
                    f"{where}: category '{written_category[:50]}' is not one of "
                    f"{', '.join(Category.values)}."
                )
                return None
            category = written_category
    elif written_severity is not None or written_category is not None:
        parsed.warnings.append(
            f"{where}: severity and category labels of a recording rule were left out."
        )
    annotations = _mapped_annotations(annotations, where, parsed.warnings)
    form = AlertRuleForm(
        data={
            "kind": kind,
            "name": name,
            "expr": _text(raw.get("expr")),
            "for_duration": _text(raw.get("for")),
            "keep_firing_for": _text(raw.get("keep_firing_for")),
            "severity": severity,
            "category": category,
            "labels": labels,
            "annotations": annotations,
            "enabled": True,
        },
        schema=schema,
    )
    if not form.is_valid():
        errors.extend(f"{where}: {m}" for msgs in form.errors.values() for m in msgs)
        return None
    data = form.cleaned_data
    return ImportedRule(
        group=group,
        kind=data["kind"],
        name=data["name"],
        expr=data["expr"],
        for_duration=data["for_duration"],
        keep_firing_for=data["keep_firing_for"],
        severity=data["severity"],
        category=data["category"],
        labels=data["labels"],
        annotations=data["annotations"],
    )


def _mapped_annotations(annotations: dict, where: str, warnings: list[str]) -> dict:
    out = {k: v for k, v in annotations.items() if k in ("summary", "description", "runbook_url")}
    for alias, target in _ANNOTATION_ALIASES.items():
        if alias in annotations and target not in out:
            out[target] = annotations[alias]
    dropped = sorted(k for k in annotations if k not in out and k not in _ANNOTATION_ALIASES)
    if dropped:
        warnings.append(
            f"{where}: annotation(s) {', '.join(dropped)[:200]} left out "
            "(the portal keeps summary, description and runbook_url)."
        )
    return out


def _split_duplicates(
    name: str, interval: str, rules: list[ImportedRule], warnings: list[str]
) -> list[ImportedGroup]:
    """Rules of one name are unique in a portal group; Prometheus allows repeats (a warning and
    a critical variant of one alert). Repeats go to sibling groups "<name> (2)", ..., so each
    keeps its alert name, and with it the P0 inhibition of its lower variants."""
    buckets: list[list[ImportedRule]] = []
    for rule in rules:
        bucket = next((b for b in buckets if all(r.name != rule.name for r in b)), None)
        if bucket is None:
            bucket = []
            buckets.append(bucket)
        bucket.append(rule)
    groups = []
    for number, bucket in enumerate(buckets, start=1):
        group_name = name if number == 1 else f"{name} ({number})"
        if number > 1:
            warnings.append(
                f"Group '{name[:100]}': {len(bucket)} rule(s) repeating a name in it go to the "
                f"group '{group_name[:100]}'."
            )
        groups.append(
            ImportedGroup(
                name=group_name,
                interval=interval,
                rules=tuple(
                    ImportedRule(**{**asdict(r), "group": group_name}) if number > 1 else r
                    for r in bucket
                ),
            )
        )
    return groups or [ImportedGroup(name=name, interval=interval, rules=())]


# ---- planning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleChange:
    group: str
    name: str
    kind: str
    fields: tuple[str, ...] = ()  # for a change: which fields differ
    rule_id: str = ""  # the existing rule, for changes and removals


@dataclass
class ImportPlan:
    """What applying the file would do to the tenant's rules."""

    parsed: ParsedFile
    remove_missing: bool
    groups_added: list[tuple[str, str]] = field(default_factory=list)  # (name, interval)
    groups_changed: list[tuple[str, str, str]] = field(default_factory=list)  # name, old, new
    groups_removed: list[str] = field(default_factory=list)
    added: list[RuleChange] = field(default_factory=list)
    changed: list[RuleChange] = field(default_factory=list)
    removed: list[RuleChange] = field(default_factory=list)
    unchanged: int = 0
    kept_disabled: int = 0

    @property
    def has_changes(self) -> bool:
        return bool(
            self.groups_added
            or self.groups_changed
            or self.groups_removed
            or self.added
            or self.changed
            or self.removed
        )

    def summary(self) -> dict:
        """The plan as plain data (API answers, the preview page, the staleness digest)."""
        return {
            "groups": {
                "added": [{"name": n, "interval": i} for n, i in self.groups_added],
                "changed": [
                    {"name": n, "interval_before": a, "interval": b}
                    for n, a, b in self.groups_changed
                ],
                "removed": list(self.groups_removed),
            },
            "rules": {
                "added": [_change_data(c) for c in self.added],
                "changed": [_change_data(c) for c in self.changed],
                "removed": [_change_data(c) for c in self.removed],
                "unchanged": self.unchanged,
                "kept_disabled": self.kept_disabled,
            },
            "severity_mapping": [
                {"label": label, "severity": severity, "rules": count}
                for (label, severity), count in sorted(self.parsed.severity_mapping.items())
            ],
            "warnings": list(self.parsed.warnings),
        }

    def digest(self) -> str:
        return hashlib.sha256(
            json.dumps(self.summary(), sort_keys=True, default=str).encode()
        ).hexdigest()


def _change_data(change: RuleChange) -> dict:
    data = {"group": change.group, "name": change.name, "kind": change.kind}
    if change.fields:
        data["fields"] = list(change.fields)
    return data


def _existing_values(rule: AlertRule) -> dict:
    return {
        "kind": rule.kind,
        "expr": rule.expr,
        "for_duration": rule.for_duration,
        "keep_firing_for": rule.keep_firing_for,
        "severity": rule.severity,
        "category": rule.category,
        "labels": rule.labels or {},
        "annotations": rule.annotations or {},
    }


def _differences(rule: AlertRule, imported: ImportedRule) -> tuple[str, ...]:
    before, after = _existing_values(rule), imported.values()
    if rule.kind == AlertRule.Kind.RECORD and imported.kind == AlertRule.Kind.RECORD:
        # Severity and category mean nothing for a recording rule.
        compared = [f for f in _COMPARED if f not in ("severity", "category")]
    else:
        compared = list(_COMPARED)
    return tuple(f for f in compared if before[f] != after[f])


def plan_import(parsed: ParsedFile, *, remove_missing: bool = True) -> ImportPlan:
    """Compare the file with the current tenant's rules (by group and rule name)."""
    plan = ImportPlan(parsed=parsed, remove_missing=remove_missing)
    existing_groups = {g.name: g for g in RuleGroup.objects.prefetch_related("rules")}
    wanted_groups = {g.name: g for g in parsed.groups}
    for group in parsed.groups:
        current = existing_groups.get(group.name)
        if current is None:
            plan.groups_added.append((group.name, group.interval))
        elif current.interval != group.interval:
            plan.groups_changed.append((group.name, current.interval, group.interval))
        existing_rules = {r.name: r for r in current.rules.all()} if current else {}
        for rule in group.rules:
            found = existing_rules.get(rule.name)
            if found is None:
                plan.added.append(RuleChange(group.name, rule.name, rule.kind))
                continue
            fields = _differences(found, rule)
            if fields:
                plan.changed.append(
                    RuleChange(group.name, rule.name, rule.kind, fields, str(found.public_id))
                )
            else:
                plan.unchanged += 1
        imported_names = {r.name for r in group.rules}
        for name, rule in sorted(existing_rules.items()):
            if name not in imported_names:
                _plan_missing(plan, group.name, rule)
    for name, current in sorted(existing_groups.items()):
        if name in wanted_groups:
            continue
        rules = sorted(current.rules.all(), key=lambda r: r.name)
        if remove_missing and not any(not r.enabled for r in rules):
            plan.groups_removed.append(name)
            plan.removed.extend(
                RuleChange(name, r.name, r.kind, rule_id=str(r.public_id)) for r in rules
            )
            continue
        for rule in rules:
            _plan_missing(plan, name, rule)
    return plan


def _plan_missing(plan: ImportPlan, group: str, rule: AlertRule) -> None:
    if not rule.enabled:
        plan.kept_disabled += 1
    elif plan.remove_missing:
        plan.removed.append(RuleChange(group, rule.name, rule.kind, rule_id=str(rule.public_id)))
    else:
        plan.unchanged += 1


# ---- applying ----------------------------------------------------------------------------------


@transaction.atomic
def apply_import(
    text: str | bytes,
    *,
    schema: str,
    actor: audit.Actor,
    remove_missing: bool = True,
    expected_digest: str | None = None,
) -> ImportPlan:
    """Parse, plan and apply the file in one transaction through `alerts.services`.

    With `expected_digest` (from the preview), a plan that differs from the one shown is
    refused (StalePlan) and nothing is written.
    """
    parsed = parse_rule_file(text, schema=schema)
    # Another import or edit of this tenant's rules waits here until this one is done.
    list(RuleGroup.objects.select_for_update().all())
    plan = plan_import(parsed, remove_missing=remove_missing)
    if expected_digest is not None and plan.digest() != expected_digest:
        raise StalePlan(
            ["The tenant's rules changed since the preview; look at the new preview first."]
        )
    by_name = {g.name: g for g in parsed.groups}
    group_ids = dict(RuleGroup.objects.values_list("name", "public_id"))
    for name, interval in plan.groups_added:
        group_ids[name] = services.create_group(name=name, interval=interval, actor=actor).public_id
    for name, _before, interval in plan.groups_changed:
        services.update_group(group_id=group_ids[name], name=name, interval=interval, actor=actor)
    for change in plan.removed:
        if change.group not in plan.groups_removed:
            services.delete_rule(rule_id=change.rule_id, actor=actor)
    changed = {(c.group, c.name): c for c in plan.changed}
    added = {(c.group, c.name) for c in plan.added}
    for group in parsed.groups:
        for rule in group.rules:
            key = (group.name, rule.name)
            if key in changed:
                services.update_rule(rule_id=changed[key].rule_id, actor=actor, **rule.values())
            elif key in added:
                services.create_rule(
                    group_id=group_ids[group.name], actor=actor, enabled=True, **rule.values()
                )
    for name in plan.groups_removed:
        if name not in by_name:
            services.delete_group(group_id=group_ids[name], actor=actor)
    return plan
