"""API token secrets: generated once, stored only as a SHA-256 digest."""

import hashlib
import secrets

TOKEN_PREFIX = "mpt_"


def new_secret() -> str:
    # 32 random bytes: brute force is out of reach, so a fast digest (not a password hash) is enough
    # and keeps token look-up to one indexed query.
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
