"""Identity and sign-in: links, lockout, sign-out, profile, deactivation, the tenant admin."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.dispatch import Signal
from django.test import Client
from django.urls import NoReverseMatch, resolve, reverse
from django_tenants.utils import get_public_schema_name, schema_context

from dashboards.models import Dashboard
from tenants import audit, lifecycle, services
from tenants.accounts import services as account_services
from tenants.accounts.backends import lockout_username, normalise_login
from tenants.models import AuditEvent, Tenant
from tenants.provisioning import deactivate_tenant, reactivate_tenant
from tests.conftest import PASSWORD
from tests.helpers import is_signed_in

FAILURE_LIMIT = 5
IP_A = "203.0.113.77"
IP_B = "198.51.100.77"
ACCOUNT = "security@acme.example"  # has both an 's' and an 'i' to vary
NEW_PASSWORD = "Quartz-Lantern-Meadow-42"
SYSTEM = audit.Actor.system("identity test")


def _sign_in(ip: str, username: str, password: str, host: str = "localhost"):
    client = Client(HTTP_HOST=host, REMOTE_ADDR=ip)
    response = client.post("/accounts/login/", {"username": username, "password": password})
    return client, response


def _user(email: str):
    return get_user_model().objects.get(email=email)


def _client(host: str, email: str | None = None, **extra) -> Client:
    client = Client(HTTP_HOST=host, **extra)
    if email:
        client.force_login(_user(email), backend="tenants.accounts.backends.EmailBackend")
    return client


@contextmanager
def _received(hook: Signal) -> Iterator[list[dict]]:
    """The keyword arguments of every `hook` sent while the block runs."""
    calls: list[dict] = []

    def receiver(sender, **kwargs):
        calls.append(kwargs)

    hook.connect(receiver, weak=False)
    try:
        yield calls
    finally:
        hook.disconnect(receiver)


# ---- links in e-mails are built from the configuration, never from the Host header --------------

RESET_LINK_RE = re.compile(r"https?://\S+/accounts/reset/\S+/")


def test_a_password_reset_mails_a_link_to_the_configured_origin_whatever_the_host_header(
    db, mailoutbox
):
    client = Client(HTTP_HOST="localhost:9999")

    response = client.post("/accounts/password-reset/", {"email": "operator@acme.example"})

    assert response.status_code == 302
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert "9999" not in mail.subject + mail.body
    link = urlsplit(RESET_LINK_RE.search(mail.body).group(0))
    assert (link.scheme, link.hostname, link.port) == (
        settings.PORTAL_SCHEME,
        settings.PORTAL_BASE_DOMAIN,
        settings.PORTAL_PORT,
    )
    # The link works: it leads to the form that sets the new password.
    form = Client(HTTP_HOST="localhost").get(link.path, follow=True)
    assert form.status_code == 200
    assert b'name="new_password1"' in form.content


def test_a_password_reset_link_follows_the_configured_scheme_and_port(db, mailoutbox, settings):
    settings.PORTAL_SCHEME, settings.PORTAL_PORT = "https", 8443

    Client(HTTP_HOST="localhost").post(
        "/accounts/password-reset/", {"email": "operator@acme.example"}
    )

    assert RESET_LINK_RE.search(mailoutbox[0].body).group(0).startswith("https://localhost:8443/")


# ---- one normalisation for account lookup and lockout -------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("  Security@ACME.example ", "security@acme.example"),
        ("ſecurity@acme.example", "security@acme.example"),  # long s: NFKC gives 's'
        ("ＳＥＣＵＲＩＴＹ@acme.example", "security@acme.example"),  # fullwidth letters
        ("securıty@acme.example", "securıty@acme.example"),  # dotless i stays itself
        ("x\x00y", "x\ufffdy"),
        (None, ""),
    ],
)
def test_sign_in_names_are_normalised_one_way(typed, expected):
    assert normalise_login(typed) == expected
    assert lockout_username(None, {"username": typed}) == expected


def _lock(ip: str = IP_A, name: str = ACCOUNT) -> None:
    for attempt in range(FAILURE_LIMIT):
        _sign_in(ip, name, f"wrong-{attempt}")
    assert _sign_in(ip, ACCOUNT, PASSWORD)[1].status_code == 429


# Spellings that are the account's address once normalised...
SAME_NAME = [
    ACCOUNT.upper(),
    ACCOUNT.replace("s", "ſ"),
    ACCOUNT.replace("security", "ＳＥＣＵＲＩＴＹ"),
    f"{ACCOUNT}   ",
    f"\t{ACCOUNT.title()}",
]
# ...and one that PostgreSQL's case-insensitive match would take for it, but is another name.
VARIANTS = [*SAME_NAME, ACCOUNT.replace("i", "ı")]


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_variant_of_a_locked_address_signs_in_from_the_locked_address(db, variant):
    _lock()

    client, response = _sign_in(IP_A, variant, PASSWORD)

    assert response.status_code in (200, 429)
    assert not is_signed_in(client)


@pytest.mark.parametrize("variant", SAME_NAME)
def test_failures_under_any_spelling_of_the_address_lock_the_account_itself(db, variant):
    _lock(name=variant)

    client, response = _sign_in(IP_A, ACCOUNT, PASSWORD)

    assert response.status_code == 429
    assert not is_signed_in(client)


def test_a_dotless_i_names_another_account_so_it_never_signs_in(db):
    client, response = _sign_in(IP_B, ACCOUNT.replace("i", "ı"), PASSWORD)
    assert response.status_code == 200
    assert not is_signed_in(client)
    # The real spelling still does, from the same address.
    assert is_signed_in(_sign_in(IP_B, ACCOUNT, PASSWORD)[0])


def test_a_compatibility_spelling_of_the_address_signs_in_when_not_locked(db):
    client, response = _sign_in(IP_B, ACCOUNT.replace("s", "ſ").upper(), PASSWORD)
    assert response.status_code == 302
    assert is_signed_in(client)


@pytest.mark.parametrize(
    ("host", "path"),
    [
        ("localhost", "/accounts/login/"),
        ("acme.localhost", "/accounts/login/"),
        ("localhost", "/admin/login/"),
    ],
)
def test_a_3000_character_name_is_an_ordinary_failed_sign_in(db, host, path):
    client = Client(HTTP_HOST=host, REMOTE_ADDR=IP_A)

    response = client.post(path, {"username": "a" * 3000 + "@acme.example", "password": "x"})

    assert response.status_code == 200
    assert b"Please enter" in response.content and b"correct" in response.content
    assert not is_signed_in(client)
    attempt = AccessAttempt.objects.get(ip_address=IP_A)
    assert len(attempt.username) == 255 and attempt.failures_since_start == 1


def test_a_name_with_a_nul_character_is_refused_by_the_form(db):
    client = Client(HTTP_HOST="localhost", REMOTE_ADDR=IP_A)
    response = client.post("/accounts/login/", {"username": f"{ACCOUNT}\x00", "password": "x"})
    assert response.status_code == 200
    assert b"Null characters are not allowed" in response.content
    assert not is_signed_in(client)


# ---- signing out --------------------------------------------------------------------------------

META_REFRESH_RE = re.compile(r'<meta http-equiv="refresh" content="0;url=([^"]+)">')


def _sign_out_on_tenant_host(tenant_client: Client) -> str:
    """POST the tenant host's sign-out; the public-site URL its page continues to."""
    response = tenant_client.post("/accounts/logout/")
    assert response.status_code == 200
    assert not is_signed_in(tenant_client)
    found = META_REFRESH_RE.search(response.content.decode())
    assert found, response.content.decode()
    url = urlsplit(html.unescape(found.group(1)))
    assert (url.scheme, url.hostname, url.port) == (
        settings.PORTAL_SCHEME,
        settings.PORTAL_BASE_DOMAIN,
        settings.PORTAL_PORT,
    )
    assert url.path == "/accounts/signed-out/"
    return f"{url.path}?{url.query}"


def test_signing_out_on_a_tenant_host_signs_out_of_the_public_site_too(db):
    public = _client("localhost", ACCOUNT)
    tenant = _client("acme.localhost", ACCOUNT)

    continue_to = _sign_out_on_tenant_host(tenant)
    landed = public.get(continue_to)

    assert landed.status_code == 302 and landed["Location"] == "/accounts/login/"
    assert not is_signed_in(public)
    assert public.get("/")["Location"].startswith("/accounts/login/")
    assert tenant.get("/")["Location"].startswith("/accounts/login/")


def test_a_sign_out_ticket_never_signs_out_someone_else(db):
    tenant = _client("acme.localhost", ACCOUNT)
    continue_to = _sign_out_on_tenant_host(tenant)
    bystander = _client("localhost", "operator@acme.example")

    response = bystander.get(continue_to)

    assert response.status_code == 302 and response["Location"] == "/"
    assert is_signed_in(bystander)


@pytest.mark.parametrize("ticket", ["", "forged", "e30:1u2v3w:abc"])
def test_the_public_sign_out_page_without_a_valid_ticket_signs_nobody_out(db, ticket):
    public = _client("localhost", ACCOUNT)
    response = public.get(f"/accounts/signed-out/?ticket={ticket}")
    assert response.status_code == 302 and response["Location"] == "/"
    assert is_signed_in(public)


def test_the_public_sign_out_page_does_not_accept_a_post(db):
    assert _client("localhost", ACCOUNT).post("/accounts/signed-out/").status_code == 405


def test_a_signed_in_non_member_can_sign_out_of_a_tenant_host(db):
    outsider = _client("globex.localhost", "admin@acme.example")
    assert outsider.get("/").status_code == 403

    _sign_out_on_tenant_host(outsider)

    assert outsider.get("/")["Location"].startswith("/accounts/login/")


def test_signing_out_anonymously_on_a_tenant_host_just_goes_to_sign_in(db):
    response = Client(HTTP_HOST="acme.localhost").post("/accounts/logout/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"


# ---- the tenant admin site offers no "view on site" redirect ------------------------------------


def test_the_tenant_admin_has_no_view_on_site_redirect(client_for, acme):
    with schema_context("acme"):
        existing = Dashboard.objects.order_by("pk").first().pk
    ct = ContentType.objects.get_for_model(Dashboard).pk
    admin = client_for("acme", "admin")

    with pytest.raises(NoReverseMatch):
        reverse("tenant_admin:view_on_site", args=[ct, existing], urlconf="portal.urls_tenant")
    responses = {}
    for object_id in (existing, 999_999):
        path = f"/admin/r/{ct}/{object_id}/"
        assert resolve(path, urlconf="portal.urls_tenant").url_name != "view_on_site"
        responses[object_id] = admin.get(path)
    assert {r.status_code for r in responses.values()} == {404}
    assert responses[existing].content == responses[999_999].content


def test_no_tenant_admin_page_links_to_view_on_site(client_for, acme):
    with schema_context("acme"):
        existing = Dashboard.objects.order_by("pk").first().pk
    page = client_for("acme", "admin").get(f"/admin/dashboards/dashboard/{existing}/change/")
    assert page.status_code == 200
    assert "/admin/r/" not in page.content.decode()


# ---- the sign-in page on a tenant host -----------------------------------------------------------


def test_the_tenant_sign_in_page_names_the_tenant_and_offers_a_password_reset(client_for):
    page = client_for("acme").get("/accounts/login/").content.decode()
    assert "Sign in to Acme Corporation" in page
    reset = f'href="{settings.PORTAL_SCHEME}://localhost:{settings.PORTAL_PORT}/accounts/password-reset/"'
    assert reset in page


def test_the_public_sign_in_page_offers_a_password_reset_and_names_no_tenant(client_for):
    page = client_for(None).get("/accounts/login/").content.decode()
    assert "<h1>Sign in</h1>" in page
    assert "/accounts/password-reset/" in page


# ---- the profile page ---------------------------------------------------------------------------


@pytest.fixture
def in_two_tenants(acme, globex):
    services.add_member(tenant=globex, email=ACCOUNT, role="executive", actor=SYSTEM)
    return _user(ACCOUNT)


def test_the_profile_on_a_tenant_host_lists_memberships_and_links_to_switch(in_two_tenants):
    page = _client("acme.localhost", ACCOUNT).get("/accounts/profile/")

    assert page.status_code == 200
    html_ = page.content.decode()
    assert "Acme Corporation" in html_ and "Globex" in html_
    assert f'href="http://localhost:{settings.PORTAL_PORT}/go/globex/"' in html_
    assert "/go/acme/" not in html_  # the tenant you are on is marked, not offered


def test_the_profile_on_the_public_site_switches_tenant_through_the_hand_over(in_two_tenants):
    public = _client("localhost", ACCOUNT)

    page = public.get("/accounts/profile/").content.decode()
    assert 'action="/go/globex/"' in page and 'action="/go/acme/"' in page
    for method in (public.post, public.get):  # the tenant host's profile links with a GET
        response = method("/go/globex/")
        assert response.status_code == 302
        location = urlsplit(response["Location"])
        assert (location.hostname, location.path) == ("globex.localhost", "/accounts/handoff/")


def test_the_profile_needs_a_signed_in_person(db):
    response = Client(HTTP_HOST="localhost").get("/accounts/profile/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def _change_password(client: Client, old: str, new1: str, new2: str | None = None):
    return client.post(
        "/accounts/profile/",
        {"old_password": old, "new_password1": new1, "new_password2": new2 or new1},
    )


@pytest.mark.parametrize("host", ["localhost", "acme.localhost"])
def test_changing_ones_password_keeps_this_session_ends_others_and_is_audited(db, host):
    here = _client(host, ACCOUNT, REMOTE_ADDR=IP_A)
    elsewhere = _client("globex.localhost" if host == "localhost" else "localhost", ACCOUNT)
    assert is_signed_in(elsewhere)

    response = _change_password(here, PASSWORD, NEW_PASSWORD)

    assert response.status_code == 302 and response["Location"] == "/accounts/profile/"
    after = here.get("/accounts/profile/")
    assert after.status_code == 200 and b"Your password was changed." in after.content
    assert elsewhere.get("/accounts/profile/").status_code == 302  # its session ended
    assert is_signed_in(_sign_in(IP_B, ACCOUNT, NEW_PASSWORD)[0])
    assert not is_signed_in(_sign_in(IP_B, ACCOUNT, PASSWORD)[0])
    event = AuditEvent.objects.get(tenant=None, action="auth.password_changed")
    assert event.actor_label == ACCOUNT and event.remote_addr == IP_A
    assert NEW_PASSWORD not in str(event.after) and "pbkdf2" not in str(event.after)


@pytest.mark.parametrize(
    ("old", "new1", "new2", "field", "message"),
    [
        ("wrong-password", NEW_PASSWORD, None, "Current password", "is not correct"),
        (PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x", "New password again", "differ"),
        (PASSWORD, "abc", None, "New password", "too short"),
    ],
)
def test_a_refused_password_change_names_the_field_and_changes_nothing(
    db, old, new1, new2, field, message
):
    client = _client("localhost", ACCOUNT, REMOTE_ADDR=IP_A)

    response = _change_password(client, old, new1, new2)

    assert response.status_code == 400
    page = response.content.decode()
    assert f"{field}: " in page and message in page
    assert _user(ACCOUNT).check_password(PASSWORD)
    assert not AuditEvent.objects.filter(action="auth.password_changed").exists()


def test_guessing_the_current_password_on_the_profile_hits_the_sign_in_lockout(db):
    client = _client("localhost", ACCOUNT, REMOTE_ADDR=IP_A)
    for attempt in range(FAILURE_LIMIT - 1):
        assert _change_password(client, f"guess-{attempt}", NEW_PASSWORD).status_code == 400
    assert _change_password(client, "last-guess", NEW_PASSWORD).status_code == 429

    response = _change_password(client, PASSWORD, NEW_PASSWORD)

    assert response.status_code == 429
    assert _user(ACCOUNT).check_password(PASSWORD)


def test_the_change_own_password_service_refuses_a_weak_password_on_its_field(db):
    with pytest.raises(ValidationError) as refused:
        account_services.change_own_password(
            user=_user(ACCOUNT), new_password="password", actor=SYSTEM
        )
    assert "new_password1" in refused.value.message_dict
    assert _user(ACCOUNT).check_password(PASSWORD)


# ---- deactivated tenants ------------------------------------------------------------------------


def test_members_of_a_deactivated_tenant_are_told_so_without_the_tenants_navigation(acme):
    deactivate_tenant(tenant=acme, actor=SYSTEM)

    response = _client("acme.localhost", "operator@acme.example").get("/dashboards/")

    assert response.status_code == 403
    page = response.content.decode()
    assert "Acme Corporation is deactivated" in page
    assert "Contact your platform administrator" in page
    assert "not a member" not in page
    assert 'class="mainnav"' not in page and "/dashboards/" not in page


def test_non_members_of_a_deactivated_tenant_learn_nothing_more(acme):
    deactivate_tenant(tenant=acme, actor=SYSTEM)
    response = _client("acme.localhost", "admin@globex.example").get("/")
    assert response.status_code == 403
    assert "deactivated" not in response.content.decode()


def test_deactivating_a_tenant_is_audited_in_both_trails_and_sends_the_hook(
    acme, django_capture_on_commit_callbacks
):
    with (
        _received(lifecycle.tenant_deactivated) as sent,
        django_capture_on_commit_callbacks(execute=True),
    ):
        deactivate_tenant(tenant=acme, actor=SYSTEM)
        assert sent == []  # only once committed

    assert [call["tenant"].pk for call in sent] == [acme.pk]
    for chain in (None, acme):
        event = AuditEvent.objects.filter(tenant=chain).order_by("-seq").first()
        assert (event.action, event.after) == ("tenant.deactivated", {"is_active": False})
    acme.refresh_from_db()
    assert not acme.is_active


def test_deactivating_twice_changes_nothing_the_second_time(
    acme, django_capture_on_commit_callbacks
):
    deactivate_tenant(tenant=acme, actor=SYSTEM)
    events = AuditEvent.objects.count()
    with (
        _received(lifecycle.tenant_deactivated) as sent,
        django_capture_on_commit_callbacks(execute=True),
    ):
        deactivate_tenant(tenant=acme, actor=SYSTEM)
    assert sent == [] and AuditEvent.objects.count() == events


def test_a_reactivated_tenant_is_open_again(acme):
    deactivate_tenant(tenant=acme, actor=SYSTEM)
    reactivate_tenant(tenant=acme, actor=SYSTEM)

    assert _client("acme.localhost", "operator@acme.example").get("/").status_code == 200
    event = AuditEvent.objects.filter(tenant=acme).order_by("-seq").first()
    assert event.action == "tenant.reactivated"


def test_the_platform_itself_cannot_be_deactivated(db):
    public = Tenant.objects.get(schema_name=get_public_schema_name())
    with pytest.raises(ValidationError) as refused:
        deactivate_tenant(tenant=public, actor=SYSTEM)
    assert "is_active" in refused.value.message_dict
    public.refresh_from_db()
    assert public.is_active


def _platform_admin() -> Client:
    return _client("localhost", "admin@platform.example")


def test_the_platform_admin_does_not_list_the_public_schema_as_a_tenant(db):
    public = Tenant.objects.get(schema_name=get_public_schema_name())
    admin = _platform_admin()

    listing = admin.get("/admin/tenants/tenant/").content.decode()
    opened = admin.get(f"/admin/tenants/tenant/{public.pk}/change/", follow=True)

    assert "Acme Corporation" in listing
    assert f"/admin/tenants/tenant/{public.pk}/change/" not in listing
    assert opened.redirect_chain[-1][0] == "/admin/"  # "doesn't exist"


def test_the_platform_admin_deactivates_a_tenant_through_the_service(
    acme, django_capture_on_commit_callbacks
):
    with (
        _received(lifecycle.tenant_deactivated) as sent,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = _platform_admin().post(
            f"/admin/tenants/tenant/{acme.pk}/change/", {"name": acme.name}
        )

    assert response.status_code == 302
    acme.refresh_from_db()
    assert not acme.is_active
    assert [call["tenant"].pk for call in sent] == [acme.pk]
    assert AuditEvent.objects.filter(tenant=acme, action="tenant.deactivated").exists()


def test_the_platform_admin_action_deactivates_selected_tenants(acme, globex):
    response = _platform_admin().post(
        "/admin/tenants/tenant/",
        {"action": "deactivate", "_selected_action": [acme.pk, globex.pk]},
    )
    assert response.status_code == 302
    assert not Tenant.objects.filter(pk__in=[acme.pk, globex.pk], is_active=True).exists()
    assert AuditEvent.objects.filter(tenant=None, action="tenant.deactivated").count() == 2


# ---- people deactivated by the platform ---------------------------------------------------------


def test_deactivating_a_person_is_audited_and_sends_the_hook(
    db, django_capture_on_commit_callbacks
):
    person = _user("security@globex.example")
    with (
        _received(lifecycle.user_deactivated) as sent,
        django_capture_on_commit_callbacks(execute=True),
    ):
        account_services.deactivate_user(user=person, actor=SYSTEM)

    assert [call["user"].pk for call in sent] == [person.pk]
    person.refresh_from_db()
    assert not person.is_active
    globex = Tenant.objects.get(schema_name="globex")
    for chain in (None, globex):
        event = AuditEvent.objects.filter(tenant=chain).order_by("-seq").first()
        assert event.action == "user.deactivated" and event.object_id == str(person.pk)


def test_deactivating_a_tenants_only_admin_is_refused_and_sends_nothing(
    db, django_capture_on_commit_callbacks
):
    sole_admin = _user("admin@acme.example")
    with (
        _received(lifecycle.user_deactivated) as sent,
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(ValidationError) as refused,
    ):
        account_services.deactivate_user(user=sole_admin, actor=SYSTEM)
    assert "is_active" in refused.value.message_dict
    assert sent == []
    assert _user("admin@acme.example").is_active


def test_the_platform_admin_deactivates_people_through_the_service(
    db, django_capture_on_commit_callbacks
):
    person = _user("executive@globex.example")
    form = {
        "username": person.username,
        "email": person.email,
        "is_active": "",
        "date_joined_0": person.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": person.date_joined.strftime("%H:%M:%S"),
        "initial-date_joined_0": person.date_joined.strftime("%Y-%m-%d"),
        "initial-date_joined_1": person.date_joined.strftime("%H:%M:%S"),
    }
    with (
        _received(lifecycle.user_deactivated) as sent,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = _platform_admin().post(f"/admin/auth/user/{person.pk}/change/", form)

    assert response.status_code == 302
    assert [call["user"].pk for call in sent] == [person.pk]
    assert AuditEvent.objects.filter(tenant=None, action="user.deactivated").exists()
    assert not is_signed_in(_sign_in(IP_B, person.email, PASSWORD, host="globex.localhost")[0])


def test_the_platform_admin_renames_a_tenant_through_the_service(acme):
    response = _platform_admin().post(
        f"/admin/tenants/tenant/{acme.pk}/change/", {"name": "Acme Renamed", "is_active": "on"}
    )
    assert response.status_code == 302
    acme.refresh_from_db()
    assert acme.name == "Acme Renamed" and acme.is_active
    event = AuditEvent.objects.filter(tenant=acme, action="tenant.renamed").latest("seq")
    assert event.after == {"name": "Acme Renamed"}


@pytest.mark.parametrize("name", ["Acme\x00Corp", "x" * 300, "Acme\u202eCorp"])
def test_the_platform_admin_refuses_a_bad_tenant_name_and_writes_nothing(acme, name):
    admin = _platform_admin()  # signing in is itself recorded: count after it
    before = (acme.name, AuditEvent.objects.count())
    admin.post(f"/admin/tenants/tenant/{acme.pk}/change/", {"name": name, "is_active": "on"})
    acme.refresh_from_db()
    assert (acme.name, AuditEvent.objects.count()) == before
