"""The extraction step: selected clips -> verified, resized local files, reading only their bytes.

Clips are grouped by zip part and the parts are worked on in parallel (one thread per part; PyAV
decodes and encodes without holding Python's GIL, see ``etl.media``). For each part the central
directory is read once, then the wanted members by coalesced ranged reads (``etl.zip_ranges``). Every
clip is decoded in full; one that does not decode, fails its CRC or loses frames in the resize is
quarantined under ``<out>/quarantine/`` with a reason and counted, never fatal. A member the mapping
names but the part lacks (or a part the source lacks) is counted as missing; a clip the mappings list
in several parts is looked for in each, in turn, until one holds it, and is missing only when none
does. A part whose directory cannot be read (a truncated download) quarantines its clips, and the
statistics name the part, its reason and how many clips it held (``part_problems``), so the gate
can say why the corrupt share is what it is. Good clips land in ``<out>/clips/<video>``. Source
failures (network, permissions) do raise: retrying the task is the cure for those.
"""

from __future__ import annotations

import hashlib
import logging
import math
import tempfile
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from etl.config import MediaConfig
from etl.media import CorruptMediaError, probe_video, resize_video
from etl.sources import DatasetSource
from etl.zip_ranges import (
    DEFAULT_GAP,
    MemberNotFoundError,
    MemberRead,
    PartFile,
    ZipFormatError,
    ZipReadStats,
    normalise_part_name,
    read_central_directory,
    read_members,
    resolve_part_files,
)

log = logging.getLogger(__name__)

OK = "ok"
CORRUPT = "corrupt"
MISSING = "missing"
CLIPS_DIR = "clips"
QUARANTINE_DIR = "quarantine"


@dataclass(frozen=True)
class ClipRef:
    """One selected clip: its OpenVid name, its zip part and its member name inside that part, and the
    other ``(part, member)`` locations the mappings list for it, in the order to try them."""

    video: str
    part: str
    video_path: str
    alternatives: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | Any) -> ClipRef:
        """From a dict (``df.to_dict("records")``) or an object with attributes (``df.itertuples()``);
        ``locations`` (curation's list of ``{part, video_path}``, optional) gives the alternatives."""
        get = record.get if isinstance(record, Mapping) else lambda key: getattr(record, key, None)
        values = {key: get(key) for key in ("video", "part", "video_path")}
        empty = [key for key, value in values.items() if not isinstance(value, str) or not value.strip()]
        if empty:
            raise ValueError(f"clip record lacks {', '.join(empty)}: {record!r}")
        part = normalise_part_name(values["part"].strip())
        locations = get("locations")
        others = [
            (normalise_part_name(str(loc["part"]).strip()), str(loc["video_path"]))
            for loc in (() if locations is None else locations)
        ]
        alternatives = tuple(loc for loc in others if loc != (part, values["video_path"]))
        return cls(values["video"].strip(), part, values["video_path"], alternatives)

    def next_location(self) -> ClipRef:
        """The same clip at its next mapped location (call only when there are alternatives)."""
        (part, video_path), *rest = self.alternatives
        return ClipRef(self.video, part, video_path, tuple(rest))

    @property
    def file_name(self) -> str:
        """The local file name: the video's base name, so no record can write outside the out folder."""
        name = PurePosixPath(self.video.replace("\\", "/")).name
        if name in ("", ".", ".."):
            raise ValueError(f"video name {self.video!r} is not a usable file name")
        return name


@dataclass(frozen=True)
class ClipRow:
    """The outcome for one clip; the probe fields describe the resized file (``None`` unless ok)."""

    video: str
    part: str
    video_path: str
    status: str
    reason: str = ""
    local_path: str | None = None
    sha256: str | None = None
    bytes: int | None = None
    frames: int | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    seconds: float | None = None


@dataclass
class ExtractionStats:
    """Counts and transferred bytes of one extraction, for the gate, the dashboard and the benchmark."""

    clips_ok: int = 0
    clips_corrupt: int = 0
    clips_missing: int = 0
    clips_found_elsewhere: int = 0  # held by another part than the first one the mappings name
    # part -> {"reason", "clips", "status"}: a part not found or whose directory is unreadable
    part_problems: dict[str, dict[str, Any]] = field(default_factory=dict)
    parts: int = 0
    bytes_fetched: int = 0  # as counted by the source during the step
    directory_bytes: int = 0
    member_bytes: int = 0
    selected_compressed_bytes: int = 0
    parts_bytes: int = 0
    seconds: float = 0.0

    @property
    def fetched_over_selected(self) -> float:
        """Bytes fetched per byte of selected (compressed) member; the goal is at most 1.2."""
        return self.bytes_fetched / self.selected_compressed_bytes if self.selected_compressed_bytes else 0.0

    @property
    def fetched_over_parts(self) -> float:
        """Share of the touched zip parts that was transferred."""
        return self.bytes_fetched / self.parts_bytes if self.parts_bytes else 0.0

    @classmethod
    def of(
        cls,
        rows: list[ClipRow],
        reads: ZipReadStats,
        bytes_fetched: int,
        seconds: float,
        problems: Mapping[str, PartProblem],
        found_elsewhere: int,
    ) -> ExtractionStats:
        """The counts of one extraction's rows, with what its ranged reads transferred."""
        return cls(
            clips_ok=sum(row.status == OK for row in rows),
            clips_corrupt=sum(row.status == CORRUPT for row in rows),
            clips_missing=sum(row.status == MISSING for row in rows),
            clips_found_elsewhere=found_elsewhere,
            part_problems={name: asdict(problem) for name, problem in sorted(problems.items())},
            parts=reads.parts,
            bytes_fetched=bytes_fetched,
            directory_bytes=reads.directory_bytes,
            member_bytes=reads.member_bytes,
            selected_compressed_bytes=reads.selected_compressed_bytes,
            parts_bytes=reads.parts_bytes,
            seconds=seconds,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "fetched_over_selected": round(self.fetched_over_selected, 4),
            "fetched_over_parts": round(self.fetched_over_parts, 6),
        }


@dataclass
class ExtractionResult:
    rows: list[ClipRow] = field(default_factory=list)
    stats: ExtractionStats = field(default_factory=ExtractionStats)

    @property
    def ok_rows(self) -> list[ClipRow]:
        return [row for row in self.rows if row.status == OK]

    def to_frame(self) -> Any:
        """The rows as a pandas DataFrame (one row per clip, the ``ClipRow`` fields as columns)."""
        import pandas as pd

        columns = list(ClipRow.__dataclass_fields__)
        return pd.DataFrame([asdict(row) for row in self.rows], columns=columns)


@dataclass
class PartProblem:
    """Why a whole part gave no clips: not in the source (``missing``) or its directory unreadable
    (``corrupt``), and how many selected clips it held."""

    status: str
    reason: str
    clips: int


@dataclass(frozen=True)
class _PartJob:
    name: str
    part: PartFile | None
    clips: list[ClipRef]
    out_dir: Path
    media: MediaConfig
    gap: int
    progress_every: int


def extract_clips(
    records: Iterable[Mapping[str, Any] | Any],
    source: DatasetSource,
    out_dir: str | Path,
    media: MediaConfig | None = None,
    *,
    gap: int = DEFAULT_GAP,
    progress_every: int = 25,
) -> ExtractionResult:
    """Extract, verify and resize the selected clips; rows come back in the order of ``records``.

    A video listed twice is extracted once. Clips missing from their part are looked for at their
    next mapped location, in another round over the parts, until found or out of locations.
    """
    media = media or MediaConfig()
    started = time.monotonic()
    clips = list({ref.video: ref for ref in map(ClipRef.from_record, records)}.values())
    out = Path(out_dir)
    (out / CLIPS_DIR).mkdir(parents=True, exist_ok=True)
    (out / QUARANTINE_DIR).mkdir(parents=True, exist_ok=True)

    fetched_before = source.bytes_fetched
    rows: dict[str, ClipRow] = {}
    misses: dict[str, list[str]] = {}  # video -> "part: reason" of each location that lacked it
    zip_stats = ZipReadStats()
    problems: dict[str, PartProblem] = {}
    seen: set[str] = set()  # parts read in an earlier round: their size counts once
    pending = clips
    while pending:
        found, round_stats = _extract_round(pending, source, out, media, gap, progress_every, problems, seen)
        zip_stats.add(round_stats)
        pending = []
        for clip, row in found.items():
            # Not in this part, or the whole part unreadable: the next mapped location may hold it.
            if (row.status == MISSING or clip.part in problems) and clip.alternatives:
                misses.setdefault(clip.video, []).append(f"{clip.part}: {row.reason}")
                pending.append(clip.next_location())
            else:
                rows[clip.video] = _with_misses(row, misses.get(clip.video, []))
    ordered = [rows[clip.video] for clip in clips]
    elsewhere = sum(row.status == OK and row.video in misses for row in ordered)
    seconds = round(time.monotonic() - started, 3)
    stats = ExtractionStats.of(
        ordered, zip_stats, source.bytes_fetched - fetched_before, seconds, problems, elsewhere
    )
    _log_done(stats)
    return ExtractionResult(ordered, stats)


def _extract_round(
    clips: list[ClipRef],
    source: DatasetSource,
    out: Path,
    media: MediaConfig,
    gap: int,
    progress_every: int,
    problems: dict[str, PartProblem],
    seen: set[str],
) -> tuple[dict[ClipRef, ClipRow], ZipReadStats]:
    """Each clip from its current location, the parts in parallel; adds whole-part failures to
    ``problems`` and the parts read to ``seen``. Returns each clip's row (keyed by the clip as asked
    for) and the reads."""
    by_part: dict[str, list[ClipRef]] = {}
    for clip in clips:
        by_part.setdefault(clip.part, []).append(clip)
    parts = resolve_part_files(source, by_part, missing_ok=True)
    jobs = [_PartJob(n, parts.get(n), c, out, media, gap, progress_every) for n, c in sorted(by_part.items())]
    log.info("extracting %d clips from %d zip parts with %d workers", len(clips), len(jobs), media.workers)
    rows, zip_stats = _run_parts(jobs, media.workers, problems, seen)
    return {clip: rows[clip.video] for clip in clips}, zip_stats


def _with_misses(row: ClipRow, misses: list[str]) -> ClipRow:
    """A row found at a later location says where it was not; one found nowhere says where it was not."""
    if not misses:
        return row
    if row.status == OK:
        return replace(row, reason=f"found in {row.part}; not in " + "; ".join(misses))
    return replace(
        row, reason="in none of its mapped parts: " + "; ".join([*misses, f"{row.part}: {row.reason}"])
    )


def _run_parts(
    jobs: list[_PartJob], workers: int, problems: dict[str, PartProblem], seen: set[str]
) -> tuple[dict[str, ClipRow], ZipReadStats]:
    """The parts in parallel, ``workers`` at a time; each clip's row by video, and the reads summed
    (a part already in ``seen`` adds the bytes read again, not its size)."""
    rows: dict[str, ClipRow] = {}
    zip_stats = ZipReadStats()
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:
        futures = {pool.submit(_extract_part, job): job for job in jobs}
        try:
            for future in as_completed(futures):
                part_rows, part_stats, problem = future.result()
                name = futures[future].name
                if name in seen:
                    part_stats.parts, part_stats.parts_bytes = 0, 0
                seen.add(name)
                rows.update((row.video, row) for row in part_rows)
                zip_stats.add(part_stats)
                if problem is not None:
                    _add_problem(problems, name, problem)
        except BaseException:
            for pending in futures:
                pending.cancel()
            raise
    return rows, zip_stats


def _add_problem(problems: dict[str, PartProblem], part: str, problem: PartProblem) -> None:
    """A part that failed in an earlier round too (other clips looked for there) adds its clips."""
    if part in problems:
        problems[part].clips += problem.clips
    else:
        problems[part] = problem


def _log_done(stats: ExtractionStats) -> None:
    log.info(
        "extraction done: %d ok, %d corrupt, %d missing in %.1fs; fetched %d bytes for %d bytes of members "
        "(%.2fx), %.4f%% of the %d parts touched",
        stats.clips_ok,
        stats.clips_corrupt,
        stats.clips_missing,
        stats.seconds,
        stats.bytes_fetched,
        stats.selected_compressed_bytes,
        stats.fetched_over_selected,
        100 * stats.fetched_over_parts,
        stats.parts,
    )


def _extract_part(job: _PartJob) -> tuple[list[ClipRow], ZipReadStats, PartProblem | None]:
    """All clips of one part, in part order; runs in a worker thread with its own statistics. A part
    that gives no clip at all (not found, directory unreadable) comes back as a ``PartProblem`` too."""
    stats = ZipReadStats()
    if job.part is None:
        reason = f"zip part {job.name!r} not found in the source"
        log.warning("%s: %s (%d clips missing)", job.name, reason, len(job.clips))
        problem = PartProblem(MISSING, reason, len(job.clips))
        return [_row(clip, MISSING, reason) for clip in job.clips], stats, problem
    try:
        index = read_central_directory(job.part, stats)
    except ZipFormatError as error:
        reason = f"part directory unreadable: {error}"
        log.warning("%s: %s (%d clips quarantined)", job.name, reason, len(job.clips))
        problem = PartProblem(CORRUPT, reason, len(job.clips))
        return [_quarantine(job.out_dir, clip, None, reason) for clip in job.clips], stats, problem

    by_member: dict[str, list[ClipRef]] = {}
    for clip in job.clips:
        by_member.setdefault(clip.video_path, []).append(clip)
    rows: list[ClipRow] = []
    with tempfile.TemporaryDirectory(prefix=".extract-", dir=job.out_dir) as tmp:
        for read in read_members(job.part, by_member, index=index, stats=stats, gap=job.gap):
            for clip in by_member[read.name]:
                rows.append(_process_clip(clip, read, Path(tmp), job))
                if len(rows) % job.progress_every == 0 or len(rows) == len(job.clips):
                    _log_progress(job, rows)
    return rows, stats, None


def _log_progress(job: _PartJob, rows: list[ClipRow]) -> None:
    corrupt = sum(row.status == CORRUPT for row in rows)
    missing = sum(row.status == MISSING for row in rows)
    log.info("%s: %d/%d clips, %d corrupt, %d missing", job.name, len(rows), len(job.clips), corrupt, missing)


def _process_clip(clip: ClipRef, read: MemberRead, tmp: Path, job: _PartJob) -> ClipRow:
    """Decode the member in full, resize it and check nothing was lost; quarantine it otherwise."""
    if isinstance(read.error, MemberNotFoundError):
        return _row(clip, MISSING, read.reason)
    if read.error is not None or read.data is None:
        return _quarantine(job.out_dir, clip, None, read.reason)
    raw = tmp / clip.file_name
    raw.write_bytes(read.data)
    target = job.out_dir / CLIPS_DIR / clip.file_name
    try:
        original = probe_video(raw)
        info = resize_video(raw, target, job.media.video_height)
        if info.frames != original.frames or not math.isclose(info.fps, original.fps, rel_tol=0.01):
            raise CorruptMediaError(
                f"resize changed frames/fps from {original.frames}/{original.fps} to {info.frames}/{info.fps}"
            )
    except CorruptMediaError as error:
        target.unlink(missing_ok=True)
        return _quarantine(job.out_dir, clip, raw, str(error))
    finally:
        raw.unlink(missing_ok=True)
    return ClipRow(
        video=clip.video,
        part=clip.part,
        video_path=clip.video_path,
        status=OK,
        local_path=str(target),
        sha256=_sha256(target),
        bytes=target.stat().st_size,
        frames=info.frames,
        fps=info.fps,
        width=info.width,
        height=info.height,
        seconds=info.seconds,
    )


def _quarantine(out_dir: Path, clip: ClipRef, raw: Path | None, reason: str) -> ClipRow:
    """Keep the bad bytes (when there are any) and the reason beside them, for a human to look at."""
    folder = out_dir / QUARANTINE_DIR
    kept: Path | None = None
    if raw is not None and raw.exists():
        kept = folder / clip.file_name
        raw.replace(kept)
    note = folder / f"{clip.file_name}.reason.txt"
    note.write_text(f"video: {clip.video}\npart: {clip.part}\nmember: {clip.video_path}\nreason: {reason}\n")
    log.warning("%s: quarantined %s: %s", clip.part, clip.video, reason)
    return _row(clip, CORRUPT, reason, str(kept) if kept else None)


def _row(clip: ClipRef, status: str, reason: str, local_path: str | None = None) -> ClipRow:
    return ClipRow(clip.video, clip.part, clip.video_path, status, reason, local_path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
