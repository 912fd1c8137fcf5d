"""Validation of every write to members, tokens and tenant settings, shared by pages and the API.

A form turns raw input into clean values (Unicode NFC, trimmed, no control characters, within
the database column's length) and names the field it refuses; services take `cleaned_data` and
still check what needs the database (duplicates, "a tenant keeps an admin"). The API serializers
in `tenants.api.serializers` run these same forms, so a page and an API call get the same
messages: the page shows them after the field's label, the API keyed by the field's name.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from tenants.accounts.users import EMAIL_MAX_LENGTH, clean_email
from tenants.models import ApiToken, Tenant
from tenants.roles import Role, TokenScope

TENANT_NAME_MAX = Tenant._meta.get_field("name").max_length
TOKEN_NAME_MAX = ApiToken._meta.get_field("name").max_length

# Characters that change how text reads without being visible: bidirectional overrides can make a
# name display as something else ("Trojan Source"); line and paragraph separators break one-line
# values. Other format characters stay allowed (the zero-width joiner builds emoji sequences).
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_MULTILINE_ALLOWED = frozenset("\n\t")


def _forbidden(char: str, *, multiline: bool) -> bool:
    if multiline and char in _MULTILINE_ALLOWED:
        return False
    # Cc: C0/C1 controls incl. NUL and DEL; Cs: lone surrogates (not storable as UTF-8);
    # Zl/Zp: line and paragraph separators.
    return unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or char in _BIDI_CONTROLS


def _describe(char: str) -> str:
    name = unicodedata.name(char, "")
    code = f"U+{ord(char):04X}"
    return f"{code} {name.lower()}" if name else code


def check_text(value: str, *, max_length: int, multiline: bool = False) -> str:
    """`value` in NFC, trimmed (line ends as \\n), or ValidationError saying what is wrong.

    Messages never repeat the input: it may be long or hold characters a page cannot show.
    """
    value = unicodedata.normalize("NFC", value)
    if multiline:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = value.strip()
    problems = []
    for position, char in enumerate(value, start=1):
        if _forbidden(char, multiline=multiline):
            problems.append(
                f"Remove the control character {_describe(char)} (character {position})."
            )
            break
    if len(value) > max_length:
        problems.append(f"Use at most {max_length} characters (this has {len(value)}).")
    if problems:
        raise ValidationError(problems)
    return value


def storable(text: str) -> bool:
    """Whether PostgreSQL can keep `text` (text and jsonb): no NUL, no lone surrogate."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def tidy_text(value: object, limit: int, *, multiline: bool = False) -> str:
    """Text from somewhere else (an imported document, an error message) made fit to show and
    store: NFC, each character `check_text` refuses turned into a space, trimmed, cut to `limit`
    with an ellipsis. Not text to store as a person's input: that is `check_text`'s."""
    if not isinstance(value, str):
        return ""
    text = unicodedata.normalize("NFC", value)
    text = "".join(" " if _forbidden(ch, multiline=multiline) else ch for ch in text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def check_field_text(field: str, value: str, *, max_length: int, multiline: bool = False) -> str:
    """`check_text` for a service: its errors keyed by `field`, as a form would give them."""
    try:
        return check_text(value or "", max_length=max_length, multiline=multiline)
    except ValidationError as exc:
        raise ValidationError({field: exc.messages}) from None


class TextField(forms.CharField):
    """Text for one database column: NFC, trimmed, no control characters, at most `max_length`."""

    def __init__(self, *, max_length: int, multiline: bool = False, **kwargs) -> None:
        self.multiline = multiline
        kwargs.setdefault("widget", forms.Textarea if multiline else forms.TextInput)
        super().__init__(max_length=max_length, strip=False, **kwargs)
        # check_text names every forbidden character (NUL included) and the length in one place.
        self.validators = []

    def to_python(self, value) -> str:
        value = super().to_python(value)
        return check_text(value, max_length=self.max_length, multiline=self.multiline)


class EmailAddressField(forms.CharField):
    """An e-mail address as accounts store it (see `tenants.accounts.users.clean_email`)."""

    widget = forms.EmailInput

    def __init__(self, **kwargs) -> None:
        super().__init__(max_length=EMAIL_MAX_LENGTH, strip=False, **kwargs)
        self.validators = []

    def to_python(self, value) -> str:
        value = super().to_python(value)
        return clean_email(value) if value else value


def _choice_field(choices, label: str, **kwargs) -> forms.ChoiceField:
    # Django's own message repeats the value sent; ours lists what may be sent instead.
    allowed = ", ".join(value for value, _ in choices)
    return forms.ChoiceField(
        choices=choices,
        label=label,
        error_messages={
            "required": f"Choose one of: {allowed}.",
            "invalid_choice": f"Choose one of: {allowed}.",
        },
        **kwargs,
    )


class PortalForm(forms.Form):
    """A form whose errors read well on a page ("E-mail: …") and map onto API fields."""

    def labelled_errors(self) -> list[str]:
        """Every error as "Label: message", for a page's message list."""
        lines = []
        for name, errors in self.errors.items():
            label = self.fields[name].label if name in self.fields else None
            lines += [f"{label}: {error}" if label else str(error) for error in errors]
        return lines

    def add_service_errors(self, exc: ValidationError) -> None:
        """Show a service's refusal on the form: under the field it names, else above the form."""
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc.messages)
            return
        for name, errors in exc.message_dict.items():
            self.add_error(name if name in self.fields else None, errors)


class InviteMemberForm(PortalForm):
    email = EmailAddressField(label="E-mail")
    role = _choice_field(Role.choices, "Role")


class ChangeRoleForm(PortalForm):
    role = _choice_field(Role.choices, "Role")


class TenantSettingsForm(PortalForm):
    name = TextField(label="Name", max_length=TENANT_NAME_MAX)


class TwoFactorRequirementForm(PortalForm):
    """Whether members must sign in with a second factor: "on" or "off"."""

    require_two_factor = _choice_field(
        [("on", "Required"), ("off", "Not required")], "Require two-factor sign-in"
    )

    def clean_require_two_factor(self) -> bool:
        return self.cleaned_data["require_two_factor"] == "on"


class TokenForm(PortalForm):
    name = TextField(label="Name", max_length=TOKEN_NAME_MAX)
    scopes = forms.MultipleChoiceField(
        label="Scopes",
        choices=TokenScope.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "required": f"Choose at least one scope of: {', '.join(TokenScope.values)}.",
            "invalid_choice": f"Unknown scope; choose from: {', '.join(TokenScope.values)}.",
            "invalid_list": f"Send a list of scopes from: {', '.join(TokenScope.values)}.",
        },
    )
    expires_at = forms.DateTimeField(
        label="Expires",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        error_messages={"invalid": "Give a date and time, e.g. 2030-01-31T18:00."},
    )

    def clean_scopes(self) -> list[str]:
        return sorted(set(self.cleaned_data["scopes"]))

    def clean_expires_at(self):
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise ValidationError("The expiry must be in the future.")
        return expires_at


class MemberRemovalForm(PortalForm):
    """Remove a member, and revoke or rotate tokens they created (tokens belong to the tenant)."""

    rotate_tokens = forms.MultipleChoiceField(
        label="Rotate", required=False, widget=forms.CheckboxSelectMultiple
    )
    revoke_tokens = forms.MultipleChoiceField(
        label="Revoke", required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args, tokens: Iterable[ApiToken] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tokens = list(tokens)
        choices = [(str(token.public_id), token.name) for token in self.tokens]
        message = "Choose among the live tokens this member created."
        for name in ("rotate_tokens", "revoke_tokens"):
            field = self.fields[name]
            field.choices = choices
            field.error_messages = {
                **field.error_messages,
                "invalid_choice": message,
                "invalid_list": "Send a list of token ids.",
            }

    def clean(self):
        cleaned = super().clean()
        both = set(cleaned.get("rotate_tokens") or ()) & set(cleaned.get("revoke_tokens") or ())
        if both:
            names = sorted(t.name for t in self.tokens if str(t.public_id) in both)
            self.add_error(
                "revoke_tokens", f"Rotate or revoke a token, not both: {', '.join(names)}."
            )
        return cleaned
