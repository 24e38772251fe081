"""Quality of what production serves: a sample of each model version's candidates, scored like evaluation.

Why here and why these numbers: the canary judge and the quality alerts compare versions on what
marketers actually received, not on the held-out set. Each run takes, per model version, the most
recent succeeded requests not sampled yet (``quality_sample_per_version``, finished within
``quality_lookback_s``), downloads their candidates' mp4s from ``adfame-videos``, decodes them with
serving's decoder (``inference.video.decode_mp4``) and scores each video with the functions evaluation
uses (``training.metrics``: temporal consistency to the previous and to the first frame, flicker,
motion). A request's mean over its candidates becomes one row per metric in ``monitoring_metrics``
(names in ``adfame.contracts.QUALITY_METRICS``), for its model version, stamped with the request's finish
time and labelled with its id and route; ``quality_samples`` marks it sampled in the same transaction,
so no request is counted twice however often or concurrently the sampler runs.

Not computed here: evaluation's ``heldout_preference_accuracy``. It is the sign of an implicit reward
margin, a forward pass of the transformer with and without the LoRA on noised (winner, loser) latents,
which needs the model loaded in the monitor task and marketers' picks that arrive minutes to days after
serving; the retrain's evaluation computes it on the held-out picks (``model_evaluations``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import Engine

from adfame.contracts import (
    QUALITY_FLICKER,
    QUALITY_MOTION,
    QUALITY_TEMPORAL_CONSISTENCY,
    QUALITY_TEMPORAL_CONSISTENCY_FIRST,
    VIDEOS_BUCKET,
)
from adfame.repositories import monitoring
from adfame.repositories.monitoring import MetricRow, ServedRequest
from adfame.settings import Settings
from adfame.storage import ObjectStore
from inference.video import decode_mp4
from training import metrics

log = logging.getLogger(__name__)


def video_quality(frames: np.ndarray) -> dict[str, float]:
    """The quality metrics of one decoded video (F x H x W x 3 uint8), by their monitoring names."""
    consistency = metrics.temporal_consistency(frames)
    return {
        QUALITY_TEMPORAL_CONSISTENCY: consistency.previous,
        QUALITY_TEMPORAL_CONSISTENCY_FIRST: consistency.first,
        QUALITY_FLICKER: metrics.flicker(frames),
        QUALITY_MOTION: metrics.motion(frames),
    }


@dataclass(frozen=True)
class RequestQuality:
    """One request's scores: the mean of each metric over the candidates that could be scored."""

    request: ServedRequest
    scored: int
    means: dict[str, float]
    error: str | None  # why no candidate could be scored

    def metric_rows(self) -> list[MetricRow]:
        labels = {
            "request_id": str(self.request.request_id),
            "route": self.request.route,
            "candidates": self.scored,
        }
        return [
            MetricRow(name, value, labels, self.request.model_version, self.request.finished_at)
            for name, value in sorted(self.means.items())
        ]


def score_request(store: ObjectStore, request: ServedRequest) -> RequestQuality:
    """Download, decode and score the request's candidates. A missing or undecodable video is skipped and
    named; a request with none left is recorded with the reason. An unreachable store raises
    (``ObjectStoreError``): the run fails and retries rather than marking requests unscorable."""
    scores: list[dict[str, float]] = []
    problems: list[str] = []
    for key in request.object_keys:
        if store.stat(VIDEOS_BUCKET, key) is None:
            problems.append(f"{key}: missing")
            continue
        try:
            scores.append(video_quality(decode_mp4(store.get_bytes(VIDEOS_BUCKET, key))))
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
    if problems:
        log.warning("request %s: %d candidate(s) not scored: %s", request.request_id, len(problems), problems)
    if not scores:
        reason = "; ".join(problems) or "the request has no candidates"
        return RequestQuality(request, 0, {}, reason[:1000])
    means = {name: float(np.mean([s[name] for s in scores])) for name in scores[0]}
    return RequestQuality(request, len(scores), means, None)


@dataclass(frozen=True)
class QualityRun:
    """What one sampling run did: requests scored per version, and requests no video could be read of."""

    sampled: dict[str, int]
    unscorable: int
    skipped_as_taken: int  # marked by a concurrent run between listing and recording


def sample_quality(
    settings: Settings, engine: Engine, store: ObjectStore | None = None, now: datetime | None = None
) -> QualityRun:
    """Score the not yet sampled requests of each version (see the module docstring) and record them."""
    store = store or ObjectStore(settings)
    since = (now or datetime.now(UTC)) - timedelta(seconds=settings.quality_lookback_s)
    sampled: dict[str, int] = {}
    unscorable = taken = 0
    for request in monitoring.unsampled_requests(engine, since, settings.quality_sample_per_version):
        quality = score_request(store, request)
        if not monitoring.record_quality_sample(
            engine, request, quality.scored, quality.error, quality.metric_rows()
        ):
            taken += 1
        elif quality.error is not None:
            unscorable += 1
        else:
            sampled[request.model_version] = sampled.get(request.model_version, 0) + 1
    log.info("quality sampled %s; %d unscorable, %d taken by another run", sampled, unscorable, taken)
    return QualityRun(sampled, unscorable, taken)
