"""Edges found in review: deactivated tenants, admin history, lockout case, outages, bad input."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context
from websockets.exceptions import InvalidStatus

from dashboards import services as dashboard_services
from dashboards.models import Dashboard
from tenants import audit, services
from tenants.models import ApiToken, AuditEvent, Membership
from tenants.provisioning import deactivate_tenant, provision_tenant
from tenants.realtime.middleware import _same_origin
from tests.conftest import BASE_DIR, PASSWORD
from tests.helpers import bearer
from tests.websockets_client import cookie_of, create_session, delete_sessions, open_presence

DEAD_REDIS = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "OPTIONS": {"socket_connect_timeout": 0.2},
    }
}


def _python(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the project's Python with `args` in a fresh process with its own environment."""
    return subprocess.run(
        [sys.executable, *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )


def test_a_deactivated_tenant_refuses_pages_api_sessions_and_tokens(client_for, acme):
    issued = services.create_token(
        tenant=acme, name="cron", scopes=["read"], actor=audit.Actor.system("test")
    )
    deactivate_tenant(tenant=acme, actor=audit.Actor.system("test"))

    assert client_for("acme", "admin").get("/").status_code == 403
    assert client_for("acme", "admin").get("/api/v1/dashboards/").status_code == 403
    by_token = client_for("acme").get("/api/v1/dashboards/", **bearer(issued.secret))
    assert by_token.status_code == 401


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        ("http://acme.localhost:8000", "acme.localhost:8000", True),
        ("http://globex.localhost:8000", "acme.localhost:8000", False),
        ("http://acme.localhost:9999", "acme.localhost:8000", False),
        # A socket without an Origin is refused.
        (None, "acme.localhost:8000", False),
    ],
)
def test_the_same_origin_check_compares_origin_and_host(origin, host, allowed):
    headers = [(b"host", host.encode())]
    if origin:
        headers.append((b"origin", origin.encode()))
    assert _same_origin({"headers": headers}) is allowed


@pytest.fixture
def acme_admin_cookie(django_db_blocker) -> Iterator[str]:
    """A committed session of acme's admin (the ASGI server reads it), deleted afterwards."""
    store = create_session("admin@acme.example", django_db_blocker)
    try:
        yield cookie_of(store)
    finally:
        delete_sessions([store], django_db_blocker)


def test_the_served_app_takes_presence_sockets_only_from_the_tenants_own_pages(
    live_server_url, acme_admin_cookie
):
    port = live_server_url.rsplit(":", 1)[1]
    host = "acme.localhost"

    # The member's socket from a page of acme's own host opens...
    with open_presence(live_server_url, host, acme_admin_cookie) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "presence"

    # ...the same member's socket from a page of a sibling tenant host (which shares the
    # cookies of `.localhost`) is refused, and so is one that names no Origin at all.
    for origin in (f"http://globex.localhost:{port}", None):
        with (
            pytest.raises(InvalidStatus) as refused,
            open_presence(live_server_url, host, acme_admin_cookie, origin=origin),
        ):
            pass
        assert refused.value.response.status_code == 403, origin


def test_the_tenant_admin_neither_writes_nor_shows_djangos_shared_history(client_for, acme):
    with schema_context("acme"):
        dashboard = Dashboard.objects.get(pk=1)
    admin = client_for("acme", "admin")
    before = LogEntry.objects.count()

    response = admin.post(
        f"/admin/dashboards/dashboard/{dashboard.pk}/change/",
        {"title": "Board room", "description": "changed in the admin"},
    )

    assert response.status_code == 302
    assert LogEntry.objects.count() == before
    last = AuditEvent.objects.filter(tenant=acme).order_by("-seq").first()
    assert last.action == "dashboard.updated" and last.after["title"] == "Board room"
    history = admin.get(f"/admin/dashboards/dashboard/{dashboard.pk}/history/")
    assert history.status_code == 404


def test_a_signed_in_tenant_admin_at_the_admin_login_goes_to_the_admin(client_for):
    response = client_for("acme", "admin").get("/admin/login/?next=/admin/tenants/membership/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/tenants/membership/"
    elsewhere = client_for("acme", "admin").get("/admin/login/?next=https://evil.example/")
    assert elsewhere["Location"] == "/admin/"


def test_the_platform_admin_is_for_superusers_not_staff(db):
    staff = get_user_model().objects.create_user(
        "staff@platform.example", "staff@platform.example", PASSWORD, is_staff=True
    )
    client = Client(HTTP_HOST="localhost")
    client.force_login(staff, backend="tenants.accounts.backends.EmailBackend")
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_lockout_counts_case_variants_of_one_account_together(db):
    client = Client(HTTP_HOST="acme.localhost", REMOTE_ADDR="10.9.8.7")
    for variant in ["Admin@acme.example", "ADMIN@ACME.EXAMPLE", " admin@acme.example"] * 2:
        client.post("/accounts/login/", {"username": variant, "password": "wrong"})
    right = client.post(
        "/accounts/login/", {"username": "admin@Acme.example", "password": PASSWORD}
    )
    assert right.status_code == 429


def test_writes_made_under_schema_context_land_in_that_tenants_trail(acme):
    with schema_context("acme"):
        dashboard_services.create_dashboard(title="Ops", actor=audit.Actor.system("shell"))
    event = AuditEvent.objects.order_by("-pk").first()
    assert event.action == "dashboard.created"
    assert event.tenant_id == acme.pk


def test_a_tenant_with_a_hyphenated_slug_is_reachable(client_for, db):
    tenant = provision_tenant(
        slug="north-wind", name="Northwind", admin_email=None, actor=audit.Actor.system("test")
    )
    assert tenant.schema_name == "north_wind" and tenant.slug == "north-wind"
    services.add_member(
        tenant=tenant, email="operator@acme.example", role="operator", actor=audit.Actor.system("t")
    )
    assert client_for("north-wind", email="operator@acme.example").get("/").status_code == 200


def test_the_home_page_works_while_the_cache_is_down(client_for, acme, settings, caplog):
    # One more member than the seed has, so the count shown cannot be an old cached one.
    services.add_member(
        tenant=acme, email="cache-down@corp.example", role="operator", actor=audit.Actor.system("t")
    )
    members = Membership.objects.filter(tenant=acme).count()
    settings.CACHES = DEAD_REDIS

    with caplog.at_level(logging.WARNING, logger="tenants.summary"):
        response = client_for("acme", "admin").get("/")

    assert response.status_code == 200
    html = response.content.decode()
    # The summary was computed directly, since the cache could not be read.
    assert "cache unavailable; computing the tenant summary directly" in caplog.text
    assert f"<p>{members} members.</p>" in html
    assert "not seen yet" in html  # the worker heartbeat is unknown, not an error


def test_hand_over_and_token_creation_answer_503_while_the_cache_is_down(client_for, settings):
    from tenants.accounts import handoff
    from tenants.models import Tenant

    user = get_user_model().objects.get(email="admin@acme.example")
    ticket = handoff.make_ticket(user, Tenant.objects.get(schema_name="acme"))
    admin = client_for("acme", "admin")
    page = admin.get("/tokens/").content.decode()
    nonce = page.split('name="form_nonce" value="')[1].split('"')[0]
    settings.CACHES = DEAD_REDIS

    redeemed = Client(HTTP_HOST="acme.localhost").post("/accounts/handoff/", {"ticket": ticket})
    token = admin.post("/tokens/", {"name": "x", "scopes": ["read"], "form_nonce": nonce})

    assert redeemed.status_code == 503
    assert token.status_code == 503
    assert not ApiToken.objects.filter(name="x").exists()


def test_an_expired_token_cannot_be_rotated_into_a_fresh_one(client_for, acme):
    issued = services.create_token(
        tenant=acme,
        name="old",
        scopes=["read"],
        actor=audit.Actor.system("test"),
        expires_at=timezone.now() + timedelta(hours=1),
    )
    # Issued while still valid, then its expiry moved into the past.
    ApiToken.objects.filter(pk=issued.token.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    response = client_for("acme", "admin").post(f"/tokens/{issued.token.public_id}/rotate/")
    assert response.status_code == 302
    assert ApiToken.objects.filter(tenant=acme, name="old").count() == 1


def test_api_ids_that_are_not_uuids_are_not_found(client_for):
    response = client_for("acme", "admin").patch(
        "/api/v1/dashboards/1/", {"title": "x"}, content_type="application/json"
    )
    assert response.status_code == 404


def test_an_unchanged_dashboard_update_records_nothing(acme):
    with schema_context("acme"):
        dashboard = Dashboard.objects.get(pk=1)
        before = AuditEvent.objects.count()
        dashboard_services.update_dashboard(
            dashboard_id=dashboard.public_id, title=dashboard.title, actor=audit.Actor.system("t")
        )
    assert AuditEvent.objects.count() == before


@pytest.mark.parametrize("level", ["prod", "Production", "test"])
def test_an_unknown_monitoring_level_stops_the_start(level, process_env):
    env = dict(process_env, MONITORING_LEVEL=level)
    result = _python("manage.py", "check", env=env)
    assert result.returncode != 0
    assert "MONITORING_LEVEL" in result.stderr and level in result.stderr


def test_production_refuses_debug_and_warns_without_a_mail_server(process_env):
    env = dict(
        process_env,
        MONITORING_LEVEL="production",
        SECRET_KEY="x" * 20 + "y" * 20 + "z" * 20 + "0123456789",
        ALLOWED_HOSTS="portal.example.com,.portal.example.com",
        DEBUG="true",
    )
    env.pop("EMAIL_URL", None)
    result = _python("manage.py", "check", env=env)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "portal.E003" in output and "portal.W001" in output


def test_security_staff_narrow_the_audit_trail_by_action_and_actor(client_for, acme):
    services.create_token(tenant=acme, name="n1", scopes=["read"], actor=audit.Actor.system("bot"))
    security = client_for("acme", "security")

    page = security.get("/audit/?action=token.&actor=bot").content.decode()
    api = security.get("/api/v1/audit-events/?action=member.").json()["results"]

    assert "token.created" in page and "member.added" not in page
    assert api and all(row["action"].startswith("member.") for row in api)


def test_the_asgi_app_refuses_to_start_in_production_with_development_settings(process_env):
    env = dict(process_env, MONITORING_LEVEL="production", ALLOWED_HOSTS="portal.example.com")
    env.pop("SECRET_KEY", None)
    result = _python("-c", "import portal.asgi", env=env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "portal.E001" in result.stderr


def _platform_admin() -> Client:
    client = Client(HTTP_HOST="localhost")
    client.force_login(
        get_user_model().objects.get(email="admin@platform.example"),
        backend="tenants.accounts.backends.EmailBackend",
    )
    return client


def test_the_platform_admin_never_deletes_people(db):
    victim = get_user_model().objects.get(email="operator@acme.example")
    client = _platform_admin()

    deleted = client.post(f"/admin/auth/user/{victim.pk}/delete/", {"post": "yes"})

    assert deleted.status_code == 403
    assert get_user_model().objects.filter(pk=victim.pk).exists()


def _change_user(client: Client, user, **changes):
    form = {
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "is_active": "on" if user.is_active else "",
        "is_staff": "on" if user.is_staff else "",
        "is_superuser": "on" if user.is_superuser else "",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "initial-date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "initial-date_joined_1": user.date_joined.strftime("%H:%M:%S"),
    }
    if user.last_login is not None:
        # Browser tests sign the seeded people in (committed): post the value the page shows.
        # Seconds only, as the form shows them, so the time must be kept as it is.
        for prefix in ("", "initial-"):
            form[f"{prefix}last_login_0"] = user.last_login.strftime("%Y-%m-%d")
            form[f"{prefix}last_login_1"] = user.last_login.strftime("%H:%M:%S")
    form.update(changes)
    return client.post(f"/admin/auth/user/{user.pk}/change/", form, follow=True)


def test_deactivating_a_tenants_only_admin_is_refused_and_changes_nothing(db):
    sole_admin = get_user_model().objects.get(email="admin@acme.example")
    platform_admin = _platform_admin()  # signing in is audited too: count after it
    events = AuditEvent.objects.count()

    response = _change_user(platform_admin, sole_admin, is_active="")

    assert "is the only admin of Acme Corporation" in response.content.decode()
    sole_admin.refresh_from_db()
    assert sole_admin.is_active
    assert AuditEvent.objects.count() == events


def test_a_platform_change_to_a_person_is_audited_in_the_platform_chain(db):
    person = get_user_model().objects.get(email="executive@globex.example")

    response = _change_user(_platform_admin(), person, first_name="Renamed")

    assert response.status_code == 200
    event = AuditEvent.objects.filter(tenant=None).order_by("-seq").first()
    assert event.action == "user.changed"
    assert event.actor_label == "admin@platform.example"
    assert event.after["changed"] == ["First name"]


def test_a_host_cannot_be_moved_to_another_tenant(db, globex):
    from tenants.models import Domain

    domain = Domain.objects.get(domain="acme.localhost")
    client = _platform_admin()
    page = client.get(f"/admin/tenants/domain/{domain.pk}/change/").content.decode()
    client.post(
        f"/admin/tenants/domain/{domain.pk}/change/",
        {"domain": "acme.localhost", "tenant": globex.pk, "is_primary": "on"},
    )

    assert 'name="tenant"' not in page
    domain.refresh_from_db()
    assert domain.tenant.schema_name == "acme"


def test_deactivating_someone_who_is_not_a_sole_admin_works_and_is_audited(db):
    person = get_user_model().objects.get(email="security@globex.example")

    _change_user(_platform_admin(), person, is_active="")

    person.refresh_from_db()
    assert not person.is_active
    event = AuditEvent.objects.filter(tenant=None).order_by("-seq").first()
    assert event.action == "user.changed" and event.after["is_active"] is False
    assert client_is_refused(person)


def client_is_refused(person) -> bool:
    client = Client(HTTP_HOST="globex.localhost")
    response = client.post("/accounts/login/", {"username": person.email, "password": PASSWORD})
    return response.status_code == 200 and "_auth_user_id" not in client.session


def test_a_deactivated_admin_does_not_count_as_the_admin_who_remains(acme):
    dormant = get_user_model().objects.create_user(
        "dormant@acme.example", "dormant@acme.example", is_active=False
    )
    Membership.objects.create(tenant=acme, user=dormant, role="admin")
    active = Membership.objects.get(tenant=acme, user__email="admin@acme.example")

    with pytest.raises(ValidationError) as refused:
        services.change_role(
            tenant=acme,
            membership_id=active.public_id,
            role="operator",
            actor=audit.Actor.system("t"),
        )

    assert "role" in refused.value.message_dict
    active.refresh_from_db()
    assert active.role == "admin"
