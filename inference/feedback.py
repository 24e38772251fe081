"""Marketers' picks and the retrain trigger they drive (docs/architecture.md#retrain-trigger).

Two steps keep "exactly one retrain per 200 selections" true under concurrent selections and
Airflow outages:

1. :func:`record_selection` inserts the selection and, in the same transaction and under a
   transaction-level advisory lock, counts all selections; when the count is a multiple of
   ``SELECTIONS_PER_RETRAIN`` it inserts that milestone's row. The lock makes the counts of
   concurrent transactions 1, 2, 3, ... with no gaps or repeats, so each milestone row is written
   once, and it commits or rolls back together with the selection that reached it. The insert
   takes the same lock first and stamps the selection with the milestone it belongs to (the
   selections numbered 200(N-1)+1 .. 200N make milestone N), which is what its retrain exports.
2. :func:`trigger_pending_milestones` asks Airflow for a run of every milestone row not yet
   triggered. The run id is fixed per milestone, so a repeat (two API processes, a retry after a
   lost answer) is refused with 409 instead of starting a second retrain. A failure is recorded on
   the row and retried by the next call: :class:`MilestoneTrigger` makes that call in the
   background right after a milestone appears and then every few seconds.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine

from adfame.airflow_client import AirflowClient, AirflowError
from adfame.contracts import RETRAIN_DAG_ID, SELECTIONS_PER_RETRAIN
from adfame.repositories import selections
from adfame.repositories.requests import candidate_indexes, request_state

log = logging.getLogger(__name__)

_MAX_ERROR_CHARS = 1000

AirflowClientFactory = Callable[[], AirflowClient]


# ---- errors: each maps to one HTTP status in the API ----------------------------------------------


class SelectionError(Exception):
    """A selection that cannot be recorded; the message says why, for the marketer."""


class JobNotFound(SelectionError):
    """No such job for this tenant (another tenant's job is not found either)."""


class JobNotFinished(SelectionError):
    """The job has no candidates to pick from yet, or it failed."""


class UnknownCandidate(SelectionError):
    """The job has no candidate with this index."""


class AlreadySelected(SelectionError):
    """The job already has its one selection."""

    def __init__(self, message: str, existing_index: int | None):
        super().__init__(message)
        self.existing_index = existing_index


@dataclass(frozen=True)
class SelectionResult:
    request_id: uuid.UUID
    candidate_index: int
    selected_at: datetime
    selection_count: int
    milestone: int | None  # the milestone this selection completed, if it did


# ---- pure rules -----------------------------------------------------------------------------------


def milestone_for(selection_count: int, per_retrain: int = SELECTIONS_PER_RETRAIN) -> int | None:
    """The milestone that the ``selection_count``-th selection completes, or None."""
    if selection_count > 0 and selection_count % per_retrain == 0:
        return selection_count // per_retrain
    return None


def milestone_run_id(milestone: int) -> str:
    """The DAG run id of a milestone: fixed, so Airflow refuses a second run of it."""
    return f"retrain_milestone_{milestone:05d}"


def is_conflict(error: Exception) -> bool:
    """Whether Airflow answered 409: a run with this id exists, so the milestone is triggered."""
    return isinstance(error, AirflowError) and error.conflict


# ---- recording a selection ------------------------------------------------------------------------


def record_selection(
    engine: Engine, request_id: uuid.UUID | str, candidate_index: int, tenant: str
) -> SelectionResult:
    """Record the tenant's pick for a finished job, and its milestone if it completes one, atomically."""
    request_id = uuid.UUID(str(request_id))
    with engine.begin() as conn:
        _check_selectable(conn, request_id, candidate_index, tenant)
        try:
            selected_at = selections.insert_selection(conn, request_id, candidate_index, tenant)
        except selections.CandidateGone as exc:  # its candidate vanished meanwhile
            raise UnknownCandidate(f"job {request_id} has no candidate {candidate_index}") from exc
        if selected_at is None:  # a concurrent request selected first
            existing = selections.selected_index(conn, request_id)
            raise _already_selected(request_id, candidate_index, existing)
        count, milestone = _count_and_mark_milestone(conn)
    return SelectionResult(request_id, candidate_index, selected_at, count, milestone)


def selected_index(engine: Engine, request_id: uuid.UUID | str) -> int | None:
    """The candidate picked for a job, None while none is."""
    with engine.connect() as conn:
        return selections.selected_index(conn, uuid.UUID(str(request_id)))


def _check_selectable(conn: Connection, request_id: uuid.UUID, candidate_index: int, tenant: str) -> None:
    job = request_state(conn, request_id)
    if job is None or job.tenant != tenant:
        raise JobNotFound(f"job {request_id} not found")
    existing = selections.selected_index(conn, request_id)
    if existing is not None:
        raise _already_selected(request_id, candidate_index, existing)
    if job.status == "failed":
        raise JobNotFinished(f"job {request_id} failed, so it has no candidates to pick from")
    if job.status != "succeeded":
        raise JobNotFinished(
            f"job {request_id} is still {job.status}; pick a candidate once the job has succeeded"
        )
    known = candidate_indexes(conn, request_id)
    if candidate_index not in known:
        choices = ", ".join(map(str, known)) or "none"
        raise UnknownCandidate(
            f"job {request_id} has no candidate {candidate_index}; its candidates are: {choices}"
        )


def _already_selected(request_id: uuid.UUID, wanted: int, existing: int | None) -> AlreadySelected:
    if existing is None:  # the concurrent selection was removed again (its job deleted) meanwhile
        return AlreadySelected(f"job {request_id} already has a selection; a job takes one selection", None)
    if existing == wanted:
        message = f"candidate {existing} of job {request_id} is already selected; a job takes one selection"
    else:
        message = (
            f"job {request_id} already has a selection (candidate {existing}); "
            f"a selection is final, so candidate {wanted} cannot be selected"
        )
    return AlreadySelected(message, existing)


def _count_and_mark_milestone(conn: Connection) -> tuple[int, int | None]:
    """Count selections under the lock and insert the milestone row the count completes, if any."""
    count = selections.count_selections_locked(conn)
    milestone = milestone_for(count)
    if milestone is not None:
        selections.insert_milestone(conn, milestone, count)
    return count, milestone


# ---- triggering the retrain -----------------------------------------------------------------------


def trigger_pending_milestones(
    engine: Engine, client_factory: AirflowClientFactory, dag_id: str = RETRAIN_DAG_ID
) -> list[int]:
    """Trigger ``dag_id`` once for every milestone not triggered yet; returns the milestones now triggered.

    A failure (Airflow down, DAG missing) is stored on the row (``attempts``, ``last_error``) and left
    for the next call; a 409 means the run already exists, so the milestone counts as triggered.
    """
    pending = selections.pending_milestones(engine)
    if not pending:
        return []
    triggered: list[int] = []
    with client_factory() as client:
        for milestone in pending:
            run_id = milestone_run_id(milestone.milestone)
            conf = {"milestone": milestone.milestone, "selection_count": milestone.selection_count}
            try:
                client.trigger_dag(dag_id, conf=conf, run_id=run_id)
            except Exception as exc:  # whatever failed, the row keeps the reason and the next pass retries
                if not is_conflict(exc):
                    reason = f"{exc.__class__.__name__}: {exc}"[:_MAX_ERROR_CHARS]
                    selections.record_trigger_failure(engine, milestone.milestone, reason)
                    log.warning("retrain milestone %d not triggered yet: %s", milestone.milestone, exc)
                    continue
                log.info("retrain milestone %d: run %s already exists", milestone.milestone, run_id)
            selections.mark_triggered(engine, milestone.milestone, dag_id, run_id)
            triggered.append(milestone.milestone)
    return triggered


class MilestoneTrigger:
    """A daemon thread that triggers pending milestones: at once when woken, else every ``interval_s``.

    The API wakes it when a selection completes a milestone; the periodic pass retries milestones
    that Airflow did not accept (it was down, or this process restarted before triggering).
    """

    def __init__(
        self,
        engine: Engine,
        client_factory: AirflowClientFactory,
        dag_id: str = RETRAIN_DAG_ID,
        interval_s: float = 30.0,
        on_triggered: Callable[[list[int]], None] | None = None,
    ):
        self.engine = engine
        self.client_factory = client_factory
        self.dag_id = dag_id
        self.interval_s = interval_s
        self.on_triggered = on_triggered
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="milestone-trigger", daemon=True)
            self._thread.start()

    def notify(self) -> None:
        """Run a pass now (a milestone was just committed)."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def run_once(self) -> list[int]:
        """One pass; errors are logged, never raised, so the loop outlives a bad pass."""
        try:
            triggered = trigger_pending_milestones(self.engine, self.client_factory, self.dag_id)
        except Exception:
            log.exception("retrain milestone pass failed; retrying in %.0fs", self.interval_s)
            return []
        if triggered and self.on_triggered is not None:
            self.on_triggered(triggered)
        return triggered

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._wake.wait(self.interval_s)
            self._wake.clear()
