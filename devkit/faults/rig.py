"""The rig every fault scenario runs on: a database of the run's own, an API and real workers on a stack.

Why a database of its own: the ledger (``devkit.faults.ledger``) holds the tables to exactly what the run's
traffic was accepted, and milestones count every selection of a database, so nothing else may write there.
The API (``adfame api``) and the workers (``adfame worker``) are real processes pointed at it
(``ADFAME_APP_DB``), the workers in a consumer group of their own that starts at the end of the prompts
topic and serving a registered model of the run's own (no version until a scenario registers some), so a
fault can SIGKILL them and no other process's prompts or versions take part. Traffic is
``inference.simulator.simulate_selections`` with a ``RestMarketer``: what ``adfame simulate --select`` runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from adfame import db
from adfame.contracts import GENERATIONS_TOPIC
from adfame.settings import Settings
from adfame.stack.manager import Stack
from adfame.storage import ObjectStore
from adfame.waiting import wait_for
from devkit.consumer_groups import start_group_at_the_end
from devkit.faults.ledger import topic_ends
from inference.auth import create_api_key
from inference.model import init_default_model
from inference.simulator import BUILTIN_PROMPTS, RestMarketer, SimulationResult, Traffic, simulate_selections
from inference.tastes import parse_taste

log = logging.getLogger(__name__)
ADFAME = str(Path(sys.executable).parent / "adfame")
# The test stack's stand-in for retrain_on_feedback (tests/dags/): records the conf it got, trains nothing.
PROBE_DAG = "feedback_trigger_probe"


@dataclass(frozen=True)
class RigOptions:
    """How the rig runs: ``workers`` worker processes (one CPU thread each), ``num_candidates`` per request,
    the DAG a milestone triggers and how often the API retries it, how often workers re-read the aliases,
    and how long the marketer waits for a job and keeps trying an API that answers "not now"."""

    workers: int = 2
    num_candidates: int = 1
    retrain_dag_id: str = PROBE_DAG
    milestone_retry_s: float = 1.0
    alias_refresh_s: float = 2.0
    job_timeout_s: float = 300.0
    retry_s: float = 180.0


class ChildProcess:
    """A process of the rig (the API or a worker) in its own session, its output in a log file of its own."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_dir: Path):
        self.name, self.command, self.env, self.log_dir = name, command, env, log_dir
        self.starts = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = log_dir / f"{name}.log"

    def start(self) -> None:
        self.starts += 1
        self.log_path = self.log_dir / f"{self.name}-{self.starts}.log"
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                self.command, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def logged(self, line: str) -> bool:
        """Whether this start's log has ``line`` (e.g. the worker's "worker in group": warm, in the group)."""
        return self.log_path.exists() and line in self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole process group: no handler runs, nothing is committed or cleaned up."""
        if self.running:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM (a worker finishes its request first), then SIGKILL what is left after ``timeout_s``."""
        if not self.running:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()


class TrafficRun:
    """``simulate_selections`` for one tenant in a background thread: a marketer's visits, prompt to pick."""

    def __init__(self, marketer: RestMarketer, traffic: Traffic):
        self.marketer, self.traffic = marketer, traffic
        self._result: SimulationResult | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"traffic-{traffic.tenants[0]}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = simulate_selections(self.marketer, self.traffic)
        except BaseException as exc:  # handed to the caller of result()
            self._error = exc
        finally:
            self.marketer.close()

    def result(self, timeout_s: float) -> SimulationResult:
        """The run's result once every visit ended (picked, or given up after the marketer's timeouts)."""
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError(
                f"the traffic of {self.traffic.tenants[0]} did not end within {timeout_s:.0f}s"
            )
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


class FaultRig:
    """The run's database, API and workers on the stack ``settings`` names; a context manager."""

    def __init__(self, settings: Settings, log_dir: Path, options: RigOptions | None = None):
        self.settings, self.log_dir = settings, log_dir
        self.options = options or RigOptions()
        run = uuid.uuid4().hex[:8]
        self.run = run
        self.database = f"adfame_faults_{run}"
        self.group = f"adfame-faults-{run}"
        self.registered_model = f"adfame-faults-{run}"
        self.stack = Stack(settings)
        self.store = ObjectStore(settings)
        self.api_port = _free_port()
        self.engine: Engine | None = None
        self.api: ChildProcess | None = None
        self.workers: list[ChildProcess] = []
        self.events_since: dict[int, int] = {}  # adfame.generations' ends when the rig opened

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.host}:{self.api_port}"

    def environment(self) -> dict[str, str]:
        """What points a process at the run: its database, group, model, API port and retry pace."""
        o = self.options
        return {
            **os.environ,
            "ADFAME_APP_DB": self.database,
            "ADFAME_WORKER_GROUP": self.group,
            "ADFAME_REGISTERED_MODEL": self.registered_model,
            "ADFAME_INFERENCE_THREADS": "1",  # several workers share the cores
            "ADFAME_WORKER_METRICS_PORT": "0",
            "ADFAME_ALIAS_REFRESH_S": str(o.alias_refresh_s),
            "ADFAME_API_PORT": str(self.api_port),
            "ADFAME_RETRAIN_DAG_ID": o.retrain_dag_id,
            "ADFAME_MILESTONE_RETRY_S": str(o.milestone_retry_s),
        }

    def __enter__(self) -> FaultRig:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def open(self) -> None:
        """The stack up, the run's database migrated, the base model published, the API and workers warm."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.ensure_platform()
        with _admin(self.settings).connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.database}"'))
        self.engine = db.create_engine_for(self.settings, database=self.database)
        db.upgrade(self.engine)
        init_default_model(self.settings, self.store)
        start_group_at_the_end(self.settings, self.group)
        self.events_since = topic_ends(self.settings, GENERATIONS_TOPIC)
        env = self.environment()
        self.api = ChildProcess("api", [ADFAME, "api"], env, self.log_dir)
        self.api.start()
        self.workers = [
            ChildProcess(f"worker{i}", [ADFAME, "worker"], env, self.log_dir)
            for i in range(self.options.workers)
        ]
        for worker in self.workers:
            worker.start()
        self.wait_until_serving()

    def wait_until_serving(self, timeout_s: float = 180.0) -> None:
        """Every worker warm and in the group, the API answering: what each scenario starts from."""
        import httpx

        for worker in self.workers:
            if not worker.running:
                worker.start()

        def ready() -> bool:
            workers = all(w.logged("worker in group") for w in self.workers)
            return workers and httpx.get(f"{self.api_url}/healthz", timeout=5).status_code == 200

        wait_for(
            ready, what="the rig's API and workers ready", timeout_s=timeout_s, retry_on=(httpx.HTTPError,)
        )

    def ensure_platform(self) -> None:
        """Every platform service running and healthy again, whatever a scenario stopped: those that are
        not are started (with what they need), the others only probed (a full ``up`` converges them all)."""
        down = [row.name for row in self.stack.status() if not row.healthy]
        if down:
            self.stack.up(down)

    def traffic(self, tenant: str, count: int, rate_per_s: float, concurrency: int = 2) -> TrafficRun:
        """``count`` marketer visits for ``tenant`` (a name of this run only), ``rate_per_s`` a second."""
        assert self.engine is not None, "open the rig first"
        o = self.options
        key = create_api_key(self.engine, tenant)
        marketer = RestMarketer(
            self.api_url,
            {tenant: key},
            parse_taste("bright"),
            job_timeout_s=o.job_timeout_s,
            retry_s=o.retry_s,
        )
        plan = Traffic(
            list(BUILTIN_PROMPTS),
            count=count,
            rate_per_s=rate_per_s,
            concurrency=concurrency,
            tenants=[tenant],
            seed=sum(map(ord, tenant)),
            request_fields={"num_candidates": o.num_candidates},
        )
        return TrafficRun(marketer, plan)

    def tenant(self, fault: str) -> str:
        """The tenant a scenario's traffic runs as: its rows and objects are found by it."""
        return f"{fault}-{self.run}"

    def close(self) -> None:
        """Workers and API stopped, the platform back up, the run's database dropped, its model deleted."""
        for child in [*self.workers, *([self.api] if self.api else [])]:
            child.stop()
        try:
            self.ensure_platform()
        finally:
            if self.engine is not None:
                self.engine.dispose()
            with _admin(self.settings).connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
            self._delete_model()

    def _delete_model(self) -> None:
        from mlflow.exceptions import MlflowException

        from adfame.mlflow_setup import configure_mlflow

        # Never registered (or deleted by its scenario): only the scenarios that need versions register them.
        with contextlib.suppress(MlflowException):
            configure_mlflow(self.settings).delete_registered_model(self.registered_model)


def _admin(settings: Settings) -> Any:
    """An AUTOCOMMIT engine on the server's ``postgres`` database, for creating and dropping databases."""
    return db.create_engine_for(settings, database="postgres").execution_options(isolation_level="AUTOCOMMIT")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
