"""Evaluation end to end on tiny-wan without services: held-out pairs with real videos, real LoRAs,
generation through the serving code, every metric; the Fréchet reference is a folder of mp4s.

The numbers are tiny-wan's (a few-layer model and LoRAs trained four steps toward a constant): the
tests check what must hold whatever the model (identical prompts and seeds for both models, the base
model at chance, spreads that are spreads), and print the figures for the record.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from evaluation_fixtures import load_train_lora, write_heldout_split

from inference.model import generate, load_pipeline
from inference.video import encode_mp4
from training import evaluation
from training.evaluation import EvalConfig, EvaluationReport, Sample
from training.reference_clips import NoReferenceClips
from training.wan_spec import WanSpec

CONFIG = EvalConfig(
    heldout_pairs=4,
    heldout_prompts=2,
    seeds=(0, 1),
    num_frames=9,
    height=32,
    width=32,
    fairness_subjects=("young woman", "old man", "Black woman"),
    device="cpu",
)


@pytest.fixture(scope="module")
def setup(tiny_wan: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("evaluation")
    pipe = load_pipeline(str(tiny_wan), device="cpu")
    export_dir = write_heldout_split(pipe, root / "export")
    reference = root / "reference"
    reference.mkdir()
    for seed, video in enumerate(
        generate(pipe, ["a city at night"] * 3, [7, 8, 9], num_frames=9, height=32, width=32).videos
    ):
        (reference / f"clip_{seed}.mp4").write_bytes(encode_mp4(video, 8))
    train_lora = load_train_lora()
    return {
        "model": tiny_wan,
        "export": export_dir,
        "reference": reference,
        "brighter": train_lora(tiny_wan, root / "lora-up", target=1.0),
        "darker": train_lora(tiny_wan, root / "lora-down", target=-1.0),
    }


@pytest.fixture(scope="module")
def report(setup: dict[str, Path]) -> EvaluationReport:
    config = CONFIG.model_copy(update={"reference_dir": setup["reference"]})
    report = evaluation.evaluate(
        base_model=str(setup["model"]),
        challenger_lora=setup["brighter"],
        champion_lora=None,
        heldout_dir=setup["export"],
        config=config,
        beta=500.0,
    )
    for name, values in evaluation.metrics_table(report).items():
        print(name, values)
    print(f"evaluated in {report.seconds:.1f} s")
    return report


def test_both_models_run_the_same_prompts_and_seeds(report: EvaluationReport) -> None:
    champion, challenger = report.champion.samples, report.challenger.samples
    cases = [(s.prompt, s.seed) for s in champion]
    assert cases == [(s.prompt, s.seed) for s in challenger]
    assert len(cases) == CONFIG.heldout_prompts * len(CONFIG.seeds)
    assert {seed for _, seed in cases} == {0, 1}
    assert (
        report.champion.fairness.keys() == report.challenger.fairness.keys() == set(CONFIG.fairness_subjects)
    )
    difference = np.mean(
        [np.abs(a.frames.astype(int) - b.frames).mean() for a, b in zip(champion, challenger, strict=True)]
    )
    assert difference > 1.0, "the challenger's LoRA should change its videos"


def test_the_base_champion_is_generated_exactly_as_serving_generates_it(
    report: EvaluationReport, setup: dict[str, Path]
) -> None:
    pipe = load_pipeline(str(setup["model"]), device="cpu")
    sample = report.champion.samples[-1]
    again = generate(
        pipe, [sample.prompt], [sample.seed], num_frames=9, height=32, width=32, num_inference_steps=2
    )
    # Alone or in a batch, a video is the same up to float rounding in the batched matmuls (one level).
    assert np.abs(again.videos[0].astype(int) - sample.frames).max() <= 1


def test_the_base_model_is_at_chance_and_every_metric_is_there(report: EvaluationReport) -> None:
    assert report.champion.model == "base"
    assert report.champion.metrics["heldout_preference_accuracy"] == 0.5
    assert report.champion.metrics["heldout_reward_margin"] == 0.0
    assert report.heldout_pairs == 4
    challenger = report.challenger.metrics
    assert 0.0 <= challenger["heldout_preference_accuracy"] <= 1.0
    assert challenger["heldout_reward_margin"] != 0.0
    for name in ("temporal_consistency_previous", "temporal_consistency_first"):
        assert 0.0 <= challenger[name] <= 1.0
    assert challenger["frechet_distance_pixel_stats"] > 0
    assert report.frame_encoder == "pixel_stats"
    assert report.reference_source.startswith("folder:") and report.reference_snapshot_id is None
    assert set(report.skipped) == {"fvd", "clip_score"}
    assert report.champion.metrics.keys() == challenger.keys()


def test_fairness_spreads_are_spreads(report: EvaluationReport) -> None:
    for model in report.models.values():
        for name in ("flicker", "mean_luminance", "temporal_consistency_previous"):
            value_range, std = model.metrics[f"fairness_{name}_range"], model.metrics[f"fairness_{name}_std"]
            values = [by_metric[name] for by_metric in model.fairness_values.values()]
            assert value_range == pytest.approx(max(values) - min(values))
            assert 0.0 <= std <= value_range


def test_results_table_and_grid(report: EvaluationReport) -> None:
    table = evaluation.metrics_table(report)
    assert len({len(column) for column in table.values()}) == 1
    assert "fvd" in table["metric"] and "clip_score" in table["metric"]
    flat = report.flat_metrics()
    assert flat["champion_heldout_preference_accuracy"] == 0.5
    rows = [
        [a.frames, b.frames] for a, b in zip(report.champion.samples, report.challenger.samples, strict=True)
    ]
    grid = evaluation.side_by_side(rows)
    assert grid.shape == (9, 32 * len(rows), 64, 3)


def test_the_same_seed_gives_both_models_the_same_noise(setup: dict[str, Path]) -> None:
    """The same LoRA scored as champion and as challenger gets identical margins; another LoRA, others."""
    spec = WanSpec.from_pretrained(setup["model"], device="cpu")
    pairs = evaluation.heldout_pairs(setup["export"], 4)
    same = evaluation.preference_margins(
        spec, {"champion": setup["brighter"], "challenger": setup["brighter"]}, pairs, 500.0, CONFIG
    )
    assert np.array_equal(same["champion"], same["challenger"])
    other = evaluation.preference_margins(spec, {"challenger": setup["darker"]}, pairs, 500.0, CONFIG)
    assert not np.allclose(other["challenger"], same["challenger"])
    assert not spec.pipeline.get_list_adapters().get("transformer"), "each LoRA is removed after its turn"


def test_heldout_pairs_are_spread_over_requests_from_either_folder(setup: dict[str, Path]) -> None:
    pairs = evaluation.heldout_pairs(setup["export"])
    assert len(pairs) == 4  # two requests, two losers each
    assert [p.request_id for p in pairs[:2]] != [pairs[0].request_id] * 2
    assert evaluation.heldout_pairs(setup["export"] / "heldout") == pairs
    assert len(evaluation.heldout_pairs(setup["export"], 3)) == 3


def test_without_reference_clips_the_frechet_distance_is_skipped_with_the_reason(tmp_path: Path) -> None:
    config = CONFIG.model_copy(update={"reference_dir": tmp_path})
    with pytest.raises(NoReferenceClips) as missing:
        evaluation.reference_clips(config, settings=None, engine=None)  # type: ignore[arg-type]
    scorers, skipped = evaluation.build_scorers(config, spec=None, reference=missing.value)  # type: ignore[arg-type]
    assert scorers.reference_features is None
    assert skipped["frechet_distance_pixel_stats"] == f"no mp4 files in {tmp_path}"
    sample = Sample("a runner", 0, np.zeros((3, 8, 8, 3), dtype=np.uint8))
    scored = evaluation.score_model("challenger", "base", [sample], {"a": [sample]}, np.zeros(1), scorers)
    assert "frechet_distance_pixel_stats" not in scored.metrics
