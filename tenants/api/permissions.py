"""The API's single permission class: every view names the Perm each method needs."""

from django_tenants.utils import get_public_schema_name
from rest_framework.permissions import SAFE_METHODS, BasePermission

from tenants.access import request_access
from tenants.models import ApiToken


class TenantPermission(BasePermission):
    """Member (by role) or token (by scope) of this host's tenant, with the view's permission.

    Views declare `read_perm` (safe methods) and `write_perm` (the rest); a view that declares
    neither is closed.
    """

    message = "You do not have access to this in this tenant."

    def has_permission(self, request, view) -> bool:
        tenant = getattr(request, "tenant", None)
        if tenant is None or tenant.schema_name == get_public_schema_name():
            return False
        if not tenant.is_active:
            return False
        if not isinstance(request.auth, ApiToken) and not request.user.is_authenticated:
            return False
        perm = getattr(view, "read_perm" if request.method in SAFE_METHODS else "write_perm", None)
        return perm is not None and request_access(request).can(perm)
