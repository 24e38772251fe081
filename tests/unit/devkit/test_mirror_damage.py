"""Each damage switch of the mirror generator writes what its log says, read back with Python's own csv
module (RFC 4180) and zipfile, so the pipeline's tests can trust the log's counts."""

from __future__ import annotations

import csv
import math
import unicodedata
import zipfile
from pathlib import Path

import pytest

from devkit.mirror import MAPPING_DIR, MirrorSummary, generate_mirror, main
from devkit.mirror_damage import VS16, ZWJ, Damage

NUMERIC = ("aesthetic score", "motion score", "temporal consistency score", "frame", "fps", "seconds")
CONTROL = {*range(0x00, 0x09), *range(0x0E, 0x20), *range(0x7F, 0xA0)}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> MirrorSummary:
    args = {"rows": 600, "clips": 18, "parts": 3, "corrupt": 0, "image_count": 1, "prompt_rows": 300}
    return generate_mirror(tmp_path_factory.mktemp("damaged"), **args, damages=list(Damage))


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def has_control(text: str) -> bool:
    return any(ord(ch) in CONTROL for ch in text)


def test_csv_files_start_with_a_bom_and_end_lines_in_crlf(mirror: MirrorSummary) -> None:
    for path in (mirror.metadata_csv, mirror.prompts_csv, *mirror.mapping_files):
        data = path.read_bytes()
        assert data.startswith(b"\xef\xbb\xbf") and data.endswith(b"\r\n"), path


def test_text_damage_is_counted_exactly(mirror: MirrorSummary) -> None:
    log = mirror.damage
    rows = read_rows(mirror.metadata_csv)
    assert len(rows) == mirror.rows  # quoted line breaks keep each record whole
    by_video = {row["video"]: row for row in rows}
    assert sum(has_control(row["caption"]) for row in rows) == log.control_caption_rows > 0
    assert sum("\x00" in row["video"] for row in rows) == log.nul_video_rows == 2
    assert all(has_control(by_video[video]["caption"]) for video in log.control_captions)
    assert all(
        '"' in by_video[v]["caption"] and "\r\n" in by_video[v]["caption"] for v in log.newline_captions
    )
    for video in log.format_captions:
        caption = by_video[video]["caption"]
        assert ZWJ in caption and caption.endswith(VS16)
        assert sum(unicodedata.category(ch) == "Cf" for ch in caption) >= 3
    for first, lookalike in log.lookalike_pairs:
        assert first[:11] != lookalike[:11]  # other source videos: only the captions link them
        assert by_video[first]["caption"] != by_video[lookalike]["caption"]
    prompts = read_rows(mirror.prompts_csv)
    assert sum(has_control(row["prompt"]) for row in prompts) == log.control_prompts > 0
    assert sum("\n" in row["prompt"] for row in prompts) == log.newline_prompts > 0


def test_non_finite_numbers_are_counted_exactly(mirror: MirrorSummary) -> None:
    def non_finite(row: dict[str, str]) -> bool:
        values = []
        for column in NUMERIC:
            try:
                values.append(float(row[column]))
            except ValueError:
                continue
        return any(not math.isfinite(value) for value in values)

    assert sum(non_finite(row) for row in read_rows(mirror.metadata_csv)) == mirror.damage.non_finite_rows > 0


def test_conflicting_mappings_and_a_truncated_part(mirror: MirrorSummary) -> None:
    part0 = {row["video"] for row in read_rows(mirror.openvid_dir / MAPPING_DIR / "OpenVid_part0.csv")}
    for video, parts in mirror.damage.conflicting_mappings.items():
        assert parts[0] == "OpenVid_part0" and video in part0 and mirror.clip_parts[video] != 0
        own = read_rows(mirror.openvid_dir / MAPPING_DIR / f"{parts[1]}.csv")
        assert video in {row["video"] for row in own}
    truncated = mirror.openvid_dir / f"{mirror.damage.truncated_part}.zip"
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(truncated)


def test_command_line_switch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--root", str(tmp_path), "--rows", "50", "--clips", "0", "--corrupt", "0", "--images", "0",
            "--damage", "non-finite"]  # fmt: skip
    main(argv)
    assert '"non-finite"' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--root", str(tmp_path), "--damage", "bit-rot"])
