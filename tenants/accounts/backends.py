"""Sign-in by e-mail address (case-insensitive) as well as by username."""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend


def lockout_username(request, credentials) -> str:
    """The name django-axes counts failures under: as case-insensitive as sign-in itself."""
    source = credentials if credentials is not None else getattr(request, "POST", {})
    return str(source.get("username") or "").strip().lower()


class EmailBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None or password is None:
            return None
        User = get_user_model()
        username = username.strip()
        user = User.objects.filter(email__iexact=username).order_by("pk").first()
        if user is None:
            user = User.objects.filter(username=username).first()
        if user is None:
            # Same cost as a real check, so response time does not reveal which e-mails exist.
            User().set_password(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
