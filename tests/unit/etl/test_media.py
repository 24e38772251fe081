"""Probing is a full decode that catches damage; resizing keeps aspect, frames and fps; images end square."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from media_fixtures import garble, make_clip
from PIL import Image

from etl.media import CorruptMediaError, VideoInfo, probe_video, resize_image, resize_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("media") / "clip.mp4")


def test_probe_decodes_every_frame(clip: Path) -> None:
    assert probe_video(clip) == VideoInfo(frames=12, fps=8.0, width=64, height=48, seconds=1.5)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[: len(data) // 2], "moov atom not found"),
        (garble, "[error]"),
        (lambda data: b"not a video at all" * 50, "Invalid data"),
    ],
    ids=["truncated", "garbled", "junk"],
)
def test_probe_raises_with_ffmpegs_message_for_corrupt_clips(
    clip: Path, tmp_path: Path, damage: Callable[[bytes], bytes], message: str
) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(damage(clip.read_bytes()))

    with pytest.raises(CorruptMediaError) as raised:
        probe_video(broken)
    assert "broken.mp4" in str(raised.value) and message in str(raised.value)


def test_resize_sets_the_height_keeps_aspect_frames_and_fps(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "small" / "clip.mp4"

    info = resize_video(clip, out, 32)

    assert info == probe_video(out)
    assert (info.height, info.width % 2, info.frames, info.fps) == (32, 0, 12, 8.0)
    assert info.width == 42  # 64 * 32 / 48 = 42.7, nearest even
    assert list(out.parent.iterdir()) == [out]  # no partial file left behind


def test_resize_never_upscales_unless_asked(clip: Path, tmp_path: Path) -> None:
    kept = resize_video(clip, tmp_path / "a.mp4", 720)
    upscaled = resize_video(clip, tmp_path / "b.mp4", 96, allow_upscale=True)

    assert (kept.width, kept.height) == (64, 48)
    assert (upscaled.width, upscaled.height) == (128, 96)


def test_resize_keeps_the_display_aspect_of_anamorphic_clips(tmp_path: Path) -> None:
    wide_pixels = make_clip(tmp_path / "sar.mp4", sar=2)  # 64x48 stored, shown as 128x48

    info = resize_video(wide_pixels, tmp_path / "out.mp4", 32)

    assert (info.width, info.height) == (86, 32)  # 128 * 32 / 48 = 85.3, nearest even


def test_resize_of_a_corrupt_clip_raises_and_leaves_nothing(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)

    with pytest.raises(CorruptMediaError):
        resize_video(broken, tmp_path / "out" / "x.mp4", 32)
    assert list((tmp_path / "out").iterdir()) == []


def _banner() -> bytes:
    """300x100: a red, a green and a blue third."""
    image = Image.new("RGB", (300, 100))
    for index, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        image.paste(colour, (index * 100, 0, index * 100 + 100, 100))
    out = io.BytesIO()
    image.save(out, format="JPEG")
    return out.getvalue()


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_resize_image_scales_the_short_side_and_centre_crops(image_format: str) -> None:
    square = Image.open(io.BytesIO(resize_image(_banner(), 32, image_format=image_format)))

    assert square.format == image_format and square.size == (32, 32)
    red, green, blue = square.convert("RGB").getpixel((2, 16))
    assert green > 200 and red < 60 and blue < 60  # only the middle third is left


def test_resize_image_keeps_transparency_in_png() -> None:
    out = io.BytesIO()
    Image.new("RGBA", (40, 60), (10, 20, 30, 0)).save(out, format="PNG")

    square = Image.open(io.BytesIO(resize_image(out.getvalue(), 16)))

    assert square.mode == "RGBA" and square.size == (16, 16) and square.getpixel((8, 8))[3] == 0


@pytest.mark.parametrize(
    "data", [b"", b"GIF89a broken", _banner()[:200]], ids=["empty", "garbage", "truncated"]
)
def test_resize_image_rejects_undecodable_bytes(data: bytes) -> None:
    with pytest.raises(CorruptMediaError, match="undecodable image"):
        resize_image(data, 32)
