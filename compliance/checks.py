"""Automated checks: small functions over the tenant's own state, each named by catalog controls.

A check answers passing or failing only from state it can see; when the app or setting it reads
is not there, it answers not assessed (never passing). Alerting state is read through
`alerts.services`; only incident times and secret field types are read from its models.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from compliance.models import Status
from compliance.services import latest_chain_verification

logger = logging.getLogger(__name__)

CHAIN_VERIFIED_WITHIN = timedelta(hours=24)
SYNC_PENDING_GRACE = timedelta(minutes=15)
INCIDENT_WINDOW = timedelta(days=30)
MIN_AUDIT_RETENTION_DAYS = 365
MIN_METRIC_RETENTION_DAYS = 30
PAGING_KINDS = ("pagerduty", "sms")
# Words that mark a rule as watching sign-in failures, or privilege changes (name, expression,
# labels and annotations are searched, lower-case).
FAILED_LOGIN_WORDS = ("failed_login", "login_fail", "signin_fail", "sign_in_fail", "auth_fail")
PRIVILEGE_WORDS = ("privilege", "role_change", "role_changed", "admin_grant")
# Model fields that must hold secrets encrypted at rest: (app, model, field).
SECRET_FIELDS = [
    ("alerts", "Receiver", "secret"),
    ("alerts", "AlertingSettings", "webhook_secret"),
]


@dataclass(frozen=True)
class CheckResult:
    status: str
    reason: str


def passing(reason: str) -> CheckResult:
    return CheckResult(Status.PASSING, reason)


def failing(reason: str) -> CheckResult:
    return CheckResult(Status.FAILING, reason)


def not_assessed(reason: str) -> CheckResult:
    return CheckResult(Status.NOT_ASSESSED, reason)


Check = Callable[[object], CheckResult]
CHECKS: dict[str, Check] = {}


def check(name: str) -> Callable[[Check], Check]:
    """Register a check under the name the catalog's controls use."""

    def register(function: Check) -> Check:
        CHECKS[name] = function
        return function

    return register


def _model(app: str, name: str):
    """The model if its app is installed and has it, else None."""
    if not apps.is_installed(app):
        return None
    try:
        return apps.get_model(app, name)
    except LookupError:
        return None


def _alerting():
    """Alerting's read functions, when the app is installed (never its models)."""
    if not apps.is_installed("alerts"):
        return None
    from alerts import services

    return services


@check("p0_paging_route")
def p0_paging_route(tenant) -> CheckResult:
    alerting = _alerting()
    if alerting is None:
        return not_assessed("Alerting is not installed.")
    receivers = alerting.policy_receivers("P0")
    if receivers is None:
        return failing("There is no notification policy for P0 alerts.")
    paging = [r for r in receivers if r["kind"] in PAGING_KINDS]
    if not paging:
        return failing("The P0 policy sends to no paging receiver (PagerDuty or SMS).")
    ready = [r["name"] for r in paging if r["ready"]]
    if not ready:
        names = ", ".join(r["name"] for r in paging)
        return failing(f"The P0 paging receivers ({names}) are disabled or have no secret set.")
    return passing(f"P0 alerts page through {', '.join(ready)}.")


def _rule_text(rule: dict) -> str:
    parts = [rule["name"], rule["expr"], str(rule["labels"]), str(rule["annotations"])]
    return " ".join(parts).lower().replace("-", "_")


@check("security_alert_rules")
def security_alert_rules(tenant) -> CheckResult:
    alerting = _alerting()
    if alerting is None:
        return not_assessed("Alerting is not installed.")
    rules = [_rule_text(r) for r in alerting.enabled_alert_rules()]
    missing = []
    if not any(word in text for text in rules for word in FAILED_LOGIN_WORDS):
        missing.append("failed sign-ins (e.g. a rule named failed_login…)")
    if not any(word in text for text in rules for word in PRIVILEGE_WORDS):
        missing.append("privilege changes (e.g. a rule named privilege_change…)")
    if missing:
        return failing("No enabled alert rule watches " + " or ".join(missing) + ".")
    return passing("Enabled alert rules watch failed sign-ins and privilege changes.")


@check("backend_sync_healthy")
def backend_sync_healthy(tenant) -> CheckResult:
    alerting = _alerting()
    if alerting is None:
        return not_assessed("Alerting is not installed.")
    states = alerting.sync_states()
    if not states or not any(s["last_success_at"] for s in states):
        return not_assessed("No backend has been synced yet (none connected?).")
    problems = []
    now = timezone.now()
    for state in states:
        if state["status"] == "failed":
            problems.append(f"{state['label']} failed: {state['error'][:200]}")
        elif (
            state["status"] == "pending"
            and state["changed_at"]
            and (now - state["changed_at"] > SYNC_PENDING_GRACE)
        ):
            problems.append(f"{state['label']} pending since {state['changed_at']:%c}")
    if problems:
        return failing("; ".join(problems))
    return passing("Every backend holds what the portal holds.")


@check("incident_ack_within_target")
def incident_ack_within_target(tenant) -> CheckResult:
    """Every incident of 30 days acknowledged (or over) within its severity's target, as the
    tenant set the targets on the incident desk."""
    from alerts.services import ack_targets, incident_times

    now = timezone.now()
    incidents = incident_times(now - INCIDENT_WINDOW)
    if not incidents:
        return not_assessed("No incidents in the last 30 days to measure.")
    targets = {s: timedelta(minutes=m) for s, m in ack_targets().items()}
    late = 0
    for incident in incidents:
        target = targets.get(incident["severity"], targets["P3"])
        # An alert that cleared before anyone had to answer it was not answered late.
        answered = incident["acknowledged_at"] or incident["resolved_at"] or now
        if answered - incident["started_at"] > target:
            late += 1
    total = len(incidents)
    if late:
        return failing(f"{late} of {total} incidents in 30 days were acknowledged late.")
    return passing(f"All {total} incidents of the last 30 days were acknowledged within target.")


@check("audit_chain_verified")
def audit_chain_verified(tenant) -> CheckResult:
    last = latest_chain_verification()
    if last is None:
        return not_assessed("The audit chain has not been verified yet.")
    if not last.ok:
        return failing(
            f"Verification on {last.checked_at:%Y-%m-%d %H:%M} UTC failed at event "
            f"{last.bad_seq}: {last.problem}."
        )
    if timezone.now() - last.checked_at > CHAIN_VERIFIED_WITHIN:
        return failing(f"Last verified {last.checked_at:%Y-%m-%d %H:%M} UTC, over 24 hours ago.")
    return passing(
        f"{last.rows} events verified on {last.checked_at:%Y-%m-%d %H:%M} UTC "
        f"(head {last.last_seq})."
    )


@check("admin_two_factor")
def admin_two_factor(tenant) -> CheckResult:
    if not apps.is_installed("django_otp") or not apps.is_installed("django_otp.plugins.otp_totp"):
        return not_assessed("Two-factor sign-in (django-otp) is not installed.")
    device_model = apps.get_model("otp_totp", "TOTPDevice")
    from tenants.models import Membership

    admins = Membership.objects.filter(tenant=tenant, role="admin", user__is_active=True)
    total = admins.count()
    if not total:
        # Never passing on no evidence: nobody administers who may sign in to this tenant.
        return failing("The tenant has no admin who can sign in.")
    with_app = device_model.objects.filter(confirmed=True).values("user_id")
    without = admins.exclude(user_id__in=with_app).count()
    required = ""
    if tenant.require_two_factor:
        required = " Two-factor sign-in is required for every member."
    if without:
        admins_word = ("admin" if total == 1 else "admins") + (" has" if without == 1 else " have")
        return failing(
            f"{without} of {total} {admins_word} no confirmed authenticator app "
            f"(two-factor sign-in).{required}"
        )
    both = "The admin has" if total == 1 else f"All {total} admins have"
    return passing(f"{both} a confirmed authenticator app (two-factor sign-in).{required}")


def _is_encrypted(field) -> bool:
    return any(cls.__module__.startswith("encrypted_fields") for cls in type(field).__mro__)


@check("receiver_secrets_encrypted")
def receiver_secrets_encrypted(tenant) -> CheckResult:
    plain, seen = [], 0
    for app, name, field_name in SECRET_FIELDS:
        model = _model(app, name)
        if model is None:
            continue
        seen += 1
        if not _is_encrypted(model._meta.get_field(field_name)):
            plain.append(f"{name}.{field_name}")
    if not seen:
        return not_assessed("Alerting is not installed.")
    if plain:
        return failing(f"Stored in plain text: {', '.join(plain)}.")
    return passing("Receiver and intake secrets are encrypted at rest.")


@check("retention_configured")
def retention_configured(tenant) -> CheckResult:
    settings_model = _model("dashboards", "MetricSettings")
    audit_days = getattr(settings, "AUDIT_RETENTION_DAYS", None)
    missing = []
    if settings_model is None:
        missing.append("metric retention (no metric store)")
    if audit_days is None:
        missing.append("audit retention (AUDIT_RETENTION_DAYS unset)")
    if missing:
        return not_assessed("Not configured: " + "; ".join(missing) + ".")
    row = settings_model.objects.first()
    metric_days = row.retention_days if row else None
    problems = []
    if metric_days is None or metric_days < MIN_METRIC_RETENTION_DAYS:
        problems.append(f"metric retention {metric_days} d < {MIN_METRIC_RETENTION_DAYS} d")
    if audit_days and 0 < int(audit_days) < MIN_AUDIT_RETENTION_DAYS:
        problems.append(f"audit retention {audit_days} d < {MIN_AUDIT_RETENTION_DAYS} d")
    if problems:
        return failing("; ".join(problems) + ".")
    audit_text = "kept for ever" if not audit_days else f"{audit_days} d"
    return passing(f"Metrics kept {metric_days} d, audit events {audit_text}.")


@check("security_dashboard_present")
def security_dashboard_present(tenant) -> CheckResult:
    if not apps.is_installed("dashboards"):
        return not_assessed("Dashboards are not installed.")
    from dashboards.services import list_dashboards

    titles = [d.title for d in list_dashboards() if "security" in d.title.lower()]
    if not titles:
        return failing("No dashboard with “Security” in its title.")
    return passing(f"Security dashboard: {titles[0]}.")


def run_check(name: str, tenant) -> CheckResult:
    """One check's result; an unknown name or a crash is not assessed, with the reason."""
    function = CHECKS.get(name)
    if function is None:
        return not_assessed(f"No automated check named {name!r}.")
    try:
        with transaction.atomic():  # a savepoint: a failed query must not end the caller's
            return function(tenant)
    except Exception as exc:  # one broken check must not stop the others
        logger.exception("compliance check %s failed", name)
        return not_assessed(f"The check could not run: {type(exc).__name__}.")
