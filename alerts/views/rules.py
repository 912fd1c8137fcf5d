"""Alert rules and rule groups: the list with sync and firing state, the editor with its live
PromQL check and preview on real data. Writes go through `alerts.services`."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from alerts import queries, services
from alerts.forms import RuleGroupForm
from alerts.models import AlertRule, RuleGroup
from alerts.preview import DEFAULT_RANGE, preview_rule
from alerts.promql import MAX_EXPRESSION_LENGTH, PromQLError, scope_to_tenant
from alerts.views.common import (
    Target,
    actor,
    add_service_errors,
    item_sync,
    require_edit,
    sync_view,
)
from alerts.views.rule_form import RulePageForm
from tenants.pages.decorators import require_perm
from tenants.roles import Perm

MAX_SUGGESTIONS = 20


@dataclass(frozen=True)
class RuleRow:
    rule: AlertRule
    sync_status: str
    sync_error: str
    live: queries.RuleState | None


def _live_states(schema: str) -> tuple[dict | None, str]:
    """Prometheus' rule states, or None and why they are unknown."""
    try:
        return queries.rule_states(schema), ""
    except queries.Unavailable as exc:
        return None, exc.reason


@require_perm(Perm.VIEW_ALERTS)
@require_GET
def rule_list(request):
    state = sync_view(Target.PROMETHEUS_RULES)
    live, unknown_reason = _live_states(request.tenant.schema_name)
    groups = []
    for group in RuleGroup.objects.prefetch_related("rules").order_by("name"):
        rows = []
        for rule in sorted(group.rules.all(), key=lambda r: (r.position, r.name)):
            status, error = item_sync(state, rule.updated_at)
            found = live.get((group.name, rule.name)) if live is not None else None
            rows.append(RuleRow(rule, status, error, found))
        groups.append((group, rows))
    context = {
        "groups": groups,
        "sync": state,
        "live_known": live is not None,
        "unknown_reason": unknown_reason,
        "group_form": RuleGroupForm(),
    }
    return render(request, "alerts/rules.html", context)


# ---- groups ------------------------------------------------------------------------------------


@require_perm(Perm.VIEW_ALERTS)
@require_POST
def group_create(request):
    require_edit(request)
    form = RuleGroupForm(request.POST)
    if form.is_valid():
        try:
            group = services.create_group(actor=actor(request), **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Group {group.name} created; add its first rule.")
            return redirect(f"{reverse('alert-rule-new')}?group={group.public_id}")
    context = {"form": form, "group": None}
    return render(request, "alerts/group_form.html", context, status=400)


@require_perm(Perm.VIEW_ALERTS)
def group_edit(request, group_id):
    group = get_object_or_404(RuleGroup, public_id=group_id)
    form = RuleGroupForm(initial={"name": group.name, "interval": group.interval})
    if request.method == "POST":
        require_edit(request)
        form = RuleGroupForm(request.POST)
        if form.is_valid():
            try:
                services.update_group(
                    group_id=group.public_id, actor=actor(request), **form.cleaned_data
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, "Group saved.")
                return redirect("alert-rules")
    status = 400 if form.errors else 200
    return render(request, "alerts/group_form.html", {"form": form, "group": group}, status=status)


@require_perm(Perm.VIEW_ALERTS)
@require_POST
def group_delete(request, group_id):
    require_edit(request)
    group = get_object_or_404(RuleGroup, public_id=group_id)
    services.delete_group(group_id=group.public_id, actor=actor(request))
    messages.success(request, f"Group {group.name} and its rules deleted.")
    return redirect("alert-rules")


# ---- rules -------------------------------------------------------------------------------------


def _render_editor(request, form, rule, preview=None, status=200):
    context = {
        "form": form,
        "rule": rule,
        "preview": preview,
        "chart": preview.chart_data() if preview and not preview.error else None,
    }
    return render(request, "alerts/rule_form.html", context, status=status)


def _save_or_preview(request, form: RulePageForm, rule: AlertRule | None):
    """A valid editor form: preview it (nothing saved) or save it through the services."""
    values = form.rule_values
    if request.POST.get("action") == "preview":
        group = RuleGroup.objects.filter(public_id=form.cleaned_data["group"]).first()
        preview = preview_rule(
            schema=request.tenant.schema_name,
            kind=values["kind"],
            name=values["name"],
            expr=values["expr"],
            for_duration=values["for_duration"],
            keep_firing_for=values["keep_firing_for"],
            severity=values["severity"],
            category=values["category"],
            labels=values["labels"],
            interval=group.interval if group else "1m",
            range_key=form.cleaned_data.get("preview_range") or DEFAULT_RANGE,
        )
        return _render_editor(request, form, rule, preview)
    try:
        if rule is None:
            saved = services.create_rule(
                group_id=form.cleaned_data["group"], actor=actor(request), **values
            )
        else:
            saved = services.update_rule(
                rule_id=rule.public_id,
                group_id=form.cleaned_data["group"],
                actor=actor(request),
                **values,
            )
    except ValidationError as exc:
        add_service_errors(form, exc)
        return _render_editor(request, form, rule, status=400)
    messages.success(
        request,
        f"Rule {saved.name} saved. Prometheus gets it within seconds; the list shows when.",
    )
    return redirect("alert-rules")


@require_perm(Perm.VIEW_ALERTS)
def rule_create(request):
    require_edit(request)
    schema = request.tenant.schema_name
    if not RuleGroup.objects.exists():
        messages.info(request, "Create a rule group first: rules are evaluated in groups.")
        return redirect("alert-rules")
    if request.method == "POST":
        form = RulePageForm(request.POST, schema=schema)
        if form.is_valid():
            return _save_or_preview(request, form, None)
        return _render_editor(request, form, None, status=400)
    initial = {"enabled": True, "preview_range": DEFAULT_RANGE}
    if request.GET.get("group"):
        initial["group"] = request.GET["group"]
    return _render_editor(request, RulePageForm(initial=initial, schema=schema), None)


@require_perm(Perm.VIEW_ALERTS)
def rule_edit(request, rule_id):
    rule = get_object_or_404(AlertRule.objects.select_related("group"), public_id=rule_id)
    schema = request.tenant.schema_name
    if request.method == "POST":
        require_edit(request)
        form = RulePageForm(request.POST, schema=schema)
        if form.is_valid():
            return _save_or_preview(request, form, rule)
        return _render_editor(request, form, rule, status=400)
    initial = {**RulePageForm.initial_for(rule), "preview_range": DEFAULT_RANGE}
    return _render_editor(request, RulePageForm(initial=initial, schema=schema), rule)


@require_perm(Perm.VIEW_ALERTS)
@require_POST
def rule_toggle(request, rule_id):
    require_edit(request)
    rule = get_object_or_404(AlertRule, public_id=rule_id)
    services.update_rule(rule_id=rule.public_id, enabled=not rule.enabled, actor=actor(request))
    messages.success(request, f"Rule {rule.name} {'disabled' if rule.enabled else 'enabled'}.")
    return redirect("alert-rules")


@require_perm(Perm.VIEW_ALERTS)
@require_POST
def rule_delete(request, rule_id):
    require_edit(request)
    rule = get_object_or_404(AlertRule, public_id=rule_id)
    services.delete_rule(rule_id=rule.public_id, actor=actor(request))
    messages.success(request, f"Rule {rule.name} deleted.")
    return redirect("alert-rules")


# ---- the editor's live check -------------------------------------------------------------------


def _matching(names: list[str], prefix: str) -> list[str]:
    prefix = prefix.lower()
    starting = [n for n in names if n.lower().startswith(prefix)]
    containing = [n for n in names if prefix in n.lower() and n not in starting]
    return (starting + containing)[:MAX_SUGGESTIONS]


@require_perm(Perm.VIEW_ALERTS)
@require_POST
def rule_check(request):
    """JSON for the editor: does the expression parse (where not), the expression as it will
    run, and names from the tenant's own series that match the word being typed."""
    require_edit(request)
    expr = request.POST.get("expr", "")[: MAX_EXPRESSION_LENGTH + 1]
    word = request.POST.get("word", "")[:200]
    schema = request.tenant.schema_name
    answer: dict = {"ok": False, "error": None, "scoped": "", "suggestions": None}
    try:
        answer["scoped"] = scope_to_tenant(expr, schema)
        answer["ok"] = True
    except PromQLError as exc:
        answer["error"] = {"reason": exc.reason, "position": exc.position}
    try:
        metrics = queries.metric_names(schema)
        labels = queries.label_names(schema)
    except queries.Unavailable as exc:
        answer["suggestions_unavailable"] = exc.reason
    else:
        answer["suggestions"] = {
            "metrics": _matching(metrics, word),
            "labels": _matching(labels, word),
        }
    return JsonResponse(answer)
