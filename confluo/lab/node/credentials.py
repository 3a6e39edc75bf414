"""The admin's password and token: stored as salted hashes only; checking an Authorization header."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

HASH_ITERATIONS = 20_000


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, HASH_ITERATIONS)
    return f"pbkdf2_sha256${HASH_ITERATIONS}${salt.hex()}${digest.hex()}"


@functools.lru_cache(maxsize=64)  # the API is polled: don't pay the key derivation on every request
def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, expected = stored.split("$")
    except ValueError:
        return False
    if scheme != "pbkdf2_sha256":
        return False
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), bytes.fromhex(salt), int(iterations))
    return hmac.compare_digest(digest.hex(), expected)


def authorized(header: str, settings: dict[str, str]) -> bool:
    """Whether an Authorization header (Basic admin:password, or Bearer token) matches the stored hashes."""
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer":
        stored = settings.get("token_hash", "")
        return bool(stored) and verify_secret(credentials.strip(), stored)
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    stored = settings.get("admin_password_hash", "")
    return user == settings.get("admin_user") and verify_secret(password, stored)
