"""Template context: the current tenant, the viewer's role and what they may do."""

from django_tenants.utils import get_public_schema_name

from tenants.access import request_access
from tenants.roles import Perm


def tenant(request) -> dict:
    current = getattr(request, "tenant", None)
    if current is None or current.schema_name == get_public_schema_name():
        return {"current_tenant": None, "tenant_role": None, "can": {}}
    access = request_access(request)
    return {
        "current_tenant": current,
        "tenant_role": access.role,
        "can": {perm.value: access.can(perm) for perm in Perm},
    }
