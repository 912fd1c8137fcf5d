"""The tenant home page and the health check."""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from portal.backends.health import backend_statuses
from tenants.summary import current_summary, worker_last_seen


@require_GET
def home(request):
    context = {
        "summary": current_summary(request.tenant),
        "worker_heartbeat": worker_last_seen(),
        # Cached for a few seconds and asked with short timeouts: a hung backend can't stall this.
        "backends": backend_statuses(),
    }
    return render(request, "tenants/home.html", context)


def healthz(request):
    return JsonResponse({"status": "ok"})


def favicon(request):
    """Browsers ask for /favicon.ico on every host; it lives with the static files."""
    return redirect(settings.STATIC_URL + "favicon.ico")
