"""Quality of served candidates on real mp4s (encoded and decoded by serving's PyAV code), no services.

The object store is replaced by a dictionary of real mp4 bytes with the two calls the sampler makes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np
import pytest

from adfame.contracts import QUALITY_FLICKER, QUALITY_METRICS, QUALITY_TEMPORAL_CONSISTENCY
from adfame.repositories.monitoring import ServedRequest
from adfame.storage import ObjectInfo
from inference.video import decode_mp4, encode_mp4
from monitoring.quality import score_request, video_quality
from training import metrics


class BytesStore:
    """``stat`` and ``get_bytes`` of ``ObjectStore`` over a dictionary of objects."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def stat(self, bucket: str, key: str) -> ObjectInfo | None:
        data = self.objects.get(key)
        return None if data is None else ObjectInfo(key, len(data), "")

    def get_bytes(self, bucket: str, key: str) -> bytes:
        return self.objects[key]


def _video(flicker: bool) -> bytes:
    """16 frames of 32x32: a bar sliding over grey, the grey pulsing between frames when ``flicker``."""
    frames = np.full((16, 32, 32, 3), 120, dtype=np.uint8)
    for i in range(16):
        if flicker and i % 2:
            frames[i] = 180
        frames[i, :, (2 * i) % 32 : (2 * i) % 32 + 4] = (200, 40, 40)
    return encode_mp4(frames, fps=8)


def _request(keys: list[str]) -> ServedRequest:
    return ServedRequest(uuid.uuid4(), "7", "challenger", datetime(2030, 1, 1, tzinfo=UTC), keys)


def test_scores_are_training_metrics_on_the_decoded_video() -> None:
    data = _video(flicker=True)
    frames = decode_mp4(data)
    scores = video_quality(frames)
    assert set(scores) == set(QUALITY_METRICS)
    assert scores[QUALITY_FLICKER] == metrics.flicker(frames)
    assert scores[QUALITY_TEMPORAL_CONSISTENCY] == metrics.temporal_consistency(frames).previous


def test_a_flickering_candidate_scores_worse_than_a_steady_one() -> None:
    steady, flickering = video_quality(decode_mp4(_video(False))), video_quality(decode_mp4(_video(True)))
    assert flickering[QUALITY_FLICKER] > 20 > 1 > steady[QUALITY_FLICKER]
    assert flickering[QUALITY_TEMPORAL_CONSISTENCY] < steady[QUALITY_TEMPORAL_CONSISTENCY]


def test_a_request_is_the_mean_of_its_readable_candidates() -> None:
    store = BytesStore({"a.mp4": _video(False), "b.mp4": _video(True), "broken.mp4": b"not a video"})
    request = _request(["a.mp4", "b.mp4", "broken.mp4", "gone.mp4"])
    scored = score_request(store, request)  # type: ignore[arg-type]
    each = [video_quality(decode_mp4(store.objects[k])) for k in ("a.mp4", "b.mp4")]
    assert scored.scored == 2 and scored.error is None
    assert scored.means[QUALITY_FLICKER] == pytest.approx(
        (each[0][QUALITY_FLICKER] + each[1][QUALITY_FLICKER]) / 2
    )
    rows = scored.metric_rows()
    assert {r.name for r in rows} == set(QUALITY_METRICS)
    assert all(r.model_version == "7" and r.recorded_at == request.finished_at for r in rows)
    assert rows[0].labels == {"request_id": str(request.request_id), "route": "challenger", "candidates": 2}


def test_a_request_with_no_readable_candidate_says_why() -> None:
    scored = score_request(BytesStore({"broken.mp4": b"xx"}), _request(["broken.mp4", "gone.mp4"]))  # type: ignore[arg-type]
    assert scored.scored == 0 and scored.metric_rows() == []
    assert "gone.mp4: missing" in scored.error and "broken.mp4" in scored.error
