"""People behind memberships: e-mail checks and the one way an account is found or created.

Accounts are found by e-mail (case-insensitive), never by username: sign-in
(`tenants.accounts.backends.EmailBackend`), invitations and password resets all look at the
e-mail column. The username is only a unique handle Django requires, and its column is shorter
(150) than an e-mail address may be (254), so a longer address gets a shortened username.
"""

from __future__ import annotations

import hashlib
import unicodedata

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

# The e-mail column of django.contrib.auth's user (and the longest address SMTP can deliver to).
EMAIL_MAX_LENGTH = 254


def is_email(value: str) -> bool:
    try:
        clean_email(value)
    except ValidationError:
        return False
    return True


def _script(char: str) -> str:
    """The writing system of a letter, from its Unicode name ("LATIN", "CYRILLIC", ...)."""
    script = unicodedata.name(char, "").split(" ", 1)[0]
    # Japanese names mix these three scripts within one word.
    return "JAPANESE" if script in ("CJK", "HIRAGANA", "KATAKANA") else script


def _mixes_scripts(label: str) -> bool:
    return len({_script(c) for c in label if unicodedata.category(c).startswith("L")}) > 1


def clean_email(value: str) -> str:
    """The address as accounts store it (NFC, trimmed, lower case), or ValidationError.

    Refused: control characters, more than 254 characters, anything Django's validator refuses
    (the part before @ must be ASCII), and a domain label that mixes alphabets, such as a
    Cyrillic "а" among Latin letters: such an address looks like another one.
    """
    value = unicodedata.normalize("NFC", value or "").strip()
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in value):
        raise ValidationError("Remove the control or invisible characters from the address.")
    if len(value) > EMAIL_MAX_LENGTH:
        raise ValidationError(f"Use at most {EMAIL_MAX_LENGTH} characters (this has {len(value)}).")
    try:
        validate_email(value)
    except ValidationError:
        raise ValidationError("Enter a valid e-mail address, like name@example.com.") from None
    domain = value.rsplit("@", 1)[1]
    if any(_mixes_scripts(label) for label in domain.split(".")):
        raise ValidationError(
            "The domain mixes letters of different alphabets (e.g. a Cyrillic letter among "
            "Latin ones); type the address again."
        )
    return get_user_model().objects.normalize_email(value).lower()


def username_for(email: str) -> str:
    """A unique username for the account of `email`: the address itself when it fits."""
    limit = get_user_model()._meta.get_field("username").max_length
    if len(email) <= limit:
        return email
    # Truncated address + digest of the whole: unique, stable, still readable in the admin.
    digest = hashlib.sha256(email.encode()).hexdigest()[:16]
    return f"{email[: limit - len(digest) - 1]}+{digest}"


def get_or_create_user(email: str):
    """The user with this e-mail (case-insensitive); a new one has no usable password yet.

    Raises ValidationError for something `clean_email` refuses.
    """
    User = get_user_model()
    email = clean_email(email)
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        user = User(username=username_for(email), email=email)
        user.set_unusable_password()
        try:
            with transaction.atomic():
                user.save()
        except IntegrityError:  # created meanwhile by a concurrent invitation
            user = User.objects.get(username=username_for(email))
    return user


def mark_membership_joined(sender, request, user, **kwargs) -> None:
    """A member signing in on a tenant's host has joined that tenant (from then on, not before).

    Tenants see whether someone joined *them*, never whether the account exists or has a
    password elsewhere.
    """
    from tenants.models import Membership

    tenant = getattr(request, "tenant", None)
    if tenant is None or tenant.schema_name == get_public_schema_name():
        return
    Membership.objects.filter(tenant=tenant, user=user, joined_at__isnull=True).update(
        joined_at=timezone.now()
    )


def connect() -> None:
    """Subscribe to sign-ins (called once from `TenantsConfig.ready`)."""
    user_logged_in.connect(mark_membership_joined, dispatch_uid="tenants.users.membership_joined")
