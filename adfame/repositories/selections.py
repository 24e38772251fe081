"""SQL of ``selections`` and ``retrain_milestones``: marketers' picks and the retrains they earn.

Why one module: "exactly one retrain per 200 selections" rests on three statements agreeing with each
other (the insert of a pick, the count under an advisory lock, the milestone row written in the same
transaction) and on the trigger's updates touching only untriggered rows. The rules that decide
(which count completes a milestone) stay with the caller, ``inference.feedback``.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

# Any fixed 64-bit key works; every process that records selections must agree on it.
SELECTION_COUNT_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"adfame.selections.milestones").digest()[:8], "big", signed=True
)
_FK_VIOLATION = "23503"


class CandidateGone(LookupError):
    """The selection names a candidate row that does not exist (it vanished since it was checked)."""


@dataclass(frozen=True)
class PendingMilestone:
    """A milestone row that Airflow has not accepted a run for yet."""

    milestone: int
    selection_count: int


def insert_selection(
    conn: Connection, request_id: uuid.UUID, candidate_index: int, tenant: str
) -> datetime | None:
    """Record the pick; returns its time, or None when the request already has a selection."""
    try:
        return conn.execute(
            text(
                "insert into selections (request_id, candidate_index, tenant)"
                " values (:id, :index, :tenant)"
                " on conflict (request_id) do nothing returning selected_at"
            ),
            {"id": request_id, "index": candidate_index, "tenant": tenant},
        ).scalar_one_or_none()
    except IntegrityError as exc:
        if getattr(exc.orig, "pgcode", None) == _FK_VIOLATION:
            raise CandidateGone(f"request {request_id} has no candidate {candidate_index}") from exc
        raise


def selected_index(conn: Connection, request_id: uuid.UUID) -> int | None:
    """The candidate picked for the request, None while none is."""
    return conn.execute(
        text("select candidate_index from selections where request_id = :id"), {"id": request_id}
    ).scalar_one_or_none()


def count_selections_locked(conn: Connection) -> int:
    """All selections, counted under a transaction-level advisory lock.

    The lock makes the counts of concurrent transactions 1, 2, 3, ... with no gaps or repeats: read
    committed lets this statement see every selection committed before the lock was granted.
    """
    conn.execute(text("select pg_advisory_xact_lock(:key)"), {"key": SELECTION_COUNT_LOCK_KEY})
    return conn.execute(text("select count(*) from selections")).scalar_one()


def insert_milestone(conn: Connection, milestone: int, selection_count: int) -> None:
    """The milestone's row, in the transaction of the selection that completed it."""
    conn.execute(
        text(
            "insert into retrain_milestones (milestone, selection_count) values (:m, :count)"
            " on conflict (milestone) do nothing"
        ),
        {"m": milestone, "count": selection_count},
    )


def pending_milestones(engine: Engine) -> list[PendingMilestone]:
    """Milestones not triggered yet, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "select milestone, selection_count from retrain_milestones"
                " where triggered_at is null order by milestone"
            )
        ).all()
    return [PendingMilestone(milestone, count) for milestone, count in rows]


def mark_triggered(engine: Engine, milestone: int, dag_id: str, run_id: str) -> None:
    """Airflow has the milestone's run: record which, once (a triggered row is never touched again)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "update retrain_milestones set triggered_at = now(), dag_id = :dag_id, dag_run_id = :run_id,"
                " attempts = attempts + 1, last_error = null"
                " where milestone = :m and triggered_at is null"
            ),
            {"m": milestone, "dag_id": dag_id, "run_id": run_id},
        )


def record_trigger_failure(engine: Engine, milestone: int, reason: str) -> None:
    """Keep why the milestone's trigger failed, for the operator; the next pass tries again."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "update retrain_milestones set attempts = attempts + 1, last_error = :error"
                " where milestone = :m and triggered_at is null"
            ),
            {"m": milestone, "error": reason},
        )
