"""Sign-in by e-mail address, and the name sign-in lockout counts under.

Account lookup and lockout share one normalisation (`normalise_login`): a spelling that finds
an account is always counted under that account's name, so no variant of an address (case,
compatibility forms such as fullwidth letters or 'ſ', dotless 'ı', spaces) signs in while the
account is locked.
"""

from __future__ import annotations

import unicodedata

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db.models import Q

# axes stores the name in CharField(max_length=255) columns.
LOCKOUT_NAME_MAX_LENGTH = 255
# No e-mail address is longer (the column's length); longer input finds nothing.
ACCOUNT_NAME_MAX_LENGTH = 254
# Stands in for NUL, which PostgreSQL cannot store and no account name contains.
_REPLACEMENT = "\ufffd"


def normalise_login(value: object) -> str:
    """The one comparable form of a sign-in name: NFKC, then casefolded, stripped, NUL refused."""
    text = unicodedata.normalize("NFKC", str(value or "")).casefold().strip()
    return text.replace("\x00", _REPLACEMENT)


def find_account(name: object):
    """The account whose e-mail normalises to the same form as `name`, or None."""
    key = normalise_login(name)
    if not key or len(key) > ACCOUNT_NAME_MAX_LENGTH or _REPLACEMENT in key:
        return None
    raw = unicodedata.normalize("NFKC", str(name)).strip()
    # The database narrows the candidates (its case-insensitive match is looser than casefold:
    # PostgreSQL upper-cases 'ı' to 'I'); the exact comparison is made here, on one form.
    candidates = (
        get_user_model().objects.filter(Q(email__iexact=key) | Q(email__iexact=raw)).order_by("pk")
    )
    return next((user for user in candidates if normalise_login(user.email) == key), None)


def lockout_username(request, credentials) -> str:
    """The name django-axes counts failures under: the form `find_account` matches on.

    An account is found only when the typed name normalises to its e-mail's form, so every
    spelling that could sign in to an account is counted under that one name.
    """
    source = credentials if credentials is not None else getattr(request, "POST", {})
    return normalise_login(source.get("username"))[:LOCKOUT_NAME_MAX_LENGTH]


class EmailBackend(ModelBackend):
    """Finds the account through `find_account`, the same lookup the lockout counts by."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None or password is None:
            return None
        user = find_account(username)
        if user is None:
            # Same cost as a real check, so response time does not reveal which e-mails exist.
            get_user_model()().set_password(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
