"""Raw planar 4:2:0 ``.yuv`` files; the size (and bit depth) must be given explicitly."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from jaxcodec.errors import InputError
from jaxcodec.frame import Frame, make_frame, stack_frames
from jaxcodec.io.atomic import atomic_open


def parse_size(size: str | tuple[int, int]) -> tuple[int, int]:
    """``"176x144"`` -> ``(176, 144)`` (width, height)."""
    if isinstance(size, tuple):
        return size
    try:
        w, h = (int(s) for s in size.lower().split("x"))
    except ValueError:
        raise InputError(f"bad size {size!r}; expected WIDTHxHEIGHT such as 176x144") from None
    if w <= 0 or h <= 0:
        raise InputError(f"bad size {size!r}")
    return w, h


def read_yuv(
    path: str | os.PathLike, size: str | tuple[int, int], *, bit_depth: int = 8, max_frames: int | None = None
) -> Frame:
    """Read raw planar 4:2:0 frames (16-bit little-endian words above 8 bits)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"file not found: {path}")
    width, height = parse_size(size)
    if width % 2 or height % 2:
        raise InputError(f"4:2:0 needs even width and height, got {width}x{height}")
    if bit_depth not in (8, 10):
        raise InputError(f"unsupported bit depth {bit_depth}; expected 8 or 10")
    bps = 1 if bit_depth == 8 else 2
    luma = width * height
    frame_bytes = (luma + luma // 2) * bps
    nbytes = path.stat().st_size
    if nbytes == 0 or nbytes % frame_bytes:
        raise InputError(
            f"{path}: size {nbytes} bytes is not a whole number of {width}x{height} {bit_depth}-bit 4:2:0 frames "
            f"({frame_bytes} bytes each); check --size and --bit-depth"
        )
    count = nbytes // frame_bytes
    if max_frames is not None:
        count = min(count, max_frames)
    dtype = np.uint8 if bps == 1 else np.dtype("<u2")
    raw = np.fromfile(path, dtype=dtype, count=count * frame_bytes // bps).reshape(count, -1)
    frames = []
    for t in range(count):
        y = raw[t, :luma].reshape(height, width)
        u = raw[t, luma : luma + luma // 4].reshape(height // 2, width // 2)
        v = raw[t, luma + luma // 4 :].reshape(height // 2, width // 2)
        if bps == 2:
            y, u, v = (p.astype(np.uint16) for p in (y, u, v))
        frames.append(make_frame(y.copy(), u.copy(), v.copy(), bit_depth=bit_depth))
    return stack_frames(frames)


def write_yuv(path: str | os.PathLike, frames: Frame | Sequence[Frame]) -> None:
    if not isinstance(frames, Frame):
        frames = stack_frames(list(frames))
    if not frames.batch_shape:
        frames = stack_frames([frames])
    dtype = np.uint8 if frames.bit_depth == 8 else np.dtype("<u2")
    with atomic_open(path, "wb") as f:
        for t in range(len(frames)):
            for plane in (frames.y[t], frames.u[t], frames.v[t]):
                f.write(np.ascontiguousarray(np.asarray(plane), dtype=dtype).tobytes())
