"""Account forms: the password-reset request, changing one's own password, and codes of
authenticator apps (two-factor sign-in)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth import forms as auth_forms

from tenants import links
from tenants.accounts import two_factor


class PasswordResetForm(auth_forms.PasswordResetForm):
    """Mails a link built from the configured domain, scheme and port, never from the Host header.

    The request's Host is chosen by the client: trusting it would let anyone have the portal mail
    a reset link that points at another server (or port) to a victim.
    """

    def send_mail(
        self,
        subject_template_name,
        email_template_name,
        context,
        from_email,
        to_email,
        html_email_template_name=None,
    ):
        origin = urlsplit(links.public_url("/"))
        context = {
            **context,
            "protocol": origin.scheme,
            "domain": origin.netloc,
            "site_name": settings.PORTAL_BASE_DOMAIN,
            "reset_url": links.set_password_url(context["uid"], context["token"]),
        }
        super().send_mail(
            subject_template_name,
            email_template_name,
            context,
            from_email,
            to_email,
            html_email_template_name,
        )


class OwnPasswordForm(forms.Form):
    """The current password (checked like a sign-in, so it counts towards lockout) and a new one."""

    old_password = forms.CharField(
        label="Current password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    new_password1 = forms.CharField(
        label="New password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    new_password2 = forms.CharField(
        label="New password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, request, *args, **kwargs):
        self.request = request
        super().__init__(*args, **kwargs)

    def clean_old_password(self) -> str:
        password = self.cleaned_data["old_password"]
        user = self.request.user
        # Through authenticate(), not check_password(): a stolen session must not be able to
        # guess the password here without the sign-in lockout noticing.
        confirmed = authenticate(self.request, username=user.email, password=password)
        if confirmed is None or confirmed.pk != user.pk:
            raise forms.ValidationError("Your current password is not correct.")
        return password

    def clean(self):
        cleaned = super().clean()
        first, second = cleaned.get("new_password1"), cleaned.get("new_password2")
        if first and second and first != second:
            self.add_error("new_password2", "The two new passwords differ.")
        return cleaned


class CodeField(forms.CharField):
    """A code from an authenticator app: six digits, spaces allowed (`two_factor.clean_code`)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault(
            "widget",
            forms.TextInput(
                attrs={
                    "autocomplete": "one-time-code",
                    "inputmode": "numeric",
                    "maxlength": two_factor.CODE_INPUT_MAX,
                    "spellcheck": "false",
                }
            ),
        )
        super().__init__(strip=False, **kwargs)
        # clean_code names a control character (NUL included) and the length itself.
        self.validators = []
        self.error_messages["required"] = (
            f"Enter the {two_factor.CODE_DIGITS}-digit code your app shows."
        )

    def to_python(self, value) -> str:
        value = super().to_python(value)
        return two_factor.clean_code(value) if value else value


class CodeForm(forms.Form):
    """One code from the person's authenticator app."""

    code = CodeField(label="Code")


class SignInCodeField(CodeField):
    """At sign-in: a code from the app, or one of the person's recovery codes."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        # Recovery codes have letters: a phone's keyboard must offer them.
        self.widget.attrs.pop("inputmode", None)

    def to_python(self, value) -> str:
        value = forms.CharField.to_python(self, value)
        if value and two_factor.is_recovery_code(value):
            return two_factor.clean_recovery_code(value)
        return two_factor.clean_code(value) if value else value


class SignInCodeForm(forms.Form):
    """The code step of signing in."""

    code = SignInCodeField(
        label="Code", help_text="The code your app shows, or one of your recovery codes."
    )
