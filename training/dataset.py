"""Reading a milestone's export: fetch it to a local folder, verify it, and read its winners and pairs.

Why it verifies: a trainer or an evaluation may run on another machine, days after the export, from a
cached copy. Every file is checked against the manifest's sha256 before anything reads it, so a
half-downloaded or edited copy fails with the file's name instead of training on wrong data. A local
folder (a downloaded copy, or a test's) is verified and used in place.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from adfame.storage import ObjectStore
from training.export_layout import MANIFEST_NAME, PAIRS_NAME, PROMPTS_NAME, VIDEOS_NAME, ExportManifest, Split

_S3_SCHEME = "s3://"


class ExportCorrupt(RuntimeError):
    """An export whose files do not match its manifest, or whose lists do not agree; names the file."""


@dataclass(frozen=True)
class Clip:
    """One candidate video of an export, with the variation prompt and seed it was generated from."""

    video: Path  # absolute
    variation_prompt: str
    seed: int
    index: int


@dataclass(frozen=True)
class PreferencePair:
    """A marketer's preference: for ``prompt``, ``winner`` was picked over ``loser``."""

    prompt: str
    request_id: str
    winner: Clip
    loser: Clip
    tenant: str


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _inside(folder: Path, relative: str) -> Path:
    """The path of a manifest entry under ``folder``; refuses one that would leave it."""
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or ".." in parts:
        raise ExportCorrupt(f"manifest entry {relative!r} is not a path inside the export")
    return folder.joinpath(*parts)


def read_manifest(folder: Path) -> ExportManifest:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ExportCorrupt(f"{folder} holds no {MANIFEST_NAME}: not an export")
    return ExportManifest.from_bytes(path.read_bytes())


def verify_export(folder: Path) -> ExportManifest:
    """Check every file the manifest lists against its sha256; returns the manifest."""
    manifest = read_manifest(folder)
    for relative, expected in manifest.files.items():
        path = _inside(folder, relative)
        if not path.is_file():
            raise ExportCorrupt(f"{path} is missing (listed in {folder / MANIFEST_NAME})")
        if (actual := _sha256(path)) != expected:
            raise ExportCorrupt(f"{path} has sha256 {actual}, the manifest says {expected}")
    return manifest


def _split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` -> (bucket, ``some/prefix``)."""
    bucket, _, prefix = uri.removeprefix(_S3_SCHEME).partition("/")
    if not bucket or not prefix.strip("/"):
        raise ValueError(f"{uri!r} is not an export URI (s3://bucket/prefix/)")
    return bucket, prefix.strip("/")


def _download(store: ObjectStore, bucket: str, key: str, path: Path, expected: str) -> None:
    """Download one file unless the cached copy already matches; verify it, then move it into place."""
    if path.is_file() and _sha256(path) == expected:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    store.get_file(bucket, key, partial)
    if (actual := _sha256(partial)) != expected:
        partial.unlink()
        raise ExportCorrupt(f"s3://{bucket}/{key} has sha256 {actual}, its manifest says {expected}")
    os.replace(partial, path)


def fetch_export(uri_or_folder: str, cache: Path, store: ObjectStore | None = None) -> Path:
    """A verified local folder holding the export: a local folder in place, an s3:// URI under ``cache``.

    A URI lands in ``cache/<bucket>/<prefix>``; files already there with the right checksum are kept,
    so a second fetch downloads only the manifest.
    """
    if not uri_or_folder.startswith(_S3_SCHEME):
        folder = Path(uri_or_folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"no export folder at {folder}")
        verify_export(folder)
        return folder
    bucket, prefix = _split_uri(uri_or_folder)
    store = store or ObjectStore()
    folder = cache.joinpath(bucket, *prefix.split("/"))
    manifest_bytes = store.get_bytes(bucket, f"{prefix}/{MANIFEST_NAME}")
    manifest = ExportManifest.from_bytes(manifest_bytes)
    for relative, expected in manifest.files.items():
        _download(store, bucket, f"{prefix}/{relative}", _inside(folder, relative), expected)
    (folder / MANIFEST_NAME).write_bytes(manifest_bytes)
    return folder


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise ExportCorrupt(f"{path} is missing")
    return path.read_text(encoding="utf-8").splitlines()


def read_winners(folder: Path, split: Split = "train") -> list[tuple[str, Path]]:
    """(caption, absolute video path) per line of the split's ``prompt.txt`` and ``videos.txt``.

    This is finetrainers' two-file dataset: the winners, then the curated sample in ``train``.
    """
    root = folder.resolve() / split
    captions, videos = _lines(root / PROMPTS_NAME), _lines(root / VIDEOS_NAME)
    if len(captions) != len(videos):
        raise ExportCorrupt(f"{root}: {len(captions)} captions but {len(videos)} videos")
    return [(caption, _inside(root, video)) for caption, video in zip(captions, videos, strict=True)]


def _clip(root: Path, fields: dict) -> Clip:
    return Clip(
        _inside(root, fields["video"]), fields["variation_prompt"], int(fields["seed"]), int(fields["index"])
    )


def read_pairs(folder: Path, split: Split = "train") -> list[PreferencePair]:
    """The split's (winner, loser) pairs, in the export's order (by selection, then loser index)."""
    root = folder.resolve() / split
    pairs = []
    for number, line in enumerate(_lines(root / PAIRS_NAME), start=1):
        try:
            row = json.loads(line)
            pair = PreferencePair(
                row["prompt"],
                row["request_id"],
                _clip(root, row["winner"]),
                _clip(root, row["loser"]),
                row["tenant"],
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ExportCorrupt(f"{root / PAIRS_NAME}:{number}: not a pair ({exc})") from exc
        pairs.append(pair)
    return pairs
