"""bench.gpu on the CPU at the cpu-small size: the code a lent GPU runs stays alive between lendings.

What is checked is that every figure is a real, finite number of the right kind and the parts agree
with each other (never a speed: timed assertions do not belong in tests).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from bench import gpu
from inference.model import load_pipeline
from inference.wan_configs import (
    ARCHITECTURES,
    CPU_SMALL,
    WAN21_T2V_1_3B,
    WAN21_T2V_14B,
    architecture,
    random_pipeline,
)


def _finite_positive(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) and v > 0 for v in values)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[gpu.Figures, Path]:
    """``python -m bench.gpu --small --json ...``, once for the module: its figures and its JSON file."""
    out = tmp_path_factory.mktemp("bench-gpu") / "figures.json"
    plan = gpu.make_plan(gpu.parse_args(["--small", "--json", str(out)]))
    (figures,) = gpu.run(plan)
    return figures, out


def test_every_figure_of_the_small_run_is_a_real_number(small_run: tuple[gpu.Figures, Path]) -> None:
    figures, json_path = small_run
    assert (figures.architecture, figures.device, figures.dtype) == ("cpu-small", "cpu", "bfloat16")
    assert figures.shape == gpu.SMALL_SHAPE and figures.candidates == 5
    assert _finite_positive(figures.build_s, figures.weights_gib, figures.batched_s, figures.sequential_s)
    assert _finite_positive(figures.batched_denoise_s, figures.mag_calibration_s, figures.reference_diff)
    assert _finite_positive(figures.no_cache_s) and figures.no_cache_reproducible is True
    assert figures.batched_denoise_s < figures.batched_s
    # Each candidate draws its own seeded noise: alone it is the batch's candidate up to rounding.
    assert 0 <= figures.max_pixel_diff_batched_vs_alone <= 8
    assert figures.skipped == {}
    kinds = [(c.kind, c.threshold) for c in figures.caches]
    assert kinds == [("first_block", 0.05), ("first_block", 0.2), ("mag", 0.05), ("mag", 0.2)]
    steps = gpu.SMALL_SHAPE["num_inference_steps"]
    for cache in figures.caches:
        assert _finite_positive(cache.seconds, cache.denoise_s)
        assert 1 <= cache.computed_steps <= steps
        assert math.isfinite(cache.frame_diff) and 0 <= cache.frame_diff <= 255
        if cache.computed_steps == steps:  # skipped nothing: exactly the uncached call
            assert cache.frame_diff == 0, cache
    skipping = [c for c in figures.caches if c.computed_steps < steps]
    assert {c.kind for c in skipping} == {"first_block", "mag"}, "each cache skipped steps at 0.2"
    assert all(c.frame_diff > 0 for c in skipping)
    assert set(figures.peak_memory_gib) == {"build", "batched", "sequential", "caches", "worker"}
    assert all(_finite_positive(v) for v in figures.peak_memory_gib.values())
    assert json.loads(json_path.read_text())[0]["caches"][3]["kind"] == "mag"


def test_the_worker_part_runs_the_real_worker(small_run: tuple[gpu.Figures, Path]) -> None:
    worker = small_run[0].worker
    assert worker is not None and worker.candidates_stored == 5
    assert _finite_positive(worker.total_s, worker.pipeline_s, worker.store_s, worker.encode_s)
    assert worker.total_s > worker.pipeline_s + worker.store_s - 1e-6
    assert worker.overhead_s == pytest.approx(worker.total_s - worker.pipeline_s)


def test_main_prints_each_part_and_says_the_weights_are_random(capsys: pytest.CaptureFixture[str]) -> None:
    assert gpu.main(["--small", "--sections", "batched,worker", "--thresholds", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "Random weights (transformer, text encoder and VAE" in out and "the videos are noise" in out
    for label in ("one call of 5 (batched)", "total_s (received -> ready to commit)", "peak memory, worker"):
        assert label in out
    assert "FirstBlockCache" not in out  # caches were not asked for


def test_random_pipeline_is_typed_as_load_pipeline_serves_it(tmp_path: Path) -> None:
    """A random model of the real sizes must run with the dtypes a worker runs a saved one with."""
    built = random_pipeline(CPU_SMALL, "cpu", torch.bfloat16)
    built.save_pretrained(tmp_path, safe_serialization=True)
    loaded = load_pipeline(str(tmp_path), "cpu", torch.bfloat16)
    for part in ("transformer", "text_encoder", "vae"):
        ours, theirs = getattr(built, part), getattr(loaded, part)
        dtypes = {n: t.dtype for n, t in [*ours.named_parameters(), *ours.named_buffers()]}
        assert dtypes == {n: t.dtype for n, t in [*theirs.named_parameters(), *theirs.named_buffers()]}
    assert {t.dtype for t in built.transformer.parameters()} == {torch.bfloat16, torch.float32}
    assert {t.dtype for t in built.vae.parameters()} == {torch.float32}


def test_the_real_sizes_are_wans() -> None:
    assert WAN21_T2V_1_3B.transformer_params_b == pytest.approx(1.42, abs=0.01)
    assert WAN21_T2V_14B.transformer_params_b == pytest.approx(14.29, abs=0.01)
    assert architecture("wan2.1-t2v-14b") is WAN21_T2V_14B and len(ARCHITECTURES) == 3
    with pytest.raises(KeyError, match=r"known: wan2\.1-t2v-1\.3b"):
        architecture("wan2.2")


def test_bad_options_are_named() -> None:
    with pytest.raises(SystemExit):
        gpu.parse_args(["--sections", "batched,warp"])
    with pytest.raises(SystemExit):
        gpu.parse_args(["--small", "--steps", "1"])


@pytest.mark.cuda
def test_the_small_run_on_cuda_measures_the_device(tmp_path: Path) -> None:
    """The GPU-only code of the bench (CUDA memory, the fit check) at the small size, where a GPU is."""
    out = tmp_path / "figures.json"
    assert gpu.main(["--small", "--device", "cuda", "--json", str(out)]) == 0
    (figures,) = json.loads(out.read_text())
    assert figures["device"].startswith("cuda") and figures["dtype"] == "bfloat16"
    assert all(0 < gib < 1 for gib in figures["peak_memory_gib"].values())
    assert figures["worker"]["candidates_stored"] == 5


def test_all_plans_both_real_sizes_and_skips_what_the_budget_cannot_hold(
    capsys: pytest.CaptureFixture[str],
) -> None:
    planned = gpu.make_plan(gpu.parse_args(["--all", "--device", "cpu"]))
    assert planned.architectures == [
        ("wan2.1-t2v-1.3b", gpu.SECTIONS),
        ("wan2.1-t2v-14b", ("batched",)),
    ]
    assert (
        planned.shape
        == gpu.FULL_SHAPE
        == {
            "num_frames": 16,
            "height": 480,
            "width": 832,
            "num_inference_steps": 50,
        }
    )
    # 14B after a measured small model: its call, scaled by the parameter count, cannot fit the budget.
    plan = gpu.make_plan(gpu.parse_args(["--small", "--sections", "batched", "--budget-s", "600"]))
    plan.architectures.append((WAN21_T2V_14B.name, ("batched",)))
    (figures,) = gpu.run(plan)
    assert figures.architecture == "cpu-small"
    assert "== wan2.1-t2v-14b: skipped: one call would take about" in capsys.readouterr().out
