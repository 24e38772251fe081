"""One settings object for every part of AdFame.

Values come, highest first, from environment variables prefixed ``ADFAME_``,
a ``.env`` file in the working directory, and ``secrets.env`` in the state
folder. Credentials are never committed: the first use on a machine generates
random ones into ``secrets.env`` (mode 600), so a local stack is private by
default and a deployment overrides them with its own environment.
"""

from __future__ import annotations

import json
import os
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from adfame.contracts import REGISTERED_MODEL, RETRAIN_DAG_ID

ENV_PREFIX = "ADFAME_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SECRETS_FILE = "secrets.env"

# Generated once per state folder when the environment does not set them.
_GENERATED_SECRETS = {
    "POSTGRES_PASSWORD": lambda: secrets.token_urlsafe(18),
    "S3_ACCESS_KEY": lambda: "adfame" + secrets.token_hex(6),
    "S3_SECRET_KEY": lambda: secrets.token_urlsafe(30),
    "AIRFLOW_PASSWORD": lambda: secrets.token_urlsafe(12),
    "AIRFLOW_JWT_SECRET": lambda: secrets.token_urlsafe(32),
    "AIRFLOW_FERNET_KEY": lambda: _fernet_key(),
    # The HMAC secret MLflow signs its registry webhooks with, and the Fernet key its server stores
    # that secret under (without a fixed one, a restarted server could not read its webhooks back).
    "MLFLOW_WEBHOOK_SECRET": lambda: secrets.token_urlsafe(32),
    "MLFLOW_WEBHOOK_ENCRYPTION_KEY": lambda: _fernet_key(),
    # MLflow's basic auth in docker-compose.yaml: the admin's password, the Flask session key.
    "MLFLOW_PASSWORD": lambda: secrets.token_urlsafe(18),
    "MLFLOW_FLASK_SECRET_KEY": lambda: secrets.token_urlsafe(32),
}


def _fernet_key() -> str:
    import base64

    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _absolute_path(path: Path) -> Path:
    return path.expanduser().absolute()


def default_state_dir() -> Path:
    """A checkout keeps its state beside the code (git-ignored); an install in the user's state dir."""
    if (PROJECT_ROOT / "setup.cfg").exists():
        return PROJECT_ROOT / ".state"
    return Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "adfame"


class Settings(BaseSettings):
    """Where every service lives and how to reach it. Loopback defaults."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    state_dir: Path = default_state_dir()
    # Installed binaries and jars (shared by every checkout and stack) ...
    cache_dir: Path = Path.home() / ".cache" / "adfame"
    # ... and downloaded models and LoRAs, which belong to one stack's registry (default: under cache_dir).
    model_cache_dir: Path | None = None
    # The address the local stack binds to, and where clients find every service
    # unless a per-service host below says otherwise (containers: service names).
    host: str = "127.0.0.1"
    postgres_host: str = ""
    kafka_host: str = ""
    s3_host: str = ""
    mlflow_host: str = ""
    airflow_host: str = ""

    # PostgreSQL
    postgres_port: int = 5432
    postgres_user: str = "adfame"
    postgres_password: SecretStr = SecretStr("")
    app_db: str = "adfame"
    airflow_db: str = "airflow"
    mlflow_db: str = "mlflow"

    # Kafka (KRaft, one node that is broker and controller)
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_version: str = "4.1.1"
    kafka_heap: str = "512m"

    # S3-compatible object store (SeaweedFS)
    s3_port: int = 8333
    s3_access_key: str = ""
    s3_secret_key: SecretStr = SecretStr("")
    s3_region: str = "us-east-1"
    s3_secure: bool = False
    seaweedfs_master_port: int = 9333
    seaweedfs_volume_port: int = 8081
    seaweedfs_filer_port: int = 8888

    # MLflow
    mlflow_port: int = 5000

    # Airflow
    airflow_port: int = 8080
    airflow_user: str = "admin"
    airflow_password: SecretStr = SecretStr("")
    airflow_jwt_secret: SecretStr = SecretStr("")
    airflow_fernet_key: SecretStr = SecretStr("")
    airflow_parallelism: int = 4
    # The log servers of the task runners and the triggerer (two stacks on one host need their own).
    airflow_worker_log_port: int = 8793
    airflow_triggerer_log_port: int = 8794
    # DAG folders loaded beside dags/, one DAG bundle each: test stand-ins live outside the project's
    # dags/ so that only a stack that names them (the test suite's) runs them.
    extra_dag_folders: list[Path] = []

    # Generation service
    model_source: str = "s3://adfame-models/base/tiny-wan"
    registered_model: str = REGISTERED_MODEL
    device: str = ""
    inference_steps: int = 4
    inference_cache: str = ""
    inference_cache_threshold: float = 0.05
    # CPU threads for a worker's tensor work; 0: PyTorch's default (every core). Several workers on
    # one machine should split the cores between them, or they slow each other down.
    inference_threads: int = Field(0, ge=0)
    variation_strategy: str = "shot_styles"
    worker_group: str = "adfame-workers"
    # A worker that meets a service outage reads its message again after a pause: 1 s, doubling up to this
    # (seconds). Longer spares a struggling service; shorter serves sooner once it is back.
    worker_retry_pause_max_s: float = Field(30.0, ge=1)
    api_port: int = 8000
    # REST API limits (inference/api_limits.py; docs/security.md): requests per tenant a minute
    # (sustained; 0: no limit) and at once (burst), answered 429 with Retry-After above them; the largest
    # request body in bytes (413 above it); how long a candidate's presigned download URL stays valid.
    api_rate_limit_per_minute: int = Field(1200, ge=0)
    api_rate_limit_burst: int = Field(200, ge=1)
    api_max_body_bytes: int = Field(65536, ge=1024)
    api_presign_ttl_s: int = Field(3600, ge=1, le=604800)
    retrain_dag_id: str = RETRAIN_DAG_ID
    milestone_retry_s: float = 15.0

    # Retraining (retrain_on_feedback): the Airflow pool its training task runs in, and the gate a new
    # version passes for alias challenger (training/registry.py): a held-out preference accuracy of at
    # least the minimum, and no quality metric worse than the champion's by more than the tolerance
    # (a share of the champion's value).
    gpu_pool: str = "gpu"
    gpu_pool_slots: int = Field(1, ge=1)
    gpu_queue: str = "gpu"  # the executor queue GPU workers serve (the stack's edge worker, or Celery's)
    # The Airflow executor of the training task: "EdgeExecutor" sends it to an edge worker serving
    # gpu_queue (`adfame stack up` starts one, docs/stack.md); "" leaves it on the default executor
    # (LocalExecutor, or CeleryExecutor with a worker on gpu_queue in docker-compose.yaml).
    gpu_executor: str = "EdgeExecutor"
    # The stack's edge worker: its name in Airflow (the edge_worker table, the Edge Worker page) and how
    # many tasks it runs at once.
    edge_worker_name: str = "adfame-edge-worker"
    edge_worker_concurrency: int = Field(1, ge=1)
    # The wait before Airflow retries a failed retrain_on_feedback task (a killed training resumes from
    # its last checkpoint); the test profile shortens it.
    retrain_retry_delay_s: float = Field(60.0, gt=0)
    gate_min_preference_accuracy: float = Field(0.5, ge=0.0, le=1.0)
    gate_quality_tolerance: float = Field(0.25, ge=0.0)

    # Canary rollout (monitoring/rollout.py, monitoring/canary_judge.py; docs/canary.md): the traffic
    # steps of a challenger, how long each is watched, and what a window must show to pass: at least
    # canary_min_requests challenger requests (fewer is "inconclusive"), a p95 latency at most
    # canary_max_latency_ratio times the champion's, an error rate at most canary_max_error_rate, and
    # each sampled quality metric at least canary_min_quality_ratio of the champion's (direction-aware),
    # judged only with canary_min_quality_samples sampled requests of each route in the window and only
    # when a one-sided Welch test finds the challenger worse at canary_quality_alpha (prompts differ from
    # request to request, so a few samples' means differ by far more than 10 % between equal models).
    # Workers re-read the registry's aliases every alias_refresh_s seconds, and at once when a rollout
    # action (deployment_events) changed them.
    canary_steps: list[int] = [5, 25, 50, 100]
    canary_window_s: float = Field(300.0, gt=0)
    canary_min_requests: int = Field(20, ge=1)
    canary_max_latency_ratio: float = Field(1.5, gt=0)
    canary_max_error_rate: float = Field(0.05, ge=0.0, le=1.0)
    canary_min_quality_ratio: float = Field(0.9, ge=0.0, le=1.0)
    canary_min_quality_samples: int = Field(10, ge=2)
    canary_quality_alpha: float = Field(0.01, gt=0.0, lt=1.0)
    alias_refresh_s: float = Field(30.0, gt=0)

    # Canary DAG (canary_rollout, A2): whether the step to 100 % waits for a person's approval in the
    # Airflow UI, and the MLflow registry webhook that starts a canary when a reviewer sets alias
    # challenger by hand (registered by `adfame stack up`; its URL defaults to the API's
    # /webhooks/mlflow, set it where MLflow reaches the API by another name, e.g. in containers).
    canary_require_approval: bool = False
    # canary_rollout is live from its creation, so a new challenger starts its canary by itself; the
    # test stack turns that off (tests/stack.env): test retrains on the shared model must move no traffic.
    canary_autostart: bool = True
    mlflow_webhook_secret: SecretStr = SecretStr("")
    mlflow_webhook_encryption_key: SecretStr = SecretStr("")
    mlflow_webhook_url: str = ""

    # Monitoring (monitoring/, dags/monitor.py; docs/monitoring.md). worker_metrics_port: where a worker
    # serves its Prometheus metrics (0: off); worker i of `adfame worker --workers N` binds port + i.
    # The monitor DAG runs every monitor_interval_minutes: it scores quality_sample_per_version not yet
    # sampled requests per model version (finished within quality_lookback_s), tests the prompts of the
    # last drift_window_s against drift_reference_size training captions (MMD, RBF kernel, median
    # heuristic; drift_permutations permutations; drifted when p < drift_alpha; at least
    # drift_min_prompts prompts, at most drift_max_prompts) and groups them into drift_clusters clusters.
    # Alerts look at the last alert_window_s, record each breach once per that window, and need
    # alert_min_requests finished requests of a route before judging its latency (p95 above
    # alert_p95_latency_s) or error rate (above alert_max_error_rate); a quality drop is a sampled
    # metric worse than the champion's mean over quality_trailing_s by more than alert_quality_drop
    # (a share). retrain_on_alert: a drift or quality alert also starts retrain_on_feedback.
    worker_metrics_port: int = Field(0, ge=0, le=65535)
    monitor_interval_minutes: int = Field(5, ge=1)
    quality_sample_per_version: int = Field(5, ge=1)
    quality_lookback_s: float = Field(3600.0, gt=0)
    quality_trailing_s: float = Field(86400.0, gt=0)
    drift_window_s: float = Field(3600.0, gt=0)
    drift_alpha: float = Field(0.01, gt=0.0, lt=1.0)
    drift_permutations: int = Field(500, ge=20)
    drift_min_prompts: int = Field(20, ge=2)
    drift_max_prompts: int = Field(300, ge=2)
    drift_reference_size: int = Field(300, ge=2)
    drift_clusters: int = Field(6, ge=1)
    alert_window_s: int = Field(900, ge=1)
    alert_min_requests: int = Field(10, ge=1)
    alert_p95_latency_s: float = Field(60.0, gt=0)
    alert_max_error_rate: float = Field(0.1, ge=0.0, le=1.0)
    alert_quality_drop: float = Field(0.1, gt=0.0)
    retrain_on_alert: bool = False

    # Dashboard (dashboard/, `adfame stack up dashboard`; docs/dashboard.md): the port Streamlit serves on
    # (bound to ``host``), and the address people and the Airflow UI's links open; empty: http://host:port.
    dashboard_port: int = Field(8501, ge=1, le=65535)
    dashboard_url: str = ""

    # Spark standalone cluster (`adfame stack up spark`: a master and a worker; docs/nightly_etl.md). The
    # master's RPC and web UI (JSON status) ports and the worker's (Spark's own 8080/8081 are Airflow's and
    # SeaweedFS's here), what the worker offers executors (this machine has 2 cores), and the master the
    # Spark jobs of nightly_etl use (spark_jobs.session.get_spark): e.g. spark://127.0.0.1:7077 for the
    # stack's cluster; empty: local[2] inside the Airflow task.
    spark_master_port: int = Field(7077, ge=1, le=65535)
    spark_master_web_port: int = Field(8180, ge=1, le=65535)
    spark_worker_port: int = Field(7078, ge=1, le=65535)
    spark_worker_web_port: int = Field(8181, ge=1, le=65535)
    spark_worker_cores: int = Field(2, ge=1)
    spark_worker_memory: str = "4g"
    spark_master: str = ""

    # Seconds a service may take to become healthy before `stack up` gives up on it.
    start_timeout: float = 120.0

    @field_validator("state_dir", "cache_dir", "model_cache_dir")
    @classmethod
    def _absolute(cls, path: Path | None) -> Path | None:
        """Relative folders resolve once, here: child processes (Airflow tasks) run in other folders."""
        return _absolute_path(path) if path is not None else None

    @field_validator("extra_dag_folders")
    @classmethod
    def _absolute_each(cls, paths: list[Path]) -> list[Path]:
        return [_absolute_path(path) for path in paths]

    @field_validator("canary_steps")
    @classmethod
    def _rising_percentages(cls, steps: list[int]) -> list[int]:
        """A canary only ever grows: steps are percentages in 1..100, each above the one before."""
        if not steps or any(not 1 <= s <= 100 for s in steps) or steps != sorted(set(steps)):
            raise ValueError(f"canary_steps must be rising percentages within 1..100, got {steps}")
        return steps

    @model_validator(mode="after")
    def _default_hosts(self) -> Settings:
        for field in ("postgres_host", "kafka_host", "s3_host", "mlflow_host", "airflow_host"):
            if not getattr(self, field):
                setattr(self, field, self.host)
        return self

    @model_validator(mode="after")
    def _default_dashboard_url(self) -> Settings:
        """The dashboard as the local stack serves it, unless a deployment names where people open it."""
        if not self.dashboard_url:
            self.dashboard_url = f"http://{self.host}:{self.dashboard_port}"
        return self

    # ---- derived addresses -------------------------------------------------
    def database_url(self, database: str | None = None) -> str:
        password = self.postgres_password.get_secret_value()
        return (
            f"postgresql+psycopg2://{self.postgres_user}:{password}"
            f"@{self.postgres_host}:{self.postgres_port}/{database or self.app_db}"
        )

    def postgres_params(self, database: str | None = None) -> dict[str, object]:
        """Keyword arguments for a plain psycopg2 connection (admin work outside SQLAlchemy)."""
        return {
            "host": self.postgres_host,
            "port": self.postgres_port,
            "user": self.postgres_user,
            "password": self.postgres_password.get_secret_value(),
            "dbname": database or self.app_db,
        }

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.kafka_host}:{self.kafka_port}"

    @property
    def s3_endpoint(self) -> str:
        """host:port, the form the minio SDK takes."""
        return f"{self.s3_host}:{self.s3_port}"

    @property
    def s3_url(self) -> str:
        scheme = "https" if self.s3_secure else "http"
        return f"{scheme}://{self.s3_endpoint}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.mlflow_host}:{self.mlflow_port}"

    @property
    def airflow_url(self) -> str:
        return f"http://{self.airflow_host}:{self.airflow_port}"

    @property
    def api_url(self) -> str:
        """The REST API and selection page of the local stack (it binds to ``host``)."""
        return f"http://{self.host}:{self.api_port}"

    @property
    def spark_cluster_url(self) -> str:
        """The master URL of the stack's own Spark cluster (``spark_master`` may name another one)."""
        return f"spark://{self.host}:{self.spark_master_port}"

    @property
    def models_cache(self) -> Path:
        """Where downloaded base models and registry LoRAs are kept."""
        return self.model_cache_dir or self.cache_dir

    def folders_environment(self) -> dict[str, str]:
        """The folders as absolute ``ADFAME_`` variables: a child process (a worker, an Airflow task)
        runs in another folder, where a relative path from the parent's environment would mean
        somewhere else."""
        env = {
            ENV_PREFIX + "STATE_DIR": str(self.state_dir),
            ENV_PREFIX + "CACHE_DIR": str(self.cache_dir),
            ENV_PREFIX + "EXTRA_DAG_FOLDERS": json.dumps([str(folder) for folder in self.extra_dag_folders]),
        }
        if self.model_cache_dir is not None:
            env[ENV_PREFIX + "MODEL_CACHE_DIR"] = str(self.model_cache_dir)
        return env

    @property
    def secrets_path(self) -> Path:
        return self.state_dir / SECRETS_FILE


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    return values


def ensure_secrets(state_dir: Path) -> Path:
    """Create the state folder's secrets file with any secret it still lacks."""
    path = state_dir / SECRETS_FILE
    state_dir.mkdir(parents=True, exist_ok=True)
    existing = _read_env_file(path)
    missing = {
        ENV_PREFIX + name: make()
        for name, make in _GENERATED_SECRETS.items()
        if ENV_PREFIX + name not in existing
    }
    if missing:
        lines = [f"{k}={v}" for k, v in {**existing, **missing}.items()]
        header = "# Generated by AdFame for the local stack. Do not commit.\n"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(header + "\n".join(lines) + "\n")
    return path


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (environment, then ./.env, then the state folder's secrets)."""
    bootstrap = Settings(_env_file=".env")
    secrets_path = ensure_secrets(bootstrap.state_dir)
    # pydantic-settings gives later files priority; the environment beats both.
    return Settings(_env_file=(secrets_path, ".env"))
