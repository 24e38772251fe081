"""Per-tenant API keys: create, resolve to a tenant, revoke.

A key reads ``af_<key_id>_<secret>``. Only its sha256 is stored (table ``api_keys``, V003), so the
database never holds a usable key; the clear key is returned once, by :func:`create_api_key`. The
key id finds the row in one index lookup and the digest is compared in constant time, so response
times do not tell an attacker how much of a guessed key was right.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from sqlalchemy import Engine

from adfame.repositories import api_keys
from adfame.schemas import TENANT_PATTERN

KEY_PREFIX = "af"
_KEY_RE = re.compile(r"^af_(?P<key_id>[0-9a-f]{16})_(?P<secret>[A-Za-z0-9_-]{43})$")
# Compared against when the key id is unknown, so that case costs the same as a wrong secret.
_DUMMY_DIGEST = hashlib.sha256(b"adfame.api_keys.dummy").hexdigest()


def digest(key: str) -> str:
    """The sha256 hex digest stored for a key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_key_id(key: str) -> str | None:
    """The public key id of a well-formed key, None for anything else."""
    match = _KEY_RE.match(key)
    return match["key_id"] if match else None


def new_key() -> tuple[str, str]:
    """A fresh ``(key_id, clear key)``; 256 random bits in the secret."""
    key_id = secrets.token_hex(8)
    return key_id, f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def create_api_key(engine: Engine, tenant: str) -> str:
    """Store a new key for ``tenant`` and return it in clear: the only time it can be read."""
    if not re.match(TENANT_PATTERN, tenant):
        raise ValueError(
            f"tenant {tenant!r} must match {TENANT_PATTERN} (lowercase letters, digits, - and _)"
        )
    key_id, key = new_key()
    api_keys.insert_key(engine, key_id, digest(key), tenant)
    return key


def tenant_for_key(engine: Engine, key: str) -> str | None:
    """The tenant a live key belongs to; None for a malformed, unknown or revoked key."""
    key_id = parse_key_id(key)
    stored = api_keys.find_key(engine, key_id) if key_id is not None else None
    matches = hmac.compare_digest(stored.key_sha256 if stored else _DUMMY_DIGEST, digest(key))
    if stored is None or not matches or stored.revoked_at is not None:
        return None
    return stored.tenant


def revoke_api_key(engine: Engine, key_or_id: str) -> bool:
    """Revoke a key, given in clear or by its id; True when a live key was revoked."""
    return api_keys.revoke_key(engine, parse_key_id(key_or_id) or key_or_id)
