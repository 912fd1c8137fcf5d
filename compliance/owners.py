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
        codes = list(owned.values_list("control_code", flat=True))
        actor = audit.Actor.system("member removed")
        for code in codes:
            current = ControlStatus.objects.get(control_code=code)
            services.set_owner(
                tenant=tenant,
                control_code=code,
                membership_id=None,
                review_date=current.review_date,
                actor=actor,
            )
    return codes
