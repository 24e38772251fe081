"""Progress of a training run: a tqdm bar on a terminal, a log line every N steps elsewhere.

Airflow task logs and CI capture output; a redrawn bar would fill them with carriage returns, so
off a TTY the same facts (step, loss, seconds per step) go out as plain log lines.
"""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

log = logging.getLogger(__name__)


class StepProgress:
    """Reports steps ``first + 1 .. total``; ``seconds_per_step`` is the mean over the steps run here."""

    def __init__(self, first: int, total: int, *, every: int, enabled: bool = True) -> None:
        self.first, self.total, self.every = first, total, every
        self.enabled = enabled
        self.bar = tqdm(total=total, initial=first, unit="step") if enabled and sys.stderr.isatty() else None
        self.started = time.perf_counter()
        self.done = 0

    @property
    def seconds_per_step(self) -> float:
        return (time.perf_counter() - self.started) / self.done if self.done else 0.0

    def update(self, step: int, metrics: dict[str, float]) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix({key: f"{value:.4g}" for key, value in metrics.items()})
        elif self.enabled and (step % self.every == 0 or step == self.total):
            shown = " ".join(f"{key}={value:.4g}" for key, value in metrics.items())
            log.info("step %d/%d %s (%.3f s/step)", step, self.total, shown, self.seconds_per_step)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.enabled:
            log.info("%d steps at %.3f s/step", self.done, self.seconds_per_step)
