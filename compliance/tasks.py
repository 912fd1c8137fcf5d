"""Background work of the compliance app. Tenant tasks run in the schema of their sender."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string

from tenants.fanout import current_tenant, each_active_tenant
from tenants.links import tenant_url


@shared_task(routine=True)
def assess_tenant() -> dict:
    """Verify the audit chain, run the checks, expire attestations, snapshot today's scores."""
    from compliance.assessment import assess

    outcome = assess(current_tenant())
    return {"checked": outcome.checked, "expired": outcome.expired, "chain_ok": outcome.chain_ok}


@shared_task(platform_wide=True, routine=True)
def assess_all_tenants() -> int:
    """Fan out one assessment per active tenant, each sent from that tenant's context."""
    count = 0
    for _tenant in each_active_tenant():
        assess_tenant.delay()
        count += 1
    return count


@shared_task(max_retries=8)
def notify_attestation_expired(control_code: str, email: str) -> bool:
    """Tell a control's owner that its attestation expired and needs renewing."""
    from compliance import catalog

    info = catalog.control(control_code)
    tenant = current_tenant()
    context = {
        "tenant": tenant,
        "control_code": control_code,
        "control_title": info.title if info else control_code,
        "link": tenant_url(tenant, f"/compliance/controls/{control_code}/"),
    }
    send_mail(
        subject=f"[{tenant.name}] Attestation expired: {control_code}",
        message=render_to_string("compliance/attestation_expired_email.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[email],
    )
    return True
