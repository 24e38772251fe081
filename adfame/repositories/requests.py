"""SQL of ``generation_requests`` and ``candidates``: a request's life from queued to finished.

Why one module: the API records a request before its message exists, a worker claims it, finishes it
with its candidates in one transaction, and the API, the CLI and the worker read it back. Each of
these writes is part of a contract with the others (a claim never steals another tenant's id, a
finished request shows all its candidates or none), so the statements live side by side. Functions
taking an ``Engine`` run their own transaction; those taking a ``Connection`` join the caller's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, text

from adfame.schemas import PromptRequest

TERMINAL = ("succeeded", "failed")
# What a worker's claim found: the request is its own now, already succeeded, another tenant's id, or
# refused: the API answered that it could not queue it (Kafka did not ack in time; ``fail_unqueued``), so
# the client may have sent it again, and a message Kafka delivered after all must not be served.
ClaimStatus = Literal["claimed", "done", "other-tenant", "refused"]


@dataclass(frozen=True)
class Candidate:
    """One candidate video of a request: its variation of the prompt, its seed and its object key."""

    index: int
    variation_prompt: str
    seed: int
    object_key: str


@dataclass(frozen=True)
class Job:
    """A request as callers read it: its state, what served it, and its candidates."""

    request_id: uuid.UUID
    tenant: str
    prompt: str
    status: str
    num_frames: int
    fps: int
    model_version: str | None
    route: str | None
    timings: dict[str, Any]
    error: str | None
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True)
class Claim:
    """What a worker's claim found, and the request's ``route_seq``: its place in the canary split, drawn
    when its row was inserted and the same on every redelivery."""

    status: ClaimStatus
    route_seq: int


@dataclass(frozen=True)
class Outcome:
    """How a request ended, as a worker records it: candidates only when it succeeded."""

    status: Literal["succeeded", "failed"]
    route: str
    model_version: str
    timings: dict[str, float]
    candidates: list[Candidate] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class RequestState:
    """Who owns a request and how far it got: what a selection is checked against."""

    tenant: str
    status: str


@dataclass(frozen=True)
class BatchEnd:
    """How a batch of requests ended: when the last of them finished (None: none has) and how many failed."""

    last_finished_at: datetime | None
    failed: int


# The request's row as the producer records it; ``started_at`` is the database's clock, like
# ``finished_at`` (the table checks that one never precedes the other).
_INSERT_REQUEST = """
insert into generation_requests (request_id, tenant, prompt, num_candidates, num_frames, fps, height, width,
    seed, status, submitted_at, started_at)
values (:request_id, :tenant, :prompt, :num_candidates, :num_frames, :fps, :height, :width, :seed,
    :status, :submitted_at, case when :status = 'running' then now() end)
"""


def _request_row(request: PromptRequest, status: str) -> dict[str, Any]:
    return {**request.model_dump(exclude={"schema_version"}), "status": status}


def record_request(engine: Engine, request: PromptRequest) -> bool:
    """Insert the request's row as queued unless it exists; True when this call created it."""
    with engine.begin() as conn:
        result = conn.execute(
            text(_INSERT_REQUEST + "on conflict (request_id) do nothing"), _request_row(request, "queued")
        )
    return result.rowcount == 1


# A recorded request becomes the worker's: its own tenant's, not succeeded already, and not refused (failed
# without ever being started: ``fail_unqueued``'s mark; a worker's failure always follows its claim's start).
_CLAIM_RECORDED = """
update generation_requests set status = 'running', started_at = now(), finished_at = null, error = null
where request_id = :request_id and tenant = :tenant and status <> 'succeeded'
    and not (status = 'failed' and started_at is null)
returning route_seq
"""


def claim_request(engine: Engine, request: PromptRequest) -> Claim:
    """Mark the request running for a worker, in one round trip when all is well.

    The row is created here when the producer never recorded it (a message put on the topic by other
    means). A failed or interrupted attempt is started afresh: its error and finish time are cleared.
    A request that already succeeded (a redelivery), whose id is another tenant's, or that the API refused
    (``fail_unqueued``) is left alone.
    A recorded row is updated, never re-inserted: an insert that meets a conflict still draws a
    ``route_seq``, and numbers burnt by every claim would thin out the sequence the canary split relies on.
    """
    params = _request_row(request, "running")
    with engine.begin() as conn:
        seq = conn.execute(text(_CLAIM_RECORDED), params).scalar()
        if seq is None and request_state(conn, request.request_id) is None:
            seq = conn.execute(
                text(
                    _INSERT_REQUEST
                    + """
                    on conflict (request_id) do update
                    set status = 'running', started_at = now(), finished_at = null, error = null
                    where generation_requests.tenant = excluded.tenant
                        and generation_requests.status <> 'succeeded'
                    returning route_seq
                    """
                ),
                params,
            ).scalar()
        if seq is not None:
            return Claim("claimed", seq)
        tenant, status, seq = conn.execute(
            text("select tenant, status, route_seq from generation_requests where request_id = :id"),
            {"id": str(request.request_id)},
        ).one()
    if tenant != request.tenant:
        return Claim("other-tenant", seq)
    return Claim("done" if status == "succeeded" else "refused", seq)


def finish_request(engine: Engine, request_id: uuid.UUID, outcome: Outcome) -> None:
    """Candidates and the request's final state in one transaction: both or neither are visible."""
    with engine.begin() as conn:
        if outcome.candidates:  # all rows in one statement: one round trip, however many candidates
            conn.execute(
                text("""
                insert into candidates (request_id, candidate_index, variation_prompt, seed, object_key)
                select :id, idx, prompt, seed, key
                from unnest(cast(:indexes as integer[]), cast(:prompts as text[]), cast(:seeds as bigint[]),
                    cast(:keys as text[])) as c (idx, prompt, seed, key)
                on conflict (request_id, candidate_index) do update
                set variation_prompt = excluded.variation_prompt, seed = excluded.seed,
                    object_key = excluded.object_key
                """),
                {
                    "id": str(request_id),
                    "indexes": [c.index for c in outcome.candidates],
                    "prompts": [c.variation_prompt for c in outcome.candidates],
                    "seeds": [c.seed for c in outcome.candidates],
                    "keys": [c.object_key for c in outcome.candidates],
                },
            )
        conn.execute(
            text("""
            update generation_requests set status = :status, finished_at = now(), route = :route,
                model_version = :version, timings = cast(:timings as jsonb), error = :error
            where request_id = :id
            """),
            {
                "status": outcome.status,
                "route": outcome.route,
                "version": outcome.model_version,
                "timings": json.dumps({k: round(v, 4) for k, v in outcome.timings.items()}),
                "error": outcome.error,
                "id": str(request_id),
            },
        )


def fail_unqueued(engine: Engine, request_id: uuid.UUID, reason: str) -> bool:
    """Mark a request whose message Kafka did not acknowledge failed, unless a worker has it already.

    True when this call marked it: the request is refused, and a worker that gets its message after all
    (the producer delivered it late) leaves it alone (``claim_request``). False when a worker claimed it
    first: the message did arrive, the request is under way and must be reported accepted, or a client
    that sends it again gets it done twice.
    """
    statement = text(
        "update generation_requests set status = 'failed', finished_at = now(), error = :error"
        " where request_id = :id and status = 'queued'"
    )
    with engine.begin() as conn:
        return conn.execute(statement, {"id": request_id, "error": reason}).rowcount == 1


def get_job(engine: Engine, request_id: uuid.UUID | str, tenant: str | None = None) -> Job | None:
    """The request and its candidates; None when unknown (or owned by another tenant, when given)."""
    with engine.connect() as conn:
        row = (
            conn.execute(
                text("""
            select request_id, tenant, prompt, status, num_frames, fps, model_version, route, timings, error
            from generation_requests where request_id = :id
            """),
                {"id": str(request_id)},
            )
            .mappings()
            .first()
        )
        if row is None or (tenant is not None and row["tenant"] != tenant):
            return None
        candidates = conn.execute(
            text("""
            select candidate_index, variation_prompt, seed, object_key from candidates
            where request_id = :id order by candidate_index
            """),
            {"id": str(request_id)},
        ).all()
    return Job(**dict(row), candidates=[Candidate(*c) for c in candidates])


def request_state(conn: Connection, request_id: uuid.UUID) -> RequestState | None:
    """The request's tenant and status, None when there is no such request."""
    row = conn.execute(
        text("select tenant, status from generation_requests where request_id = :id"), {"id": request_id}
    ).first()
    return RequestState(row.tenant, row.status) if row is not None else None


def candidate_indexes(conn: Connection, request_id: uuid.UUID) -> list[int]:
    """The indexes of the request's candidates, in order."""
    return list(
        conn.execute(
            text("select candidate_index from candidates where request_id = :id order by candidate_index"),
            {"id": request_id},
        ).scalars()
    )


def _id_list(request_ids: Sequence[uuid.UUID]) -> list[str]:
    return [str(rid) for rid in request_ids]


def count_finished(engine: Engine, request_ids: Sequence[uuid.UUID]) -> int:
    """How many of the requests have ended (succeeded or failed): one query however many are awaited."""
    with engine.connect() as conn:
        return conn.execute(
            text(
                "select count(*) from generation_requests"
                " where request_id = any(cast(:ids as uuid[])) and status = any(:terminal)"
            ),
            {"ids": _id_list(request_ids), "terminal": list(TERMINAL)},
        ).scalar_one()


def batch_end(engine: Engine, request_ids: Sequence[uuid.UUID]) -> BatchEnd:
    """When the last of the requests finished, on the database's clock (the one that stamped them all)."""
    with engine.connect() as conn:
        last, failed = conn.execute(
            text(
                "select max(finished_at), count(*) filter (where status = 'failed')"
                " from generation_requests where request_id = any(cast(:ids as uuid[]))"
            ),
            {"ids": _id_list(request_ids)},
        ).one()
    return BatchEnd(last, int(failed))


def delete_finished(engine: Engine, request_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """Delete those of the requests that have ended, their candidates with them; returns their ids.

    Unfinished ones are kept: a worker may still hold one, and its finish must find the row.
    """
    with engine.begin() as conn:
        deleted = conn.execute(
            text(
                "delete from generation_requests"
                " where request_id = any(cast(:ids as uuid[])) and status = any(:terminal)"
                " returning request_id::text"
            ),
            {"ids": _id_list(request_ids), "terminal": list(TERMINAL)},
        ).scalars()
        return [uuid.UUID(rid) for rid in deleted]
