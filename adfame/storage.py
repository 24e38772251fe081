"""The object store client every stage uses (S3 API through the ``minio`` SDK).

Wraps the SDK so that callers get retries on transient failures and errors
that name the endpoint, bucket and key, instead of a bare urllib3 trace.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import urllib3
from minio import Minio
from minio.error import S3Error
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from adfame.settings import Settings, get_settings

log = logging.getLogger(__name__)
T = TypeVar("T")

_TRANSIENT = (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


class ObjectStoreError(RuntimeError):
    """An object store call failed; the message says where and why."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str


class ObjectStore:
    """Put, get, presign and list objects in an S3-compatible store."""

    def __init__(self, settings: Settings | None = None, *, retries: int = 4, backoff_s: float = 0.5):
        self.settings = settings or get_settings()
        self.retries = retries
        self.backoff_s = backoff_s
        self.client = Minio(
            self.settings.s3_endpoint,
            access_key=self.settings.s3_access_key,
            secret_key=self.settings.s3_secret_key.get_secret_value(),
            secure=self.settings.s3_secure,
            region=self.settings.s3_region,
            http_client=urllib3.PoolManager(
                timeout=urllib3.Timeout(connect=5, read=60), maxsize=16, retries=False
            ),
        )

    # ---- plumbing ---------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one SDK call, retrying transient network errors with exponential backoff.

        ``retries`` attempts in all, sleeping ``backoff_s``, then twice that, and so on between them:
        a store that is restarting answers again within seconds, one that is down fails in a few.
        An S3 error is the store's answer, so it is raised at once.
        """

        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            log.warning("%s: %s; retrying in %.1fs", what, error.__class__.__name__, delay)

        retrying = Retrying(
            stop=stop_after_attempt(self.retries),
            wait=wait_exponential(multiplier=self.backoff_s, exp_base=2),
            retry=retry_if_exception_type(_TRANSIENT),
            before_sleep=log_retry,
            reraise=True,
        )
        try:
            return retrying(fn)
        except S3Error as exc:
            raise ObjectStoreError(
                f"{what} failed at {self.settings.s3_url}: {exc.code}: {exc.message}"
            ) from exc
        except _TRANSIENT as exc:
            raise ObjectStoreError(
                f"{what} failed: object store at {self.settings.s3_url} unreachable after "
                f"{self.retries} attempts ({exc.__class__.__name__}: {exc}); is it running? "
                "Try `adfame stack status`."
            ) from exc

    # ---- buckets ----------------------------------------------------------
    def ensure_bucket(self, bucket: str) -> bool:
        """Create the bucket if it is missing; True when it was created."""
        if self._call(f"check bucket {bucket}", lambda: self.client.bucket_exists(bucket)):
            return False
        self._call(f"create bucket {bucket}", lambda: self.client.make_bucket(bucket))
        return True

    def list_buckets(self) -> list[str]:
        return [b.name for b in self._call("list buckets", self.client.list_buckets)]

    # ---- objects ----------------------------------------------------------
    def put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> str:
        """Store bytes; returns the object's etag."""
        result = self._call(
            f"put s3://{bucket}/{key}",
            lambda: self.client.put_object(
                bucket, key, io.BytesIO(data), len(data), content_type=content_type
            ),
        )
        return result.etag

    def put_file(
        self, bucket: str, key: str, path: Path, content_type: str = "application/octet-stream"
    ) -> str:
        result = self._call(
            f"upload {path} to s3://{bucket}/{key}",
            lambda: self.client.fput_object(bucket, key, str(path), content_type=content_type),
        )
        return result.etag

    def get_bytes(self, bucket: str, key: str, offset: int = 0, length: int = 0) -> bytes:
        """Whole object, or ``length`` bytes from ``offset`` (a ranged read)."""

        def read() -> bytes:
            response = self.client.get_object(bucket, key, offset=offset, length=length)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return self._call(f"get s3://{bucket}/{key}", read)

    def get_file(self, bucket: str, key: str, path: Path) -> Path:
        self._call(
            f"download s3://{bucket}/{key} to {path}",
            lambda: self.client.fget_object(bucket, key, str(path)),
        )
        return path

    def stat(self, bucket: str, key: str) -> ObjectInfo | None:
        """Size and etag, or None when the object does not exist."""
        try:
            info = self.client.stat_object(bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return None
            raise ObjectStoreError(f"stat s3://{bucket}/{key}: {exc.code}: {exc.message}") from exc
        return ObjectInfo(key=key, size=info.size or 0, etag=info.etag or "")

    def exists(self, bucket: str, key: str) -> bool:
        return self.stat(bucket, key) is not None

    def list(self, bucket: str, prefix: str = "", recursive: bool = True) -> list[ObjectInfo]:
        objects = self._call(
            f"list s3://{bucket}/{prefix}",
            lambda: list(self.client.list_objects(bucket, prefix=prefix, recursive=recursive)),
        )
        return [ObjectInfo(key=o.object_name, size=o.size or 0, etag=o.etag or "") for o in objects]

    def remove(self, bucket: str, key: str) -> None:
        self._call(f"remove s3://{bucket}/{key}", lambda: self.client.remove_object(bucket, key))

    def presign_get(self, bucket: str, key: str, expires: timedelta = timedelta(hours=1)) -> str:
        """A URL that lets anyone holding it download the object until it expires."""
        return self._call(
            f"presign s3://{bucket}/{key}",
            lambda: self.client.presigned_get_object(bucket, key, expires=expires),
        )
