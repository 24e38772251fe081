"""Candidates survive the trip to mp4 and back: frame count, fps and size as generated."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from devkit.mp4_reader import read_mp4_info
from inference.video import encode_mp4, move_index_to_front, mp4_boxes


def _frames(count: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(count, height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize(("count", "fps"), [(17, 16), (16, 24), (1, 8)])
def test_round_trip_keeps_frame_count_and_fps(count: int, fps: int, tmp_path: Path) -> None:
    data = encode_mp4(_frames(count, 64, 64), fps)
    kinds = [box.kind for box in mp4_boxes(data)]
    assert kinds[:2] == [b"ftyp", b"moov"]  # faststart: playable before the download ends
    assert kinds.index(b"moov") < kinds.index(b"mdat")
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


def _encode_with_ffmpeg(path: Path, frames: np.ndarray) -> None:
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=12, options={"crf": "23", "threads": "1"})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())


def _remux_with_ffmpeg(source: Path, target: Path, movflags: str) -> bytes:
    """The same packets written again by FFmpeg's muxer, its index at the end or (``+faststart``) in
    front. (Two encodings of the same frames may differ: x264 here is not bit-for-bit repeatable.)"""
    options = {"movflags": movflags} if movflags else {}
    with av.open(str(source)) as src, av.open(str(target), "w", format="mp4", options=options) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:  # the demuxer's final empty packet carries none
                packet.stream = stream
                out.mux(packet)
    return target.read_bytes()


@pytest.mark.parametrize(("count", "height", "width"), [(1, 16, 16), (17, 64, 64), (40, 48, 96)])
def test_index_moved_to_front_byte_for_byte_as_ffmpeg_faststart(
    count: int, height: int, width: int, tmp_path: Path
) -> None:
    _encode_with_ffmpeg(tmp_path / "encoded.mp4", _frames(count, height, width))
    index_last = _remux_with_ffmpeg(tmp_path / "encoded.mp4", tmp_path / "plain.mp4", "")
    assert [box.kind for box in mp4_boxes(index_last)][-1] == b"moov"
    reference = _remux_with_ffmpeg(tmp_path / "encoded.mp4", tmp_path / "faststart.mp4", "+faststart")
    assert move_index_to_front(index_last) == reference
    assert move_index_to_front(reference) == reference  # already in front: unchanged


def test_move_index_refuses_what_is_not_an_mp4() -> None:
    with pytest.raises(ValueError, match="malformed mp4 box"):
        move_index_to_front(b"\x00\x00\x00\x20ftypisom" + b"\x00" * 8)
    with pytest.raises(ValueError, match="ftyp, moov and mdat"):
        move_index_to_front(b"\x00\x00\x00\x10ftypisom\x00\x00\x00\x00")
