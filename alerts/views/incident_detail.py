"""One incident: what fired, its chart, timeline and related incidents; the actions on it.

The page is static parts (labels, the chart, related incidents) around three live regions (the
status with the actions, the timeline, the notification log) that `_incident_timeline.html`
renders. An action posted by htmx answers those regions as out-of-band swaps; a plain form post
is redirected back to the page, or answered with the page and the form's errors. The page's
script refetches the regions when the incident desk's socket says this incident changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST

from alerts import incident_forms as f
from alerts import services, timeline
from alerts.incident_chart import incident_chart
from alerts.models import Incident, IncidentEvent, Receiver
from alerts.views.common import actor
from tenants.access import request_access
from tenants.pages.decorators import require_perm
from tenants.roles import Perm

Kind = IncidentEvent.Kind
KIND_LABELS = dict(Receiver.Kind.choices)
RELATED_DAYS = 7
MAX_RELATED = 10
MAX_NOTIFICATIONS = 50
STATUS_BADGES = {
    Incident.Status.TRIGGERED: "badge-bad",
    Incident.Status.ACKNOWLEDGED: "badge-warn",
    Incident.Status.RESOLVED: "badge-ok",
}
EVENT_BADGES = {
    Kind.FIRED: "badge-bad",
    Kind.ACKNOWLEDGED: "badge-warn",
    Kind.ALERT_RESOLVED: "badge-ok",
    Kind.RESOLVED: "badge-ok",
    Kind.REOPENED: "badge-warn",
    Kind.BREACH_FLAGGED: "badge-bad",
    Kind.AUTHORITY_NOTIFIED: "badge-info",
}


def _incident(request, incident_id) -> Incident:
    """The incident if this member may see it; 404 for another tenant's id or a security
    incident the role may not see (the same answer: nothing tells one from the other)."""
    incident = (
        services.visible_incidents(request_access(request))
        .select_related("rule__group")
        .filter(public_id=incident_id)
        .first()
    )
    if incident is None:
        raise Http404("No such incident.")
    return incident


# ---- what the page shows -----------------------------------------------------------------------


def _when(value) -> datetime | None:
    """A time kept in an entry's details (ISO text in JSON) as a datetime, when it is one."""
    try:
        return parse_datetime(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _entry(event: IncidentEvent) -> dict:
    detail = event.detail if isinstance(event.detail, dict) else {}
    receivers = detail.get("receivers") if event.kind == Kind.ROUTED else None
    if isinstance(receivers, list):
        receivers = [
            {**r, "kind_label": KIND_LABELS.get(r.get("kind"), r.get("kind", ""))}
            for r in receivers
            if isinstance(r, dict)
        ]
    badge = EVENT_BADGES.get(event.kind, "badge-muted")
    if event.kind == Kind.NOTIFIED:
        badge = "badge-ok" if detail.get("outcome") == "sent" else "badge-bad"
    return {
        "event": event,
        "badge": badge,
        "detail": detail,
        "receivers": receivers,
        "until": _when(detail.get("until")),
        "deadline": _when(detail.get("deadline")),
        "notified_at": _when(detail.get("notified_at")),
    }


def _countdown(left: timedelta) -> str:
    """Time to the deadline as static/js/incident.js writes it each second ("71 h 05 min 09 s")."""
    seconds = int(abs(left.total_seconds()))
    spelled = f"{seconds // 3600} h {seconds % 3600 // 60:02d} min {seconds % 60:02d} s"
    return f"{spelled} left" if left.total_seconds() > 0 else f"the deadline passed {spelled} ago"


def _breach(incident: Incident, entries: list[dict], now) -> dict | None:
    if not incident.is_security:
        return None
    deadline = services.breach_deadline(incident)
    return {
        "deadline": deadline,
        "passed": deadline is not None and now > deadline,
        "countdown": _countdown(deadline - now) if deadline else "",
        # What JavaScript's Date.parse reads everywhere: milliseconds at most.
        "deadline_iso": deadline.isoformat(timespec="milliseconds") if deadline else "",
        "notices": [e for e in entries if e["event"].kind == Kind.AUTHORITY_NOTIFIED],
    }


def _related(request, incident: Incident, now) -> list[Incident]:
    same = Q(alertname=incident.alertname)
    if incident.service:
        same |= Q(service=incident.service)
    return list(
        services.visible_incidents(request_access(request))
        .filter(same, started_at__gte=now - timedelta(days=RELATED_DAYS))
        .exclude(pk=incident.pk)
        .order_by("-started_at")[:MAX_RELATED]
    )


def _ack_overdue(incident: Incident, now) -> int | None:
    """The acknowledgement target in minutes, when a triggered incident has passed it."""
    if incident.status != Incident.Status.TRIGGERED:
        return None
    minutes = services.ack_targets().get(incident.severity)
    if minutes and now > incident.started_at + timedelta(minutes=minutes):
        return minutes
    return None


def _forms(incident: Incident, members: list[f.Member], bound: dict | None = None) -> dict:
    forms = {
        "acknowledge": f.ActionForm(),
        "flag-breach": f.ActionForm(),
        "note": f.NoteForm(),
        "assign": f.AssignForm(
            members=members,
            initial={
                "assignee": next(
                    (m.public_id for m in members if m.user_id == incident.assignee_id), ""
                )
            },
        ),
        "silence": f.SilenceForm(),
        "resolve": f.ResolveForm(),
        "reopen": f.ReopenForm(),
        "breach-notice": f.BreachNoticeForm(
            initial={"notified_at": timezone.now().replace(second=0, microsecond=0)}
        ),
    }
    forms.update(bound or {})
    # Templates cannot read names with a dash.
    forms["flag_breach"] = forms["flag-breach"]
    forms["breach_notice"] = forms["breach-notice"]
    return forms


def _live_context(request, incident: Incident, *, bound: dict | None = None, notice="") -> dict:
    """What the three live regions show."""
    now = timezone.now()
    entries = [_entry(e) for e in incident.events.order_by("at", "id")]
    members = f.assignable_members(incident)
    me = next((m for m in members if m.user_id == request.user.pk), None)
    assignee = next((m for m in members if m.user_id == incident.assignee_id), None)
    return {
        "incident": incident,
        "status_badge": STATUS_BADGES.get(incident.status, "badge-muted"),
        "entries": entries,
        "routed": [e for e in entries if e["event"].kind == Kind.ROUTED],
        "notifications": incident.notifications.all()[:MAX_NOTIFICATIONS],
        "chain": timeline.verify(incident),
        "breach": _breach(incident, entries, now),
        "ack_overdue": _ack_overdue(incident, now),
        "forms": _forms(incident, members, bound),
        "me": me,
        "assignee_left": incident.assignee_id is not None and assignee is None,
        "notice": notice,
    }


def _is_web_link(value) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://"))


def _page(request, incident: Incident, *, bound: dict | None = None, status: int = 200):
    now = timezone.now()
    context = _live_context(request, incident, bound=bound)
    context["related"] = _related(request, incident, now)
    context["labels"] = sorted(incident.labels.items())
    context["annotations"] = [
        (name, value, name == "runbook_url" and _is_web_link(value))
        for name, value in sorted((incident.annotations or {}).items())
    ]
    context["generator_url"] = (
        incident.generator_url if _is_web_link(incident.generator_url) else ""
    )
    # The chart waits on Prometheus, which may be what is down: the page asks for it in a second
    # request (see the template), so it never waits itself.
    if request.GET.get("chart") or incident.rule is None:
        context["chart"] = incident_chart(incident, schema=request.tenant.schema_name, now=now)
    return render(request, "alerts/incident.html", context, status=status)


def _regions(request, incident: Incident, *, bound=None, notice="", status=200):
    context = _live_context(request, incident, bound=bound, notice=notice)
    context["oob"] = True
    return render(request, "alerts/_incident_timeline.html", context, status=status)


@require_perm(Perm.VIEW_INCIDENTS)
@require_GET
def incident_page(request, incident_id):
    return _page(request, _incident(request, incident_id))


@require_perm(Perm.VIEW_INCIDENTS)
@require_GET
def incident_timeline(request, incident_id):
    """The live regions (status and actions, timeline, notifications) for a refresh."""
    return _regions(request, _incident(request, incident_id))


# ---- actions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    form: Callable[..., f.PortalForm]
    # Runs the service with the form's clean values; returns the words for "done".
    run: Callable[[Incident, dict, object], str]


def _acknowledge(incident: Incident, data: dict, who) -> str:
    services.acknowledge_incident(incident_id=incident.public_id, actor=who)
    return "Acknowledged."


def _assign(incident: Incident, data: dict, who) -> str:
    updated = services.assign_incident(
        incident_id=incident.public_id, assignee=data["assignee"], actor=who
    )
    return f"Assigned to {updated.assignee_email}." if updated.assignee_email else "Unassigned."


def _note(incident: Incident, data: dict, who) -> str:
    services.add_incident_note(incident_id=incident.public_id, text=data["text"], actor=who)
    return "Note added."


def _silence(incident: Incident, data: dict, who) -> str:
    services.silence_incident(
        incident_id=incident.public_id,
        duration=data["delta"],
        comment=data.get("comment", ""),
        actor=who,
    )
    return f"Its alert is silenced for {f.minutes_words(data['delta'])}."


def _resolve(incident: Incident, data: dict, who) -> str:
    services.resolve_incident(incident_id=incident.public_id, note=data.get("note", ""), actor=who)
    return "Resolved."


def _reopen(incident: Incident, data: dict, who) -> str:
    services.reopen_incident(incident_id=incident.public_id, reason=data["reason"], actor=who)
    return "Reopened."


def _flag_breach(incident: Incident, data: dict, who) -> str:
    services.flag_personal_data_breach(incident_id=incident.public_id, actor=who)
    return "Flagged as a personal-data breach: the 72-hour notification clock runs."


def _breach_notice(incident: Incident, data: dict, who) -> str:
    services.record_breach_notice(
        incident_id=incident.public_id,
        recipient=data["recipient"],
        notified_at=data["notified_at"],
        actor=who,
    )
    return f"Recorded: {data['recipient']} notified."


ACTIONS: dict[str, Action] = {
    "acknowledge": Action(f.ActionForm, _acknowledge),
    "assign": Action(f.AssignForm, _assign),
    "note": Action(f.NoteForm, _note),
    "silence": Action(f.SilenceForm, _silence),
    "resolve": Action(f.ResolveForm, _resolve),
    "reopen": Action(f.ReopenForm, _reopen),
    "flag-breach": Action(f.ActionForm, _flag_breach),
    "breach-notice": Action(f.BreachNoticeForm, _breach_notice),
}


@require_perm(Perm.MANAGE_INCIDENTS)
@require_POST
def incident_action(request, incident_id, action):
    handler = ACTIONS.get(action)
    if handler is None:
        raise Http404("No such action.")
    incident = _incident(request, incident_id)
    kwargs = {"members": f.assignable_members(incident)} if action == "assign" else {}
    form = handler.form(request.POST, **kwargs)
    done = ""
    if form.is_valid():
        try:
            done = handler.run(incident, form.cleaned_data, actor(request))
        except ValidationError as exc:
            form.add_service_errors(exc)
    incident = _incident(request, incident_id)  # as the action left it
    if form.errors:
        if request.htmx:
            # 200: htmx swaps only successful answers, and this one is the form with its errors.
            return _regions(request, incident, bound={action: form})
        return _page(request, incident, bound={action: form}, status=400)
    if request.htmx:
        return _regions(request, incident, notice=done)
    messages.success(request, done)
    return redirect("incident", incident_id=incident.public_id)
