"""Invitations: the set-password link goes to the invitee's mailbox and nowhere else."""

from __future__ import annotations

import re

from django.contrib.auth import get_user_model
from django.core.mail.backends.locmem import EmailBackend as LocmemEmailBackend
from django.test import Client

from tenants import audit
from tenants.models import AuditEvent, Membership
from tenants.provisioning import provision_tenant
from tenants.tasks import send_invitation_email

RESET_LINK_RE = re.compile(r"https?://[^\s]+/accounts/reset/[^\s]+/")


def _invite(client_for, slug, email, role, captured):
    with captured(execute=True):
        return client_for(slug, "admin").post("/members/", {"email": email, "role": role})


def test_a_new_colleague_gets_a_link_by_mail_and_the_inviter_never_sees_it(
    client_for, django_capture_on_commit_callbacks, mailoutbox, eager_tasks
):
    response = _invite(
        client_for, "acme", "newbie@corp.example", "operator", django_capture_on_commit_callbacks
    )

    assert response.status_code == 302
    page = client_for("acme", "admin").get("/members/").content.decode()
    assert not RESET_LINK_RE.search(page)
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == ["newbie@corp.example"]
    assert "Acme Corporation" in mail.subject
    link = RESET_LINK_RE.search(mail.body).group(0)
    assert link.startswith("http://localhost:")

    public = Client(HTTP_HOST="localhost")
    path = "/" + link.split("/", 3)[3]
    form = public.get(path, follow=True)
    assert form.status_code == 200
    done = public.post(
        form.redirect_chain[-1][0] if form.redirect_chain else path,
        {"new_password1": "Tr1cky-Horse-Battery", "new_password2": "Tr1cky-Horse-Battery"},
    )
    assert done.status_code == 302
    signed_in = Client(HTTP_HOST="acme.localhost").post(
        "/accounts/login/",
        {"username": "newbie@corp.example", "password": "Tr1cky-Horse-Battery"},
    )
    assert signed_in.status_code == 302 and signed_in["Location"] == "/"


def test_another_tenant_inviting_the_same_new_person_gets_no_link_either(
    client_for, django_capture_on_commit_callbacks, mailoutbox, eager_tasks
):
    _invite(
        client_for, "acme", "shared@corp.example", "executive", django_capture_on_commit_callbacks
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for("globex", "admin").post(
            "/api/v1/members/",
            {"email": "shared@corp.example", "role": "admin"},
            content_type="application/json",
        )

    assert response.status_code == 201
    assert not RESET_LINK_RE.search(response.content.decode())
    body = response.json()
    # Exactly the membership's public fields: nothing that could carry a link or a secret.
    assert set(body) == {"id", "email", "name", "role", "created_at", "joined_at"}
    membership = Membership.objects.get(tenant__schema_name="globex", public_id=body["id"])
    assert (body["email"], body["role"]) == ("shared@corp.example", "admin")
    assert membership.user.email == "shared@corp.example"
    assert [m.to for m in mailoutbox] == [["shared@corp.example"], ["shared@corp.example"]]


def test_the_invitation_link_ignores_the_host_header_of_the_inviting_request(
    acme, django_capture_on_commit_callbacks, mailoutbox, eager_tasks
):
    from django.conf import settings

    admin = Client(HTTP_HOST="acme.localhost:9999")
    admin.force_login(
        get_user_model().objects.get(email="admin@acme.example"),
        backend="tenants.accounts.backends.EmailBackend",
    )
    with django_capture_on_commit_callbacks(execute=True):
        admin.post("/members/", {"email": "portless@corp.example", "role": "executive"})

    link = RESET_LINK_RE.search(mailoutbox[0].body).group(0)
    assert link.startswith(f"http://localhost:{settings.PORTAL_PORT}/accounts/reset/")
    assert "9999" not in mailoutbox[0].body


def test_someone_who_already_has_a_password_is_told_without_a_link(
    client_for, django_capture_on_commit_callbacks, mailoutbox, eager_tasks
):
    _invite(
        client_for,
        "globex",
        "operator@acme.example",
        "security",
        django_capture_on_commit_callbacks,
    )
    assert len(mailoutbox) == 1
    assert "Globex Industries" in mailoutbox[0].body
    assert not RESET_LINK_RE.search(mailoutbox[0].body)


def test_a_new_tenants_first_admin_is_invited_by_mail(
    db, django_capture_on_commit_callbacks, mailoutbox, eager_tasks
):
    with django_capture_on_commit_callbacks(execute=True):
        provision_tenant(
            slug="initech",
            name="Initech",
            admin_email="boss@initech.example",
            actor=audit.Actor.system("test"),
        )
    assert [m.to for m in mailoutbox] == [["boss@initech.example"]]
    assert RESET_LINK_RE.search(mailoutbox[0].body)
    assert "http://initech.localhost:" in mailoutbox[0].body


def test_a_failed_invite_queues_no_mail(client_for, django_capture_on_commit_callbacks, mailoutbox):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_for("acme", "admin").post(
            "/members/", {"email": "operator@acme.example", "role": "admin"}
        )
    assert response.status_code == 400
    assert callbacks == []
    assert mailoutbox == []


class RefusingMailBackend:
    """A mail server that is down; counts the attempts to reach it."""

    attempts = 0

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        RefusingMailBackend.attempts += 1
        raise ConnectionRefusedError("mail server down")


class FlakyMailBackend(LocmemEmailBackend):
    """A mail server down for the first two attempts, then up (delivers to `mail.outbox`)."""

    attempts = 0
    failures = 2

    def send_messages(self, messages):
        FlakyMailBackend.attempts += 1
        if FlakyMailBackend.attempts <= FlakyMailBackend.failures:
            raise ConnectionRefusedError("mail server down")
        return super().send_messages(messages)


def _pending_member(tenant, email: str) -> Membership:
    user = get_user_model().objects.create_user(email, email)
    return Membership.objects.create(tenant=tenant, user=user, role="executive")


def test_a_mail_server_outage_is_retried_and_the_invitation_delivered_once(
    acme, settings, mailoutbox
):
    settings.EMAIL_BACKEND = "tests.test_invitations.FlakyMailBackend"
    membership = _pending_member(acme, "retried@corp.example")
    FlakyMailBackend.attempts = 0

    # Run in-process, each retry follows at once instead of after its back-off delay.
    result = send_invitation_email.apply(args=[membership.pk])

    assert result.state == "SUCCESS"
    assert result.result is True
    assert FlakyMailBackend.attempts == 3
    assert [mail.to for mail in mailoutbox] == [["retried@corp.example"]]
    assert RESET_LINK_RE.search(mailoutbox[0].body)


def test_a_mail_server_that_stays_down_is_given_up_on_after_the_retries_as_a_failure(
    acme, settings, mailoutbox
):
    settings.EMAIL_BACKEND = "tests.test_invitations.RefusingMailBackend"
    membership = _pending_member(acme, "late@corp.example")
    RefusingMailBackend.attempts = 0

    # Run in-process, each retry follows at once instead of after its back-off delay.
    result = send_invitation_email.apply(args=[membership.pk])

    assert RefusingMailBackend.attempts == send_invitation_email.max_retries + 1
    assert result.state == "FAILURE"  # given up only after the retries, and recorded as such
    assert isinstance(result.result, ConnectionRefusedError)
    assert mailoutbox == []


def test_an_invitation_for_a_membership_removed_meanwhile_is_dropped(acme, mailoutbox):
    assert send_invitation_email.apply(args=[987654321]).get() is False
    assert mailoutbox == []


def test_an_admin_can_send_a_pending_invitation_again(
    client_for, acme, django_capture_on_commit_callbacks, mailoutbox, eager_tasks
):
    _invite(
        client_for, "acme", "slow@corp.example", "executive", django_capture_on_commit_callbacks
    )
    membership = Membership.objects.get(tenant=acme, user__email="slow@corp.example")
    admin = client_for("acme", "admin")
    assert "invited, not signed in yet" in admin.get("/members/").content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        page = admin.post(f"/members/{membership.public_id}/invite-again/")
    with django_capture_on_commit_callbacks(execute=True):
        api = admin.post(f"/api/v1/members/{membership.public_id}/invite-again/")

    assert page.status_code == 302 and api.status_code == 202
    assert [m.to for m in mailoutbox] == [["slow@corp.example"]] * 3
    assert all(RESET_LINK_RE.search(m.body) for m in mailoutbox)
    assert AuditEvent.objects.filter(tenant=acme, action="member.invitation_resent").count() == 2


def test_no_invitation_again_for_someone_with_a_password_or_by_a_non_admin(client_for, acme):
    operator = Membership.objects.get(tenant=acme, user__email="operator@acme.example")
    refused = client_for("acme", "admin").post(
        f"/api/v1/members/{operator.public_id}/invite-again/"
    )
    by_security = client_for("acme", "security").post(
        f"/members/{operator.public_id}/invite-again/"
    )
    assert refused.status_code == 400 and "email" in refused.json()
    assert by_security.status_code == 403


def test_without_a_reachable_queue_the_invitation_is_sent_at_once(
    client_for, django_capture_on_commit_callbacks, mailoutbox, monkeypatch
):
    from kombu.exceptions import OperationalError

    from tenants import tasks

    def refused(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.send_invitation_email, "delay", refused)
    response = _invite(
        client_for, "acme", "offline@corp.example", "operator", django_capture_on_commit_callbacks
    )
    assert response.status_code == 302
    assert [m.to for m in mailoutbox] == [["offline@corp.example"]]


def test_without_queue_or_mail_server_the_member_is_still_invited_and_can_be_sent_it_again(
    client_for, django_capture_on_commit_callbacks, mailoutbox, monkeypatch, acme
):
    from kombu.exceptions import OperationalError

    from tenants import tasks
    from tenants.models import Membership

    def refused(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    def no_mail_server(membership):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(tasks.send_invitation_email, "delay", refused)
    monkeypatch.setattr(tasks, "send_invitation", no_mail_server)
    response = _invite(
        client_for, "acme", "nomail@corp.example", "operator", django_capture_on_commit_callbacks
    )
    assert response.status_code == 302
    assert mailoutbox == []
    assert Membership.objects.filter(tenant=acme, user__email="nomail@corp.example").exists()
