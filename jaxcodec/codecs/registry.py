"""Codecs by name: ``get_codec("x264:medium")``, ``get_codec("ours:ra")``.

A name is ``FAMILY[:VARIANT]``. Built-in families are the FFmpeg encoders of
`jaxcodec.codecs.ffmpeg` (``x264``, ``x265``, ``svtav1``, ``aom``; the variant is the preset,
optionally followed by ``:ld``/``:ra``). Other families are plugins in the ``jaxcodec.codecs``
entry-point group (pyproject: ``ours = "runtime.adapter:make_codec"``); the factory is called
with the part after the first colon (``""`` when there is none) and the keyword options.
This keeps `jaxcodec` free of imports from `runtime`.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from jaxcodec.codecs import ffmpeg
from jaxcodec.codecs.protocol import Codec
from jaxcodec.errors import CodecUnavailableError, ConfigError

GROUP = "jaxcodec.codecs"


class UnknownCodecError(ConfigError, CodecUnavailableError):
    """A codec name no family answers to: a configuration mistake, and a codec that is not
    available (callers written against either error class catch it)."""


def _plugins() -> dict:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def codec_families() -> list[str]:
    """Every known family name (built-in FFmpeg families first), installed or not."""
    return list(ffmpeg.FAMILIES) + sorted(n for n in _plugins() if n not in ffmpeg.FAMILIES)


def available_codecs() -> list[str]:
    """Default names of the codecs that can run here (FFmpeg families whose encoder and
    decoder exist, at their default preset, plus every registered plugin family)."""
    names = [f"{f}:{ffmpeg.FAMILIES[f].default_preset}" for f in ffmpeg.FAMILIES if ffmpeg.family_available(f)]
    return names + sorted(n for n in _plugins() if n not in ffmpeg.FAMILIES)


def get_codec(name: str, **options) -> Codec:
    """The `Codec` called ``name``.

    Raises:
      ConfigError: unknown family (`UnknownCodecError`, listing the known ones) or bad variant/option.
      CodecUnavailableError: the family is known but its encoder/decoder is not installed.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"codec name must be a non-empty string like 'x264:medium', got {name!r}")
    family, _, variant = name.strip().partition(":")
    if family in ffmpeg.FAMILIES:
        return ffmpeg.make_codec(name.strip(), **options)
    plugins = _plugins()
    if family not in plugins:
        raise UnknownCodecError(f"unknown codec {name!r}; known codec families: {', '.join(codec_families())} "
                          f"(names like x264:medium, x265:slow:ld, svtav1:8, ours:ra)")
    codec = plugins[family].load()(variant, **options)
    return codec
