"""Selected members out of huge remote zip parts, through ranged reads only.

OpenVid-1M ships its clips in zip parts of tens of GB (``OpenVid_part{N}.zip``, some split into byte
pieces ``OpenVid_part{N}_partaa``, ``_partab``, ... that concatenate into one zip); a night needs a few
clips of each. So a part is read like a random-access file: its tail (End Of Central Directory, with the
ZIP64 locator and record), then its central directory, then for each wanted member only its local
header and its data. Members lying close together are fetched in one read, as long as the bytes skipped
between them stay small against the bytes wanted, so what is fetched stays close to the compressed size
of the selected members. Stored and deflated members are supported; every member's CRC-32 is checked.
"""

from __future__ import annotations

import re
import struct
import zlib
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from etl.sources import DatasetSource, SourceError

# Record signatures and fixed sizes (PKWARE APPNOTE 4.3).
_EOCD_SIG = b"PK\x05\x06"
_EOCD_SIZE = 22
_ZIP64_LOCATOR_SIG = b"PK\x06\x07"
_ZIP64_LOCATOR_SIZE = 20
_ZIP64_EOCD_SIG = b"PK\x06\x06"
_ZIP64_EOCD_SIZE = 56
_CENTRAL_SIG = b"PK\x01\x02"
_CENTRAL_SIZE = 46
_LOCAL_SIG = b"PK\x03\x04"
_LOCAL_SIZE = 30
_ZIP64_EXTRA_ID = 0x0001
_MAX_COMMENT = 0xFFFF

STORED = 0
DEFLATED = 8

DEFAULT_GAP = 64 * 1024  # bytes that may be skipped over inside one read
DEFAULT_MAX_WASTE = 0.1  # ... but at most this share of the wanted bytes of that read
DEFAULT_MAX_READ = 64 * 1024 * 1024  # one read never grows past this (unless one member is larger)
_TAIL_GUESS = 1024  # first tail read: enough for EOCD + ZIP64 records when the zip comment is short


class ZipFormatError(ValueError):
    """The bytes are not a zip this module can read (bad signature, encrypted, unknown method)."""


class ZipCrcError(ZipFormatError):
    """A member's data does not match its CRC-32 or its declared size: the part is damaged."""


class MemberNotFoundError(KeyError):
    """A wanted member is not in the part's central directory."""

    def __init__(self, part: str, member: str) -> None:
        super().__init__(f"{member!r} is not a member of zip part {part!r}")
        self.part = part
        self.member = member

    def __str__(self) -> str:  # KeyError would show the repr of the whole message
        return str(self.args[0])


class PartNotFoundError(KeyError):
    """No ``<part>.zip`` nor ``<part>_part??`` pieces exist in the source."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class ZipMember:
    """One central-directory entry: where a member's local header starts and how its data is stored."""

    name: str
    header_offset: int
    compressed_size: int
    uncompressed_size: int
    method: int
    crc32: int
    flags: int


@dataclass(frozen=True)
class ZipIndex:
    """A part's member index and where its central directory starts (the end of the last member)."""

    part: str
    members: dict[str, ZipMember]
    directory_offset: int

    def __contains__(self, name: object) -> bool:
        return name in self.members

    def __getitem__(self, name: str) -> ZipMember:
        try:
            return self.members[name]
        except KeyError:
            raise MemberNotFoundError(self.part, name) from None

    def __len__(self) -> int:
        return len(self.members)


@dataclass
class ZipReadStats:
    """Bytes fetched by ranged reads, split by purpose, against what was wanted (for the benchmark)."""

    directory_bytes: int = 0  # tail, ZIP64 records and central directories
    member_bytes: int = 0  # local headers, member data and any gaps read over
    selected_compressed_bytes: int = 0  # compressed size of the members asked for and found
    parts_bytes: int = 0  # total size of the parts whose directory was read
    parts: int = 0
    members: int = 0
    reads: int = 0

    @property
    def fetched_bytes(self) -> int:
        return self.directory_bytes + self.member_bytes

    @property
    def fetched_over_selected(self) -> float:
        """Goal: at most 1.2 (directory overhead and gaps stay small against the clips)."""
        return self.fetched_bytes / self.selected_compressed_bytes if self.selected_compressed_bytes else 0.0

    @property
    def fetched_over_parts(self) -> float:
        """Share of the touched parts that was actually transferred."""
        return self.fetched_bytes / self.parts_bytes if self.parts_bytes else 0.0

    def add(self, other: ZipReadStats) -> None:
        """Fold in another part's statistics (each part is read by one thread with its own stats)."""
        for name in (
            "directory_bytes",
            "member_bytes",
            "selected_compressed_bytes",
            "parts_bytes",
            "parts",
            "members",
            "reads",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(frozen=True)
class MemberRead:
    """The outcome for one wanted member: its bytes, or why there are none (missing, damaged)."""

    name: str
    data: bytes | None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def reason(self) -> str:
        """Why there are no bytes (empty when there are)."""
        return str(self.error) if self.error is not None else ""


@dataclass(frozen=True)
class PartFile:
    """One zip part as a single random-access file, whether stored whole or as ordered byte pieces."""

    source: DatasetSource
    name: str
    pieces: tuple[str, ...]
    piece_sizes: tuple[int, ...]
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.pieces or len(self.pieces) != len(self.piece_sizes):
            raise ValueError(f"part {self.name!r} needs one size per piece, got {self.pieces}")
        starts, total = [], 0
        for size in self.piece_sizes:
            starts.append(total)
            total += size
        object.__setattr__(self, "_starts", tuple(starts))

    @property
    def size(self) -> int:
        return sum(self.piece_sizes)

    def read_range(self, offset: int, length: int) -> bytes:
        """Exactly ``length`` bytes from ``offset``, reading across piece boundaries when needed."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"range {offset}+{length} is outside part {self.name!r} of {self.size} bytes")
        chunks: list[bytes] = []
        position, end = offset, offset + length
        for piece, start, size in zip(self.pieces, self._starts, self.piece_sizes, strict=True):
            if position >= end:
                break
            if position >= start + size:
                continue
            take = min(end, start + size) - position
            chunk = self.source.read_range(piece, position - start, take)
            if len(chunk) != take:
                raise SourceError(f"{self.source.uri}: short read of {piece} ({len(chunk)} of {take} bytes)")
            chunks.append(chunk)
            position += take
        return b"".join(chunks)


def normalise_part_name(part: str) -> str:
    """``OpenVid_part3``, ``OpenVid_part3.zip`` and ``data/OpenVid_part3.zip`` all name ``OpenVid_part3``."""
    name = part.rsplit("/", 1)[-1]
    return name[: -len(".zip")] if name.endswith(".zip") else name


def resolve_part_files(
    source: DatasetSource, part_names: Iterable[str], *, missing_ok: bool = False
) -> dict[str, PartFile]:
    """Find each part as ``<part>.zip`` or as its ``<part>_part??`` pieces (in suffix order) by listing.

    A whole ``.zip`` wins over pieces. Missing parts raise ``PartNotFoundError`` naming all of them,
    or are left out of the result with ``missing_ok``.
    """
    wanted = sorted({normalise_part_name(p) for p in part_names})
    if not wanted:
        return {}
    listing = source.list_files("")
    found: dict[str, PartFile] = {}
    for part in wanted:
        pieces = _part_pieces(part, listing)
        if pieces:
            found[part] = PartFile(source, part, tuple(pieces), tuple(source.size(p) for p in pieces))
    missing = [p for p in wanted if p not in found]
    if missing and not missing_ok:
        raise PartNotFoundError(f"zip parts not found in {source.uri}: {', '.join(missing)}")
    return found


def _part_pieces(part: str, listing: list[str]) -> list[str]:
    whole = re.compile(rf"(^|/){re.escape(part)}\.zip$")
    piece = re.compile(rf"(^|/){re.escape(part)}_part([a-z]{{2}})$")
    wholes = sorted(p for p in listing if whole.search(p))
    if wholes:
        return wholes[:1]
    return sorted((p for p in listing if piece.search(p)), key=lambda p: (p.rsplit("/", 1)[0], p))


def read_central_directory(part: PartFile, stats: ZipReadStats | None = None) -> ZipIndex:
    """The part's member index (name -> entry), from its tail and central directory only."""
    stats = stats if stats is not None else ZipReadStats()
    stats.parts += 1
    stats.parts_bytes += part.size

    def fetch(offset: int, length: int) -> bytes:
        stats.directory_bytes += length
        stats.reads += 1
        return part.read_range(offset, length)

    tail_start = max(0, part.size - _TAIL_GUESS)
    tail = fetch(tail_start, part.size - tail_start)
    eocd_at = _find_eocd(tail)
    if eocd_at is None and tail_start > 0:
        tail_start = max(0, part.size - (_EOCD_SIZE + _MAX_COMMENT + _ZIP64_LOCATOR_SIZE + _ZIP64_EOCD_SIZE))
        tail = fetch(tail_start, part.size - tail_start)
        eocd_at = _find_eocd(tail)
    if eocd_at is None:
        raise ZipFormatError(f"part {part.name!r}: no end of central directory record (not a zip?)")

    (_, disk, _, _, entries, cd_size, cd_offset, _) = struct.unpack_from("<4s4H2LH", tail, eocd_at)
    if disk != 0:
        raise ZipFormatError(f"part {part.name!r}: multi-disk zips are not supported")
    cd_end = tail_start + eocd_at  # where the directory really ends (before any ZIP64 records)
    locator_at = eocd_at - _ZIP64_LOCATOR_SIZE
    if locator_at >= 0 and tail[locator_at : locator_at + 4] == _ZIP64_LOCATOR_SIG:
        (record_offset,) = struct.unpack_from("<Q", tail, locator_at + 8)
        record = _slice_or_fetch(tail, tail_start, record_offset, _ZIP64_EOCD_SIZE, fetch)
        if record[:4] != _ZIP64_EOCD_SIG:
            raise ZipFormatError(f"part {part.name!r}: bad ZIP64 end of central directory record")
        entries, cd_size, cd_offset = struct.unpack_from("<3Q", record, 32)
        cd_end = record_offset
    # Data prepended to the archive shifts every offset the directory declares; measure the shift.
    shift = cd_end - (cd_offset + cd_size)
    if shift < 0:
        raise ZipFormatError(f"part {part.name!r}: central directory does not fit in {part.size} bytes")
    directory = _slice_or_fetch(tail, tail_start, cd_offset + shift, cd_size, fetch)
    members = _parse_central_directory(directory, entries, shift, part.name)
    return ZipIndex(part.name, members, cd_offset + shift)


def _find_eocd(tail: bytes) -> int | None:
    """Last EOCD signature whose comment length runs exactly to the end (a signature in a comment won't)."""
    at = tail.rfind(_EOCD_SIG)
    while at >= 0:
        if at + _EOCD_SIZE <= len(tail):
            (comment_length,) = struct.unpack_from("<H", tail, at + 20)
            if at + _EOCD_SIZE + comment_length == len(tail):
                return at
        at = tail.rfind(_EOCD_SIG, 0, at)
    return None


def _slice_or_fetch(
    tail: bytes, tail_start: int, offset: int, length: int, fetch: Callable[[int, int], bytes]
) -> bytes:
    """Reuse bytes the tail read already holds (small zips) instead of fetching them twice."""
    if offset >= tail_start and offset + length <= tail_start + len(tail):
        return tail[offset - tail_start : offset - tail_start + length]
    return fetch(offset, length)


def _parse_central_directory(data: bytes, entries: int, shift: int, part: str) -> dict[str, ZipMember]:
    members: dict[str, ZipMember] = {}
    at = 0
    for _ in range(entries):
        if data[at : at + 4] != _CENTRAL_SIG or at + _CENTRAL_SIZE > len(data):
            raise ZipFormatError(f"part {part!r}: bad central directory entry at directory offset {at}")
        flags, method = struct.unpack_from("<2H", data, at + 8)
        crc, csize, usize, name_len, extra_len, comment_len = struct.unpack_from("<3L3H", data, at + 16)
        (offset,) = struct.unpack_from("<L", data, at + 42)
        name_bytes = data[at + _CENTRAL_SIZE : at + _CENTRAL_SIZE + name_len]
        extra = data[at + _CENTRAL_SIZE + name_len : at + _CENTRAL_SIZE + name_len + extra_len]
        usize, csize, offset = _apply_zip64_extra(extra, usize, csize, offset)
        name = name_bytes.decode("utf-8" if flags & 0x800 else "cp437")
        members[name] = ZipMember(name, offset + shift, csize, usize, method, crc, flags)
        at += _CENTRAL_SIZE + name_len + extra_len + comment_len
    return members


def _apply_zip64_extra(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    """Sizes and offset saturated at 0xFFFFFFFF live in the ZIP64 extra field, in this fixed order."""
    at = 0
    while at + 4 <= len(extra):
        header_id, size = struct.unpack_from("<2H", extra, at)
        if header_id == _ZIP64_EXTRA_ID:
            values = iter(struct.unpack_from(f"<{size // 8}Q", extra, at + 4))
            if usize == 0xFFFFFFFF:
                usize = next(values)
            if csize == 0xFFFFFFFF:
                csize = next(values)
            if offset == 0xFFFFFFFF:
                offset = next(values)
            break
        at += 4 + size
    return usize, csize, offset


@dataclass(frozen=True)
class _Span:
    """Bytes of one member on disk: from its local header up to the next record (data descriptor included)."""

    member: ZipMember
    start: int
    end: int


def _member_spans(index: ZipIndex, wanted: list[ZipMember]) -> list[_Span]:
    """A member ends where the next record begins: the next local header, or the central directory."""
    starts = sorted({m.header_offset for m in index.members.values()} | {index.directory_offset})
    spans = []
    for member in wanted:
        following = bisect_right(starts, member.header_offset)
        end = starts[following] if following < len(starts) else member.header_offset
        spans.append(_Span(member, member.header_offset, end))
    return sorted(spans, key=lambda s: s.start)


def _plan_reads(
    spans: list[_Span], *, gap: int, max_waste: float, max_read: int
) -> list[tuple[int, int, list[_Span]]]:
    """Group spans (sorted by offset) into reads ``(start, end, spans)``.

    Two neighbours share a read when the bytes between them are at most ``gap`` and the bytes skipped in
    the whole read stay within ``max_waste`` of the bytes wanted, so a dense selection costs few requests
    and a sparse one never drags in unwanted clips.
    """
    reads: list[tuple[int, int, list[_Span]]] = []
    wanted = skipped = 0
    for span in spans:
        if reads:
            start, end, group = reads[-1]
            between = max(0, span.start - end)
            size = span.end - start
            if (
                between <= gap
                and skipped + between <= max_waste * (wanted + span.end - span.start)
                and size <= max_read
            ):
                reads[-1] = (start, max(end, span.end), [*group, span])
                wanted += span.end - span.start
                skipped += between
                continue
        reads.append((span.start, span.end, [span]))
        wanted, skipped = span.end - span.start, 0
    return reads


def read_members(
    part: PartFile,
    names: Iterable[str],
    *,
    index: ZipIndex | None = None,
    stats: ZipReadStats | None = None,
    gap: int = DEFAULT_GAP,
    max_waste: float = DEFAULT_MAX_WASTE,
    max_read: int = DEFAULT_MAX_READ,
) -> Iterator[MemberRead]:
    """Each wanted member's bytes (checked against its CRC-32), or the reason it has none.

    One missing or damaged member never stops the others, so a caller can quarantine it and go on;
    missing members come first, then the others in part order. Source failures still raise.
    """
    stats = stats if stats is not None else ZipReadStats()
    index = index if index is not None else read_central_directory(part, stats)
    wanted_names = list(dict.fromkeys(names))
    for name in wanted_names:
        if name not in index:
            yield MemberRead(name, None, MemberNotFoundError(part.name, name))
    found = [index[n] for n in wanted_names if n in index]
    stats.selected_compressed_bytes += sum(m.compressed_size for m in found)
    spans = _member_spans(index, found)
    for start, end, group in _plan_reads(spans, gap=gap, max_waste=max_waste, max_read=max_read):
        if end > part.size or end <= start:
            for span in group:
                error = f"member {span.member.name!r} of part {part.name!r}: offset outside the part"
                yield MemberRead(span.member.name, None, ZipFormatError(error))
            continue
        buffer = part.read_range(start, end - start)
        stats.member_bytes += end - start
        stats.reads += 1
        for span in group:
            stats.members += 1
            yield _decode_member(part, span.member, buffer, start, stats)


def _decode_member(
    part: PartFile, member: ZipMember, buffer: bytes, buffer_start: int, stats: ZipReadStats
) -> MemberRead:
    """Parse the local header inside the read buffer, then inflate (if needed) and verify the data."""
    try:
        if member.flags & 0x1:
            raise ZipFormatError(f"member {member.name!r} of part {part.name!r} is encrypted")
        local = member.header_offset - buffer_start
        header = buffer[local : local + _LOCAL_SIZE]
        if len(header) < _LOCAL_SIZE or header[:4] != _LOCAL_SIG:
            raise ZipFormatError(f"member {member.name!r} of part {part.name!r}: bad local header")
        name_len, extra_len = struct.unpack_from("<2H", header, 26)
        data_at = local + _LOCAL_SIZE + name_len + extra_len
        raw = buffer[data_at : data_at + member.compressed_size]
        if len(raw) < member.compressed_size:  # the local extra field was longer than the gap allowed
            absolute = buffer_start + data_at
            raw = part.read_range(absolute, member.compressed_size)
            stats.member_bytes += member.compressed_size
            stats.reads += 1
        data = _inflate(part.name, member, raw)
    except ZipFormatError as error:  # ZipCrcError included
        return MemberRead(member.name, None, error)
    except ValueError as error:  # an offset or size in the directory points outside the part
        return MemberRead(
            member.name, None, ZipFormatError(f"member {member.name!r} of part {part.name!r}: {error}")
        )
    return MemberRead(member.name, data)


def _inflate(part: str, member: ZipMember, raw: bytes) -> bytes:
    if member.method == STORED:
        data = raw
    elif member.method == DEFLATED:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            data = inflater.decompress(raw) + inflater.flush()
        except zlib.error as error:
            raise ZipCrcError(
                f"member {member.name!r} of part {part!r}: deflate stream broken: {error}"
            ) from error
    else:
        raise ZipFormatError(
            f"member {member.name!r} of part {part!r}: compression method {member.method} "
            "is not supported (stored and deflate only)"
        )
    if len(data) != member.uncompressed_size:
        raise ZipCrcError(
            f"member {member.name!r} of part {part!r}: {len(data)} bytes, "
            f"directory says {member.uncompressed_size}"
        )
    crc = zlib.crc32(data)
    if crc != member.crc32:
        raise ZipCrcError(
            f"member {member.name!r} of part {part!r}: CRC-32 {crc:08x}, directory says {member.crc32:08x}"
        )
    return data
