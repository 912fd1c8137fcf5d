"""Rendered rule files and Alertmanager configurations are what the real tools accept."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

import pytest
import yaml

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
from tests.helpers import IN_CI


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is required in CI")
        pytest.skip(f"{name} is not installed")
    return path


GROUPS = [
    GroupSpec(
        name="api",
        interval="30s",
        rules=(
            RuleSpec(
                kind="alert",
                name="HighErrorRate",
                expr='sum(rate(http_requests_total{code=~"5.."}[5m])) > 1',
                for_duration="5m",
                keep_firing_for="2m",
                severity="P1",
                category="performance",
                labels={"team": "web"},
                annotations={"summary": "Errors over 1/s", "runbook_url": "https://runbooks/x"},
            ),
            RuleSpec(kind="alert", name="AlwaysOn", expr="vector(1)", severity="P3"),
            RuleSpec(kind="record", name="job:errors:rate5m", expr="rate(errors_total[5m])"),
        ),
    ),
    GroupSpec(name="empty", interval="1m", rules=()),
]


def _tenant(schema: str) -> TenantAlerting:
    return TenantAlerting(
        schema=schema,
        intake_url=f"http://localhost:8000/hooks/alertmanager/{schema}-id/",
        relay_url=f"http://localhost:8000/hooks/alertmanager/{schema}-id/relay/",
        webhook_secret="s3cret",
        receivers=(
            ReceiverSpec("r1", "slack", {"channel": "#ops"}, "https://hooks.slack.test/T/B/x"),
            ReceiverSpec("r2", "pagerduty", {}, "routing-key-1"),
            ReceiverSpec(
                "r3",
                "email",
                {
                    "to": "ops@example.com",
                    "smarthost": "m:25",
                    "from": "am@example.com",
                    "require_tls": False,
                },
                "",
            ),
            ReceiverSpec("r4", "sms", {}, "+15550100"),
            ReceiverSpec("r5", "msteams", {}, "https://teams.test/hook"),
        ),
        policies=(
            PolicySpec("P0", ("r1", "r2", "r4", "r5")),
            PolicySpec("P1", ("r1", "r2")),
            PolicySpec("P2", ("r1",), mute_timings=("weekend",)),
            PolicySpec("P3", ("r3",), repeat_interval="24h"),
        ),
        mute_timings={"weekend": [{"weekdays": ["saturday", "sunday"]}]},
    )


def test_rule_file_scopes_every_rule_and_labels_it_with_the_tenant(tmp_path):
    text = render_rule_file("acme", GROUPS)
    document = yaml.safe_load(text)
    assert [g["name"] for g in document["groups"]] == ["acme/api"]  # empty groups are left out
    rules = document["groups"][0]["rules"]
    assert all(rule["labels"]["tenant"] == "acme" for rule in rules)
    assert 'tenant="acme"' in rules[0]["expr"]
    assert rules[0]["labels"]["severity"] == "P1" and rules[0]["labels"]["team"] == "web"
    assert rules[0]["for"] == "5m" and rules[0]["keep_firing_for"] == "2m"
    assert rules[1]["expr"] == "vector(1)"
    path = tmp_path / "acme.yml"
    path.write_text(text)
    result = subprocess.run(
        [_tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rendering_is_deterministic():
    assert content_hash(render_rule_file("acme", GROUPS)) == content_hash(
        render_rule_file("acme", GROUPS)
    )


def test_alertmanager_config_routes_each_tenant_to_its_own_receivers(tmp_path):
    fragments = {s: render_tenant_fragment(_tenant(s)) for s in ("acme", "globex")}
    text = render_alertmanager_config(fragments)
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    amtool = _tool("amtool")
    check = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    def receivers_for(*labels: str) -> str:
        result = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={path}", *labels],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert receivers_for("tenant=acme", "severity=P0") == "acme__portal,acme__P0"
    assert receivers_for("tenant=globex", "severity=P3") == "globex__portal,globex__P3"
    assert receivers_for("tenant=evil", "severity=P0") == "unrouted"
    assert receivers_for("severity=P0") == "unrouted"


def test_relayed_receivers_call_the_portal_with_the_tenant_secret():
    fragment = render_tenant_fragment(_tenant("acme"))
    p0 = next(r for r in fragment["receivers"] if r["name"] == "acme__P0")
    relayed = [c for c in p0["webhook_configs"] if "/relay/" in c["url"]]
    assert {c["url"] for c in relayed} == {
        "http://localhost:8000/hooks/alertmanager/acme-id/relay/r4/",
        "http://localhost:8000/hooks/alertmanager/acme-id/relay/r5/",
    }
    assert all(c["http_config"]["authorization"]["credentials"] == "s3cret" for c in relayed)
    assert p0["slack_configs"][0]["api_url"].startswith("https://")
    assert p0["pagerduty_configs"][0]["routing_key"] == "routing-key-1"
    inhibit = fragment["inhibit_rules"][0]
    assert inhibit["equal"] == ["alertname", "tenant"]
    assert 'tenant="acme"' in inhibit["source_matchers"]


def test_p3_email_receivers_get_the_digest_not_each_alert():
    tenant = _tenant("acme")
    both = tenant.receivers[0], tenant.receivers[2]  # slack and e-mail
    policies = (PolicySpec("P2", ("r1", "r3")), PolicySpec("P3", ("r1", "r3")))
    fragment = render_tenant_fragment(
        dataclasses.replace(tenant, receivers=both, policies=policies)
    )
    by_name = {r["name"]: r for r in fragment["receivers"]}
    assert "email_configs" not in by_name["acme__P3"]
    assert by_name["acme__P3"]["slack_configs"][0]["channel"] == "#ops"
    assert by_name["acme__P2"]["email_configs"][0]["to"] == "ops@example.com"
