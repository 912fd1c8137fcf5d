"""The two admin sites: each tenant's (its admins, its data) and the platform's (superusers)."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django_tenants.utils import schema_exists

from tenants import audit, services
from tenants.models import AuditEvent, Domain, Membership, Tenant


def _member(tenant, email: str) -> Membership:
    return Membership.objects.select_related("user").get(tenant=tenant, user__email=email)


# ---- tenant admin site -------------------------------------------------------------------------


def test_the_tenant_admin_opens_the_tenant_admin_site(client_for):
    response = client_for("acme", "admin").get("/admin/")
    assert response.status_code == 200
    assert b"Acme Corporation" in response.content


def test_the_tenant_admin_site_lists_only_the_tenants_members(client_for):
    response = client_for("acme", "admin").get("/admin/tenants/membership/")
    assert response.status_code == 200
    html = response.content.decode()
    for role in ("executive", "operator", "security", "admin"):
        assert f"{role}@acme.example" in html
    assert "globex.example" not in html


def test_the_tenant_admin_site_lists_only_the_tenants_audit_events(client_for):
    response = client_for("acme", "admin").get("/admin/tenants/auditevent/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "acme.example" in html
    assert "globex.example" not in html


def test_another_tenants_membership_cannot_be_opened_or_changed_in_the_tenant_admin(
    client_for, globex
):
    target = _member(globex, "operator@globex.example")
    client = client_for("acme", "admin")
    url = f"/admin/tenants/membership/{target.pk}/change/"
    events = AuditEvent.objects.count()
    # The admin's own words for an object outside the tenant's queryset: it does not exist.
    missing = f"Membership with ID “{target.pk}” doesn’t exist. Perhaps it was deleted?"

    opened = client.get(url, follow=True)
    posted = client.post(url, {"role": "admin"}, follow=True)

    for response in (opened, posted):
        assert response.redirect_chain == [("/admin/", 302)]
        assert response.status_code == 200
        html = response.content.decode()
        assert html.count(missing) == 1, html
        assert "operator@globex.example" not in html
    target.refresh_from_db()
    assert target.role == "operator"
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize("role", ["executive", "operator", "security"])
@pytest.mark.parametrize("path", ["/admin/", "/admin/tenants/membership/"])
def test_other_roles_are_forbidden_the_tenant_admin_site(client_for, role, path):
    response = client_for("acme", role).get(path)
    assert response.status_code == 403, (response.status_code, response.get("Location"))


@pytest.mark.parametrize("role", ["executive", "operator", "security"])
def test_other_roles_end_on_a_403_even_when_following_redirects(client_for, role):
    response = client_for("acme", role).get("/admin/", follow=True)
    assert response.status_code == 403
    assert b"admins may use its admin site" in response.content
    assert b"admin@acme.example" not in response.content


def test_anonymous_visitors_are_sent_to_sign_in(client_for):
    response = client_for("acme").get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/admin/")


def test_a_platform_superuser_who_is_not_a_member_is_forbidden(client_for):
    user = get_user_model().objects.get(email="admin@platform.example")
    assert user.is_superuser
    assert not Membership.objects.filter(user=user, tenant__schema_name="acme").exists()
    client = client_for("acme", email="admin@platform.example")
    assert client.get("/admin/").status_code == 403
    assert client.get("/admin/tenants/membership/").status_code == 403


def test_changing_a_role_in_the_tenant_admin_is_recorded(client_for, acme):
    operator = _member(acme, "operator@acme.example")
    log_entries = LogEntry.objects.count()
    response = client_for("acme", "admin").post(
        f"/admin/tenants/membership/{operator.pk}/change/", {"role": "security"}
    )
    assert response.status_code == 302, response.content[:1000]
    # The tenant's audit trail is the record; Django's shared LogEntry table is left alone.
    assert LogEntry.objects.count() == log_entries
    operator.refresh_from_db()
    assert operator.role == "security"

    event = AuditEvent.objects.filter(tenant=acme, action="member.role_changed").latest("seq")
    assert event.actor_label == "admin@acme.example"
    assert event.object_id == str(operator.public_id)
    assert event.before == {"email": "operator@acme.example", "role": "operator"}
    assert event.after == {"email": "operator@acme.example", "role": "security"}


def test_adding_a_member_in_the_tenant_admin_is_recorded_and_e_mails_only_the_invitee(
    client_for, acme, django_capture_on_commit_callbacks, eager_tasks, mailoutbox
):
    email = "admin.added@example.com"
    admin = client_for("acme", "admin")
    log_entries = LogEntry.objects.count()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin.post(
            "/admin/tenants/membership/add/", {"email": email, "role": "operator"}
        )
    assert response.status_code == 302, response.content[:1000]
    membership = _member(acme, email)
    assert membership.role == "operator"
    event = AuditEvent.objects.filter(tenant=acme, action="member.added").latest("seq")
    assert event.object_id == str(membership.public_id)
    assert event.actor_label == "admin@acme.example"
    assert LogEntry.objects.count() == log_entries
    # The admin who added them is not shown a set-password link; the invitee is mailed one.
    shown = admin.get(response["Location"]).content.decode()
    assert email in shown
    assert "/accounts/reset/" not in shown
    assert len(callbacks) == 1
    assert [mail.to for mail in mailoutbox] == [[email]]
    assert "/accounts/reset/" in mailoutbox[0].body


def test_demoting_the_last_admin_in_the_tenant_admin_is_refused_with_a_message(client_for, acme):
    me = _member(acme, "admin@acme.example")
    client = client_for("acme", "admin")  # signing in is itself recorded: count after it
    events = AuditEvent.objects.count()
    response = client.post(
        f"/admin/tenants/membership/{me.pk}/change/", {"role": "operator"}, follow=True
    )
    assert response.status_code in (200, 400)
    assert "A tenant needs at least one admin." in response.content.decode()
    me.refresh_from_db()
    assert me.role == "admin"
    assert AuditEvent.objects.count() == events


def test_token_admin_pages_never_show_the_secret_or_its_hash(client_for, acme):
    issued = services.create_token(
        tenant=acme, name="admin-view", scopes=["read"], actor=audit.Actor.system("admin test")
    )
    token = issued.token
    for client in (
        client_for("acme", "admin"),
        client_for(None, email="admin@platform.example"),
    ):
        for path in ("/admin/tenants/apitoken/", f"/admin/tenants/apitoken/{token.pk}/change/"):
            response = client.get(path)
            assert response.status_code == 200, path
            html = response.content.decode()
            assert "admin-view" in html and token.prefix in html, path
            assert token.secret_hash not in html, path
            assert issued.secret not in html, path
            assert "secret_hash" not in html and "Secret hash" not in html, path


def test_a_duplicate_member_in_the_tenant_admin_is_refused_with_a_message(client_for, acme):
    count = Membership.objects.filter(tenant=acme).count()
    client = client_for("acme", "admin")  # signing in is itself recorded: count after it
    events = AuditEvent.objects.count()
    response = client.post(
        "/admin/tenants/membership/add/",
        {"email": "operator@acme.example", "role": "admin"},
        follow=True,
    )
    assert response.status_code in (200, 400)
    assert "already a member" in response.content.decode()
    assert Membership.objects.filter(tenant=acme).count() == count
    assert _member(acme, "operator@acme.example").role == "operator"
    assert AuditEvent.objects.count() == events


# ---- platform admin site -----------------------------------------------------------------------


def test_the_platform_admin_opens_the_public_admin_and_sees_the_tenants(client_for):
    client = client_for(None, email="admin@platform.example")
    assert client.get("/admin/").status_code == 200
    response = client.get("/admin/tenants/tenant/")
    assert response.status_code == 200
    assert b"Acme Corporation" in response.content
    assert b"Globex Industries" in response.content


@pytest.mark.parametrize("email", ["admin@acme.example", "operator@globex.example"])
def test_tenant_people_are_sent_to_the_public_admins_login_and_told_they_may_not(client_for, email):
    response = client_for(None, email=email).get("/admin/tenants/tenant/", follow=True)
    assert response.redirect_chain == [("/admin/login/?next=/admin/tenants/tenant/", 302)]
    assert response.status_code == 200
    html = response.content.decode()
    assert f"You are authenticated as {email}, but are not authorized to access this page." in html
    assert "Acme Corporation" not in html
    assert "Globex Industries" not in html


def test_the_public_admin_sends_anonymous_visitors_to_its_login(client_for):
    response = client_for(None).get("/admin/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_the_public_admin_explains_the_slug_rule_it_applies(client_for):
    response = client_for(None, email="admin@platform.example").get("/admin/tenants/tenant/add/")
    assert response.status_code == 200
    help_text = re.search(
        r'id="id_slug_helptext">(.*?)</div>\s*</div>', response.content.decode(), re.S
    )
    assert help_text, "the slug field has no help text"
    text = re.sub(r"<[^>]+>|\s+", " ", help_text[1]).strip()
    # Slugs are host labels: hyphens are allowed, underscores refused.
    assert "hyphens" in text, text
    assert "underscores" not in text, text


def test_provisioning_a_tenant_with_a_hyphenated_slug_through_the_public_admin(client_for):
    client = client_for(None, email="admin@platform.example")
    response = client.post(
        "/admin/tenants/tenant/add/",
        {"slug": "initech-eu", "name": "Initech EU", "admin_email": "boss@initech.example"},
    )

    assert response.status_code == 302, response.content[:2000]
    tenant = Tenant.objects.get(schema_name="initech_eu")
    assert tenant.name == "Initech EU"
    assert tenant.slug == "initech-eu"
    assert schema_exists("initech_eu")
    assert Domain.objects.get(tenant=tenant).domain == "initech-eu.localhost"
    assert _member(tenant, "boss@initech.example").role == "admin"
    provisioned = AuditEvent.objects.get(
        tenant=None, action="tenant.provisioned", object_id=str(tenant.public_id)
    )
    assert provisioned.actor_label == "admin@platform.example"
    # The new tenant is served on its host, to its admin.
    home = client_for("initech-eu", email="boss@initech.example").get("/")
    assert home.status_code == 200
    assert b"Initech EU" in home.content


@pytest.mark.parametrize(
    ("slug", "reason"),
    [
        ("Bad-Slug", "not a valid slug"),
        ("9lives", "not a valid slug"),
        ("under_score", "not a valid slug"),
        ("trailing-", "not a valid slug"),
        ("admin", "reserved"),
        ("tenant-template", "reserved"),
        ("acme", "already exists"),
    ],
)
def test_a_bad_slug_in_the_public_admin_shows_an_error_and_creates_nothing(
    client_for, slug, reason
):
    client = client_for(None, email="admin@platform.example")
    tenants = Tenant.objects.count()
    domains = Domain.objects.count()
    events = AuditEvent.objects.count()

    response = client.post(
        "/admin/tenants/tenant/add/",
        {"slug": slug, "name": "Broken Co", "admin_email": "broken@example.com"},
        follow=True,
    )

    html = response.content.decode()
    assert response.status_code in (200, 400)
    assert reason in html, re.sub(r"\s+", " ", html)[:2000]
    assert Tenant.objects.count() == tenants
    assert Domain.objects.count() == domains
    assert AuditEvent.objects.count() == events
    assert not Tenant.objects.filter(name="Broken Co").exists()
    assert not get_user_model().objects.filter(email="broken@example.com").exists()
