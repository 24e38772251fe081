"""Read access to a public data set wherever it lives: a Hugging Face hub repo, a local mirror, an S3 prefix.

The pipeline needs two things from a source: whole small files (CSV, parquet) and
byte ranges of large ones (zip parts), so it never downloads what it does not use.
Every source counts the bytes its ranged reads fetched (``bytes_fetched``) so the
benchmark can compare them with the size of what was wanted.
"""

from __future__ import annotations

import os
import shutil
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from adfame.storage import ObjectStore

# Client bookkeeping that ``hf_hub_download(local_dir=...)`` writes beside the files; not repo content.
CLIENT_CACHE_DIR = ".cache"


class SourceError(RuntimeError):
    """A file could not be listed or read; the message names the source and the path."""


class DatasetSource(Protocol):
    """A data set's files, addressed by their path inside the repository (``data/train/x.csv``)."""

    uri: str

    @property
    def bytes_fetched(self) -> int:
        """Bytes received by ``read_range`` so far (all threads together)."""
        ...

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


class _Counter:
    """A byte counter that worker threads of the parallel extraction can bump safely."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def add(self, n: int) -> None:
        with self._lock:
            self._value += n

    @property
    def value(self) -> int:
        with self._lock:
            return self._value


def _check_range(uri: str, path: str, offset: int, length: int) -> None:
    if offset < 0 or length < 0:
        raise SourceError(f"{uri}: bad range for {path}: offset={offset} length={length}")


def _clean_path(uri: str, path: str) -> str:
    """A repository path without leading slashes; refuses ``..`` so no source reads outside its root."""
    clean = path.strip("/")
    if not clean or any(part in ("", ".", "..") for part in clean.split("/")):
        raise SourceError(f"{uri}: invalid repository path {path!r}")
    return clean


class _CountingSource:
    """What every source shares: the count of bytes its ranged reads fetched, and whole-file downloads."""

    uri: str

    def __init__(self) -> None:
        self._fetched = _Counter()

    @property
    def bytes_fetched(self) -> int:
        """Bytes received by ranged reads."""
        return self._fetched.value

    def _short_read(self, path: str, offset: int, length: int, got: int) -> SourceError:
        return SourceError(
            f"{self.uri}: range {offset}+{length} of {path} returned {got} bytes (past the end of the file?)"
        )

    def _received(self, path: str, offset: int, length: int, data: bytes) -> bytes:
        """``data``, counted in ``bytes_fetched``; a short read is refused, yet its bytes still count."""
        self._fetched.add(len(data))
        if len(data) != length:
            raise self._short_read(path, offset, length, len(data))
        return data

    def _destination(self, path: str, dest_dir: Path) -> Path:
        """Where ``download`` puts a file: its repository path under ``dest_dir``, folders created."""
        dest = Path(dest_dir) / _clean_path(self.uri, path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        return dest


class _CopyingSource(_CountingSource, ABC):
    """A source whose whole-file download is a plain copy (a folder, an object store)."""

    def download(self, path: str, dest_dir: Path) -> Path:
        """A copy of one whole file at its repository path under ``dest_dir`` (not a ranged read)."""
        dest = self._destination(path, dest_dir)
        self._copy(path, dest)
        return dest

    @abstractmethod
    def _copy(self, path: str, dest: Path) -> None:
        """Write the file at ``path`` to ``dest``; raise ``SourceError`` naming what failed."""


class LocalSource(_CopyingSource):
    """A mirror folder holding the repository's files in their repository layout."""

    def __init__(self, root: Path | str):
        super().__init__()
        self.root = Path(root).expanduser().resolve()
        self.uri = self.root.as_uri()

    def _file(self, path: str) -> Path:
        return self.root / _clean_path(self.uri, path)

    def list_files(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            raise SourceError(f"{self.uri}: mirror folder does not exist (listing {prefix!r})")
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            if Path(dirpath) == self.root and CLIENT_CACHE_DIR in dirnames:
                dirnames.remove(CLIENT_CACHE_DIR)
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                if rel.startswith(prefix):
                    found.append(rel)
        return sorted(found)

    def size(self, path: str) -> int:
        file = self._file(path)
        try:
            return file.stat().st_size
        except OSError as exc:
            raise SourceError(f"{self.uri}: cannot stat {path}: {exc.strerror}") from exc

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        _check_range(self.uri, path, offset, length)
        if length == 0:
            return b""
        try:
            with self._file(path).open("rb") as handle:
                handle.seek(offset)
                data = handle.read(length)
        except OSError as exc:
            raise SourceError(f"{self.uri}: cannot read {path}: {exc.strerror}") from exc
        return self._received(path, offset, length, data)

    def _copy(self, path: str, dest: Path) -> None:
        try:
            shutil.copyfile(self._file(path), dest)
        except OSError as exc:
            raise SourceError(f"{self.uri}: cannot copy {path} to {dest}: {exc.strerror}") from exc


class S3Source(_CopyingSource):
    """A mirror in the object store under ``s3://bucket/prefix`` (see ``devkit.mirror.upload_mirror``)."""

    def __init__(self, bucket: str, prefix: str = "", store: ObjectStore | None = None):
        super().__init__()
        if not bucket:
            raise ValueError("S3Source needs a bucket")
        self.bucket = bucket
        clean = prefix.strip("/")
        self.prefix = f"{clean}/" if clean else ""
        self.uri = f"s3://{bucket}/{clean}"
        self._store = store
        self._store_lock = threading.Lock()

    @property
    def store(self) -> ObjectStore:
        """The object store client, created on first use so that parsing a URI needs no settings."""
        with self._store_lock:
            if self._store is None:
                from adfame.storage import ObjectStore

                self._store = ObjectStore()
            return self._store

    def _key(self, path: str) -> str:
        return self.prefix + _clean_path(self.uri, path)

    def list_files(self, prefix: str = "") -> list[str]:
        from adfame.storage import ObjectStoreError

        try:
            objects = self.store.list(self.bucket, self.prefix + prefix.lstrip("/"))
        except ObjectStoreError as exc:
            raise SourceError(f"{self.uri}: cannot list {prefix!r}: {exc}") from exc
        return sorted(o.key[len(self.prefix) :] for o in objects if not o.key.endswith("/"))

    def size(self, path: str) -> int:
        from adfame.storage import ObjectStoreError

        try:
            info = self.store.stat(self.bucket, self._key(path))
        except ObjectStoreError as exc:
            raise SourceError(f"{self.uri}: cannot stat {path}: {exc}") from exc
        if info is None:
            raise SourceError(f"{self.uri}: no such file {path}")
        return info.size

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        from adfame.storage import ObjectStoreError

        _check_range(self.uri, path, offset, length)
        if length == 0:  # the SDK reads a length of 0 as "to the end"
            return b""
        try:
            data = self.store.get_bytes(self.bucket, self._key(path), offset=offset, length=length)
        except ObjectStoreError as exc:
            raise SourceError(f"{self.uri}: cannot read {path} [{offset}+{length}]: {exc}") from exc
        return self._received(path, offset, length, data)

    def _copy(self, path: str, dest: Path) -> None:
        from adfame.storage import ObjectStoreError

        try:
            self.store.get_file(self.bucket, self._key(path), dest)
        except ObjectStoreError as exc:
            raise SourceError(f"{self.uri}: cannot download {path}: {exc}") from exc


class HubSource(_CountingSource):
    """A Hugging Face hub repository, read with the real ``huggingface_hub`` client.

    The endpoint is ``endpoint``, else ``HF_ENDPOINT`` read now (not at import), else the Hub,
    so a local mirror server (``devkit.hub_server``) can stand in for the Hub unchanged.
    """

    def __init__(
        self,
        repo_id: str,
        revision: str = "main",
        repo_type: str = "dataset",
        endpoint: str | None = None,
        token: str | bool | None = None,
    ):
        super().__init__()
        from huggingface_hub import HfApi, constants

        if repo_id.count("/") != 1 or not all(repo_id.split("/")):
            raise ValueError(f"hub repo id must be 'owner/name', got {repo_id!r}")
        self.repo_id = repo_id
        self.revision = revision
        self.repo_type = repo_type
        self.endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
        self.token = token
        rev = "" if revision == "main" else f"@{revision}"
        self.uri = f"hf://{repo_type}s/{repo_id}{rev}"
        self.api = HfApi(endpoint=self.endpoint, token=token)
        self._sizes: dict[str, int] = {}
        self._sizes_lock = threading.Lock()

    def _error(self, what: str, path: str, exc: Exception) -> SourceError:
        return SourceError(f"{self.uri} (endpoint {self.endpoint}): {what} {path!r} failed: {exc}")

    def list_files(self, prefix: str = "") -> list[str]:
        from huggingface_hub import RepoFile
        from huggingface_hub.errors import RemoteEntryNotFoundError

        # List only the folder the prefix is in; the Hub pages big trees itself.
        folder = prefix.lstrip("/").rpartition("/")[0] or None
        try:
            entries = list(
                self.api.list_repo_tree(
                    self.repo_id,
                    path_in_repo=folder,
                    recursive=True,
                    revision=self.revision,
                    repo_type=self.repo_type,
                )
            )
        except RemoteEntryNotFoundError:
            return []
        except Exception as exc:
            raise self._error("listing", prefix, exc) from exc
        files = {e.path: e.size for e in entries if isinstance(e, RepoFile) and e.path.startswith(prefix)}
        with self._sizes_lock:
            self._sizes.update(files)
        return sorted(files)

    def size(self, path: str) -> int:
        from huggingface_hub import RepoFile

        path = _clean_path(self.uri, path)
        with self._sizes_lock:
            if path in self._sizes:
                return self._sizes[path]
        try:
            infos = self.api.get_paths_info(
                self.repo_id, [path], revision=self.revision, repo_type=self.repo_type
            )
        except Exception as exc:
            raise self._error("size of", path, exc) from exc
        sizes = [i.size for i in infos if isinstance(i, RepoFile) and i.path == path]
        if not sizes:
            raise SourceError(f"{self.uri} (endpoint {self.endpoint}): no such file {path!r}")
        with self._sizes_lock:
            self._sizes[path] = sizes[0]
        return sizes[0]

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        """A GET with a ``Range`` header on the file's resolve URL, as ``HfFileSystem`` does it."""
        from huggingface_hub import constants, hf_hub_url
        from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, http_backoff

        _check_range(self.uri, path, offset, length)
        path = _clean_path(self.uri, path)
        if length == 0:
            return b""
        url = hf_hub_url(
            self.repo_id, path, repo_type=self.repo_type, revision=self.revision, endpoint=self.endpoint
        )
        headers = {**build_hf_headers(token=self.token), "Range": f"bytes={offset}-{offset + length - 1}"}
        try:
            response = http_backoff("GET", url, headers=headers, timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT)
            hf_raise_for_status(response)
        except Exception as exc:
            raise self._error(f"ranged read [{offset}+{length}] of", path, exc) from exc
        data = response.content
        self._fetched.add(len(data))
        if response.status_code != 206 and not (offset == 0 and len(data) == length):
            raise SourceError(
                f"{self.uri}: the server ignored the Range header for {path} "
                f"(status {response.status_code}, {len(data)} bytes)"
            )
        if len(data) != length:
            raise self._short_read(path, offset, length, len(data))
        return data

    def download(self, path: str, dest_dir: Path) -> Path:
        from huggingface_hub import hf_hub_download

        path = _clean_path(self.uri, path)
        try:
            local = hf_hub_download(
                self.repo_id,
                path,
                repo_type=self.repo_type,
                revision=self.revision,
                endpoint=self.endpoint,
                local_dir=Path(dest_dir),
                token=self.token,
            )
        except Exception as exc:
            raise self._error("download of", path, exc) from exc
        return Path(local)


def open_source(uri: str, hub_endpoint: str | None = None) -> DatasetSource:
    """The source a URI names: ``hf://datasets/owner/name[@rev]``, ``file:///path``, a path, ``s3://b/p``.

    ``hub_endpoint`` points ``hf://`` URIs at another hub (a mirror); default: ``HF_ENDPOINT`` or the Hub.
    """
    if not uri or not uri.strip():
        raise ValueError("empty data set URI")
    uri = uri.strip()
    if "://" not in uri:
        return LocalSource(Path(uri))
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise ValueError(f"bad file URI {uri!r}: expected file:///absolute/path")
        return LocalSource(Path(unquote(parts.path)))
    if scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"bad S3 URI {uri!r}: expected s3://bucket/prefix")
        return S3Source(parts.netloc, unquote(parts.path))
    if scheme == "hf":
        return _open_hub(uri, hub_endpoint)
    raise ValueError(
        f"unsupported data set URI {uri!r}: use hf://datasets/owner/name, file://, a path or s3://"
    )


def _open_hub(uri: str, endpoint: str | None) -> HubSource:
    """``hf://datasets/owner/name[@revision]``; the revision may be URL-quoted (``refs%2Fpr%2F1``)."""
    rest = uri[len("hf://") :].strip("/")
    kind, _, repo = rest.partition("/")
    if kind != "datasets":
        raise ValueError(f"bad hub URI {uri!r}: expected hf://datasets/owner/name[@revision]")
    repo_id, _, revision = repo.partition("@")
    names = repo_id.split("/")
    if len(names) != 2 or not all(names) or (revision == "" and repo.endswith("@")):
        raise ValueError(f"bad hub URI {uri!r}: expected hf://datasets/owner/name[@revision]")
    return HubSource(
        repo_id, revision=unquote(revision) if revision else "main", repo_type="dataset", endpoint=endpoint
    )
