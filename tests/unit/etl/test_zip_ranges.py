"""Ranged zip reads: members come back intact from whole and split parts, damage is caught, and a sparse
selection costs little more than the selected members themselves."""

from __future__ import annotations

import io
import random
import shutil
import zipfile
from pathlib import Path

import pytest

from etl.zip_ranges import (
    MemberNotFoundError,
    PartFile,
    PartNotFoundError,
    ZipCrcError,
    ZipFormatError,
    ZipReadStats,
    read_central_directory,
    read_members,
    resolve_part_files,
)


def _read_all(part: PartFile, names: list[str], stats: ZipReadStats | None = None) -> dict[str, bytes]:
    """Every wanted member's bytes through ``read_members``; the first member without any raises its error."""
    got: dict[str, bytes] = {}
    for result in read_members(part, names, stats=stats):
        if result.error is not None or result.data is None:
            raise result.error or AssertionError(f"{result.name}: no data and no error")
        got[result.name] = result.data
    return got


class RecordingSource:
    """A ``DatasetSource`` over a local folder that records every ranged read."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = root.as_uri()
        self.reads: list[tuple[str, int, int]] = []

    @property
    def bytes_fetched(self) -> int:
        return sum(length for _, _, length in self.reads)

    def list_files(self, prefix: str = "") -> list[str]:
        files = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(f for f in files if f.startswith(prefix))

    def size(self, path: str) -> int:
        return (self.root / path).stat().st_size

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        self.reads.append((path, offset, length))
        with (self.root / path).open("rb") as handle:
            handle.seek(offset)
            return handle.read(length)

    def download(self, path: str, dest_dir: Path) -> Path:
        return Path(shutil.copy(self.root / path, dest_dir))


class _Unseekable(io.RawIOBase):
    """Makes ``zipfile`` write data descriptors after each member, as streaming zippers do."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.buffer += data
        return len(data)


def _payloads(count: int, low: int = 16_000, high: int = 24_000, seed: int = 7) -> dict[str, bytes]:
    rng = random.Random(seed)
    return {f"videos/clip_{i:03d}.mp4": rng.randbytes(rng.randint(low, high)) for i in range(count)}


def _zip_bytes(
    members: dict[str, bytes], compression: int = zipfile.ZIP_STORED, streamed: bool = False
) -> bytes:
    target: io.RawIOBase | io.BytesIO = _Unseekable() if streamed else io.BytesIO()
    with zipfile.ZipFile(target, "w", compression=compression) as archive:  # type: ignore[arg-type]
        for name, data in members.items():
            archive.writestr(name, data)
    return bytes(target.buffer) if isinstance(target, _Unseekable) else target.getvalue()


def _part(tmp_path: Path, data: bytes, name: str = "OpenVid_part1") -> tuple[RecordingSource, PartFile]:
    (tmp_path / f"{name}.zip").write_bytes(data)
    source = RecordingSource(tmp_path)
    return source, resolve_part_files(source, [name])[name]


@pytest.mark.parametrize(
    ("compression", "streamed", "prefix"),
    [
        (zipfile.ZIP_STORED, False, b""),
        (zipfile.ZIP_DEFLATED, False, b""),
        (zipfile.ZIP_DEFLATED, True, b"x" * 300),
    ],
    ids=["stored", "deflated", "deflated-descriptors-prepended"],
)
def test_members_come_back_byte_identical(
    tmp_path: Path, compression: int, streamed: bool, prefix: bytes
) -> None:
    members = _payloads(6, 500, 3000)
    members["videos/text.txt"] = b"compressible " * 400
    source, part = _part(tmp_path, prefix + _zip_bytes(members, compression, streamed))
    wanted = ["videos/clip_004.mp4", "videos/text.txt", "videos/clip_001.mp4"]

    got = _read_all(part, wanted)

    assert got == {name: members[name] for name in wanted}
    assert max(length for _, _, length in source.reads) < part.size


def test_split_part_is_read_across_its_pieces(tmp_path: Path) -> None:
    members = _payloads(8, 1000, 2000)
    data = _zip_bytes(members)
    cuts = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    for suffix, start, end in zip(("aa", "ab", "ac"), cuts, cuts[1:], strict=False):
        (tmp_path / f"OpenVid_part9_part{suffix}").write_bytes(data[start:end])
    source = RecordingSource(tmp_path)

    part = resolve_part_files(source, ["OpenVid_part9.zip"])["OpenVid_part9"]

    assert part.pieces == ("OpenVid_part9_partaa", "OpenVid_part9_partab", "OpenVid_part9_partac")
    assert part.size == len(data)
    assert part.read_range(cuts[1] - 5, cuts[2] - cuts[1] + 10) == data[cuts[1] - 5 : cuts[2] + 5]
    assert _read_all(part, list(members)) == members


def test_resolve_prefers_the_whole_zip_and_names_missing_parts(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "OpenVid_part2.zip").write_bytes(_zip_bytes({"a": b"1"}))
    (tmp_path / "OpenVid_part2_partaa").write_bytes(b"stale piece")
    (tmp_path / "OpenVid_part21.zip").write_bytes(_zip_bytes({"b": b"2"}))
    source = RecordingSource(tmp_path)

    assert resolve_part_files(source, ["OpenVid_part2"])["OpenVid_part2"].pieces == ("sub/OpenVid_part2.zip",)
    assert set(resolve_part_files(source, ["OpenVid_part2", "OpenVid_part5"], missing_ok=True)) == {
        "OpenVid_part2"
    }
    with pytest.raises(PartNotFoundError, match="OpenVid_part5"):
        resolve_part_files(source, ["OpenVid_part5", "OpenVid_part2"])


def test_zip64_end_records_and_extra_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Lowered limits make zipfile write what a part over 4 GiB or 65535 members has: a ZIP64 end record
    # and locator, and member offsets moved into the ZIP64 extra field of the central directory.
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 4096)
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 3)
    members = _payloads(5, 2000, 3000)
    data = _zip_bytes(members)
    assert b"PK\x06\x06" in data[-200:] and b"PK\x06\x07" in data[-200:]
    _, part = _part(tmp_path, data)

    index = read_central_directory(part)

    assert len(index) == 5 and max(m.header_offset for m in index.members.values()) > 4096
    assert _read_all(part, list(members)[2:]) == dict(list(members.items())[2:])


def test_long_zip_comment_needs_a_second_tail_read(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("m", b"payload")
        archive.comment = b"PK\x05\x06 not the end " * 400
    _, part = _part(tmp_path, buffer.getvalue())

    assert _read_all(part, ["m"]) == {"m": b"payload"}


@pytest.mark.parametrize(
    "compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED], ids=["stored", "deflated"]
)
def test_damaged_member_data_is_detected(tmp_path: Path, compression: int) -> None:
    members = {"good.mp4": b"fine " * 200, "bad.mp4": bytes(range(256)) * 8}
    data = bytearray(_zip_bytes(members, compression))
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("bad.mp4")
    data[info.header_offset + 30 + len("bad.mp4") + 10] ^= 0xFF  # a byte inside the member's data
    _, part = _part(tmp_path, bytes(data))

    results = {r.name: r for r in read_members(part, ["good.mp4", "bad.mp4"])}

    assert results["good.mp4"].data == members["good.mp4"]
    assert isinstance(results["bad.mp4"].error, ZipCrcError) and "bad.mp4" in results["bad.mp4"].reason
    with pytest.raises(ZipCrcError, match=r"bad\.mp4"):
        _read_all(part, ["good.mp4", "bad.mp4"])


def test_missing_member_is_named_before_any_member_is_read(tmp_path: Path) -> None:
    _, part = _part(tmp_path, _zip_bytes({"a.mp4": b"x" * 100}))
    stats = ZipReadStats()

    with pytest.raises(MemberNotFoundError, match=r"'nope.mp4' is not a member of zip part 'OpenVid_part1'"):
        _read_all(part, ["a.mp4", "nope.mp4"], stats=stats)
    assert stats.member_bytes == 0
    assert [r.ok for r in read_members(part, ["nope.mp4", "a.mp4"])] == [False, True]


def test_not_a_zip_is_a_format_error(tmp_path: Path) -> None:
    _, part = _part(tmp_path, b"definitely not a zip file" * 100)

    with pytest.raises(ZipFormatError, match="OpenVid_part1"):
        read_central_directory(part)


def test_sparse_selection_fetches_little_more_than_the_selected_members(tmp_path: Path) -> None:
    members = _payloads(80)
    source, part = _part(tmp_path, _zip_bytes(members))
    names = list(members)
    wanted = [*names[3::16], names[40], names[41], names[42]]  # a sparse few and one dense run
    stats = ZipReadStats()

    got = _read_all(part, wanted, stats=stats)

    assert got == {name: members[name] for name in wanted}
    assert stats.selected_compressed_bytes == sum(len(members[n]) for n in wanted)
    assert stats.fetched_bytes == source.bytes_fetched
    assert source.bytes_fetched <= 1.2 * stats.selected_compressed_bytes
    assert stats.fetched_over_parts < 0.15 and stats.parts_bytes == part.size
    member_reads = stats.reads - 2  # the tail and the central directory
    assert member_reads == len(wanted) - 2  # members 40, 41 and 42 came in one read
