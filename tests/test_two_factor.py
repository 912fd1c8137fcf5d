"""Two-factor sign-in: enrolling an authenticator app, the code step of sign-in, tenants that
require it (pages, session API, live connections; tokens unaffected), the admin's switch, and the
compliance check that admins use it."""

from __future__ import annotations

import re
import time
from base64 import b32encode
from urllib.parse import parse_qs, urlsplit

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from axes.models import AccessAttempt
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Max
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import tenant_context

from compliance import checks
from compliance.models import Status
from tenants import audit, services
from tenants.accounts import handoff, two_factor
from tenants.models import AuditEvent, Membership, Tenant
from tenants.realtime.consumers import CLOSE_FORBIDDEN
from tests.factories import ApiTokenFactory, MembershipFactory
from tests.helpers import PASSWORD, bearer, client_on, is_signed_in
from tests.websockets_client import (
    InProcessSocket,
    cookie_of,
    create_session,
    delete_sessions,
    websocket_scope,
)

SYSTEM = audit.Actor.system("two-factor tests")
FAILURE_LIMIT = django_settings.AXES_FAILURE_LIMIT
# (what is typed, what the page says about it)
BAD_CODES = [
    ("12\x003456", "Remove the control character U+0000."),
    ("1" * 40, "this has 40 characters"),
    ("12345a", "Use digits only"),
    ("١٢٣٤٥٦", "Use digits only"),  # Arabic-Indic digits look like a code but are not one
    ("12345", "Enter all 6 digits your app shows (this has 5)."),
    ("", "Enter the 6-digit code your app shows."),
]


# ---- codes and people ----------------------------------------------------------------------------


def _totp(device: TOTPDevice, at: float) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = at
    return f"{totp.token():0{device.digits}d}"


def code_now(device: TOTPDevice) -> str:
    """The code the person's app shows now, as if no code had been used yet (a code is taken
    once; tests use several in the same 30 seconds)."""
    TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)
    return _totp(device, time.time())


def wrong_code(device: TOTPDevice) -> str:
    """Six digits the app does not show in any step it accepts now."""
    now = time.time()
    accepted = {_totp(device, now + step * device.step) for step in (-1, 0, 1)}
    return next(f"{n:06d}" for n in range(1000) if f"{n:06d}" not in accepted)


def enrolled(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)


def verified(client, device: TOTPDevice):
    """Mark `client`'s session as verified with `device` (as a code at sign-in would)."""
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def is_verified(client, device: TOTPDevice) -> bool:
    return client.session.get(DEVICE_ID_SESSION_KEY) == device.persistent_id


def _user(email: str):
    return get_user_model().objects.get(email=email)


@pytest.fixture
def trail(db):
    """`trail(action, tenant=None)`: the events of that chain recorded since the test began
    (tests that drive live connections commit theirs, and the trail is append-only)."""
    start = AuditEvent.objects.aggregate(last=Max("pk"))["last"] or 0

    def events(action: str, tenant=None):
        return AuditEvent.objects.filter(pk__gt=start, action=action, tenant=tenant).order_by("seq")

    return events


def _require(tenant: Tenant, required: bool = True) -> None:
    services.set_two_factor_requirement(
        tenant=tenant, required=required, actor=SYSTEM, actor_verified=True
    )


def _sign_in(client, email: str, password: str = PASSWORD, next_url: str = ""):
    data = {"username": email, "password": password}
    if next_url:
        data["next"] = next_url
    return client.post("/accounts/login/", data)


# ---- enrolment -----------------------------------------------------------------------------------


def test_enrolling_shows_a_qr_code_and_the_secret_and_a_right_code_confirms(acme, settings, trail):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # no waiting after the wrong code
    member = MembershipFactory(tenant=acme, role="operator").user
    client = client_on("acme", member)

    assert "Set up an authenticator app" in client.get("/accounts/profile/").content.decode()
    response = client.post("/accounts/profile/", {"form": "two_factor_begin"})
    assert response.status_code == 302 and response["Location"].endswith("#two-factor")
    device = TOTPDevice.objects.get(user=member)
    assert not device.confirmed

    page = client.get("/accounts/profile/").content.decode()
    section = page[page.index('id="two-factor"') : page.index("Change your password")]
    assert '<svg viewBox="0 0' in section and 'class="qr-code"' in section
    secret = b32encode(device.bin_key).decode()
    assert " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)) in section
    assert "style=" not in section and "<script" not in section

    refused = client.post(
        "/accounts/profile/", {"form": "two_factor_confirm", "code": wrong_code(device)}
    )
    assert refused.status_code == 400
    assert "Code: That code is not right." in refused.content.decode()
    device.refresh_from_db()
    assert not device.confirmed
    assert not trail("auth.two_factor_enabled").exists()

    confirmed = client.post(
        "/accounts/profile/", {"form": "two_factor_confirm", "code": code_now(device)}
    )
    assert confirmed.status_code == 302
    device.refresh_from_db()
    assert device.confirmed
    # The person has just shown they hold the app: this session is verified.
    assert is_verified(client, device)
    [platform] = trail("auth.two_factor_enabled")
    [in_acme] = trail("auth.two_factor_enabled", acme)
    assert platform.actor_label == in_acme.actor_label == member.username
    assert in_acme.after == {"email": member.email, "device": "Authenticator app"}
    assert "secret" not in str(in_acme.after) and device.key not in str(in_acme.after)


def test_the_qr_code_holds_the_apps_set_up_url_named_after_the_portal(db):
    user = _user("operator@acme.example")
    device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)

    url = urlsplit(two_factor.setup_url(device))

    assert (url.scheme, url.netloc) == ("otpauth", "totp")
    assert url.path == "/Monitoring%20portal%3Aoperator%40acme.example"
    assert parse_qs(url.query) == {
        "secret": [b32encode(device.bin_key).decode()],
        "issuer": ["Monitoring portal"],
        "algorithm": ["SHA1"],
        "digits": ["6"],
        "period": ["30"],
    }


def test_a_person_with_an_app_cannot_set_up_a_second_one(db):
    user = _user("operator@acme.example")
    enrolled(user)
    client = client_on(None, user)

    response = client.post("/accounts/profile/", {"form": "two_factor_begin"}, follow=True)

    assert "already on" in response.content.decode()
    assert TOTPDevice.objects.filter(user=user).count() == 1


def test_cancelling_a_set_up_drops_the_app_that_waited_for_a_code(db):
    user = _user("operator@acme.example")
    client = client_on(None, user)
    client.post("/accounts/profile/", {"form": "two_factor_begin"})
    assert TOTPDevice.objects.filter(user=user, confirmed=False).exists()

    client.post("/accounts/profile/", {"form": "two_factor_cancel"})

    assert not TOTPDevice.objects.filter(user=user).exists()


def test_removing_the_app_takes_a_current_code_and_asks_first(acme, settings, trail):
    user = _user("security@acme.example")
    device = enrolled(user)
    client = verified(client_on("acme", user, REMOTE_ADDR="203.0.113.40"), device)
    page = client.get("/accounts/profile/").content.decode()
    assert re.search(r'<form[^>]+data-confirm="Remove your authenticator app\?', page)

    refused = client.post(
        "/accounts/profile/", {"form": "two_factor_remove", "code": wrong_code(device)}
    )
    assert refused.status_code == 400
    assert "Code: That code is not right." in refused.content.decode()
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    # A guess here counts like a wrong password.
    assert AccessAttempt.objects.get(ip_address="203.0.113.40").failures_since_start == 1

    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # no waiting after the wrong code
    removed = client.post(
        "/accounts/profile/", {"form": "two_factor_remove", "code": code_now(device)}
    )
    assert removed.status_code == 302
    assert not TOTPDevice.objects.filter(user=user).exists()
    assert not is_verified(client, device)
    [event] = trail("auth.two_factor_removed", acme)
    assert event.before == {"email": user.email, "device": "Authenticator app"}


@pytest.mark.parametrize(("typed", "message"), BAD_CODES)
@pytest.mark.parametrize("form", ["two_factor_confirm", "two_factor_remove"])
def test_bad_input_to_the_profiles_code_fields_is_a_field_error(db, form, typed, message):
    user = _user("operator@globex.example")
    device = TOTPDevice.objects.create(
        user=user, name="Authenticator app", confirmed=form == "two_factor_remove"
    )
    client = client_on(None, user)

    response = client.post("/accounts/profile/", {"form": form, "code": typed})

    assert response.status_code == 400
    page = response.content.decode()
    assert "Code: " in page and message in page
    assert TOTPDevice.objects.get(pk=device.pk).confirmed == (form == "two_factor_remove")
    # A malformed code is not a guess: nothing counts towards the lockout.
    assert not AccessAttempt.objects.exists()


# ---- signing in ----------------------------------------------------------------------------------


def test_with_an_app_the_password_alone_does_not_sign_in_a_code_does(acme, settings, trail):
    user = _user("operator@acme.example")
    device = enrolled(user)
    client = client_on("acme", REMOTE_ADDR="203.0.113.41")

    response = _sign_in(client, "operator@acme.example", next_url="/alerts/rules/")

    assert response.status_code == 302
    step = urlsplit(response["Location"])
    assert step.path == "/accounts/login/"
    assert parse_qs(step.query) == {"step": ["code"], "next": ["/alerts/rules/"]}
    assert not is_signed_in(client)
    page = client.get(response["Location"]).content.decode()
    assert 'autocomplete="one-time-code"' in page and "operator@acme.example" in page

    wrong = client.post("/accounts/login/", {"code": wrong_code(device), "next": "/alerts/rules/"})
    assert wrong.status_code == 400
    assert "Code: That code is not right." in wrong.content.decode()
    assert not is_signed_in(client)
    failed = trail("auth.sign_in_failed", acme).last()
    assert failed.after == {"reason": "two-factor code not accepted"}

    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # no waiting after the wrong code
    right = client.post("/accounts/login/", {"code": code_now(device), "next": "/alerts/rules/"})

    assert right.status_code == 302 and right["Location"] == "/alerts/rules/"
    assert is_signed_in(client) and is_verified(client, device)
    signed_in = trail("auth.signed_in", acme).last()
    assert signed_in.after == {"two_factor": True}
    # A full sign-in clears the failures, as a right password does.
    assert not AccessAttempt.objects.filter(ip_address="203.0.113.41").exists()


def test_without_an_app_the_password_signs_in_as_before(db):
    client = client_on(None)
    response = _sign_in(client, "executive@acme.example")
    assert response.status_code == 302 and response["Location"] == "/"
    assert is_signed_in(client)


def test_a_code_replayed_is_refused(db):
    user = _user("operator@acme.example")
    device = enrolled(user)
    first, second = client_on(None), client_on(None)
    _sign_in(first, user.email)
    _sign_in(second, user.email)
    code = code_now(device)

    assert first.post("/accounts/login/", {"code": code}).status_code == 302
    assert second.post("/accounts/login/", {"code": code}).status_code == 400
    assert not is_signed_in(second)


def test_wrong_codes_count_towards_the_sign_in_lockout(db, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # the app's own back-off would refuse them unread
    user = _user("security@globex.example")
    device = enrolled(user)
    client = client_on(None, REMOTE_ADDR="203.0.113.42")
    _sign_in(client, user.email)

    for _ in range(FAILURE_LIMIT - 1):
        assert client.post("/accounts/login/", {"code": wrong_code(device)}).status_code == 400
    assert client.post("/accounts/login/", {"code": wrong_code(device)}).status_code == 429

    locked = client.post("/accounts/login/", {"code": code_now(device)})

    assert locked.status_code == 429
    assert not is_signed_in(client)
    # The password is locked for that address too: it is one lockout.
    again = _sign_in(client_on(None, REMOTE_ADDR="203.0.113.42"), user.email)
    assert again.status_code == 429


@pytest.mark.parametrize(("typed", "message"), BAD_CODES)
def test_bad_input_to_the_sign_in_code_is_a_field_error(db, typed, message):
    enrolled(_user("admin@globex.example"))
    client = client_on(None)
    _sign_in(client, "admin@globex.example")

    response = client.post("/accounts/login/", {"code": typed})

    assert response.status_code == 400
    page = response.content.decode()
    assert "Code: " in page and message in page
    assert not is_signed_in(client)
    assert not AccessAttempt.objects.exists()


def test_the_code_step_needs_a_password_first_and_not_long_ago(db, monkeypatch):
    device = enrolled(_user("operator@acme.example"))
    anonymous = client_on(None)
    response = anonymous.post("/accounts/login/", {"code": code_now(device)})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert not is_signed_in(anonymous)

    late = client_on(None)
    _sign_in(late, "operator@acme.example")
    monkeypatch.setattr("tenants.accounts.two_factor.PENDING_SECONDS", -1)
    response = late.post("/accounts/login/", {"code": code_now(device)})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert not is_signed_in(late)


def test_a_verified_session_hands_its_verification_over_to_the_tenant_host(acme):
    user = _user("admin@acme.example")
    device = enrolled(user)
    for public_verified in (True, False):
        public = client_on(None, user)
        if public_verified:
            verified(public, device)
        ticket_url = urlsplit(public.post("/go/acme/")["Location"])
        ticket = parse_qs(ticket_url.query)["ticket"][0]
        tenant_host = client_on("acme")

        assert tenant_host.post("/accounts/handoff/", {"ticket": ticket}).status_code == 302

        assert is_signed_in(tenant_host)
        assert is_verified(tenant_host, device) is public_verified


def test_a_ticket_never_carries_someone_elses_app(acme):
    user, other = _user("admin@acme.example"), _user("operator@acme.example")
    ticket = handoff.make_ticket(user, acme, verified_device=enrolled(other))
    assert handoff.verified_device(ticket, acme, user) is None


# ---- tenants that require it ---------------------------------------------------------------------


def test_a_required_tenant_refuses_unverified_sessions_and_says_how_to_get_in(acme, globex):
    _require(acme)
    without_app = MembershipFactory(tenant=acme, role="operator").user
    Membership.objects.create(tenant=globex, user=without_app, role="operator")
    client = client_on("acme", without_app)

    refused = client.get("/alerts/rules/")
    assert refused.status_code == 403
    page = refused.content.decode()
    assert "requires two-factor sign-in" in page
    assert 'href="/accounts/profile/#two-factor"' in page
    assert 'aria-label="Main"' not in page  # no navigation that would only be refused
    # Where the app is set up stays open; the sign-in (the code step) too.
    assert client.get("/accounts/profile/").status_code == 200
    # Another tenant that does not require it is not affected.
    assert client_on("globex", without_app).get("/alerts/rules/").status_code == 200


def test_a_member_with_an_app_verifies_from_the_refusal_and_gets_in(acme, trail):
    _require(acme)
    user = _user("operator@acme.example")
    device = enrolled(user)
    client = client_on("acme", user)

    refused = client.get("/alerts/rules/?page=2")
    assert refused.status_code == 403
    page = refused.content.decode()
    assert re.search(r'<form method="post" action="/accounts/login/">', page)
    assert 'name="next" value="/alerts/rules/?page=2"' in page

    response = client.post("/accounts/login/", {"code": code_now(device), "next": "/alerts/rules/"})

    assert response.status_code == 302 and response["Location"] == "/alerts/rules/"
    assert is_verified(client, device)
    assert client.get("/alerts/rules/").status_code == 200
    [event] = trail("auth.two_factor_verified", acme)
    assert event.actor_label == user.username


def test_the_api_refuses_unverified_sessions_but_not_tokens(acme):
    _require(acme)
    user = _user("operator@acme.example")
    device = enrolled(user)
    _token, secret = ApiTokenFactory(tenant=acme, scopes=["read"])

    unverified = client_on("acme", user).get("/api/v1/")
    assert unverified.status_code == 403
    assert "requires two-factor sign-in" in unverified.json()["detail"]
    assert verified(client_on("acme", user), device).get("/api/v1/").status_code == 200
    assert client_on("acme").get("/api/v1/", **bearer(secret)).status_code == 200


def test_turning_the_requirement_off_opens_the_tenant_again(acme):
    _require(acme)
    client = client_on("acme", _user("executive@acme.example"))
    assert client.get("/").status_code == 403
    _require(acme, False)
    assert client.get("/").status_code == 200


def test_live_connections_of_unverified_sessions_are_refused(django_db_setup, django_db_blocker):
    from portal.asgi import application

    with django_db_blocker.unblock():
        user = _user("executive@acme.example")
        device = enrolled(user)
        Tenant.objects.filter(schema_name="acme").update(require_two_factor=True)
    stores = [create_session(user.email, django_db_blocker) for _ in range(2)]
    with django_db_blocker.unblock():
        stores[1][DEVICE_ID_SESSION_KEY] = device.persistent_id
        stores[1].save()

    async def answer(store) -> dict:
        socket_ = InProcessSocket(
            application, websocket_scope("acme.localhost", cookie=cookie_of(store))
        )
        opened = await socket_.open()
        if opened["type"] == "websocket.accept":
            await socket_.receive()
            await socket_.hang_up()
        return opened

    try:
        with django_db_blocker.unblock():
            unverified = async_to_sync(answer)(stores[0])
            verified_answer = async_to_sync(answer)(stores[1])
    finally:
        delete_sessions(stores, django_db_blocker)
        with django_db_blocker.unblock():
            Tenant.objects.filter(schema_name="acme").update(require_two_factor=False)
            TOTPDevice.objects.filter(pk=device.pk).delete()
    assert unverified == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}
    assert verified_answer["type"] == "websocket.accept"


def test_requiring_it_closes_live_connections_of_unverified_sessions(
    django_db_setup, django_db_blocker
):
    from portal.asgi import application

    store = create_session("security@acme.example", django_db_blocker)
    with django_db_blocker.unblock():
        acme = Tenant.objects.get(schema_name="acme")
    require = sync_to_async(_require)

    async def scenario() -> dict:
        socket_ = InProcessSocket(
            application, websocket_scope("acme.localhost", cookie=cookie_of(store))
        )
        assert (await socket_.open())["type"] == "websocket.accept"
        await require(acme)
        deadline = time.monotonic() + 1.25  # closed within a second, read with a margin
        while (left := deadline - time.monotonic()) > 0:
            message = await socket_.receive(timeout=left)
            if message["type"] == "websocket.close":
                await socket_.ended_within(1.0)
                return message
        raise AssertionError("the socket stayed open")

    try:
        with django_db_blocker.unblock():
            closed = async_to_sync(scenario)()
    finally:
        delete_sessions([store], django_db_blocker)
        with django_db_blocker.unblock():
            Tenant.objects.filter(pk=acme.pk).update(require_two_factor=False)
    assert closed == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}


# ---- the admin's switch --------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["executive", "operator", "security"])
def test_only_admins_switch_the_requirement(acme, role):
    user = _user(f"{role}@acme.example")
    client = verified(client_on("acme", user), enrolled(user))

    response = client.post("/settings/", {"form": "two_factor", "require_two_factor": "on"})

    assert response.status_code == 403
    assert not Tenant.objects.get(pk=acme.pk).require_two_factor


def test_an_unverified_admin_cannot_turn_it_on(acme, trail):
    admin = _user("admin@acme.example")
    client = client_on("acme", admin)
    page = client.get("/settings/").content.decode()
    assert "Require two-factor sign-in" in page and "set up your authenticator app" in page

    response = client.post("/settings/", {"form": "two_factor", "require_two_factor": "on"})

    assert response.status_code == 400
    body = response.content.decode()
    assert "Require two-factor sign-in: Verify this session" in body
    assert not Tenant.objects.get(pk=acme.pk).require_two_factor
    assert not trail("tenant.two_factor_changed", acme).exists()


def test_a_verified_admin_turns_it_on_and_off_and_both_are_audited(acme, globex, trail):
    admin = _user("admin@acme.example")
    client = verified(client_on("acme", admin), enrolled(admin))

    response = client.post("/settings/", {"form": "two_factor", "require_two_factor": "on"})

    assert response.status_code == 302
    assert Tenant.objects.get(pk=acme.pk).require_two_factor
    assert not Tenant.objects.get(pk=globex.pk).require_two_factor
    # The admin's own session is verified: they are not locked out.
    page = client.get("/settings/").content.decode()
    assert "Stop requiring two-factor sign-in" in page

    assert (
        client.post("/settings/", {"form": "two_factor", "require_two_factor": "off"}).status_code
        == 302
    )
    assert not Tenant.objects.get(pk=acme.pk).require_two_factor
    on, off = trail("tenant.two_factor_changed", acme)
    assert (on.before, on.after) == ({"require_two_factor": False}, {"require_two_factor": True})
    assert off.after == {"require_two_factor": False}
    assert on.actor_label == admin.username


@pytest.mark.parametrize("value", ["maybe", "o\x00n", "on" * 500, ""])
def test_a_bad_switch_value_is_a_field_error_and_changes_nothing(acme, value):
    admin = _user("admin@acme.example")
    client = verified(client_on("acme", admin), enrolled(admin))

    response = client.post("/settings/", {"form": "two_factor", "require_two_factor": value})

    assert response.status_code == 400
    assert "Require two-factor sign-in: Choose one of: on, off." in response.content.decode()
    assert not Tenant.objects.get(pk=acme.pk).require_two_factor


def test_the_service_refuses_a_value_that_is_not_a_boolean(acme):
    with pytest.raises(ValidationError) as refused:
        services.set_two_factor_requirement(
            tenant=acme, required="yes", actor=SYSTEM, actor_verified=True
        )
    assert refused.value.message_dict == {"require_two_factor": ["Send true or false."]}


# ---- the compliance check ------------------------------------------------------------------------


def test_the_compliance_check_passes_only_when_every_admin_has_an_app(acme):
    admins = [m.user for m in Membership.objects.filter(tenant=acme, role="admin")]
    second = MembershipFactory(tenant=acme, role="admin").user
    admins.append(second)
    total = len(admins)

    with tenant_context(acme):
        result = checks.admin_two_factor(acme)
        assert result.status == Status.FAILING
        assert result.reason.startswith(f"{total} of {total} admins have no confirmed")

        for admin in admins[:-1]:
            enrolled(admin)
        # An app still waiting for its first code does not count.
        TOTPDevice.objects.create(user=second, name="Authenticator app", confirmed=False)
        result = checks.admin_two_factor(acme)
        assert result.status == Status.FAILING
        assert result.reason.startswith(f"1 of {total} admins has no confirmed")

        TOTPDevice.objects.filter(user=second).update(confirmed=True)
        _require(acme)
        acme.refresh_from_db()
        result = checks.admin_two_factor(acme)
    assert result.status == Status.PASSING
    assert result.reason.startswith(f"All {total} admins have a confirmed authenticator app")
    assert "required for every member" in result.reason


def test_the_compliance_check_is_not_assessed_without_django_otp(acme, monkeypatch):
    installed = checks.apps.is_installed
    monkeypatch.setattr(
        checks.apps, "is_installed", lambda name: name != "django_otp" and installed(name)
    )
    with tenant_context(acme):
        result = checks.admin_two_factor(acme)
    assert result.status == Status.NOT_ASSESSED
    assert "django-otp" in result.reason


# ---- the platform's way back in ------------------------------------------------------------------


def test_the_platform_admin_removes_a_lost_app_audited_and_never_shows_its_secret(acme, trail):
    user = _user("operator@acme.example")
    device = enrolled(user)
    platform = client_on(None, _user("admin@platform.example"))

    page = platform.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/").content.decode()
    assert device.key not in page
    assert b32encode(device.bin_key).decode() not in page

    response = platform.post(f"/admin/otp_totp/totpdevice/{device.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=user).exists()
    [event] = trail("auth.two_factor_removed", acme)
    assert event.after == {"reset_by_platform": True}
