"""Read access to a public data set wherever it lives: a Hugging Face hub repo, a local mirror, an S3 prefix.

The pipeline needs two things from a source: whole small files (CSV, parquet) and
byte ranges of large ones (zip parts), so it never downloads what it does not use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class SourceError(RuntimeError):
    """A file could not be listed or read; the message names the source and the path."""


class DatasetSource(Protocol):
    """A data set's files, addressed by their path inside the repository (``data/train/x.csv``)."""

    uri: str

    def list_files(self, prefix: str = "") -> list[str]:
        """Repository paths under ``prefix``, sorted."""
        ...

    def size(self, path: str) -> int:
        """Size in bytes of one file."""
        ...

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        """Exactly ``length`` bytes from ``offset`` (a ranged read; never the whole file)."""
        ...

    def download(self, path: str, dest_dir: Path) -> Path:
        """A local copy of one whole file (for metadata: CSV, parquet); returns its local path."""
        ...
