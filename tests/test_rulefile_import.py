"""Rules as code: a real-world Prometheus rule file (dozens of groups, recording rules,
critical/warning/info/none severities, repeated alert names) is checked, planned and applied in
one transaction; the export reads back as the same rules; a bad file names every problem and
changes nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from django_tenants.utils import tenant_context

from alerts import rulefile_import as rf
from alerts import services, sync
from alerts.models import AlertRule, RuleGroup, SyncState
from alerts.render import render_rule_file
from tenants import audit
from tenants.models import AuditEvent
from tests.backend_servers import require_binary

REAL_WORLD = Path(__file__).parent / "data" / "realworld_rules.yml"
PROMTOOL = Path("/usr/bin/promtool")
SYSTEM = audit.Actor.system("rule file tests")


@pytest.fixture
def empty_acme(acme):
    """acme without rules (inside the test's transaction, so undone afterwards)."""
    with tenant_context(acme):
        AlertRule.objects.all().delete()
        RuleGroup.objects.all().delete()
        yield acme


def promtool_check(path: Path) -> subprocess.CompletedProcess:
    require_binary(PROMTOOL)
    return subprocess.run(
        [str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )


def file_rules(text: str) -> list[dict]:
    return [rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]


# ---- parsing the real-world file ----------------------------------------------------------------


def test_the_real_world_file_is_one_promtool_accepts():
    result = promtool_check(REAL_WORLD)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 128 rules found" in result.stdout


def test_the_real_world_file_parses_with_severities_mapped():
    parsed = rf.parse_rule_file(REAL_WORLD.read_bytes(), schema="acme")
    assert parsed.rule_count == 128
    kinds = [r.kind for g in parsed.groups for r in g.rules]
    assert kinds.count("record") == 25
    assert dict(parsed.severity_mapping) == {
        ("critical", "P0"): 35,
        ("warning", "P2"): 58,
        ("info", "P3"): 8,
        ("none", "P3"): 2,
    }
    rules = {(r.group, r.name): r for g in parsed.groups for r in g.rules}
    watchdog = rules[("general", "Watchdog")]
    assert (watchdog.severity, watchdog.expr) == ("P3", "vector(1)")
    # "message" is what some tools call the description.
    assert watchdog.annotations["description"].startswith("This is an alert meant to ensure")
    stuffing = rules[("security", "CredentialStuffing")]
    assert (stuffing.severity, stuffing.labels) == ("P0", {"team": "security"})
    assert rules[("prometheus", "PrometheusTargetMissing")].keep_firing_for == "5m"
    spaced = rules[("node-exporter", "NodeFilesystemSpaceFillingUp")]
    assert spaced.expr.startswith("(\n  node_filesystem_avail_bytes")  # multi-line kept


def test_repeated_alert_names_go_to_sibling_groups_and_keep_their_names():
    parsed = rf.parse_rule_file(REAL_WORLD.read_text(), schema="acme")
    groups = {g.name: g for g in parsed.groups}
    assert len(groups) == 28  # 25 in the file, 3 of them with a warning and a critical variant
    assert [r.name for r in groups["node-exporter (2)"].rules] == [
        "NodeFilesystemSpaceFillingUp",
        "NodeFilesystemAlmostOutOfSpace",
    ]
    assert {r.severity for r in groups["node-exporter (2)"].rules} == {"P0"}
    assert groups["node-exporter (2)"].interval == groups["node-exporter"].interval
    assert any("node-exporter (2)" in w for w in parsed.warnings)


# ---- applying ---------------------------------------------------------------------------------


def test_a_real_world_file_is_planned_then_applied_in_one_go(empty_acme):
    parsed = rf.parse_rule_file(REAL_WORLD.read_text(), schema="acme")
    plan = rf.plan_import(parsed)
    assert (len(plan.added), len(plan.changed), len(plan.removed)) == (128, 0, 0)
    assert len(plan.groups_added) == 28
    assert not RuleGroup.objects.exists()  # planning writes nothing

    events = AuditEvent.objects.filter(tenant=empty_acme).count()
    applied = rf.apply_import(REAL_WORLD.read_text(), schema="acme", actor=SYSTEM)
    assert applied.digest() == plan.digest()
    assert RuleGroup.objects.count() == 28
    assert AlertRule.objects.count() == 128
    assert AlertRule.objects.filter(kind="record").count() == 25
    assert AuditEvent.objects.filter(tenant=empty_acme).count() == events + 28 + 128
    state = SyncState.objects.get(target=SyncState.Target.PROMETHEUS_RULES)
    assert state.status == SyncState.Status.PENDING
    first = AlertRule.objects.get(group__name="kubernetes-apps", name="KubePodCrashLooping")
    assert first.position < AlertRule.objects.get(group=first.group, name="KubeJobFailed").position


def test_the_imported_rules_render_to_a_file_promtool_accepts(empty_acme, tmp_path):
    rf.apply_import(REAL_WORLD.read_text(), schema="acme", actor=SYSTEM)
    rendered = tmp_path / "acme.yml"
    rendered.write_text(render_rule_file("acme", sync.rule_groups()))
    result = promtool_check(rendered)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 128 rules found" in result.stdout
    for rule in file_rules(rendered.read_text()):
        assert rule["labels"]["tenant"] == "acme"


def test_the_export_reads_back_as_the_same_rules(empty_acme, tmp_path):
    rf.apply_import(REAL_WORLD.read_text(), schema="acme", actor=SYSTEM)
    exported = rf.export_rule_file("Acme")
    path = tmp_path / "export.yml"
    path.write_text(exported)
    assert promtool_check(path).returncode == 0
    assert "expr: |" in exported  # multi-line expressions stay readable
    plan = rf.plan_import(rf.parse_rule_file(exported, schema="acme"))
    assert not plan.has_changes
    assert plan.unchanged == 128
    severities = {r["labels"].get("severity") for r in file_rules(exported) if "alert" in r}
    assert severities == {"P0", "P2", "P3"}


def test_a_second_import_adds_changes_and_removes_and_leaves_disabled_rules_alone(empty_acme):
    rf.apply_import(REAL_WORLD.read_text(), schema="acme", actor=SYSTEM)
    disabled = AlertRule.objects.get(group__name="redis", name="RedisDown")
    services.update_rule(rule_id=disabled.public_id, enabled=False, actor=SYSTEM)

    document = yaml.safe_load(REAL_WORLD.read_text())
    groups = {g["name"]: g for g in document["groups"]}
    groups["queues"]["rules"][1]["expr"] = "queue_depth > 20000"
    groups["queues"]["rules"].append(
        {"alert": "QueueStalled", "expr": "rate(jobs_processed_total[10m]) == 0", "for": "10m"}
    )
    del groups["kafka"]
    groups["redis"]["rules"] = [r for r in groups["redis"]["rules"] if r["alert"] == "RedisDown"]
    text = yaml.safe_dump({"groups": list(groups.values())}, sort_keys=False)

    plan = rf.plan_import(rf.parse_rule_file(text, schema="acme"))
    summary = plan.summary()
    assert summary["rules"]["added"] == [
        {"group": "queues", "name": "QueueStalled", "kind": "alert"}
    ]
    assert summary["rules"]["changed"] == [
        {"group": "queues", "name": "QueueBacklogCritical", "kind": "alert", "fields": ["expr"]}
    ]
    removed = {(c["group"], c["name"]) for c in summary["rules"]["removed"]}
    assert removed == {
        ("kafka", "KafkaConsumerLag"),
        ("kafka", "KafkaTopicsReplicas"),
        ("kafka", "KafkaBrokerDown"),
        ("redis", "RedisMissingMaster"),
        ("redis", "RedisOutOfMemory"),
        ("redis", "RedisTooManyConnections"),
        ("redis", "RedisRejectedConnections"),
    }
    assert summary["groups"]["removed"] == ["kafka"]
    # RedisDown is in the file and unchanged: a disabled rule keeps its switch.
    assert summary["rules"]["kept_disabled"] == 0

    rf.apply_import(text, schema="acme", actor=SYSTEM, expected_digest=plan.digest())
    assert not RuleGroup.objects.filter(name="kafka").exists()
    assert AlertRule.objects.get(name="QueueBacklogCritical").expr == "queue_depth > 20000"
    assert AlertRule.objects.get(name="QueueStalled").severity == "P2"  # no label: P2
    assert not AlertRule.objects.get(group__name="redis", name="RedisDown").enabled
    assert AlertRule.objects.filter(group__name="redis").count() == 1


def test_without_remove_missing_nothing_is_removed(empty_acme):
    rf.apply_import(REAL_WORLD.read_text(), schema="acme", actor=SYSTEM)
    small = "groups:\n- name: extra\n  rules:\n  - alert: Extra\n    expr: up == 0\n"
    plan = rf.plan_import(rf.parse_rule_file(small, schema="acme"), remove_missing=False)
    assert (len(plan.added), len(plan.removed), plan.unchanged) == (1, 0, 128)


def test_a_disabled_rule_missing_from_the_file_is_kept(empty_acme):
    rf.apply_import(REAL_WORLD.read_text(), schema="acme", actor=SYSTEM)
    rule = AlertRule.objects.get(group__name="kafka", name="KafkaBrokerDown")
    services.update_rule(rule_id=rule.public_id, enabled=False, actor=SYSTEM)
    text = "groups:\n- name: other\n  rules:\n  - alert: Other\n    expr: up == 0\n"
    plan = rf.plan_import(rf.parse_rule_file(text, schema="acme"))
    assert plan.kept_disabled == 1
    assert "kafka" not in plan.groups_removed  # it still holds the disabled rule
    rf.apply_import(text, schema="acme", actor=SYSTEM)
    assert list(AlertRule.objects.values_list("name", flat=True).order_by("name")) == [
        "KafkaBrokerDown",
        "Other",
    ]


def test_a_plan_that_changed_since_the_preview_is_refused(empty_acme):
    text = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n"
    plan = rf.plan_import(rf.parse_rule_file(text, schema="acme"))
    services.create_group(name="g", interval="1m", actor=SYSTEM)  # someone else, meanwhile
    with pytest.raises(rf.StalePlan):
        rf.apply_import(text, schema="acme", actor=SYSTEM, expected_digest=plan.digest())
    assert not AlertRule.objects.exists()


def test_a_failure_half_way_leaves_nothing_behind(empty_acme, monkeypatch):
    calls = {"n": 0}
    create_rule = services.create_rule

    def failing_create_rule(**kwargs):
        calls["n"] += 1
        if calls["n"] == 60:
            raise RuntimeError("database went away")
        return create_rule(**kwargs)

    monkeypatch.setattr(services, "create_rule", failing_create_rule)
    events = AuditEvent.objects.filter(tenant=empty_acme).count()
    with pytest.raises(RuntimeError):
        rf.apply_import(REAL_WORLD.read_text(), schema="acme", actor=SYSTEM)
    assert calls["n"] == 60
    assert not RuleGroup.objects.exists()
    assert not AlertRule.objects.exists()
    assert AuditEvent.objects.filter(tenant=empty_acme).count() == events


# ---- refusing bad files -----------------------------------------------------------------------


BAD_FILES = [
    ("groups: [", "not valid YAML (line 1"),
    ("rules: []", "A rule file is a mapping with a list of 'groups'."),
    ("groups: []\nextra: 1", "Unknown top-level key(s): extra."),
    ("groups:\n- name: a/b\n  rules: []", "Group 'a/b': Group name must not contain '/'."),
    ("groups:\n- name: g\n  rules: []\n- name: g\n  rules: []", "repeated in the file"),
    ("groups:\n- name: g\n  interval: often\n  rules: []", "not a duration"),
    ("groups:\n- name: g\n  rules: {}", "Group 'g': 'rules' must be a list."),
    ("groups:\n- name: g\n  rules:\n  - expr: up", "give exactly one of 'alert' and 'record'"),
    (
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    severity: high",
        "Group 'g', rule 'A': unknown key(s) severity.",
    ),
    (
        'groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up{tenant="globex"}',
        "Group 'g', rule 'A': Expression: the label tenant is set by the portal",
    ),
    (
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    for: 5 minutes",
        "Group 'g', rule 'A': For: '5 minutes' is not a duration",
    ),
    (
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    labels: {severity: urgent}",
        "severity 'urgent' is not one the portal maps",
    ),
    (
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    labels: {tenant: acme}",
        "'tenant' is set by the portal",
    ),
    (
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    labels: {team: [a]}",
        "the value of 'team' must be text",
    ),
    (
        "groups:\n- name: g\n  rules:\n  - record: a:b\n    expr: up\n    for: 1m",
        "Recording rules have no 'for' durations.",
    ),
    (
        "x: &a [1, 2]\ngroups: *a",
        "anchors and aliases are not accepted",
    ),
]


@pytest.mark.parametrize(("text", "reason"), BAD_FILES)
def test_a_bad_file_is_refused_with_the_reason(empty_acme, text, reason):
    with pytest.raises(rf.RuleFileError) as refused:
        rf.apply_import(text, schema="acme", actor=SYSTEM)
    assert any(reason in error for error in refused.value.errors), refused.value.errors
    assert not RuleGroup.objects.exists()


def test_every_problem_of_a_file_is_listed_at_once(empty_acme):
    text = REAL_WORLD.read_text().replace("expr: redis_up == 0", "expr: redis_up ==")
    text = text.replace(
        "for: 10m\n    labels:\n      severity: warning",
        "for: ten\n    labels:\n      severity: warning",
        1,
    )
    with pytest.raises(rf.RuleFileError) as refused:
        rf.apply_import(text, schema="acme", actor=SYSTEM)
    errors = refused.value.errors
    assert len(errors) == 2, errors
    assert any(e.startswith("Group 'redis', rule 'RedisDown': Expression:") for e in errors)
    assert any("For: 'ten' is not a duration" in e for e in errors)
    assert not AlertRule.objects.exists()


def test_files_that_are_too_large_or_not_text_are_refused():
    with pytest.raises(rf.RuleFileError, match="larger than"):
        rf.parse_rule_file(b"#" * (rf.MAX_FILE_BYTES + 1), schema="acme")
    with pytest.raises(rf.RuleFileError, match="not UTF-8"):
        rf.parse_rule_file(b"groups: []\n\xff", schema="acme")
    with pytest.raises(rf.RuleFileError, match="NUL"):
        rf.parse_rule_file("groups: []\n\x00", schema="acme")
