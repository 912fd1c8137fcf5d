"""Recovery codes: made on the profile of a verified session and shown once, kept only as keyed
hashes, each signing in once in place of an app code (audited, with the count left), removing
the app when the phone is gone, replaced all at once, gone with the app."""

from __future__ import annotations

import re

import pytest
from axes.models import AccessAttempt
from django.core.exceptions import ValidationError
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

from tenants import audit
from tenants.accounts import services, two_factor
from tests.helpers import client_on, is_signed_in
from tests.test_two_factor import _sign_in, _user, enrolled, is_verified, trail, verified

SYSTEM = audit.Actor.system("recovery code tests")
__all__ = ["trail"]


def codes_for(user) -> list[str]:
    return services.create_recovery_codes(user=user, actor=SYSTEM)


def test_a_verified_session_creates_ten_codes_shown_once_and_stored_only_as_hashes(acme, trail):
    user = _user("operator@acme.example")
    device = enrolled(user)
    client = verified(client_on("acme", user), device)

    response = client.post("/accounts/profile/", {"form": "two_factor_recovery"})
    assert response.status_code == 302 and response["Location"].endswith("#recovery-codes")
    page = client.get("/accounts/profile/").content.decode()
    shown = two_factor_codes_on(page)
    assert len(shown) == 10 and len(set(shown)) == 10
    assert all(len(code) == 11 and code[5] == "-" for code in shown)
    assert "10 of 10 recovery codes left" in page
    # Once: the next visit shows the count, never the codes.
    again = client.get("/accounts/profile/").content.decode()
    assert not set(shown) & set(two_factor_codes_on(again))
    stored = set(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))
    assert not {code.replace("-", "") for code in shown} & stored
    assert {two_factor.recovery_digest(code) for code in shown} == stored
    event = trail("auth.recovery_codes_created", acme).last()
    assert event.after == {"email": user.email, "codes": 10, "replaced_earlier": False}


def two_factor_codes_on(page: str) -> list[str]:
    return re.findall(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>", page)


def test_an_unverified_session_cannot_create_codes(acme):
    user = _user("operator@acme.example")
    enrolled(user)
    client = client_on("acme", user)
    client.post("/accounts/profile/", {"form": "two_factor_recovery"})
    assert not StaticDevice.objects.filter(user=user).exists()


def test_without_an_app_there_are_no_recovery_codes(db):
    with pytest.raises(ValidationError) as caught:
        codes_for(_user("executive@acme.example"))
    assert "Set up your authenticator app first" in caught.value.message_dict["code"][0]


def test_a_recovery_code_signs_in_once_and_the_trail_says_how_many_are_left(acme, trail):
    user = _user("operator@acme.example")
    enrolled(user)
    codes = codes_for(user)
    client = client_on("acme", REMOTE_ADDR="203.0.113.61")
    _sign_in(client, user.email, next_url="/incidents/")

    # Typed as people do: capitals, spaces, no dash.
    typed = codes[0].upper().replace("-", " ")
    response = client.post("/accounts/login/", {"code": typed, "next": "/incidents/"})

    assert response.status_code == 302 and response["Location"] == "/incidents/"
    assert is_signed_in(client)
    recovery = StaticDevice.objects.get(user=user)
    assert is_verified(client, recovery)
    assert two_factor.recovery_codes_left(user) == 9
    assert trail("auth.recovery_code_used", acme).last().after == {
        "email": user.email,
        "codes_left": 9,
    }
    page = client.get("/incidents/", follow=True).content.decode()
    assert "You signed in with a recovery code; 9 left." in page

    other = client_on("acme")
    _sign_in(other, user.email)
    reused = other.post("/accounts/login/", {"code": codes[0]})
    assert reused.status_code == 400
    assert "That recovery code is not right, or was used already." in reused.content.decode()
    assert not is_signed_in(other)


def test_wrong_recovery_codes_count_towards_the_lockout(db, settings):
    settings.OTP_STATIC_THROTTLE_FACTOR = 0
    user = _user("security@globex.example")
    enrolled(user)
    codes_for(user)
    client = client_on(None, REMOTE_ADDR="203.0.113.62")
    _sign_in(client, user.email)
    response = client.post("/accounts/login/", {"code": "abcde-fghjk"})
    assert response.status_code == 400
    assert AccessAttempt.objects.filter(ip_address="203.0.113.62").exists()


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("abcde-fghj\x00k", "Remove the control character U+0000."),
        ("abcde-fghjk-mnpqr", "A recovery code has 10 letters and digits"),
        ("abcde-fghj0", "A recovery code has 10 letters and digits"),  # 0 is not in the alphabet
        ("аbcde-fghjk", "A recovery code has 10 letters and digits"),  # Cyrillic а
        ("x" * 40, "A recovery code has 10 letters and digits"),
    ],
)
def test_bad_recovery_codes_are_field_errors_that_never_repeat_them(db, typed, message):
    user = _user("admin@globex.example")
    enrolled(user)
    codes_for(user)
    client = client_on(None)
    _sign_in(client, user.email)
    response = client.post("/accounts/login/", {"code": typed})
    assert response.status_code == 400
    (error,) = re.findall(
        r'<p class="error" role="alert"[^>]*>(.*?)</p>', response.content.decode()
    )
    assert message in error and typed not in error
    assert two_factor.recovery_codes_left(user) == 10


def test_someone_elses_code_does_not_sign_in(db):
    mine, theirs = _user("operator@acme.example"), _user("admin@acme.example")
    enrolled(mine)
    enrolled(theirs)
    codes_for(mine)
    their_codes = codes_for(theirs)
    client = client_on(None)
    _sign_in(client, mine.email)
    assert client.post("/accounts/login/", {"code": their_codes[0]}).status_code == 400
    assert two_factor.recovery_codes_left(theirs) == 10


def test_replacing_codes_voids_the_old_ones(acme, trail, settings):
    settings.OTP_STATIC_THROTTLE_FACTOR = 0  # no waiting after the voided code
    user = _user("operator@acme.example")
    enrolled(user)
    old = codes_for(user)
    new = codes_for(user)
    client = client_on(None)
    _sign_in(client, user.email)
    assert client.post("/accounts/login/", {"code": old[1]}).status_code == 400
    assert client.post("/accounts/login/", {"code": new[1]}).status_code == 302
    assert trail("auth.recovery_codes_created", acme).last().after["replaced_earlier"] is True


def test_a_recovery_code_removes_the_app_and_the_codes_go_with_it(acme):
    user = _user("operator@acme.example")
    device = enrolled(user)
    codes = codes_for(user)
    client = verified(client_on("acme", user), device)
    response = client.post(
        "/accounts/profile/", {"form": "two_factor_remove", "code": codes[3]}, follow=True
    )
    assert response.status_code == 200
    assert two_factor.confirmed_device(user) is None
    assert not StaticDevice.objects.filter(user=user).exists()


def test_the_platform_reset_removes_the_codes_too(acme):
    user = _user("operator@acme.example")
    device = enrolled(user)
    codes_for(user)
    services.reset_two_factor(device=device, actor=SYSTEM)
    assert not StaticDevice.objects.filter(user=user).exists()


def test_confirming_a_new_app_takes_the_apps_code_not_a_recovery_code(db):
    from tenants.accounts.forms import CodeForm

    form = CodeForm({"code": "abcde-fghjk"})
    assert not form.is_valid()
    assert "Use digits only" in form.errors["code"][0]
