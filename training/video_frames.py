"""Reading an exported mp4 file back into frames for training and evaluation.

The decoding itself is serving's (``inference.video.decode_mp4``, PyAV), so a taste, a metric or
the VAE sees a read-back video in the same F x H x W x 3 uint8 layout generation produces; this
adds only the file and an error that names it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inference.video import decode_mp4


class VideoReadError(RuntimeError):
    """A video file could not be read or decoded; the message names the file."""


def read_frames(path: Path) -> np.ndarray:
    """Every frame of the video file at ``path`` as F x H x W x 3 uint8 RGB."""
    try:
        return decode_mp4(Path(path).read_bytes())
    except (ValueError, OSError) as exc:
        raise VideoReadError(f"could not read the video {path}: {exc}") from exc
