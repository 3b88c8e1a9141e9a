"""Standard codecs (x264, x265, SVT-AV1, libaom) behind `jaxcodec.codecs.protocol.Codec`, via PyAV.

Everything stays in memory: frames go to FFmpeg's encoder as `av.VideoFrame`s, packets come
back as bytes, and FFmpeg's own decoder (h264 / hevc / libdav1d) turns them back into
samples. No temporary files, so the proxy and the wrappers can train against these.

QP scales (each codec's own, passed through unchanged):

==========  ======================================  ============
family      fixed-QP option                         range
==========  ======================================  ============
x264        ``qp=N`` (CQP; I/P/B offsets ipratio,    0..51 (8-bit)
            pbratio of the preset)
x265        ``x265-params qp=N`` (CQP, same offsets) 0..51 (8-bit)
svtav1      ``svtav1-params rc=0:aq-mode=0`` +       1..63 (AV1
            ``qp=N`` (CQP, no adaptive quant)        qindex ~ 4*N)
aom         ``crf=N`` with no bitrate (AOM_Q mode)    0..63
==========  ======================================  ============

GOP structure (``structure``):

- ``"ra"`` random access: the preset's own hierarchical B / pyramid structure (x264 3 B,
  x265 4 B, SVT-AV1 pred-struct 2) -- what ``ffmpeg -preset medium -qp N`` does.
- ``"ld"`` low delay: no B-frames / no reordering (SVT-AV1 pred-struct 1).

``gop`` is the intra period in frames (IDR every ``gop`` frames, scene-cut detection off);
``None`` keeps the encoder's default (250 for x264/x265).

Per-frame QPs (``frame_qp=True``): each decoded picture's coded QP. FFmpeg's H.264 decoder
exports the QP of every macroblock (``export_side_data=venc_params``); `frame_qp` averages them,
so x264 streams give exact values. Other decoders export none: the QP is then estimated from the
picture type, as x264 and x265 derive it in CQP mode from the stream's QP (I pictures
``6 log2(ipratio 1.4)`` = 3 finer, B pictures ``6 log2(pbratio 1.3)`` = 2 coarser; referenced
B-frames, 1 coarser in x264's pyramid, cannot be told from others by their type).

Per-frame bits are the encoder's packet sizes mapped to display order by packet pts; the
first packet also carries the parameter sets, so ``sum(bits_per_frame) == 8 * len(bitstream)``
where ``bitstream`` is the elementary stream (Annex B for H.264/HEVC, a low-overhead OBU
stream for AV1) that FFmpeg's raw demuxers (``-f h264``/``hevc``/``obu``) read back.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import time
from fractions import Fraction

import numpy as np

from jaxcodec.codecs.protocol import EncodeResult
from jaxcodec.errors import CodecUnavailableError, ConfigError, InputError
from jaxcodec.frame import Frame, make_frame


@dataclasses.dataclass(frozen=True)
class _Family:
    encoder: str  # FFmpeg encoder name
    decoder: str  # FFmpeg decoder name
    presets: tuple[str, ...]
    default_preset: str
    qp_range: tuple[int, int]
    raw_format: str  # FFmpeg raw demuxer for the elementary stream


_X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")

FAMILIES: dict[str, _Family] = {
    "x264": _Family("libx264", "h264", _X26X_PRESETS, "medium", (0, 51), "h264"),
    "x265": _Family("libx265", "hevc", _X26X_PRESETS, "medium", (0, 51), "hevc"),
    "svtav1": _Family("libsvtav1", "libdav1d", tuple(str(i) for i in range(14)), "8", (1, 63), "obu"),
    "aom": _Family("libaom-av1", "libdav1d", tuple(str(i) for i in range(10)), "6", (0, 63), "obu"),
}

STRUCTURES = ("ld", "ra")


# x26x CQP picture-type QP offsets from the stream QP (module docstring).
TYPE_QP_OFFSET = {"I": -3, "P": 0, "B": 2}
_PICTURE_TYPES = {1: "I", 2: "P", 3: "B"}  # AV_PICTURE_TYPE_I, _P, _B
# AVVideoEncParams on a 64-bit build: nb_blocks (u32, padded), blocks_offset and block_size
# (size_t), type (enum), qp (i32); each AVVideoBlockParams is src_x, src_y, w, h, delta_qp (i32).
_ENC_PARAMS_HEAD = struct.Struct("<I4xQQii")
_BLOCK_INTS = 5


def _exported_qp(frame) -> float | None:
    """Mean coded QP of a decoded ``av.VideoFrame`` from FFmpeg's exported encoding parameters
    (base QP plus each block's delta, blocks weighted by area), or None without them."""
    if struct.calcsize("P") != 8:
        return None
    for side in getattr(frame, "side_data", ()):
        if getattr(side.type, "name", "") != "VIDEO_ENC_PARAMS":
            continue
        data = bytes(side)
        if len(data) < _ENC_PARAMS_HEAD.size:
            return None
        nb, offset, size, _, base = _ENC_PARAMS_HEAD.unpack_from(data)
        if nb == 0:
            return float(base)
        if size < 4 * _BLOCK_INTS or size % 4 or offset + nb * size > len(data):
            return None
        blocks = np.frombuffer(data, "<i4", count=nb * size // 4, offset=offset).reshape(nb, size // 4)
        area = blocks[:, 2].astype(np.int64) * blocks[:, 3]
        weight = int(area.sum())
        return base + float(np.dot(area, blocks[:, 4])) / weight if weight > 0 else float(base)
    return None


def frame_qp(frame, stream_qp: float | None = None) -> float | None:
    """The coded QP of a decoded ``av.VideoFrame``: exact where the decoder exports it (H.264,
    decoded with ``export_side_data=venc_params``), else ``stream_qp`` plus the x26x offset of
    its picture type (`TYPE_QP_OFFSET`), else None (no stream QP known)."""
    exported = _exported_qp(frame)
    if exported is not None:
        return exported
    if stream_qp is None:
        return None
    kind = frame.pict_type  # an AVPictureType int (PyAV 14+) or an enum member (older PyAV)
    kind = _PICTURE_TYPES.get(kind, "") if isinstance(kind, int) else getattr(kind, "name", "")
    return float(stream_qp) + TYPE_QP_OFFSET.get(kind, 0)


def read_frame_qps(path: str | os.PathLike, stream_qp: float | None = None) -> np.ndarray | None:
    """Per-frame coded QPs (`frame_qp`, display order) of the first video stream of a container
    file, or None where a frame's QP is unknown. Decodes the stream once more."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.codec_context.options = {"export_side_data": "venc_params"}
            qps = [frame_qp(f, stream_qp) for f in container.decode(stream)]
    except (av.error.FFmpegError, IndexError, OSError):
        return None
    if not qps or any(q is None for q in qps):
        return None
    return np.asarray(qps, np.float32)


def _have(name: str, mode: str) -> bool:
    import av

    try:
        av.codec.Codec(name, mode)
    except Exception:  # PyAV raises UnknownCodecError (a ValueError) or FFmpegError
        return False
    return True


def family_available(family: str) -> bool:
    """Whether the installed FFmpeg has both the encoder and the decoder of ``family``."""
    fam = FAMILIES[family]
    return _have(fam.encoder, "w") and (_have(fam.decoder, "r") or _have("av1", "r") and fam.decoder == "libdav1d")


class FFmpegCodec:
    """One FFmpeg encoder at one preset, fixed QP, low-delay or random-access GOPs.

    Args:
      family: ``x264``, ``x265``, ``svtav1`` or ``aom``.
      preset: encoder preset (x26x names; SVT-AV1 ``0..13``; libaom cpu-used ``0..9``).
      structure: ``"ra"`` (the preset's B pyramid) or ``"ld"`` (no reordering).
      gop: intra period in frames, or None for the encoder default.
      threads: encoder threads (1 = deterministic and the same numbers on any machine).
      decode_threads: FFmpeg decoder threads for the timed decode (1 = single-core decode fps).
      frame_qp: also return each decoded picture's coded QP (`EncodeResult.frame_qp`, see the
        module docstring). Off by default: the export costs the timed decode a little.
    """

    def __init__(self, family: str, preset: str | None = None, *, structure: str = "ra", gop: int | None = None,
                 threads: int = 1, decode_threads: int = 1, frame_qp: bool = False):
        if family not in FAMILIES:
            raise ConfigError(f"unknown FFmpeg codec family {family!r}; expected one of {sorted(FAMILIES)}")
        fam = FAMILIES[family]
        preset = fam.default_preset if preset in (None, "") else str(preset)
        if preset not in fam.presets:
            raise ConfigError(f"unknown {family} preset {preset!r}; expected one of {', '.join(fam.presets)}")
        if structure not in STRUCTURES:
            raise ConfigError(f"unknown GOP structure {structure!r}; expected 'ld' (low delay) or 'ra' (random access)")
        if gop is not None and int(gop) < 1:
            raise ConfigError(f"gop (intra period) must be >= 1 frame, got {gop}")
        if not _have(fam.encoder, "w"):
            raise CodecUnavailableError(f"{family}: encoder {fam.encoder} is not in this FFmpeg build (PyAV {_av_version()})")
        decoder = fam.decoder if _have(fam.decoder, "r") else ("av1" if fam.decoder == "libdav1d" and _have("av1", "r") else None)
        if decoder is None:
            raise CodecUnavailableError(f"{family}: decoder {fam.decoder} is not in this FFmpeg build (PyAV {_av_version()})")
        self.family, self.preset, self.structure = family, preset, structure
        self.gop = None if gop is None else int(gop)
        self.threads, self.decode_threads = int(threads), int(decode_threads)
        self.frame_qp = bool(frame_qp)
        self._fam, self._decoder = fam, decoder
        self.name = f"{family}:{preset}" + ("" if structure == "ra" else f":{structure}")

    def __repr__(self) -> str:
        return f"FFmpegCodec({self.name!r}, gop={self.gop})"

    # ---------------------------------------------------------------- encoder options

    def options(self, qp: int, bit_depth: int = 8) -> dict[str, str]:
        """The FFmpeg encoder options for a fixed-QP encode (see the module table)."""
        lo, hi = self._fam.qp_range
        if bit_depth > 8 and self.family in ("x264", "x265"):
            hi += 6 * (bit_depth - 8)  # H.264/HEVC QP range grows with bit depth (QpBdOffset)
        if not lo <= int(qp) <= hi:
            raise ConfigError(f"{self.family} QP {qp} out of range {lo}..{hi}")
        qp, ld, g = int(qp), self.structure == "ld", self.gop
        if self.family == "x264":
            opts = {"preset": self.preset, "qp": str(qp), "threads": str(self.threads)}
            if ld:
                opts["bf"] = "0"
            if g is not None:
                opts.update(g=str(g), keyint_min=str(g), sc_threshold="0")
            return opts
        if self.family == "x265":
            params = [f"qp={qp}", "log-level=none", f"frame-threads={self.threads}"]
            if self.threads == 1:
                params += ["pools=none"]
            if ld:
                params += ["bframes=0"]
            if g is not None:
                params += [f"keyint={g}", f"min-keyint={g}", "scenecut=0"]
            return {"preset": self.preset, "x265-params": ":".join(params)}
        if self.family == "svtav1":
            params = ["rc=0", "aq-mode=0", f"pred-struct={1 if ld else 2}", f"lp={self.threads}"]
            if g is not None:
                params += [f"keyint={g}", "scd=0"]
            return {"preset": self.preset, "qp": str(qp), "svtav1-params": ":".join(params)}
        opts = {"cpu-used": self.preset, "crf": str(qp), "b": "0", "threads": str(self.threads)}  # aom: AOM_Q
        if ld:
            opts["lag-in-frames"] = "0"
        if g is not None:
            opts.update(g=str(g), keyint_min=str(g))
        return opts

    # ---------------------------------------------------------------- Codec protocol

    def encode(self, frames: Frame, *, qp: int, fps: Fraction = Fraction(25)) -> EncodeResult:
        """Encode ``frames`` (T, H, W) at fixed ``qp``, decode with FFmpeg, return recon + per-frame bits."""
        import av

        y = np.asarray(frames.y)
        if y.ndim != 3:
            raise InputError(f"{self.name}: expected stacked frames (T, H, W), got luma shape {y.shape}")
        t_len, h, w = y.shape
        if t_len == 0:
            raise InputError(f"{self.name}: no frames to encode")
        pix_fmt = "yuv420p" if frames.bit_depth == 8 else "yuv420p10le"
        dtype = np.uint8 if frames.bit_depth == 8 else np.uint16
        u, v = np.asarray(frames.u), np.asarray(frames.v)
        fps = Fraction(fps)
        images = [np.concatenate([y[t].astype(dtype, copy=False), u[t].reshape(-1, w).astype(dtype, copy=False),
                                  v[t].reshape(-1, w).astype(dtype, copy=False)]) for t in range(t_len)]

        if self.family == "svtav1":
            os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner to stderr per encode otherwise
        start = time.perf_counter()
        enc = av.CodecContext.create(self._fam.encoder, "w")
        enc.width, enc.height, enc.pix_fmt = w, h, pix_fmt
        enc.time_base, enc.framerate = 1 / fps, fps
        enc.options = self.options(qp, frames.bit_depth)
        packets = []
        try:
            for t, img in enumerate(images):
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format=pix_fmt)
                vf.pts = t
                packets += enc.encode(vf)
            packets += enc.encode(None)
        except av.error.FFmpegError as e:
            raise CodecUnavailableError(f"{self.name}: the encoder failed on {w}x{h} {pix_fmt}: {e}") from None
        encode_seconds = time.perf_counter() - start
        payloads = [bytes(p) for p in packets]
        pts = [p.pts for p in packets]
        if len(payloads) != t_len or sorted(pts) != list(range(t_len)):
            raise CodecUnavailableError(f"{self.name}: encoder returned {len(payloads)} packets for {t_len} frames")

        dec = av.CodecContext.create(self._decoder, "r")
        dec.thread_count = self.decode_threads
        if self.frame_qp:
            dec.options = {"export_side_data": "venc_params"}
        if enc.extradata:
            dec.extradata = enc.extradata
        start = time.perf_counter()
        out = []
        for data in payloads:
            out += dec.decode(av.Packet(data))
        out += dec.decode(None)
        images_out = [f.to_ndarray(format=pix_fmt) for f in out]
        decode_seconds = time.perf_counter() - start
        qps = np.asarray([frame_qp(f, qp) for f in out], np.float32) if self.frame_qp else None
        if len(images_out) != t_len:
            raise CodecUnavailableError(f"{self.name}: decoder returned {len(images_out)} of {t_len} frames")

        bits = np.zeros(t_len, np.int64)
        for p, data in zip(pts, payloads):
            bits[p] = 8 * len(data)  # display order
        cw, ch = w // 2, h // 2
        recon = make_frame(np.stack([a[:h] for a in images_out]),
                           np.stack([a[h:].reshape(-1)[: ch * cw].reshape(ch, cw) for a in images_out]),
                           np.stack([a[h:].reshape(-1)[ch * cw:].reshape(ch, cw) for a in images_out]),
                           bit_depth=frames.bit_depth)
        return EncodeResult(recon, bits, encode_seconds, decode_seconds, b"".join(payloads), qps)


def _av_version() -> str:
    import av

    return av.__version__


def make_codec(spec: str = "", **options) -> FFmpegCodec:
    """``make_codec("x264:medium")``, ``"x265:slow:ld"``, ``"svtav1:8"``; ``options`` as `FFmpegCodec`.

    With ``gop`` given and no structure (in the spec or ``structure=``), the codec is low delay:
    an IDR every ``gop`` frames, no B-frames (the recipe the proxy aligns to, paper 004 4.1).
    """
    parts = spec.split(":")
    family, rest = parts[0], parts[1:]
    preset = rest[0] if rest else None
    if len(rest) > 1:
        if "structure" in options and options["structure"] != rest[1]:
            raise ConfigError(f"codec {spec!r}: structure given twice ({rest[1]!r} and {options['structure']!r})")
        options["structure"] = rest[1]
    if len(rest) > 2:
        raise ConfigError(f"codec {spec!r}: expected FAMILY[:PRESET[:ld|ra]]")
    if options.get("structure") is None:
        options["structure"] = "ld" if options.get("gop") is not None else "ra"
    return FFmpegCodec(family, preset, **options)
