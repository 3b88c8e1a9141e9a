"""One protocol for every codec the toolkit drives.

Our hybrid codec (`runtime`), x264/x265/SVT-AV1 through PyAV, and anything a researcher
plugs in implement `Codec`. The proxy aligns to any `Codec`; the bench compares them. The
adapters live in `jaxcodec` (not `runtime`) because `proxy` may import only `jaxcodec`;
our own codec registers itself through the ``jaxcodec.codecs`` entry-point group.
"""

from __future__ import annotations

from fractions import Fraction
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from jaxcodec.frame import Frame


class EncodeResult(NamedTuple):
    """What a codec returns for one encode of a clip.

    Attributes:
      recon: decoded frames, stacked ``(T, H, W)``, display order, the input's size and dtype.
      bits_per_frame: int64 ``(T,)`` coded bits of each frame in display order (packet sizes
        for FFmpeg codecs); they sum to the stream's payload size.
      encode_seconds: wall time of the encoder.
      decode_seconds: wall time of the decoder that produced ``recon``.
      bitstream: the complete coded stream (container bytes for FFmpeg codecs).
      frame_qp: float32 ``(T,)`` coded QP of each decoded picture in display order, where the
        codec reports it (`jaxcodec.codecs.ffmpeg.FFmpegCodec` with ``frame_qp=True``), else None.
    """

    recon: Frame
    bits_per_frame: np.ndarray
    encode_seconds: float
    decode_seconds: float
    bitstream: bytes
    frame_qp: np.ndarray | None = None


@runtime_checkable
class Codec(Protocol):
    """``encode(frames, *, qp) -> EncodeResult`` at a fixed QP (the codec's own QP scale)."""

    name: str

    def encode(self, frames: Frame, *, qp: int, fps: Fraction = Fraction(25)) -> EncodeResult: ...
