"""Provisioning a tenant: a clone of the template schema, its host, first admin and audit trail.

Also covers the refusals (bad slugs, names and e-mail addresses change nothing) and `setup_portal`,
which keeps the template schema on the latest tenant migrations.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django_tenants.utils import schema_context

from tenants import audit
from tenants.models import AuditEvent, Domain, Membership, Tenant
from tenants.provisioning import provision_tenant
from tenants.roles import Role
from tenants.slugs import schema_name_for, slug_for, validate_tenant_slug
from tests.factories import MembershipFactory
from tests.helpers import client_on

TEMPLATE = settings.TENANT_BASE_SCHEMA
ACTOR = audit.Actor.system("provisioning tests")

# A slug is a lowercase DNS label (hyphens, no underscores); its schema has `_` for each `-`.
GOOD_SLUGS = ["a", "initech", "b2b", "a-b", "team-42", "x" * 63, "acme-eu-west-1"]
# (slug, a fragment of the reason given for refusing it)
BAD_SLUGS = [
    ("Bad", "not a valid slug"),
    ("1abc", "not a valid slug"),
    ("a_b", "not a valid slug"),
    ("a-", "not a valid slug"),
    ("-a", "not a valid slug"),
    ("a.b", "not a valid slug"),
    ("initech\n", "not a valid slug"),
    ("café", "not a valid slug"),
    ("x" * 64, "not a valid slug"),
    ("tenant_template", "not a valid slug"),
    ("pg_foo", "not a valid slug"),
    ("public", "reserved"),
    ("www", "reserved"),
    ("admin", "reserved"),
    # Reserved as a schema name: the template's schema, PostgreSQL's own `pg_` prefix.
    ("tenant-template", "reserved"),
    ("pg-foo", "reserved"),
    ("", "required"),
]
EXISTING_SLUG = ("acme", "already exists")
BAD_EMAILS = [
    "not-an-email",
    "boss@",
    "@initech.example",
    "boss@@initech.example",
    "boss @initech.example",
]


def _tables(schema: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema]
        )
        return {row[0] for row in cursor.fetchall()}


def _columns(schema: str) -> set[tuple[str, str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s",
            [schema],
        )
        return set(cursor.fetchall())


def _applied_migrations(schema: str) -> set[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT app, name FROM "{schema}".django_migrations')
        return set(cursor.fetchall())


def _schemas() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace")
        return {row[0] for row in cursor.fetchall()}


def _tenant_app_configs():
    return [cfg for cfg in apps.get_app_configs() if cfg.name in settings.TENANT_APPS]


def _tenant_model_tables() -> set[str]:
    return {
        model._meta.db_table
        for cfg in _tenant_app_configs()
        for model in cfg.get_models(include_auto_created=True)
    }


def _snapshot() -> dict[str, object]:
    """Everything a provisioning attempt could leave behind."""
    return {
        "tenants": Tenant.objects.count(),
        "domains": Domain.objects.count(),
        "memberships": Membership.objects.count(),
        "audit": AuditEvent.objects.count(),
        "users": get_user_model().objects.count(),
        "schemas": _schemas(),
    }


@pytest.fixture(autouse=True)
def _public_schema():
    """A request on a tenant host leaves the connection in that schema: start and end public."""
    connection.set_schema_to_public()
    yield
    connection.set_schema_to_public()


@dataclass
class Provisioned:
    tenant: Tenant
    output: str
    statements: list[str]
    # E-mails sent once the provisioning was committed.
    mails: list[EmailMessage]


@pytest.fixture
def initech(db, django_capture_on_commit_callbacks, eager_tasks, mailoutbox) -> Provisioned:
    """`manage.py provision_tenant initech ...`, with every SQL statement it sent recorded.

    The commit is simulated, so what provisioning queues for after it (the admin's invitation)
    runs too.
    """
    statements: list[str] = []

    def record_sql(execute, sql, params, many, context):
        statements.append(sql if isinstance(sql, str) else str(sql))
        return execute(sql, params, many, context)

    out = io.StringIO()
    # The on-commit callbacks run on leaving, after the SQL recording has stopped.
    with (
        django_capture_on_commit_callbacks(execute=True),
        connection.execute_wrapper(record_sql),
    ):
        call_command(
            "provision_tenant",
            "initech",
            name="Initech",
            admin_email="boss@initech.example",
            stdout=out,
        )
    connection.set_schema_to_public()
    return Provisioned(
        Tenant.objects.get(schema_name="initech"), out.getvalue(), statements, list(mailoutbox)
    )


def test_the_command_creates_the_tenant_its_domain_and_its_admin(initech):
    tenant = initech.tenant
    assert tenant.name == "Initech"
    assert "initech.localhost" in initech.output
    domain = Domain.objects.get(tenant=tenant)
    assert domain.domain == "initech.localhost"
    assert domain.is_primary
    membership = Membership.objects.get(tenant=tenant)
    assert membership.user.email == "boss@initech.example"
    assert membership.role == Role.ADMIN
    assert not membership.user.has_usable_password()


def test_the_new_admin_is_e_mailed_an_invitation_with_a_set_password_link(initech):
    assert len(initech.mails) == 1
    mail = initech.mails[0]
    assert mail.to == ["boss@initech.example"]
    assert mail.subject == "You have been added to Initech"
    assert "You have been given the role Tenant admin in Initech." in mail.body
    port = settings.PORTAL_PORT
    assert f"The tenant: http://initech.localhost:{port}/" in mail.body
    links = re.findall(r"\S+/accounts/reset/\S+/", mail.body)
    assert len(links) == 1
    assert links[0].startswith(f"http://localhost:{port}/accounts/reset/")


def test_the_new_schema_has_exactly_the_tables_of_the_template(initech):
    template_tables = _tables(TEMPLATE)
    new_tables = _tables("initech")
    assert template_tables, "the template schema has no tables"
    assert new_tables == template_tables
    assert _columns("initech") == _columns(TEMPLATE)


def test_the_new_schema_has_a_table_for_every_tenant_model_and_none_of_the_shared_ones(initech):
    tenant_tables = _tenant_model_tables()
    assert "dashboards_dashboard" in tenant_tables
    new_tables = _tables("initech")
    assert tenant_tables <= new_tables, tenant_tables - new_tables
    shared_only = {
        model._meta.db_table for model in apps.get_app_config("tenants").get_models()
    } | {get_user_model()._meta.db_table}
    assert not shared_only & new_tables


def test_the_new_schema_records_the_templates_migrations_without_running_them(initech):
    applied = _applied_migrations("initech")
    assert applied == _applied_migrations(TEMPLATE)
    assert ("dashboards", "0001_initial") in applied
    # The tables came from cloning the template; no migration created any of them.
    assert any("clone_schema(" in sql for sql in initech.statements)
    created = [sql for sql in initech.statements if sql.lstrip().upper().startswith("CREATE TABLE")]
    assert created == []


def _default_dashboard_titles() -> list[str]:
    """What the dashboards app gives every new tenant through the provisioning hook."""
    from dashboards.defaults import DEFAULT_DASHBOARDS

    return sorted(spec["title"] for spec in DEFAULT_DASHBOARDS)


def test_the_new_schema_starts_with_only_its_default_dashboards(initech):
    from dashboards.models import Dashboard

    with schema_context("initech"):
        titles = sorted(Dashboard.objects.values_list("title", flat=True))
    assert titles
    assert titles == _default_dashboard_titles()


def test_a_new_tenant_is_assessed_at_once_not_at_the_next_hour(initech):
    from compliance.models import ControlStatus, Source

    with schema_context("initech"):
        automated = ControlStatus.objects.filter(source=Source.AUTOMATED)
        assert automated.exists()


def test_the_cloned_tenant_serves_its_admin(initech):
    from dashboards.models import Dashboard

    with schema_context("acme"):
        acme_before = sorted(Dashboard.objects.values_list("title", flat=True))
    client = client_on("initech", get_user_model().objects.get(email="boss@initech.example"))

    home = client.get("/")
    assert home.status_code == 200
    assert b"Initech" in home.content
    assert client.get("/dashboards/").status_code == 200

    created = client.post("/dashboards/", {"title": "Initech uptime", "description": "SLOs"})
    assert created.status_code == 302
    connection.set_schema_to_public()

    with schema_context("initech"):
        titles = sorted(Dashboard.objects.values_list("title", flat=True))
    assert titles == sorted([*_default_dashboard_titles(), "Initech uptime"])
    with schema_context("acme"):
        assert sorted(Dashboard.objects.values_list("title", flat=True)) == acme_before
        assert not Dashboard.objects.filter(title="Initech uptime").exists()
    with schema_context(TEMPLATE):
        assert not Dashboard.objects.exists()


def test_the_cloned_tenant_is_closed_to_members_of_other_tenants(initech, acme):
    stranger = MembershipFactory(tenant=acme, role="admin").user
    assert client_on("initech", stranger).get("/dashboards/").status_code == 403


def test_provisioning_writes_the_platform_and_the_tenant_audit_events(initech):
    tenant = initech.tenant
    snapshot = {"slug": "initech", "name": "Initech", "domain": "initech.localhost"}

    platform = AuditEvent.objects.get(
        tenant__isnull=True, action="tenant.provisioned", object_id=str(tenant.public_id)
    )
    assert platform.after == snapshot
    assert platform.actor_kind == AuditEvent.ActorKind.SYSTEM
    assert platform.actor_label == "manage.py provision_tenant"
    assert platform.object_type == "tenants.tenant"

    chain = list(audit.events_for(tenant).order_by("seq"))
    assert [(event.seq, event.action) for event in chain[:2]] == [
        (1, "tenant.provisioned"),
        (2, "member.added"),
    ]
    # Then what the domain apps set up through the lifecycle hook, in the same chain.
    assert "dashboard.created" in {event.action for event in chain[2:]}
    assert all(event.actor_kind == AuditEvent.ActorKind.SYSTEM for event in chain[2:])
    assert chain[0].after == snapshot
    assert chain[1].after == {"email": "boss@initech.example", "role": Role.ADMIN}


@pytest.mark.parametrize("slug", GOOD_SLUGS)
def test_it_accepts_good_slugs(slug):
    assert validate_tenant_slug(slug) == slug


@pytest.mark.parametrize(
    ("slug", "schema"),
    [
        ("a", "a"),
        ("initech", "initech"),
        ("b2b", "b2b"),
        ("a-b", "a_b"),
        ("team-42", "team_42"),
        ("acme-eu-west-1", "acme_eu_west_1"),
        ("x" * 63, "x" * 63),
    ],
)
def test_a_slugs_schema_name_is_the_slug_with_underscores_for_hyphens(slug, schema):
    assert schema_name_for(slug) == schema
    assert slug_for(schema) == slug


def test_the_command_provisions_a_hyphenated_slug_into_an_underscored_schema(db):
    out = io.StringIO()
    call_command("provision_tenant", "new-co", name="New Co", stdout=out)
    connection.set_schema_to_public()

    tenant = Tenant.objects.get(schema_name="new_co")
    assert tenant.slug == "new-co"
    assert "new_co" in _schemas()
    assert _tables("new_co") == _tables(TEMPLATE)
    assert Domain.objects.get(tenant=tenant).domain == "new-co.localhost"
    assert "Tenant 'new-co' ready at new-co.localhost" in out.getvalue()
    # The slug, not the schema name, is what people see in the trail.
    event = AuditEvent.objects.get(tenant=tenant, action="tenant.provisioned")
    assert event.after == {"slug": "new-co", "name": "New Co", "domain": "new-co.localhost"}
    # A second tenant with the same slug is refused.
    with pytest.raises(CommandError, match="already exists"):
        call_command("provision_tenant", "new-co", name="New Co again")


@pytest.mark.parametrize(("slug", "reason"), BAD_SLUGS, ids=repr)
def test_validate_tenant_slug_rejects_bad_slugs(slug, reason):
    with pytest.raises(ValidationError) as excinfo:
        validate_tenant_slug(slug)
    assert reason in " ".join(excinfo.value.messages)


@pytest.mark.parametrize(("slug", "reason"), [*BAD_SLUGS, EXISTING_SLUG], ids=repr)
def test_provision_tenant_rejects_bad_slugs_and_creates_nothing(
    db, django_capture_on_commit_callbacks, slug, reason
):
    before = _snapshot()
    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(ValidationError) as excinfo,
    ):
        provision_tenant(slug=slug, name="Initech", admin_email="new@initech.example", actor=ACTOR)
    messages = excinfo.value.message_dict
    assert set(messages) == {"slug"}
    assert reason in " ".join(messages["slug"])
    assert _snapshot() == before
    assert callbacks == []  # no invitation is queued either
    assert not get_user_model().objects.filter(email="new@initech.example").exists()


@pytest.mark.parametrize(("slug", "reason"), [*BAD_SLUGS, EXISTING_SLUG], ids=repr)
def test_the_command_rejects_bad_slugs_naming_slug_and_reason(db, slug, reason):
    before = _snapshot()
    # As on a shell command line; `--` ends the options, so a slug like "-a" is the slug.
    args = ["--name", "Initech", "--admin-email", "new@initech.example", "--", slug]
    with pytest.raises(CommandError) as excinfo:
        call_command("provision_tenant", *args)
    message = str(excinfo.value)
    assert message.startswith("slug: ")
    assert reason in message
    if slug:
        assert f"'{slug}'" in message
    assert _snapshot() == before


@pytest.mark.parametrize("name", ["", "   "], ids=["empty", "blank"])
def test_an_empty_name_is_refused(db, name):
    before = _snapshot()
    with pytest.raises(ValidationError) as excinfo:
        provision_tenant(slug="initech", name=name, admin_email=None, actor=ACTOR)
    assert set(excinfo.value.message_dict) == {"name"}
    with pytest.raises(CommandError, match=r"\bname\b"):
        call_command("provision_tenant", "initech", name=name)
    assert _snapshot() == before


def test_the_command_requires_a_name(db):
    before = _snapshot()
    with pytest.raises(CommandError, match="--name"):
        call_command("provision_tenant", "initech")
    assert _snapshot() == before


@pytest.mark.parametrize("email", BAD_EMAILS)
def test_a_bad_admin_email_is_refused(db, email):
    before = _snapshot()
    with pytest.raises(ValidationError) as excinfo:
        provision_tenant(slug="initech", name="Initech", admin_email=email, actor=ACTOR)
    assert set(excinfo.value.message_dict) == {"admin_email"}
    with pytest.raises(CommandError) as command_error:
        call_command("provision_tenant", "initech", name="Initech", admin_email=email)
    assert "admin_email" in str(command_error.value)
    assert _snapshot() == before


def test_every_problem_is_reported_at_once(db):
    with pytest.raises(ValidationError) as excinfo:
        provision_tenant(slug="Bad", name="", admin_email="nobody", actor=ACTOR)
    assert set(excinfo.value.message_dict) == {"slug", "name", "admin_email"}


def _migration_rows(schema: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT id, app, name, applied FROM "{schema}".django_migrations ORDER BY id'
        )
        return cursor.fetchall()


def _database_state() -> dict[str, object]:
    return {
        "schemas": _schemas(),
        "migrations": {schema: _migration_rows(schema) for schema in ("public", TEMPLATE, "acme")},
    }


def _setup_portal() -> str:
    out = io.StringIO()
    call_command("setup_portal", verbosity=0, stdout=out)
    connection.set_schema_to_public()
    return out.getvalue()


def test_setup_portal_is_idempotent(db):
    first = _setup_portal()
    before = _database_state()
    second = _setup_portal()
    after = _database_state()

    assert "Database ready." in first
    assert "Database ready." in second
    # The second run creates no schema and applies (or re-records) no migration anywhere.
    assert after == before
    assert {"public", TEMPLATE, "acme", "globex"} <= after["schemas"]
    assert all(after["migrations"].values())
    assert _tenant_model_tables() <= _tables(TEMPLATE)


def test_the_template_has_every_tenant_migration_on_disk(db):
    loader = MigrationLoader(None, ignore_no_migrations=True)
    labels = {cfg.label for cfg in _tenant_app_configs()}
    on_disk = {key for key in loader.disk_migrations if key[0] in labels}
    assert ("dashboards", "0001_initial") in on_disk
    applied = _applied_migrations(TEMPLATE)
    assert on_disk <= applied, f"missing in the template: {sorted(on_disk - applied)}"
