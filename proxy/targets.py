"""Target codecs for proxy training, resolved through the jaxcodec codec registry.

Paper 004 section 4.1 aligns the proxy to a low-delay recipe: with ``gop`` given, the
registry's FFmpeg adapters code constant QP, no B-frames, an intra frame every ``gop``
frames, no scene-cut and one thread (deterministic output), with per-frame bits in display
order. Any registered codec (``x264``, ``x265:slow``, ``svtav1``, ``ours:ld``) can be a target.
"""

from __future__ import annotations

from jaxcodec.codecs import registry
from jaxcodec.codecs.protocol import Codec


def resolve_target(name: str, *, gop: int) -> Codec:
    """The target `Codec` by name, low delay with an intra period of ``gop``.

    Raises:
      ConfigError: unknown codec family or option.
      CodecUnavailableError: the encoder/decoder is not in the installed FFmpeg.
    """
    return registry.get_codec(name, gop=gop)
