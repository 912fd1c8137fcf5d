"""Incident changes pushed to the browsers of the tenant's incident desk, after commit.

Two groups per tenant: every change goes to the desk group; a security incident's change goes
only to the security group, which only members who may see security incidents join.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import connection, transaction

from portal.scoping import tenant_group
from tenants.realtime.broadcast import send_to_groups

logger = logging.getLogger(__name__)

CHANGED_EVENT = "incidents.changed"


def desk_group(schema_name: str) -> str:
    return tenant_group(schema_name, "incidents")


def security_group(schema_name: str) -> str:
    return tenant_group(schema_name, "incidents.security")


def push_on_commit(changes: Iterable[tuple[str, bool]]) -> None:
    """Tell the desk, once this transaction commits, that these incidents changed.

    `changes`: (incident public id, is security). One message per group, not per incident: a
    page refetches what it shows, however many changed.
    """
    ordinary, security = [], []
    for public_id, is_security in changes:
        (security if is_security else ordinary).append(str(public_id))
    if not ordinary and not security:
        return
    schema = connection.schema_name

    def send() -> None:
        events = [
            (desk_group(schema), {"type": CHANGED_EVENT, "incidents": ordinary[:200]}),
            (security_group(schema), {"type": CHANGED_EVENT, "incidents": security[:200]}),
        ]
        send_to_groups(((g, e) for g, e in events if e["incidents"]), what="incident changes")

    transaction.on_commit(send)
