"""Follow a ``canary_rollout`` run to its end, saying each step as it happens (``adfame canary watch``).

Why it exists: a canary is judged on live requests, so someone showing or testing the loop needs traffic
flowing for exactly as long as the run walks its steps, and wants to see the weight move (5 -> 25 -> 50 ->
100 %) or the rollback happen, without reading the Airflow UI. The DAG does the work in Airflow; this
only watches it through the same reads an operator has (``canary_status``, the DAG run's state).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from adfame.airflow_client import TERMINAL_STATES, AirflowClient
from adfame.contracts import CANARY_DAG_ID
from adfame.settings import Settings
from adfame.waiting import WaitTimeout, wait_for
from monitoring.rollout import CanaryState, canary_status

OPEN_STATES = ("queued", "running")


class NoCanaryRun(RuntimeError):
    """No ``canary_rollout`` run was queued or running within the time given."""


@dataclass(frozen=True)
class WatchedCanary:
    """How the watched run ended and the rollout it left."""

    run_id: str
    run_state: str
    final: CanaryState
    seconds: float


def open_canary_run(airflow: AirflowClient) -> dict[str, Any] | None:
    """The running ``canary_rollout`` run, else the oldest queued one (runs go one at a time)."""
    runs = [run for run in airflow.list_dag_runs(CANARY_DAG_ID) if run["state"] in OPEN_STATES]
    runs.sort(key=lambda run: (run["state"] != "running", run.get("queued_at") or ""))
    return runs[0] if runs else None


def describe(state: CanaryState) -> str:
    """One line for a terminal: who is champion, who is challenger at what weight."""
    champion = state.champion or "the base model"
    if state.challenger and state.state == "canary":
        return f"champion {champion}; challenger version {state.challenger} at {state.weight} %"
    return f"champion {champion}; last deployment {state.version or '-'} {state.state}" + (
        f" ({state.reason})" if state.reason else ""
    )


def watch_canary(
    settings: Settings,
    engine: Engine,
    client: Any,
    say: Callable[[str], None],
    *,
    start_timeout_s: float = 180.0,
    timeout_s: float = 3600.0,
    poll_s: float = 3.0,
) -> WatchedCanary:
    """Wait for a canary run to be queued or running, then say every change of the rollout until the run
    ends; NoCanaryRun when none came within ``start_timeout_s``, TimeoutError past ``timeout_s``."""
    started = time.monotonic()
    with AirflowClient(settings) as airflow:
        try:
            run = wait_for(
                lambda: open_canary_run(airflow),
                what="a canary_rollout run",
                timeout_s=start_timeout_s,
                interval_s=2,
                done=lambda found: found is not None,
            )
        except WaitTimeout as exc:
            raise NoCanaryRun(
                f"no {CANARY_DAG_ID} run queued or running after {start_timeout_s:.0f}s"
                " (did the retrain register a version that passed its gate?)"
            ) from exc
        say(f"{CANARY_DAG_ID} run {run['dag_run_id']} ({run['state']})")
        said = ""
        while True:
            line = describe(canary_status(settings, engine, client))
            if line != said:
                say(line)
                said = line
            run = airflow.get_dag_run(CANARY_DAG_ID, run["dag_run_id"]) or run
            if run["state"] in TERMINAL_STATES:
                break
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(
                    f"{CANARY_DAG_ID} run {run['dag_run_id']} still {run['state']} after {timeout_s:.0f}s"
                )
            time.sleep(poll_s)
    final = canary_status(settings, engine, client)
    if describe(final) != said:
        say(describe(final))
    return WatchedCanary(run["dag_run_id"], run["state"], final, time.monotonic() - started)
