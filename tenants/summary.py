"""Counts shown on a tenant's home page, computed in the tenant's schema."""

from __future__ import annotations

from django.utils import timezone

SUMMARY_CACHE_KEY = "tenant-summary"


def compute_summary(tenant) -> dict:
    from tenants.models import ApiToken, AuditEvent, Membership

    return {
        "tenant": tenant.schema_name,
        "members": Membership.objects.filter(tenant=tenant).count(),
        "active_tokens": ApiToken.objects.filter(tenant=tenant, revoked_at__isnull=True).count(),
        "audit_events": AuditEvent.objects.filter(tenant=tenant).count(),
        "computed_at": timezone.now().isoformat(),
    }
