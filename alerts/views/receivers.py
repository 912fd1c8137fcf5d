"""Receivers: where notifications go. Secrets are never shown back (only a hint such as
`…abcd`); a blank secret on an edit keeps the stored one. A test notification shows the
provider's answer and lands in the notification log."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from alerts import notify, services
from alerts.forms import ReceiverForm
from alerts.models import NotificationLog, Receiver
from alerts.sync import receiver_is_usable
from alerts.views.common import Target, actor, add_service_errors, require_edit, sync_view
from tenants.pages.decorators import require_perm
from tenants.roles import Perm

LOG_ROWS = 20
TEST_TITLE = "Test notification from the monitoring portal"


def destination(receiver: Receiver) -> str:
    """Where it sends, without its secret: a channel, an address, or the secret's hint ("" when
    it has none yet)."""
    settings = receiver.settings or {}
    if receiver.kind == Receiver.Kind.EMAIL:
        return settings.get("to", "")
    parts = []
    if receiver.kind == Receiver.Kind.SLACK and settings.get("channel"):
        parts.append(settings["channel"])
    if receiver.secret_hint:
        parts.append(receiver.secret_hint)
    return " · ".join(parts)


def _initial(receiver: Receiver) -> dict:
    settings = receiver.settings or {}
    return {
        "name": receiver.name,
        "kind": receiver.kind,
        "channel": settings.get("channel", ""),
        "to": settings.get("to", ""),
        "smarthost": settings.get("smarthost", ""),
        "from_address": settings.get("from", ""),
        "auth_username": settings.get("auth_username", ""),
        "require_tls": settings.get("require_tls", True),
        "url": settings.get("url", ""),
        "enabled": receiver.enabled,
    }


@require_perm(Perm.VIEW_ALERTS)
@require_GET
def receiver_list(request):
    receivers = []
    for receiver in Receiver.objects.prefetch_related("policies").order_by("name"):
        receivers.append(
            {
                "receiver": receiver,
                "destination": destination(receiver),
                "usable": receiver_is_usable(receiver),
                "severities": sorted(p.severity for p in receiver.policies.all()),
            }
        )
    context = {
        "receivers": receivers,
        "sync": sync_view(Target.ALERTMANAGER),
        "log": NotificationLog.objects.all()[:LOG_ROWS],
    }
    return render(request, "alerts/receivers.html", context)


def _render_form(request, form, receiver, status=200):
    context = {
        "form": form,
        "receiver": receiver,
        "secret_labels": {k.value: v for k, v in ReceiverForm.SECRET_LABELS.items()},
        "log": receiver.log.all()[:LOG_ROWS] if receiver else [],
        "usable": receiver_is_usable(receiver) if receiver else False,
    }
    return render(request, "alerts/receiver_form.html", context, status=status)


@require_perm(Perm.VIEW_ALERTS)
def receiver_create(request):
    require_edit(request)
    form = ReceiverForm(initial={"enabled": True, "require_tls": True})
    if request.method == "POST":
        form = ReceiverForm(request.POST)
        if form.is_valid():
            try:
                receiver = services.create_receiver(
                    name=form.cleaned_data["name"],
                    kind=form.cleaned_data["kind"],
                    settings=form.receiver_settings(),
                    secret=form.cleaned_data["secret"],
                    enabled=form.cleaned_data["enabled"],
                    actor=actor(request),
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(
                    request,
                    f"Receiver {receiver.name} created. Add it to the notification policy to "
                    "have it told.",
                )
                return redirect("alert-receiver", receiver_id=receiver.public_id)
    return _render_form(request, form, None, status=400 if form.errors else 200)


@require_perm(Perm.VIEW_ALERTS)
def receiver_edit(request, receiver_id):
    receiver = get_object_or_404(Receiver, public_id=receiver_id)
    form = ReceiverForm(initial=_initial(receiver), editing=True)
    if request.method == "POST":
        require_edit(request)
        form = ReceiverForm(request.POST, editing=True)
        if form.is_valid():
            try:
                services.update_receiver(
                    receiver_id=receiver.public_id,
                    name=form.cleaned_data["name"],
                    kind=form.cleaned_data["kind"],
                    settings=form.receiver_settings(),
                    secret=form.cleaned_data["secret"],
                    enabled=form.cleaned_data["enabled"],
                    actor=actor(request),
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, "Receiver saved.")
                return redirect("alert-receiver", receiver_id=receiver.public_id)
    return _render_form(request, form, receiver, status=400 if form.errors else 200)


@require_perm(Perm.VIEW_ALERTS)
@require_POST
def receiver_delete(request, receiver_id):
    require_edit(request)
    receiver = get_object_or_404(Receiver, public_id=receiver_id)
    try:
        services.delete_receiver(receiver_id=receiver.public_id, actor=actor(request))
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
        return redirect("alert-receivers")
    messages.success(request, f"Receiver {receiver.name} deleted.")
    return redirect("alert-receivers")


@require_perm(Perm.VIEW_ALERTS)
@require_POST
def receiver_test(request, receiver_id):
    """Send a test message now and show the provider's answer (also kept in the log)."""
    require_edit(request)
    receiver = get_object_or_404(Receiver, public_id=receiver_id)
    if receiver.kind != Receiver.Kind.EMAIL and not receiver.secret:
        label = ReceiverForm.SECRET_LABELS[receiver.kind]
        messages.error(request, f"Nothing sent: set the {label} first.")
        return redirect("alert-receiver", receiver_id=receiver.public_id)
    entry = notify.send_and_log(
        receiver,
        title=TEST_TITLE,
        text=(
            f"Sent by {request.user.get_username()} from {request.tenant.name} to check the "
            f"receiver {receiver.name}. No action needed."
        ),
        reason="test",
    )
    outcome = messages.success if entry.outcome == NotificationLog.Outcome.SENT else messages.error
    verb = "delivered" if entry.outcome == NotificationLog.Outcome.SENT else "failed"
    outcome(request, f"Test notification {verb}. Provider's answer: {entry.detail or '(none)'}")
    return redirect("alert-receiver", receiver_id=receiver.public_id)
