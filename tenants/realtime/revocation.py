"""Closes live connections within a second when access goes (lifecycle hooks -> consumers).

Each hook tells the groups of the connections concerned to look at access again
(`TenantConsumer.access_revoked`); a connection whose user lost the permission it needs closes.
The event says nothing about what changed: the consumers ask the database, so a role change that
keeps the permission leaves the connection open.
"""

from __future__ import annotations

import logging

from portal.scoping import member_group, tenant_wide_group
from tenants import lifecycle
from tenants.models import Membership
from tenants.realtime.base import ACCESS_REVOKED
from tenants.realtime.broadcast import send_to_groups

logger = logging.getLogger(__name__)


def connect() -> None:
    """Subscribe to the tenant lifecycle hooks."""
    lifecycle.member_removed.connect(member_access_changed, dispatch_uid="realtime.member_removed")
    lifecycle.role_changed.connect(member_access_changed, dispatch_uid="realtime.role_changed")
    lifecycle.user_deactivated.connect(user_deactivated, dispatch_uid="realtime.user_deactivated")
    lifecycle.tenant_deactivated.connect(
        tenant_deactivated, dispatch_uid="realtime.tenant_deactivated"
    )
    # Connections of sessions not verified with a second factor close when it becomes required.
    lifecycle.two_factor_required.connect(
        two_factor_required, dispatch_uid="realtime.two_factor_required"
    )
    lifecycle.second_factor_removed.connect(
        second_factor_removed, dispatch_uid="realtime.second_factor_removed"
    )


def member_access_changed(sender, *, tenant, user, **kwargs) -> None:
    """A member was removed or given another role: their connections to the tenant look again."""
    # The membership may be gone already: the hook names the tenant and the person.
    notify_groups([member_group(tenant.schema_name, user.pk)])


def user_deactivated(sender, *, user, **kwargs) -> None:
    """A person can no longer sign in: their connections to every tenant look again."""
    schemas = Membership.objects.filter(user=user).values_list("tenant__schema_name", flat=True)
    notify_groups([member_group(schema, user.pk) for schema in schemas])


def tenant_deactivated(sender, *, tenant, **kwargs) -> None:
    """A tenant was switched off: every connection to it looks again."""
    notify_groups([tenant_wide_group(tenant.schema_name)])


def two_factor_required(sender, *, tenant, **kwargs) -> None:
    """The tenant now requires a verified session: every connection to it looks again."""
    notify_groups([tenant_wide_group(tenant.schema_name)])


def second_factor_removed(sender, *, user, **kwargs) -> None:
    """A person's authenticator app is gone, so none of their sessions is verified any more:
    their connections look again (in tenants that require a second factor they close)."""
    user_deactivated(sender, user=user)


def notify_groups(groups: list[str]) -> None:
    """Send the revocation event to each group (from synchronous code, after the commit)."""
    if send_to_groups(
        ((group, {"type": ACCESS_REVOKED}) for group in groups), what="access re-check"
    ):
        logger.debug("access re-check sent to %s", groups)
