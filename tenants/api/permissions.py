"""The API's single permission class: each view maps its actions to the Perm they need."""

from __future__ import annotations

from django_tenants.utils import get_public_schema_name
from rest_framework.permissions import BasePermission

from tenants.access import request_access
from tenants.accounts import two_factor
from tenants.models import ApiToken
from tenants.roles import Perm

TWO_FACTOR_MESSAGE = (
    "This tenant requires two-factor sign-in: verify this session with a code from your "
    "authenticator app, or use an API token."
)


def action_name(request, view) -> str | None:
    """The action a request asks for, or None when its method routes to nothing (a 405).

    Viewsets name actions (`list`, `create`, `acknowledge`...); plain API views use the method
    (`get`, `post`...), HEAD counting as GET.
    """
    if hasattr(view, "action_map"):
        # DRF names OPTIONS "metadata"; without a metadata class it is a 405 like any other.
        if view.action == "metadata" and view.metadata_class is None:
            return None
        return view.action
    method = request.method.lower()
    if method == "head":
        method = "get"
    if method == "options" or method not in view.http_method_names or not hasattr(view, method):
        return None
    return method


def required_perm(request, view) -> Perm | None:
    """The Perm the view declares for this request's action; None if it declares none."""
    name = action_name(request, view)
    return None if name is None else getattr(view, "action_permissions", {}).get(name)


class TenantPermission(BasePermission):
    """A member (by role) or a token (by scope) of this host's tenant, with the action's Perm.

    Views declare `action_permissions` ({action: Perm}); an action missing from it is refused
    (fail closed). A method the view does not route is let through to DRF's 405, but only for
    the tenant's own members and tokens.
    """

    message = "You do not have access to this in this tenant."

    def has_permission(self, request, view) -> bool:
        tenant = getattr(request, "tenant", None)
        if tenant is None or tenant.schema_name == get_public_schema_name():
            return False
        if not tenant.is_active:
            return False
        access = request_access(request)
        if not isinstance(request.auth, ApiToken):
            if access.role is None:
                return False
            # A person's session, where the tenant requires a second factor, must have given a
            # code (tokens are not people: their scopes are the whole rule).
            if tenant.require_two_factor and not two_factor.is_verified(request):
                self.message = TWO_FACTOR_MESSAGE
                return False
        if action_name(request, view) is None:
            return True
        perm = required_perm(request, view)
        return perm is not None and access.can(perm)
