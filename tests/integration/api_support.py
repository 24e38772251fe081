"""Helpers for the API, feedback and selection-page tests: a fresh database, the worker's part, a served app.

The worker's part is simulated the way the worker does it (DESIGN §5): real mp4 objects under
``{tenant}/{request_id}/{index}.mp4`` in adfame-videos, then the candidate rows and the request's
status in one transaction. Everything talks to the real stack; nothing is mocked.
"""

from __future__ import annotations

import json
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import imageio_ffmpeg
import numpy as np
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine, text

from adfame import db
from adfame.contracts import VIDEOS_BUCKET, video_object_key
from adfame.settings import Settings
from adfame.storage import ObjectStore

FRAMES, FPS, SIZE = 16, 8, 64
T = TypeVar("T")


@contextmanager
def fresh_database(settings: Settings) -> Iterator[Engine]:
    """A new, migrated, uniquely named database, dropped afterwards; other tests' rows never interfere."""
    admin = db.create_engine_for(settings, database="postgres").execution_options(
        isolation_level="AUTOCOMMIT"
    )
    name = f"adfame_test_api_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = db.create_engine_for(settings, database=name)
    try:
        db.upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def make_mp4(shade: int, frames: int = FRAMES, fps: int = FPS, size: int = SIZE) -> bytes:
    """A small real H.264 mp4: a bar sliding over a coloured background (``shade`` picks the colour)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        writer = imageio_ffmpeg.write_frames(
            str(path), (size, size), fps=fps, codec="libx264", pix_fmt_out="yuv420p", macro_block_size=16,
            output_params=["-movflags", "+faststart"],
        )  # fmt: skip
        writer.send(None)
        for i in range(frames):
            frame = np.zeros((size, size, 3), dtype=np.uint8)
            frame[:] = ((shade * 67) % 256, (shade * 131) % 256, 160)
            x = (i * size) // frames
            frame[:, x : x + 8] = 255
            writer.send(frame.tobytes())
        writer.close()
        return path.read_bytes()


def insert_request(engine: Engine, tenant: str, prompt: str = "a sunset over the ocean") -> uuid.UUID:
    """A queued request's row, as the API writes it."""
    request_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO generation_requests (request_id, tenant, prompt, num_frames, fps, height, width)"
                " VALUES (:id, :tenant, :prompt, :frames, :fps, :size, :size)"
            ),
            {
                "id": request_id,
                "tenant": tenant,
                "prompt": prompt,
                "frames": FRAMES,
                "fps": FPS,
                "size": SIZE,
            },
        )
    return request_id


def complete_request(
    engine: Engine, store: ObjectStore | None, request_id: uuid.UUID, tenant: str, candidates: int = 5
) -> list[str]:
    """Do the worker's part: upload the mp4s (unless ``store`` is None), write the rows, mark it succeeded."""
    keys = [video_object_key(tenant, str(request_id), i) for i in range(candidates)]
    if store is not None:
        for index, key in enumerate(keys):
            store.put_bytes(VIDEOS_BUCKET, key, make_mp4(index), content_type="video/mp4")
    timings = {"queue_wait_s": 0.05, "denoise_s": 0.4, "decode_s": 0.05, "upload_s": 0.02}
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE generation_requests SET status = 'succeeded', model_version = 'base',"
                " route = 'champion', started_at = now(), finished_at = now(),"
                " timings = CAST(:timings AS jsonb)"
                " WHERE request_id = :id"
            ),
            {"id": request_id, "timings": json.dumps(timings)},
        )
        for index, key in enumerate(keys):
            conn.execute(
                text(
                    "INSERT INTO candidates (request_id, candidate_index, variation_prompt, seed, object_key)"
                    " VALUES (:id, :index, :variation, :seed, :key) ON CONFLICT DO NOTHING"
                ),
                {
                    "id": request_id,
                    "index": index,
                    "variation": f"shot {index}",
                    "seed": 1000 + index,
                    "key": key,
                },
            )
    return keys


def finished_jobs(engine: Engine, tenant: str, count: int, candidates: int = 1) -> list[uuid.UUID]:
    """``count`` succeeded jobs with candidate rows only (no objects): enough to select, fast to make."""
    ids = [uuid.uuid4() for _ in range(count)]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO generation_requests (request_id, tenant, prompt, height, width, status, route)"
                " VALUES (:id, :tenant, 'a bulk test prompt', 64, 64, 'succeeded', 'champion')"
            ),
            [{"id": i, "tenant": tenant} for i in ids],
        )
        conn.execute(
            text(
                "INSERT INTO candidates (request_id, candidate_index, variation_prompt, seed, object_key)"
                " VALUES (:id, :index, 'v', 1, :key)"
            ),
            [
                {"id": i, "index": n, "key": video_object_key(tenant, str(i), n)}
                for i in ids
                for n in range(candidates)
            ],
        )
    return ids


def wait_until(
    predicate: Callable[[], T], timeout_s: float, interval_s: float = 0.2, what: str = "condition"
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """Serve the app with uvicorn on a free loopback port (lifespan included); yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout_s=20, what="uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
