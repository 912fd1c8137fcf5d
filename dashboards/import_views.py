"""Importing a dashboard on the pages: upload or paste a portal export or a Grafana dashboard,
then read what came over, what did not and why. The report waits in the cache under a random
token (for its importer, in this tenant) so that reloading it never imports twice."""

from __future__ import annotations

import secrets

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from redis.exceptions import RedisError

from dashboards import portable, services
from dashboards.forms import MAX_DOCUMENT_BYTES, MAX_PANELS, DashboardImportForm
from dashboards.models import Dashboard
from tenants import audit
from tenants.pages.decorators import require_perm
from tenants.roles import Perm

REPORT_SECONDS = 3600


def _key(token: str) -> str:
    # Django cache keys carry the tenant's schema (django_tenants.cache.make_key).
    return f"dashboard-import:{token}"


def import_report(plan: portable.ImportPlan, dashboard: Dashboard) -> dict:
    """What the report page shows: plain data, kept in the cache between import and reading."""
    return {
        "dashboard": str(dashboard.public_id),
        "title": dashboard.title,
        **portable.import_outcome(plan, dashboard),
    }


@require_perm(Perm.EDIT_DASHBOARDS)
def dashboard_import(request):
    form = DashboardImportForm()
    errors: list[str] = []
    if request.method == "POST":
        form = DashboardImportForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                plan = portable.read_document(
                    portable.load_document(form.cleaned_data["content"]),
                    schema=request.tenant.schema_name,
                )
                dashboard = services.import_dashboard(
                    plan=plan,
                    title=form.cleaned_data.get("title") or None,
                    actor=audit.Actor.from_request(request),
                )
            except portable.DocumentError as exc:
                errors = exc.errors
            except ValidationError as exc:
                title_errors, errors = portable.split_refusal(
                    exc, title_sent=bool(form.cleaned_data.get("title"))
                )
                if title_errors:
                    form.add_error("title", title_errors)
            else:
                report = import_report(plan, dashboard)
                token = secrets.token_urlsafe(24)
                try:
                    cache.set(
                        _key(token), {"user": request.user.pk, **report}, timeout=REPORT_SECONDS
                    )
                except RedisError:
                    # Imported all the same: show the report now rather than lose it.
                    return render(request, "dashboards/import_report.html", {"report": report})
                return redirect("dashboard-import-report", token=token)
    status = 400 if form.errors or errors else 200
    context = {
        "form": form,
        "errors": errors,
        "max_panels": MAX_PANELS,
        "max_mb": MAX_DOCUMENT_BYTES // (1024 * 1024),
    }
    return render(request, "dashboards/import.html", context, status=status)


@require_perm(Perm.VIEW_DASHBOARDS)
def dashboard_import_report(request, token):
    try:
        report = cache.get(_key(token))
    except RedisError:
        report = None
    if not report or report.get("user") != request.user.pk:
        raise Http404("This import report is not kept (any more).")
    return render(request, "dashboards/import_report.html", {"report": report})
