"""Sign-in, sign-out, failed sign-in and lockout, written to the audit trail."""


def connect() -> None:
    """Subscribe to Django's and axes' authentication signals."""
