"""The codec protocol shared by our codec, FFmpeg's encoders, the proxy and the bench."""

from jaxcodec.codecs.protocol import Codec, EncodeResult

__all__ = ["Codec", "EncodeResult"]
