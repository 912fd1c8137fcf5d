"""factory-boy factories: people, tenants, memberships, API tokens and dashboards made on demand.

Tenants, tokens and dashboards are made through the product's own services (a tenant's schema is
cloned from the template, a token's secret exists only when it is issued, a dashboard write is
audited), so these factories only create; `build()` is refused for them. Everything a factory
makes lives in the test's transaction unless the caller commits it.
"""

from __future__ import annotations

from functools import lru_cache

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django_tenants.utils import tenant_context
from factory.django import DjangoModelFactory, Password

from dashboards.models import Dashboard
from dashboards.services import create_dashboard, create_panel
from tenants import audit, services
from tenants.accounts.users import username_for
from tenants.models import ApiToken, Membership, Tenant
from tenants.provisioning import provision_tenant
from tenants.roles import Role
from tenants.slugs import schema_name_for, slug_for
from tests.helpers import PASSWORD


@lru_cache
def _password_hash(password: str | None) -> str:
    """One hash per distinct password: hashing is slow on purpose; a shared salt harms no test."""
    return make_password(password)


def _system_actor() -> audit.Actor:
    return audit.Actor.system("test data")


class _CreateOnly:
    """Refuses `build()`: the object exists only once a service has created it."""

    @classmethod
    def _build(cls, model_class, *args, **kwargs):
        raise TypeError(f"{cls.__name__} only creates (through the service that makes it)")


class UserFactory(DjangoModelFactory):
    """A person who signs in with an e-mail address and the password "demo".

    `password=None` gives an account without a usable password, as an invitation leaves it.
    """

    class Meta:
        model = get_user_model()

    email = factory.Sequence(lambda n: f"person{n}@people.example")
    username = factory.LazyAttribute(lambda person: username_for(person.email))
    first_name = "Person"
    last_name = factory.Sequence(str)
    # Stored with the row (no second save); `password="..."` is hashed the same way.
    password = Password(PASSWORD, transform=_password_hash)


class TenantFactory(_CreateOnly, DjangoModelFactory):
    """A tenant provisioned as the platform does it: schema cloned, host, audit events.

    `slug=` picks the slug; `admin_email=` also makes a first admin (and queues the invitation).
    The `tenant_provisioned` hook runs on commit only, so a tenant made inside a test's
    transaction has no default dashboards.
    """

    class Meta:
        model = Tenant

    class Params:
        slug = factory.Sequence(lambda n: f"tenant-{n}")

    schema_name = factory.LazyAttribute(lambda tenant: schema_name_for(tenant.slug))
    name = factory.LazyAttribute(lambda tenant: f"Tenant {tenant.slug}")
    admin_email = None
    actor = factory.LazyFunction(_system_actor)

    @classmethod
    def _create(
        cls,
        model_class,
        *,
        schema_name: str,
        name: str,
        admin_email: str | None,
        actor: audit.Actor,
    ) -> Tenant:
        return provision_tenant(
            slug=slug_for(schema_name), name=name, admin_email=admin_email, actor=actor
        )


class MembershipFactory(DjangoModelFactory):
    """A person's `role` in a tenant (executive unless said otherwise)."""

    class Meta:
        model = Membership

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.EXECUTIVE


class ApiTokenFactory(_CreateOnly, DjangoModelFactory):
    """An API token issued by `tenants.services.create_token`; returns `(token, secret)`."""

    class Meta:
        model = ApiToken

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"token {n}")
    scopes = factory.LazyFunction(lambda: ["read"])
    created_by = None
    expires_at = None
    actor = factory.LazyFunction(_system_actor)

    @classmethod
    def _create(cls, model_class, **fields) -> tuple[ApiToken, str]:
        issued = services.create_token(**fields)
        return issued.token, issued.secret


class DashboardFactory(_CreateOnly, DjangoModelFactory):
    """A dashboard created in `tenant`'s schema by `dashboards.services`.

    The instance belongs to that schema: read it again inside `tenant_context(tenant)`.
    """

    class Meta:
        model = Dashboard

    tenant = factory.SubFactory(TenantFactory)
    title = factory.Sequence(lambda n: f"Dashboard {n}")
    description = ""
    actor = factory.LazyFunction(_system_actor)

    @classmethod
    def _create(cls, model_class, *, tenant: Tenant, **fields) -> Dashboard:
        with tenant_context(tenant):
            return create_dashboard(**fields)


def dashboard_with_panels(
    tenant: Tenant,
    title: str,
    panels: list[dict],
    *,
    description: str = "",
    actor: audit.Actor | None = None,
) -> Dashboard:
    """A dashboard of `tenant` made by `dashboards.services`, with each panel spec in order: its
    position from the order, and a 6 x 4 cell stacked down the first column unless it says
    where. Read it again inside `tenant_context(tenant)`."""
    actor = actor or _system_actor()
    with tenant_context(tenant):
        dashboard = create_dashboard(title=title, description=description, actor=actor)
        for position, spec in enumerate(panels):
            create_panel(
                dashboard_id=dashboard.public_id,
                position=position,
                actor=actor,
                **{"x": 0, "y": 4 * position, "w": 6, "h": 4, **spec},
            )
    return dashboard
