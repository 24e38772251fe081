"""A small client for the Airflow 3 REST API (``/api/v2``), authenticated with a JWT.

Other parts (the feedback trigger, tests, the CLI) use it to trigger DAG runs
and follow them without importing Airflow itself.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from adfame.settings import Settings, get_settings

TERMINAL_STATES = frozenset({"success", "failed"})


class AirflowError(RuntimeError):
    """Airflow refused or could not be reached; the message names the call."""


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
                f"{response.status_code} {response.text[:200]}"
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
            response = self._send(method, path, headers={"Authorization": f"Bearer {self._token}"}, **kwargs)
            if response.status_code == 401 and attempt == 1:
                self._token = None
                continue
            return response
        raise AssertionError("unreachable")

    def _json(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kwargs: Any) -> dict[str, Any]:
        response = self.request(method, path, **kwargs)
        if response.status_code not in ok:
            raise AirflowError(f"{method} {path} -> {response.status_code}: {response.text[:300]}")
        return response.json()

    # ---- API --------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Health of the metadatabase, scheduler, triggerer and dag processor (no login needed)."""
        response = self._send("GET", "/api/v2/monitor/health")
        if response.status_code != 200:
            raise AirflowError(f"health -> {response.status_code}: {response.text[:200]}")
        return response.json()

    def get_dag(self, dag_id: str) -> dict[str, Any] | None:
        response = self.request("GET", f"/api/v2/dags/{dag_id}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise AirflowError(f"GET dag {dag_id} -> {response.status_code}: {response.text[:300]}")
        return response.json()

    def wait_for_dag(self, dag_id: str, timeout_s: float = 120.0) -> dict[str, Any]:
        """Wait until the dag processor has parsed the DAG; new DAG files take a moment."""
        deadline = time.monotonic() + timeout_s
        while True:
            dag = self.get_dag(dag_id)
            if dag is not None:
                return dag
            if time.monotonic() > deadline:
                raise AirflowError(
                    f"DAG {dag_id!r} did not appear in Airflow within {timeout_s:.0f}s; "
                    "check `adfame stack logs airflow-dag-processor`"
                )
            time.sleep(2)

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
        response = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise AirflowError(f"GET run {dag_id}/{run_id} -> {response.status_code}: {response.text[:300]}")
        return response.json()

    def list_dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self._json("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def wait_for_dag_run(self, dag_id: str, run_id: str, timeout_s: float = 300.0) -> dict[str, Any]:
        """Poll until the run succeeds or fails; returns the final run."""
        deadline = time.monotonic() + timeout_s
        while True:
            run = self.get_dag_run(dag_id, run_id)
            if run is not None and run["state"] in TERMINAL_STATES:
                return run
            if time.monotonic() > deadline:
                state = run["state"] if run else "missing"
                raise AirflowError(f"run {dag_id}/{run_id} still {state} after {timeout_s:.0f}s")
            time.sleep(2)

    def set_dag_run_state(self, dag_id: str, run_id: str, state: str) -> dict[str, Any]:
        """Mark a run ``success``, ``failed`` or ``queued`` (failing a run stops its running tasks)."""
        return self._json("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", json={"state": state})

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self._json("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
