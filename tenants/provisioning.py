"""Creating tenants: fast, by cloning the migrated template schema (`TENANT_BASE_SCHEMA`)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django_tenants.utils import get_public_schema_name, schema_context, schema_exists

from tenants import audit, lifecycle
from tenants.accounts.users import get_or_create_user, is_email
from tenants.actions import AuditAction
from tenants.models import Domain, Membership, Tenant
from tenants.roles import Role
from tenants.slugs import schema_name_for, validate_tenant_slug
from tenants.tasks import queue_invitation


def tenant_host(slug: str) -> str:
    return f"{slug}.{settings.PORTAL_BASE_DOMAIN}"


def ensure_template_schema(verbosity: int = 0) -> None:
    """Create the template schema if needed and bring it up to the latest tenant migrations.

    Run after every deploy: tenants cloned from a stale template would miss tables.
    """
    template = settings.TENANT_BASE_SCHEMA
    if not schema_exists(template):
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{template}"')
    call_command(
        "migrate_schemas",
        tenant=True,
        schema_name=template,
        interactive=False,
        verbosity=verbosity,
    )


def ensure_public_tenant() -> Tenant:
    """The row django-tenants needs for the public schema, served at the base domain."""
    tenant = Tenant.objects.filter(schema_name=get_public_schema_name()).first()
    if tenant is None:
        tenant = Tenant(schema_name=get_public_schema_name(), name="Platform")
        tenant.save(verbosity=0)
    Domain.objects.get_or_create(
        domain=settings.PORTAL_BASE_DOMAIN, defaults={"tenant": tenant, "is_primary": True}
    )
    return tenant


def provision_tenant(
    *, slug: str, name: str, admin_email: str | None, actor: audit.Actor
) -> Tenant:
    """Create a tenant (schema cloned from the template), its host, and its first admin.

    Raises ValidationError naming the field when the slug, the name or the e-mail is unusable;
    nothing is created then. Works from any schema context: tenants are created from public.
    """
    with schema_context(get_public_schema_name()):
        try:
            return _provision_tenant(slug=slug, name=name, admin_email=admin_email, actor=actor)
        except IntegrityError:
            # Lost a race with another provisioning of the same slug or host.
            raise ValidationError(
                {"slug": [f"A tenant with the slug '{slug}' already exists."]}
            ) from None


@transaction.atomic
def _provision_tenant(*, slug: str, name: str, admin_email: str | None, actor: audit.Actor):
    errors: dict[str, list[str]] = {}
    try:
        validate_tenant_slug(slug)
    except ValidationError as exc:
        errors["slug"] = exc.messages
    if not errors and Tenant.objects.filter(schema_name=schema_name_for(slug)).exists():
        errors["slug"] = [f"A tenant with the slug '{slug}' already exists."]
    if not name or not name.strip():
        errors["name"] = ["The name is required."]
    if admin_email is not None and not is_email(admin_email):
        errors["admin_email"] = [f"'{admin_email}' is not an e-mail address."]
    if errors:
        raise ValidationError(errors)
    if not schema_exists(settings.TENANT_BASE_SCHEMA):
        raise ValidationError(
            {"slug": ["The template schema is missing: run `manage.py setup_portal` first."]}
        )

    tenant = Tenant(schema_name=schema_name_for(slug), name=name.strip())
    tenant.save(verbosity=0)  # clones the template schema (auto_create_schema)
    domain = Domain.objects.create(domain=tenant_host(slug), tenant=tenant, is_primary=True)
    snapshot = {"slug": slug, "name": tenant.name, "domain": domain.domain}
    audit.record(
        actor=actor, action=AuditAction.TENANT_PROVISIONED, obj=tenant, after=snapshot, tenant=None
    )
    audit.record(
        actor=actor,
        action=AuditAction.TENANT_PROVISIONED,
        obj=tenant,
        after=snapshot,
        tenant=tenant,
    )
    if admin_email:
        user = get_or_create_user(admin_email)
        membership = Membership.objects.create(tenant=tenant, user=user, role=Role.ADMIN)
        queue_invitation(membership)
        audit.record(
            actor=actor,
            action=AuditAction.MEMBER_ADDED,
            obj=membership,
            after={"email": user.email, "role": Role.ADMIN},
            tenant=tenant,
        )
    lifecycle.send_on_commit(lifecycle.tenant_provisioned, Tenant, tenant=tenant)
    return tenant


def deactivate_tenant(*, tenant: Tenant, actor: audit.Actor) -> Tenant:
    """Close a tenant: its members, tokens and sockets are refused; its data stays.

    Raises ValidationError on `is_active` for the public schema (the platform itself). Sends
    `tenant_deactivated` once committed. Deactivating an inactive tenant changes nothing.
    """
    return _set_active(tenant=tenant, active=False, actor=actor)


def reactivate_tenant(*, tenant: Tenant, actor: audit.Actor) -> Tenant:
    """Open a deactivated tenant again, as it was."""
    return _set_active(tenant=tenant, active=True, actor=actor)


def _set_active(*, tenant: Tenant, active: bool, actor: audit.Actor) -> Tenant:
    if tenant.schema_name == get_public_schema_name():
        raise ValidationError({"is_active": ["The platform itself cannot be deactivated."]})
    with schema_context(get_public_schema_name()), transaction.atomic():
        locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
        if locked.is_active != active:
            locked.is_active = active
            locked.save(update_fields=["is_active"])
            action = AuditAction.TENANT_REACTIVATED if active else AuditAction.TENANT_DEACTIVATED
            before, after = {"is_active": not active}, {"is_active": active}
            for chain in (None, locked):  # the platform's trail and the tenant's own
                audit.record(
                    actor=actor, action=action, obj=locked, tenant=chain, before=before, after=after
                )
            if not active:
                lifecycle.send_on_commit(lifecycle.tenant_deactivated, Tenant, tenant=locked)
    tenant.is_active = active
    return locked
