"""Writes to a tenant's compliance state, each with its audit event. Callers run inside the
tenant's schema; pages, the admin, tasks and commands all write through here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from django.apps import apps
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from compliance import catalog
from compliance.actions import AuditAction
from compliance.evidence import checked_link, checked_upload
from compliance.models import (
    ChainVerification,
    ControlStatus,
    Evidence,
    Source,
    Status,
    StatusChange,
)
from compliance.scoring import framework_scores, overall_score
from tenants import audit
from tenants.forms import check_field_text
from tenants.models import Membership

REASON_MAX = 2000
TITLE_MAX = 200
NOTE_MAX = 10_000
# Statuses a person may attest; "not assessed" is what an attestation turns back into.
ATTESTABLE = (Status.PASSING, Status.FAILING, Status.NOT_APPLICABLE)


def _live_control(code: str) -> catalog.ControlInfo:
    info = catalog.control(code)
    if info is None:
        raise ValidationError({"control": [f"There is no control {code!r} in the catalog."]})
    return info


def _locked_status(code: str) -> ControlStatus:
    status, _ = ControlStatus.objects.select_for_update().get_or_create(
        control_code=code, defaults={"updated_at": timezone.now()}
    )
    return status


def _snapshot(status: ControlStatus) -> dict:
    return {
        "status": status.status,
        "source": status.source,
        "reason": status.reason,
        "expires_at": status.expires_at,
    }


def _apply(
    status: ControlStatus,
    *,
    new_status: str,
    source: str,
    reason: str,
    expires_at: datetime | None,
    actor: audit.Actor,
    action: AuditAction,
) -> bool:
    """Write a status and its history row; False (nothing written) when nothing changes."""
    before = _snapshot(status)
    previous = status.status
    status.status, status.source, status.reason = new_status, source, reason
    status.expires_at = expires_at
    if _snapshot(status) == before:
        return False
    now = timezone.now()
    status.updated_at = now
    status.updated_by = actor.label
    status.save()
    StatusChange.objects.create(
        control_code=status.control_code,
        status=new_status,
        previous_status=previous,
        source=source,
        reason=reason,
        changed_at=now,
        changed_by=actor.label,
    )
    audit.record(
        actor=actor,
        action=action,
        obj=status,
        object_id=status.control_code,
        before=before,
        after=_snapshot(status),
    )
    return True


@transaction.atomic
def record_check_result(
    *, control_code: str, status: str, reason: str, actor: audit.Actor
) -> ControlStatus:
    """An automated check's outcome; audited only when the status or its reason changes."""
    if status not in Status.values:
        raise ValidationError({"status": [f"{status!r} is not a status."]})
    current = _locked_status(_live_control(control_code).code)
    _apply(
        current,
        new_status=status,
        source=Source.AUTOMATED,
        reason=reason[:REASON_MAX],
        expires_at=None,
        actor=actor,
        action=AuditAction.STATUS_CHANGED,
    )
    return current


def check_attestation(
    *, control_code: str, status: str, reason: str, expires_at: datetime | None
) -> tuple[catalog.ControlInfo, str]:
    """The control and cleaned reason of an acceptable attestation, or ValidationError."""
    info = _live_control(control_code)
    if info.automated:
        raise ValidationError(
            {"control": [f"{info.code} is measured by an automated check; add evidence instead."]}
        )
    if status not in ATTESTABLE:
        raise ValidationError({"status": ["Choose passing, failing or not applicable."]})
    reason = check_field_text("reason", reason, max_length=REASON_MAX, multiline=True)
    if not reason:
        raise ValidationError({"reason": ["Say why: an auditor reads this."]})
    if expires_at is None or expires_at <= timezone.now():
        raise ValidationError({"expires_at": ["The expiry must be in the future."]})
    return info, reason


@transaction.atomic
def attest(
    *,
    control_code: str,
    status: str,
    reason: str,
    expires_at: datetime,
    actor: audit.Actor,
) -> ControlStatus:
    """A person states where a manual control stands, until `expires_at`."""
    info, reason = check_attestation(
        control_code=control_code, status=status, reason=reason, expires_at=expires_at
    )
    current = _locked_status(info.code)
    _apply(
        current,
        new_status=status,
        source=Source.ATTESTATION,
        reason=reason,
        expires_at=expires_at,
        actor=actor,
        action=AuditAction.ATTESTED,
    )
    return current


@dataclass(frozen=True)
class ExpiredAttestation:
    control_code: str
    owner_email: str


@transaction.atomic
def expire_attestations(*, now: datetime | None = None) -> list[ExpiredAttestation]:
    """Turn attestations past their expiry to not assessed; the owners are told on commit."""
    from compliance.tasks import notify_attestation_expired

    now = now or timezone.now()
    actor = audit.Actor.system("attestation expiry")
    expired = []
    due = ControlStatus.objects.select_for_update().filter(
        source=Source.ATTESTATION, expires_at__lte=now
    )
    for status in due.exclude(status=Status.NOT_ASSESSED):
        when = status.expires_at
        _apply(
            status,
            new_status=Status.NOT_ASSESSED,
            source=Source.ATTESTATION,
            reason=f"The attestation expired on {when:%Y-%m-%d %H:%M} UTC.",
            expires_at=when,
            actor=actor,
            action=AuditAction.ATTESTATION_EXPIRED,
        )
        expired.append(ExpiredAttestation(status.control_code, status.owner_email))
        if status.owner_email:
            code, email = status.control_code, status.owner_email
            transaction.on_commit(lambda c=code, e=email: notify_attestation_expired.delay(c, e))
    return expired


@transaction.atomic
def set_owner(
    *,
    tenant,
    control_code: str,
    membership_id,
    review_date: date | None,
    actor: audit.Actor,
) -> ControlStatus:
    """Name the member who answers for a control (None: nobody) and its next review date."""
    info = _live_control(control_code)
    owner = None
    if membership_id:
        owner = (
            Membership.objects.select_related("user")
            .filter(tenant=tenant, public_id=membership_id, user__is_active=True)
            .first()
        )
        if owner is None:
            raise ValidationError({"owner": ["Choose a member of this tenant."]})
    current = _locked_status(info.code)
    before = {"owner": current.owner_email, "review_date": current.review_date}
    current.owner_membership_id = owner.pk if owner else None
    current.owner_email = owner.user.email if owner else ""
    current.review_date = review_date
    after = {"owner": current.owner_email, "review_date": current.review_date}
    if after != before:
        current.updated_at = timezone.now()
        current.updated_by = actor.label
        current.save()
        audit.record(
            actor=actor,
            action=AuditAction.OWNER_CHANGED,
            obj=current,
            object_id=current.control_code,
            before=before,
            after=after,
        )
    return current


# Portal records that can stand as evidence: model label -> (app, model). Looked up by public id
# in the current tenant's schema, so only the tenant's own records can be named.
RECORD_TYPES = {
    "alerts.alertrule": ("alerts", "AlertRule"),
    "alerts.receiver": ("alerts", "Receiver"),
    "alerts.notificationpolicy": ("alerts", "NotificationPolicy"),
    "dashboards.dashboard": ("dashboards", "Dashboard"),
}


def _portal_record(record_type: str, record_id: str) -> tuple[str, str]:
    record_type = (record_type or "").strip().lower()
    if record_type not in RECORD_TYPES:
        choices = ", ".join(sorted(RECORD_TYPES))
        raise ValidationError({"record_type": [f"Choose one of: {choices}."]})
    try:
        model = apps.get_model(*RECORD_TYPES[record_type])
        exists = model.objects.filter(public_id=uuid.UUID(str(record_id).strip())).exists()
    except (LookupError, ValueError):
        exists = False
    if not exists:
        raise ValidationError({"record_id": ["No such record in this tenant."]})
    return record_type, str(uuid.UUID(str(record_id).strip()))


@transaction.atomic
def add_evidence(
    *,
    control_code: str,
    kind: str,
    title: str,
    actor: audit.Actor,
    file: UploadedFile | None = None,
    url: str = "",
    note: str = "",
    record_type: str = "",
    record_id: str = "",
    expires_at: datetime | None = None,
) -> Evidence:
    """Attach one piece of evidence to a control (it counts wherever the control maps)."""
    info = _live_control(control_code)
    if kind not in Evidence.Kind.values:
        raise ValidationError({"kind": [f"{kind!r} is not a kind of evidence."]})
    title = check_field_text("title", title, max_length=TITLE_MAX)
    if not title:
        raise ValidationError({"title": ["This field is required."]})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": ["The expiry must be in the future."]})
    evidence = Evidence(
        control_code=info.code,
        kind=kind,
        title=title,
        expires_at=expires_at,
        added_at=timezone.now(),
        added_by=actor.label,
    )
    if kind == Evidence.Kind.FILE:
        if file is None:
            raise ValidationError({"file": ["Choose a file to upload."]})
        name, evidence.content_type = checked_upload(file)
        evidence.size = file.size
        evidence.file.save(name, file, save=False)
    elif kind == Evidence.Kind.LINK:
        evidence.url = checked_link(url)
    elif kind == Evidence.Kind.NOTE:
        evidence.note = check_field_text("note", note, max_length=NOTE_MAX, multiline=True)
        if not evidence.note:
            raise ValidationError({"note": ["Write the note."]})
    else:
        evidence.record_type, evidence.record_id = _portal_record(record_type, record_id)
    try:
        evidence.save()
        audit.record(
            actor=actor,
            action=AuditAction.EVIDENCE_ADDED,
            obj=evidence,
            after={
                "control": evidence.control_code,
                "kind": evidence.kind,
                "title": evidence.title,
                "file": evidence.file.name if evidence.file else "",
                "size": evidence.size,
                "url": evidence.url,
                "record": f"{evidence.record_type} {evidence.record_id}".strip(),
                "expires_at": evidence.expires_at,
            },
        )
    except BaseException:
        if evidence.file:
            evidence.file.storage.delete(evidence.file.name)  # no row points at it
        raise
    return evidence


@transaction.atomic
def remove_evidence(*, evidence_id, actor: audit.Actor) -> Evidence:
    evidence = Evidence.objects.select_for_update().get(public_id=evidence_id)
    name = evidence.file.name if evidence.file else ""
    storage = evidence.file.storage if evidence.file else None
    audit.record(
        actor=actor,
        action=AuditAction.EVIDENCE_REMOVED,
        obj=evidence,
        before={"control": evidence.control_code, "kind": evidence.kind, "title": evidence.title},
    )
    evidence.delete()
    if name and storage is not None:
        transaction.on_commit(lambda: storage.delete(name))
    return evidence


def evidence_for(control_code: str):
    return Evidence.objects.filter(control_code=control_code)


def statuses() -> dict[str, str]:
    """Control code -> status, for every control the tenant has a status for."""
    return dict(ControlStatus.objects.values_list("control_code", "status"))


def latest_chain_verification() -> ChainVerification | None:
    return ChainVerification.objects.order_by("-checked_at", "-pk").first()


# ---- figures for the tenant's dashboards ------------------------------------------------------


def dashboard_figures() -> dict:
    """The score over every control of the catalog (passing over applicable, in percent; None
    while nothing applies) and the failing controls per framework."""
    current = statuses()
    controls = catalog.controls()
    per_framework = framework_scores(catalog.frameworks(), controls, current)
    return {
        "score": overall_score(controls, current),
        "failing": {score.framework.code: score.failing for score in per_framework},
    }
