"""Tenant hosts are for members only: anyone else gets 403 on every page."""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django_tenants.utils import get_public_schema_name

from tenants.access import request_access
from tenants.links import public_url

# Reachable without membership: signing in and out (anyone signed in may leave), and the API (it
# authenticates tokens itself and applies the same membership rule in its permission class).
_OPEN_PREFIXES = (
    "/favicon.ico",
    "/accounts/login/",
    "/accounts/logout/",
    "/accounts/handoff/",
    "/api/",
    "/healthz",
)


class TenantMembershipMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        tenant = getattr(request, "tenant", None)
        if tenant is None or tenant.schema_name == get_public_schema_name():
            return self.get_response(request)
        path = request.path_info
        if path.startswith(_OPEN_PREFIXES) or path.startswith(settings.STATIC_URL):
            return self.get_response(request)
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if request_access(request).role is None:
            raise PermissionDenied("You are not a member of this tenant.")
        if not tenant.is_active:
            return _deactivated(request, tenant)
        return self.get_response(request)


def _deactivated(request, tenant):
    """Tell a member why the tenant is closed, without the tenant's navigation."""
    context = {
        "deactivated_tenant": tenant,
        "profile_url": public_url("/accounts/profile/"),
        # Override the context processor's values: no tenant navigation for a closed tenant.
        "tenant_role": None,
        "can": {},
    }
    return render(request, "accounts/tenant_deactivated.html", context, status=403)
