"""Deployment of a trained wrapper around a real codec (paper 004 Fig. 1, inference path).

    encode: IN ─P─> uint8 4:2:0 ─[real encoder]─> standard stream in a standard container
    decode: container ─[real decoder]─> uint8 4:2:0 ─O─> REC.y4m

The stream is whatever the codec writes (H.264/HEVC/AV1 in MP4/MKV/IVF for the FFmpeg
codecs): any player decodes it without the postprocessor, as the paper requires. The
wrapper never touches the bitstream; with no wrapper (``wrapper=None``) the codec receives
the source samples themselves, so the output is bit-identical to the bare codec.

P and O run frame by frame through one jitted function per frame size (compiled once).
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

from jaxcodec.errors import CodecUnavailableError, InputError
from jaxcodec.frame import Frame, make_frame

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "wrapper_x264_small"


def get_codec(name: str, *, gop: int | None = None):
    """A registered `jaxcodec.codecs.Codec` by name (x264, x265, svtav1, ours:ra, ...).

    Uses ``jaxcodec.codecs.registry`` when present; before it lands only the proxy's built-in
    libx264 target exists. A codec that is not installed raises `CodecUnavailableError`.
    """
    try:
        from jaxcodec.codecs import registry
    except ImportError:
        registry = None
    if registry is not None:
        return registry.get_codec(name) if gop is None else registry.get_codec(name, gop=gop)
    from proxy.targets import resolve_target

    return resolve_target(name, gop=gop or 4)


def _apply_frames(net, frames: Frame) -> Frame:
    """Run one wrapper network over every frame of ``frames`` (T, H, W); ``net=None`` returns them as they are."""
    if net is None:
        return frames
    import jax
    import numpy as np
    from flax import nnx

    from wrappers.nets import apply_wrapper, check_frames, frames_to_tensor, tensor_to_frames

    check_frames(frames)
    graph, params = nnx.split(net)

    @jax.jit
    def one(params, y, u, v):
        x = frames_to_tensor(make_frame(y, u, v, bit_depth=frames.bit_depth))
        out = tensor_to_frames(apply_wrapper(nnx.merge(graph, params), x[None])[0], bit_depth=frames.bit_depth)
        return out.y, out.u, out.v

    planes = [one(params, frames.y[t], frames.u[t], frames.v[t]) for t in range(frames.y.shape[0])]
    return make_frame(*(np.stack([np.asarray(p[i]) for p in planes]) for i in range(3)), bit_depth=frames.bit_depth)


def preprocess(wrapper, frames: Frame) -> Frame:
    """P over a clip (identity without a wrapper or without a preprocessor)."""
    return _apply_frames(None if wrapper is None else wrapper.pre, frames)


def postprocess(wrapper, frames: Frame) -> Frame:
    """O over a decoded clip (identity without a wrapper or without a postprocessor)."""
    return _apply_frames(None if wrapper is None else wrapper.post, frames)


_RAW_FORMATS = {"x264": "h264", "h264": "h264", "libx264": "h264", "x265": "hevc", "hevc": "hevc", "libx265": "hevc"}


def _is_container(data: bytes) -> bool:
    return data[4:8] == b"ftyp" or data[:4] == b"\x1a\x45\xdf\xa3" or data[:4] == b"DKIF"


def to_container(bitstream: bytes, *, codec_name: str, fps: Fraction, suffix: str) -> bytes:
    """Container bytes for ``bitstream``: as is if the codec already wrote a container, else a remux.

    Raw H.264/HEVC elementary streams (Annex B) are remuxed packet for packet into MP4/MKV
    (no re-encoding: the coded pictures are untouched).
    """
    if _is_container(bitstream):
        return bitstream
    raw = _RAW_FORMATS.get(codec_name)
    if raw is None:
        raise InputError(f"codec {codec_name!r} returned a stream jaxcodec cannot put into a {suffix} container")
    import av

    fmt = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov"}.get(suffix)
    if fmt is None:
        raise InputError(f"output container {suffix!r} not supported for {codec_name}; use .mp4, .mkv or .mov")
    src = av.open(io.BytesIO(bitstream), format=raw)
    buf = io.BytesIO()
    dst = av.open(buf, "w", format=fmt)
    stream = dst.add_stream_from_template(src.streams.video[0])
    stream.time_base = 1 / Fraction(fps)
    count = 0
    for packet in src.demux(src.streams.video[0]):
        if packet.size == 0:
            continue
        packet.stream = stream
        packet.time_base = stream.time_base
        packet.pts = packet.dts = count  # low-delay / decode order == display order streams
        packet.duration = 1
        dst.mux(packet)
        count += 1
    dst.close()
    src.close()
    return buf.getvalue()


def wrap_encode(frames: Frame, *, codec, qp: int, wrapper=None, fps: Fraction = Fraction(25)):
    """P then the real encoder; returns the codec's `EncodeResult` (its recon is the bare decode, before O)."""
    return codec.encode(preprocess(wrapper, frames), qp=qp, fps=fps)


def encode_file(source: str, out: str, *, codec_name: str, qp: int, model: str | None, no_wrapper: bool = False,
                max_frames: int | None = None) -> dict:
    """``jaxcodec wrap encode``: read, P, encode, write a playable container atomically."""
    from jaxcodec.io import atomic_write_bytes, read_video
    from wrappers.train import load_wrapper

    suffix = Path(out).suffix.lower()
    wrapper = None if no_wrapper else load_wrapper(model or DEFAULT_MODEL)[0]
    codec = get_codec(codec_name)
    video = read_video(source, max_frames=max_frames)
    if video.frames.bit_depth != 8:
        raise InputError(f"{source}: wrappers are trained for 8-bit video, got {video.frames.bit_depth}-bit")
    result = wrap_encode(video.frames, codec=codec, qp=qp, wrapper=wrapper, fps=video.fps)
    data = to_container(result.bitstream, codec_name=codec_name, fps=video.fps, suffix=suffix)
    atomic_write_bytes(out, data)
    return {"frames": int(video.frames.y.shape[0]), "bytes": len(data), "bits": int(result.bits_per_frame.sum()),
            "codec": codec_name, "qp": qp, "wrapper": None if wrapper is None else str(model or DEFAULT_MODEL)}


def decode_file(source: str, out: str, *, model: str | None, no_wrapper: bool = False) -> dict:
    """``jaxcodec wrap decode``: the real decoder (FFmpeg through PyAV), then O, then Y4M/YUV atomically."""
    from jaxcodec.io import read_video, write_video
    from wrappers.train import load_wrapper

    if Path(out).suffix.lower() not in (".y4m", ".yuv"):
        raise InputError(f"cannot write {out}: output must be .y4m or .yuv")
    wrapper = None if no_wrapper else load_wrapper(model or DEFAULT_MODEL)[0]
    if not Path(source).is_file():
        raise InputError(f"{source}: no such file")
    try:
        video = read_video(source)
    except CodecUnavailableError:
        raise
    frames = postprocess(wrapper, video.frames)
    write_video(out, frames, video.fps)
    return {"frames": int(frames.y.shape[0]), "wrapper": None if wrapper is None else str(model or DEFAULT_MODEL)}
