"""Monitoring on the real stack: quality sampling of stored videos, prompt drift, and every alert kind.

Each test works in this module's own database (``engine``) with its own windows in the past (``NOW``),
so neither other modules' rows nor the clock decide anything. Drift compares apparel prompts and a
shift to kitchen appliances (``devkit.prompt_streams``) with apparel captions of a snapshot published here.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from api_support import make_mp4
from sqlalchemy import Engine, text

from adfame.contracts import (
    QUALITY_FLICKER,
    QUALITY_METRICS,
    QUALITY_TEMPORAL_CONSISTENCY,
    VIDEOS_BUCKET,
    video_object_key,
)
from adfame.repositories import monitoring
from adfame.repositories.datasets import SnapshotClip, publish_snapshot
from adfame.repositories.monitoring import MetricRow
from adfame.repositories.requests import Candidate, Outcome, claim_request, finish_request, record_request
from adfame.schemas import PromptRequest
from adfame.settings import Settings
from adfame.storage import ObjectStore
from devkit.prompt_streams import apparel_prompts, kitchen_prompts
from inference.video import decode_mp4
from monitoring import alerts, drift, quality
from training import metrics

pytestmark = pytest.mark.integration

TENANT = "monitor-test"
HOUR = timedelta(hours=1)
SEC = timedelta(seconds=1)


def _settings(settings: Settings, **overrides: object) -> Settings:
    values = {
        "alert_window_s": 3600,
        "alert_min_requests": 10,
        "alert_p95_latency_s": 5.0,
        "alert_max_error_rate": 0.1,
        "alert_quality_drop": 0.1,
        "quality_trailing_s": 6 * 3600,
        "drift_window_s": 3600,
        "drift_min_prompts": 20,
        "drift_permutations": 200,
        "drift_alpha": 0.01,
        "drift_reference_size": 150,
        "drift_clusters": 4,
        "quality_sample_per_version": 3,
        "quality_lookback_s": 3600,
    }
    return Settings.model_validate({**settings.model_dump(), **values, **overrides})


def _served(
    engine: Engine,
    prompt: str,
    route: str,
    version: str,
    total_s: float,
    failed: bool = False,
    **fields: object,
) -> uuid.UUID:
    """A request the way a worker leaves it: recorded, claimed and finished (now, on the database clock)."""
    request = PromptRequest(tenant=TENANT, prompt=prompt, **fields)
    record_request(engine, request)
    claim_request(engine, request)
    timings = {"queue_wait_s": 0.01, "denoise_s": total_s * 0.8, "total_s": total_s}
    status, error = ("failed", "injected failure") if failed else ("succeeded", None)
    finish_request(engine, request.request_id, Outcome(status, route, version, timings, error=error))
    return request.request_id


@pytest.fixture(scope="module")
def store(settings: Settings) -> ObjectStore:
    return ObjectStore(settings)


def test_each_alert_kind_is_recorded_once_per_window(engine: Engine) -> None:
    at = datetime(2031, 1, 1, tzinfo=UTC)
    for kind in alerts.ALERT_KINDS:
        first = alerts.record_alert(engine, kind, "challenger/7", f"{kind} breached", {"n": 1}, 600, at=at)
        again = alerts.record_alert(
            engine, kind, "challenger/7", f"{kind} still", {"n": 2}, 600, at=at + 599 * SEC
        )
        other = alerts.record_alert(engine, kind, "champion/6", f"{kind} breached", {}, 600, at=at + SEC)
        later = alerts.record_alert(engine, kind, "challenger/7", f"{kind} again", {}, 600, at=at + 600 * SEC)
        assert (first, again, other, later) == (True, False, True, True), kind
    recorded = monitoring.alerts_since(engine, at)
    assert len(recorded) == 3 * len(alerts.ALERT_KINDS)
    assert {(a.kind, a.message) for a in recorded if a.subject == "challenger/7"} >= {
        ("drift", "drift breached")
    }


def test_latency_error_rate_and_quality_alerts_from_served_requests(
    settings: Settings, engine: Engine
) -> None:
    version_ok, version_bad = f"ok-{uuid.uuid4().hex[:6]}", f"bad-{uuid.uuid4().hex[:6]}"
    for i in range(12):
        _served(engine, f"sneakers ad {i}", "champion", version_ok, total_s=1.0 + 0.01 * i)
        _served(engine, f"sneakers ad b{i}", "challenger", version_bad, total_s=9.0, failed=i < 3)
    now = datetime.now(UTC) + SEC  # the requests finished on the database's clock, just before
    monitoring.record_metrics(
        engine,
        [
            MetricRow(QUALITY_TEMPORAL_CONSISTENCY, 0.95, {}, version_ok, now - 2 * HOUR + i * SEC)
            for i in range(5)
        ]
        + [MetricRow(QUALITY_FLICKER, 1.0, {}, version_ok, now - 2 * HOUR) for _ in range(5)]
        + [MetricRow(QUALITY_TEMPORAL_CONSISTENCY, 0.6, {}, version_bad, now - 60 * SEC)],
    )
    raised = alerts.evaluate_alerts(_settings(settings), engine, now=now)
    found = {(r.breach.kind, r.breach.subject) for r in raised}
    assert found == {
        ("latency", f"challenger/{version_bad}"),
        ("error_rate", f"challenger/{version_bad}"),
        ("quality_drop", f"{version_bad}/{QUALITY_TEMPORAL_CONSISTENCY}"),
    }
    assert all(r.recorded for r in raised)
    # The breach lasts; the next look within the window sees it and records nothing new.
    again = alerts.evaluate_alerts(_settings(settings), engine, now=now + 30 * SEC)
    assert {(r.breach.kind, r.breach.subject) for r in again} == found
    assert not any(r.recorded for r in again)


def test_quality_is_sampled_from_the_stored_videos_once(
    settings: Settings, engine: Engine, store: ObjectStore
) -> None:
    version = f"q-{uuid.uuid4().hex[:6]}"
    request_ids = []
    for i in range(4):
        request = PromptRequest(tenant=TENANT, prompt=f"a runner at dawn {i}")
        record_request(engine, request)
        claim_request(engine, request)
        made = [
            Candidate(c, f"shot {c}", c, video_object_key(TENANT, str(request.request_id), c))
            for c in range(2)
        ]
        for c in made:
            store.put_bytes(VIDEOS_BUCKET, c.object_key, make_mp4(i + c.index), content_type="video/mp4")
        finish_request(
            engine, request.request_id, Outcome("succeeded", "champion", version, {"total_s": 1.0}, made)
        )
        request_ids.append(request.request_id)
    run_settings = _settings(settings)
    first = quality.sample_quality(run_settings, engine, store)
    assert first.sampled.get(version) == 3  # quality_sample_per_version: the newest three
    second = quality.sample_quality(run_settings, engine, store)
    assert second.sampled.get(version) == 1  # the one left, and nothing counted twice
    assert quality.sample_quality(run_settings, engine, store).sampled.get(version) is None
    points = [p for p in monitoring.metric_points(engine, "quality.", datetime.now(UTC) - HOUR)
              if p.model_version == version]  # fmt: skip
    assert sorted({p.name for p in points}) == sorted(QUALITY_METRICS) and len(points) == 4 * len(
        QUALITY_METRICS
    )
    # The stored value is training.metrics on the decoded videos: one implementation.
    newest = request_ids[-1]
    frames = [
        decode_mp4(store.get_bytes(VIDEOS_BUCKET, video_object_key(TENANT, str(newest), c))) for c in range(2)
    ]
    expected = sum(metrics.flicker(f) for f in frames) / 2
    stored = [p.value for p in points if p.name == QUALITY_FLICKER and p.labels["request_id"] == str(newest)]
    assert stored == [pytest.approx(expected)]


@pytest.fixture(scope="module")
def apparel_snapshot(engine: Engine) -> str:
    """A published snapshot whose 150 train captions are the demo's apparel captions."""
    snapshot_id = f"test-monitor-{uuid.uuid4().hex[:8]}"
    clips = [
        SnapshotClip(
            "openvid", f"clip-{i}", f"video-{i}", caption, caption.lower(), [], None, None, None, 2.0, 8.0,
            16, 64, 64, "train", f"snapshots/{snapshot_id}/clips/train/clip-{i}.mp4", "0" * 64,
        )
        for i, caption in enumerate(apparel_prompts(seed=1000, count=150))
    ]  # fmt: skip
    publish_snapshot(engine, snapshot_id, f"snapshots/{snapshot_id}/manifest.json", {}, clips, None)
    return snapshot_id


def _submit(engine: Engine, prompts: list[str], start: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(text("delete from generation_requests where tenant = 'drift-test'"))
    for i, prompt in enumerate(prompts):
        record_request(
            engine, PromptRequest(tenant="drift-test", prompt=prompt, submitted_at=start + i * SEC)
        )


def test_a_new_product_category_raises_a_drift_alert_and_the_unshifted_stream_does_not(
    settings: Settings, engine: Engine, apparel_snapshot: str
) -> None:
    run_settings = _settings(settings, alert_window_s=3600)
    calm_end = datetime(2032, 1, 1, 1, tzinfo=UTC)
    _submit(engine, apparel_prompts(seed=7, count=60), calm_end - HOUR)
    calm = drift.check_prompt_drift(run_settings, engine, now=calm_end)
    assert calm is not None and calm.reference == f"snapshot:{apparel_snapshot}"
    assert not calm.drifted and calm.score <= calm.threshold, calm.details["p_value"]
    assert not [
        r for r in alerts.evaluate_alerts(run_settings, engine, now=calm_end) if r.breach.kind == "drift"
    ]

    shifted_end = calm_end + 2 * HOUR
    _submit(engine, apparel_prompts(seed=8, count=30) + kitchen_prompts(seed=8, count=30), shifted_end - HOUR)
    shifted = drift.check_prompt_drift(run_settings, engine, now=shifted_end)
    assert shifted is not None and shifted.drifted and shifted.score > shifted.threshold
    assert shifted.details["p_value"] < 0.01 and shifted.details["n_live"] == 60
    new_clusters = [c for c in shifted.details["clusters"] if c["reference_share"] < 0.05]
    assert new_clusters and any(word in c["name"] for c in new_clusters for word in ("kitchen", "product"))
    raised = [
        r for r in alerts.evaluate_alerts(run_settings, engine, now=shifted_end) if r.breach.kind == "drift"
    ]
    assert len(raised) == 1 and raised[0].recorded
    again = [
        r
        for r in alerts.evaluate_alerts(run_settings, engine, now=shifted_end + SEC)
        if r.breach.kind == "drift"
    ]
    assert len(again) == 1 and not again[0].recorded
    shares = monitoring.metric_points(engine, "prompt_cluster.share", shifted_end - SEC)
    assert shares and sum(p.value for p in shares if p.recorded_at == shifted_end) == pytest.approx(1.0)
