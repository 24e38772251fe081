"""The retrain_on_feedback steps without Airflow or services: the conf, the hand-offs between tasks, the
operator's wiring, and the announcement that only a challenger gets."""

from __future__ import annotations

import json

import pytest
from evaluation_fixtures import metrics_report
from export_fixtures import milestone_manifest

from adfame.schemas import RetrainConf
from operators.retrain_step import step_input
from training import retrain
from training.export_layout import ExportManifest
from training.registry import EvaluationScores


def manifest() -> ExportManifest:
    return milestone_manifest(2, "s3://adfame-models/base/tiny-wan", files={"train/prompt.txt": "0" * 64})


def trained() -> retrain.Trained:
    return retrain.Trained(
        exported=retrain.Exported(manifest=manifest()),
        run_id="abc123",
        steps=3,
        losses=[0.3, 0.2, 0.1],
        seconds_per_step=0.5,
        resumed_from=None,
        objective="dpo",
        beta=500.0,
    )


def test_the_trigger_conf_is_enough_and_overrides_are_checked_up_front() -> None:
    conf = retrain.parse_conf({"milestone": 2, "selection_count": 400})
    assert conf == RetrainConf(milestone=2, selection_count=400)
    custom = retrain.parse_conf({"milestone": 2, "train": {"steps": 5, "objective": "sft"}, "evaluation": {}})
    assert custom.train == {"steps": 5, "objective": "sft"}
    for bad in (
        {},
        {"milestone": 0},
        {"milestone": 2, "colour": "red"},
        {"milestone": 2, "train": {"steps": 0}},
    ):
        with pytest.raises(retrain.RetrainConfError, match="invalid retrain_on_feedback conf"):
            retrain.parse_conf(bad)
    with pytest.raises(retrain.RetrainConfError, match="heldout_pairs"):
        retrain.parse_conf({"milestone": 2, "evaluation": {"heldout_pairs": -1}})


def test_each_step_takes_the_previous_steps_output() -> None:
    assert step_input(retrain.export_step) is None
    assert step_input(retrain.train_step) is retrain.Exported
    assert step_input(retrain.evaluate_step) is retrain.Trained
    assert step_input(retrain.register_step) is retrain.Evaluated
    assert step_input(retrain.announce_step) is retrain.Registered


def test_outputs_travel_as_json_and_come_back_equal() -> None:
    output = trained()
    assert retrain.Trained.model_validate(json.loads(output.model_dump_json())) == output
    assert output.lora_uri == "runs:/abc123/lora"
    assert retrain.checkpoint_uri(2) == "s3://adfame-models/checkpoints/milestone-00002"


def test_the_evaluation_crosses_tasks_without_its_videos() -> None:
    report = metrics_report({"flicker": 1.5}, {"flicker": 1.0}, heldout_pairs=3, challenger_model="/tmp/lora")
    evaluated = retrain.Evaluated(
        trained=trained(),
        scores=EvaluationScores.from_report(report),
        report=retrain.evaluation_record(report),
    )
    back = retrain.evaluation_report(retrain.Evaluated.model_validate_json(evaluated.model_dump_json()))
    assert back.flat_metrics() == report.flat_metrics() == evaluated.scores.flat()
    assert (back.config, back.skipped, back.champion.model) == (report.config, report.skipped, "base")


def test_only_a_challenger_is_announced() -> None:
    conf = RetrainConf(milestone=2)
    passed = retrain.Registered(
        name="adfame-wan-lora", version="4", alias="challenger", reasons=[], created=True, milestone=2
    )
    assert retrain.announce_step(conf, passed) == passed
    failed = passed.model_copy(update={"alias": None, "reasons": ["flicker is worse"]})
    with pytest.raises(retrain.NoChallenger, match="adfame-wan-lora/4 is not a challenger: flicker is worse"):
        retrain.announce_step(conf, failed)
