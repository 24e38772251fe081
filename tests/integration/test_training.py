"""The trainer on the suite's stack: checkpoints in the object store survive a SIGKILL, MLflow holds the run.

A run is trained in a child process that is SIGKILLed right after its mid-way checkpoint is in the
object store (the child waits there, so the kill always lands between checkpoint and end); started
again with the same checkpoint URI, it resumes, ends at the same step count, continues the same
MLflow run, and reproduces the losses of an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from adfame.contracts import MODELS_BUCKET
from adfame.mlflow_setup import configure_mlflow
from adfame.settings import Settings
from adfame.storage import ObjectStore
from inference.tiny_wan import build_tiny_wan
from training.config import TrainConfig
from training.trainer import train

pytestmark = pytest.mark.integration

STEPS, CHECKPOINT_EVERY = 6, 3
CONFIG = TrainConfig(
    objective="dpo",
    steps=STEPS,
    checkpoint_every=CHECKPOINT_EVERY,
    batch_size=2,
    rank=4,
    alpha=4.0,
    log_every=2,
)

# The child trains like `adfame train` would, but stops for good once its mid-way checkpoint is written.
CHILD = """
import sys, time
from pathlib import Path
from training import trainer
from training.config import TrainConfig

save = trainer.CheckpointStore.save
def save_then_wait(self, state):
    key = save(self, state)
    if state.step == 0:  # the run's first checkpoint only names its MLflow run
        return key
    print(f"CHECKPOINT {state.step}", flush=True)
    time.sleep(600)
    return key
trainer.CheckpointStore.save = save_then_wait
config, export, model, out, uri = sys.argv[1:]
trainer.train(TrainConfig.from_file(Path(config)), Path(export), base_model=model, output_dir=Path(out),
              checkpoint_uri=uri, progress=False)
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_wan(tmp_path_factory.mktemp("tiny-wan"))


@pytest.fixture(scope="module")
def export(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "training"))
    from export_fixtures import write_tiny_export

    return write_tiny_export(model_dir, tmp_path_factory.mktemp("export"), requests=3, candidates=3)


@pytest.fixture()
def experiment(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An MLflow experiment of this test's own (the child process inherits it)."""
    name = f"adfame-test-training-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", name)
    yield name
    client = configure_mlflow(settings)
    if (found := client.get_experiment_by_name(name)) is not None:
        client.delete_experiment(found.experiment_id)


@pytest.fixture()
def checkpoint_uri(settings: Settings) -> Iterator[str]:
    prefix = f"test-checkpoints/{uuid.uuid4().hex[:12]}"
    yield f"s3://{MODELS_BUCKET}/{prefix}"
    store = ObjectStore(settings)
    for obj in store.list(MODELS_BUCKET, prefix + "/"):
        store.remove(MODELS_BUCKET, obj.key)


def _train_until_killed(config_file: Path, export: Path, model_dir: Path, out: Path, uri: str) -> None:
    """Run the child until its mid-way checkpoint is written, then SIGKILL it."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(config_file), str(export), str(model_dir), str(out), uri],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        line = child.stdout.readline() if child.stdout else ""
        assert line.strip() == f"CHECKPOINT {CHECKPOINT_EVERY}", (
            f"the child ended without a checkpoint: {line!r}"
        )
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


def test_a_killed_run_resumes_from_its_checkpoint_and_ends_like_an_uninterrupted_one(
    settings: Settings, model_dir: Path, export: Path, tmp_path: Path, experiment: str, checkpoint_uri: str
) -> None:
    whole = train(CONFIG, export, base_model=str(model_dir), output_dir=tmp_path / "whole", progress=False)

    config_file = CONFIG.to_file(tmp_path / "config.json")
    _train_until_killed(config_file, export, model_dir, tmp_path / "killed", checkpoint_uri)
    resumed = train(
        CONFIG,
        export,
        base_model=str(model_dir),
        output_dir=tmp_path / "killed",
        checkpoint_uri=checkpoint_uri,
    )

    assert resumed.resumed_from == CHECKPOINT_EVERY and resumed.steps == STEPS == whole.steps
    assert len(resumed.losses) == STEPS
    assert resumed.losses == pytest.approx(whole.losses, abs=1e-4)
    client = configure_mlflow(settings)
    history = client.get_metric_history(resumed.run_id, "loss")
    assert sorted(m.step for m in history) == list(range(1, STEPS + 1))  # one run, one point per step


def test_mlflow_holds_params_config_curves_system_metrics_and_the_lora(
    settings: Settings,
    model_dir: Path,
    export: Path,
    tmp_path: Path,
    experiment: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.05"
    )  # a tiny run lasts well under a second
    result = train(CONFIG, export, base_model=str(model_dir), output_dir=tmp_path, progress=False)

    client = configure_mlflow(settings)
    run = client.get_run(result.run_id)
    assert run.data.params["objective"] == "dpo" and run.data.params["beta"] == "500.0"
    assert run.data.tags["objective"] == "dpo" and run.data.tags["milestone"] == "1"
    for key in ("loss", "implicit_accuracy", "reward_margin"):
        assert [m.step for m in client.get_metric_history(result.run_id, key)] == list(range(1, STEPS + 1))
    assert any(key.startswith("system/") for key in run.data.metrics), sorted(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"train_config.json", "lora"} <= artifacts
    assert [a.path for a in client.list_artifacts(result.run_id, "lora")] == [
        "lora/pytorch_lora_weights.safetensors"
    ]
    logged = TrainConfig.model_validate_json(
        Path(client.download_artifacts(result.run_id, "train_config.json", str(tmp_path))).read_text()
    )
    assert logged == CONFIG.resolved()
