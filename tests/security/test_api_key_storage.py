"""API keys are stored as digests only, and a key revoked with `adfame api-key revoke` is refused at once.

The CLI runs as a user runs it (a subprocess of the installed `adfame`), pointed at this module's own
database through ``ADFAME_APP_DB``; the API it is checked against is served over HTTP on the real stack.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from security_support import OWNER, detail, finished_job
from sqlalchemy import Engine, text

from adfame.storage import ObjectStore

pytestmark = pytest.mark.integration

ADFAME = str(Path(sys.executable).parent / "adfame")
KEY = re.compile(r"^af_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$", re.MULTILINE)


def _cli(engine: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    """`adfame ARGS` on this module's database; the caller checks the exit status."""
    env = {**os.environ, "ADFAME_APP_DB": str(engine.url.database)}
    return subprocess.run([ADFAME, *args], env=env, capture_output=True, text=True, timeout=60)


def test_keys_are_stored_as_sha256_digests_never_in_clear(engine: Engine) -> None:
    created = _cli(engine, "api-key", "create", "--tenant", OWNER)
    assert created.returncode == 0, created.stderr
    [key] = KEY.findall(created.stdout)
    key_id, secret = key.split("_")[1], key.split("_")[2]
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM api_keys WHERE key_id = :id"), {"id": key_id}).mappings().one()
        dump = conn.execute(text("SELECT string_agg(t::text, ' ') FROM api_keys t")).scalar_one()
    assert row["key_sha256"] == hashlib.sha256(key.encode()).hexdigest()
    assert row["tenant"] == OWNER and row["revoked_at"] is None
    # No column of any row holds the key or its secret part: a leaked table opens nothing.
    assert key not in dump and secret not in dump


def test_a_key_revoked_with_the_cli_is_refused_at_once(
    engine: Engine, store: ObjectStore, api_url: str
) -> None:
    job = finished_job(engine, store)
    created = _cli(engine, "api-key", "create", "--tenant", OWNER)
    assert created.returncode == 0, created.stderr
    [key] = KEY.findall(created.stdout)
    with httpx.Client(base_url=api_url, headers={"X-API-Key": key}, timeout=30) as client:
        assert client.get(f"/jobs/{job}").status_code == 200

        revoked = _cli(engine, "api-key", "revoke", key)
        assert revoked.returncode == 0, revoked.stderr
        assert key not in revoked.stdout + revoked.stderr, "the CLI never echoes a clear key"

        # The very next call, on the same connection, is refused: nothing caches a key's tenant.
        refused = client.get(f"/jobs/{job}")
        assert refused.status_code == 401 and "unknown or revoked API key" in detail(refused)
        for path, body in (("/generate-video", {"prompt": "a red car at night"}),
                           (f"/jobs/{job}/selection", {"candidate_index": 0})):  # fmt: skip
            assert client.post(path, json=body).status_code == 401, path
    again = _cli(engine, "api-key", "revoke", key)
    assert again.returncode == 1 and "no live API key" in again.stderr, "a revoked key stays revoked"


def test_revoking_an_unknown_key_id_changes_nothing(engine: Engine) -> None:
    with engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL")).scalar_one()
    result = _cli(engine, "api-key", "revoke", uuid.uuid4().hex[:16])
    assert result.returncode == 1 and "no live API key" in result.stderr
    with engine.connect() as conn:
        after = conn.execute(text("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL")).scalar_one()
    assert after == before
