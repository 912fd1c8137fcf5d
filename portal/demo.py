"""Demo data: tenants acme and globex with one user per role. Idempotent.

Each new tenant gets its default dashboards from the `tenant_provisioned` hook, as any tenant does.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from tenants import audit
from tenants.accounts.users import get_or_create_user
from tenants.models import Membership, Tenant
from tenants.provisioning import provision_tenant
from tenants.roles import Role

DEMO_PASSWORD = "demo"
DEMO_TENANTS = {"acme": "Acme Corporation", "globex": "Globex Industries"}
PLATFORM_ADMIN = "admin@platform.example"


def demo_email(role: str, slug: str) -> str:
    return f"{role}@{slug}.example"


@transaction.atomic
def seed_demo() -> list[str]:
    """Create what is missing of the demo data; return the logins."""
    actor = audit.Actor.system("demo seed")
    User = get_user_model()
    logins = []
    admin = User.objects.filter(username=PLATFORM_ADMIN).first()
    if admin is None:
        User.objects.create_superuser(PLATFORM_ADMIN, PLATFORM_ADMIN, DEMO_PASSWORD)
    logins.append(PLATFORM_ADMIN)
    for slug, name in DEMO_TENANTS.items():
        tenant = Tenant.objects.filter(schema_name=slug).first()
        if tenant is None:
            tenant = provision_tenant(slug=slug, name=name, admin_email=None, actor=actor)
        for role in Role:
            email = demo_email(role.value, slug)
            user = get_or_create_user(email)
            if not user.has_usable_password():
                user.first_name = role.label
                user.last_name = name.split()[0]
                user.set_password(DEMO_PASSWORD)
                user.save()
            _, created = Membership.objects.get_or_create(
                # Demo people are already in: they show as joined, not invited.
                tenant=tenant,
                user=user,
                defaults={"role": role.value, "joined_at": timezone.now()},
            )
            if created:
                audit.record(
                    actor=actor,
                    action="member.added",
                    tenant=tenant,
                    object_type="tenants.membership",
                    object_repr=email,
                    after={"email": email, "role": role.value},
                )
            logins.append(email)
    return logins
