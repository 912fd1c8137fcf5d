"""The notification policy, one section per severity, and the maintenance windows it can mute."""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from alerts import digest, services
from alerts.forms import NotificationPolicyForm
from alerts.models import AlertingSettings, MuteTiming, NotificationPolicy, Receiver, Severity
from alerts.mute_timings import MuteTimingForm, describe
from alerts.sync import receiver_is_usable
from alerts.views.common import SEVERITY_BADGES, Target, actor, require_edit, sync_view
from tenants.pages.decorators import require_perm
from tenants.roles import Perm


def _section(severity: Severity, policy: NotificationPolicy | None) -> dict:
    """What one severity's form shows, from the stored policy."""
    return {
        "severity": severity.value,
        "label": severity.label,
        "badge": SEVERITY_BADGES[severity.value],
        "receivers": {str(r.public_id) for r in policy.receivers.all()} if policy else set(),
        "group_by": ", ".join(policy.group_by or []) if policy else "alertname",
        "group_wait": policy.group_wait if policy else "30s",
        "group_interval": policy.group_interval if policy else "5m",
        "repeat_interval": policy.repeat_interval if policy else "4h",
        "mute_timings": {m.name for m in policy.mute_timings.all()} if policy else set(),
        "errors": {},
    }


def _posted_section(severity: Severity, post) -> dict:
    return {
        "severity": severity.value,
        "label": severity.label,
        "badge": SEVERITY_BADGES[severity.value],
        "receivers": set(post.getlist("receivers")),
        "group_by": post.get("group_by", ""),
        "group_wait": post.get("group_wait", ""),
        "group_interval": post.get("group_interval", ""),
        "repeat_interval": post.get("repeat_interval", ""),
        "mute_timings": set(post.getlist("mute_timings")),
        "errors": {},
    }


def _render(request, *, failed: dict | None = None, mute_form=None, status=200):
    policies = {
        p.severity: p
        for p in NotificationPolicy.objects.prefetch_related("receivers", "mute_timings")
    }
    sections = []
    for severity in Severity:
        if failed and failed["severity"] == severity.value:
            sections.append(failed)
        else:
            sections.append(_section(severity, policies.get(severity.value)))
    receivers = [
        {"receiver": r, "usable": receiver_is_usable(r)} for r in Receiver.objects.order_by("name")
    ]
    timings = [{"timing": t, "window": describe(t.intervals)} for t in MuteTiming.objects.all()]
    context = {
        "sections": sections,
        "receivers": receivers,
        "timings": timings,
        "mute_form": mute_form or MuteTimingForm(initial={"location": "UTC"}),
        "sync": sync_view(Target.ALERTMANAGER),
        "intake": AlertingSettings.objects.only("rotated_at").first(),
        "digest_interval": digest.interval_label(),
        "digest_severity": digest.SEVERITY,
    }
    return render(request, "alerts/policy.html", context, status=status)


def _errors(errors) -> dict[str, list[str]]:
    # Templates cannot read "__all__"; errors of the whole form show as "general".
    return {("general" if k == "__all__" else k): list(v) for k, v in errors.items()}


@require_perm(Perm.VIEW_ALERTS)
@require_GET
def policy_page(request):
    return _render(request)


@require_perm(Perm.VIEW_ALERTS)
@require_POST
def policy_update(request, severity):
    require_edit(request)
    try:
        level = Severity(severity)
    except ValueError:
        raise Http404("No such severity.") from None
    post = request.POST
    group_by = [name.strip() for name in post.get("group_by", "").split(",") if name.strip()]
    form = NotificationPolicyForm(
        data={
            "receivers": json.dumps(post.getlist("receivers")),
            "group_by": json.dumps(group_by),
            "group_wait": post.get("group_wait", ""),
            "group_interval": post.get("group_interval", ""),
            "repeat_interval": post.get("repeat_interval", ""),
            "mute_timings": json.dumps(post.getlist("mute_timings")),
        }
    )
    section = _posted_section(level, post)
    if form.is_valid():
        try:
            services.update_policy(severity=level.value, actor=actor(request), **form.cleaned_data)
        except ValidationError as exc:
            section["errors"] = _errors(
                exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
            )
        else:
            messages.success(request, f"Policy for {level.label} saved.")
            return redirect("alert-policy")
    else:
        section["errors"] = _errors(form.errors)
    return _render(request, failed=section, status=400)


@require_perm(Perm.VIEW_ALERTS)
@require_POST
def mute_timing_save(request):
    """Create a named weekly window (or replace the window of that name)."""
    require_edit(request)
    form = MuteTimingForm(request.POST)
    if not form.is_valid():
        return _render(request, mute_form=form, status=400)
    timing = services.save_mute_timing(
        name=form.cleaned_data["name"], intervals=form.intervals(), actor=actor(request)
    )
    messages.success(
        request, f"Maintenance window {timing.name} saved: {describe(timing.intervals)}."
    )
    return redirect("alert-policy")


@require_perm(Perm.MANAGE_SETTINGS)
@require_POST
def intake_secret_rotate(request):
    """A new intake secret; Alertmanager is given it by the next sync. Deliveries signed with
    the old one are refused meanwhile and retried by Alertmanager, so none is lost."""
    services.rotate_webhook_secret(actor=actor(request))
    messages.success(request, "Alert intake secret rotated; Alertmanager is being updated.")
    return redirect("alert-policy")
