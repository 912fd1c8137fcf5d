"""Closes live connections within a second when access goes (lifecycle hooks -> consumers)."""


def connect() -> None:
    """Subscribe to the tenant lifecycle hooks."""
