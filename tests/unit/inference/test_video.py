"""Candidates survive the trip to mp4 and back: frame count, fps and size as generated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.video import encode_mp4, read_mp4_info


def _frames(count: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(count, height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize(("count", "fps"), [(17, 16), (16, 24), (1, 8)])
def test_round_trip_keeps_frame_count_and_fps(count: int, fps: int, tmp_path: Path) -> None:
    data = encode_mp4(_frames(count, 64, 64), fps)
    assert data[4:8] == b"ftyp"
    assert data.index(b"moov") < data.index(b"mdat")  # faststart: playable before the download ends
    assert read_mp4_info(data) == (count, float(fps), 64, 64)
    (tmp_path / "clip.mp4").write_bytes(data)
    assert read_mp4_info(tmp_path / "clip.mp4").frames == count


def test_h264_yuv420p_and_odd_sizes_padded_to_even() -> None:
    data = encode_mp4(_frames(5, 33, 47), 16)
    info = read_mp4_info(data)
    assert (info.frames, info.width, info.height) == (5, 48, 34)
    assert b"avc1" in data  # H.264 sample entry


def test_bad_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        encode_mp4(np.zeros((3, 8, 8, 3), dtype=np.float32), 16)
    with pytest.raises(ValueError, match="without frames"):
        encode_mp4(np.zeros((0, 8, 8, 3), dtype=np.uint8), 16)
    with pytest.raises(ValueError, match="fps"):
        encode_mp4(np.zeros((3, 8, 8, 3), dtype=np.uint8), 0)
    with pytest.raises(FileNotFoundError, match=r"missing\.mp4"):
        read_mp4_info(tmp_path / "missing.mp4")
