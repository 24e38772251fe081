"""Storing a request's candidate videos: each encoded to mp4 and uploaded, all side by side.

Why a step of its own: encoding is mostly FFmpeg's native work and an upload waits on the network, so
the candidates of a request go through a pool, each uploaded as soon as it is encoded. Keys are
deterministic (``{tenant}/{request_id}/{index}.mp4``): a retry overwrites, never orphans. A candidate
that cannot be encoded fails the request, and the others' uploads are removed again; an object store
outage leaves them, since the request is retried and overwrites them.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from adfame.contracts import VIDEOS_BUCKET
from adfame.storage import ObjectStore, ObjectStoreError

log = logging.getLogger(__name__)


class CandidateVideos:
    """Encodes and uploads candidate videos to adfame-videos with ``encoders`` threads (+1 for uploads)."""

    def __init__(self, store: ObjectStore, encoders: int) -> None:
        self.store = store
        # An encoder on every core given, plus one thread whose upload waits on the network.
        self.pool = ThreadPoolExecutor(encoders + 1, thread_name_prefix="store")

    def put_all(self, keys: list[str], videos: list[np.ndarray], fps: int) -> dict[str, float]:
        """Store each video under its key; returns ``store_s`` (wall), summed ``encode_s``, ``upload_s``."""
        start = time.perf_counter()
        pairs = zip(keys, videos, strict=True)
        futures = [self.pool.submit(self._put, key, video, fps) for key, video in pairs]
        wait(futures)  # every upload has ended, done or failed, before the request's fate is settled
        try:
            spent = [future.result() for future in futures]
        except ObjectStoreError:
            raise  # an outage: the request is read again and its retry overwrites these keys
        except Exception:
            self.discard(keys)
            raise
        return {
            "store_s": time.perf_counter() - start,
            "encode_s": sum(encode for encode, _ in spent),
            "upload_s": sum(upload for _, upload in spent),
        }

    def _put(self, key: str, frames: np.ndarray, fps: int) -> tuple[float, float]:
        """Encode one candidate and upload it; returns (encode, upload) seconds."""
        from inference.video import encode_mp4

        start = time.perf_counter()
        data = encode_mp4(frames, fps)
        encoded = time.perf_counter()
        self.store.put_bytes(VIDEOS_BUCKET, key, data, content_type="video/mp4")
        return encoded - start, time.perf_counter() - encoded

    def discard(self, keys: list[str]) -> None:
        """A failed request keeps no videos: remove what its candidates uploaded (best effort)."""
        for key in keys:
            try:
                self.store.remove(VIDEOS_BUCKET, key)
            except ObjectStoreError as exc:
                log.warning("could not remove %s of a failed request: %s", key, exc)

    def close(self) -> None:
        self.pool.shutdown()
