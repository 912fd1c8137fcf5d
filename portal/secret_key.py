"""The Django secret key: generated once per checkout in development, refused when weak elsewhere.

Imported by the settings module, so it uses the standard library only.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

MIN_LENGTH = 50
MIN_DISTINCT_CHARACTERS = 5
# Markers of keys published with code: Django's `startproject` default and our own former one.
PUBLISHED_MARKERS = ("django-insecure", "insecure-development-key")


def weakness(key: str) -> str | None:
    """Why `key` cannot sign sessions and hand-over tickets in a real installation, or None."""
    if not key:
        return "SECRET_KEY is not set"
    if any(marker in key for marker in PUBLISHED_MARKERS):
        return "SECRET_KEY is a value published with source code"
    if len(key) < MIN_LENGTH:
        return f"SECRET_KEY is shorter than {MIN_LENGTH} characters"
    if len(set(key)) < MIN_DISTINCT_CHARACTERS:
        return f"SECRET_KEY has fewer than {MIN_DISTINCT_CHARACTERS} distinct characters"
    return None


def checkout_secret_key(path: Path) -> str:
    """The key stored at `path` (mode 0600), created at random by the first process to ask.

    Several processes start at once (web, worker, beat, tests): the key is written to a private
    temporary file and linked into place, so every one of them reads the same complete key.
    """
    with contextlib.suppress(FileNotFoundError):
        return _read(path)
    # Default permissions: under .run/ the embedded PostgreSQL runs as another user.
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(64) + "\n")
        with contextlib.suppress(FileExistsError):  # another process was first: use its key
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> str:
    key = path.read_text().strip()
    problem = weakness(key)
    if problem:
        raise ValueError(f"{path}: {problem}; delete the file to get a new key")
    return key
