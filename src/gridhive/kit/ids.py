"""Identifiers and secrets."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid


def new_uuid() -> uuid.UUID:
    """A random UUID for rows whose ids are ours (events, commands, enrollments...)."""
    return uuid.uuid4()


def random_token(nbytes: int = 32) -> str:
    """A URL-safe random string with `nbytes` bytes of entropy."""
    return secrets.token_urlsafe(nbytes)


def hash_secret(secret: str) -> str:
    """SHA-256 hex digest of a high-entropy secret.

    Keys and tokens carry 256 bits of randomness, so a fast hash is enough: a slow
    password hash only helps against guessable secrets.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, expected_hash: str) -> bool:
    """Constant-time comparison of a presented secret with a stored hash."""
    return hmac.compare_digest(hash_secret(secret), expected_hash)


def hash_payload(data: bytes) -> str:
    """Fingerprint of a request body (idempotency checks)."""
    return hashlib.sha256(data).hexdigest()
