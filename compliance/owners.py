"""Control owners follow membership: someone who leaves a tenant owns none of its controls."""

from __future__ import annotations

from django_tenants.utils import tenant_context

from compliance import services
from compliance.models import ControlStatus
from tenants import audit


def release_owner(sender, *, tenant, user, **kwargs) -> list[str]:
    """Receiver of `member_removed`: clear the person as owner of the tenant's controls."""
    with tenant_context(tenant):
        owned = ControlStatus.objects.filter(owner_email__iexact=user.email)
        owned = list(owned.values_list("control_code", "review_date"))
        actor = audit.Actor.system("member removed")
        for code, review_date in owned:
            services.set_owner(
                tenant=tenant,
                control_code=code,
                membership_id=None,
                review_date=review_date,
                actor=actor,
            )
    return [code for code, _ in owned]
