"""A milestone's selections become a training set in the real object store, exactly once and byte for byte.

The rows live in this module's own database; the videos are real mp4s in the test stack's adfame-videos,
and the export goes to the stack's adfame-datasets. Milestones here are small (``per_milestone``), and
the exported one is milestone 9, reached by selections without videos: had the export taken a row of
another milestone, it would fail on that row's missing video.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from api_support import complete_request, finished_jobs, make_mp4
from sqlalchemy import Engine, text

from adfame import db
from adfame.contracts import DATASETS_BUCKET, VIDEOS_BUCKET
from adfame.repositories.datasets import SnapshotClip, publish_snapshot
from adfame.repositories.requests import record_request
from adfame.repositories.selections import insert_selection, milestone_selections
from adfame.schemas import PromptRequest
from adfame.settings import Settings
from adfame.storage import ObjectStore
from training.dataset import fetch_export, read_pairs, read_winners
from training.export import (
    EmptyMilestone,
    ExportMismatch,
    MissingCandidateVideo,
    export_milestone,
    is_heldout,
)
from training.export_layout import ExportManifest, export_prefix, export_uri

pytestmark = pytest.mark.integration
ADFAME = str(Path(sys.executable).parent / "adfame")

PER_MILESTONE = 6
MILESTONE = 9
CANDIDATES = 3
TENANT = "exporter"
HELDOUT_SHARE = 0.4


@pytest.fixture(scope="module")
def store(settings: Settings) -> ObjectStore:
    return ObjectStore(settings)


def _clear_exports(store: ObjectStore) -> None:
    for milestone in (MILESTONE - 1, MILESTONE, MILESTONE + 1):
        for obj in store.list(DATASETS_BUCKET, export_prefix(milestone) + "/"):
            store.remove(DATASETS_BUCKET, obj.key)


@pytest.fixture(scope="module")
def selections(engine: Engine, store: ObjectStore) -> Iterator[list[uuid.UUID]]:
    """Milestones 1-8 of rows only, then milestone 9: six requests with three real videos each."""
    _clear_exports(store)  # another module's database may have exported these milestones
    fillers = finished_jobs(engine, TENANT, (MILESTONE - 1) * PER_MILESTONE)
    # Fixed ids, so the held-out split (a hash of the id) is the same in every run: 2 of the 6 here.
    exported = [uuid.uuid5(uuid.NAMESPACE_URL, f"adfame-test-export-{i}") for i in range(PER_MILESTONE)]
    assert sum(is_heldout(rid, HELDOUT_SHARE) for rid in exported) == 2
    for i, request_id in enumerate(exported):
        prompt = f"sneakers on a track, take {i}"
        record_request(engine, PromptRequest(request_id=request_id, tenant=TENANT, prompt=prompt))
        complete_request(engine, store, request_id, TENANT, candidates=CANDIDATES)
    with engine.begin() as conn:
        for request_id in fillers:
            insert_selection(conn, request_id, 0, TENANT, per_milestone=PER_MILESTONE)
        for i, request_id in enumerate(exported):
            insert_selection(conn, request_id, i % CANDIDATES, TENANT, per_milestone=PER_MILESTONE)
    yield exported
    _clear_exports(store)


@pytest.fixture()
def export(
    settings: Settings, engine: Engine, store: ObjectStore, selections: list[uuid.UUID], snapshot: str
) -> Callable[[], ExportManifest]:
    """Milestone 9's export as these tests run it, its selections and snapshot in place: the module's
    held-out share and two curated clips."""

    def run() -> ExportManifest:
        return export_milestone(
            MILESTONE,
            settings=settings,
            engine=engine,
            store=store,
            heldout_share=HELDOUT_SHARE,
            curated_sample=2,
        )

    return run


@pytest.fixture(scope="module")
def snapshot(engine: Engine, store: ObjectStore) -> str:
    """A published snapshot of this module's own, with three train clips in adfame-datasets."""
    snapshot_id = f"test-export-{uuid.uuid4().hex[:8]}"
    clips = []
    for i in range(3):
        key = f"snapshots/{snapshot_id}/clips/train/clip-{i}.mp4"
        data = make_mp4(10 + i)
        store.put_bytes(DATASETS_BUCKET, key, data, content_type="video/mp4")
        clips.append(
            SnapshotClip(
                "openvid", f"clip-{i}", f"video-{i}", f"waves, take {i}", f"waves take {i}", [], None, None,
                None, 2.0, 8.0, 16, 64, 64, "train", key, hashlib.sha256(data).hexdigest(),
            )
        )  # fmt: skip
    publish_snapshot(engine, snapshot_id, f"snapshots/{snapshot_id}/manifest.json", {}, clips, None)
    return snapshot_id


def test_each_selection_is_stamped_with_its_milestone(engine: Engine, selections: list[uuid.UUID]) -> None:
    with engine.connect() as conn:
        counts = dict(conn.execute(text("SELECT milestone, count(*) FROM selections GROUP BY 1")).all())
    assert counts == {m: PER_MILESTONE for m in range(1, MILESTONE + 1)}
    records = milestone_selections(engine, MILESTONE)
    assert [r.request_id for r in records] == selections
    assert [r.seq for r in records] == sorted(r.seq for r in records)
    first = records[0]
    assert (first.tenant, first.prompt, first.chosen_index, first.num_frames) == (
        TENANT, "sneakers on a track, take 0", 0, 16,
    )  # fmt: skip
    assert [(c.index, c.variation_prompt, c.seed) for c in first.candidates] == [
        (i, f"shot {i}", 1000 + i) for i in range(CANDIDATES)
    ]
    assert records[1].winner.index == 1 and [c.index for c in records[1].losers] == [0, 2]


def test_export_writes_the_milestone_in_the_layout_with_checksums(
    export: Callable[[], ExportManifest],
    settings: Settings,
    engine: Engine,
    store: ObjectStore,
    selections: list[uuid.UUID],
    snapshot: str,
    tmp_path: Path,
) -> None:
    manifest = export()
    heldout = [rid for rid in selections if is_heldout(rid, HELDOUT_SHARE)]
    assert (manifest.milestone, manifest.selections, manifest.heldout) == (MILESTONE, 6, len(heldout))
    assert manifest.uri == export_uri(MILESTONE) == f"s3://adfame-datasets/exports/milestone-{MILESTONE:05d}/"
    assert (manifest.snapshot_id, manifest.curated_sample, manifest.base_model) == (
        snapshot, 2, settings.model_source,
    )  # fmt: skip
    records = milestone_selections(engine, MILESTONE)
    assert manifest.selection_seq == (records[0].seq, records[-1].seq)
    for path, sha in manifest.files.items():  # every object is there, as the manifest says
        data = store.get_bytes(DATASETS_BUCKET, f"{export_prefix(MILESTONE)}/{path}")
        assert hashlib.sha256(data).hexdigest() == sha, path

    folder = fetch_export(manifest.uri, cache=tmp_path / "cache", store=store)
    winners, pairs = read_winners(folder, "train"), read_pairs(folder, "train")
    train = [rid for rid in selections if rid not in heldout]
    assert len(winners) == len(train) + 2 and sum("waves, take" in c for c, _ in winners) == 2
    assert len(pairs) == len(train) * (CANDIDATES - 1)
    assert {p.request_id for p in pairs} == {str(rid) for rid in train}
    assert {p.request_id for p in read_pairs(folder, "heldout")} == {str(rid) for rid in heldout}
    pair = pairs[0]
    source_key = f"{TENANT}/{pair.request_id}/{pair.winner.index}.mp4"
    assert pair.winner.video.read_bytes() == store.get_bytes(VIDEOS_BUCKET, source_key)


def test_a_second_export_returns_the_manifest_and_a_rerun_writes_the_same_bytes(
    export: Callable[[], ExportManifest], settings: Settings, engine: Engine, store: ObjectStore
) -> None:
    prefix = export_prefix(MILESTONE)
    first = export()
    manifest_bytes = store.get_bytes(DATASETS_BUCKET, f"{prefix}/manifest.json")
    victim = f"{prefix}/train/pairs.jsonl"
    store.remove(DATASETS_BUCKET, victim)
    assert export() == first
    assert not store.exists(DATASETS_BUCKET, victim)  # the manifest was found: nothing was written

    store.remove(DATASETS_BUCKET, f"{prefix}/manifest.json")  # as if the first run died before it
    assert export() == first
    assert store.get_bytes(DATASETS_BUCKET, f"{prefix}/manifest.json") == manifest_bytes
    assert store.exists(DATASETS_BUCKET, victim)

    with pytest.raises(ExportMismatch, match=r"heldout_share"):
        export_milestone(MILESTONE, settings=settings, engine=engine, store=store, heldout_share=0.2)


def test_the_cli_prints_the_export_uri(engine: Engine, selections: list[uuid.UUID], snapshot: str) -> None:
    command = [ADFAME, "export", "--milestone", str(MILESTONE), "--heldout-share", str(HELDOUT_SHARE)]
    command += ["--curated-sample", "2"]
    env = {**os.environ, "ADFAME_APP_DB": str(engine.url.database)}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == export_uri(MILESTONE)


def test_an_empty_milestone_or_a_missing_video_fails_before_writing(
    settings: Settings, engine: Engine, store: ObjectStore, selections: list[uuid.UUID]
) -> None:
    with pytest.raises(EmptyMilestone, match=f"milestone {MILESTONE + 1} has no selections"):
        export_milestone(MILESTONE + 1, settings=settings, engine=engine, store=store)
    with pytest.raises(MissingCandidateVideo, match=rf"milestone {MILESTONE - 1}: .* s3://adfame-videos/"):
        export_milestone(MILESTONE - 1, settings=settings, engine=engine, store=store)
    assert store.list(DATASETS_BUCKET, export_prefix(MILESTONE - 1) + "/") == []


def test_the_migration_numbers_older_selections_by_seq(
    new_database: Callable[..., Engine], tmp_path: Path
) -> None:
    engine = new_database()
    for migration in db.discover_migrations():
        if migration.version < 4:
            shutil.copy(migration.path, tmp_path / migration.path.name)
    db.upgrade(engine, directory=tmp_path)
    jobs = finished_jobs(engine, TENANT, 402)
    with engine.begin() as conn:
        for job in jobs:
            conn.execute(
                text("INSERT INTO selections (request_id, candidate_index, tenant) VALUES (:id, 0, :t)"),
                {"id": job, "t": TENANT},
            )
    assert "V004__selection_milestones.sql" in db.upgrade(engine)
    with engine.connect() as conn:
        stamped = conn.execute(text("SELECT request_id, milestone FROM selections ORDER BY seq")).all()
    assert [row.request_id for row in stamped] == jobs
    assert [row.milestone for row in stamped] == [1] * 200 + [2] * 200 + [3] * 2


def test_an_export_of_other_selections_is_rewritten_from_the_database(
    export: Callable[[], ExportManifest], engine: Engine, store: ObjectStore, selections: list[uuid.UUID]
) -> None:
    """The same milestone of another database (or after rows were deleted): the database wins."""
    before = export()
    gone = selections[-1]
    with engine.begin() as conn:  # its candidates and selection go with it
        conn.execute(text("DELETE FROM generation_requests WHERE request_id = :id"), {"id": gone})
    after = export()
    assert (before.selections, after.selections) == (PER_MILESTONE, PER_MILESTONE - 1)
    assert after.selections_digest != before.selections_digest
    keys = {
        o.key.removeprefix(export_prefix(MILESTONE) + "/")
        for o in store.list(DATASETS_BUCKET, export_prefix(MILESTONE) + "/")
    }
    assert keys == set(after.files) | {"manifest.json"}  # nothing of the removed selection is left
    assert not any(str(gone) in key for key in keys)
