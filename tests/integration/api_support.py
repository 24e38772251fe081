"""Helpers for the API, feedback and selection-page tests: the worker's part, a served app.

The worker's part is simulated the way the worker does it (docs/architecture.md#contracts): real mp4
objects under ``{tenant}/{request_id}/{index}.mp4`` in adfame-videos, then the candidate rows and the
request's status in one transaction, through the same repository the worker uses. Everything talks
to the real stack; nothing is mocked. The databases and the served API are fixtures of conftest.py.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine, text

from adfame.contracts import VIDEOS_BUCKET, video_object_key
from adfame.repositories.requests import Candidate, Outcome, finish_request, record_request
from adfame.schemas import PromptRequest
from adfame.storage import ObjectStore
from adfame.waiting import wait_for

FRAMES, FPS, SIZE = 16, 8, 64


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
    request = PromptRequest(tenant=tenant, prompt=prompt, num_frames=FRAMES, fps=FPS, height=SIZE, width=SIZE)
    record_request(engine, request)
    return request.request_id


def complete_request(
    engine: Engine, store: ObjectStore | None, request_id: uuid.UUID, tenant: str, candidates: int = 5
) -> list[str]:
    """Do the worker's part: upload the mp4s (unless ``store`` is None), write the rows, mark it succeeded."""
    made = [
        Candidate(index, f"shot {index}", 1000 + index, video_object_key(tenant, str(request_id), index))
        for index in range(candidates)
    ]
    if store is not None:
        for candidate in made:
            store.put_bytes(
                VIDEOS_BUCKET, candidate.object_key, make_mp4(candidate.index), content_type="video/mp4"
            )
    timings = {"queue_wait_s": 0.05, "denoise_s": 0.4, "decode_s": 0.05, "upload_s": 0.02}
    finish_request(engine, request_id, Outcome("succeeded", "champion", "base", timings, candidates=made))
    return [candidate.object_key for candidate in made]


def finished_jobs(engine: Engine, tenant: str, count: int, candidates: int = 1) -> list[uuid.UUID]:
    """``count`` succeeded jobs with candidate rows only (no objects): enough to select."""
    ids = [insert_request(engine, tenant, "a bulk test prompt") for _ in range(count)]
    for request_id in ids:
        complete_request(engine, None, request_id, tenant, candidates)
    return ids


def complete_when_submitted(
    engine: Engine, store: ObjectStore, prompt: str, tenant: str, timeout_s: float
) -> threading.Thread:
    """Play the worker in the background: once the API has recorded ``prompt``'s job, complete it.

    The caller starts the job (an HTTP call, a click) and joins the returned thread.
    """

    def submitted() -> uuid.UUID | None:
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT request_id FROM generation_requests WHERE prompt = :p"), {"p": prompt}
            ).scalar_one_or_none()

    def play_worker() -> None:
        request_id = wait_for(submitted, what=f"the job of {prompt!r} recorded", timeout_s=timeout_s)
        complete_request(engine, store, request_id, tenant)

    worker = threading.Thread(target=play_worker, name="play-worker")
    worker.start()
    return worker


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
    wait_for(lambda: server.started, what="uvicorn started", timeout_s=20, interval_s=0.2)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
