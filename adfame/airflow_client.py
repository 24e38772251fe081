"""A small client for the Airflow 3 REST API (``/api/v2``), authenticated with a JWT.

Other parts (the feedback trigger, tests, the CLI, the ETL demo) use it to trigger DAG runs and
follow them without importing Airflow itself; ``run_dag`` is the one way to run a DAG and wait, and
``task_failure`` reads a failed task's log to say why it failed and where its log is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import httpx

from adfame.settings import Settings, get_settings
from adfame.waiting import WaitTimeout, wait_for

TERMINAL_STATES = frozenset({"success", "failed"})


class AirflowError(RuntimeError):
    """Airflow refused or could not be reached; the message names the call.

    ``status`` is the HTTP status Airflow answered with, or None when it gave no answer
    (unreachable, or a wait that ran out): callers decide on it, never on the message.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def conflict(self) -> bool:
        """409: what was asked for exists already (a DAG run with the same id)."""
        return self.status == HTTPStatus.CONFLICT


@dataclass(frozen=True)
class DagRunResult:
    """A finished DAG run and its task instances."""

    dag_id: str
    run_id: str
    state: str
    task_instances: list[dict[str, Any]] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.state == "success"


@dataclass(frozen=True)
class TaskFailure:
    """Why a task failed, from its log: the error (``Type: message`` of the exception at the root of
    the one it raised) and where Airflow keeps the log (the file on the worker that ran it)."""

    task_id: str
    try_number: int
    error: str
    log_sources: tuple[str, ...]


_SOURCES_GROUP = "::group::Log message source details"


def read_failure(events: Sequence[dict[str, Any]]) -> tuple[str, tuple[str, ...]]:
    """The error line and log sources of a task log as the REST API returns it (structured events).

    The error is the root cause of the last "Task failed with exception" event (a task that wraps
    a data error in ``AirflowFailException`` is reported by the data error); without one, the last
    error-level message. The sources are the lines of the "Log message source details" group.
    """
    sources: list[str] = []
    in_sources = False
    error = ""
    for event in events:
        message = str(event.get("event", ""))
        if message == _SOURCES_GROUP:
            in_sources = True
            sources += [str(source) for source in event.get("sources") or []]
        elif in_sources:
            in_sources = message != "::endgroup::"
            if in_sources:
                sources.append(message)
        elif event.get("level") in ("error", "critical"):
            details = event.get("error_detail") or []
            root = details[-1] if details else None
            error = f"{root['exc_type']}: {root['exc_value']}" if root else message
    return error or "no error line in the task's log", tuple(sources)


class AirflowClient:
    def __init__(self, settings: Settings | None = None, timeout_s: float = 30.0):
        self.settings = settings or get_settings()
        self._http = httpx.Client(base_url=self.settings.airflow_url, timeout=timeout_s)
        self._token: str | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AirflowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- plumbing ---------------------------------------------------------
    def _fetch_token(self) -> str:
        response = self._send(
            "POST",
            "/auth/token",
            json={
                "username": self.settings.airflow_user,
                "password": self.settings.airflow_password.get_secret_value(),
            },
        )
        if response.status_code not in (200, 201):
            raise AirflowError(
                f"Airflow login as {self.settings.airflow_user!r} failed: "
                f"{response.status_code} {response.text[:200]}",
                status=response.status_code,
            )
        return response.json()["access_token"]

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise AirflowError(
                f"{method} {path}: Airflow at {self.settings.airflow_url} is not reachable "
                f"({exc.__class__.__name__}); is it running? Try `adfame stack status`."
            ) from exc

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An authenticated call; logs in again once when the token has expired."""
        for attempt in (1, 2):
            if self._token is None:
                self._token = self._fetch_token()
            headers = {**kwargs.get("headers", {}), "Authorization": f"Bearer {self._token}"}
            response = self._send(method, path, **{**kwargs, "headers": headers})
            if response.status_code == 401 and attempt == 1:
                self._token = None
                continue
            return response
        raise AssertionError("unreachable")

    @staticmethod
    def _refused(method: str, path: str, response: httpx.Response) -> AirflowError:
        return AirflowError(
            f"{method} {path} -> {response.status_code}: {response.text[:300]}", status=response.status_code
        )

    def _json(
        self, method: str, path: str, ok: tuple[int, ...] = (200,), missing_ok: bool = False, **kwargs: Any
    ) -> Any:
        """The answer's JSON; with ``missing_ok``, None for a 404."""
        response = self.request(method, path, **kwargs)
        if missing_ok and response.status_code == HTTPStatus.NOT_FOUND:
            return None
        if response.status_code not in ok:
            raise self._refused(method, path, response)
        return response.json()

    # ---- API --------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Health of the metadatabase, scheduler, triggerer and dag processor (no login needed)."""
        path = "/api/v2/monitor/health"
        response = self._send("GET", path)
        if response.status_code != HTTPStatus.OK:
            raise self._refused("GET", path, response)
        return response.json()

    def get_dag(self, dag_id: str) -> dict[str, Any] | None:
        return self._json("GET", f"/api/v2/dags/{dag_id}", missing_ok=True)

    def wait_for_dag(self, dag_id: str, timeout_s: float = 120.0) -> dict[str, Any]:
        """Wait until the dag processor has parsed the DAG; new DAG files take a moment."""
        try:
            return wait_for(
                lambda: self.get_dag(dag_id), what=f"DAG {dag_id!r} parsed", timeout_s=timeout_s, interval_s=2
            )
        except WaitTimeout as exc:
            raise AirflowError(
                f"DAG {dag_id!r} did not appear in Airflow within {timeout_s:.0f}s; "
                "check `adfame stack logs airflow-dag-processor`"
            ) from exc

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self._json("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused})

    def trigger_dag(
        self, dag_id: str, conf: dict[str, Any] | None = None, run_id: str | None = None
    ) -> dict[str, Any]:
        """Start a run now. A fixed ``run_id`` makes the call idempotent: a repeat gets 409."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return self._json("POST", f"/api/v2/dags/{dag_id}/dagRuns", ok=(200,), json=body)

    def get_dag_run(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        return self._json("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", missing_ok=True)

    def list_dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self._json("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def wait_for_dag_run(self, dag_id: str, run_id: str, timeout_s: float = 300.0) -> dict[str, Any]:
        """Poll until the run succeeds or fails; returns the final run."""
        try:
            return wait_for(
                lambda: self.get_dag_run(dag_id, run_id),
                what=f"run {dag_id}/{run_id} finished",
                timeout_s=timeout_s,
                interval_s=2,
                done=lambda run: run is not None and run["state"] in TERMINAL_STATES,
            )
        except WaitTimeout as exc:
            state = exc.last["state"] if exc.last else "missing"
            raise AirflowError(f"run {dag_id}/{run_id} still {state} after {timeout_s:.0f}s") from exc

    def start_dag_run(
        self, dag_id: str, conf: dict[str, Any] | None = None, run_id: str | None = None
    ) -> str:
        """Trigger a run once the DAG is parsed and unpaused (a paused DAG would leave it queued)."""
        self.wait_for_dag(dag_id)
        self.set_paused(dag_id, False)
        return self.trigger_dag(dag_id, conf, run_id=run_id)["dag_run_id"]

    def run_dag(
        self,
        dag_id: str,
        conf: dict[str, Any] | None = None,
        *,
        run_id: str | None = None,
        timeout_s: float = 300.0,
        on_start: Callable[[str], None] | None = None,
    ) -> DagRunResult:
        """Start a run and wait for it: the one way the CLI, the ETL demo and the tests run a DAG.

        ``on_start`` gets the run id as soon as Airflow has accepted the run.
        """
        started = self.start_dag_run(dag_id, conf, run_id=run_id)
        if on_start is not None:
            on_start(started)
        final = self.wait_for_dag_run(dag_id, started, timeout_s=timeout_s)
        return DagRunResult(dag_id, started, final["state"], self.task_instances(dag_id, started))

    def set_dag_run_state(self, dag_id: str, run_id: str, state: str) -> dict[str, Any]:
        """Mark a run ``success``, ``failed`` or ``queued`` (failing a run stops its running tasks)."""
        return self._json("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", json={"state": state})

    def ensure_pool(self, name: str, slots: int, description: str) -> dict[str, Any]:
        """Create the pool, or give an existing one these slots (idempotent)."""
        body = {"name": name, "slots": slots, "description": description, "include_deferred": False}
        found = self._json("PATCH", f"/api/v2/pools/{name}", missing_ok=True, json=body)
        if found is not None:
            return found
        return self._json("POST", "/api/v2/pools", ok=(200, 201), json=body)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self._json("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def task_tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """Every try of one task instance, oldest first: its state, executor, queue, hostname and pid."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries"
        return self._json("GET", path)["task_instances"]

    def edge_workers(self, name: str | None = None) -> list[dict[str, Any]]:
        """The edge workers the API server knows (state, queues, last heartbeat), by name when given.

        Served by the edge3 provider's API (``/edge_worker/ui``) where the Edge executor is configured.
        """
        params = {"worker_name_pattern": name} if name else {}
        return self._json("GET", "/edge_worker/ui/worker", params=params)["workers"]

    def edge_jobs(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The Edge executor's jobs of one DAG run: task, try, queue, state and the worker that ran it.

        Airflow purges finished jobs after ``[edge] job_success_purge`` / ``job_fail_purge`` minutes.
        """
        params = {"dag_id_pattern": dag_id, "run_id_pattern": run_id}
        return self._json("GET", "/edge_worker/ui/jobs", params=params)["jobs"]

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> list[dict[str, Any]]:
        """One try's whole log as structured events (a plain-text log comes back one event per line)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        params = {"full_content": True, "map_index": map_index}
        content = self._json("GET", path, params=params, headers={"Accept": "application/json"})["content"]
        if isinstance(content, str):
            return [{"event": line} for line in content.splitlines()]
        return content

    def task_failure(self, dag_id: str, run_id: str, task_instance: dict[str, Any]) -> TaskFailure:
        """Why a failed task instance (one of ``task_instances``) failed, read from its last try's log."""
        task_id, try_number = task_instance["task_id"], int(task_instance["try_number"])
        events = self.task_log(dag_id, run_id, task_id, try_number, task_instance.get("map_index", -1))
        error, sources = read_failure(events)
        return TaskFailure(task_id, try_number, error, sources)
