"""The mirror generator writes the real layout of the data sets, deterministically, with their flaws."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import subprocess
import zipfile
from pathlib import Path

import imageio_ffmpeg
import pyarrow.parquet as pq
import pytest
from PIL import Image

from devkit.mirror import (
    AD_SIZES,
    ADIMAGENET_PARQUET,
    BRANDS,
    MAPPING_DIR,
    OPENVID_COLUMNS,
    OPENVID_CSV,
    VIDPROM_COLUMNS,
    MirrorSummary,
    generate_mirror,
    main,
    make_caption,
    normalise_caption,
)
from spark_jobs.filter_config import DEFAULT_BRAND_KEYWORDS, FilterConfig

ARGS = {"rows": 1500, "clips": 10, "parts": 3, "seed": 7, "corrupt": 2, "image_count": 6, "prompt_rows": 600}
NUMERIC = ("aesthetic score", "motion score", "temporal consistency score", "frame", "fps", "seconds")


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> MirrorSummary:
    return generate_mirror(tmp_path_factory.mktemp("mirror"), **ARGS)


@pytest.fixture(scope="module")
def rows(mirror: MirrorSummary) -> list[dict[str, str]]:
    with mirror.metadata_csv.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _part_bytes(mirror: MirrorSummary, part: int) -> bytes:
    """A whole zip part: the single file, or its ``_partaa``/``_partab`` pieces concatenated in order."""
    pieces = sorted(mirror.openvid_dir.glob(f"OpenVid_part{part}_part*"))
    whole = mirror.openvid_dir / f"OpenVid_part{part}.zip"
    return whole.read_bytes() if whole.exists() else b"".join(p.read_bytes() for p in pieces)


def _decoded_frames(data: bytes, tmp: Path) -> int | None:
    """Frames ffmpeg decodes from an mp4, or None when it cannot decode it."""
    path = tmp / "clip.mp4"
    path.write_bytes(data)
    result = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-f", "framecrc", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return None
    return sum(1 for line in result.stdout.splitlines() if line and not line.startswith("#"))


def _is_bad(row: dict[str, str]) -> bool:
    if any(not (row[c] or "").strip() for c in ("video", "caption", "camera motion")):
        return True
    for column in NUMERIC:
        try:
            if float(row[column]) < 0:
                return True
        except ValueError:
            return True
    return False


def test_same_seed_same_bytes_other_seed_other_data(mirror: MirrorSummary, tmp_path: Path) -> None:
    again = generate_mirror(tmp_path / "again", **ARGS)
    assert _hashes(again.root) == _hashes(mirror.root)
    other = generate_mirror(
        tmp_path / "other", **{**ARGS, "seed": 8, "clips": 0, "corrupt": 0, "image_count": 1}
    )
    assert other.metadata_csv.read_bytes() != mirror.metadata_csv.read_bytes()


def test_layout_of_the_three_data_sets(mirror: MirrorSummary) -> None:
    openvid = sorted(p.relative_to(mirror.openvid_dir).as_posix() for p in mirror.openvid_dir.rglob("*.*"))
    assert OPENVID_CSV in openvid
    assert [f"{MAPPING_DIR}/OpenVid_part{n}.csv" for n in range(3)] == [p for p in openvid if "mapping" in p]
    assert (mirror.openvid_dir / "OpenVid_part0.zip").is_file()
    assert mirror.split_parts == (2,)
    assert not (mirror.openvid_dir / "OpenVid_part2.zip").exists()
    assert (mirror.openvid_dir / "OpenVid_part2_partaa").is_file()
    assert (mirror.openvid_dir / "OpenVid_part2_partab").is_file()
    assert mirror.prompts_csv == mirror.root / "WenhaoWang/VidProM/VidProM_unique.csv"
    assert mirror.images_parquet == mirror.root / "PeterBrendan/AdImageNet" / ADIMAGENET_PARQUET
    json.dumps(mirror.to_dict())  # the CLI prints it


def test_metadata_has_the_real_columns_and_row_count(
    mirror: MirrorSummary, rows: list[dict[str, str]]
) -> None:
    with mirror.metadata_csv.open(newline="", encoding="utf-8") as handle:
        assert tuple(next(csv.reader(handle))) == OPENVID_COLUMNS
    assert "aesthetic score" in OPENVID_COLUMNS and len(rows) == mirror.rows
    assert re.fullmatch(r"[A-Za-z0-9_-]{11}_\d+\.mp4", rows[0]["video"])
    assert sum(mirror.categories.values()) == mirror.rows
    assert {"brand", "sportswear", "sports", "fashion", "everyday", "nature"} <= set(mirror.categories)


def test_duplicates_differ_only_in_case_whitespace_or_punctuation(
    mirror: MirrorSummary, rows: list[dict[str, str]]
) -> None:
    first: dict[str, dict[str, str]] = {}
    pairs = []
    for row in rows:
        if not row["caption"]:
            continue
        key = normalise_caption(row["caption"])
        if key in first:
            pairs.append((first[key], row))
        else:
            first[key] = row
    assert len(pairs) == mirror.duplicate_rows > 0
    assert any(a["caption"] != b["caption"] for a, b in pairs)
    assert any(a["video"] == b["video"] for a, b in pairs)
    assert any(a["video"] != b["video"] for a, b in pairs)


def test_bad_rows_are_present_and_counted(mirror: MirrorSummary, rows: list[dict[str, str]]) -> None:
    bad = [row for row in rows if _is_bad(row)]
    assert len(bad) == mirror.bad_rows > 0
    values = {v for row in bad for v in row.values()}
    assert "" in values and ({"n/a", "abc", "1.2.3"} & values) and ({"-3.2", "-1.5", "-4.0"} & values)


def test_zip_parts_hold_exactly_the_mapped_clips(mirror: MirrorSummary) -> None:
    seen: list[str] = []
    for part in range(mirror.parts):
        archive = zipfile.ZipFile(io.BytesIO(_part_bytes(mirror, part)))
        assert archive.testzip() is None
        members = [i for i in archive.infolist() if not i.is_dir()]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in members)
        with (mirror.openvid_dir / MAPPING_DIR / f"OpenVid_part{part}.csv").open(newline="") as handle:
            mapping = list(csv.DictReader(handle))
        assert sorted(i.filename for i in members) == sorted(m["video_path"] for m in mapping)
        assert all(m["video_path"] == f"OpenVid_part{part}/{m['video']}" for m in mapping)
        assert all(mirror.clip_parts[m["video"]] == part for m in mapping)
        seen += [m["video"] for m in mapping]
    assert sorted(seen) == sorted(mirror.clip_videos) and len(seen) == mirror.clips


def test_clips_decode_and_match_their_metadata_except_the_corrupt_ones(
    mirror: MirrorSummary, rows: list[dict[str, str]], tmp_path: Path
) -> None:
    by_video = {row["video"]: row for row in rows if row["video"] in mirror.clip_parts}
    assert set(by_video) == set(mirror.clip_videos)
    assert len(mirror.corrupt_clips) == 2 and set(mirror.corrupt_clips) <= set(mirror.brand_clips)
    for part in range(mirror.parts):
        archive = zipfile.ZipFile(io.BytesIO(_part_bytes(mirror, part)))
        for info in archive.infolist():
            if info.is_dir():
                continue
            video = info.filename.rsplit("/", 1)[1]
            frames = _decoded_frames(archive.read(info), tmp_path)
            row = by_video[video]
            if video in mirror.corrupt_clips:
                assert frames is None, f"{video} should not decode"
                continue
            assert frames == int(row["frame"]), video
            assert 8 <= int(row["fps"]) <= 24
            assert float(row["seconds"]) == pytest.approx(int(row["frame"]) / int(row["fps"]), abs=1e-3)


def test_brand_clips_pass_the_default_filters_and_the_others_do_not(
    mirror: MirrorSummary, rows: list[dict[str, str]]
) -> None:
    filters = FilterConfig()
    pattern = re.compile(r"\b(" + "|".join(re.escape(k) for k in DEFAULT_BRAND_KEYWORDS) + r")\b")

    def passes(row: dict[str, str]) -> bool:
        return (
            bool(pattern.search(row["caption"].lower()))
            and filters.min_seconds <= float(row["seconds"]) <= filters.max_seconds
            and float(row["aesthetic score"]) >= filters.min_aesthetic
            and float(row["motion score"]) >= filters.min_motion
            and float(row["temporal consistency score"]) >= filters.min_temporal_consistency
        )

    clip_rows = {row["video"]: row for row in rows if row["video"] in mirror.clip_parts}
    assert len(mirror.brand_clips) == 8  # 75 % of 10, rounded up
    for video, row in clip_rows.items():
        assert passes(row) == (video in mirror.brand_clips), video
        if video in mirror.brand_clips:
            assert any(brand in row["caption"] for brand in BRANDS)


@pytest.mark.parametrize("category", ["everyday", "nature"])
def test_non_brand_captions_never_match_a_brand_keyword(category: str) -> None:
    import random

    rng = random.Random(1)
    pattern = re.compile(r"\b(" + "|".join(re.escape(k) for k in DEFAULT_BRAND_KEYWORDS) + r")\b")
    for _ in range(500):
        caption = make_caption(rng, category)
        assert not pattern.search(caption.lower()), caption


def test_vidprom_prompts(mirror: MirrorSummary) -> None:
    with mirror.prompts_csv.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == VIDPROM_COLUMNS
        prompts = list(reader)
    assert len(prompts) == mirror.prompt_rows == 600
    scores = VIDPROM_COLUMNS[3:]
    bad = toxic = 0
    for row in prompts:
        try:
            values = [float(row[c]) for c in scores]
        except ValueError:
            bad += 1
            continue
        if not row["prompt"] or not all(0 <= v <= 1 for v in values):
            bad += 1
        elif values[0] >= 0.45:
            toxic += 1
    assert bad == mirror.bad_prompt_rows > 0
    assert 0 < toxic <= mirror.toxic_prompts
    assert len({row["uuid"] for row in prompts}) == len(prompts)


def test_adimagenet_parquet_has_real_ad_images(mirror: MirrorSummary) -> None:
    table = pq.read_table(mirror.images_parquet)
    assert table.num_rows == mirror.images == 6
    assert str(table.schema.field("image").type) == "struct<bytes: binary, path: string>"
    features = json.loads(table.schema.metadata[b"huggingface"])["info"]["features"]
    assert features["image"] == {"_type": "Image"}
    for row in table.to_pylist():
        image = Image.open(io.BytesIO(row["image"]["bytes"]))
        image.load()
        assert image.size in AD_SIZES
        assert row["dimensions"] == f"{image.size[0]}x{image.size[1]}"
        assert row["text"].strip()


def test_broken_column_variant_and_stale_parts_removed(tmp_path: Path) -> None:
    generate_mirror(tmp_path, rows=40, clips=0, parts=4, corrupt=0, image_count=1)
    summary = generate_mirror(
        tmp_path, rows=40, clips=0, parts=2, corrupt=0, image_count=1, broken_column=True
    )
    with summary.metadata_csv.open(newline="") as handle:
        header = next(csv.reader(handle))
    assert "duration" in header and "seconds" not in header
    assert summary.broken_column == "seconds->duration"
    assert sorted(p.name for p in summary.openvid_dir.glob("OpenVid_part*")) == [
        "OpenVid_part0.zip",
        "OpenVid_part1.zip",
    ]
    assert sorted(p.name for p in (summary.openvid_dir / MAPPING_DIR).iterdir()) == [
        "OpenVid_part0.csv",
        "OpenVid_part1.csv",
    ]


@pytest.mark.parametrize(
    "bad", [{"rows": 0}, {"rows": 5, "clips": 6}, {"clips": 2, "corrupt": 3}, {"parts": 0}]
)
def test_impossible_sizes_are_refused(tmp_path: Path, bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        generate_mirror(tmp_path, **{"rows": 10, "clips": 0, "corrupt": 0, **bad})


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--root", str(tmp_path), "--rows", "30", "--clips", "0", "--parts", "1", "--corrupt", "0"])
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == 30 and report["parts"] == 1 and report["clips"] == 0
    assert Path(report["metadata_csv"]).is_file()
