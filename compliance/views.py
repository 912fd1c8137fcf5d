"""Compliance pages: overview, a control's page with attest/evidence/owner forms, evidence
downloads and per-framework reports (CSV and printable HTML). Writes go through services."""

from __future__ import annotations

import csv
from datetime import UTC

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from compliance import catalog, pages, services
from compliance.assessment import assess
from compliance.forms import AttestForm, EvidenceForm, OwnerForm, end_of_day
from compliance.models import ControlStatus, Evidence, StatusChange
from compliance.scoring import framework_scores
from tenants import audit
from tenants.access import request_access
from tenants.models import Membership
from tenants.pages.decorators import require_perm
from tenants.roles import Perm


def _control_or_404(code: str) -> catalog.ControlInfo:
    info = catalog.control(code)
    if info is None:
        raise Http404("No such control.")
    return info


@require_perm(Perm.VIEW_COMPLIANCE)
@require_GET
def overview(request):
    frameworks = catalog.frameworks()
    rows = pages.control_rows()
    scores = framework_scores(frameworks, [row.info for row in rows], services.statuses())
    return render(
        request,
        "compliance/overview.html",
        {
            "scores": scores,
            "frameworks": frameworks,
            "trend": pages.trend(frameworks),
            "rows": rows,
            "verification": services.latest_chain_verification(),
            "can_edit": request_access(request).can(Perm.EDIT_COMPLIANCE),
        },
    )


@require_perm(Perm.EDIT_COMPLIANCE)
@require_POST
def run_now(request):
    outcome = assess(request.tenant, force_chain=True)
    messages.success(request, f"Checked {outcome.checked} automated controls.")
    return redirect("compliance")


def _members(tenant) -> list[tuple[str, str]]:
    members = Membership.objects.filter(tenant=tenant, user__is_active=True).select_related("user")
    return [(str(m.public_id), f"{m.user.email} ({m.role})") for m in members]


def _control_page(request, info, *, status: int = 200, **forms):
    row = pages.ControlRow(
        info,
        ControlStatus.objects.filter(control_code=info.code).first(),
        list(services.evidence_for(info.code)),
    )
    owner_initial = {}
    if row.state is not None:
        owner = Membership.objects.filter(
            tenant=request.tenant, pk=row.state.owner_membership_id
        ).first()
        owner_initial = {
            "owner": str(owner.public_id) if owner else "",
            "review_date": row.state.review_date,
        }
    frameworks = {f.code: f for f in catalog.frameworks()}
    context = {
        "control": info,
        "row": row,
        "refs": [
            (frameworks[code], refs) for code, refs in info.refs.items() if code in frameworks
        ],
        "history": StatusChange.objects.filter(control_code=info.code)[:100],
        "can_edit": request_access(request).can(Perm.EDIT_COMPLIANCE),
        "attest_form": forms.get("attest_form") or AttestForm(),
        "evidence_form": forms.get("evidence_form") or EvidenceForm(),
        "owner_form": forms.get("owner_form")
        or OwnerForm(initial=owner_initial, members=_members(request.tenant)),
        "now": timezone.now(),
    }
    return render(request, "compliance/control.html", context, status=status)


@require_perm(Perm.VIEW_COMPLIANCE)
@require_GET
def control_detail(request, code: str):
    return _control_page(request, _control_or_404(code))


def _add_errors(form, exc: ValidationError, field_map: dict[str, str] | None = None) -> None:
    field_map = field_map or {}
    errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
    for field, problems in errors.items():
        name = field_map.get(field, field)
        for problem in problems:
            if name in form.fields:
                form.add_error(name, problem)
            else:
                form.add_error(None, f"{field}: {problem}")


@require_perm(Perm.EDIT_COMPLIANCE)
@require_POST
def control_attest(request, code: str):
    info = _control_or_404(code)
    form = AttestForm(request.POST, request.FILES)
    if form.is_valid():
        data = form.cleaned_data
        actor = audit.Actor.from_request(request)
        expires_at = end_of_day(data["expires_on"])
        try:
            with transaction.atomic():
                services.attest(
                    control_code=info.code,
                    status=data["status"],
                    reason=data["reason"],
                    expires_at=expires_at,
                    actor=actor,
                )
                if data.get("evidence_file"):
                    services.add_evidence(
                        control_code=info.code,
                        kind=Evidence.Kind.FILE,
                        title=data["evidence_title"],
                        file=data["evidence_file"],
                        expires_at=expires_at,
                        actor=actor,
                    )
                if data.get("evidence_url"):
                    services.add_evidence(
                        control_code=info.code,
                        kind=Evidence.Kind.LINK,
                        title=data["evidence_title"],
                        url=data["evidence_url"],
                        expires_at=expires_at,
                        actor=actor,
                    )
        except ValidationError as exc:
            _add_errors(
                form,
                exc,
                {
                    "file": "evidence_file",
                    "url": "evidence_url",
                    "title": "evidence_title",
                    "expires_at": "expires_on",
                },
            )
        else:
            messages.success(request, f"{info.code} attested.")
            return redirect("compliance-control", code=info.code)
    return _control_page(request, info, status=400, attest_form=form)


@require_perm(Perm.EDIT_COMPLIANCE)
@require_POST
def control_evidence(request, code: str):
    info = _control_or_404(code)
    form = EvidenceForm(request.POST, request.FILES)
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.add_evidence(
                control_code=info.code,
                kind=data["kind"],
                title=data["title"],
                file=data.get("file"),
                url=data.get("url") or "",
                note=data.get("note") or "",
                record_type=data.get("record_type") or "",
                record_id=data.get("record_id") or "",
                expires_at=end_of_day(data["expires_on"]) if data.get("expires_on") else None,
                actor=audit.Actor.from_request(request),
            )
        except ValidationError as exc:
            _add_errors(form, exc, {"expires_at": "expires_on"})
        else:
            messages.success(request, "Evidence added.")
            return redirect("compliance-control", code=info.code)
    return _control_page(request, info, status=400, evidence_form=form)


@require_perm(Perm.EDIT_COMPLIANCE)
@require_POST
def control_owner(request, code: str):
    info = _control_or_404(code)
    form = OwnerForm(request.POST, members=_members(request.tenant))
    if form.is_valid():
        try:
            services.set_owner(
                tenant=request.tenant,
                control_code=info.code,
                membership_id=form.cleaned_data["owner"] or None,
                review_date=form.cleaned_data["review_date"],
                actor=audit.Actor.from_request(request),
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, "Owner saved.")
            return redirect("compliance-control", code=info.code)
    return _control_page(request, info, status=400, owner_form=form)


def _evidence_or_404(evidence_id) -> Evidence:
    # Looked up in the current tenant's schema only: another tenant's id is simply not there.
    evidence = Evidence.objects.filter(public_id=evidence_id).first()
    if evidence is None:
        raise Http404("No such evidence.")
    return evidence


@require_perm(Perm.VIEW_COMPLIANCE)
@require_GET
def evidence_download(request, evidence_id):
    evidence = _evidence_or_404(evidence_id)
    if not evidence.file:
        raise Http404("This evidence has no file.")
    try:
        handle = evidence.file.open("rb")
    except FileNotFoundError:
        raise Http404("The file is missing from storage.") from None
    response = FileResponse(
        handle,
        as_attachment=True,
        filename=evidence.file.name.rsplit("/", 1)[-1],
        content_type=evidence.content_type or "application/octet-stream",
    )
    response["Cache-Control"] = "private, no-store"
    return response


@require_perm(Perm.EDIT_COMPLIANCE)
@require_POST
def evidence_remove(request, evidence_id):
    evidence = _evidence_or_404(evidence_id)
    services.remove_evidence(
        evidence_id=evidence.public_id, actor=audit.Actor.from_request(request)
    )
    messages.success(request, "Evidence removed.")
    return redirect("compliance-control", code=evidence.control_code)


# ---- reports -----------------------------------------------------------------------------------


def _framework_or_404(code: str) -> catalog.FrameworkInfo:
    framework = catalog.framework(code)
    if framework is None:
        raise Http404("No such framework.")
    return framework


def _report_context(framework: catalog.FrameworkInfo) -> dict:
    rows = pages.control_rows(framework.code)
    [score] = framework_scores([framework], [row.info for row in rows], services.statuses())
    return {
        "framework": framework,
        "score": score,
        "rows": rows,
        "verification": services.latest_chain_verification(),
        "generated_at": timezone.now(),
    }


@require_perm(Perm.VIEW_COMPLIANCE)
@require_GET
def framework_report(request, code: str):
    context = _report_context(_framework_or_404(code))
    return render(request, "compliance/report.html", context)


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


REPORT_COLUMNS = [
    "requirements",
    "control",
    "title",
    "status",
    "source",
    "reason",
    "owner",
    "review_date",
    "updated_at",
    "attestation_expires_at",
    "evidence",
]


def _when(value) -> str:
    return value.astimezone(UTC).isoformat() if value else ""


@require_perm(Perm.VIEW_COMPLIANCE)
@require_GET
def framework_report_csv(request, code: str):
    framework = _framework_or_404(code)
    context = _report_context(framework)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = (
        f'attachment; filename="compliance-{framework.code}-{request.tenant.slug}-{stamp}.csv"'
    )
    response["Cache-Control"] = "no-store"
    writer = csv.writer(response)
    verification = context["verification"]
    chain = (
        "audit chain not verified yet"
        if verification is None
        else f"audit chain {'verified' if verification.ok else 'FAILED'} at "
        f"{_when(verification.checked_at)} ({verification.rows} events"
        + (
            f", first bad event {verification.bad_seq}: {verification.problem}"
            if not verification.ok
            else ""
        )
        + ")"
    )
    score = context["score"]
    writer.writerow([csv_cell(f"# {framework.label} report for {request.tenant.name}")])
    writer.writerow(
        [
            csv_cell(
                f"# score {score.score if score.score is not None else 'n/a'}% "
                f"({score.passing} of {score.applicable} applicable passing)"
            )
        ]
    )
    writer.writerow([csv_cell(f"# {chain}; generated {_when(context['generated_at'])}")])
    writer.writerow(REPORT_COLUMNS)
    for row in context["rows"]:
        state = row.state
        evidence = "; ".join(
            f"{e.get_kind_display()}: {e.title} (added {e.added_at:%Y-%m-%d}"
            + (f", expires {e.expires_at:%Y-%m-%d}" if e.expires_at else "")
            + ")"
            for e in row.evidence
        )
        writer.writerow(
            [
                csv_cell(value)
                for value in [
                    " ".join(ref.ref for ref in row.info.refs.get(framework.code, [])),
                    row.info.code,
                    row.info.title,
                    row.status,
                    row.source_label,
                    row.reason,
                    state.owner_email if state else "",
                    state.review_date.isoformat() if state and state.review_date else "",
                    _when(state.updated_at) if state else "",
                    _when(state.expires_at) if state else "",
                    evidence,
                ]
            ]
        )
    return response
