"""The export layout round trip without services: what ``training.export`` writes, ``training.dataset`` reads.

The files are built by the export's own ``split_files`` and written to a folder the way the object
store would hold them; the videos are stand-in bytes (nothing here decodes them).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest

from adfame.repositories.datasets import SnapshotClip
from adfame.repositories.requests import Candidate
from adfame.repositories.selections import SelectionRecord
from training.dataset import ExportCorrupt, fetch_export, read_pairs, read_winners, verify_export
from training.export import is_heldout, selections_digest, split_files
from training.export_layout import ExportManifest, export_uri


def _record(seq: int, chosen: int, prompt: str = "a runner at dawn") -> SelectionRecord:
    request_id = uuid.uuid5(uuid.NAMESPACE_URL, f"request-{seq}")
    candidates = [
        Candidate(i, f"{prompt}, shot {i}", 100 * seq + i, f"acme/{request_id}/{i}.mp4") for i in range(3)
    ]
    return SelectionRecord(seq, request_id, "acme", prompt, 7, 16, 8, 64, 64, chosen, candidates)


def _curated_clip() -> SnapshotClip:
    return SnapshotClip(
        "openvid", "clip/1", "video-1", "waves\non a beach", "waves on a beach", [], None, None, None,
        2.0, 8.0, 16, 64, 64, "train", "snapshots/s1/clips/train/clip_1.mp4", "0" * 64,
    )  # fmt: skip


def _write_export(
    folder: Path, records: list[SelectionRecord], curated: list[SnapshotClip]
) -> ExportManifest:
    """Lay the export out in ``folder`` as it is in the object store; returns its manifest."""
    checksums = {}
    for split, split_records in (("train", records[:-1]), ("heldout", records[-1:])):
        files = split_files(split, split_records, curated if split == "train" else [])
        contents = {**files.lists, **{v.path: f"video {v.key}".encode() for v in files.videos}}
        for path, data in contents.items():
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_bytes(data)
            checksums[path] = hashlib.sha256(data).hexdigest()
    manifest = ExportManifest(
        milestone=1, selection_seq=(records[0].seq, records[-1].seq), selections=len(records),
        selections_digest=selections_digest(records),
        train=len(records) - 1, heldout=1, heldout_share=0.2, split_seed=0, snapshot_id="s1",
        curated_sample=len(curated), base_model="s3://adfame-models/base/tiny-wan", files=checksums,
        uri=export_uri(1),
    )  # fmt: skip
    (folder / "manifest.json").write_bytes(manifest.to_bytes())
    return manifest


@pytest.fixture()
def export(tmp_path: Path) -> Path:
    _write_export(
        tmp_path, [_record(1, chosen=2), _record(2, chosen=0), _record(5, chosen=1)], [_curated_clip()]
    )
    return tmp_path


def test_winners_are_finetrainers_two_files_with_the_curated_sample_last(export: Path) -> None:
    winners = read_winners(export, "train")
    assert [caption for caption, _ in winners] == [
        "a runner at dawn, shot 2",
        "a runner at dawn, shot 0",
        "waves on a beach",  # one caption per line: the newline is gone
    ]
    first = uuid.uuid5(uuid.NAMESPACE_URL, "request-1")
    assert winners[0][1] == export.resolve() / "train" / "videos" / f"{first}_2.mp4"
    assert winners[2][1].name == "curated_openvid_clip_1.mp4" and winners[2][1].is_file()
    assert all(path.is_absolute() and path.is_file() for _, path in winners)
    assert [caption for caption, _ in read_winners(export, "heldout")] == ["a runner at dawn, shot 1"]


def test_pairs_give_each_loser_beside_its_winner_and_never_the_curated_clips(export: Path) -> None:
    pairs = read_pairs(export, "train")
    assert [(p.winner.index, p.loser.index) for p in pairs] == [(2, 0), (2, 1), (0, 1), (0, 2)]
    first = pairs[0]
    assert (first.prompt, first.tenant, first.request_id) == (
        "a runner at dawn",
        "acme",
        str(uuid.uuid5(uuid.NAMESPACE_URL, "request-1")),
    )
    assert (first.winner.seed, first.winner.variation_prompt) == (102, "a runner at dawn, shot 2")
    assert first.loser.video.is_file() and first.loser.video.is_absolute()
    assert len(read_pairs(export, "heldout")) == 2


def test_a_local_folder_is_verified_and_used_in_place(export: Path, tmp_path: Path) -> None:
    assert fetch_export(str(export), cache=tmp_path / "cache") == export
    manifest = verify_export(export)
    assert manifest.milestone == 1 and len(manifest.files) == 3 * 3 + 1 + 2 * 3  # videos, curated clip, lists


def test_an_edited_file_fails_naming_it(export: Path, tmp_path: Path) -> None:
    victim = next((export / "train" / "videos").glob("*_0.mp4"))
    victim.write_bytes(b"something else")
    with pytest.raises(ExportCorrupt, match=victim.name):
        fetch_export(str(export), cache=tmp_path / "cache")


def test_a_missing_file_fails_naming_it(export: Path) -> None:
    (export / "heldout" / "pairs.jsonl").unlink()
    with pytest.raises(ExportCorrupt, match=r"pairs\.jsonl is missing"):
        verify_export(export)


def test_a_manifest_entry_outside_the_export_is_refused(export: Path) -> None:
    manifest = json.loads((export / "manifest.json").read_text())
    manifest["files"]["../outside.txt"] = "0" * 64
    (export / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ExportCorrupt, match="not a path inside the export"):
        verify_export(export)


def test_lists_that_disagree_are_corrupt(export: Path) -> None:
    with (export / "train" / "prompt.txt").open("a") as file:
        file.write("one caption too many\n")
    with pytest.raises(ExportCorrupt, match="4 captions but 3 videos"):
        read_winners(export)


def test_the_held_out_split_is_a_stable_hash_of_the_request_id() -> None:
    ids = [uuid.uuid5(uuid.NAMESPACE_URL, f"r{i}") for i in range(2000)]
    heldout = [rid for rid in ids if is_heldout(rid, 0.2)]
    assert 0.17 < len(heldout) / len(ids) < 0.23
    assert heldout == [rid for rid in ids if is_heldout(str(rid), 0.2)]  # the same for the text form
    assert not any(is_heldout(rid, 0.0) for rid in ids)
    assert set(heldout) <= {rid for rid in ids if is_heldout(rid, 0.5)}  # a larger share only adds


def test_split_files_are_the_same_bytes_every_time() -> None:
    records = [_record(1, chosen=2), _record(2, chosen=0)]
    first, second = split_files("train", records, []), split_files("train", list(records), [])
    assert first == second
    assert first.lists["train/videos.txt"].decode().splitlines() == [
        f"videos/{records[0].request_id}_2.mp4",
        f"videos/{records[1].request_id}_0.mp4",
    ]
