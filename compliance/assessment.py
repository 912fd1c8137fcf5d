"""A tenant's assessment run: verify the audit chain, run the checks, expire attestations and
record today's snapshot. Run by the beat task per tenant and on demand from the overview."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from compliance import catalog, services
from compliance.checks import run_check
from compliance.models import ChainVerification, ComplianceSnapshot
from compliance.scoring import framework_scores
from tenants import audit, audit_chain

logger = logging.getLogger(__name__)

# A chain verified this recently is not walked again by an hourly run.
REVERIFY_AFTER = timedelta(hours=6)


def verify_audit_chain(tenant, *, force: bool = False) -> ChainVerification:
    """Walk the tenant's audit chain and keep the outcome (a recent one is reused)."""
    last = services.latest_chain_verification()
    if not force and last is not None and timezone.now() - last.checked_at < REVERIFY_AFTER:
        return last
    result = audit_chain.verify_chain(tenant)
    if not result.ok:
        logger.error(
            "audit chain %s failed verification at seq %s: %s",
            tenant.slug,
            result.bad_seq,
            result.problem,
        )
        _raise_chain_incident(result)
    return ChainVerification.objects.create(
        checked_at=timezone.now(),
        ok=result.ok,
        rows=result.rows,
        last_seq=result.last_seq,
        bad_seq=result.bad_seq,
        problem=(result.problem + (f": {result.detail}" if result.detail else ""))[:200],
    )


def _raise_chain_incident(result) -> None:
    """A broken audit chain is a P0 security incident (one while it stays open)."""
    from alerts.services import raise_portal_incident

    raise_portal_incident(
        alertname="AuditChainVerificationFailed",
        summary=(
            f"The audit trail failed verification at event {result.bad_seq}: {result.problem}. "
            "Events may have been altered or removed outside the portal."
        ),
        severity="P0",
        category="security",
        actor=audit.Actor.system("audit chain verification"),
    )


def run_checks(tenant) -> dict[str, str]:
    """Run every automated check and record its controls' statuses; control code -> status."""
    actor = audit.Actor.system("compliance checks")
    outcome: dict[str, str] = {}
    results: dict[str, object] = {}
    for control in catalog.controls():
        if not control.automated:
            continue
        if control.check_name not in results:
            results[control.check_name] = run_check(control.check_name, tenant)
        result = results[control.check_name]
        services.record_check_result(
            control_code=control.code, status=result.status, reason=result.reason, actor=actor
        )
        outcome[control.code] = result.status
    return outcome


def _chain_head_seq(tenant) -> int | None:
    head = audit_chain.latest_head(tenant)
    return None if head is None else head.seq


@transaction.atomic
def take_snapshots(tenant, *, day: date | None = None) -> list[ComplianceSnapshot]:
    """Today's score per framework (a later run the same day replaces it)."""
    day = day or timezone.localdate()
    statuses = services.statuses()
    controls = catalog.controls()
    verification = services.latest_chain_verification()
    head_seq = _chain_head_seq(tenant)
    snapshots = []
    for score in framework_scores(catalog.frameworks(), controls, statuses):
        snapshot, _ = ComplianceSnapshot.objects.update_or_create(
            framework_code=score.framework.code,
            day=day,
            defaults={
                "passing": score.passing,
                "failing": score.failing,
                "not_assessed": score.not_assessed,
                "not_applicable": score.not_applicable,
                "score": score.score,
                "chain_ok": None if verification is None else verification.ok,
                "chain_head_seq": head_seq,
                "taken_at": timezone.now(),
            },
        )
        snapshots.append(snapshot)
    return snapshots


@dataclass(frozen=True)
class AssessmentOutcome:
    checked: int
    expired: int
    chain_ok: bool
    snapshots: int
    at: datetime


def assess(tenant, *, force_chain: bool = False) -> AssessmentOutcome:
    """The whole run, in the current tenant's schema."""
    verification = verify_audit_chain(tenant, force=force_chain)
    checked = run_checks(tenant)
    expired = services.expire_attestations()
    snapshots = take_snapshots(tenant)
    return AssessmentOutcome(
        checked=len(checked),
        expired=len(expired),
        chain_ok=verification.ok,
        snapshots=len(snapshots),
        at=timezone.now(),
    )
