"""YUV4MPEG2 (Y4M) reading and writing, 4:2:0 at 8 and 10 bits.

Header: ``YUV4MPEG2 W<w> H<h> F<num>:<den> [Ip] [A<a>:<b>] [C<tag>] [X...]``, then
``FRAME[ params]\\n`` and the planes, little-endian 16-bit words for bit depths above 8.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

from jaxcodec.errors import InputError
from jaxcodec.frame import Frame, make_frame, stack_frames
from jaxcodec.io.atomic import atomic_open

_CHROMA_TAGS = {"420": 8, "420jpeg": 8, "420paldv": 8, "420mpeg2": 8, "420p10": 10}
_MAGIC = b"YUV4MPEG2"


def _parse_header(line: bytes, path) -> tuple[int, int, Fraction, int]:
    fields = line.split()
    if not fields or fields[0] != _MAGIC:
        raise InputError(f"{path}: not a Y4M file (missing YUV4MPEG2 signature)")
    width = height = None
    fps = Fraction(25)
    bit_depth = 8
    for tok in fields[1:]:
        key, val = chr(tok[0]), tok[1:].decode("ascii", "replace")
        try:
            if key == "W":
                width = int(val)
            elif key == "H":
                height = int(val)
            elif key == "F":
                num, den = val.split(":")
                fps = Fraction(int(num), int(den))
            elif key == "C":
                if val not in _CHROMA_TAGS:
                    raise InputError(
                        f"{path}: unsupported Y4M chroma format C{val}; jaxcodec reads 4:2:0 "
                        f"(C420, C420jpeg, C420paldv, C420mpeg2, C420p10)"
                    )
                bit_depth = _CHROMA_TAGS[val]
            elif key == "I" and val not in ("p", "?"):
                raise InputError(f"{path}: interlaced Y4M (I{val}) is not supported")
        except (ValueError, ZeroDivisionError):
            raise InputError(f"{path}: bad Y4M header field {tok.decode('ascii', 'replace')!r}") from None
    if width is None or height is None or width <= 0 or height <= 0:
        raise InputError(f"{path}: Y4M header lacks a valid width/height (W.. H..)")
    if width % 2 or height % 2:
        raise InputError(f"{path}: 4:2:0 needs even width and height, got {width}x{height}")
    if fps <= 0:
        raise InputError(f"{path}: bad Y4M frame rate {fps}")
    return width, height, fps, bit_depth


def read_y4m(path: str | os.PathLike, *, max_frames: int | None = None, start: int = 0) -> tuple[Frame, Fraction]:
    """Read a 4:2:0 Y4M file.

    Returns:
      ``(frames, fps)``: a stacked `Frame` with planes ``(T, H, W)`` (uint8, or uint16 at
      10 bits) and the frame rate.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"file not found: {path}")
    data = path.read_bytes()
    nl = data.find(b"\n")
    if nl < 0:
        raise InputError(f"{path}: truncated Y4M header")
    width, height, fps, bit_depth = _parse_header(data[:nl], path)
    bps = 2 if bit_depth > 8 else 1
    dtype = np.dtype("<u2") if bps == 2 else np.dtype(np.uint8)
    luma = width * height
    frame_bytes = (luma + 2 * (luma // 4)) * bps
    pos = nl + 1
    frames = []
    index = 0
    while pos < len(data):
        if max_frames is not None and len(frames) >= max_frames:
            break
        eol = data.find(b"\n", pos)
        if eol < 0 or not data[pos:eol].startswith(b"FRAME"):
            raise InputError(f"{path}: bad FRAME marker at byte {pos}")
        pos = eol + 1
        if pos + frame_bytes > len(data):
            raise InputError(f"{path}: truncated frame {index} (file ends inside it)")
        if index >= start:
            buf = np.frombuffer(data, dtype=dtype, count=frame_bytes // bps, offset=pos)
            y = buf[:luma].reshape(height, width)
            u = buf[luma : luma + luma // 4].reshape(height // 2, width // 2)
            v = buf[luma + luma // 4 :].reshape(height // 2, width // 2)
            if bit_depth > 8:
                y, u, v = (p.astype(np.uint16) for p in (y, u, v))
                if max(int(y.max()), int(u.max()), int(v.max())) >= (1 << bit_depth):
                    raise InputError(f"{path}: frame {index} has samples above {bit_depth}-bit range")
            else:
                y, u, v = y.copy(), u.copy(), v.copy()
            frames.append(make_frame(y, u, v, bit_depth=bit_depth))
        pos += frame_bytes
        index += 1
    if not frames:
        raise InputError(f"{path}: no frames")
    return stack_frames(frames), fps


def write_y4m(path: str | os.PathLike, frames: Frame | Sequence[Frame], fps: Fraction | float = 25) -> None:
    """Write frames to a Y4M file atomically (temporary name, then rename)."""
    if not isinstance(frames, Frame):
        frames = stack_frames(list(frames))
    if not frames.batch_shape:
        frames = stack_frames([frames])
    fps = Fraction(fps).limit_denominator(1001 * 1000)
    tag = "420jpeg" if frames.bit_depth == 8 else "420p10"
    header = f"YUV4MPEG2 W{frames.width} H{frames.height} F{fps.numerator}:{fps.denominator} Ip A1:1 C{tag}\n"
    dtype = np.uint8 if frames.bit_depth == 8 else np.dtype("<u2")
    with atomic_open(path, "wb") as f:
        f.write(header.encode("ascii"))
        for t in range(len(frames)):
            f.write(b"FRAME\n")
            for plane in (frames.y[t], frames.u[t], frames.v[t]):
                f.write(np.ascontiguousarray(np.asarray(plane), dtype=dtype).tobytes())
