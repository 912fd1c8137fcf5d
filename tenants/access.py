"""Whose request is this, and what may they do: resolves a principal against `tenants.roles`.

`roles` holds the tables (role and scope -> permissions) and imports no model; this module looks
up the membership or token behind a user or request and asks those tables.
"""

from __future__ import annotations

from tenants.models import ApiToken, Membership
from tenants.roles import Access, Role, access_for_role, access_for_scopes


def role_of(user, tenant) -> Role | None:
    """The user's role in `tenant`, or None when they are not a member."""
    if user is None or not user.is_authenticated or tenant is None:
        return None
    role = (
        Membership.objects.filter(tenant=tenant, user=user, user__is_active=True)
        .values_list("role", flat=True)
        .first()
    )
    return Role(role) if role else None


def access_of(user, tenant) -> Access:
    """What `user` may do in `tenant`."""
    return access_for_role(role_of(user, tenant))


def request_access(request) -> Access:
    """What the request's principal (a token, else the user) may do in the request's tenant."""
    token = getattr(request, "auth", None)
    if isinstance(token, ApiToken):
        return access_for_scopes(token.scope_set)
    # The user is the same in middleware, views and DRF, so the membership is read once.
    cached = getattr(request, "_member_access", None)
    if cached is None:
        cached = access_of(getattr(request, "user", None), getattr(request, "tenant", None))
        request._member_access = cached
    return cached
