"""View guards that ask `tenants.roles` whether the request may proceed."""

from functools import wraps

from django.core.exceptions import PermissionDenied

from tenants.access import request_access
from tenants.roles import Perm


def require_perm(perm: Perm):
    """403 unless the signed-in member's role grants `perm` in the current tenant."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request_access(request).can(perm):
                raise PermissionDenied(f"Your role does not allow this ({perm}).")
            return view(request, *args, **kwargs)

        wrapper.required_perm = perm
        return wrapper

    return decorator
