"""A local stand-in for the Hugging Face Hub that serves a mirror folder to the unmodified client.

No data set can be downloaded on these machines, yet the download code must be the real
``huggingface_hub`` client. The client honours ``HF_ENDPOINT``, so this server answers the
few routes it calls, from ``<root>/<owner>/<name>/<repo files>``, for data set repos and for model
repos alike (``{kind}`` below is ``datasets`` or ``models``; a model's files resolve without the
``/datasets`` prefix, so ``DiffusionPipeline.from_pretrained("owner/name")`` works against it too):

- ``HEAD``/``GET [/datasets]/{owner}/{name}/resolve/{revision}/{path}``: the file, with ``ETag``,
  ``X-Repo-Commit``, ``Content-Length``, ``Accept-Ranges`` and ``Range`` (206) support;
- ``GET /api/{kind}/{owner}/{name}`` and ``.../revision/{revision}``: ``dataset_info``/``model_info``;
- ``GET /api/{kind}/{owner}/{name}/tree/{revision}[/{folder}]``: ``list_repo_tree``/``list_repo_files``;
- ``POST /api/{kind}/{owner}/{name}/paths-info/{revision}``: ``get_paths_info`` (``HfFileSystem.info``).

Errors carry the Hub's ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) so
the client raises its usual exceptions. The mirror has one revision: ``main``, whose commit hash is
derived from the files' paths, sizes and modification times (it changes when the mirror is regenerated).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from etl.sources import LocalSource, SourceError

log = logging.getLogger(__name__)

_REPO = r"(?P<owner>[^/]+)/(?P<name>[^/]+)"
# Data sets live under /datasets/ and /api/datasets/, models at the root and under /api/models/.
_RESOLVE = re.compile(rf"^/(?:datasets/)?{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_INFO = re.compile(rf"^/api/(?:datasets|models)/{_REPO}(?:/revision/(?P<rev>[^/]+))?/?$")
_TREE = re.compile(rf"^/api/(?:datasets|models)/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$")
_PATHS_INFO = re.compile(rf"^/api/(?:datasets|models)/{_REPO}/paths-info/(?P<rev>[^/]+)$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 1024 * 1024


class _HubError(Exception):
    """An error answer: HTTP status plus the Hub's ``X-Error-Code``."""

    def __init__(self, status: HTTPStatus, code: str, message: str, commit: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.commit = commit


class _Repo:
    """One mirrored repository folder, seen as the Hub would describe it."""

    def __init__(self, root: Path, owner: str, name: str):
        self.repo_id = f"{owner}/{name}"
        self.dir = (root / owner / name).resolve()
        if ".." in (owner, name) or not self.dir.is_relative_to(root) or not self.dir.is_dir():
            raise _HubError(HTTPStatus.NOT_FOUND, "RepoNotFound", f"Repository {self.repo_id} not found")
        self.source = LocalSource(self.dir)
        self.files = {path: (self.dir / path).stat() for path in self.source.list_files()}
        digest = hashlib.sha1(usedforsecurity=False)
        for path, st in sorted(self.files.items()):
            digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        self.commit = digest.hexdigest()

    def check_revision(self, revision: str | None) -> None:
        if revision not in (None, "main", self.commit):
            raise _HubError(
                HTTPStatus.NOT_FOUND, "RevisionNotFound", f"Invalid rev id: {revision}", commit=None
            )

    def file(self, path: str) -> tuple[Path, Any]:
        if path not in self.files:
            raise _HubError(
                HTTPStatus.NOT_FOUND, "EntryNotFound", f"{path} does not exist on main", commit=self.commit
            )
        return self.dir / path, self.files[path]

    def etag(self, path: str) -> str:
        st = self.files[path]
        return hashlib.sha1(
            f"{self.repo_id}\0{path}\0{st.st_size}\0{st.st_mtime_ns}".encode(), usedforsecurity=False
        ).hexdigest()

    def file_entry(self, path: str) -> dict[str, Any]:
        return {"type": "file", "oid": self.etag(path), "size": self.files[path].st_size, "path": path}

    def folders(self) -> set[str]:
        found: set[str] = set()
        for path in self.files:
            parts = path.split("/")[:-1]
            found.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        return found

    def folder_entry(self, path: str) -> dict[str, Any]:
        oid = hashlib.sha1(f"{self.commit}\0tree\0{path}".encode(), usedforsecurity=False).hexdigest()
        return {"type": "directory", "oid": oid, "size": 0, "path": path}

    def tree(self, folder: str, recursive: bool) -> list[dict[str, Any]]:
        folders = self.folders()
        if folder and folder not in folders:
            raise _HubError(
                HTTPStatus.NOT_FOUND, "EntryNotFound", f"{folder} does not exist on main", commit=self.commit
            )
        base = f"{folder}/" if folder else ""

        def wanted(path: str) -> bool:
            return path.startswith(base) and (recursive or "/" not in path[len(base) :])

        entries = [self.folder_entry(p) for p in sorted(folders) if wanted(p)]
        return entries + [self.file_entry(p) for p in sorted(self.files) if wanted(p)]

    def info(self, with_sizes: bool) -> dict[str, Any]:
        newest = max((st.st_mtime for st in self.files.values()), default=0.0)
        owner = self.repo_id.split("/")[0]
        siblings = [
            {"rfilename": p, **({"size": st.st_size, "blobId": self.etag(p)} if with_sizes else {})}
            for p, st in sorted(self.files.items())
        ]
        return {
            "_id": self.commit[:24],
            "id": self.repo_id,
            "author": owner,
            "sha": self.commit,
            "lastModified": datetime.fromtimestamp(newest, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "private": False,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "cardData": None,
            "siblings": siblings,
            "usedStorage": sum(st.st_size for st in self.files.values()),
        }


class MirrorHandler(BaseHTTPRequestHandler):
    """Answers the client's requests for one mirror root (``server.mirror_root``)."""

    protocol_version = "HTTP/1.1"  # keep-alive: the client pools connections
    server: _MirrorServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # ---- dispatch -------------------------------------------------------
    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        try:
            if match := _PATHS_INFO.match(path):
                repo = self._repo(match)
                form = parse_qs(body.decode(), keep_blank_values=True)
                self._json(self._paths_info(repo, form.get("paths", [])))
            else:
                raise _HubError(HTTPStatus.NOT_FOUND, "", f"no route for POST {path}")
        except _HubError as exc:
            self._error(exc)

    def _dispatch(self, head: bool) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        try:
            if match := _RESOLVE.match(path):
                self._resolve(self._repo(match), unquote(match["path"]), head)
            elif head:
                raise _HubError(HTTPStatus.NOT_FOUND, "", f"no route for HEAD {path}")
            elif match := _TREE.match(path):
                repo = self._repo(match)
                folder = unquote(match["path"] or "").strip("/")
                recursive = query.get("recursive", ["false"])[0].lower() == "true"
                self._json(repo.tree(folder, recursive))
            elif match := _INFO.match(path):
                repo = self._repo(match)
                with_sizes = query.get("blobs", ["false"])[0].lower() == "true"
                self._json(repo.info(with_sizes))
            else:
                raise _HubError(HTTPStatus.NOT_FOUND, "", f"no route for GET {path}")
        except _HubError as exc:
            self._error(exc, head)
        except (BrokenPipeError, ConnectionResetError):
            log.debug("client went away during %s", path)

    def _repo(self, match: re.Match[str]) -> _Repo:
        try:
            repo = _Repo(self.server.mirror_root, unquote(match["owner"]), unquote(match["name"]))
        except SourceError as exc:
            raise _HubError(HTTPStatus.INTERNAL_SERVER_ERROR, "", str(exc)) from exc
        rev = match.groupdict().get("rev")
        repo.check_revision(unquote(rev) if rev else None)
        return repo

    # ---- routes ---------------------------------------------------------
    def _resolve(self, repo: _Repo, path: str, head: bool) -> None:
        file, st = repo.file(path)
        size = st.st_size
        start, end = 0, size - 1
        status = HTTPStatus.OK
        requested = self.headers.get("Range")
        if requested and not head and "," not in requested:  # several ranges: answered with the whole file
            bounds = self._parse_range(requested, size)
            if bounds is None:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.send_header("X-Repo-Commit", repo.commit)
                self.end_headers()
                return
            start, end = bounds
            status = HTTPStatus.PARTIAL_CONTENT
        length = max(end - start + 1, 0)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{repo.etag(path)}"')
        self.send_header("X-Repo-Commit", repo.commit)
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if head or length == 0:
            return
        with file.open("rb") as handle:
            handle.seek(start)
            left = length
            while left > 0:
                chunk = handle.read(min(_CHUNK, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)

    @staticmethod
    def _parse_range(header: str, size: int) -> tuple[int, int] | None:
        """One ``bytes=a-b`` / ``a-`` / ``-n`` range, clipped to the file; None when unsatisfiable."""
        match = _RANGE.match(header.strip())
        if match is None:
            return None
        first, last = match.groups()
        if first == "" and last == "":
            return None
        if first == "":
            start, end = max(size - int(last), 0), size - 1
        else:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
        if start >= size or start > end:
            return None
        return start, end

    @staticmethod
    def _paths_info(repo: _Repo, paths: list[str]) -> list[dict[str, Any]]:
        folders = repo.folders()
        answer: list[dict[str, Any]] = []
        for raw in paths:
            path = raw.strip("/")
            if path in repo.files:
                answer.append(repo.file_entry(path))
            elif path in folders:
                answer.append(repo.folder_entry(path))
        return answer

    # ---- responses ------------------------------------------------------
    def _json(self, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, exc: _HubError, head: bool = False) -> None:
        body = json.dumps({"error": str(exc)}).encode()
        self.send_response(exc.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if exc.code:
            self.send_header("X-Error-Code", exc.code)
        self.send_header("X-Error-Message", str(exc))
        if exc.commit:
            self.send_header("X-Repo-Commit", exc.commit)
        self.end_headers()
        if not head:
            self.wfile.write(body)


class _MirrorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, address: tuple[str, int]):
        self.mirror_root = root.resolve()
        super().__init__(address, MirrorHandler)


@contextmanager
def serve_mirror(root: Path | str, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``root`` in a background thread; yields the endpoint URL to use as ``HF_ENDPOINT``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"mirror root {root} does not exist")
    server = _MirrorServer(root, (host, port))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="hub-mirror", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main(argv: list[str] | None = None) -> None:
    """Serve a mirror in the foreground, for demos: ``HF_ENDPOINT=<printed url> huggingface-cli ...``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="mirror folder (<owner>/<name>/<files>)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        parser.error(f"mirror root {args.root} does not exist")
    server = _MirrorServer(args.root, (args.host, args.port))
    print(f"HF_ENDPOINT=http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
