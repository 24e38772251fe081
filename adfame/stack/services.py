"""The servers of the local stack, one class each: how to install, prepare, start, probe and set up.

Each service keeps its files under ``<state_dir>/<name>/`` (pid file, log,
data). ``converge`` runs after every healthy start or check and is idempotent:
it creates what other parts rely on (databases, topics, buckets).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import signal
import sys
import time
import uuid
from abc import ABC, abstractmethod
from functools import cached_property
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from adfame import health, mlflow_webhook_setup
from adfame.contracts import BUCKETS, MLFLOW_BUCKET, MODELS_BUCKET
from adfame.health import Probe
from adfame.mlflow_setup import mlflow_environment
from adfame.settings import PROJECT_ROOT, Settings
from adfame.stack import StackError, install
from adfame.stack.process import PidFile, run_checked, tail
from adfame.waiting import WaitTimeout, wait_for

if TYPE_CHECKING:
    from adfame.storage import ObjectStore

log = logging.getLogger(__name__)
# Written and removed by `stack up` to prove the object store accepts writes.
_WRITE_CHECK_KEY = ".adfame/write-check"

VENV_BIN = Path(sys.executable).parent
EDGE_PROVIDER = "apache-airflow-providers-edge3"
# Airflow 3's multi-executor configuration: the first is the default of every task.
AIRFLOW_EXECUTORS = "LocalExecutor,airflow.providers.edge3.executors.EdgeExecutor"


class Service(ABC):
    """One server process of the stack."""

    name: str = ""
    requires: tuple[str, ...] = ()
    stop_signal: int = signal.SIGTERM
    # AdFame's own processes start only when named (`adfame stack up worker api`), so a plain
    # `up` (and the test suite) gets the platform without a worker competing for prompts.
    optional: bool = False

    def __init__(self, settings: Settings):
        self.settings = settings

    @property
    def dir(self) -> Path:
        return self.settings.state_dir / self.name

    @property
    def pidfile(self) -> PidFile:
        return PidFile(self.dir / "pid")

    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.name}.log"

    @property
    def run_as(self) -> str | None:
        """The user the process runs as; None means the current one."""
        return None

    def ports(self) -> list[int]:
        return []

    def url(self) -> str:
        return ""

    def install(self, install_missing: bool) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Check that the binaries exist; fetch or build missing ones only when asked to.

        It records nothing: ``prepare`` and ``command`` find the binaries themselves (properties that
        raise a StackError naming `adfame stack install` when one is missing), so they work in any order.
        """

    def prepare(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Write configuration and initialise data folders (idempotent)."""

    @abstractmethod
    def command(self) -> list[str]:
        """The server's command line."""

    def environment(self) -> dict[str, str]:
        """The caller's environment with this stack's folders made absolute (the process runs in its
        own folder) and the project's virtualenv first on PATH."""
        path = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
        return {**os.environ, **self.settings.folders_environment(), "PATH": path}

    @abstractmethod
    def probe(self) -> Probe:
        """Whether the running server answers."""

    def converge(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Create what other parts rely on (idempotent)."""


class Postgres(Service):
    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back clients, checkpoint, exit

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def run_as(self) -> str | None:
        return "postgres" if os.geteuid() == 0 else None  # PostgreSQL refuses to run as root

    def ports(self) -> list[int]:
        return [self.settings.postgres_port]

    def url(self) -> str:
        return f"postgresql://{self.settings.host}:{self.settings.postgres_port}/{self.settings.app_db}"

    def install(self, install_missing: bool) -> None:
        install.ensure_postgres(install_missing)

    @cached_property
    def bindir(self) -> Path:
        """The PostgreSQL server's bin folder (initdb, postgres)."""
        return install.ensure_postgres(install=False)

    def _chown(self, path: Path) -> None:
        if self.run_as:
            shutil.chown(path, self.run_as, self.run_as)

    def prepare(self) -> None:
        socket_dir = self.dir / "run"
        for folder in (self.dir, socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
            self._chown(folder)
        if (self.data_dir / "PG_VERSION").exists():
            return
        pwfile = self.dir / ".initdb-password"
        pwfile.write_text(self.settings.postgres_password.get_secret_value() + "\n")
        self._chown(pwfile)
        try:
            run_checked(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.settings.postgres_user,
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
                "initdb",
                user=self.run_as,
                group=self.run_as,
                cwd=self.dir,
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def command(self) -> list[str]:
        return [
            str(self.bindir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.settings.postgres_port),
            "-h",
            self.settings.host,
            "-k",
            str(self.dir / "run"),
            "-c",
            "max_connections=200",
        ]

    def probe(self) -> Probe:
        return health.postgres(self.settings)

    def converge(self) -> None:
        import psycopg2

        s = self.settings
        conn = psycopg2.connect(**s.postgres_params("postgres"))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                for database in (s.app_db, s.airflow_db, s.mlflow_db):
                    cur.execute("select 1 from pg_database where datname = %s", (database,))
                    if cur.fetchone() is None:
                        cur.execute(f'create database "{database}"')
        finally:
            conn.close()


class ObjectStoreServer(Service):
    """SeaweedFS: master, volume, filer and its S3 gateway in one `weed server` process."""

    name = "s3"

    def ports(self) -> list[int]:
        s = self.settings
        return [s.s3_port, s.seaweedfs_master_port, s.seaweedfs_volume_port, s.seaweedfs_filer_port]

    def url(self) -> str:
        return self.settings.s3_url

    def install(self, install_missing: bool) -> None:
        install.ensure_seaweedfs(self.settings, install_missing)

    @cached_property
    def binary(self) -> Path:
        """SeaweedFS's `weed`, built by `adfame stack install`."""
        return install.ensure_seaweedfs(self.settings, install=False)

    def prepare(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "adfame",
                    "credentials": [
                        {
                            "accessKey": self.settings.s3_access_key,
                            "secretKey": self.settings.s3_secret_key.get_secret_value(),
                        }
                    ],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        config = self.dir / "s3.json"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(identities, handle)

    def command(self) -> list[str]:
        s = self.settings
        return [
            str(self.binary),
            "server",
            f"-dir={self.dir / 'data'}",
            f"-ip={s.host}",
            f"-ip.bind={s.host}",
            f"-master.port={s.seaweedfs_master_port}",
            f"-volume.port={s.seaweedfs_volume_port}",
            # Its default 10 s of grace lets other volume servers take over; here there are none.
            "-volume.preStopSeconds=0",
            "-master.volumeSizeLimitMB=1024",
            # One master, no peers to wait for: elect it at once after a restart (10 s by default, and
            # until then the store answers reads but no write can get a volume).
            "-master.electionTimeout=1s",
            "-volume.max=0",
            "-filer",
            f"-filer.port={s.seaweedfs_filer_port}",
            "-s3",
            f"-s3.port={s.s3_port}",
            f"-s3.config={self.dir / 's3.json'}",
            # Off: catalogs AdFame does not use, on fixed ports a second stack on this host would need.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]

    def probe(self) -> Probe:
        return health.object_store(self.settings)

    def converge(self) -> None:
        from adfame.storage import ObjectStore

        store = ObjectStore(self.settings)
        for bucket in BUCKETS:
            store.ensure_bucket(bucket)
        self._wait_until_writable(store)

    def _wait_until_writable(self, store: ObjectStore) -> None:
        """Up means writable: the gateway answers reads at once, but after a restart a write waits
        (seconds) until the master has its volume server back. Put and remove a marker to be sure."""
        from adfame.storage import ObjectStoreError

        def write_and_remove_marker() -> bool:
            store.put_bytes(MODELS_BUCKET, _WRITE_CHECK_KEY, b"ok")
            store.remove(MODELS_BUCKET, _WRITE_CHECK_KEY)
            return True

        start = time.monotonic()
        timeout_s = self.settings.start_timeout
        try:
            wait_for(
                write_and_remove_marker,
                what="s3 accepts writes",
                timeout_s=timeout_s,
                retry_on=(ObjectStoreError,),
            )
        except WaitTimeout as timeout:
            raise StackError(
                f"s3 accepts no writes {timeout_s:.0f}s after starting ({timeout.last}); "
                f"its log is {self.log_path}:\n{tail(self.log_path)}"
            ) from timeout.last
        if (waited := time.monotonic() - start) > 1.0:
            log.info("%-22s accepts writes after %.1fs more", self.name, waited)


class Kafka(Service):
    """Apache Kafka in KRaft mode: one process that is both broker and controller."""

    name = "kafka"

    def ports(self) -> list[int]:
        return [self.settings.kafka_port, self.settings.kafka_controller_port]

    def url(self) -> str:
        return f"kafka://{self.settings.kafka_bootstrap}"

    def install(self, install_missing: bool) -> None:
        install.ensure_java(install_missing)
        install.ensure_kafka_jars(self.settings, install_missing)

    @cached_property
    def java(self) -> Path:
        """A Java 17+ runtime (found once: checking its version starts a JVM)."""
        return install.ensure_java(install=False)

    @cached_property
    def libs(self) -> Path:
        """Kafka's jars, fetched from Maven Central by `adfame stack install`."""
        return install.ensure_kafka_jars(self.settings, install=False)

    @property
    def classpath(self) -> str:
        return f"{self.libs}/*"

    def _server_properties(self) -> str:
        s = self.settings
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{s.host}:{s.kafka_controller_port}",
                f"listeners=PLAINTEXT://{s.host}:{s.kafka_port},CONTROLLER://{s.host}:{s.kafka_controller_port}",
                f"advertised.listeners=PLAINTEXT://{s.host}:{s.kafka_port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={self.dir / 'data'}",
                "num.partitions=3",
                # Topics are created on purpose (contracts.TOPICS), never by a typo.
                "auto.create.topics.enable=false",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "log.retention.hours=168",
                "",
            ]
        )

    _LOG4J = "\n".join(
        [
            "status = warn",
            "appender.out.type = Console",
            "appender.out.name = OUT",
            "appender.out.layout.type = PatternLayout",
            "appender.out.layout.pattern = [%d] %p %m (%c)%n",
            "rootLogger.level = INFO",
            "rootLogger.appenderRef.out.ref = OUT",
            "logger.request.name = kafka.request.logger",
            "logger.request.level = WARN",
            "",
        ]
    )

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "server.properties").write_text(self._server_properties())
        (self.dir / "log4j2.properties").write_text(self._LOG4J)
        self._write_cli_wrappers()
        if (self.dir / "data" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        run_checked(
            [
                str(self.java),
                "-cp",
                self.classpath,
                *self._jvm_logging(),
                "kafka.tools.StorageTool",
                "format",
                "--config",
                str(self.dir / "server.properties"),
                # One token: a URL-safe base64 id may start with "-", which argparse would read as an option.
                f"--cluster-id={cluster_id}",
            ],
            "formatting Kafka storage",
        )

    def _jvm_logging(self) -> list[str]:
        return [f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}"]

    _CLI_TOOLS = {
        "kafka-topics": "org.apache.kafka.tools.TopicCommand",
        "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
        "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
        "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    }

    def _write_cli_wrappers(self) -> None:
        """Kafka's command-line tools, as scripts on the PATH that `adfame env` exports."""
        bindir = self.settings.state_dir / "bin"
        bindir.mkdir(parents=True, exist_ok=True)
        for tool, main_class in self._CLI_TOOLS.items():
            script = bindir / tool
            script.write_text(
                "#!/bin/sh\n# Generated by `adfame stack up`: Kafka's CLI from the jars AdFame installed.\n"
                f'exec "{self.java}" -Xmx256m -cp "{self.classpath}" -Dlog4j2.level=WARN '
                f'{main_class} "$@"\n'
            )
            script.chmod(0o755)

    def command(self) -> list[str]:
        heap = self.settings.kafka_heap
        return [
            str(self.java),
            f"-Xmx{heap}",
            f"-Xms{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            *self._jvm_logging(),
            "-cp",
            self.classpath,
            "kafka.Kafka",
            str(self.dir / "server.properties"),
        ]

    def probe(self) -> Probe:
        return health.kafka(self.settings)

    def converge(self) -> None:
        from adfame.messaging import ensure_topics

        ensure_topics(settings=self.settings)


class MlflowServer(Service):
    name = "mlflow"
    requires = ("postgres", "s3")

    def ports(self) -> list[int]:
        return [self.settings.mlflow_port]

    def url(self) -> str:
        return self.settings.mlflow_url

    def command(self) -> list[str]:
        s = self.settings
        return [
            str(VENV_BIN / "mlflow"),
            "server",
            "--host",
            s.host,
            "--port",
            str(s.mlflow_port),
            "--backend-store-uri",
            s.database_url(s.mlflow_db),
            "--artifacts-destination",
            f"s3://{MLFLOW_BUCKET}",
            "--workers",
            "1",
        ]

    def environment(self) -> dict[str, str]:
        """MLflow's client variables, and what its server needs to deliver registry webhooks here.

        Its job execution (a pool of huey consumers for GenAI evaluations and trace roll-ups, which AdFame
        does not use) is off: seven processes fewer to start, and a stop that does not wait for them (30 s
        before, measured by the fault tests' MLflow restarts; docs/reliability.md).
        """
        return {
            **super().environment(),
            **mlflow_environment(self.settings),
            **mlflow_webhook_setup.server_environment(self.settings),
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }

    def probe(self) -> Probe:
        return health.mlflow(self.settings)

    def converge(self) -> None:
        """The registry webhook that starts a canary when a reviewer sets alias challenger by hand.

        A server started before it had the webhook environment refuses the registration; the stack
        works on without it (retrains still start canaries), so that is a warning naming the fix.
        """
        from mlflow.exceptions import MlflowException

        from adfame.mlflow_setup import configure_mlflow

        try:
            mlflow_webhook_setup.ensure_alias_webhook(self.settings, configure_mlflow(self.settings))
        except MlflowException as exc:
            log.warning(
                "MLflow refused the registry webhook (%s); restart it to give it the webhook "
                "environment: `adfame stack down mlflow && adfame stack up`",
                str(exc).splitlines()[0],
            )


class AirflowComponent(Service):
    """One Airflow 3 process; all share AIRFLOW_HOME, the metadata DB and the secrets."""

    component = ""
    requires: tuple[str, ...] = ("postgres", "airflow-api-server")

    @property
    def home(self) -> Path:
        return self.settings.state_dir / "airflow"

    def environment(self) -> dict[str, str]:
        return {**super().environment(), **airflow_environment(self.settings)}

    def prepare(self) -> None:
        """Write the login file and migrate the metadata DB once per Airflow version."""
        self.home.mkdir(parents=True, exist_ok=True)
        passwords = self.home / "passwords.json"
        fd = os.open(passwords, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({self.settings.airflow_user: self.settings.airflow_password.get_secret_value()}, handle)
        # The edge3 provider's tables (edge_worker, edge_job) migrate with Airflow's own.
        marker = self.home / f".migrated-{version('apache-airflow')}-edge3-{version(EDGE_PROVIDER)}"
        if not (marker.exists() and self._metadata_db_initialised()):
            run_checked(
                [str(VENV_BIN / "airflow"), "db", "migrate"],
                "airflow db migrate",
                env=self.environment(),
                cwd=self.home,
            )
            marker.touch()

    def _metadata_db_initialised(self) -> bool:
        """The marker alone could outlive a wiped database; the schema's own version table cannot."""
        import psycopg2

        conn = psycopg2.connect(**self.settings.postgres_params(self.settings.airflow_db))
        try:
            with conn.cursor() as cur:
                cur.execute("select to_regclass('public.alembic_version') is not null")
                return bool(cur.fetchone()[0])
        finally:
            conn.close()

    def command(self) -> list[str]:
        return [str(VENV_BIN / "airflow"), self.component]

    def url(self) -> str:
        return self.settings.airflow_url

    def probe(self) -> Probe:
        # A heartbeat older than this process belongs to a predecessor that was killed.
        proc = self.pidfile.process()
        since = proc.create_time() if proc else None
        return health.airflow_component(self.component.replace("-", "_"), self.settings, since=since)


class AirflowApiServer(AirflowComponent):
    name = "airflow-api-server"
    component = "api-server"
    requires = ("postgres",)

    def ports(self) -> list[int]:
        return [self.settings.airflow_port]

    def command(self) -> list[str]:
        s = self.settings
        return [
            str(VENV_BIN / "airflow"),
            "api-server",
            "--host",
            s.host,
            "--port",
            str(s.airflow_port),
            "--workers",
            "1",
        ]

    def probe(self) -> Probe:
        return health.airflow_api(self.settings)

    def converge(self) -> None:
        """The pool the training task of retrain_on_feedback runs in: as many slots as GPUs to train on."""
        from adfame.airflow_client import AirflowClient

        with AirflowClient(self.settings) as client:
            client.ensure_pool(
                self.settings.gpu_pool, self.settings.gpu_pool_slots, "training tasks, one per GPU"
            )


class AirflowScheduler(AirflowComponent):
    """The scheduler and its LocalExecutor. It serves no task logs: its tasks write them into the stack's
    log folder, which the API server on this host reads directly (a log server would bind every
    interface; docs/security.md)."""

    name = "airflow-scheduler"
    component = "scheduler"

    def command(self) -> list[str]:
        return [str(VENV_BIN / "airflow"), self.component, "--skip-serve-logs"]


class AirflowDagProcessor(AirflowComponent):
    name = "airflow-dag-processor"
    component = "dag-processor"


class AirflowTriggerer(AirflowComponent):
    name = "airflow-triggerer"
    component = "triggerer"

    def ports(self) -> list[int]:
        return [self.settings.airflow_triggerer_log_port]


class AirflowEdgeWorker(AirflowComponent):
    """An Airflow edge worker serving ``gpu_queue``: the Edge executor's tasks (the training task) run here.

    It talks to the API server only, over HTTP (the edge API and the Execution API), the way a worker on a
    GPU host does (docs/stack.md#the-edge-worker); like one, it keeps its task logs in a folder of its
    own and pushes them to the API server. The probe asks the API server whether it is registered and
    takes work (idle or running).
    """

    name = "airflow-edge-worker"
    component = "edge-worker"
    requires = ("postgres", "airflow-api-server", "airflow-scheduler")

    def command(self) -> list[str]:
        s = self.settings
        return [
            str(VENV_BIN / "airflow"),
            "edge",
            "worker",
            "--queues",
            s.gpu_queue,
            "--concurrency",
            str(s.edge_worker_concurrency),
            "--edge-hostname",
            s.edge_worker_name,
            "--pid",
            str(self.dir / "edge-worker.pid"),
        ]

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.dir / "logs")}

    def probe(self) -> Probe:
        proc = self.pidfile.process()
        since = proc.create_time() if proc else None
        return health.edge_worker(self.settings.edge_worker_name, self.settings, since=since)


class InferenceWorker(Service):
    """`adfame worker`: one member of the workers' Kafka consumer group."""

    name = "worker"
    requires = ("postgres", "s3", "kafka", "mlflow")
    optional = True

    def url(self) -> str:
        return f"kafka://{self.settings.kafka_bootstrap}/{self.settings.worker_group}"

    def command(self) -> list[str]:
        return [str(VENV_BIN / "adfame"), "worker"]

    def probe(self) -> Probe:
        return health.consumer_group(self.settings.worker_group, self.settings)


class ApiServer(Service):
    """`adfame api`: the REST API and the selection page."""

    name = "api"
    requires = ("postgres", "s3", "kafka")
    optional = True

    def ports(self) -> list[int]:
        return [self.settings.api_port]

    def url(self) -> str:
        return self.settings.api_url

    def command(self) -> list[str]:
        return [str(VENV_BIN / "adfame"), "api"]

    def probe(self) -> Probe:
        return health.http_ok(f"{self.url()}/healthz")


class Dashboard(Service):
    """The Streamlit dashboard (``dashboard/app.py``): datasets, serving, models and drift at a glance.

    It only reads (PostgreSQL, the MLflow registry and its artifacts), so it needs those two and nothing
    else. Streamlit's file watcher is off: a served dashboard does not reload itself, and on a small
    machine the watcher's polling costs CPU that workers need.
    """

    name = "dashboard"
    requires = ("postgres", "mlflow")
    optional = True

    @property
    def app(self) -> Path:
        """The entry script; beside ``adfame/`` in a checkout and in an installed package alike."""
        return PROJECT_ROOT / "dashboard" / "app.py"

    def ports(self) -> list[int]:
        return [self.settings.dashboard_port]

    def url(self) -> str:
        return self.settings.dashboard_url

    def command(self) -> list[str]:
        return [
            str(VENV_BIN / "streamlit"),
            "run",
            str(self.app),
            "--server.port",
            str(self.settings.dashboard_port),
            "--server.address",
            self.settings.host,
            "--server.headless",
            "true",
            "--server.fileWatcherType",
            "none",
            "--browser.gatherUsageStats",
            "false",
        ]

    def environment(self) -> dict[str, str]:
        """MLflow's client variables (the grids are artifacts in the object store), and the project on
        the import path: Streamlit puts only the script's own folder there."""
        python_path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]))
        return {**super().environment(), **mlflow_environment(self.settings), "PYTHONPATH": python_path}

    def probe(self) -> Probe:
        return health.http_ok(f"http://{self.settings.host}:{self.settings.dashboard_port}/_stcore/health")


# A Spark daemon's own JVM heap (Spark's default is 1g); executors get the worker's memory, not this.
SPARK_DAEMON_HEAP = "512m"


class SparkDaemon(Service):
    """A daemon of the Spark standalone cluster, run in the foreground by PySpark's own ``spark-class``
    (the release the jobs were written for; it adds the JVM options Spark needs on Java 17+).

    ``SPARK_LOCAL_IP`` binds its web UI (by default on every interface) and, in the worker, the executors
    it starts to ``host``. The cluster is optional: it starts only when named (`adfame stack up spark`).
    """

    optional = True
    main_class = ""

    def install(self, install_missing: bool) -> None:
        install.ensure_java(install_missing)
        install.spark_home()

    @cached_property
    def spark_home(self) -> Path:
        return install.spark_home()

    @property
    def properties_file(self) -> Path:
        return self.dir / "spark-defaults.conf"

    def properties(self) -> dict[str, str]:
        """Spark properties of this daemon, written to its properties file by ``prepare``."""
        return {}

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        lines = [f"{key} {value}" for key, value in self.properties().items()]
        self.properties_file.write_text("\n".join(lines) + "\n")

    @abstractmethod
    def arguments(self) -> list[str]:
        """The daemon's own command-line arguments (after its main class)."""

    def command(self) -> list[str]:
        return [str(self.spark_home / "bin" / "spark-class"), self.main_class, *self.arguments()]

    def environment(self) -> dict[str, str]:
        return {
            **super().environment(),
            "SPARK_HOME": str(self.spark_home),
            "SPARK_LOCAL_IP": self.settings.host,
            "SPARK_DAEMON_MEMORY": SPARK_DAEMON_HEAP,
            # No spark-env.sh or spark-defaults.conf of another installation leaks in.
            "SPARK_CONF_DIR": str(self.dir),
        }


class SparkMaster(SparkDaemon):
    """The cluster manager: workers register with it, applications (`--master spark://...`) get
    executors from it. Its REST submission server stays off (one more open port, unauthenticated)."""

    name = "spark-master"
    main_class = "org.apache.spark.deploy.master.Master"

    def ports(self) -> list[int]:
        return [self.settings.spark_master_port, self.settings.spark_master_web_port]

    def url(self) -> str:
        return self.settings.spark_cluster_url

    def properties(self) -> dict[str, str]:
        return {"spark.master.rest.enabled": "false"}

    def arguments(self) -> list[str]:
        s = self.settings
        return [
            "--host",
            s.host,
            "--port",
            str(s.spark_master_port),
            "--webui-port",
            str(s.spark_master_web_port),
            "--properties-file",
            str(self.properties_file),
        ]

    def probe(self) -> Probe:
        return health.spark_master(self.settings)


class SparkWorker(SparkDaemon):
    """Runs the executors of applications on this machine, with this environment (the project's venv on
    PATH, so executors' Python workers import its packages); healthy once registered with the master."""

    name = "spark-worker"
    requires = ("spark-master",)
    main_class = "org.apache.spark.deploy.worker.Worker"

    def ports(self) -> list[int]:
        return [self.settings.spark_worker_port, self.settings.spark_worker_web_port]

    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.spark_worker_web_port}"

    def properties(self) -> dict[str, str]:
        # Each application leaves a folder of executor logs under work/: kept a day, then removed.
        return {"spark.worker.cleanup.enabled": "true", "spark.worker.cleanup.appDataTtl": "86400"}

    def arguments(self) -> list[str]:
        s = self.settings
        return [
            "--host",
            s.host,
            "--port",
            str(s.spark_worker_port),
            "--webui-port",
            str(s.spark_worker_web_port),
            "--cores",
            str(s.spark_worker_cores),
            "--memory",
            s.spark_worker_memory,
            "--work-dir",
            str(self.dir / "work"),
            "--properties-file",
            str(self.properties_file),
            s.spark_cluster_url,
        ]

    def probe(self) -> Probe:
        return health.spark_worker(self.settings)


def airflow_environment(settings: Settings) -> dict[str, str]:
    """Airflow's configuration for the local stack, as the AIRFLOW__ variables it reads."""
    s = settings
    home = s.state_dir / "airflow"
    return {
        "AIRFLOW_HOME": str(home),
        **s.folders_environment(),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        # LocalExecutor runs every task but those that name another executor: the training task names
        # the Edge executor (ADFAME_GPU_EXECUTOR), whose worker serves its queue (AirflowEdgeWorker).
        "AIRFLOW__CORE__EXECUTOR": AIRFLOW_EXECUTORS,
        **edge_environment(s),
        "AIRFLOW__CORE__PARALLELISM": str(s.airflow_parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(s.airflow_parallelism),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # A stack's Airflow runs tasks for real, even when started from a process in unit-test mode.
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__FERNET_KEY": s.airflow_fernet_key.get_secret_value(),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{s.airflow_url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{s.airflow_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": s.database_url(s.airflow_db),
        "AIRFLOW__API__BASE_URL": s.airflow_url,
        "AIRFLOW__API__SECRET_KEY": s.airflow_jwt_secret.get_secret_value(),
        "AIRFLOW__API_AUTH__JWT_SECRET": s.airflow_jwt_secret.get_secret_value(),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(s.airflow_worker_log_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(s.airflow_triggerer_log_port),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(dag_bundles(s)),
        # New DAG files show up within seconds instead of minutes.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "15",
        # A task's Spark driver (nightly_etl on a cluster) binds to the stack's address, as the cluster does.
        "SPARK_LOCAL_IP": s.host,
    }


def edge_environment(settings: Settings) -> dict[str, str]:
    """The edge3 provider's part: the API server serves the edge API, workers poll it every 2 s (a
    queued training task starts within seconds) and send a heartbeat every 10 s."""
    return {
        "AIRFLOW__EDGE__API_ENABLED": "True",
        "AIRFLOW__EDGE__API_URL": f"{settings.airflow_url}/edge_worker/v1/rpcapi",
        "AIRFLOW__EDGE__JOB_POLL_INTERVAL": "2",
        "AIRFLOW__EDGE__HEARTBEAT_INTERVAL": "10",
    }


def dag_bundles(settings: Settings) -> list[dict[str, object]]:
    """Airflow 3's DAG bundles: the project's dags/ (``dags-folder``, as by default) and one local bundle
    per ``extra_dag_folders`` entry, named after its path (``tests/dags`` is ``tests-dags``)."""
    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    bundles: list[dict[str, object]] = [{"name": "dags-folder", "classpath": local, "kwargs": {}}]
    for folder in settings.extra_dag_folders:
        where = folder.relative_to(PROJECT_ROOT) if folder.is_relative_to(PROJECT_ROOT) else Path(folder.name)
        bundles.append({"name": "-".join(where.parts), "classpath": local, "kwargs": {"path": str(folder)}})
    return bundles


SERVICE_CLASSES: tuple[type[Service], ...] = (
    Postgres,
    ObjectStoreServer,
    Kafka,
    MlflowServer,
    AirflowApiServer,
    AirflowScheduler,
    AirflowDagProcessor,
    AirflowTriggerer,
    AirflowEdgeWorker,
    InferenceWorker,
    ApiServer,
    Dashboard,
    SparkMaster,
    SparkWorker,
)
# Names `adfame stack up` and `down` take for several services at once.
SERVICE_GROUPS: dict[str, tuple[str, ...]] = {"spark": ("spark-master", "spark-worker")}
