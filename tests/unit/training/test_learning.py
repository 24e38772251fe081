"""The loop learns, CI-sized: DPO on a taste's picks beats DPO on random picks, judged by that taste.

Real generation (tiny-wan through serving's ``ModelServer``), real picks (``inference.tastes``), the
export's own layout (``training.export.write_export_folder``), real training (``training.trainer.train``)
and real judging on held-out (prompt, seed) pairs: the benchmark's code path (``bench.learning_loop``)
at a size that runs in well under a minute on two cores. It asserts a direction only; the figures
(three seeds, two tastes, sft, the cross-taste check) belong to the benchmark (bench/README.md).
The runs are untracked (``Loop.track`` is off), so no service is needed.
"""

from __future__ import annotations

from pathlib import Path

from adfame.settings import get_settings
from bench.learning_loop import Loop, LoopSize, Workspace, generate_candidates, marketer_picks
from inference.model import ModelServer
from inference.tastes import parse_taste
from inference.tiny_wan import build_tiny_wan
from training.config import TrainConfig
from training.dataset import verify_export
from training.export import is_heldout

TASTE = "rgb:255,0,0"
# Small videos and few requests: 24 requests x 4 candidates, of which the export keeps about a
# fifth aside; up to 20 of the held-out candidates are judged.
SIZE = LoopSize(
    requests=24, heldout_cases=20, candidates=4, num_frames=5, height=32, width=32, inference_steps=2
)
# 30 steps at 1e-3 (measured to learn a colour taste; it is 300 steps at 1e-3 that overfit, docs/training.md).
CONFIG = TrainConfig(
    objective="dpo", steps=30, learning_rate=1e-3, batch_size=4, rank=8, alpha=8.0, seed=0, log_every=10
)


def test_dpo_on_a_taste_beats_the_random_pick_control_under_that_taste(tmp_path: Path) -> None:
    settings = get_settings()
    model_dir = str(build_tiny_wan(tmp_path / "tiny-wan"))
    server = ModelServer(model_dir, "cpu", settings=settings)
    candidates = generate_candidates(server, SIZE, 0, tmp_path / "candidates", model_dir)
    taste, control = parse_taste(TASTE), parse_taste("random")
    loop = Loop(server, candidates, [taste], SIZE, settings)
    assert len(candidates.heldout(SIZE)) >= 10
    heldout_requests = sum(is_heldout(r.request_id, SIZE.heldout_share) for r in candidates.requests)

    win_rates = {}
    for picks_taste in (taste, control):
        workspace = Workspace(tmp_path / picks_taste.name.replace(":", "_"))
        manifest = verify_export(loop.export(workspace, marketer_picks(picks_taste, candidates, 1.0, 0)))
        assert (manifest.selections, manifest.heldout) == (SIZE.requests, heldout_requests)
        outcome = loop.learn_and_judge(workspace, picks_taste.name, CONFIG)
        assert outcome.steps == CONFIG.steps
        win_rates[picks_taste.name] = outcome.win_rates[TASTE]

    assert win_rates[TASTE] > 0.5, win_rates  # the challenger beats the champion under the taste
    assert win_rates[TASTE] > win_rates["random"], win_rates  # and the taste, not training alone, did it
