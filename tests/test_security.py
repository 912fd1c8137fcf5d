"""Security defaults: sign-in lockout, CSP and framing headers, CSRF, and production settings."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys

import pytest
from django.test import Client

from tenants import audit, services
from tenants.models import Membership
from tests.conftest import BASE_DIR, PASSWORD
from tests.helpers import is_signed_in

FAILURE_LIMIT = 5
IP_A = "203.0.113.10"
IP_B = "198.51.100.20"
USER_X = "operator@acme.example"
USER_Y = "executive@acme.example"


# ---- lockout -----------------------------------------------------------------------------------


def _login(ip: str, username: str, password: str, host: str = "localhost", **extra):
    client = Client(HTTP_HOST=host, REMOTE_ADDR=ip)
    response = client.post(
        "/accounts/login/", {"username": username, "password": password}, **extra
    )
    return client, response


def _fail(ip: str, username: str, times: int, host: str = "localhost") -> None:
    for attempt in range(times):
        _, response = _login(ip, username, f"wrong-{attempt}", host=host)
        assert response.status_code in (200, 429), response.status_code


def test_the_right_password_signs_in(db):
    client, response = _login(IP_A, USER_X, PASSWORD)
    assert response.status_code == 302
    assert is_signed_in(client)


def test_failures_below_the_limit_do_not_lock(db):
    _fail(IP_A, USER_X, FAILURE_LIMIT - 1)
    client, response = _login(IP_A, USER_X, PASSWORD)
    assert response.status_code == 302
    assert is_signed_in(client)


def test_after_the_failure_limit_the_account_is_locked_from_that_address(db):
    _fail(IP_A, USER_X, FAILURE_LIMIT)

    client, response = _login(IP_A, USER_X, PASSWORD)

    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content
    assert not is_signed_in(client)


def test_a_locked_account_is_locked_on_tenant_hosts_too(db):
    _fail(IP_A, USER_X, FAILURE_LIMIT)
    client, response = _login(IP_A, USER_X, PASSWORD, host="acme.localhost")
    assert response.status_code == 429
    assert not is_signed_in(client)


def test_the_locked_person_can_still_sign_in_from_another_address(db):
    _fail(IP_A, USER_X, FAILURE_LIMIT)
    assert _login(IP_A, USER_X, PASSWORD)[1].status_code == 429

    client, response = _login(IP_B, USER_X, PASSWORD)

    assert response.status_code == 302
    assert is_signed_in(client)


def test_another_person_can_still_sign_in_from_the_locked_address(db):
    _fail(IP_A, USER_X, FAILURE_LIMIT)
    assert _login(IP_A, USER_X, PASSWORD)[1].status_code == 429

    client, response = _login(IP_A, USER_Y, PASSWORD)

    assert response.status_code == 302
    assert is_signed_in(client)


@pytest.mark.parametrize("variant", [USER_X.upper(), f"  {USER_X.title()} "])
def test_case_and_space_variants_of_the_name_count_towards_one_lockout(db, variant):
    _fail(IP_A, USER_X, FAILURE_LIMIT - 1)
    _fail(IP_A, variant, 1)

    for name in (USER_X, variant):
        client, response = _login(IP_A, name, PASSWORD)
        assert response.status_code == 429, name
        assert not is_signed_in(client)


def test_a_forwarded_for_header_does_not_escape_the_lockout(db):
    _fail(IP_A, USER_X, FAILURE_LIMIT)
    client, response = _login(IP_A, USER_X, PASSWORD, HTTP_X_FORWARDED_FOR=IP_B)
    assert response.status_code == 429
    assert not is_signed_in(client)


# ---- headers -----------------------------------------------------------------------------------


def _csp(response) -> dict[str, list[str]]:
    header = response.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.request['PATH_INFO']}"
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


# (host slug or None for the public site, who is signed in, path)
PAGES = [
    ("acme", "admin@acme.example", "/"),
    ("acme", "admin@acme.example", "/members/"),
    ("acme", "admin@acme.example", "/tokens/"),
    ("acme", "operator@acme.example", "/dashboards/"),
    ("acme", "security@acme.example", "/audit/"),
    ("acme", None, "/accounts/login/"),
    (None, None, "/accounts/login/"),
    (None, "operator@acme.example", "/"),
]


def _get(client_for, slug, email, path):
    return client_for(slug, email=email).get(path)


@pytest.mark.parametrize(("slug", "email", "path"), PAGES)
def test_pages_carry_a_strict_content_security_policy(client_for, slug, email, path):
    response = _get(client_for, slug, email, path)
    assert response.status_code == 200
    csp = _csp(response)
    assert csp["default-src"] == ["'self'"]
    scripts = csp.get("script-src", csp["default-src"])
    assert "'unsafe-inline'" not in scripts
    assert "'unsafe-eval'" not in scripts
    assert "*" not in scripts
    assert csp.get("frame-ancestors") == ["'none'"]


@pytest.mark.parametrize(("slug", "email", "path"), PAGES)
def test_pages_have_no_inline_scripts(client_for, slug, email, path):
    html = _get(client_for, slug, email, path).content.decode()
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert inline == []
    assert not re.search(r"\son[a-z]+=\"", html), "inline event handler"


@pytest.mark.parametrize(
    ("slug", "email"), [("acme", "admin@acme.example"), (None, "admin@platform.example")]
)
def test_admin_sites_forbid_inline_scripts_too(client_for, slug, email):
    response = client_for(slug, email=email).get("/admin/")
    assert response.status_code == 200
    csp = _csp(response)
    assert "'unsafe-inline'" not in csp.get("script-src", csp["default-src"])


@pytest.mark.parametrize(("slug", "email", "path"), PAGES)
def test_pages_cannot_be_framed(client_for, slug, email, path):
    response = _get(client_for, slug, email, path)
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


# ---- CSRF --------------------------------------------------------------------------------------


def _csrf_client(slug: str, email: str) -> Client:
    from django.contrib.auth import get_user_model

    client = Client(enforce_csrf_checks=True, HTTP_HOST=f"{slug}.localhost")
    client.force_login(
        get_user_model().objects.get(email=email), backend="tenants.accounts.backends.EmailBackend"
    )
    return client


def test_a_form_post_without_a_csrf_token_is_refused_and_writes_nothing(acme):
    client = _csrf_client("acme", "admin@acme.example")
    response = client.post("/members/", {"email": "csrf.victim@example.com", "role": "admin"})
    assert response.status_code == 403
    assert not Membership.objects.filter(user__email="csrf.victim@example.com").exists()


def test_a_form_post_with_the_csrf_token_is_accepted(acme):
    client = _csrf_client("acme", "admin@acme.example")
    page = client.get("/members/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert token
    response = client.post(
        "/members/",
        {"email": "csrf.ok@example.com", "role": "executive", "csrfmiddlewaretoken": token[1]},
    )
    assert response.status_code == 302
    assert response["Location"] == "/members/"
    assert Membership.objects.filter(tenant=acme, user__email="csrf.ok@example.com").exists()


def test_a_sign_in_without_a_csrf_token_is_refused(db):
    client = Client(enforce_csrf_checks=True, HTTP_HOST="localhost")
    response = client.post("/accounts/login/", {"username": USER_X, "password": PASSWORD})
    assert response.status_code == 403
    assert not is_signed_in(client)


def test_the_api_with_a_session_needs_a_csrf_token(acme):
    client = _csrf_client("acme", "admin@acme.example")
    response = client.post(
        "/api/v1/dashboards/", {"title": "Forged"}, content_type="application/json"
    )
    assert response.status_code == 403
    assert "CSRF" in response.content.decode()


def test_the_api_with_a_token_needs_no_csrf_token(acme):
    issued = services.create_token(
        tenant=acme, name="csrf-free", scopes=["write"], actor=audit.Actor.system("csrf test")
    )
    client = Client(enforce_csrf_checks=True, HTTP_HOST="acme.localhost")
    response = client.post(
        "/api/v1/dashboards/",
        {"title": "From a script"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {issued.secret}",
    )
    assert response.status_code == 201


# ---- production settings -----------------------------------------------------------------------

STRONG_KEY = secrets.token_urlsafe(64)
PRODUCTION_HOSTS = "portal.example.com,.portal.example.com"


def _env(process_env: dict[str, str], **overrides: str | None) -> dict[str, str]:
    env = dict(process_env, DJANGO_SETTINGS_MODULE="portal.settings")
    for name in (
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "MONITORING_LEVEL",
        "DEBUG",
        "EMAIL_URL",
        "PORTAL_PORT",
        "PORTAL_SCHEME",
        "PORTAL_BASE_DOMAIN",
    ):
        env.pop(name, None)
    for name, value in overrides.items():
        if value is not None:
            env[name] = value
    return env


def _run(args: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result.returncode, result.stdout + result.stderr


def test_production_refuses_to_start_without_a_secret_key(process_env):
    env = _env(process_env, MONITORING_LEVEL="production", ALLOWED_HOSTS=PRODUCTION_HOSTS)
    code, output = _run(["manage.py", "check"], env)
    assert code != 0
    assert "portal.E001" in output
    assert "portal.E002" not in output


@pytest.mark.parametrize("key", ["short", "a" * 60])
def test_production_refuses_a_weak_secret_key(process_env, key):
    env = _env(
        process_env, MONITORING_LEVEL="production", ALLOWED_HOSTS=PRODUCTION_HOSTS, SECRET_KEY=key
    )
    code, output = _run(["manage.py", "check"], env)
    assert code != 0
    assert "portal.E001" in output


@pytest.mark.parametrize("hosts", [None, "*"])
def test_production_refuses_to_start_without_allowed_hosts(process_env, hosts):
    env = _env(
        process_env, MONITORING_LEVEL="production", SECRET_KEY=STRONG_KEY, ALLOWED_HOSTS=hosts
    )
    code, output = _run(["manage.py", "check"], env)
    assert code != 0
    assert "portal.E002" in output
    assert "portal.E001" not in output


def _production_env(process_env: dict[str, str], **overrides: str | None) -> dict[str, str]:
    """A production configuration that passes every check."""
    values = {
        "MONITORING_LEVEL": "production",
        "SECRET_KEY": STRONG_KEY,
        "ALLOWED_HOSTS": PRODUCTION_HOSTS,
        "EMAIL_URL": "smtp+tls://portal:secret@mail.example.com:587",
    }
    return _env(process_env, **{**values, **overrides})


def test_production_starts_with_a_strong_key_allowed_hosts_and_a_mail_server(process_env):
    code, output = _run(
        ["manage.py", "check", "--fail-level", "WARNING"], _production_env(process_env)
    )
    assert code == 0, output
    assert "portal.E0" not in output
    assert "portal.W001" not in output


def test_production_without_a_mail_server_starts_with_a_warning(process_env):
    env = _production_env(process_env, EMAIL_URL=None)
    code, output = _run(["manage.py", "check"], env)
    assert code == 0, output  # a warning: invitations would go nowhere, but it may start
    assert "portal.W001" in output
    assert "No mail server is configured" in output
    assert "portal.E0" not in output
    strict, strict_output = _run(["manage.py", "check", "--fail-level", "WARNING"], env)
    assert strict != 0
    assert "portal.W001" in strict_output


def test_production_refuses_debug(process_env):
    code, output = _run(["manage.py", "check"], _production_env(process_env, DEBUG="true"))
    assert code != 0
    assert "portal.E003" in output
    assert "portal.E001" not in output and "portal.E002" not in output


_PRINT_LINKS = (
    "import django; django.setup(); "
    "from django.conf import settings; from tenants.links import public_url; "
    "print(settings.PORTAL_SCHEME, settings.PORTAL_PORT, public_url('/accounts/login/'))"
)


def test_production_links_use_https_on_the_default_port_and_omit_it(process_env):
    env = _production_env(process_env, PORTAL_BASE_DOMAIN="portal.example.com")
    code, output = _run(["-c", _PRINT_LINKS], env)
    assert code == 0, output
    assert output.split() == ["https", "443", "https://portal.example.com/accounts/login/"]


def test_production_links_name_a_port_that_is_not_the_default(process_env):
    env = _production_env(process_env, PORTAL_BASE_DOMAIN="portal.example.com", PORTAL_PORT="8443")
    code, output = _run(["-c", _PRINT_LINKS], env)
    assert code == 0, output
    assert output.split() == ["https", "8443", "https://portal.example.com:8443/accounts/login/"]


def test_development_defaults_pass_the_checks(process_env):
    code, output = _run(["manage.py", "check"], _env(process_env))
    assert code == 0, output


_PRINT_COOKIE_SETTINGS = (
    "from django.conf import settings; "
    "print(settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, "
    "settings.SECURE_HSTS_SECONDS)"
)


def test_production_cookies_are_secure_and_hsts_is_on(process_env):
    code, output = _run(["-c", _PRINT_COOKIE_SETTINGS], _production_env(process_env))
    assert code == 0, output
    session_secure, csrf_secure, hsts = output.split()
    assert (session_secure, csrf_secure) == ("True", "True")
    assert int(hsts) > 0


def test_development_cookies_are_not_marked_secure(process_env):
    code, output = _run(["-c", _PRINT_COOKIE_SETTINGS], _env(process_env))
    assert code == 0, output
    assert output.split() == ["False", "False", "0"]


def test_the_demo_data_is_refused_in_production(process_env):
    env = _env(
        process_env,
        MONITORING_LEVEL="production",
        SECRET_KEY=STRONG_KEY,
        ALLOWED_HOSTS=PRODUCTION_HOSTS,
    )
    code, output = _run(["manage.py", "seed_demo"], env)
    assert code != 0
    assert "not for production" in output
    assert "Demo data ready" not in output


def test_the_demo_stack_refuses_production_before_starting_anything(process_env):
    from tests.conftest import free_port

    env = _env(process_env, MONITORING_LEVEL="production", PORTAL_PORT=str(free_port()))
    proc = subprocess.Popen(
        [sys.executable, "-m", "portal.devstack", "demo"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the demo stops its services on SIGTERM
        output, _ = proc.communicate(timeout=30)
        raise AssertionError(f"the demo started in production:\n{output}") from None
    assert proc.returncode == 2, output
    assert "production" in output
    # Nothing was started or even looked at: no database, no Redis, no migrations, no servers.
    assert "using DATABASE_URL" not in output
    assert "embedded" not in output
    assert "running" not in output.lower()
