"""Dashboard pages; views stay thin and write through `dashboards.services`."""

import csv
import json
from datetime import UTC, datetime
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from dashboards import grafana_push, portable, queries, rendering, services
from dashboards.forms import DashboardForm, MetricDefinitionForm, PanelForm
from dashboards.models import Dashboard, MetricDefinition, Panel
from portal.backends.grafana import GrafanaBackend
from tenants import audit
from tenants.access import request_access
from tenants.pages.decorators import require_perm
from tenants.roles import Perm


def _require_edit(request) -> None:
    if not request_access(request).can(Perm.EDIT_DASHBOARDS):
        raise PermissionDenied(f"Your role does not allow this ({Perm.EDIT_DASHBOARDS}).")


@require_perm(Perm.VIEW_DASHBOARDS)
def dashboard_list(request):
    form = DashboardForm()
    if request.method == "POST":
        _require_edit(request)
        form = DashboardForm(request.POST)
        if form.is_valid():
            try:
                dashboard = services.create_dashboard(
                    actor=audit.Actor.from_request(request), **form.cleaned_data
                )
            except ValidationError as exc:
                form.add_service_errors(exc)
            else:
                return redirect("dashboard-page", dashboard_id=dashboard.public_id)
    context = {"dashboards": services.list_dashboards(), "form": form}
    return render(request, "dashboards/list.html", context, status=400 if form.errors else 200)


@require_perm(Perm.VIEW_DASHBOARDS)
def dashboard_detail(request, dashboard_id):
    """The dashboard; its editors change the title and description here too."""
    dashboard = get_object_or_404(Dashboard, public_id=dashboard_id)
    initial = {"title": dashboard.title, "description": dashboard.description}
    form = DashboardForm(initial=initial)
    if request.method == "POST":
        _require_edit(request)
        form = DashboardForm(request.POST, initial=initial)
        if form.is_valid():
            try:
                services.update_dashboard(
                    dashboard_id=dashboard.public_id,
                    actor=audit.Actor.from_request(request),
                    **form.cleaned_data,
                )
            except ValidationError as exc:
                form.add_service_errors(exc)
            else:
                messages.success(request, "Dashboard saved.")
                return redirect("dashboard-page", dashboard_id=dashboard.public_id)
    return _detail_page(request, dashboard, form, status=400 if form.errors else 200)


def _detail_page(request, dashboard: Dashboard, form, *, layout_errors=(), status=200):
    span = queries.time_range(request.GET)
    panels = list(services.panels_of(dashboard))
    context = {
        "dashboard": dashboard,
        "form": form,
        "panels": panels,
        "payloads": rendering.panel_payloads(dashboard, panels, span),
        "span": span,
        "ranges": list(queries.RANGES),
        "refresh": request.GET.get("refresh", "")
        if request.GET.get("refresh") in REFRESHES
        else "",
        "refreshes": REFRESHES,
        "query": _range_query(request),
        "layout_errors": list(layout_errors),
        "grafana": grafana_push.state_of(dashboard),
        "grafana_connected": GrafanaBackend().configured,
    }
    return render(request, "dashboards/detail.html", context, status=status)


# A layout names each panel once in about 100 characters; this is far beyond MAX_PANELS of them.
MAX_LAYOUT_CHARS = 200_000


@require_POST
@require_perm(Perm.EDIT_DASHBOARDS)
def dashboard_layout(request, dashboard_id):
    """Save the arrangement the page's arrange mode sends (JSON in the `layout` field)."""
    dashboard = get_object_or_404(Dashboard, public_id=dashboard_id)
    text = request.POST.get("layout", "")
    try:
        if len(text) > MAX_LAYOUT_CHARS:
            raise ValidationError({"layout": [f"Longer than {MAX_LAYOUT_CHARS} characters."]})
        try:
            layout = json.loads(text)
        except (ValueError, RecursionError):
            raise ValidationError({"layout": ["Not valid JSON."]}) from None
        services.arrange_panels(
            dashboard_id=dashboard.public_id,
            layout=layout,
            actor=audit.Actor.from_request(request),
        )
    except ValidationError as exc:
        initial = {"title": dashboard.title, "description": dashboard.description}
        form = DashboardForm(initial=initial)
        return _detail_page(request, dashboard, form, layout_errors=exc.messages, status=400)
    messages.success(request, "Layout saved.")
    return redirect("dashboard-page", dashboard_id=dashboard.public_id)


@require_GET
@require_perm(Perm.VIEW_DASHBOARDS)
def dashboard_export(request, dashboard_id):
    """The dashboard as a JSON document to keep in a repository or import elsewhere."""
    dashboard = get_object_or_404(Dashboard, public_id=dashboard_id)
    response = JsonResponse(
        portable.export_dashboard(dashboard), json_dumps_params={"indent": 2, "ensure_ascii": False}
    )
    slug = slugify(dashboard.title)[:80] or "dashboard"
    response["Content-Disposition"] = f'attachment; filename="{slug}.json"'
    return response


@require_POST
@require_perm(Perm.EDIT_DASHBOARDS)
def dashboard_delete(request, dashboard_id):
    dashboard = get_object_or_404(Dashboard, public_id=dashboard_id)
    services.delete_dashboard(
        dashboard_id=dashboard.public_id, actor=audit.Actor.from_request(request)
    )
    messages.success(request, f"Dashboard {dashboard.title} deleted.")
    return redirect("dashboards")


GRAFANA_ACTIONS = {
    "start": (grafana_push.start_push, "The dashboard is being pushed to Grafana."),
    "again": (grafana_push.push_again, "The dashboard is being pushed to Grafana again."),
    "stop": (grafana_push.stop_push, "No longer pushed; Grafana's copy is being removed."),
}


@require_POST
@require_perm(Perm.EDIT_DASHBOARDS)
def dashboard_grafana(request, dashboard_id):
    """Start, repeat or stop keeping the dashboard in the tenant's Grafana folder."""
    dashboard = get_object_or_404(Dashboard, public_id=dashboard_id)
    verb, done = GRAFANA_ACTIONS.get(request.POST.get("action", ""), (None, ""))
    if verb is None:
        messages.error(request, "Grafana: choose start, again or stop.")
        return redirect("dashboard-page", dashboard_id=dashboard.public_id)
    try:
        verb(dashboard_id=dashboard.public_id, actor=audit.Actor.from_request(request))
    except ValidationError as exc:
        for message in exc.message_dict.get("grafana", exc.messages):
            messages.error(request, message)
    else:
        messages.success(request, done)
    return redirect("dashboard-page", dashboard_id=dashboard.public_id)


# Page reloads the picker offers (seconds); live mode needs none.
REFRESHES = {"30": "30 s", "60": "1 min", "300": "5 min"}


def _range_query(request) -> str:
    """The range part of the page's query string, kept on every link of the page."""
    keep = {k: request.GET[k] for k in ("range", "from", "to", "refresh") if request.GET.get(k)}
    return urlencode(keep)


def _panel_or_404(dashboard: Dashboard, panel_id) -> Panel:
    return get_object_or_404(Panel, dashboard=dashboard, public_id=panel_id)


@require_perm(Perm.VIEW_DASHBOARDS)
def panel_csv(request, dashboard_id, panel_id):
    """The panel's series over the page's range as CSV (time, series labels, value)."""
    dashboard = get_object_or_404(Dashboard, public_id=dashboard_id)
    panel = _panel_or_404(dashboard, panel_id)
    span = queries.time_range(request.GET)
    try:
        series = queries.panel_series(panel, span, width=rendering.panel_width_px(panel))
    except queries.QueryError as exc:
        return HttpResponse(str(exc), status=409, content_type="text/plain; charset=utf-8")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    slug = slugify(panel.title) or "panel"
    response["Content-Disposition"] = f'attachment; filename="{slug}-{span.key}.csv"'
    writer = csv.writer(response)
    writer.writerow(["time", "series", "value"])
    for one in series:
        label = ",".join(f"{k}={v}" for k, v in sorted(one.labels.items())) or one.name
        for at, value in one.points:
            writer.writerow([datetime.fromtimestamp(at, tz=UTC).isoformat(), label, value])
    return response


def _panel_form_page(request, dashboard: Dashboard, panel: Panel | None):
    initial = {}
    if panel is not None:
        initial = {name: getattr(panel, name) for name in services.PANEL_FIELDS}
        initial["label_filter"] = ", ".join(f"{k}={v}" for k, v in panel.label_filter.items())
        initial["thresholds"] = ", ".join(f"{v:g}" for v in panel.thresholds)
    form = PanelForm(initial=initial)
    if request.method == "POST":
        form = PanelForm(request.POST, initial=initial)
        if form.is_valid():
            actor = audit.Actor.from_request(request)
            try:
                if panel is None:
                    services.create_panel(
                        dashboard_id=dashboard.public_id, actor=actor, **form.cleaned_data
                    )
                else:
                    services.update_panel(
                        panel_id=panel.public_id, actor=actor, **form.cleaned_data
                    )
            except ValidationError as exc:
                form.add_service_errors(exc)
            else:
                messages.success(request, "Panel saved.")
                return redirect("dashboard-page", dashboard_id=dashboard.public_id)
    context = {
        "dashboard": dashboard,
        "panel": panel,
        "form": form,
        "metrics": services.list_metrics(),
    }
    return render(
        request, "dashboards/panel_form.html", context, status=400 if form.errors else 200
    )


@require_perm(Perm.EDIT_DASHBOARDS)
def panel_create(request, dashboard_id):
    dashboard = get_object_or_404(Dashboard, public_id=dashboard_id)
    return _panel_form_page(request, dashboard, None)


@require_perm(Perm.EDIT_DASHBOARDS)
def panel_edit(request, dashboard_id, panel_id):
    dashboard = get_object_or_404(Dashboard, public_id=dashboard_id)
    return _panel_form_page(request, dashboard, _panel_or_404(dashboard, panel_id))


@require_POST
@require_perm(Perm.EDIT_DASHBOARDS)
def panel_delete(request, dashboard_id, panel_id):
    dashboard = get_object_or_404(Dashboard, public_id=dashboard_id)
    panel = _panel_or_404(dashboard, panel_id)
    services.delete_panel(panel_id=panel.public_id, actor=audit.Actor.from_request(request))
    messages.success(request, f"Panel {panel.title} deleted.")
    return redirect("dashboard-page", dashboard_id=dashboard.public_id)


@require_perm(Perm.VIEW_DASHBOARDS)
def metric_catalog(request):
    """The tenant's metric catalog; editors declare new metrics here."""
    form = MetricDefinitionForm(initial={"cardinality_limit": 1000, "category": "technical"})
    if request.method == "POST":
        _require_edit(request)
        form = MetricDefinitionForm(request.POST)
        if form.is_valid():
            try:
                metric = services.create_metric(
                    actor=audit.Actor.from_request(request), **form.cleaned_data
                )
            except ValidationError as exc:
                form.add_service_errors(exc)
            else:
                messages.success(request, f"{metric.name} added to the catalog.")
                return redirect("metric-catalog")
    context = {
        "metrics": services.list_metrics().annotate(series_count=Count("series")),
        "form": form,
    }
    return render(request, "dashboards/catalog.html", context, status=400 if form.errors else 200)


@require_POST
@require_perm(Perm.EDIT_DASHBOARDS)
def metric_delete(request, metric_id):
    metric = get_object_or_404(MetricDefinition, public_id=metric_id)
    services.delete_metric(metric_id=metric.public_id, actor=audit.Actor.from_request(request))
    messages.success(request, f"{metric.name} and its samples deleted.")
    return redirect("metric-catalog")
