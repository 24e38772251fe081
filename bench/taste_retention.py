"""Does the loop keep a taste across retrains? Two rounds of picks, the second retrain fresh or warm.

Round 1 is ``bench.learning_loop``'s run: the base model's candidates, a marketer with a taste picks,
``dpo`` trains version 1 (a fresh adapter on the base model). Round 2 is what the next milestone sees in
production: version 1 is the champion, so the candidates are ITS videos (new requests, ``--data-seed`` + 1),
the same marketer picks among them, and version 2 is trained on those picks in two ways:

* ``fresh``: a new adapter on the base model (what every retrain did before warm starts);
* ``warm``: version 1's LoRA as the starting point (``training.trainer.WarmStart``, what
  ``retrain_on_feedback`` does now when the champion's adapter has the run's shape).

Each version 2 is judged against its champion, version 1, on round 2's held-out (prompt, seed) pairs
(version 1's own candidates for them), under the taste: 0.5 is no change, below 0.5 means the retrain
lost part of what version 1 had learned. Round 2's picks are all among version 1's already-tasteful
candidates, so their pairs differ little in the taste: a fresh adapter, starting from the base model,
cannot learn from them what version 1 knew.

    python -m bench.taste_retention --taste rgb:220,40,40 [--seeds 0,1,2] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from diffusers.utils import logging as diffusers_logging
from transformers.utils import logging as transformers_logging

from adfame.settings import Settings, get_settings
from bench.learning_loop import Loop, LoopSize, Outcome, Workspace, generate_candidates, marketer_picks
from bench.report import figure, progress, say
from inference.model import ModelServer, default_device
from inference.tastes import Taste, parse_taste
from inference.tiny_wan import cached_tiny_wan
from training.config import TrainConfig
from training.trainer import WarmStart

STARTS = ("fresh", "warm")


@dataclasses.dataclass(frozen=True)
class Rounds:
    """One training seed's two rounds: version 1 against the base, version 2 (each start) against v1."""

    seed: int
    cases: int  # held-out (prompt, seed) pairs judged per round
    version_1: Outcome
    version_2: dict[str, Outcome]  # start -> outcome


def _round(
    server: ModelServer, size: LoopSize, data_seed: int, settings: Settings, champion_lora: Path | None
) -> Loop:
    """The loop of one round: the champion's candidates for the round's requests (cached on disk)."""
    base_model = server.base_source
    cache = settings.cache_dir / "bench-learning-loop"
    candidates = generate_candidates(server, size, data_seed, cache, base_model, champion_lora)
    return Loop(server, candidates, [], size, settings)


def two_rounds(
    server: ModelServer, taste: Taste, size: LoopSize, config: TrainConfig, workdir: Path, data_seed: int
) -> Rounds:
    """Train version 1 on round 1's picks, then version 2 fresh and warm on round 2's; judge each."""
    settings = get_settings()
    first = dataclasses.replace(_round(server, size, data_seed, settings, None), judges=[taste])
    one = Workspace(workdir / f"seed{config.seed}" / "round1")
    first.export(one, marketer_picks(taste, first.candidates, 1.0, data_seed))
    version_1 = first.learn_and_judge(one, taste.name, config)
    with progress(f"round 2: version 1's candidates for {size.requests} new requests"):
        second = _round(server, size, data_seed + 1, settings, Path(version_1.lora_dir))
    second = dataclasses.replace(second, judges=[taste])
    picks = marketer_picks(taste, second.candidates, 1.0, data_seed + 1)
    version_2 = {}
    for start in STARTS:
        workspace = Workspace(workdir / f"seed{config.seed}" / f"round2-{start}")
        second.export(workspace, picks)
        warm = WarmStart("version-1", Path(version_1.lora_dir)) if start == "warm" else None
        version_2[start] = second.learn_and_judge(workspace, taste.name, config, warm_start=warm)
    return Rounds(config.seed, len(second.candidates.heldout(size)), version_1, version_2)


def print_table(taste: Taste, rounds: Sequence[Rounds]) -> None:
    """Win rates per seed and their mean: version 1 over the base, each version 2 over version 1."""
    say(
        f"\n== Win rate under {taste.name}, {rounds[0].cases} held-out (prompt, seed) pairs per round; "
        "ties count half =="
    )
    say(f"  {'seed':<6} {'v1 vs base':<12} " + " ".join(f"{'v2 ' + s + ' vs v1':<16}" for s in STARTS))
    for r in rounds:
        cells = " ".join(f"{r.version_2[s].win_rates[taste.name]:<16.2f}" for s in STARTS)
        say(f"  {r.seed:<6} {r.version_1.win_rates[taste.name]:<12.2f} {cells}")
    means = [statistics.fmean(r.version_2[s].win_rates[taste.name] for r in rounds) for s in STARTS]
    v1 = statistics.fmean(r.version_1.win_rates[taste.name] for r in rounds)
    say(f"  {'mean':<6} {v1:<12.2f} " + " ".join(f"{m:<16.2f}" for m in means))


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.taste_retention", description=__doc__.splitlines()[0])
    parser.add_argument("--taste", default="rgb:220,40,40", help="the marketer's taste (inference.tastes)")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated")
    parser.add_argument("--requests", type=int, default=LoopSize.requests, help="requests per round")
    parser.add_argument("--heldout-cases", type=int, default=LoopSize.heldout_cases)
    parser.add_argument("--data-seed", type=int, default=0, help="round 1's requests; round 2 uses the next")
    parser.add_argument("--steps", type=int, help="training steps (default: TrainConfig's)")
    parser.add_argument("--workdir", type=Path, help="exports and runs (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write every outcome here")
    args = parser.parse_args(argv)
    try:
        args.parsed_taste = parse_taste(args.taste)
        args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError as exc:
        parser.error(str(exc))
    return args


def run(args: argparse.Namespace, workdir: Path) -> list[Rounds]:
    settings = get_settings()
    size = LoopSize(
        requests=args.requests, heldout_cases=args.heldout_cases, inference_steps=settings.inference_steps
    )
    base_model = str(cached_tiny_wan(seed=0, cache_root=settings.cache_dir))
    server = ModelServer(base_model, default_device(), settings=settings)
    config = TrainConfig(objective="dpo", **({"steps": args.steps} if args.steps else {}))
    figure("base model", base_model)
    figure("training config", config.model_dump_json(exclude={"target_modules"}))
    rounds = []
    for seed in args.seed_list:
        with progress(f"seed {seed}: round 1 (v1), round 2 (v2 fresh and warm)"):
            done = two_rounds(
                server,
                args.parsed_taste,
                size,
                config.model_copy(update={"seed": seed}),
                workdir,
                args.data_seed,
            )
        rounds.append(done)
        taste = args.parsed_taste.name
        starts = ", ".join(f"v2 {s} vs v1 {done.version_2[s].win_rates[taste]:.2f}" for s in STARTS)
        say(f"    seed {seed}: v1 vs base {done.version_1.win_rates[taste]:.2f}; {starts}")
    return rounds


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    started = time.monotonic()
    say(f"bench.taste_retention: taste {args.parsed_taste.name}, seeds {args.seed_list}")
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        rounds = run(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="adfame-bench-retention-") as tmp:
            rounds = run(args, Path(tmp))
    print_table(args.parsed_taste, rounds)
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(r) for r in rounds], indent=2) + "\n")
    say(f"\nbench.taste_retention done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
