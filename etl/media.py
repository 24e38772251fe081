"""Verify and resize clips and images, so every curated file decodes and has the configured size.

Videos go through PyAV (FFmpeg's libraries in-process, as serving's encoder does): a clip is probed by
decoding every frame, which is also the corruption check, since a damaged stream often opens fine and
only fails while decoding. FFmpeg conceals much damage and only logs it, so every error FFmpeg logs
while a clip decodes counts as corruption, as does an exception, a missing video stream or a stream
without a decodable frame.

Aspect handling. Videos keep their display aspect ratio: they are scaled so the height is the target
(720 by default) and the width follows, rounded to the nearest even number (H.264 with 4:2:0 chroma
needs even sizes); anamorphic sources (sample aspect ratio other than 1:1) are scaled by their display
aspect and written with square pixels. Clips are never cropped or padded. Images are resized so their
short side is the target (224 by default) and centre-cropped to a square, the input most image encoders
expect; for wide ad banners (728x90) this keeps only the middle of the banner.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.logging
from av.container import InputContainer
from av.video.stream import VideoStream
from PIL import Image, ImageOps, UnidentifiedImageError

_LOGGED_ERRORS = 5  # FFmpeg's error lines a CorruptMediaError quotes
_LEVEL_NAMES = {av.logging.PANIC: "panic", av.logging.FATAL: "fatal"}  # and "error"


class CorruptMediaError(RuntimeError):
    """The input does not decode cleanly; the message carries FFmpeg's (or Pillow's) own words."""


@dataclass(frozen=True)
class VideoInfo:
    """What a full decode of a clip found. ``seconds`` is ``frames / fps``, as OpenVid-1M counts it.

    ``width`` and ``height`` are the stored frame size; ``fps`` is the stream's average frame rate to
    two decimals (29.97, the precision metadata and reports use).
    """

    frames: int
    fps: float
    width: int
    height: int
    seconds: float


def _listen_for_errors() -> None:
    """Route FFmpeg's error lines through PyAV, where ``av.logging.Capture`` can collect them.

    PyAV drops FFmpeg's log by default. Repeats must not be skipped either: two clips decoding in two
    threads may log the same line, and the second clip's capture must still see it.
    """
    level = av.logging.get_level()
    if level is None or level < av.logging.ERROR:
        av.logging.set_level(av.logging.ERROR)
    av.logging.set_skip_repeated(False)


@contextmanager
def _failing_on_decode_errors(path: Path, doing: str = "") -> Iterator[None]:
    """Raise ``CorruptMediaError`` when FFmpeg raises, or logs an error, while the block runs.

    Only this thread's log is captured, so the decoders inside must not start threads of their own.
    """
    _listen_for_errors()
    prefix = f"{path.name}: {doing}" if doing else f"{path.name}: "
    with av.logging.Capture() as logged:
        try:
            yield
        except av.FFmpegError as error:
            lines = [*_error_lines(logged)[: _LOGGED_ERRORS - 1], error.strerror or str(error)]
            raise CorruptMediaError(prefix + "; ".join(lines)) from error
    if lines := _error_lines(logged):
        raise CorruptMediaError(prefix + "; ".join(lines[:_LOGGED_ERRORS]))


def _error_lines(logged: list[tuple[int, str, str]]) -> list[str]:
    """``[h264] [error] <message>``: the shape of FFmpeg's own log lines."""
    return [
        f"[{name}] [{_LEVEL_NAMES.get(level, 'error')}] {text.strip()}"
        for level, name, text in logged
        if level <= av.logging.ERROR
    ]


def _first_video_stream(container: InputContainer, path: Path) -> VideoStream:
    if not container.streams.video:
        raise CorruptMediaError(f"{path.name}: no video stream")
    stream = container.streams.video[0]
    stream.codec_context.thread_count = 1  # decode in the calling thread, whose log is captured
    return stream


def probe_video(path: str | Path) -> VideoInfo:
    """Decode every frame of the first video stream; raise ``CorruptMediaError`` on any decode error."""
    path = Path(path)
    with _failing_on_decode_errors(path), av.open(str(path)) as container:
        stream = _first_video_stream(container, path)
        frames = sum(1 for _ in container.decode(stream))
        rate = stream.average_rate or stream.guessed_rate
        width, height = stream.codec_context.width, stream.codec_context.height
    if frames == 0:
        raise CorruptMediaError(f"{path.name}: no video frame decoded")
    if not rate:
        raise CorruptMediaError(f"{path.name}: the video stream has no frame rate")
    fps = round(float(rate), 2)
    return VideoInfo(frames, fps, width, height, round(frames / fps, 6))


def _scaled_size(stream: VideoStream, height: int, allow_upscale: bool) -> tuple[int, int]:
    """Target ``(width, height)``: even height (the source's at most), width from the display aspect."""
    context = stream.codec_context
    if not allow_upscale:
        height = min(height, 2 * (context.height // 2))
    pixel_aspect = stream.sample_aspect_ratio or context.sample_aspect_ratio or Fraction(1)
    display_aspect = Fraction(context.width, context.height) * pixel_aspect
    return 2 * int(height * display_aspect / 2 + Fraction(1, 2)), height


def _reencode(src: Path, dst: Path, height: int, allow_upscale: bool, crf: int, preset: str) -> None:
    """H.264 yuv420p mp4 with its index in front (``faststart``); every frame keeps its timestamp."""
    with (
        av.open(str(src)) as source,
        av.open(str(dst), "w", format="mp4", options={"movflags": "+faststart"}) as target,
    ):
        decoder = _first_video_stream(source, src)
        width, height = _scaled_size(decoder, height, allow_upscale)
        encoder = target.add_stream(
            "libx264",
            rate=decoder.average_rate or decoder.guessed_rate,
            options={"crf": str(crf), "preset": preset},
        )
        encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
        encoder.codec_context.sample_aspect_ratio = Fraction(1)
        # The source's time base, so no timestamp is rounded onto another: frame count and rate stay.
        encoder.codec_context.time_base = encoder.time_base = decoder.time_base
        for frame in source.decode(decoder):
            scaled = frame.reformat(width, height, "yuv420p", interpolation="AREA")
            target.mux(encoder.encode(scaled))
        target.mux(encoder.encode())  # flush the encoder's delayed frames


def resize_video(
    src: str | Path,
    dst: str | Path,
    height: int,
    *,
    allow_upscale: bool = False,
    crf: int = 20,
    preset: str = "veryfast",
) -> VideoInfo:
    """Re-encode ``src`` as H.264 yuv420p mp4 of the target height; return what the result decodes to.

    The height is ``height`` rounded down to even, but a smaller source is not upscaled (unless
    ``allow_upscale``): upscaling adds bytes, not detail, and the loader can still resize at training
    time; the returned ``VideoInfo`` tells the real size. Every frame keeps its timestamp, so frame count
    and frame rate are the source's. Audio, subtitles and data streams are dropped: training uses frames
    and captions only. The file appears at ``dst`` only once complete.
    """
    src, dst = Path(src), Path(dst)
    even = 2 * (height // 2)
    if even < 2:
        raise ValueError(f"target height must be at least 2, got {height}")
    partial = dst.with_name(f".{dst.name}.partial")
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _failing_on_decode_errors(src, "resize failed: "):
            _reencode(src, partial, even, allow_upscale, crf, preset)
        info = probe_video(partial)
        partial.replace(dst)
    finally:
        partial.unlink(missing_ok=True)
    return info


def resize_image(data: bytes, size: int, *, image_format: str = "PNG") -> bytes:
    """Short side to ``size``, centre-cropped to ``size x size``; encoded as PNG (lossless) or JPEG.

    EXIF orientation is applied first, so photos are cropped the way they are shown. Small images are
    upscaled: the image encoder needs exactly ``size x size``.
    """
    image_format = image_format.upper()
    if image_format not in ("PNG", "JPEG"):
        raise ValueError(f"image_format must be PNG or JPEG, got {image_format!r}")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            mode = "RGBA" if has_alpha and image_format == "PNG" else "RGB"
            square = ImageOps.fit(image.convert(mode), (size, size), Image.Resampling.LANCZOS)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise CorruptMediaError(f"undecodable image ({len(data)} bytes): {error}") from error
    out = io.BytesIO()
    square.save(out, format=image_format, **({"quality": 90} if image_format == "JPEG" else {}))
    return out.getvalue()
