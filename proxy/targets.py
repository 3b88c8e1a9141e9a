"""Target codecs for proxy training: the jaxcodec codec registry, or a built-in libx264 target.

`resolve_target` prefers ``jaxcodec.codecs.registry`` (the FFmpeg adapters of the
evaluation issue). Until that registry exists, ``x264`` falls back to `X264Target`, a
minimal `jaxcodec.codecs.Codec` over PyAV's libx264 with the low-delay recipe the proxy is
aligned to (paper 004 section 4.1 aligns to a low-delay recipe): constant QP, no B-frames,
an IDR every ``gop`` frames, no scene-cut, one thread (deterministic output). Frame bits are
packet sizes in display order, so the first packet carries the stream headers.
"""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np

from jaxcodec.codecs.protocol import EncodeResult
from jaxcodec.errors import CodecUnavailableError, InputError
from jaxcodec.frame import Frame, make_frame


class X264Target:
    """libx264 at a fixed QP, low-delay P GOPs of ``gop`` frames (the proxy's built-in target)."""

    name = "x264"

    def __init__(self, *, gop: int = 4, preset: str = "medium"):
        import av

        try:
            av.codec.Codec("libx264", "w")
            av.codec.Codec("h264", "r")
        except Exception:
            raise CodecUnavailableError("libx264 encoder or h264 decoder missing from this PyAV/FFmpeg build") from None
        self.gop, self.preset = gop, preset

    def encode(self, frames: Frame, *, qp: int, fps: Fraction = Fraction(25)) -> EncodeResult:
        import av

        if frames.bit_depth != 8:
            raise InputError("the built-in x264 target codes 8-bit 4:2:0 only")
        t_len, h, w = frames.y.shape
        start = time.perf_counter()
        enc = av.CodecContext.create("libx264", "w")
        enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
        enc.time_base, enc.framerate = 1 / Fraction(fps), Fraction(fps)
        enc.options = {"qp": str(int(qp)), "preset": self.preset, "bf": "0", "g": str(self.gop),
                       "keyint_min": str(self.gop), "sc_threshold": "0", "threads": "1"}
        packets = []
        for t in range(t_len):
            planes = [np.asarray(p[t], np.uint8).ravel() for p in (frames.y, frames.u, frames.v)]
            frame = av.VideoFrame.from_ndarray(np.concatenate(planes).reshape(h * 3 // 2, w), format="yuv420p")
            frame.pts = t
            packets += enc.encode(frame)
        packets += enc.encode(None)
        encoded = time.perf_counter()
        packets.sort(key=lambda p: p.pts)
        dec = av.CodecContext.create("h264", "r")
        dec.extradata = enc.extradata
        planes = []
        for packet in packets + [None]:
            for out in dec.decode(packet):
                a = out.to_ndarray(format="yuv420p")
                c = a[h:].reshape(-1)
                planes.append((a[:h], c[: h * w // 4].reshape(h // 2, w // 2), c[h * w // 4:].reshape(h // 2, w // 2)))
        if len(planes) != t_len:
            raise CodecUnavailableError(f"x264 round trip returned {len(planes)} of {t_len} frames")
        recon = make_frame(*(np.stack([p[i] for p in planes]) for i in range(3)))
        bits = np.asarray([8 * p.size for p in packets], np.int64)
        return EncodeResult(recon, bits, encoded - start, time.perf_counter() - encoded, b"".join(bytes(p) for p in packets))


def resolve_target(name: str, *, gop: int):
    """The target `Codec` by name; clear `CodecUnavailableError` if it cannot be had."""
    try:
        from jaxcodec.codecs import registry
    except ImportError:
        registry = None
    if registry is not None:
        return registry.get_codec(name, gop=gop)
    if name == "x264":
        return X264Target(gop=gop)
    raise CodecUnavailableError(f"target codec {name!r} is not available (no jaxcodec.codecs.registry; built-in: x264)")
