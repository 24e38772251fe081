"""The registry step on a real MLflow (a SQLite store in a temporary folder): a real LoRA is logged with the
diffusers flavour and our video pyfunc, carries its lineage, passes or fails the gate, is registered once
per milestone, and loads in serving, in plain diffusers and through ``mlflow.pyfunc``."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from evaluation_fixtures import load_train_lora, metrics_report
from export_fixtures import milestone_manifest

from adfame.contracts import CHALLENGER_ALIAS
from adfame.settings import Settings
from inference.model import ModelVersionRef, local_lora, resolve_alias
from training import pyfunc
from training.config import TrainConfig
from training.dataset import read_manifest
from training.evaluation import EvalConfig, EvaluationReport, evaluate
from training.export_layout import ExportManifest, export_uri
from training.registry import (
    EvaluationScores,
    LineageTag,
    gate_reasons,
    quality_regressions,
    register_version,
)
from training.trainer import TrainResult, train

QUALITY = {"temporal_consistency_previous": 0.95, "temporal_consistency_first": 0.90, "flicker": 2.0}
ABSURD_LEARNING_RATE = 1e3  # a million times TrainConfig's default
TINY_RUN = {"steps": 3, "batch_size": 2, "rank": 4, "alpha": 4.0, "log_every": 1}
# Every held-out pair (2) and prompt (1) of the tiny export, small videos, two fairness variants.
TINY_EVALUATION = EvalConfig(
    num_frames=5, height=32, width=32, fairness_subjects=("young woman", "old man"), device="cpu"
)
# What the gate's reasons say for each of its checks: a non-finite training loss, a held-out preference
# accuracy under the minimum, a quality metric worse than the champion's.
GATE_CHECKS = ("training loss is not finite", "is below the minimum", "is worse than the champion's")


@pytest.fixture(scope="module")
def lora_dir(tiny_wan: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return load_train_lora()(tiny_wan, tmp_path_factory.mktemp("lora"), target=1.0, rank=4)


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SQLite tracking and registry store of this module's own; artifacts stay in a temporary folder."""
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:  # the process-wide URIs are restored afterwards
        patch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
        patch.setattr(registry_utils, "_registry_uri", registry_utils._registry_uri)
        patch.setattr(fluent, "_active_experiment_id", fluent._active_experiment_id)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        experiment = mlflow.create_experiment(
            "registry-test", artifact_location=(folder / "artifacts").as_uri()
        )
        mlflow.set_experiment(experiment_id=experiment)
        yield uri


def settings_for(tmp_path: Path, **gate: float) -> Settings:
    return Settings(_env_file=None, state_dir=tmp_path / "state", registered_model="adfame-test-lora", **gate)


def manifest_for(tiny_wan: Path, milestone: int = 3) -> ExportManifest:
    return milestone_manifest(milestone, str(tiny_wan), snapshot_id="20260101")


def report_with(accuracy: float, challenger_quality: dict[str, float] = QUALITY) -> EvaluationReport:
    """A small report of the evaluation's shape (no videos): the champion is the base model."""
    return metrics_report(
        {"heldout_preference_accuracy": 0.5, **QUALITY},
        {"heldout_preference_accuracy": accuracy, **challenger_quality},
        heldout_pairs=8,
        challenger_model="lora",
    )


def trained(lora_dir: Path, losses: list[float]) -> TrainResult:
    """A training run as the trainer leaves it: params (objective) and the LoRA under ``lora``."""
    with mlflow.start_run(run_name="train") as run:
        mlflow.log_params({"objective": "dpo", "steps": len(losses)})
        mlflow.log_artifacts(str(lora_dir), artifact_path="lora")
    return TrainResult(lora_dir, len(losses), losses, run.info.run_id, 0.1, None)


def test_a_passing_version_is_the_challenger_with_its_lineage_and_loads_everywhere(
    tiny_wan: Path, lora_dir: Path, tracking: str, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    train = trained(lora_dir, [0.7, 0.6, 0.5])
    manifest = manifest_for(tiny_wan)
    version = register_version(
        train=train, report=report_with(0.75), manifest=manifest, settings=settings, tracking_uri=tracking
    )
    assert (version.alias, version.reasons, version.created) == (CHALLENGER_ALIAS, [], True)

    client = mlflow.MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    stored = client.get_model_version(version.name, version.version)
    tags = stored.tags
    assert tags[LineageTag.MILESTONE] == "3" and tags[LineageTag.SELECTION_RANGE] == "401..600"
    assert tags[LineageTag.EXPORT_MANIFEST] == export_uri(3) + "manifest.json"
    assert tags[LineageTag.DATASET_SNAPSHOT] == "20260101" and tags[LineageTag.BASE_MODEL] == str(tiny_wan)
    assert tags[LineageTag.TRAINING_RUN] == train.run_id and stored.run_id == train.run_id
    assert tags[LineageTag.OBJECTIVE] == "dpo" and tags[LineageTag.GATE] == "passed"
    assert len(tags[LineageTag.CODE_COMMIT]) >= 7
    assert float(tags["eval.challenger_heldout_preference_accuracy"]) == 0.75

    # Serving: the worker's loader finds the adapter inside the logged model.
    ref = resolve_alias(client, CHALLENGER_ALIAS, version.name)
    assert ref == ModelVersionRef(version.name, version.version, stored.source)
    served = local_lora(ref, tmp_path / "loras", tracking_uri=tracking)
    assert (served / "pytorch_lora_weights.safetensors").is_file()

    # Plain diffusers, through MLflow's own flavour.
    adapter = mlflow.diffusers.load_model(f"models:/{version.name}@{CHALLENGER_ALIAS}")
    assert adapter.base_model == str(tiny_wan)
    pipe = adapter.load_pipeline()
    assert type(pipe).__name__ == "WanPipeline" and pipe.get_list_adapters()["transformer"]

    # The video pyfunc: prompts (and seeds) in, mp4 videos out.
    model = mlflow.pyfunc.load_model(f"models:/{version.name}@{CHALLENGER_ALIAS}")
    out = model.predict(
        pd.DataFrame({"prompt": ["a sneaker on a pedestal", "a surfer at sunset"], "seed": [7, 8]}),
        params={"num_frames": 5, "height": 32, "width": 32, "num_inference_steps": 2},
    )
    assert list(out.columns) == ["prompt", "seed", "video"] and out["seed"].tolist() == [7, 8]
    assert all(video[4:8] == b"ftyp" for video in out["video"])


def test_a_re_run_of_the_milestone_registers_nothing_and_finishes_an_interrupted_alias(
    tiny_wan: Path, lora_dir: Path, tracking: str, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    train = trained(lora_dir, [0.5, 0.4])
    arguments = {"train": train, "report": report_with(0.8), "manifest": manifest_for(tiny_wan, 7)}
    first = register_version(**arguments, settings=settings, tracking_uri=tracking)
    client = mlflow.MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    client.delete_registered_model_alias(first.name, CHALLENGER_ALIAS)  # as if stopped before aliasing

    again = register_version(**arguments, settings=settings, tracking_uri=tracking)
    assert (again.version, again.created, again.alias) == (first.version, False, CHALLENGER_ALIAS)
    assert len(client.search_model_versions(f"name = '{first.name}' and tags.milestone = '7'")) == 1


def test_a_degraded_version_fails_the_gate_with_its_reasons_and_gets_no_alias(
    tiny_wan: Path, lora_dir: Path, tracking: str, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, gate_min_preference_accuracy=0.6)
    train = trained(lora_dir, [0.5, math.nan])
    noisy = {**QUALITY, "flicker": 9.0}
    version = register_version(
        train=train,
        report=report_with(0.4, noisy),
        manifest=manifest_for(tiny_wan, 4),
        settings=settings,
        tracking_uri=tracking,
    )
    assert version.alias is None and len(version.reasons) == 3
    client = mlflow.MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    stored = client.get_model_version(version.name, version.version)
    assert stored.aliases == [] and stored.tags[LineageTag.GATE] == "failed"
    failed = stored.tags[LineageTag.GATE_FAILED]
    assert "not finite" in failed and "heldout_preference_accuracy 0.400" in failed and "flicker" in failed
    challenger = resolve_alias(client, CHALLENGER_ALIAS, version.name)
    assert challenger is None or challenger.version != version.version


def test_a_lora_trained_with_an_absurd_learning_rate_fails_the_gate_on_real_numbers(
    tiny_wan: Path, tiny_export: Path, tracking: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing hand-made: the trainer's DPO run at a learning rate a million times the default, the
    evaluation against the base model and the registry's gate. Measured on this set-up: the LoRA's
    videos come out black and its held-out margins NaN, so the gate names the preference accuracy
    (0.000) and the Fréchet distance (about twice the base model's); the training loss stays finite."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)  # the trainer logs its run into this module's store
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "registry-test")
    settings = settings_for(tmp_path)
    config = TrainConfig(objective="dpo", learning_rate=ABSURD_LEARNING_RATE, **TINY_RUN)
    trained_lora = train(
        config, tiny_export, base_model=str(tiny_wan), output_dir=tmp_path, settings=settings, progress=False
    )
    report = evaluate(
        base_model=str(tiny_wan),
        challenger_lora=trained_lora.lora_dir,
        champion_lora=None,
        heldout_dir=tiny_export,
        config=TINY_EVALUATION.model_copy(update={"reference_dir": tiny_export / "train" / "videos"}),
        beta=config.beta,
        settings=settings,
    )
    version = register_version(
        train=trained_lora,
        report=report,
        manifest=read_manifest(tiny_export),
        settings=settings,
        tracking_uri=tracking,
    )
    print("losses", trained_lora.losses, "gate:", version.reasons)
    assert trained_lora.run_id is not None and version.created
    assert version.alias is None and version.reasons
    # Each reason is one of the gate's own checks, whichever the degraded LoRA trips.
    assert all(any(check in reason for check in GATE_CHECKS) for reason in version.reasons), version.reasons
    client = mlflow.MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    stored = client.get_model_version(version.name, version.version)
    assert stored.aliases == [] and stored.tags[LineageTag.GATE] == "failed"
    assert stored.tags[LineageTag.GATE_FAILED] == "; ".join(version.reasons)
    assert stored.tags[LineageTag.TRAINING_RUN] == trained_lora.run_id


def test_the_gate_compares_quality_in_the_direction_that_is_better() -> None:
    champion = {"flicker": 2.0, "temporal_consistency_first": 0.9, "frechet_distance_pixel_stats": 10.0}
    assert quality_regressions(champion, champion, 0.25) == []
    within = {"flicker": 2.4, "temporal_consistency_first": 0.88, "frechet_distance_pixel_stats": 12.0}
    assert quality_regressions(within, champion, 0.25) == []
    beyond = {"flicker": 1.0, "temporal_consistency_first": 0.8, "frechet_distance_pixel_stats": 13.0}
    reasons = quality_regressions(beyond, champion, 0.25)
    assert [reason.split()[0] for reason in reasons] == [
        "frechet_distance_pixel_stats",
        "temporal_consistency_first",
    ]
    # Taste metrics are never gated, whichever way they move.
    assert (
        quality_regressions({"motion": 0.0, "mean_luminance": 255.0}, {"motion": 9.0, "mean_luminance": 0}, 0)
        == []
    )


def test_the_gate_passes_a_good_version_and_names_each_failure(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    assert gate_reasons([0.3, 0.2], EvaluationScores.from_report(report_with(0.7)), settings) == []
    assert gate_reasons([], EvaluationScores.from_report(report_with(0.7)), settings) == [
        "training recorded no loss"
    ]
    missing = EvaluationScores(metrics={"challenger": {}, "champion": {}}, models={})
    assert "below the minimum" in gate_reasons([0.1], missing, settings)[0]


def test_the_pyfunc_reads_data_frames_and_dicts_of_lists() -> None:
    rows = pyfunc._prompts_and_seeds(pd.DataFrame({"prompt": [["a b c", "d e f"]]}), first_seed=5)
    assert rows.to_dict("list") == {"prompt": ["a b c", "d e f"], "seed": [5, 6]}
    seeded = pyfunc._prompts_and_seeds(pd.DataFrame({"prompt": ["x y z"], "seed": [11]}), first_seed=0)
    assert seeded["seed"].tolist() == [11]
    with pytest.raises(ValueError, match="prompt"):
        pyfunc._prompts_and_seeds(pd.DataFrame({"text": ["a"]}), first_seed=0)
