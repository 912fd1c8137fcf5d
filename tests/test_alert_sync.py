"""What the portal holds reaches a real Prometheus and Alertmanager, tenant by tenant.

Writes go through `alerts.services` (and the forms, where a person's input is meant) and are
committed; the sync passes run in this process unless a test says it goes through the Celery
worker. Broken rules and receivers are stored straight in the database, as a bug or a manual
repair could leave them, to show that the backends never get them and other tenants carry on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from django_tenants.utils import tenant_context

from alerts import services, sync, tasks
from alerts.apps import withdraw_tenant_alerting
from alerts.forms import AlertRuleForm, ReceiverForm
from alerts.models import (
    AlertingSettings,
    AlertRule,
    NotificationPolicy,
    Receiver,
    RuleGroup,
    Silence,
    SyncState,
)
from tests import alerting_fixtures
from tests.alerting_fixtures import (
    AlertingStack,
    actor,
    apply_settings,
    restart_on_same_port,
    running_alerting_stack,
    running_sync_worker,
)
from tests.conftest import wait_for
from tests.helpers import unique

pytestmark = pytest.mark.timeout(180)
committed_alerting = alerting_fixtures.committed_alerting

Target = SyncState.Target
Status = SyncState.Status
RULES_FILE = Path(__file__).parent / "data" / "service_rules.yml"
# Severity labels of rule files written for plain Prometheus, as the portal maps them.
SEVERITY_OF_LABEL = {"critical": "P0", "warning": "P2", "info": "P3"}


def loaded_rules_of(tenant) -> dict:
    """What Prometheus evaluates for the tenant now, by (group, rule name) as the portal names
    them."""
    prefix = f"{tenant.schema_name}/"
    return {
        (r.group[len(prefix) :], r.name): r for r in sync.prometheus_client().rules(prefix=prefix)
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[AlertingStack]:
    with running_alerting_stack(
        tmp_path_factory.mktemp("alerting"),
        OUTBOUND_ALLOWED_HOSTS=["127.0.0.1"],
        # Alertmanager calls the intake here; nothing listens, which it only logs.
        ALERTMANAGER_WEBHOOK_BASE_URL="http://127.0.0.1:9",
    ) as running:
        running.exporter.set_series(
            [
                ("queue_depth", {"tenant": "acme", "queue": "emails"}, 7),
                ("queue_depth", {"tenant": "globex", "queue": "emails"}, 700),
            ]
        )
        yield running


@pytest.fixture
def wired(settings, stack) -> AlertingStack:
    apply_settings(settings, stack)
    return stack


def clean_rule(schema: str, **fields) -> dict:
    """A rule's values as the editor's form cleans them (the path a person's input takes)."""
    data = {"kind": "alert", "severity": "P2", "category": "availability", "enabled": True}
    data.update(fields)
    form = AlertRuleForm(data, schema=schema)
    assert form.is_valid(), form.errors
    return form.cleaned_data


def add_rule(tenant, group: RuleGroup, **fields) -> AlertRule:
    with tenant_context(tenant):
        return services.create_rule(
            group_id=group.public_id, actor=actor(), **clean_rule(tenant.schema_name, **fields)
        )


def add_group(tenant, interval: str = "1s") -> RuleGroup:
    with tenant_context(tenant):
        return services.create_group(name=unique("group"), interval=interval, actor=actor())


def state_of(tenant, target: str) -> SyncState:
    with tenant_context(tenant):
        return SyncState.objects.get(target=target)


def sync_rules(tenant) -> sync.PassResult:
    with tenant_context(tenant):
        return sync.sync_rules(tenant)


def add_webhook_receiver(tenant, url: str, severity: str = "P1", **policy) -> Receiver:
    """A webhook receiver (through the form and the services) put in a severity's policy."""
    form = ReceiverForm({"name": unique("hook"), "kind": "webhook", "secret": url})
    assert form.is_valid(), form.errors
    with tenant_context(tenant):
        receiver = services.create_receiver(
            name=form.cleaned_data["name"],
            kind="webhook",
            settings=form.receiver_settings(),
            secret=form.cleaned_data["secret"],
            actor=actor(),
        )
        set_policy(severity, [receiver], **policy)
    return receiver


def set_policy(severity: str, receivers: list[Receiver], **values) -> NotificationPolicy:
    policy = NotificationPolicy.objects.get(severity=severity)
    current = {
        "group_by": policy.group_by,
        "group_wait": policy.group_wait,
        "group_interval": policy.group_interval,
        "repeat_interval": policy.repeat_interval,
    }
    return services.update_policy(
        severity=severity,
        receivers=[str(r.public_id) for r in receivers],
        mute_timings=[],
        actor=actor(),
        **{**current, **values},
    )


def tenant_route(stack: AlertingStack, schema: str) -> dict:
    """The tenant's route in the configuration Alertmanager runs now."""
    config = yaml.safe_load(stack.alertmanager_status()["config"]["original"])
    for route in config["route"]["routes"]:
        if route.get("matchers") == [f'tenant="{schema}"']:
            return route
    raise AssertionError(f"Alertmanager runs no route for {schema}")


# ---- rules --------------------------------------------------------------------------------------


def test_the_seed_tenants_got_the_default_policy_when_they_were_provisioned(committed_alerting):
    for tenant in committed_alerting.values():
        with tenant_context(tenant):
            assert AlertingSettings.objects.get().webhook_secret
            policies = {
                p.severity: sorted(p.receivers.values_list("name", flat=True))
                for p in NotificationPolicy.objects.all()
            }
    assert policies["P0"] == ["On-call PagerDuty", "On-call SMS", "Team Slack", "Team Teams"]
    assert policies["P3"] == ["Daily digest e-mail"]


def test_a_rule_saved_in_acme_becomes_active_in_prometheus(wired, committed_alerting):
    acme = committed_alerting["acme"]
    group = add_group(acme)
    name = unique("EmailQueueDeep")
    add_rule(acme, group, name=name, expr="queue_depth > 5", severity="P1")

    assert sync_rules(acme) == sync.PassResult(Status.SYNCED)

    loaded = wired.loaded_rules(f"acme/{group.name}")
    assert [r["name"] for r in loaded[f"acme/{group.name}"]] == [name]
    rule = loaded[f"acme/{group.name}"][0]
    assert rule["query"] == 'queue_depth{tenant="acme"} > 5'
    assert rule["labels"] == {"category": "availability", "severity": "P1", "tenant": "acme"}

    def firing() -> bool:
        (rule,) = wired.loaded_rules(f"acme/{group.name}")[f"acme/{group.name}"]
        return rule["health"] == "ok" and rule["state"] == "firing"

    wait_for(firing, timeout=30, message=f"{name} to be evaluated and firing")
    with tenant_context(acme):
        (state,) = [s for s in loaded_rules_of(acme).values() if s.name == name]
    assert (state.state, state.health, state.last_error) == ("firing", "ok", "")
    saved = state_of(acme, Target.PROMETHEUS_RULES)
    assert saved.status == Status.SYNCED
    assert saved.applied_hash == saved.desired_hash != ""
    assert saved.error == ""


def test_an_unchanged_tenant_is_checked_without_a_reload(wired, committed_alerting):
    acme = committed_alerting["acme"]
    add_rule(acme, add_group(acme), name=unique("Steady"), expr="queue_depth > 5")
    assert sync_rules(acme).status == Status.SYNCED
    rule_file = wired.rules_dir / "acme.yml"
    written = rule_file.stat().st_mtime_ns

    assert sync_rules(acme).status == Status.SYNCED
    assert rule_file.stat().st_mtime_ns == written


def test_a_rule_saved_reaches_prometheus_through_the_celery_worker(
    wired, committed_alerting, process_env, tmp_path
):
    acme = committed_alerting["acme"]
    with running_sync_worker({**process_env, **wired.environment()}, tmp_path / "worker.log"):
        group = add_group(acme)
        name = unique("ViaWorker")
        add_rule(acme, group, name=name, expr="queue_depth > 5")

        def active() -> bool:
            rules = wired.loaded_rules(f"acme/{group.name}").get(f"acme/{group.name}", [])
            return [r["name"] for r in rules] == [name]

        wait_for(active, timeout=60, message=f"the worker to bring {name} into Prometheus")
        wait_for(
            lambda: state_of(acme, Target.PROMETHEUS_RULES).status == Status.SYNCED,
            timeout=30,
            message="the rules' sync state to say synced",
        )


@pytest.mark.parametrize(
    ("broken", "promtool_says"),
    [
        ({"for_duration": "5 minutes"}, 'not a valid duration string: "5 minutes"'),
        ({"labels": {"bad-name": "x"}}, "invalid label name: bad-name"),
        (
            {"annotations": {"summary": "{{ $value | nosuchfunction }}"}},
            'function "nosuchfunction" not defined',
        ),
    ],
)
def test_a_broken_rule_never_reaches_prometheus_and_globex_keeps_syncing(
    wired, committed_alerting, broken, promtool_says
):
    acme, globex = committed_alerting["acme"], committed_alerting["globex"]
    group = add_group(acme)
    good = unique("Good")
    add_rule(acme, group, name=good, expr="queue_depth > 5")
    assert sync_rules(acme).status == Status.SYNCED
    last_good = (wired.rules_dir / "acme.yml").read_text()
    bad = unique("Broken")
    with tenant_context(acme):  # past the forms, as a bug or a manual repair could leave it
        AlertRule.objects.create(group=group, name=bad, expr="vector(1)", position=9, **broken)

    result = sync_rules(acme)

    assert result.status == Status.FAILED
    assert not result.transient  # retrying the same file cannot help
    assert promtool_says in result.error
    saved = state_of(acme, Target.PROMETHEUS_RULES)
    assert saved.status == Status.FAILED
    assert promtool_says in saved.error
    assert saved.last_attempt_at is not None
    assert (wired.rules_dir / "acme.yml").read_text() == last_good
    loaded = wired.loaded_rules(f"acme/{group.name}")[f"acme/{group.name}"]
    assert [r["name"] for r in loaded] == [good]

    other = add_group(globex)
    name = unique("GlobexQueue")
    add_rule(globex, other, name=name, expr="queue_depth > 500")
    assert sync_rules(globex).status == Status.SYNCED
    loaded = wired.loaded_rules(f"globex/{other.name}")[f"globex/{other.name}"]
    assert [r["name"] for r in loaded] == [name]


def test_a_stored_rule_naming_another_tenant_is_refused_by_the_scoping(wired, committed_alerting):
    acme = committed_alerting["acme"]
    group = add_group(acme)
    with tenant_context(acme):
        AlertRule.objects.create(group=group, name="Peek", expr='queue_depth{tenant="globex"}')
    result = sync_rules(acme)
    assert result.status == Status.FAILED
    assert "cannot be scoped" in result.error
    assert "Peek" not in (wired.rules_dir / "acme.yml").read_text()


def test_rules_saved_while_prometheus_is_down_are_applied_once_it_is_back(
    wired, committed_alerting
):
    acme = committed_alerting["acme"]
    group = add_group(acme)
    wired.prometheus.stop()
    try:
        names = [unique("WhileDown") for _ in range(3)]
        for name in names:
            add_rule(acme, group, name=name, expr="queue_depth > 5")

        result = sync_rules(acme)

        assert result.status == Status.FAILED
        assert result.transient
        assert "cannot connect" in result.error
        down = state_of(acme, Target.PROMETHEUS_RULES)
        assert down.status == Status.FAILED
        assert down.attempts >= 1
        with tenant_context(acme):
            assert sorted(group.rules.values_list("name", flat=True)) == sorted(names)
    finally:
        restart_on_same_port(wired.prometheus)

    assert sync_rules(acme).status == Status.SYNCED
    loaded = wired.loaded_rules(f"acme/{group.name}")[f"acme/{group.name}"]
    assert sorted(r["name"] for r in loaded) == sorted(names)
    assert state_of(acme, Target.PROMETHEUS_RULES).attempts == 0


def test_a_file_written_by_a_pass_whose_reload_failed_is_reloaded_by_the_next(
    wired, committed_alerting, settings
):
    acme = committed_alerting["acme"]
    group = add_group(acme)
    rule = add_rule(acme, group, name=unique("Edited"), expr="queue_depth > 5")
    assert sync_rules(acme).status == Status.SYNCED
    with tenant_context(acme):
        services.update_rule(rule_id=rule.public_id, expr="queue_depth > 6", actor=actor())
    settings.PROMETHEUS_URL = "http://127.0.0.1:9"  # the reload cannot reach Prometheus
    assert sync_rules(acme).status == Status.FAILED
    assert 'queue_depth{tenant="acme"} > 6' in (wired.rules_dir / "acme.yml").read_text()
    settings.PROMETHEUS_URL = wired.prometheus.url

    # The file is unchanged since and has as many rules as Prometheus holds: only the
    # recorded state tells that Prometheus still runs the old expression.
    assert sync_rules(acme).status == Status.SYNCED

    (loaded,) = wired.loaded_rules(f"acme/{group.name}")[f"acme/{group.name}"]
    assert loaded["query"] == 'queue_depth{tenant="acme"} > 6'


def test_the_worker_retries_until_prometheus_is_back(
    wired, committed_alerting, process_env, tmp_path
):
    acme = committed_alerting["acme"]
    with running_sync_worker({**process_env, **wired.environment()}, tmp_path / "worker.log"):
        group = add_group(acme)
        wired.prometheus.stop()
        try:
            name = unique("RetriedIn")
            add_rule(acme, group, name=name, expr="queue_depth > 5")
            wait_for(
                lambda: state_of(acme, Target.PROMETHEUS_RULES).status == Status.FAILED,
                timeout=30,
                message="the worker's first attempt to fail",
            )
        finally:
            restart_on_same_port(wired.prometheus)
        wait_for(
            lambda: state_of(acme, Target.PROMETHEUS_RULES).status == Status.SYNCED,
            timeout=60,
            message="a retry to sync the rules once Prometheus is back",
        )
    loaded = wired.loaded_rules(f"acme/{group.name}")[f"acme/{group.name}"]
    assert [r["name"] for r in loaded] == [name]


def _import_rule_file(tenant, path: Path) -> dict[str, int]:
    """Load a Prometheus rule file through the form and the services; {group: rule count}."""
    document = yaml.safe_load(path.read_text())
    sizes = {}
    for spec in document["groups"]:
        with tenant_context(tenant):
            group = services.create_group(
                name=unique(spec["name"]), interval=spec.get("interval", "1m"), actor=actor()
            )
        for rule in spec["rules"]:
            labels = dict(rule.get("labels") or {})
            severity = SEVERITY_OF_LABEL[labels.pop("severity", "warning")]
            fields = {
                "kind": "alert" if "alert" in rule else "record",
                "name": rule.get("alert") or rule["record"],
                "expr": rule["expr"],
                "for_duration": rule.get("for", ""),
                "keep_firing_for": rule.get("keep_firing_for", ""),
                "severity": severity,
                "labels": labels,
                "annotations": rule.get("annotations") or {},
            }
            add_rule(tenant, group, **fields)
        sizes[group.name] = len(spec["rules"])
    return sizes


def test_a_real_world_rule_file_with_dozens_of_groups_syncs_and_is_active(
    wired, committed_alerting
):
    acme = committed_alerting["acme"]
    sizes = _import_rule_file(acme, RULES_FILE)
    assert len(sizes) >= 24

    assert sync_rules(acme).status == Status.SYNCED

    loaded = {
        name[len("acme/") :]: rules
        for name, rules in wired.loaded_rules("acme/").items()
        if name[len("acme/") :] in sizes
    }
    assert {name: len(rules) for name, rules in loaded.items()} == sizes

    def all_evaluated() -> bool:
        rules = [
            r
            for name, group in wired.loaded_rules("acme/").items()
            if name[len("acme/") :] in sizes
            for r in group
        ]
        return all(r["health"] == "ok" for r in rules)

    wait_for(all_evaluated, timeout=60, message="every imported rule to be evaluated without error")
    with tenant_context(acme):
        states = loaded_rules_of(acme)
    assert sum(1 for (group, _), _rule in states.items() if group in sizes) == sum(sizes.values())


def test_a_deactivated_tenants_rule_file_is_removed_by_the_reconciler(wired, committed_alerting):
    orphan = wired.rules_dir / "formerco.yml"
    orphan.write_text(
        "groups:\n- name: formerco/old\n  rules:\n  - alert: Old\n    expr: vector(1)\n"
    )
    wired.prometheus.reload()
    assert "formerco/old" in wired.loaded_rules("formerco/")

    assert sync.remove_orphan_rule_files() == ["formerco"]

    assert not orphan.exists()
    assert wired.loaded_rules("formerco/") == {}


def test_the_reconciler_puts_back_a_rule_file_that_went_missing(
    wired, committed_alerting, eager_tasks
):
    acme = committed_alerting["acme"]
    group = add_group(acme)
    name = unique("Drifted")
    add_rule(acme, group, name=name, expr="queue_depth > 5")
    assert sync_rules(acme).status == Status.SYNCED
    (wired.rules_dir / "acme.yml").unlink()  # e.g. a redeployed Prometheus with an empty dir
    wired.prometheus.reload()
    assert wired.loaded_rules(f"acme/{group.name}") == {}

    tasks.sync_reconcile_all.delay()

    loaded = wired.loaded_rules(f"acme/{group.name}")[f"acme/{group.name}"]
    assert [r["name"] for r in loaded] == [name]
    assert state_of(acme, Target.PROMETHEUS_RULES).status == Status.SYNCED


def test_a_deactivated_tenants_rules_are_removed_but_an_active_ones_stay(
    wired, committed_alerting, eager_tasks
):
    acme = committed_alerting["acme"]
    add_rule(acme, add_group(acme), name=unique("Kept"), expr="queue_depth > 5")
    assert sync_rules(acme).status == Status.SYNCED
    closed = wired.rules_dir / "closedco.yml"
    closed.write_text("groups:\n- name: closedco/x\n  rules:\n  - alert: X\n    expr: vector(1)\n")
    wired.prometheus.reload()

    # What the `tenant_deactivated` hook does (run eagerly here): remove, then resync routes.
    withdraw_tenant_alerting(None, tenant=SimpleNamespace(schema_name="closedco"))
    assert tasks.sync_remove_tenant_rules.delay("acme").get() is False  # active: kept

    assert not closed.exists()
    assert wired.loaded_rules("closedco/") == {}
    assert (wired.rules_dir / "acme.yml").exists()


# ---- Alertmanager -------------------------------------------------------------------------------


def test_receivers_and_policies_reach_alertmanager_per_tenant(wired, committed_alerting):
    acme, globex = committed_alerting["acme"], committed_alerting["globex"]
    add_webhook_receiver(acme, "http://127.0.0.1:9/acme", group_wait="3s")
    add_webhook_receiver(globex, "http://127.0.0.1:9/globex", group_wait="4s")

    results = sync.sync_alertmanager()

    assert results["acme"].status == results["globex"].status == Status.SYNCED
    for schema, wait in (("acme", "3s"), ("globex", "4s")):
        route = tenant_route(wired, schema)
        (p1,) = [r for r in route["routes"] if r.get("matchers") == ['severity="P1"']]
        assert p1["receiver"] == f"{schema}__P1"
        assert p1["group_wait"] == wait
    assert {"acme__P1", "globex__P1", "acme__portal"} <= wired.alertmanager_receivers()
    assert state_of(acme, Target.ALERTMANAGER).status == Status.SYNCED


def test_a_broken_receiver_never_reaches_alertmanager_and_globex_still_applies(
    wired, committed_alerting
):
    acme, globex = committed_alerting["acme"], committed_alerting["globex"]
    add_webhook_receiver(acme, "http://127.0.0.1:9/acme")
    add_webhook_receiver(globex, "http://127.0.0.1:9/globex", group_wait="5s")
    assert {r.status for r in sync.sync_alertmanager().values()} == {Status.SYNCED}
    acme_before = tenant_route(wired, "acme")
    with tenant_context(acme):  # past the forms: a Slack "URL" Alertmanager cannot take
        broken = Receiver.objects.create(
            name=unique("broken"), kind="slack", secret="not-a-url", secret_hint="set"
        )
        NotificationPolicy.objects.get(severity="P1").receivers.add(broken)
    with tenant_context(globex):
        set_policy(
            "P1",
            list(NotificationPolicy.objects.get(severity="P1").receivers.all()),
            group_wait="7s",
        )

    results = sync.sync_alertmanager()

    assert results["acme"].status == Status.FAILED
    assert 'unsupported scheme "" for URL' in results["acme"].error
    assert results["globex"].status == Status.SYNCED
    failed = state_of(acme, Target.ALERTMANAGER)
    assert failed.status == Status.FAILED
    assert "unsupported scheme" in failed.error
    assert "not-a-url" not in wired.alertmanager.config_path.read_text()
    assert tenant_route(wired, "acme") == acme_before  # its last good route stays
    (p1,) = [
        r for r in tenant_route(wired, "globex")["routes"] if r.get("matchers") == ['severity="P1"']
    ]
    assert p1["group_wait"] == "7s"


def test_a_restarted_alertmanager_is_found_running_an_old_file_and_reloaded(
    wired, committed_alerting
):
    acme = committed_alerting["acme"]
    add_webhook_receiver(acme, "http://127.0.0.1:9/acme-again", group_wait="9s")
    assert sync.sync_alertmanager()["acme"].status == Status.SYNCED
    config_path = wired.alertmanager.config_path
    portal_file = config_path.read_text()
    # An operator puts another file in place behind the portal's back and reloads.
    config_path.write_text(
        yaml.safe_dump({"route": {"receiver": "x"}, "receivers": [{"name": "x"}]})
    )
    wired.alertmanager.reload()
    assert "acme__P1" not in wired.alertmanager_receivers()

    assert sync.sync_alertmanager()["acme"].status == Status.SYNCED

    assert config_path.read_text() == portal_file
    assert "acme__P1" in wired.alertmanager_receivers()


def test_a_silence_is_applied_and_expired_in_alertmanager(wired, committed_alerting):
    from datetime import timedelta

    from django.utils import timezone

    acme = committed_alerting["acme"]
    name = unique("Noisy")
    with tenant_context(acme):
        silence = services.create_silence(
            matchers=[{"name": "alertname", "value": name, "isRegex": False, "isEqual": True}],
            ends_at=timezone.now() + timedelta(hours=1),
            comment="deploy window",
            actor=actor(),
        )
        assert sync.sync_silences(acme).status == Status.SYNCED
        silence.refresh_from_db()
    import httpx

    with httpx.Client(timeout=10, trust_env=False) as client:
        found = client.get(f"{wired.alertmanager.url}/api/v2/silence/{silence.alertmanager_id}")
    body = found.json()
    assert body["status"]["state"] == "active"
    assert body["createdBy"] == "alerting tests"
    matchers = {(m["name"], m["value"]) for m in body["matchers"]}
    assert matchers == {("alertname", name), ("tenant", "acme")}

    with tenant_context(acme):
        services.expire_silence(silence_id=silence.public_id, actor=actor())
        assert sync.sync_silences(acme).status == Status.SYNCED
        assert Silence.objects.get(pk=silence.pk).synced
    with httpx.Client(timeout=10, trust_env=False) as client:
        body = client.get(
            f"{wired.alertmanager.url}/api/v2/silence/{silence.alertmanager_id}"
        ).json()
    assert body["status"]["state"] == "expired"


# ---- without backends, and by hand ------------------------------------------------------------


def test_without_backend_urls_the_files_are_ready_and_the_state_says_not_connected(
    settings, committed_alerting, tmp_path
):
    settings.PROMETHEUS_URL = settings.ALERTMANAGER_URL = ""
    settings.PROMETHEUS_RULES_DIR = str(tmp_path / "rules")
    settings.ALERTMANAGER_CONFIG_PATH = str(tmp_path / "alertmanager.yml")
    acme = committed_alerting["acme"]
    add_rule(acme, add_group(acme), name=unique("Offline"), expr="queue_depth > 5")

    result = sync_rules(acme)
    am = sync.sync_alertmanager()

    assert result.status == Status.PENDING
    assert "not connected" in result.error
    assert "Offline_" in (tmp_path / "rules" / "acme.yml").read_text()
    assert am["acme"].status == Status.PENDING
    assert "acme__portal" in (tmp_path / "alertmanager.yml").read_text()
    with tenant_context(acme):
        assert sync.sync_silences(acme).status == Status.PENDING
    assert state_of(acme, Target.PROMETHEUS_RULES).status == Status.PENDING


def test_sync_backends_runs_the_passes_and_prints_each_tenants_state(
    wired, committed_alerting, capsys
):
    acme = committed_alerting["acme"]
    add_rule(acme, add_group(acme), name=unique("ByHand"), expr="queue_depth > 5")

    call_command("sync_backends", "--tenant", "acme", "--no-color")

    out = capsys.readouterr().out
    assert out.splitlines()[0] == "acme"
    assert "Prometheus rules: synced" in out
    assert "Alertmanager route and receivers: synced" in out
    assert "globex" not in out
    with pytest.raises(CommandError, match="No active tenant has the slug 'nobody'"):
        call_command("sync_backends", "--tenant", "nobody")


def test_sync_backends_exits_non_zero_when_a_tenant_failed(wired, committed_alerting, capsys):
    acme = committed_alerting["acme"]
    group = add_group(acme)
    with tenant_context(acme):
        AlertRule.objects.create(group=group, name="Bad", expr="vector(1)", for_duration="soon")
    with pytest.raises(CommandError, match="failed"):
        call_command("sync_backends", "--tenant", "acme", "--no-color")
    assert "Prometheus rules: failed: " in capsys.readouterr().out


# ---- the demo's monitoring ----------------------------------------------------------------------


def test_the_demo_starts_prometheus_alertmanager_and_the_exporter_wired_together(
    settings, tmp_path, monkeypatch
):
    import subprocess

    import httpx

    from portal import devstack
    from tests.helpers import started_process

    monkeypatch.setattr(devstack, "RUN_DIR", tmp_path)
    settings.PROMETHEUS_RULES_DIR = str(tmp_path / "rules")
    settings.ALERTMANAGER_CONFIG_PATH = str(tmp_path / "alertmanager.yml")
    env = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_URL", "ALERTMANAGER_URL")}

    commands = devstack.demo_monitoring(env)

    assert sorted(commands) == ["alertmanager", "exporter", "prometheus"]
    assert env["PROMETHEUS_URL"].startswith("http://127.0.0.1:")
    assert env["ALERTMANAGER_URL"].startswith("http://127.0.0.1:")
    config_file = tmp_path / "monitoring" / "prometheus.yml"
    check = subprocess.run(
        ["promtool", "check", "config", "--syntax-only", str(config_file)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    config = yaml.safe_load(config_file.read_text())
    assert config["scrape_configs"][0]["honor_labels"] is True
    assert config["rule_files"] == [str(tmp_path / "rules" / "*.yml")]
    with ExitStack() as stack:
        for name in ("exporter", "alertmanager", "prometheus"):
            stack.enter_context(
                started_process(
                    commands[name],
                    env=env,
                    log=tmp_path / f"{name}.log",
                    ready=lambda: True,
                    what=f"the demo's {name}",
                )
            )

        def tenants_scraped() -> set[str]:
            try:
                response = httpx.get(
                    f"{env['PROMETHEUS_URL']}/api/v1/label/tenant/values", timeout=5
                )
            except httpx.TransportError:
                return set()
            return set(response.json()["data"]) if response.status_code == 200 else set()

        # Prometheus hands new targets to scraping only every few seconds after a start.
        assert wait_for(tenants_scraped, timeout=60, message="the demo series") == {
            "acme",
            "globex",
        }

        def alertmanager_found() -> list:
            response = httpx.get(f"{env['PROMETHEUS_URL']}/api/v1/alertmanagers", timeout=5)
            return response.json()["data"]["activeAlertmanagers"]

        (found,) = wait_for(alertmanager_found, timeout=30, message="the demo's Alertmanager")
        assert found["url"].startswith(env["ALERTMANAGER_URL"])


def test_without_the_binaries_the_demo_runs_without_monitoring(settings, tmp_path, monkeypatch):
    from portal import devstack

    monkeypatch.setattr(devstack, "RUN_DIR", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing to find there
    env: dict[str, str] = {}
    assert devstack.demo_monitoring(env) == {}
    assert "PROMETHEUS_URL" not in env
    assert devstack.demo_monitoring({"PROMETHEUS_URL": "http://prometheus:9090"}) == {}


def test_the_demo_rules_pass_the_editor_and_promtool_and_load_in_prometheus(
    wired, committed_alerting
):
    from portal.demo_exporter import DEMO_RULES, DemoTraffic, ensure_demo_rules

    acme = committed_alerting["acme"]
    for rule in DEMO_RULES:
        clean_rule("acme", **rule)
    with tenant_context(acme):
        assert ensure_demo_rules(actor()) == len(DEMO_RULES)
        assert ensure_demo_rules(actor()) == 0  # idempotent
    assert sync_rules(acme).status == Status.SYNCED
    loaded = wired.loaded_rules("acme/Demo service health")["acme/Demo service health"]
    assert sorted(r["name"] for r in loaded) == sorted(r["name"] for r in DEMO_RULES)
    # The exporter's bad spells take turns: at the start of a cycle one tenant has one.
    traffic = DemoTraffic({"acme": 20.0, "globex": 40.0}, seed=1)
    assert traffic.spell_at(0) == ("acme", "errors")
    assert traffic.spell_at(420) == ("globex", "sign-ins")
    assert traffic.spell_at(200) is None
