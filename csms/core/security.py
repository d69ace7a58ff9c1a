"""Hashing of station passwords (argon2) and API keys (SHA-256 of a random key)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# A station reconnecting does not pay argon2 again: remember verified (hash, password) pairs.
_verified: dict[str, bytes] = {}


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    digest = hashlib.sha256(password.encode()).digest()
    known = _verified.get(password_hash)
    if known is not None:
        return hmac.compare_digest(known, digest)
    try:
        _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    _verified[password_hash] = digest
    return True


def new_api_key() -> tuple[str, str, str]:
    """A new API key: (the key to show once, its lookup prefix, its hash to store)."""
    prefix = secrets.token_hex(4)
    key = f"csms_{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, hash_api_key(key)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_prefix(key: str) -> str | None:
    parts = key.split("_")
    return parts[1] if len(parts) >= 3 and parts[0] == "csms" else None
