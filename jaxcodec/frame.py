"""The `Frame` pytree: one picture (or a stack of pictures) in planar Y'CbCr.

A `Frame` holds three planes. Bit depth and chroma format are static metadata, so
`jax.jit` specialises on them instead of tracing them. Planes may carry leading batch
dimensions (time, batch): ``y`` is ``(..., H, W)`` and, for 4:2:0, ``u``/``v`` are
``(..., H/2, W/2)``. Planes are integer sample values (uint8/uint16/int32) in the codec
and float in the differentiable tools; `Frame` does not force either.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from flax import struct

from jaxcodec.errors import InputError

SUPPORTED_CHROMA = ("420",)
SUPPORTED_BIT_DEPTHS = (8, 10)


@struct.dataclass
class Frame:
    """Planar Y'CbCr picture(s).

    Attributes:
      y: luma plane, ``(..., H, W)``.
      u: Cb plane, ``(..., H/2, W/2)`` for 4:2:0.
      v: Cr plane, same shape as ``u``.
      bit_depth: sample bit depth (8 or 10), static.
      chroma_format: ``"420"``, static.
    """

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    bit_depth: int = struct.field(pytree_node=False, default=8)
    chroma_format: str = struct.field(pytree_node=False, default="420")

    @property
    def height(self) -> int:
        return int(self.y.shape[-2])

    @property
    def width(self) -> int:
        return int(self.y.shape[-1])

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.y.shape[:-2])

    @property
    def peak(self) -> int:
        return (1 << self.bit_depth) - 1

    @property
    def planes(self) -> tuple:
        return (self.y, self.u, self.v)

    def __len__(self) -> int:
        if not self.batch_shape:
            raise TypeError("a single Frame has no length; stack frames first")
        return self.batch_shape[0]

    def __getitem__(self, index) -> "Frame":
        """Index the leading (time) dimension of a stacked Frame."""
        return self.replace(y=self.y[index], u=self.u[index], v=self.v[index])

    def map(self, fn) -> "Frame":
        """Apply ``fn`` to each plane (e.g. a dtype cast) and keep the metadata."""
        return self.replace(y=fn(self.y), u=fn(self.u), v=fn(self.v))

    def astype(self, dtype) -> "Frame":
        return self.map(lambda p: p.astype(dtype))


def make_frame(y, u, v, *, bit_depth: int = 8, chroma_format: str = "420") -> Frame:
    """Build a `Frame`, checking plane shapes, bit depth and chroma format."""
    if chroma_format not in SUPPORTED_CHROMA:
        raise InputError(f"unsupported chroma format {chroma_format!r}; jaxcodec codes 4:2:0 only")
    if bit_depth not in SUPPORTED_BIT_DEPTHS:
        raise InputError(f"unsupported bit depth {bit_depth}; expected one of {SUPPORTED_BIT_DEPTHS}")
    h, w = y.shape[-2:]
    if h % 2 or w % 2:
        raise InputError(f"4:2:0 needs even width and height, got {w}x{h}")
    want = tuple(y.shape[:-2]) + (h // 2, w // 2)
    if tuple(u.shape) != want or tuple(v.shape) != want:
        raise InputError(f"chroma planes {tuple(u.shape)}/{tuple(v.shape)} do not match luma {tuple(y.shape)} for 4:2:0")
    return Frame(y=y, u=u, v=v, bit_depth=bit_depth, chroma_format=chroma_format)


def stack_frames(frames: Sequence[Frame]) -> Frame:
    """Stack single frames along a new leading time axis (numpy)."""
    if not frames:
        raise InputError("no frames to stack")
    f0 = frames[0]
    for f in frames:
        if (f.height, f.width, f.bit_depth, f.chroma_format) != (f0.height, f0.width, f0.bit_depth, f0.chroma_format):
            raise InputError("cannot stack frames of different size, bit depth or chroma format")
    return f0.replace(
        y=np.stack([np.asarray(f.y) for f in frames]),
        u=np.stack([np.asarray(f.u) for f in frames]),
        v=np.stack([np.asarray(f.v) for f in frames]),
    )


def unstack_frames(frames: Frame) -> list[Frame]:
    return [frames[i] for i in range(len(frames))]


def pad_frame(frame: Frame, multiple: int) -> Frame:
    """Pad width/height up to a multiple of ``multiple`` (luma) by edge replication.

    Codec-internal: sizes that are not multiples of the CTU are padded before coding and
    cropped with `crop_frame` on output (HEVC conformance-window behaviour).
    """
    h, w = frame.height, frame.width
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return frame
    lead = [(0, 0)] * len(frame.batch_shape)
    y = np.pad(np.asarray(frame.y), lead + [(0, ph), (0, pw)], mode="edge")
    u = np.pad(np.asarray(frame.u), lead + [(0, ph // 2), (0, pw // 2)], mode="edge")
    v = np.pad(np.asarray(frame.v), lead + [(0, ph // 2), (0, pw // 2)], mode="edge")
    return frame.replace(y=y, u=u, v=v)


def crop_frame(frame: Frame, height: int, width: int) -> Frame:
    """Crop the top-left ``height x width`` luma region (and matching chroma)."""
    return frame.replace(
        y=frame.y[..., :height, :width],
        u=frame.u[..., : height // 2, : width // 2],
        v=frame.v[..., : height // 2, : width // 2],
    )
