"""The tenant home page and the health check."""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from tenants.summary import current_summary, worker_last_seen


@require_GET
def home(request):
    context = {
        "summary": current_summary(request.tenant),
        "worker_heartbeat": worker_last_seen(),
        "backends": _backend_status(),
    }
    return render(request, "tenants/home.html", context)


def _backend_status() -> list[dict]:
    return [
        {"name": "Prometheus", "url": settings.PROMETHEUS_URL},
        {"name": "Alertmanager", "url": settings.ALERTMANAGER_URL},
        {"name": "Grafana", "url": settings.GRAFANA_URL},
    ]


def healthz(request):
    return JsonResponse({"status": "ok"})
