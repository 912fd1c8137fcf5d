"""A firing rule's alert reaches its tenant's receivers for its severity, and no one else's.

Everything between the rule and the provider is real: Prometheus evaluates the rule the portal
wrote, Alertmanager routes with the configuration the portal wrote and sends Slack, PagerDuty,
webhook and e-mail itself; Teams and SMS go Alertmanager -> the portal's relay endpoint (the ASGI
server) -> Celery -> the provider. Providers are local sinks: an HTTP server standing in for
Slack, PagerDuty, Teams, the SMS API and webhooks (allowed through OUTBOUND_ALLOWED_HOSTS), and an
SMTP server for e-mail.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django_tenants.utils import tenant_context

from alerts import digest as incident_digest
from alerts import notify, services, sync
from alerts.forms import AlertRuleForm, ReceiverForm
from alerts.models import (
    AlertingSettings,
    Incident,
    NotificationLog,
    NotificationPolicy,
    Receiver,
    SyncState,
)
from tests import alerting_fixtures
from tests.alerting_fixtures import (
    AlertingStack,
    HttpSink,
    actor,
    apply_settings,
    running_alerting_stack,
    running_http_sink,
    running_sync_worker,
)
from tests.conftest import wait_for
from tests.helpers import Mailbox, running_smtp

pytestmark = pytest.mark.timeout(240)
committed_alerting = alerting_fixtures.committed_alerting

SMS_TOKEN = "sms-provider-token"
FAST = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}


@dataclass
class Sinks(HttpSink):
    mailbox: Mailbox = None
    smtp_port: int = 0


@pytest.fixture(scope="module")
def sinks() -> Iterator[Sinks]:
    with running_http_sink() as sink, running_smtp() as (mailbox, smtp_port):
        yield Sinks(sink.http, mailbox, smtp_port)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, sinks, live_server_url) -> Iterator[AlertingStack]:
    port = live_server_url.rsplit(":", 1)[1]
    with running_alerting_stack(
        tmp_path_factory.mktemp("delivery"),
        OUTBOUND_ALLOWED_HOSTS=["127.0.0.1"],
        # Alertmanager calls the portal's intake and relay on the live ASGI server.
        ALERTMANAGER_WEBHOOK_BASE_URL=f"http://localhost:{port}",
        ALERTMANAGER_SMTP_SMARTHOST=f"127.0.0.1:{sinks.smtp_port}",
        ALERTMANAGER_SMTP_FROM="alerts@portal.test",
        ALERTMANAGER_SMTP_REQUIRE_TLS=False,
        SMS_API_URL=sinks.url("/sms/messages"),
        SMS_API_TOKEN=SMS_TOKEN,
        SMS_FROM="+15550000",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def worker(stack, process_env, tmp_path_factory) -> Iterator[None]:
    log = tmp_path_factory.mktemp("delivery-worker") / "worker.log"
    with running_sync_worker({**process_env, **stack.environment()}, log):
        yield


@pytest.fixture
def wired(settings, stack, worker) -> AlertingStack:
    apply_settings(settings, stack)
    return stack


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def add_receiver(kind: str, secret: str = "", **fields) -> Receiver:
    """Through the form (URLs are checked) and the services, in the current tenant."""
    form = ReceiverForm({"name": unique(f"{kind}-"), "kind": kind, "secret": secret, **fields})
    assert form.is_valid(), form.errors
    data = form.cleaned_data
    return services.create_receiver(
        name=data["name"],
        kind=kind,
        settings=form.receiver_settings(),
        secret=data["secret"],
        actor=actor(),
    )


def set_policy(severity: str, receivers: list[Receiver]) -> None:
    services.update_policy(
        severity=severity,
        receivers=[str(r.public_id) for r in receivers],
        group_by=["alertname"],
        mute_timings=[],
        actor=actor(),
        **FAST,
    )


def set_up_receivers(tenant, sinks: Sinks, phone: str, email: str) -> dict[str, Receiver]:
    """Every kind of receiver, each to its own sink path; P0 to the paging ones, P2 to the
    webhook, P3 to e-mail (the seed's policy, with every kind configured)."""
    slug = tenant.schema_name
    with tenant_context(tenant):
        made = {
            "slack": add_receiver("slack", sinks.url(f"/{slug}/slack"), channel="#ops"),
            "pagerduty": add_receiver(
                "pagerduty", f"{slug}-routing-key", url=sinks.url(f"/{slug}/pagerduty")
            ),
            "msteams": add_receiver("msteams", sinks.url(f"/{slug}/teams")),
            "sms": add_receiver("sms", phone),
            "webhook": add_receiver("webhook", sinks.url(f"/{slug}/webhook")),
            "email": add_receiver("email", to=email),
        }
        set_policy("P0", [made[k] for k in ("pagerduty", "sms", "slack", "msteams")])
        set_policy("P1", [made["pagerduty"], made["slack"]])
        set_policy("P2", [made["webhook"]])
        set_policy("P3", [made["email"]])
    return made


def add_firing_rules(
    tenant,
    rules: dict[str, str],
    *,
    expr: str = "vector(1)",
    summary: str = "{name} is down",
    group_name: str | None = None,
) -> str:
    """Rules ({alert name: severity}) on `expr` (by default one that fires at once), saved
    through the rule form and synced to Prometheus; returns the group's name."""
    with tenant_context(tenant):
        group = services.create_group(
            name=group_name or unique("paging-"), interval="1s", actor=actor()
        )
        for name, severity in rules.items():
            form = AlertRuleForm(
                {
                    "kind": "alert",
                    "name": name,
                    "expr": expr,
                    "for_duration": "",
                    "severity": severity,
                    "category": "availability",
                    "annotations": {"summary": summary.format(name=name)},
                    "enabled": True,
                },
                schema=tenant.schema_name,
            )
            assert form.is_valid(), form.errors
            services.create_rule(group_id=group.public_id, actor=actor(), **form.cleaned_data)
        assert sync.sync_rules(tenant).status == SyncState.Status.SYNCED
    return group.name


def mentions(bodies: list[dict], text: str) -> list[dict]:
    return [b for b in bodies if text in json.dumps(b)]


def test_a_firing_alert_reaches_its_tenants_receivers_by_severity_and_no_one_else(
    wired, sinks, committed_alerting
):
    acme, globex = committed_alerting["acme"], committed_alerting["globex"]
    made_acme = set_up_receivers(acme, sinks, phone="+15550101", email="oncall@acme.example")
    set_up_receivers(globex, sinks, phone="+15550202", email="oncall@globex.example")
    results = sync.sync_alertmanager()
    assert {s: r.status for s, r in results.items()} == {"acme": "synced", "globex": "synced"}

    page, digest = unique("AcmeCheckoutDown"), unique("AcmeNightlyDigest")
    add_firing_rules(acme, {page: "P0", digest: "P3"})

    # P0: PagerDuty, Slack (Alertmanager's own), Teams and SMS (relayed by the portal).
    pagerduty = wait_for(
        lambda: mentions(sinks.bodies("/acme/pagerduty"), page),
        timeout=60,
        message="the P0 alert at acme's PagerDuty",
    )
    assert pagerduty[0]["routing_key"] == "acme-routing-key"
    assert pagerduty[0]["event_action"] == "trigger"
    slack = wait_for(
        lambda: mentions(sinks.bodies("/acme/slack"), page),
        timeout=30,
        message="the P0 alert at acme's Slack",
    )
    assert slack[0]["channel"] == "#ops"
    teams = wait_for(
        lambda: mentions(sinks.bodies("/acme/teams"), page),
        timeout=30,
        message="the P0 alert relayed to acme's Teams",
    )
    assert teams[0]["@type"] == "MessageCard"
    assert teams[0]["title"].startswith(f"[FIRING] P0 {page}")
    sms = wait_for(
        lambda: mentions(sinks.bodies("/sms/messages"), page),
        timeout=30,
        message="the P0 alert relayed as an SMS",
    )
    assert [(m["to"], m["from"]) for m in sms] == [("+15550101", "+15550000")]
    sms_request = next(r for r, _ in sinks.http.log if r.path == "/sms/messages")
    assert sms_request.headers["Authorization"] == f"Bearer {SMS_TOKEN}"

    # P3: recorded as an incident and told by the portal's e-mail digest, not alert by alert.
    with tenant_context(acme):
        incident = wait_for(
            lambda: Incident.objects.filter(alertname=digest).first(),
            timeout=60,
            message="the P3 incident at acme",
        )
        settings_row = AlertingSettings.objects.get()
        kept = settings_row.digest_sent_until
        # The period starts just before the incident, whatever earlier tests left.
        AlertingSettings.objects.filter(pk=settings_row.pk).update(
            digest_sent_until=incident.created_at - timedelta(seconds=1)
        )
        try:
            outcome = incident_digest.send_digest(
                now=incident.created_at + incident_digest.interval()
            )
        finally:
            AlertingSettings.objects.filter(pk=settings_row.pk).update(digest_sent_until=kept)
    assert outcome.sent == [made_acme["email"].name] and not outcome.failed
    digests = [
        m
        for m in sinks.mailbox.to("oncall@acme.example")
        if "P3 digest" in m["Subject"] and digest in m.get_payload(decode=True).decode()
    ]
    assert len(digests) == 1 and digests[0]["Subject"].startswith(f"[{acme.name}] P3 digest")
    assert not [m for m in sinks.mailbox.to("oncall@acme.example") if digest in m["Subject"]]
    assert not mentions(sinks.bodies("/acme/slack"), digest)
    assert not mentions(sinks.bodies("/acme/pagerduty"), digest)
    assert not any(page in m["Subject"] for m in sinks.mailbox.to("oncall@acme.example"))
    # P2's webhook is for neither alert.
    assert not sinks.bodies("/acme/webhook")

    # Globex's receivers heard nothing of acme's alerts.
    assert not [p for p in sinks.paths() if p.startswith("/globex/")]
    assert not mentions(sinks.bodies("/sms/messages"), "+15550202")
    assert sinks.mailbox.to("oncall@globex.example") == []

    # Every relayed notification is logged with the provider's answer.
    with tenant_context(acme):

        def both_logged():
            rows = list(
                NotificationLog.objects.filter(reason__contains=page).values_list(
                    "kind", "outcome", "detail"
                )
            )
            # Teams and SMS are relayed by separate tasks: wait for both, not the first.
            return rows if len({kind for kind, *_ in rows}) >= 2 else None

        logged = wait_for(
            both_logged, timeout=20, message="the relayed notifications in acme's log"
        )
    assert sorted((kind, outcome) for kind, outcome, _ in logged) == [
        ("msteams", "sent"),
        ("sms", "sent"),
    ]
    assert all(detail.startswith("HTTP 200") for *_, detail in logged)


def test_globex_alerts_reach_globex_only(wired, sinks, committed_alerting):
    acme, globex = committed_alerting["acme"], committed_alerting["globex"]
    set_up_receivers(acme, sinks, phone="+15550111", email="team@acme.example")
    set_up_receivers(globex, sinks, phone="+15550222", email="team@globex.example")
    assert {r.status for r in sync.sync_alertmanager().values()} == {"synced"}
    before = len(sinks.http.log)
    warning = unique("GlobexQueueSlow")
    add_firing_rules(globex, {warning: "P2"})

    webhook = wait_for(
        lambda: mentions(sinks.bodies("/globex/webhook"), warning),
        timeout=60,
        message="globex's P2 alert at its webhook",
    )
    assert webhook[0]["status"] == "firing"
    assert webhook[0]["commonLabels"]["tenant"] == "globex"
    assert webhook[0]["commonLabels"]["severity"] == "P2"
    later = [(r.path, r.get_data(as_text=True)) for r, _ in list(sinks.http.log)[before:]]
    assert not [path for path, body in later if path.startswith("/acme/") and warning in body]
    assert not mentions(sinks.bodies("/sms/messages"), warning)
    assert not mentions(sinks.bodies("/globex/slack"), warning)


def test_a_test_notification_shows_the_providers_answer(wired, sinks, committed_alerting):
    acme = committed_alerting["acme"]
    with tenant_context(acme):
        receiver = add_receiver("slack", sinks.url("/acme/slack-test"))
        log = notify.send_and_log(
            receiver, title="Test notification", text="from the portal", reason="test"
        )
        assert (log.outcome, log.detail) == ("sent", "HTTP 200 ok")
        assert NotificationLog.objects.filter(pk=log.pk, receiver=receiver).exists()
    assert sinks.bodies("/acme/slack-test") == [{"text": "*Test notification*\nfrom the portal"}]


def test_the_default_policy_sends_nothing_until_receivers_are_configured(wired, committed_alerting):
    acme = committed_alerting["acme"]
    with tenant_context(acme):
        defaults = {
            str(r.public_id): r
            for r in Receiver.objects.filter(name__in=[n for n, _ in services.DEFAULT_RECEIVERS])
        }
        assert len(defaults) == 5
        assert {(r.enabled, r.secret) for r in defaults.values()} == {(False, None)}
        rendered = sync.tenant_alerting(acme)
        assert not {r.id for r in rendered.receivers} & set(defaults)
        assert sorted(p.severity for p in rendered.policies) == ["P0", "P1", "P2", "P3"]
        assert all(p.receiver_ids == () for p in rendered.policies)
        assert NotificationPolicy.objects.count() == 4


# ---- the portal's webhooks, called as Alertmanager calls them ------------------------------------


def alertmanager_body(schema: str, name: str = "DiskFull", **alert) -> bytes:
    """A notification in Alertmanager's webhook format (version 4)."""
    return json.dumps(
        {
            "version": "4",
            "status": "firing",
            "receiver": f"{schema}__P0",
            "groupKey": f'{{}}:{{alertname="{name}"}}',
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": name, "tenant": schema, "severity": "P0"},
                    "annotations": {"summary": f"{name} on db-1"},
                    "startsAt": "2026-11-27T10:00:00.000Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "fingerprint": "c0ffee",
                    **alert,
                }
            ],
        }
    ).encode()


def post_hook(path: str, body: bytes, secret: str | None):
    from django.test import Client

    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret is not None else {}
    client = Client(HTTP_HOST="localhost")
    return client.post(path, body, content_type="application/json", **headers)


def intake_secret(tenant) -> str:
    from alerts.models import AlertingSettings

    with tenant_context(tenant):
        return AlertingSettings.objects.get().webhook_secret


def test_the_intake_takes_its_tenants_alerts_with_its_secret(acme):
    response = post_hook(
        f"/hooks/alertmanager/{acme.public_id}/", alertmanager_body("acme"), intake_secret(acme)
    )
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "opened": 1, "resolved": 0, "unchanged": 0}


@pytest.mark.parametrize("secret", [None, "wrong", ""])
def test_the_intake_refuses_a_missing_or_wrong_secret(acme, secret):
    path = f"/hooks/alertmanager/{acme.public_id}/"
    response = post_hook(path, alertmanager_body("acme"), secret)
    assert response.status_code == 401
    assert "bearer" in response.json()["detail"]


def test_one_tenants_secret_does_not_open_another_tenants_intake(acme, globex):
    response = post_hook(
        f"/hooks/alertmanager/{globex.public_id}/",
        alertmanager_body("globex"),
        intake_secret(acme),
    )
    assert response.status_code == 401


def test_an_alert_naming_another_tenant_is_refused(acme):
    response = post_hook(
        f"/hooks/alertmanager/{acme.public_id}/", alertmanager_body("globex"), intake_secret(acme)
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "alerts[0].labels.tenant does not name this tenant"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"not json", "the body is not JSON"),
        (b'{"version": "3"}', 'version must be "4"'),
    ],
)
def test_a_malformed_notification_is_refused_with_the_reason(acme, body, detail):
    response = post_hook(f"/hooks/alertmanager/{acme.public_id}/", body, intake_secret(acme))
    assert response.status_code == 400
    assert response.json()["detail"].startswith(detail)


def test_an_unknown_intake_is_not_found(db):
    response = post_hook(f"/hooks/alertmanager/{uuid.uuid4()}/", alertmanager_body("acme"), "x")
    assert response.status_code == 404


def test_the_relay_sends_teams_on_and_logs_the_providers_answer(acme, settings, eager_tasks, sinks):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    with tenant_context(acme):
        teams = add_receiver("msteams", sinks.url("/relay-test/teams"))
    path = f"/hooks/alertmanager/{acme.public_id}/relay/{teams.public_id}/"

    response = post_hook(path, alertmanager_body("acme", "RelayCheck"), intake_secret(acme))

    assert response.status_code == 202
    (card,) = sinks.bodies("/relay-test/teams")
    assert card["title"] == "[FIRING] P0 RelayCheck"
    assert card["text"] == "RelayCheck on db-1"
    with tenant_context(acme):
        (log,) = NotificationLog.objects.filter(receiver=teams)
    assert (log.kind, log.outcome, log.alert_status) == ("msteams", "sent", "firing")


def test_the_relay_refuses_a_receiver_it_does_not_relay(acme, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    with tenant_context(acme):
        slack = add_receiver("slack", "http://127.0.0.1:9/slack")
    path = f"/hooks/alertmanager/{acme.public_id}/relay/{slack.public_id}/"
    response = post_hook(path, alertmanager_body("acme"), intake_secret(acme))
    assert response.status_code == 404


def test_the_relay_answers_503_when_its_queue_is_unreachable_so_alertmanager_retries(
    acme, settings, monkeypatch
):
    from kombu.exceptions import OperationalError

    from alerts import tasks

    def refused(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.deliver_relayed_notification, "delay", refused)
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    with tenant_context(acme):
        teams = add_receiver("msteams", "http://127.0.0.1:9/teams")
    path = f"/hooks/alertmanager/{acme.public_id}/relay/{teams.public_id}/"
    response = post_hook(path, alertmanager_body("acme"), intake_secret(acme))
    assert response.status_code == 503
    assert response.json() == {"detail": "The relay queue is unreachable; retry later."}
