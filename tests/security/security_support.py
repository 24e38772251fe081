"""What the security tests share: the two tenants, a finished job of one of them, reading answers.

A job is finished the way the worker finishes it (tests/integration/api_support.py: real mp4 objects
under ``{tenant}/{request_id}/{index}.mp4``, then the rows in one transaction), so the API serves it
exactly as it serves a generated one.
"""

from __future__ import annotations

import uuid

import httpx
from api_support import complete_request, insert_request
from sqlalchemy import Engine

from adfame.storage import ObjectStore

# Two brands whose data must never meet: OWNER holds the jobs, INTRUDER tries to reach them.
OWNER, INTRUDER = "sec-owner", "sec-intruder"
TENANTS = (OWNER, INTRUDER)


def finished_job(engine: Engine, store: ObjectStore, tenant: str = OWNER, candidates: int = 2) -> uuid.UUID:
    """A succeeded job of ``tenant`` with ``candidates`` real mp4s in the videos bucket."""
    request_id = insert_request(engine, tenant, f"a secret campaign {uuid.uuid4().hex[:8]}")
    complete_request(engine, store, request_id, tenant, candidates)
    return request_id


def detail(response: httpx.Response) -> str:
    """The API's reason for a refusal; every 4xx carries one."""
    reason = response.json()["detail"]
    assert isinstance(reason, str) and reason, response.text
    return reason
