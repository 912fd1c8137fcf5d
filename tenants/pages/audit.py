"""The audit trail page."""

from __future__ import annotations

from django.http import HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_GET

from tenants import audit
from tenants.pages.decorators import require_perm
from tenants.roles import Perm


@require_perm(Perm.VIEW_AUDIT)
@require_GET
def audit_trail(request):
    try:
        limit = int(request.GET.get("limit", 200))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        return HttpResponseBadRequest("limit: must be a whole number from 1 to 1000")
    filters = {key: request.GET.get(key, "").strip()[:100] for key in ("action", "actor", "text")}
    events = audit.events_for(request.tenant, **filters)[:limit]
    return render(request, "tenants/audit.html", {"events": events, "filters": filters})
