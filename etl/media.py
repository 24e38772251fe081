"""Verify and resize clips and images, so every curated file decodes and has the configured size.

Videos go through the ``ffmpeg`` binary that ``imageio-ffmpeg`` ships (there is no ffprobe): a clip is
probed by decoding every frame, which is also the corruption check, since a damaged stream often opens
fine and only fails while decoding.

Aspect handling. Videos keep their display aspect ratio: they are scaled so the height is the target
(720 by default) and the width follows, rounded to the nearest even number (H.264 with 4:2:0 chroma
needs even sizes); anamorphic sources (sample aspect ratio other than 1:1) are scaled by their display
aspect and written with square pixels. Clips are never cropped or padded. Images are resized so their
short side is the target (224 by default) and centre-cropped to a square, the input most image encoders
expect; for wide ad banners (728x90) this keeps only the middle of the banner.
"""

from __future__ import annotations

import io
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
from PIL import Image, ImageOps, UnidentifiedImageError

FFMPEG_TIMEOUT_S = 600.0
_ERROR_LEVELS = ("[error]", "[fatal]", "[panic]")
_SIZE = re.compile(r"(?<![\w.])(\d{1,5})x(\d{1,5})(?=[\s,\[])")
_RATE = re.compile(r"([\d.]+)(k?) (fps|tbr)\b")
_FRAME = re.compile(r"^frame=(\d+)$", re.MULTILINE)
_ADDRESS = re.compile(r" @ 0x[0-9a-f]+")  # "[h264 @ 0x55...]": noise that differs on every run


class MediaError(RuntimeError):
    """ffmpeg could not run or an encode failed for a reason that is not the input's fault."""


class CorruptMediaError(MediaError):
    """The input does not decode cleanly; the message carries ffmpeg's (or Pillow's) own words."""


@dataclass(frozen=True)
class VideoInfo:
    """What a full decode of a clip found. ``seconds`` is ``frames / fps``, as OpenVid-1M counts it."""

    frames: int
    fps: float
    width: int
    height: int
    seconds: float


def ffmpeg_exe() -> str:
    """The ffmpeg binary bundled with imageio-ffmpeg (or ``IMAGEIO_FFMPEG_EXE`` when set)."""
    return imageio_ffmpeg.get_ffmpeg_exe()


def _run_ffmpeg(args: list[str], path: Path, timeout_s: float) -> subprocess.CompletedProcess[str]:
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", *args]
    try:
        return subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=timeout_s)
    except subprocess.TimeoutExpired as error:
        raise MediaError(f"ffmpeg took longer than {timeout_s:.0f}s on {path}") from error
    except OSError as error:
        raise MediaError(f"could not run ffmpeg ({command[0]}): {error}") from error


def _error_lines(stderr: str) -> list[str]:
    lines = stderr.splitlines()
    return [_ADDRESS.sub("", line).strip() for line in lines if any(level in line for level in _ERROR_LEVELS)]


def probe_video(path: str | Path, *, timeout_s: float = FFMPEG_TIMEOUT_S) -> VideoInfo:
    """Decode every frame of the first video stream; raise ``CorruptMediaError`` on any decode error.

    ffmpeg may log an error and still exit 0 (concealed damage), so any error-level line counts as
    corruption, as do a non-zero exit and a stream with no decodable frame.
    """
    path = Path(path)
    result = _run_ffmpeg(
        ["-v", "level+info", "-i", str(path), "-map", "0:v:0", "-f", "null", "-progress", "pipe:1", "-"],
        path,
        timeout_s,
    )
    errors = _error_lines(result.stderr)
    if result.returncode != 0 or errors:
        message = "; ".join(errors[:5]) or f"ffmpeg exited with {result.returncode}"
        raise CorruptMediaError(f"{path.name}: {message}")
    frames = [int(n) for n in _FRAME.findall(result.stdout)]
    if not frames or frames[-1] == 0:
        raise CorruptMediaError(f"{path.name}: no video frame decoded")
    width, height, fps = _stream_geometry(result.stderr, path)
    return VideoInfo(frames[-1], fps, width, height, round(frames[-1] / fps, 6))


def _stream_geometry(stderr: str, path: Path) -> tuple[int, int, float]:
    """Width, height and frame rate from the input's first ``Video:`` stream line."""
    for line in stderr.split("Output #0", 1)[0].splitlines():
        if "Stream #" not in line or "Video:" not in line:
            continue
        description = line.split("Video:", 1)[1]
        size, rate = _SIZE.search(description), _RATE.search(description)
        if size is None or rate is None:
            break
        fps = float(rate.group(1)) * (1000 if rate.group(2) else 1)
        return int(size.group(1)), int(size.group(2)), fps
    raise CorruptMediaError(f"{path.name}: ffmpeg reported no video stream size and frame rate")


def resize_video(
    src: str | Path,
    dst: str | Path,
    height: int,
    *,
    allow_upscale: bool = False,
    crf: int = 20,
    preset: str = "veryfast",
    timeout_s: float = FFMPEG_TIMEOUT_S,
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
    target_h = str(even) if allow_upscale else f"min({even}\\,2*trunc(ih/2))"
    scale = f"scale=w=2*trunc(oh*dar/2+0.5):h={target_h}:flags=area,setsar=1"
    partial = dst.with_name(f".{dst.name}.partial")
    dst.parent.mkdir(parents=True, exist_ok=True)
    args = ["-v", "level+error", "-y", "-i", str(src), "-map", "0:v:0", "-an", "-sn", "-dn", "-vf", scale]
    args += ["-fps_mode", "passthrough", "-c:v", "libx264", "-preset", preset, "-crf", str(crf)]
    args += ["-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4", str(partial)]
    try:
        result = _run_ffmpeg(args, src, timeout_s)
        errors = _error_lines(result.stderr)
        if result.returncode != 0 or errors:
            message = "; ".join(errors[:5]) or f"ffmpeg exited with {result.returncode}"
            raise CorruptMediaError(f"{src.name}: resize failed: {message}")
        info = probe_video(partial, timeout_s=timeout_s)
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
