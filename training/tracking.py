"""MLflow logging of a training run: parameters, the config file, per-step metrics, system metrics, the LoRA.

Tracking is on when a tracking URI is set in the environment (``MLFLOW_TRACKING_URI``) or the
stack's MLflow answers; otherwise a run trains without it (a laptop, a unit test), and says so.
A resumed run continues the MLflow run its checkpoint names, so one run holds the whole curve; the steps
a killed attempt had already logged past its last checkpoint are not logged again (the resumed run
recomputes the same steps: each is a function of the seed and the step), so each step has one point.
Metrics are sent in batches every ``log_every`` steps and at the end, not one request per step.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from adfame import health
from adfame.mlflow_setup import configure_mlflow
from adfame.settings import Settings

log = logging.getLogger(__name__)

TRAINING_EXPERIMENT = "adfame-training"
LORA_ARTIFACT_PATH = "lora"
# The metric every objective logs once per step: how far a resumed run had already logged.
STEP_METRIC = "loss"
# System metrics (CPU, memory, GPU) are sampled this often; a short run still gets samples.
SYSTEM_METRICS_INTERVAL_S = 2.0


def tracking_enabled(settings: Settings) -> bool:
    """A tracking URI is set, or the stack's MLflow server answers."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return True
    if health.mlflow(settings).ok:
        configure_mlflow(settings)
        return True
    log.warning("MLflow at %s does not answer: this run is not tracked", settings.mlflow_url)
    return False


class RunTracker:
    """Logs to one MLflow run (``run_id``); with ``run_id`` None every call does nothing.

    Steps up to ``logged_through`` are in the run already (a killed attempt logged them) and are skipped.
    """

    def __init__(self, run_id: str | None, logged_through: int = 0) -> None:
        self.run_id = run_id
        self.logged_through = logged_through
        self._pending: list = []  # mlflow.entities.Metric, sent by flush()

    def log_start(self, params: dict[str, object], config_file: Path) -> None:
        """Parameters and the run config file (once: a resumed run has them already)."""
        if self.run_id is None:
            return
        import mlflow

        mlflow.log_params({key: str(value) for key, value in params.items()})
        mlflow.log_artifact(str(config_file))

    def add_metrics(self, step: int, metrics: dict[str, float]) -> None:
        if self.run_id is None or step <= self.logged_through:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending += [Metric(key, float(value), now, step) for key, value in metrics.items()]

    def flush(self) -> None:
        if self.run_id is None or not self._pending:
            return
        import mlflow

        mlflow.MlflowClient().log_batch(self.run_id, metrics=self._pending)
        self._pending = []

    def log_lora(self, lora_dir: Path) -> None:
        """The LoRA files under artifact path ``lora`` (what serving and the registry read)."""
        if self.run_id is None:
            return
        import mlflow

        mlflow.log_artifacts(str(lora_dir), artifact_path=LORA_ARTIFACT_PATH)


@contextmanager
def tracked_run(
    settings: Settings,
    *,
    resume_run_id: str | None,
    run_name: str,
    tags: dict[str, str],
    enabled: bool = True,
) -> Iterator[RunTracker]:
    """An MLflow run with system metrics (``resume_run_id`` continues one), or an untracked stand-in.

    ``enabled`` False (a process other than the main one of a distributed run) never tracks.
    """
    if not (enabled and tracking_enabled(settings)):
        yield RunTracker(None)
        return
    import mlflow

    mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", TRAINING_EXPERIMENT))
    if "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL" not in os.environ:  # MLflow's own variable wins
        mlflow.set_system_metrics_sampling_interval(SYSTEM_METRICS_INTERVAL_S)
    mlflow.set_system_metrics_samples_before_logging(1)
    with mlflow.start_run(
        run_id=resume_run_id, run_name=None if resume_run_id else run_name, log_system_metrics=True
    ) as run:
        mlflow.set_tags(tags)
        tracker = RunTracker(run.info.run_id, last_logged_step(run.info.run_id) if resume_run_id else 0)
        try:
            yield tracker
        finally:
            tracker.flush()


def last_logged_step(run_id: str) -> int:
    """The last step the run holds a ``STEP_METRIC`` point for (0 when none)."""
    import mlflow

    history = mlflow.MlflowClient().get_metric_history(run_id, STEP_METRIC)
    return max((metric.step for metric in history), default=0)
