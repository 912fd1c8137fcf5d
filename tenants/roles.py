"""Who may do what: the one place that decides, used by views, the API and WebSocket consumers."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from django.db import models


class Role(models.TextChoices):
    EXECUTIVE = "executive", "Executive"
    OPERATOR = "operator", "Operator"
    SECURITY = "security", "Security"
    ADMIN = "admin", "Tenant admin"


class TokenScope(models.TextChoices):
    READ = "read", "Read everything the tenant can see"
    WRITE = "write", "Change alert rules, dashboards and incidents (reading needs read too)"
    INGEST = "ingest", "Push custom metrics"
    WEBHOOK = "webhook", "Deliver Alertmanager webhooks"


class Perm(enum.StrEnum):
    VIEW_TENANT = "view_tenant"
    VIEW_DASHBOARDS = "view_dashboards"
    EDIT_DASHBOARDS = "edit_dashboards"
    VIEW_ALERTS = "view_alerts"
    EDIT_ALERTS = "edit_alerts"
    VIEW_INCIDENTS = "view_incidents"
    MANAGE_INCIDENTS = "manage_incidents"
    # Security-category incidents (and their chain of custody): security staff and admins only.
    VIEW_SECURITY_INCIDENTS = "view_security_incidents"
    VIEW_COMPLIANCE = "view_compliance"
    EDIT_COMPLIANCE = "edit_compliance"
    VIEW_AUDIT = "view_audit"
    VIEW_MEMBERS = "view_members"
    MANAGE_MEMBERS = "manage_members"
    MANAGE_TOKENS = "manage_tokens"
    MANAGE_SETTINGS = "manage_settings"
    ADMIN_SITE = "admin_site"
    INGEST_METRICS = "ingest_metrics"
    RECEIVE_WEBHOOKS = "receive_webhooks"


_VIEW_ALL = {
    Perm.VIEW_TENANT,
    Perm.VIEW_DASHBOARDS,
    Perm.VIEW_ALERTS,
    Perm.VIEW_INCIDENTS,
    Perm.VIEW_COMPLIANCE,
}

ROLE_PERMS: dict[Role, frozenset[Perm]] = {
    Role.EXECUTIVE: frozenset({Perm.VIEW_TENANT, Perm.VIEW_DASHBOARDS, Perm.VIEW_COMPLIANCE}),
    # Operators are on call: they acknowledge, assign and resolve the incidents they can see.
    Role.OPERATOR: frozenset(
        _VIEW_ALL | {Perm.EDIT_DASHBOARDS, Perm.EDIT_ALERTS, Perm.MANAGE_INCIDENTS}
    ),
    Role.SECURITY: frozenset(
        _VIEW_ALL
        | {
            Perm.MANAGE_INCIDENTS,
            Perm.VIEW_SECURITY_INCIDENTS,
            Perm.EDIT_COMPLIANCE,
            Perm.VIEW_AUDIT,
        }
    ),
    Role.ADMIN: frozenset(
        _VIEW_ALL
        | {
            Perm.EDIT_DASHBOARDS,
            Perm.EDIT_ALERTS,
            Perm.MANAGE_INCIDENTS,
            Perm.VIEW_SECURITY_INCIDENTS,
            Perm.EDIT_COMPLIANCE,
            Perm.VIEW_AUDIT,
            Perm.VIEW_MEMBERS,
            Perm.MANAGE_MEMBERS,
            Perm.MANAGE_TOKENS,
            Perm.MANAGE_SETTINGS,
            Perm.ADMIN_SITE,
        }
    ),
}

# Tokens act for scripts, never for people: no token can manage members or other tokens, and no
# token sees security incidents (their chain of custody names people, not scripts).
# `write` does not imply `read` (least privilege): a script that only pushes changes cannot list
# anything; it gets back the object it wrote. See docs/api.md.
SCOPE_PERMS: dict[TokenScope, frozenset[Perm]] = {
    TokenScope.READ: frozenset(_VIEW_ALL | {Perm.VIEW_MEMBERS, Perm.VIEW_AUDIT}),
    TokenScope.WRITE: frozenset(
        {Perm.EDIT_DASHBOARDS, Perm.EDIT_ALERTS, Perm.MANAGE_INCIDENTS, Perm.EDIT_COMPLIANCE}
    ),
    TokenScope.INGEST: frozenset({Perm.INGEST_METRICS}),
    TokenScope.WEBHOOK: frozenset({Perm.RECEIVE_WEBHOOKS}),
}


@dataclass(frozen=True)
class Access:
    """What one principal (a member or a token) may do in one tenant."""

    perms: frozenset[Perm]
    role: Role | None = None

    def can(self, perm: Perm) -> bool:
        return perm in self.perms


NO_ACCESS = Access(perms=frozenset())


def access_for_role(role: str | None) -> Access:
    if role is None or role not in Role.values:
        return NO_ACCESS
    return Access(perms=ROLE_PERMS[Role(role)], role=Role(role))


def access_for_scopes(scopes: frozenset[TokenScope]) -> Access:
    perms: set[Perm] = set()
    for scope in scopes:
        perms |= SCOPE_PERMS[scope]
    return Access(perms=frozenset(perms))
