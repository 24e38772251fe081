"""The extraction step on a small mirror: good clips resized and checksummed, bad ones quarantined and
counted, missing ones reported, and only the selected members' bytes fetched."""

from __future__ import annotations

import hashlib
import io
import logging
import random
import re
import zipfile
from pathlib import Path

import pytest
from media_fixtures import garble, make_clip

from etl.config import MediaConfig
from etl.extract import CORRUPT, MISSING, OK, extract_clips
from etl.media import probe_video
from etl.sources import LocalSource


def _zip(members: dict[str, bytes], compression: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Part 1 whole (stored, with unselected filler), part 2 split in two pieces (deflated, one member
    damaged after zipping)."""
    root = tmp_path_factory.mktemp("mirror")
    good = make_clip(root / "clip.mp4").read_bytes()
    rng = random.Random(3)
    part1 = {f"OpenVid_part1/filler_{i:02d}.mp4": rng.randbytes(8000) for i in range(30)}
    part1 |= {f"OpenVid_part1/good_{i}.mp4": good for i in range(3)}
    part1 |= {"OpenVid_part1/garbled.mp4": garble(good), "OpenVid_part1/junk.mp4": b"not a video" * 300}
    (root / "OpenVid_part1.zip").write_bytes(_zip(part1, zipfile.ZIP_STORED))

    part2 = _zip({"p2/good_a.mp4": good, "p2/crc.mp4": good, "p2/good_b.mp4": good}, zipfile.ZIP_DEFLATED)
    damaged = bytearray(part2)
    info = zipfile.ZipFile(io.BytesIO(part2)).getinfo("p2/crc.mp4")
    damaged[info.header_offset + 30 + len("p2/crc.mp4") + 50] ^= 0xFF
    middle = len(damaged) // 2
    (root / "OpenVid_part2_partaa").write_bytes(damaged[:middle])
    (root / "OpenVid_part2_partab").write_bytes(damaged[middle:])
    return root


RECORDS = [
    {"video": "good_0.mp4", "part": "OpenVid_part1", "video_path": "OpenVid_part1/good_0.mp4"},
    {"video": "good_2.mp4", "part": "OpenVid_part1", "video_path": "OpenVid_part1/good_2.mp4"},
    {"video": "garbled.mp4", "part": "OpenVid_part1", "video_path": "OpenVid_part1/garbled.mp4"},
    {"video": "junk.mp4", "part": "OpenVid_part1", "video_path": "OpenVid_part1/junk.mp4"},
    {"video": "gone.mp4", "part": "OpenVid_part1", "video_path": "OpenVid_part1/gone.mp4"},
    {"video": "good_a.mp4", "part": "OpenVid_part2", "video_path": "p2/good_a.mp4"},
    {"video": "crc.mp4", "part": "OpenVid_part2", "video_path": "p2/crc.mp4"},
    {"video": "good_b.mp4", "part": "OpenVid_part2.zip", "video_path": "p2/good_b.mp4"},
    {"video": "elsewhere.mp4", "part": "OpenVid_part7", "video_path": "x/elsewhere.mp4"},
    {
        "video": "good_0.mp4",
        "part": "OpenVid_part1",
        "video_path": "OpenVid_part1/good_0.mp4",
    },  # listed twice
]


def test_extraction_verifies_resizes_quarantines_and_counts(
    mirror: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = LocalSource(mirror)
    caplog.set_level(logging.INFO, logger="etl.extract")

    result = extract_clips(
        RECORDS, source, tmp_path, MediaConfig(video_height=32, workers=2), progress_every=2
    )

    status = {row.video: row.status for row in result.rows}
    assert [row.video for row in result.rows] == [r["video"] for r in RECORDS[:-1]]
    assert status == {
        "good_0.mp4": OK,
        "good_2.mp4": OK,
        "garbled.mp4": CORRUPT,
        "junk.mp4": CORRUPT,
        "gone.mp4": MISSING,
        "good_a.mp4": OK,
        "crc.mp4": CORRUPT,
        "good_b.mp4": OK,
        "elsewhere.mp4": MISSING,
    }
    for row in result.ok_rows:
        local = Path(row.local_path or "")
        assert local == tmp_path / "clips" / row.video
        assert (
            row.sha256 == hashlib.sha256(local.read_bytes()).hexdigest() and row.bytes == local.stat().st_size
        )
        assert (row.height, row.width % 2, row.frames, row.fps, row.seconds) == (32, 0, 12, 8.0, 1.5)
        assert probe_video(local).height == 32

    quarantine = tmp_path / "quarantine"
    assert (quarantine / "garbled.mp4").exists() and (quarantine / "junk.mp4").exists()
    assert "moov atom not found" in (quarantine / "junk.mp4.reason.txt").read_text()
    assert re.search(r"CRC-32|deflate stream broken", (quarantine / "crc.mp4.reason.txt").read_text())
    reasons = {row.video: row.reason for row in result.rows}
    assert "'OpenVid_part1/gone.mp4' is not a member of zip part 'OpenVid_part1'" in reasons["gone.mp4"]
    assert "OpenVid_part7" in reasons["elsewhere.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clips", "quarantine"]  # temp files cleaned up

    stats = result.stats
    assert (stats.clips_ok, stats.clips_corrupt, stats.clips_missing, stats.parts) == (4, 3, 2, 2)
    assert stats.bytes_fetched == source.bytes_fetched == stats.directory_bytes + stats.member_bytes
    parts_size = sum(p.stat().st_size for p in mirror.glob("OpenVid_part*"))
    assert stats.parts_bytes == parts_size and stats.bytes_fetched < parts_size / 3
    assert stats.as_dict()["clips_corrupt"] == 3 and stats.seconds > 0
    assert len(result.to_frame()) == 9

    messages = caplog.text
    assert (
        "OpenVid_part1: 4/5 clips" in messages
        and "OpenVid_part1: 5/5 clips, 2 corrupt, 1 missing" in messages
    )
    assert "OpenVid_part2: 3/3 clips, 1 corrupt, 0 missing" in messages


def test_records_without_a_member_name_are_rejected(mirror: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="video_path"):
        extract_clips([{"video": "a.mp4", "part": "OpenVid_part1"}], LocalSource(mirror), tmp_path)


def test_a_clip_mapped_to_several_parts_is_found_in_the_one_holding_it(mirror: Path, tmp_path: Path) -> None:
    def located(video: str, *locations: tuple[str, str]) -> dict[str, object]:
        (part, path), *_ = locations
        spots = [{"part": p, "video_path": v} for p, v in locations]
        return {"video": video, "part": part, "video_path": path, "locations": spots}

    records = [
        # listed in part 1 first (as curation sorts parts), held by part 2
        located(
            "good_a.mp4", ("OpenVid_part1", "OpenVid_part1/good_a.mp4"), ("OpenVid_part2", "p2/good_a.mp4")
        ),
        # its first part is not in the source at all
        located(
            "good_1.mp4", ("OpenVid_part0", "p0/good_1.mp4"), ("OpenVid_part1", "OpenVid_part1/good_1.mp4")
        ),
        # in none of its parts
        located(
            "nowhere.mp4", ("OpenVid_part1", "OpenVid_part1/nowhere.mp4"), ("OpenVid_part2", "p2/nowhere.mp4")
        ),
    ]
    result = extract_clips(records, LocalSource(mirror), tmp_path, MediaConfig(video_height=32, workers=2))

    rows = {row.video: row for row in result.rows}
    assert [rows[v].status for v in ("good_a.mp4", "good_1.mp4", "nowhere.mp4")] == [OK, OK, MISSING]
    assert (rows["good_a.mp4"].part, rows["good_a.mp4"].video_path) == ("OpenVid_part2", "p2/good_a.mp4")
    assert rows["good_a.mp4"].reason.startswith("found in OpenVid_part2; not in OpenVid_part1: ")
    assert rows["nowhere.mp4"].reason.startswith("in none of its mapped parts: OpenVid_part1: ")
    assert "OpenVid_part2: 'p2/nowhere.mp4' is not a member" in rows["nowhere.mp4"].reason
    stats = result.stats
    assert (stats.clips_ok, stats.clips_missing, stats.clips_found_elsewhere) == (2, 1, 2)
    parts_size = sum(p.stat().st_size for p in mirror.glob("OpenVid_part*"))
    assert stats.parts == 2 and stats.parts_bytes == parts_size  # part 1, read in both rounds, counts once
    assert stats.part_problems == {
        "OpenVid_part0": {
            "status": MISSING,
            "reason": "zip part 'OpenVid_part0' not found in the source",
            "clips": 1,
        }
    }


def test_an_unreadable_part_is_reported_with_its_clips(mirror: Path, tmp_path: Path) -> None:
    whole = (mirror / "OpenVid_part1.zip").read_bytes()
    truncated = tmp_path / "source"
    truncated.mkdir()
    (truncated / "OpenVid_part1.zip").write_bytes(whole[: len(whole) * 3 // 5])  # the directory is gone
    records = RECORDS[:4]
    result = extract_clips(records, LocalSource(truncated), tmp_path / "out", MediaConfig(video_height=32))

    assert {row.status for row in result.rows} == {CORRUPT}
    (problem,) = result.stats.part_problems.values()
    assert problem["status"] == CORRUPT and problem["clips"] == 4
    assert problem["reason"].startswith("part directory unreadable: ")
    assert result.stats.as_dict()["part_problems"]["OpenVid_part1"] == problem
