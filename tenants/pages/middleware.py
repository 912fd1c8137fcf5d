"""Tenant hosts are for members only: anyone else gets 403 on every page.

A tenant that requires two-factor sign-in also refuses its members' sessions that were not
verified with a code, with a page that says how to verify (or first set up an app). The API
applies the same rule to sessions in its permission class; API tokens are not people and are
not asked for a code.
"""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django_tenants.utils import get_public_schema_name

from tenants.access import request_access
from tenants.accounts import two_factor
from tenants.accounts.forms import CodeForm
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


# Reachable by a member whose session is not verified yet: where they set up their app (the code
# step is the sign-in page, open to all).
_UNVERIFIED_PREFIXES = ("/accounts/profile/",)


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
        if (
            tenant.require_two_factor
            and not path.startswith(_UNVERIFIED_PREFIXES)
            and not two_factor.is_verified(request)
        ):
            return _two_factor_required(request, tenant)
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


def _two_factor_required(request, tenant):
    """Tell a member this tenant wants a verified session: the code step when they have an app,
    else where to set one up. Without the tenant's navigation: none of it would open."""
    has_app = two_factor.has_device(request.user)
    context = {
        "required_by": tenant,
        "has_app": has_app,
        "code_form": CodeForm(auto_id="id_verify_%s") if has_app else None,
        "next": request.get_full_path(),
        "tenant_role": None,
        "can": {},
    }
    return render(request, "accounts/two_factor_required.html", context, status=403)
