"""Background work of the tenants app. Tasks run in the schema of the tenant that sent them."""

from __future__ import annotations

import logging
import smtplib

from celery import shared_task
from django.db import connection, transaction
from django_tenants.utils import get_public_schema_name, tenant_context

from portal.tasks import queue
from tenants.accounts.invitations import send_invitation
from tenants.summary import record_worker_seen, refresh_summary

logger = logging.getLogger(__name__)


# Platform-wide: memberships live in the public schema, and provisioning sends it from there.
# A mail server outage (OSError, SMTP 4xx) is retried, not lost; a refused address is not.
@shared_task(platform_wide=True, max_retries=8)
def send_invitation_email(membership_id: int) -> bool:
    """E-mail a new member their invitation."""
    return _send_invitation(membership_id)


def _send_invitation(membership_id: int) -> bool:
    from tenants.models import Membership

    membership = Membership.objects.select_related("user", "tenant").filter(pk=membership_id)
    membership = membership.first()
    if membership is None:  # removed before the mail went out
        return False
    send_invitation(membership)
    return True


# Stores its result (unless the sender says otherwise): callers may wait for a fresh summary.
@shared_task(ignore_result=False, routine=True)
def refresh_tenant_summary() -> dict:
    """Recompute the current tenant's home-page counts and cache them (tenant-scoped key)."""
    return refresh_summary(connection.tenant)


@shared_task(platform_wide=True, routine=True)
def refresh_all_tenant_summaries() -> int:
    """Fan out one summary refresh per active tenant, each sent from that tenant's context."""
    from tenants.models import Tenant

    count = 0
    for tenant in Tenant.objects.filter(is_active=True).exclude(
        schema_name=get_public_schema_name()
    ):
        with tenant_context(tenant):
            # Nobody reads these results: don't store a tenant's counts in the result backend.
            refresh_tenant_summary.apply_async(ignore_result=True)
        count += 1
    return count


@shared_task(platform_wide=True, routine=True)
def record_worker_heartbeat() -> str:
    """Lets pages show whether background work is running (a platform-level, public key)."""
    return record_worker_seen()


@shared_task(platform_wide=True)
def record_audit_chain_heads() -> dict[str, int]:
    """Record each audit chain's newest event outside the audit table (daily, from beat)."""
    from tenants.audit_chain import record_heads

    counts = {"recorded": 0, "unchanged": 0, "refused": 0}
    for outcome in record_heads():
        counts[outcome.status] += 1
    return counts


def queue_invitation(membership) -> None:
    """Send the invitation once the membership is committed (and never if it is rolled back);
    without a reachable queue it is sent from here, so the invitation is not lost."""

    def send() -> None:
        if not queue(send_invitation_email, membership.pk, what="an invitation (sent now)"):
            try:
                _send_invitation(membership.pk)
            except (OSError, smtplib.SMTPException) as mail_error:
                # The membership is committed; its admin can send the invitation again.
                logger.error("invitation to member %s not sent: %s", membership.pk, mail_error)

    transaction.on_commit(send)
