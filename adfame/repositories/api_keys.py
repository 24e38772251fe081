"""SQL of ``api_keys``: per-tenant keys, stored as digests only.

Why one module: what a key is (its format, its hashing, the constant-time comparison) stays with
``inference.auth``; this module only stores and finds rows by the public key id, so the one rule the
table carries (a revoked row is never live again) is written in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, text


@dataclass(frozen=True)
class StoredKey:
    """A key's row as the API checks it: its digest, its tenant and when it was revoked (None: live)."""

    key_sha256: str
    tenant: str
    revoked_at: datetime | None


def insert_key(engine: Engine, key_id: str, key_sha256: str, tenant: str) -> None:
    """Store a new key's digest for ``tenant`` under its public id."""
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO api_keys (key_id, key_sha256, tenant) VALUES (:key_id, :digest, :tenant)"),
            {"key_id": key_id, "digest": key_sha256, "tenant": tenant},
        )


def find_key(engine: Engine, key_id: str) -> StoredKey | None:
    """The key's row, revoked or not; None when no key has that id."""
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT key_sha256, tenant, revoked_at FROM api_keys WHERE key_id = :key_id"),
            {"key_id": key_id},
        ).first()
    return StoredKey(row.key_sha256, row.tenant, row.revoked_at) if row is not None else None


def revoke_key(engine: Engine, key_id: str) -> bool:
    """Revoke the live key with that id; True when one was live (a revoked key stays revoked)."""
    with engine.begin() as conn:
        result = conn.execute(
            text("UPDATE api_keys SET revoked_at = now() WHERE key_id = :key_id AND revoked_at IS NULL"),
            {"key_id": key_id},
        )
    return result.rowcount == 1
