"""An evaluation on the real stack: tiny-wan from the object store, the Fréchet reference from a published
snapshot's validation clips, results into an MLflow run and into ``model_evaluations``."""

from __future__ import annotations

import hashlib
import importlib.util
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import mlflow
import pytest
from sqlalchemy import Engine

from adfame.contracts import DATASETS_BUCKET
from adfame.mlflow_setup import configure_mlflow
from adfame.repositories import datasets, evaluations
from adfame.repositories.datasets import SnapshotClip
from adfame.settings import Settings
from adfame.storage import ObjectStore
from inference.model import generate, init_default_model, load_pipeline, resolve_source
from inference.video import decode_mp4, encode_mp4
from training.evaluation import EvalConfig, EvaluationReport, evaluate, log_evaluation, record_evaluation
from training.reference_clips import NoReferenceClips, snapshot_validation_clips

pytestmark = pytest.mark.integration

CONFIG = EvalConfig(
    heldout_prompts=2,
    num_frames=9,
    height=32,
    width=32,
    reference_clips=3,
    fairness_subjects=("old man", "Black woman"),
)


def _fixtures() -> ModuleType:
    """The unit tests' held-out split maker (tests/ is not a package, so its module is loaded by path)."""
    path = Path(__file__).resolve().parents[1] / "unit" / "training" / "evaluation_fixtures.py"
    spec = importlib.util.spec_from_file_location("evaluation_fixtures", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def snapshot(settings: Settings, engine: Engine, tmp_path: Path) -> Iterator[str]:
    """A published snapshot in this module's database with three validation clips (48x48, resized by the
    evaluation) in the object store; its objects are removed after."""
    store = ObjectStore(settings)
    snapshot_id = f"test-eval-{uuid.uuid4().hex[:8]}"
    pipe = load_pipeline(init_default_model(settings, store), device="cpu", store=store, settings=settings)
    videos = generate(pipe, ["a city at night"] * 3, [7, 8, 9], num_frames=9, height=48, width=48).videos
    clips = []
    for number, video in enumerate(videos):
        data = encode_mp4(video, 8)
        key = f"snapshots/{snapshot_id}/clips/val/clip_{number}.mp4"
        store.put_bytes(DATASETS_BUCKET, key, data, content_type="video/mp4")
        clips.append(
            SnapshotClip(
                "openvid", f"clip_{number}", f"video_{number}", "a city at night", "a city at night", [],
                None, None, None, 1.125, 8.0, 9, 48, 48, "val", key, hashlib.sha256(data).hexdigest(),
            )
        )  # fmt: skip
    manifest_key = f"snapshots/{snapshot_id}/manifest.json"
    datasets.publish_snapshot(engine, snapshot_id, manifest_key, {"splits": {"val": 3}}, clips, None)
    yield snapshot_id
    for clip in clips:
        store.remove(DATASETS_BUCKET, clip.object_key)


def test_an_evaluation_goes_to_mlflow_and_postgresql(
    settings: Settings, engine: Engine, snapshot: str, tmp_path: Path, train_lora: Callable[..., Path]
) -> None:
    store = ObjectStore(settings)
    base_model = init_default_model(settings, store)
    model_dir = resolve_source(base_model, store=store, settings=settings)
    export = _fixtures().write_heldout_split(load_pipeline(str(model_dir), device="cpu"), tmp_path / "export")
    challenger = train_lora(model_dir, tmp_path / "lora", target=1.0)

    report = evaluate(
        base_model=base_model,
        challenger_lora=challenger,
        champion_lora=None,
        heldout_dir=export / "heldout",
        config=CONFIG,
        beta=500.0,
        settings=settings,
        engine=engine,
    )
    assert report.reference_snapshot_id == snapshot
    assert report.challenger.metrics["frechet_distance_pixel_stats"] > 0

    client = configure_mlflow(settings)
    experiment = client.create_experiment(f"adfame-test-evaluation-{uuid.uuid4().hex[:8]}")
    try:
        run_id = client.create_run(experiment).info.run_id
        log_evaluation(report, run_id, client)
        _check_mlflow_run(client, run_id, report, tmp_path)
        model_name = f"adfame-test-{uuid.uuid4().hex[:8]}"
        rows = record_evaluation(engine, report, model_name, "3", run_id=run_id)
        _check_stored(engine, model_name, report, rows, run_id)
        assert (
            record_evaluation(engine, report, model_name, "3", run_id=run_id) == rows
        )  # replaced, not added
        assert len(evaluations.evaluation_of(engine, model_name, "3")) == rows
    finally:
        client.delete_experiment(experiment)


def _check_mlflow_run(
    client: mlflow.MlflowClient, run_id: str, report: EvaluationReport, tmp_path: Path
) -> None:
    run = client.get_run(run_id)
    assert run.data.metrics == pytest.approx(report.flat_metrics())
    assert run.data.metrics["champion_heldout_preference_accuracy"] == 0.5
    assert run.data.tags["evaluation.frame_encoder"] == "pixel_stats"
    assert run.data.tags["evaluation.reference"] == f"snapshot:{report.reference_snapshot_id}"
    assert "CLIP" in run.data.tags["evaluation.skipped.clip_score"]
    logged = {artifact.path for artifact in client.list_artifacts(run_id, "evaluation")}
    assert logged >= {f"evaluation/{name}" for name in ("side_by_side.mp4", "fairness.mp4", "metrics.json")}
    grid = Path(client.download_artifacts(run_id, "evaluation/side_by_side.mp4", str(tmp_path)))
    rows = len(report.challenger.samples)
    assert decode_mp4(grid.read_bytes()).shape == (
        9,
        32 * rows,
        64,
        3,
    )  # champion | challenger, a row per case


def _check_stored(engine: Engine, model_name: str, report: EvaluationReport, rows: int, run_id: str) -> None:
    stored = evaluations.evaluation_of(engine, model_name, "3")
    assert len(stored) == rows == 2 * (len(report.challenger.metrics) + len(report.skipped))
    assert {row.run_id for row in stored} == {run_id}
    assert {row.reference_snapshot_id for row in stored} == {report.reference_snapshot_id}
    assert {row.frame_encoder for row in stored} == {"pixel_stats"}
    assert {row.heldout_pairs for row in stored} == {report.heldout_pairs}
    challenger = evaluations.metric_values(engine, model_name, "3", "challenger")
    assert {k: v for k, v in challenger.items() if v is not None} == pytest.approx(report.challenger.metrics)
    skipped = {row.metric: row.skipped_reason for row in stored if row.value is None}
    assert skipped.keys() == report.skipped.keys()
    assert all(reason for reason in skipped.values())


def test_without_a_snapshot_the_reference_is_missing_with_the_reason(
    settings: Settings, new_database: Callable[..., Engine]
) -> None:
    with pytest.raises(NoReferenceClips, match="no curated snapshot"):
        snapshot_validation_clips(
            new_database(migrated=True), ObjectStore(settings), limit=3, num_frames=9, height=32, width=32
        )
