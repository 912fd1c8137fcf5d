"""Invitation e-mails: the only way a set-password link leaves the portal.

The link goes to the invitee's mailbox, never to the person who invited them; otherwise an admin
of one tenant could set the password of an account another tenant had invited.
"""

from __future__ import annotations

from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from tenants import links


def set_password_url(user) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return links.set_password_url(uid, default_token_generator.make_token(user))


def invitation_message(membership) -> tuple[str, str]:
    """Subject and body of the e-mail telling someone they were given a role in a tenant."""
    user, tenant = membership.user, membership.tenant
    lines = [
        f"You have been given the role {membership.get_role_display()} in {tenant.name}.",
        "",
        f"The tenant: {links.tenant_url(tenant)}",
    ]
    if not user.has_usable_password():
        lines += ["", "Choose your password here (the link works once):", set_password_url(user)]
    return f"You have been added to {tenant.name}", "\n".join(lines) + "\n"


def send_invitation(membership) -> None:
    subject, body = invitation_message(membership)
    send_mail(subject, body, None, [membership.user.email])
