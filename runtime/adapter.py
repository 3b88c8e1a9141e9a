"""Our hybrid codec behind `jaxcodec.codecs.protocol.Codec` (entry point ``ours`` in the
``jaxcodec.codecs`` group; names ``ours:ai``, ``ours:ld``, ``ours:ra``, ``ours:ra_single_intra``).

`encode` runs the real encoder, then the real decoder on the produced bytes; the returned
reconstruction is the decoder's output (the encoder's recon is asserted equal by MD5 inside
the decoder).
"""

from __future__ import annotations

import time
from fractions import Fraction

from jaxcodec.codecs.protocol import EncodeResult
from jaxcodec.frame import Frame


class OursCodec:
    def __init__(self, config_name: str = "ra", **overrides):
        from jaxcodec.config import load_coding_config

        self.config = load_coding_config(config_name, **overrides)
        self.name = f"ours:{config_name}"

    def encode(self, frames: Frame, *, qp: int, fps: Fraction = Fraction(25)) -> EncodeResult:
        from runtime.bitstream import frame_qps
        from runtime.decoder import decode
        from runtime.encoder import encode

        stats: dict = {}
        t0 = time.perf_counter()
        data, _ = encode(frames, self.config.replace(qp=qp), fps=fps, stats=stats)
        t1 = time.perf_counter()
        recon = decode(data)
        t2 = time.perf_counter()
        return EncodeResult(recon=recon, bits_per_frame=stats["bits_per_frame"], encode_seconds=t1 - t0,
                            decode_seconds=t2 - t1, bitstream=data, frame_qp=frame_qps(data))


def make_codec(variant: str = "ra", **overrides) -> OursCodec:
    """Factory for the registry: ``make_codec("ld")`` -> ``ours:ld``."""
    return OursCodec(variant or "ra", **overrides)
