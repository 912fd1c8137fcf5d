"""Automated compliance checks, each passing and failing on a tenant's real state."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone
from django_tenants.utils import tenant_context

from alerts import services
from alerts.models import (
    AlertRule,
    Incident,
    NotificationPolicy,
    Receiver,
    RuleGroup,
    SyncState,
)
from compliance import checks
from compliance.assessment import run_checks
from compliance.models import ChainVerification, ControlStatus, Source, Status, StatusChange
from dashboards.services import create_dashboard
from tenants import audit
from tenants.models import AuditEvent

pytestmark = pytest.mark.django_db

ACTOR = audit.Actor.system("test data")


@pytest.fixture
def in_acme(acme):
    with tenant_context(acme):
        yield acme


def test_p0_must_page_through_an_enabled_receiver_with_its_secret(in_acme):
    # The seeded policy names PagerDuty and SMS, but they wait for their secrets.
    result = checks.p0_paging_route(in_acme)
    assert result.status == Status.FAILING
    assert "disabled or have no secret" in result.reason

    pager = Receiver.objects.get(kind="pagerduty")
    pager.enabled, pager.secret = True, "routing-key-0123456789"
    pager.save()
    result = checks.p0_paging_route(in_acme)
    assert result.status == Status.PASSING
    assert pager.name in result.reason

    p0 = NotificationPolicy.objects.get(severity="P0")
    p0.receivers.set(Receiver.objects.filter(kind="slack"))
    assert "no paging receiver" in checks.p0_paging_route(in_acme).reason
    p0.delete()
    assert checks.p0_paging_route(in_acme).reason == (
        "There is no notification policy for P0 alerts."
    )


def _rule(group: RuleGroup, name: str, expr: str, **extra) -> AlertRule:
    return AlertRule.objects.create(
        group=group, name=name, expr=expr, severity="P1", category="security", **extra
    )


def test_failed_sign_in_and_privilege_change_rules_must_exist_and_be_enabled(in_acme):
    AlertRule.objects.all().delete()
    group = RuleGroup.objects.create(name="security-compliance-test")
    result = checks.security_alert_rules(in_acme)
    assert result.status == Status.FAILING
    assert "failed sign-ins" in result.reason and "privilege changes" in result.reason

    _rule(group, "FailedLoginBurst", "sum(rate(portal_failed_logins_total[5m])) > 10")
    result = checks.security_alert_rules(in_acme)
    assert result.status == Status.FAILING
    assert "failed sign-ins" not in result.reason and "privilege changes" in result.reason

    privilege = _rule(group, "PrivilegeChange", "increase(portal_role_changes_total[5m]) > 0")
    assert checks.security_alert_rules(in_acme).status == Status.PASSING

    privilege.enabled = False
    privilege.save()
    assert checks.security_alert_rules(in_acme).status == Status.FAILING


def test_backend_sync_must_be_healthy(in_acme):
    SyncState.objects.all().delete()
    assert checks.backend_sync_healthy(in_acme).status == Status.NOT_ASSESSED

    now = timezone.now()
    rules = SyncState.objects.create(
        target="prometheus_rules", status="synced", last_success_at=now, changed_at=now
    )
    SyncState.objects.create(
        target="alertmanager", status="synced", last_success_at=now, changed_at=now
    )
    assert checks.backend_sync_healthy(in_acme).status == Status.PASSING

    rules.status, rules.error = "failed", "promtool: bad rule file"
    rules.save()
    result = checks.backend_sync_healthy(in_acme)
    assert result.status == Status.FAILING
    assert "promtool: bad rule file" in result.reason

    rules.status, rules.changed_at = "pending", now - timedelta(hours=1)
    rules.save()
    assert "pending since" in checks.backend_sync_healthy(in_acme).reason


def _incident(fingerprint: str, severity: str, started_ago: timedelta, **times) -> Incident:
    now = timezone.now()
    return Incident.objects.create(
        fingerprint=fingerprint,
        started_at=now - started_ago,
        alertname="CheckProbe",
        severity=severity,
        **{name: now - ago for name, ago in times.items()},
    )


def test_incident_acknowledgement_is_measured_against_the_tenants_targets(in_acme):
    # Incidents other tests committed are moved out of the window (in this test's transaction).
    Incident.objects.update(started_at=F("started_at") - timedelta(days=60))
    assert checks.incident_ack_within_target(in_acme).status == Status.NOT_ASSESSED

    # P0 target 5 min (default): acknowledged after 3 min, and one that cleared after 2 min.
    _incident("a", "P0", timedelta(minutes=10), acknowledged_at=timedelta(minutes=7))
    _incident("b", "P0", timedelta(minutes=10), resolved_at=timedelta(minutes=8))
    result = checks.incident_ack_within_target(in_acme)
    assert result.status == Status.PASSING, result.reason
    assert "All 2 incidents" in result.reason

    # Unacknowledged for 10 minutes: late against 5, in time against a 15-minute target.
    _incident("c", "P0", timedelta(minutes=10))
    result = checks.incident_ack_within_target(in_acme)
    assert result.status == Status.FAILING
    assert "1 of 3 incidents" in result.reason
    services.update_ack_targets(targets={"P0": 15, "P1": 15, "P2": 60, "P3": 60}, actor=ACTOR)
    assert checks.incident_ack_within_target(in_acme).status == Status.PASSING


def test_the_audit_chain_must_have_verified_within_a_day(in_acme):
    ChainVerification.objects.all().delete()
    assert checks.audit_chain_verified(in_acme).status == Status.NOT_ASSESSED

    now = timezone.now()
    ChainVerification.objects.create(checked_at=now - timedelta(hours=25), ok=True, rows=5)
    result = checks.audit_chain_verified(in_acme)
    assert (result.status, "over 24 hours ago" in result.reason) == (Status.FAILING, True)

    ChainVerification.objects.create(checked_at=now, ok=True, rows=7, last_seq=7)
    assert checks.audit_chain_verified(in_acme).status == Status.PASSING

    ChainVerification.objects.create(
        checked_at=now + timedelta(seconds=1), ok=False, rows=3, bad_seq=4, problem="broken link"
    )
    result = checks.audit_chain_verified(in_acme)
    assert result.status == Status.FAILING
    assert "event 4: broken link" in result.reason


def test_every_admin_must_have_a_confirmed_authenticator_app(in_acme):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tenants.models import Membership

    result = checks.admin_two_factor(in_acme)
    assert result.status == Status.FAILING
    assert "no confirmed authenticator app" in result.reason

    admins = [m.user for m in Membership.objects.filter(tenant=in_acme, role="admin")]
    for user in admins:
        TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    assert checks.admin_two_factor(in_acme).status == Status.FAILING  # set up, never confirmed
    TOTPDevice.objects.filter(user__in=admins).update(confirmed=True)
    result = checks.admin_two_factor(in_acme)
    assert result.status == Status.PASSING, result.reason


def test_receiver_secrets_must_be_stored_encrypted(in_acme, monkeypatch):
    assert checks.receiver_secrets_encrypted(in_acme).status == Status.PASSING
    # A secret kept in a plain column would fail: the check reads the field classes.
    monkeypatch.setattr(
        checks, "SECRET_FIELDS", [*checks.SECRET_FIELDS, ("alerts", "Receiver", "secret_hint")]
    )
    result = checks.receiver_secrets_encrypted(in_acme)
    assert result.status == Status.FAILING
    assert "Receiver.secret_hint" in result.reason


def test_retention_must_be_configured_for_metrics_and_audit(in_acme, settings):
    from dashboards.models import MetricSettings

    if hasattr(settings, "AUDIT_RETENTION_DAYS"):
        del settings.AUDIT_RETENTION_DAYS
    result = checks.retention_configured(in_acme)
    assert result.status == Status.NOT_ASSESSED
    assert "AUDIT_RETENTION_DAYS" in result.reason

    settings.AUDIT_RETENTION_DAYS = 400
    MetricSettings.objects.all().delete()
    MetricSettings.objects.create(pk=1, retention_days=90)
    assert checks.retention_configured(in_acme).status == Status.PASSING

    MetricSettings.objects.filter(pk=1).update(retention_days=7)
    assert "metric retention 7 d" in checks.retention_configured(in_acme).reason
    MetricSettings.objects.filter(pk=1).update(retention_days=90)
    settings.AUDIT_RETENTION_DAYS = 30
    assert checks.retention_configured(in_acme).status == Status.FAILING


def test_a_security_dashboard_must_exist(in_acme):
    from dashboards.models import Dashboard

    Dashboard.objects.filter(title__icontains="security").delete()
    assert checks.security_dashboard_present(in_acme).status == Status.FAILING
    create_dashboard(title="Security overview", actor=ACTOR)
    result = checks.security_dashboard_present(in_acme)
    assert result.status == Status.PASSING
    assert "Security overview" in result.reason


def test_a_crashing_check_is_not_assessed_and_the_others_still_run(in_acme, monkeypatch):
    def broken(tenant):
        raise RuntimeError("boom")

    monkeypatch.setitem(checks.CHECKS, "security_dashboard_present", broken)
    outcome = run_checks(in_acme)
    assert outcome["MON-03"] == Status.NOT_ASSESSED
    assert outcome["CRY-01"] == Status.PASSING


def test_running_the_checks_records_statuses_history_and_audit_once(in_acme):
    before = AuditEvent.objects.filter(tenant=in_acme, action="compliance.status_changed").count()
    outcome = run_checks(in_acme)
    automated = ControlStatus.objects.filter(source=Source.AUTOMATED)
    assert {s.control_code: s.status for s in automated} == outcome
    assert outcome["IR-01"] == Status.FAILING
    assert outcome["IAM-01"] == Status.FAILING  # the seeded admins have no authenticator app
    changes = StatusChange.objects.count()
    events = AuditEvent.objects.filter(tenant=in_acme, action="compliance.status_changed").count()
    assert changes == len(outcome) == events - before

    run_checks(in_acme)  # nothing changed: nothing new recorded
    assert StatusChange.objects.count() == changes
