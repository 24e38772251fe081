"""Prompt drift: the false-alarm rate on unshifted windows and the detection rate on shifted ones.

The reference is ``--reference`` apparel captions of the demo's generated mirror (``devkit.mirror``
through ``devkit.prompt_streams``); each window is ``--window`` live prompts. Unshifted windows are fresh
apparel prompts (each window its own seed); shifted windows replace ``--shift`` of them (each share
given) with ad prompts for kitchen appliances, a product category the captions lack. Each window is
tested exactly as the monitor DAG tests it (``monitoring.drift``: MiniLM embeddings, MMD with an RBF
kernel at the median heuristic, a permutation p-value, drifted when p < alpha), at the settings' alpha
and permutation count unless given.

    python -m bench.drift [--windows 20] [--window 60] [--reference 300] [--shift 0.5 --shift 0.2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from adfame.settings import get_settings
from bench.report import figure, say
from devkit.prompt_streams import apparel_prompts, mixed_prompts
from monitoring.drift import embed, mmd_permutation_test


def rate(
    windows: list[list[str]], reference: np.ndarray, alpha: float, permutations: int
) -> tuple[float, list[float]]:
    """The share of windows the test flags, and each window's p-value."""
    p_values = [
        mmd_permutation_test(embed(prompts), reference, alpha, permutations, seed=i).p_value
        for i, prompts in enumerate(windows)
    ]
    return float(np.mean([p < alpha for p in p_values])), p_values


def main() -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--windows", type=int, default=20, help="windows per condition (>= 20 for the report)"
    )
    parser.add_argument("--window", type=int, default=60, help="live prompts per window")
    parser.add_argument("--reference", type=int, default=settings.drift_reference_size)
    parser.add_argument("--shift", type=float, action="append", help="share of kitchen prompts (repeatable)")
    parser.add_argument("--alpha", type=float, default=settings.drift_alpha)
    parser.add_argument("--permutations", type=int, default=settings.drift_permutations)
    args = parser.parse_args()
    shifts = args.shift or [0.5, 0.2]
    say(
        f"prompt drift: {args.windows} windows of {args.window} prompts per condition against "
        f"{args.reference} apparel captions; alpha {args.alpha}, {args.permutations} permutations"
    )
    started = time.perf_counter()
    reference = embed(apparel_prompts(seed=10_000, count=args.reference))
    unshifted = [apparel_prompts(seed=20_000 + i, count=args.window) for i in range(args.windows)]
    false_alarms, p_calm = rate(unshifted, reference, args.alpha, args.permutations)
    figure(
        "false-alarm rate (unshifted windows)",
        f"{false_alarms:.2f} ({round(false_alarms * args.windows)}"
        f"/{args.windows}); median p {np.median(p_calm):.3f}, min p {min(p_calm):.3f}",
    )
    for share in shifts:
        shifted = [mixed_prompts(30_000 + i, args.window, share) for i in range(args.windows)]
        detected, p_shift = rate(shifted, reference, args.alpha, args.permutations)
        figure(
            f"detection rate ({share:.0%} kitchen appliances)",
            f"{detected:.2f} ({round(detected * args.windows)}"
            f"/{args.windows}); median p {np.median(p_shift):.4f}, max p {max(p_shift):.4f}",
        )
    figure("wall time", f"{time.perf_counter() - started:.0f} s (MiniLM loaded once)")


if __name__ == "__main__":
    main()
