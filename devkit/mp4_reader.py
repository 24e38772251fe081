"""Reading an mp4 back the way a player would: what tests use to check the videos serving makes.

Why not in ``inference.video``: serving only writes videos; reading them back is for checking. And it
goes through imageio-ffmpeg's ffmpeg, a decoder independent of the PyAV encoder, so a round trip
tests what another program sees rather than the encoder agreeing with itself.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import NamedTuple

import imageio_ffmpeg


class Mp4Info(NamedTuple):
    frames: int
    fps: float
    width: int
    height: int


def read_mp4_info(data_or_path: bytes | str | Path) -> Mp4Info:
    """Frame count (by decoding every frame), fps, width and height of an mp4 file or its bytes."""
    if isinstance(data_or_path, bytes):
        with tempfile.TemporaryDirectory(prefix="adfame-mp4-") as tmp:
            path = Path(tmp) / "video.mp4"
            path.write_bytes(data_or_path)
            return _read_info(path)
    path = Path(data_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"no video at {path}")
    return _read_info(path)


def _read_info(path: Path) -> Mp4Info:
    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
        count = sum(1 for _ in reader)
    finally:
        reader.close()
    width, height = meta["size"]
    return Mp4Info(frames=count, fps=float(meta["fps"]), width=int(width), height=int(height))
