"""SQL of ``selections`` and ``retrain_milestones``: marketers' picks and the retrains they earn.

Why one module: "exactly one retrain per 200 selections" rests on three statements agreeing with each
other (the insert of a pick, the count under an advisory lock, the milestone row written in the same
transaction) and on the trigger's updates touching only untriggered rows. The rules that decide
(which count completes a milestone) stay with the caller, ``inference.feedback``. Each selection is
stamped at insert with the milestone it belongs to (sql/V004__selection_milestones.sql), under the
same lock, so the retrain of milestone N reads back exactly the picks that earned it.
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, RowMapping, text
from sqlalchemy.exc import IntegrityError

from adfame.contracts import SELECTIONS_PER_RETRAIN
from adfame.repositories.requests import Candidate

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
    conn: Connection,
    request_id: uuid.UUID,
    candidate_index: int,
    tenant: str,
    per_milestone: int = SELECTIONS_PER_RETRAIN,
) -> datetime | None:
    """Record the pick, stamped with its milestone; returns its time, or None when the request has one.

    The stamp is the count of the selections before this one, under the counting lock, so the n-th
    selection belongs to milestone ceil(n / per_milestone), the one whose row the count will complete.
    """
    _lock_selection_count(conn)
    try:
        return conn.execute(
            text(
                "insert into selections (request_id, candidate_index, tenant, milestone)"
                " select :id, :index, :tenant, count(*) / :per + 1 from selections"
                " on conflict (request_id) do nothing returning selected_at"
            ),
            {"id": request_id, "index": candidate_index, "tenant": tenant, "per": per_milestone},
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
    _lock_selection_count(conn)
    return conn.execute(text("select count(*) from selections")).scalar_one()


def _lock_selection_count(conn: Connection) -> None:
    """Take the counting lock until the transaction ends (a second call in one transaction is free)."""
    conn.execute(text("select pg_advisory_xact_lock(:key)"), {"key": SELECTION_COUNT_LOCK_KEY})


def insert_milestone(conn: Connection, milestone: int, selection_count: int) -> None:
    """The milestone's row, in the transaction of the selection that completed it."""
    conn.execute(
        text(
            "insert into retrain_milestones (milestone, selection_count) values (:m, :count)"
            " on conflict (milestone) do nothing"
        ),
        {"m": milestone, "count": selection_count},
    )


@dataclass(frozen=True)
class MilestoneRow:
    """A milestone and the DAG run Airflow accepted for it (None until it did)."""

    milestone: int
    selection_count: int
    dag_id: str
    dag_run_id: str | None
    last_error: str | None


def milestone_row(engine: Engine, milestone: int | None = None) -> MilestoneRow | None:
    """The row of ``milestone``, or of the latest milestone when None; None when there is none."""
    query = (
        "select milestone, selection_count, dag_id, dag_run_id, last_error from retrain_milestones"
        + (" where milestone = :m" if milestone is not None else "")
        + " order by milestone desc limit 1"
    )
    with engine.connect() as conn:
        row = conn.execute(text(query), {"m": milestone}).mappings().first()
    return MilestoneRow(**row) if row is not None else None


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
    _record_attempt(
        engine,
        milestone,
        "triggered_at = now(), dag_id = :dag_id, dag_run_id = :run_id, last_error = null",
        {"dag_id": dag_id, "run_id": run_id},
    )


def record_trigger_failure(engine: Engine, milestone: int, reason: str) -> None:
    """Keep why the milestone's trigger failed, for the operator; the next pass tries again."""
    _record_attempt(engine, milestone, "last_error = :error", {"error": reason})


def _record_attempt(engine: Engine, milestone: int, assignments: str, params: dict[str, str]) -> None:
    """Count one more trigger attempt on a milestone not triggered yet, with ``assignments`` (SQL written
    here, values bound from ``params``); a triggered row is never touched again."""
    with engine.begin() as conn:
        conn.execute(
            text(
                f"update retrain_milestones set attempts = attempts + 1, {assignments}"
                " where milestone = :m and triggered_at is null"
            ),
            {"m": milestone, **params},
        )


# ---- a milestone's selections, as the retrain exports them ----------------------------------------


@dataclass(frozen=True)
class SelectionRecord:
    """One pick of a milestone with what it was picked from: the request, its seed and every candidate."""

    seq: int
    request_id: uuid.UUID
    tenant: str
    prompt: str
    seed: int | None  # the request's seed (each candidate has its own below)
    num_frames: int
    fps: int
    height: int
    width: int
    chosen_index: int
    candidates: list[Candidate]

    @property
    def winner(self) -> Candidate:
        return next(c for c in self.candidates if c.index == self.chosen_index)

    @property
    def losers(self) -> list[Candidate]:
        return [c for c in self.candidates if c.index != self.chosen_index]


_MILESTONE_SELECTIONS = """
select s.seq, s.request_id, s.tenant, r.prompt, r.seed, r.num_frames, r.fps, r.height, r.width,
    s.candidate_index as chosen_index, c.candidate_index, c.variation_prompt, c.seed as candidate_seed,
    c.object_key
from selections s
join generation_requests r using (request_id)
join candidates c using (request_id)
where s.milestone = :milestone
order by s.seq, c.candidate_index
"""


def milestone_selections(conn_or_engine: Connection | Engine, milestone: int) -> list[SelectionRecord]:
    """The selections milestone ``milestone`` covers (the ones stamped with it), ordered by seq."""
    if isinstance(conn_or_engine, Engine):
        with conn_or_engine.connect() as conn:
            return milestone_selections(conn, milestone)
    rows = conn_or_engine.execute(text(_MILESTONE_SELECTIONS), {"milestone": milestone}).mappings().all()
    return [_selection_record(list(group)) for _, group in itertools.groupby(rows, key=lambda r: r["seq"])]


def _selection_record(rows: list[RowMapping]) -> SelectionRecord:
    """One selection from its rows, one row per candidate."""
    first = rows[0]
    candidates = [
        Candidate(row["candidate_index"], row["variation_prompt"], row["candidate_seed"], row["object_key"])
        for row in rows
    ]
    return SelectionRecord(
        seq=first["seq"],
        request_id=first["request_id"],
        tenant=first["tenant"],
        prompt=first["prompt"],
        seed=first["seed"],
        num_frames=first["num_frames"],
        fps=first["fps"],
        height=first["height"],
        width=first["width"],
        chosen_index=first["chosen_index"],
        candidates=candidates,
    )
