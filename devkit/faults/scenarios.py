"""One function per fault: inject it into a traffic run on a ``FaultRig`` and return its ``FaultReport``.

Each scenario runs the same way: a marketer's traffic (``inference.simulator``) for a tenant of its own,
the fault injected once requests are in flight, every service brought back (in ``finally``, whatever
happened), then the ledger (``devkit.faults.ledger``) read from the tables and the bucket for exactly the
ids the API accepted. ``Load`` sizes the traffic: the tests send a few requests, ``bench/faults.py`` more.
The training task killed mid-run (fault g) lives with the Edge executor's work, on the same contract.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from adfame.airflow_client import AirflowClient
from adfame.contracts import CHAMPION_ALIAS
from adfame.mlflow_setup import configure_mlflow
from adfame.repositories.requests import Candidate, Outcome, finish_request, record_request
from adfame.repositories.selections import insert_selection
from adfame.schemas import PromptRequest
from adfame.waiting import wait_for
from devkit.fault_report import FaultReport
from devkit.faults import ledger
from devkit.faults.rig import FaultRig
from devkit.registry_versions import register_identity_versions
from inference.feedback import trigger_pending_milestones

# Visits sent once the fault is over and everything is back: recovery is the first of them (or of the
# requests the fault held) to finish.
AFTER_FAULT_VISITS = 2


@dataclass(frozen=True)
class Load:
    """A scenario's traffic: ``count`` marketer visits started at ``rate_per_s`` a second, at most
    ``concurrency`` at once (a visit lasts until its pick, so this bounds the requests in flight), the fault
    injected once ``inject_after`` of them were accepted (and one is unfinished)."""

    count: int
    rate_per_s: float
    inject_after: int = 1
    concurrency: int = 2


@dataclass(frozen=True)
class Injected:
    """What an injection did: when the fault ended (the service back, the process restarted), what it saw."""

    ended_at: datetime
    notes: dict[str, Any]


def _now() -> datetime:
    return datetime.now(UTC)


# ---- the shared run -------------------------------------------------------------------------------


def _unfinished(rig: FaultRig, tenant: str) -> int:
    with rig.engine.connect() as conn:
        return conn.execute(
            text(
                "select count(*) from generation_requests"
                " where tenant = :t and status in ('queued', 'running')"
            ),
            {"t": tenant},
        ).scalar_one()


def _first_finish_after(
    rig: FaultRig, tenant: str, moment: datetime, version: str | None = None
) -> float | None:
    """Seconds from ``moment`` to the first request of ``tenant`` that succeeded after it (on ``version``)."""
    query = "select min(finished_at) from generation_requests where tenant = :t and status = 'succeeded'"
    query += " and finished_at >= :m" + (" and model_version = :v" if version else "")
    with rig.engine.connect() as conn:
        first = conn.execute(text(query), {"t": tenant, "m": moment, "v": version}).scalar_one()
    return None if first is None else (first - moment).total_seconds()


def _accepted_and_unfinished(rig: FaultRig, tenant: str) -> tuple[int, int]:
    with rig.engine.connect() as conn:
        return tuple(
            conn.execute(
                text(
                    "select count(*), count(*) filter (where status in ('queued', 'running'))"
                    " from generation_requests where tenant = :t"
                ),
                {"t": tenant},
            ).one()
        )


def _wait_until_in_flight(rig: FaultRig, tenant: str, accepted: int, timeout_s: float = 120.0) -> None:
    """Block until ``accepted`` requests of ``tenant`` were recorded and one of them is unfinished."""
    wait_for(
        lambda: _accepted_and_unfinished(rig, tenant),
        what=f"{accepted} requests of {tenant} accepted, one in flight",
        timeout_s=timeout_s,
        interval_s=0.05,
        done=lambda counts: counts[0] >= accepted and counts[1] > 0,
    )


def run_fault(
    rig: FaultRig,
    fault: str,
    load: Load,
    inject: Callable[[], Injected],
    *,
    wait_in_flight: bool = True,
    checks: Callable[[ledger.Tally], None] | None = None,
) -> FaultReport:
    """Traffic for the fault's tenant, ``inject`` once requests are in flight, everything back, a few more
    visits (so that recovery is measured however the traffic and the fault overlapped), the ledger."""
    tenant = rig.tenant(fault)
    traffic = rig.traffic(tenant, load.count, load.rate_per_s, load.concurrency)
    try:
        if wait_in_flight:
            _wait_until_in_flight(rig, tenant, load.inject_after)
        in_flight = _unfinished(rig, tenant)
        injected = inject()
        # An injection that waits for its moment itself (the registry switch) counts what was in flight then.
        in_flight = injected.notes.pop("in_flight", in_flight)
    finally:
        rig.ensure_platform()
        rig.wait_until_serving()
    after = rig.traffic(tenant, AFTER_FAULT_VISITS, 2.0)
    timeout_s = rig.options.job_timeout_s + rig.options.retry_s + 60
    results = [traffic.result(timeout_s), after.result(timeout_s)]
    accepted = [rid for r in results for rid in r.request_ids]
    tally = audit(rig, tenant, accepted, [rid for r in results for rid in r.picked_ids])
    if checks is not None:
        checks(tally)
    recovery = _first_finish_after(rig, tenant, injected.ended_at)
    tally.seen.update(
        injected.notes, visits=load.count + AFTER_FAULT_VISITS, picks=sum(r.selected for r in results)
    )
    return FaultReport(
        fault=fault,
        unit="requests",
        accepted=len(accepted),
        in_flight=in_flight,
        lost=sum(tally.lost.values()),
        duplicated=sum(tally.duplicated.values()),
        recovery_s=round(recovery if recovery is not None else 0.0, 2),
        details=tally.details(),
    )


def audit(rig: FaultRig, tenant: str, accepted: list[str], picked: list[str]) -> ledger.Tally:
    """The ledger of one tenant's run: requests, candidates, objects, selections, milestones, dead letters."""
    tally, keys = ledger.check_requests(
        rig.engine, tenant, accepted, rig.options.num_candidates, timeout_s=rig.options.job_timeout_s
    )
    tally.merge(ledger.check_objects(rig.store, tenant, keys))
    tally.merge(ledger.check_selections(rig.engine, tenant, picked))
    tally.merge(ledger.check_milestones(rig.engine, dag_runs=None))
    tally.merge(ledger.check_dead_letters(rig.settings, accepted))
    succeeded = [rid for rid, request_keys in keys.items() if request_keys]
    tally.merge(ledger.check_events(rig.settings, succeeded, rig.events_since))
    return tally


# ---- (a) .. (d): processes and servers under the traffic ----------------------------------------


def sigkill_storm(
    rig: FaultRig, load: Load = Load(8, 1.0), kills: int = 3, interval_s: float = 3.0
) -> FaultReport:
    """(a) SIGKILL a worker and start it again, one worker after the other, every ``interval_s`` seconds."""

    def inject() -> Injected:
        for kill in range(kills):
            time.sleep(interval_s)
            worker = rig.workers[kill % len(rig.workers)]
            worker.kill()
            worker.start()
        rig.wait_until_serving()
        return Injected(_now(), {"kills": kills, "interval_s": interval_s})

    return run_fault(rig, "worker-sigkill", load, inject)


def kafka_restart(rig: FaultRig, load: Load = Load(6, 1.0)) -> FaultReport:
    """(b) Restart the Kafka broker (stop, start, healthy) while prompts are queued and served."""

    def inject() -> Injected:
        seconds = rig.stack.restart(["kafka"])
        return Injected(_now(), {"down_s": round(seconds, 1)})

    return run_fault(rig, "kafka-restart", load, inject)


def object_store_outage(rig: FaultRig, load: Load = Load(6, 0.5), outage_s: float = 30.0) -> FaultReport:
    """(c) Stop the object store for ``outage_s`` seconds: workers cannot store candidates, nor the marketer
    download them; requests wait (their messages are read again), none may fail."""

    def inject() -> Injected:
        rig.stack.down(["s3"])
        try:
            time.sleep(outage_s)
            failed = _failed(rig, rig.tenant("s3-outage"))
        finally:
            rig.stack.up(["s3"])
        return Injected(_now(), {"outage_s": outage_s, "failed_during_outage": failed})

    return run_fault(rig, "s3-outage", load, inject)


def _failed(rig: FaultRig, tenant: str) -> int:
    with rig.engine.connect() as conn:
        return conn.execute(
            text("select count(*) from generation_requests where tenant = :t and status = 'failed'"),
            {"t": tenant},
        ).scalar_one()


def postgres_restart(rig: FaultRig, load: Load = Load(6, 1.0)) -> FaultReport:
    """(d) Restart PostgreSQL: claims, results, job queries and picks meet a closed database for seconds."""

    def inject() -> Injected:
        seconds = rig.stack.restart(["postgres"])
        return Injected(_now(), {"down_s": round(seconds, 1)})

    return run_fault(rig, "postgres-restart", load, inject)


# ---- (e) Airflow down across a milestone ---------------------------------------------------------


def _prefill_selections(rig: FaultRig, count: int) -> None:
    """``count`` finished jobs (candidate rows, no objects) of a tenant of their own, each picked: the
    selections before the run's own, so that its picks reach the next milestone."""
    tenant = rig.tenant("prefill")
    jobs = []
    for _ in range(count):
        request = PromptRequest(tenant=tenant, prompt="an earlier marketer's pick", num_candidates=1)
        record_request(rig.engine, request)
        candidate = Candidate(0, request.prompt, 1, f"{tenant}/{request.request_id}/0.mp4")
        finish_request(rig.engine, request.request_id, Outcome("succeeded", "base", "base", {}, [candidate]))
        jobs.append(request.request_id)
    with rig.engine.begin() as conn:
        for job in jobs:
            insert_selection(conn, job, 0, tenant)


def _prepare_dag(client: AirflowClient, dag_id: str) -> None:
    """The DAG parsed and live, its earlier runs gone: a fresh database's milestones reuse their run ids."""
    client.wait_for_dag(dag_id, timeout_s=180)
    client.set_paused(dag_id, False)
    for run in client.list_dag_runs(dag_id):
        if run["state"] in ("queued", "running"):
            client.set_dag_run_state(dag_id, run["dag_run_id"], "failed")
        client.request("DELETE", f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}")


def _milestone(rig: FaultRig, number: int) -> Any:
    with rig.engine.connect() as conn:
        return conn.execute(
            text("select attempts, last_error, triggered_at from retrain_milestones where milestone = :m"),
            {"m": number},
        ).first()


def airflow_outage_across_milestone(rig: FaultRig, load: Load = Load(3, 1.0)) -> FaultReport:
    """(e) Airflow's API server is stopped before the traffic's picks complete a milestone and started once
    the API's trigger has failed twice; the milestone must start exactly one DAG run once it is back."""
    dag_id = rig.options.retrain_dag_id
    with rig.engine.connect() as conn:
        before = conn.execute(text("select count(*) from selections")).scalar_one()
    per = ledger.SELECTIONS_PER_RETRAIN
    _prefill_selections(rig, (per - (before + load.count) % per) % per)
    milestone = (before + load.count + per - 1) // per  # the one the traffic's last pick completes
    with AirflowClient(rig.settings) as client:
        _prepare_dag(client, dag_id)
    rig.stack.down(["airflow-api-server"])

    def inject() -> Injected:
        failing = wait_for(
            lambda: _milestone(rig, milestone),
            what=f"milestone {milestone} failing to trigger",
            timeout_s=rig.options.job_timeout_s,
            done=lambda row: row is not None and row.attempts >= 2,
        )
        back = _now()  # recovery counts from Airflow's start: the API's trigger retries while it starts
        rig.stack.up(["airflow-api-server"])
        healthy = _now()
        done = wait_for(
            lambda: _milestone(rig, milestone),
            what=f"milestone {milestone} triggered",
            timeout_s=120,
            done=lambda row: row.triggered_at is not None,
        )
        notes = {
            "milestone": milestone,
            "failed_attempts": failing.attempts,
            "error_while_down": (failing.last_error or "")[:120],
            "triggered_after_s": round((done.triggered_at - back).total_seconds(), 2),
            "airflow_start_s": round((healthy - back).total_seconds(), 2),
        }
        return Injected(back, notes)

    def checks(tally: ledger.Tally) -> None:
        with AirflowClient(rig.settings) as client:
            tally.merge(_exactly_once(rig, client, dag_id, milestone))

    try:
        report = run_fault(rig, "airflow-milestone", load, inject, wait_in_flight=False, checks=checks)
    finally:
        rig.stack.up(["airflow-api-server"])
    return _milestone_report(report, rig, milestone)


def _exactly_once(rig: FaultRig, client: AirflowClient, dag_id: str, milestone: int) -> ledger.Tally:
    """The milestone's DAG runs, then again after a forgotten trigger (its answer lost after Airflow took
    it): Airflow's 409 for the fixed run id must count as triggered, still one run."""
    first = ledger.check_milestones(rig.engine, [r["dag_run_id"] for r in client.list_dag_runs(dag_id)])
    with rig.engine.begin() as conn:
        conn.execute(
            text("update retrain_milestones set triggered_at = null, dag_run_id = null where milestone = :m"),
            {"m": milestone},
        )
    again = trigger_pending_milestones(rig.engine, lambda: AirflowClient(rig.settings), dag_id)
    second = ledger.check_milestones(rig.engine, [r["dag_run_id"] for r in client.list_dag_runs(dag_id)])
    second.seen["retriggered"] = again
    return first.merge(second)


def _milestone_report(report: FaultReport, rig: FaultRig, milestone: int) -> FaultReport:
    """The report in milestones: the one reached while Airflow was down; recovery until it was triggered."""
    row = _milestone(rig, milestone)
    triggered_after = report.details.get("triggered_after_s", report.recovery_s)
    return FaultReport(
        fault=report.fault,
        unit="milestones",
        accepted=1 if row is not None else 0,
        in_flight=1,
        lost=report.lost,
        duplicated=report.duplicated,
        recovery_s=triggered_after,
        details={**report.details, "requests_accepted": report.accepted},
    )


# ---- (f) the registry down while workers switch versions --------------------------------------------


def _served_by(rig: FaultRig, tenant: str) -> dict[str, int]:
    with rig.engine.connect() as conn:
        rows = conn.execute(
            text("select coalesce(model_version, status) from generation_requests where tenant = :t"),
            {"t": tenant},
        ).scalars()
        return dict(Counter(rows))


def mlflow_outage_during_switch(
    rig: FaultRig, load: Load = Load(6, 0.5), outage_s: float = 10.0
) -> FaultReport:
    """(f) Champion moves from version 1 to 2 and MLflow stops at once: workers re-reading the aliases (every
    ``alias_refresh_s``) find no registry; requests must keep being served (by version 1, or wait), none
    fail for it, and the workers switch to version 2 once MLflow is back."""
    client = configure_mlflow(rig.settings)
    model, tenant = rig.registered_model, rig.tenant("mlflow-switch")
    old, new = register_identity_versions(rig.settings, client, model, experiment=f"adfame-faults-{rig.run}")
    client.set_registered_model_alias(model, CHAMPION_ALIAS, old)
    labels = {v: f"{model}/{v}" for v in (old, new)}
    back_at: list[datetime] = []

    def inject() -> Injected:
        wait_for(
            lambda: _served_by(rig, tenant).get(labels[old], 0),
            what=f"a request served by {labels[old]}",
            timeout_s=rig.options.job_timeout_s,
        )
        in_flight = _unfinished(rig, tenant)
        client.set_registered_model_alias(model, CHAMPION_ALIAS, new)
        rig.stack.down(["mlflow"])
        try:
            time.sleep(outage_s)
            during = _served_by(rig, tenant)
        finally:
            rig.stack.up(["mlflow"])
        back_at.append(_now())
        notes = {"outage_s": outage_s, "served_during_outage": during, "in_flight": in_flight}
        return Injected(back_at[0], notes)

    def checks(tally: ledger.Tally) -> None:
        tally.merge(ledger.check_versions(client, model, [old, new]))
        switched = _first_finish_after(rig, tenant, back_at[0], labels[new])
        tally.seen.update(served_by=_served_by(rig, tenant), switched_after_s=switched)
        tally.lost["switch"] += int(switched is None)  # never served by the new champion

    try:
        report = run_fault(rig, "mlflow-switch", load, inject, wait_in_flight=False, checks=checks)
    finally:
        rig.stack.up(["mlflow"])
        client.delete_registered_model(model)  # the next scenarios serve the base model again
    switched = report.details.get("switched_after_s")
    return FaultReport(
        **{**report.as_row(), "recovery_s": switched if switched is not None else report.recovery_s}
    )


SCENARIOS: dict[str, Callable[..., FaultReport]] = {
    "worker-sigkill": sigkill_storm,
    "kafka-restart": kafka_restart,
    "s3-outage": object_store_outage,
    "postgres-restart": postgres_restart,
    "airflow-milestone": airflow_outage_across_milestone,
    "mlflow-switch": mlflow_outage_during_switch,
}
