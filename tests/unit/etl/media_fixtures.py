"""Little real H.264 clips and the damage the corruption checks must catch, for the media and extract tests.

The clips come from FFmpeg's ``testsrc`` pattern through PyAV, the library the pipeline decodes with.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av


def make_clip(path: Path, size: str = "64x48", frames: int = 12, rate: int = 8, sar: int = 1) -> Path:
    """An mp4 of ``frames`` testsrc frames at ``rate`` fps; its pixels show ``sar`` times as wide as tall."""
    pattern = av.open(f"testsrc=size={size}:rate={rate}", format="lavfi")
    with pattern, av.open(str(path), "w") as out:
        width, height = (int(n) for n in size.split("x"))
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.sample_aspect_ratio = Fraction(sar)
        for index, frame in enumerate(pattern.decode(video=0)):
            if index == frames:
                break
            out.mux(stream.encode(frame.reformat(format="yuv420p")))
        out.mux(stream.encode())
    return path


def garble(data: bytes) -> bytes:
    """Flip bits in the first frames' data, as a bad download would: the file opens, decoding fails."""
    damaged = bytearray(data)
    start = damaged.find(b"mdat") + 40
    for at in range(start, min(len(damaged), start + 1500), 7):
        damaged[at] ^= 0x5A
    return bytes(damaged)
