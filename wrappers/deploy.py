"""Deployment of a trained wrapper around a real codec (paper 004 Fig. 1, inference path).

    encode: IN ─P─> uint8 4:2:0 ─[real encoder]─> standard stream in a standard container
    decode: container ─[real decoder]─> uint8 4:2:0 ─O─> REC.y4m

The stream is whatever the codec writes: the FFmpeg codecs' elementary streams (H.264, HEVC,
AV1) are remuxed packet for packet into MP4/MKV/MOV (AV1 also IVF), and any player decodes
them without the postprocessor, as the paper requires; our own codec's stream (``ours:*``) is
written as it is (``.jxc``) and decoded by `runtime.decoder`. The wrapper never touches the
bitstream; with no wrapper (``wrapper=None``) the codec receives the source samples
themselves, so the output is bit-identical to the bare codec.

A wrapper whose networks read the QP (`wrappers.nets.NetConfig.qp_input`) needs the encoder's
QP at decode time. `encode_file` records it in the container's metadata (the ``comment`` tag,
``jaxcodec-wrap qp=N``: players ignore it, the stream is untouched); our own streams carry it
in their sequence header. Otherwise ``jaxcodec wrap decode --qp N`` gives it. A wrapper that
reads each frame's own coded QP (`wrappers.nets.NetConfig.frame_qp`) takes it from the decoder:
exact from H.264 streams (FFmpeg exports every macroblock's QP), from the picture type and the
recorded QP for the others (`jaxcodec.codecs.ffmpeg.frame_qp`), from the frame headers of ours.

P and O run frame by frame through one jitted function per frame size (compiled once).
With ``ensemble`` n > 1 (default ``DEFAULT_ENSEMBLE`` = 8, `jaxcodec.nn.ensemble`) each frame
is processed n times, transposed and flipped, and the float outputs (transformed back) are
averaged before rounding: on the training clips carphone and bikes behind x264, O's "ALL"
BD-rate went from -5.07 % (one pass) to -5.83 / -6.17 / -6.35 % with 2 / 4 / 8 members, every
score better. It costs n network runs per frame and never touches the bitstream. A temporal O
also takes 16: the 8 symmetries again with its neighbours in reverse time order
(`ensemble_members`); behind x264 on the training clips it moved the default's ALL by 0.01
(-14.24 % to -14.25 %, models/wrapper_x264_cartoon_hd_long.md) at twice the cost, so 8 stays
the default.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from jaxcodec.errors import InputError
from jaxcodec.frame import Frame, make_frame

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = MODELS_DIR / "wrapper_x264_terms_dlm"
CODEC_MODELS = {"hevc": MODELS_DIR / "wrapper_x265_terms_dlm"}
"""Shipped wrappers trained behind one codec (keyed by stream format), as paper 004 trains one
wrapper per target; any other codec gets `DEFAULT_MODEL`. On held-out bigbuckbunny behind x265
the x265-trained O reaches ALL -11.87 % against -10.08 % for the x264-trained one behind x264
(models/wrapper_x265_terms_dlm.md, models/wrapper_x264_terms_dlm.md)."""
DEFAULT_ENSEMBLE = 8
ENSEMBLE_SIZES = (1, 2, 4, 8, 16)
"""Self-ensemble sizes of a wrapper network: the first n of the square's symmetries
(`jaxcodec.nn.ensemble.ORDER`); 16, for a temporal O only, runs each of the 8 again with its
neighbours in reverse time order (`ensemble_members`)."""


def ensemble_members(n: int, temporal: bool) -> list[tuple[int, bool]]:
    """The ``n`` members of a wrapper's self-ensemble as (symmetry, time-reversed) pairs.

    Time reversal: a temporal O reads frames t-r..t-1, t+1..t+r (`wrappers.nets.temporal_context`);
    played backwards, the clip gives it t+r..t+1, t-1..t-r, with their coded QPs. That is a clip
    like any other (a post filter has no causality to respect), so the reversed neighbours make
    one more ensemble member per symmetry, as a transposed picture does (EDSR's self-ensemble,
    Lim et al. 2017, extended along time). An O trained with `wrappers.train.WrapperConfig`'s
    ``augment_time_reversal`` has seen both orders."""
    from jaxcodec.nn import ensemble as ens

    if n not in ENSEMBLE_SIZES:
        raise InputError(f"ensemble size must be one of {ENSEMBLE_SIZES}, got {n}")
    if n > len(ens.ORDER):
        if not temporal:
            raise InputError(f"an ensemble of {n} reverses the neighbour frames in time: this network reads none "
                             f"(use at most {len(ens.ORDER)})")
        return [(k, False) for k in ens.ORDER] + [(k, True) for k in ens.ORDER]
    return [(k, False) for k in ens.ORDER[:n]]


def get_codec(name: str, *, gop: int | None = None):
    """A registered `jaxcodec.codecs.Codec` by name (x264, x265, svtav1, ours:ra, ...).

    Uses ``jaxcodec.codecs.registry`` when present; before it lands only the proxy's built-in
    libx264 target exists. A codec that is not installed raises `CodecUnavailableError`.
    """
    try:
        from jaxcodec.codecs import registry
    except ImportError:
        registry = None
    from jaxcodec.codecs.ffmpeg import FAMILIES

    if registry is not None:
        options = {} if gop is None else {"gop": gop}
        if name.strip().partition(":")[0] in FAMILIES:  # O may read each decoded frame's QP
            options["frame_qp"] = True
        return registry.get_codec(name, **options)
    from proxy.targets import resolve_target

    return resolve_target(name, gop=gop or 4)


@functools.lru_cache(maxsize=None)
def _net_planes():
    """The jitted per-frame network call, built once per process (JAX is imported lazily), so
    that repeated calls (every QP of a benchmark, P then O) reuse its compilations: the graph
    and bit depth are static, so one compile per network structure and frame shape."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from proxy.ssf import tensor_to_planes
    from wrappers.nets import QP_SCALE, apply_wrapper, frames_to_tensor, neighbour_luma

    @functools.partial(jax.jit, static_argnums=(0, 1))
    def run(graph, bit_depth, params, y, u, v, q, near=None, near_qp=None):
        # Samples before rounding: ensemble members are averaged first (rounding as
        # wrappers.nets.tensor_to_frames does, so that one member gives its very samples).
        # ``near``: a temporal network's neighbour luma planes (2r, H, W), ``near_qp`` their
        # coded QPs (2r,) for one that reads them, in wrappers.nets.temporal_context's order.
        x = frames_to_tensor(make_frame(y, u, v, bit_depth=bit_depth))
        context = None
        if near is not None:  # (2r, H, W) -> (H/2, W/2, 8r), neighbour-major as in training
            context = neighbour_luma(near, bit_depth=bit_depth)
            if near_qp is not None:
                planes = jnp.broadcast_to(near_qp / QP_SCALE, x.shape[:-1] + near_qp.shape)
                context = jnp.concatenate([context, planes.astype(context.dtype)], axis=-1)
            context = context[None]
        out = apply_wrapper(nnx.merge(graph, params), x[None], q, context)[0]
        return tuple(jnp.clip(p, 0.0, 1.0) * ((1 << bit_depth) - 1) for p in tensor_to_planes(out))

    return run


def _apply_frames(net, frames: Frame, qp: int | None = None, side: str = "wrapper",
                  ensemble: int = DEFAULT_ENSEMBLE, frame_qp=None) -> Frame:
    """Run one wrapper network over every frame of ``frames`` (T, H, W) (`_apply_frames_float`),
    its correction scaled by the network's ``strength`` (`scale_correction`); ``net=None``
    returns them as they are."""
    if net is None:
        return frames
    planes = _apply_frames_float(net, frames, qp, side, ensemble, frame_qp)
    return scale_correction(frames, planes, getattr(net, "strength", 1.0))


def scale_correction(frames: Frame, planes, strength: float = 1.0) -> Frame:
    """``frames + strength * (planes - frames)`` rounded to samples: a network's float output
    ``planes`` (Y, U, V, each (T, H, W), in [0, peak]) with its correction scaled
    (`wrappers.nets.NetConfig.strength`, paper 001 eq. 3). ``strength`` 1 rounds ``planes``
    themselves, so an unscaled network's output does not depend on float re-association."""
    import numpy as np

    dtype = np.uint8 if frames.bit_depth == 8 else np.uint16
    if strength != 1.0:
        s = np.float32(strength)
        planes = [np.clip(np.asarray(b, np.float32) + s * (p - np.asarray(b, np.float32)), 0.0, float(frames.peak))
                  for b, p in zip(frames.planes, planes)]
    return make_frame(*(np.round(p).astype(dtype) for p in planes), bit_depth=frames.bit_depth)


def _apply_frames_float(net, frames: Frame, qp: int | None = None, side: str = "wrapper",
                        ensemble: int = DEFAULT_ENSEMBLE, frame_qp=None) -> tuple:
    """Run one wrapper network over every frame of ``frames`` (T, H, W). ``ensemble``: 1, 2, 4
    or 8 symmetries per frame, float outputs averaged.
    ``frame_qp``: each frame's coded QP ``(T,)``, which a network built with
    `wrappers.nets.NetConfig.frame_qp` reads instead of the stream's ``qp``.
    A temporal network (`wrappers.nets.NetConfig.temporal`) also reads each frame's decoded
    neighbours (its input ``frames``, clamped at the clip's ends: `wrappers.nets.edge_frames`),
    motion-compensated onto the frame for one built with ``align`` (`wrappers.nets.align_neighbours`).
    Returns the float Y, U, V sample planes (T, H, W) before rounding."""
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from jaxcodec.nn import ensemble as ens
    from wrappers.nets import align_neighbours, check_frames, edge_frames, needs_context, needs_frame_qp, needs_qp

    check_frames(frames)
    members = ensemble_members(ensemble, bool(needs_context(net)))
    if needs_qp(net) and not needs_frame_qp(net) and qp is None:
        raise InputError(f"this wrapper's {side} reads the codec's QP, which this stream does not record (only "
                         "MP4/MKV/MOV files written by `jaxcodec wrap encode` and .jxc streams do): pass --qp")
    length = np.asarray(frames.y).shape[0]
    if needs_frame_qp(net):
        if frame_qp is None:
            raise InputError(f"this wrapper's {side} reads each frame's coded QP, which this stream does not "
                             "report (H.264 streams do; others need the QP that `jaxcodec wrap encode` records, "
                             "or --qp)")
        qps = np.asarray(frame_qp, np.float32).reshape(-1)
        if qps.shape[0] != length:
            raise InputError(f"{qps.shape[0]} frame QPs for {length} frames")
    else:
        qps = np.full(length, 0 if qp is None else qp, np.float32)
    graph, params = nnx.split(net)
    run = _net_planes()
    radius = needs_context(net)
    luma = np.asarray(frames.y)
    out: list[list] = [[], [], []]
    for t in range(length):
        planes = [np.asarray(getattr(frames, c)[t]) for c in "yuv"]
        around = edge_frames(length, t, radius)
        near = luma[around] if radius else None
        if radius and net.align:  # neighbours motion-compensated onto frame t, as in training
            near = np.asarray(align_neighbours(luma[t], near, net.align))
        near_qp = jnp.asarray(qps[around]) if radius and net.temporal_qp else None
        total = None
        for k, backwards in members:
            n_in, q_in = (near[::-1], None if near_qp is None else near_qp[::-1]) if backwards else (near, near_qp)
            member = run(graph, frames.bit_depth, params, *(ens.symmetry(p, k) for p in planes), jnp.asarray(qps[t]),
                         None if n_in is None else ens.symmetry(n_in, k, axes=(1, 2)), q_in)
            member = [ens.inverse_symmetry(np.asarray(m, np.float32), k) for m in member]
            total = member if total is None else [a + b for a, b in zip(total, member)]
        for c in range(3):
            out[c].append(total[c] / np.float32(ensemble))
    return tuple(np.stack(o) for o in out)


def preprocess(wrapper, frames: Frame, qp: int | None = None, *, ensemble: int = DEFAULT_ENSEMBLE) -> Frame:
    """P over a clip (identity without a wrapper or without a preprocessor); ``qp`` for a QP-aware P;
    ``ensemble`` symmetries per frame (`_apply_frames`)."""
    return _apply_frames(None if wrapper is None else wrapper.pre, frames, qp, "preprocessor", ensemble)


def postprocess(wrapper, frames: Frame, qp: int | None = None, *, ensemble: int = DEFAULT_ENSEMBLE,
                frame_qp=None) -> Frame:
    """O over a decoded clip (identity without a wrapper or without a postprocessor); ``qp`` for a QP-aware O;
    ``ensemble`` symmetries per frame, ``frame_qp`` each frame's coded QP (`_apply_frames`)."""
    return _apply_frames(None if wrapper is None else wrapper.post, frames, qp, "postprocessor", ensemble, frame_qp)


def postprocess_float(wrapper, frames: Frame, qp: int | None = None, *, ensemble: int = DEFAULT_ENSEMBLE,
                      frame_qp=None) -> tuple:
    """O's float Y, U, V planes over a decoded clip before its strength and rounding (`scale_correction`
    of them with the network's ``strength`` is `postprocess`); the clip's own planes without an O."""
    import numpy as np

    net = None if wrapper is None else wrapper.post
    if net is None:
        return tuple(np.asarray(p, np.float32) for p in frames.planes)
    return _apply_frames_float(net, frames, qp, "postprocessor", ensemble, frame_qp)


_RAW_FORMATS = {"x264": "h264", "h264": "h264", "libx264": "h264", "x265": "hevc", "hevc": "hevc", "libx265": "hevc",
                "svtav1": "obu", "libsvtav1": "obu", "av1": "obu"}
_CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".ivf": "ivf"}
QP_TAG = "jaxcodec-wrap qp="
"""Prefix of the container ``comment`` tag that records the encoder's QP (QP-aware wrappers)."""
STRENGTH_FIELD = " strength="
"""What follows the QP in that tag when the encoder picked O's factor for the stream
(`wrappers.strength.encoder_pick`); players ignore the tag, the stream stays standard."""


def codec_family(codec_name: str) -> str:
    """``x264:medium`` -> ``x264``: the registry's name without its preset / structure suffix."""
    return codec_name.split(":", 1)[0].lower()


def default_model(codec_name: str | None) -> Path:
    """The shipped wrapper for a codec name (``x265:medium``) or stream codec (``hevc``): its own
    (`CODEC_MODELS`) where one was trained behind it, else `DEFAULT_MODEL`."""
    raw = _RAW_FORMATS.get(codec_family(codec_name)) if codec_name else None
    return CODEC_MODELS.get(raw, DEFAULT_MODEL)


def stream_codec(path: str) -> str | None:
    """FFmpeg's name of the video codec in a container (``h264``, ``hevc``, ``av1``), ``ours`` for
    our own stream, None where it cannot be read (the decoder then reports why)."""
    if not Path(path).is_file():
        return None
    if _is_ours(path):
        return "ours"
    import av

    try:
        with av.open(path) as c:
            return c.streams.video[0].codec_context.name if c.streams.video else None
    except (av.error.FFmpegError, OSError, ValueError):
        return None


def _is_container(data: bytes) -> bool:
    return data[4:8] == b"ftyp" or data[:4] == b"\x1a\x45\xdf\xa3" or data[:4] == b"DKIF"


def to_container(bitstream: bytes, *, codec_name: str, fps: Fraction, suffix: str, qp: int | None = None,
                 strength: float | None = None) -> bytes:
    """Container bytes for ``bitstream``: as is if the codec already wrote a container, else a remux.

    Raw H.264/HEVC (Annex B) and AV1 (low-overhead OBU) elementary streams are remuxed packet for
    packet into MP4/MKV/MOV, AV1 also into IVF (no re-encoding: the coded pictures are
    untouched). ``qp`` (and ``strength``, O's factor the encoder picked) are recorded in the
    container's ``comment`` tag where it has one.
    """
    if _is_container(bitstream):
        return bitstream
    raw = _RAW_FORMATS.get(codec_family(codec_name))
    if raw is None:
        raise InputError(f"codec {codec_name!r} returned a stream jaxcodec cannot put into a {suffix} container")
    import av

    fmt = _CONTAINERS.get(suffix)
    if fmt is None or (fmt == "ivf" and raw != "obu"):
        ok = ".mp4, .mkv, .mov" + (" or .ivf" if raw == "obu" else "")
        raise InputError(f"output container {suffix!r} not supported for {codec_name}; use {ok}")
    src = av.open(io.BytesIO(bitstream), format=raw)
    buf = io.BytesIO()
    dst = av.open(buf, "w", format=fmt)
    if qp is not None and fmt != "ivf":
        dst.metadata["comment"] = f"{QP_TAG}{int(qp)}" + ("" if strength is None else f"{STRENGTH_FIELD}{strength:g}")
    template = src.streams.video[0]
    if raw == "obu":
        # The OBU demuxer's stream names its decoder (libdav1d), which has no encoder entry to
        # template from; the stream is declared through the AV1 encoder that wrote it, with the
        # sequence header as extradata (MP4's av1C box is built from it).
        stream = dst.add_stream("libsvtav1", rate=fps)
        stream.width, stream.height, stream.pix_fmt = template.width, template.height, "yuv420p"
        if template.codec_context.extradata:
            stream.codec_context.extradata = template.codec_context.extradata
    else:
        stream = dst.add_stream_from_template(template)
    stream.time_base = 1 / Fraction(fps)
    count = 0
    for packet in src.demux(template):
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


def wrap_encode(frames: Frame, *, codec, qp: int, wrapper=None, fps: Fraction = Fraction(25),
                ensemble: int = DEFAULT_ENSEMBLE):
    """P then the real encoder; returns the codec's `EncodeResult` (its recon is the bare decode, before O)."""
    return codec.encode(preprocess(wrapper, frames, qp, ensemble=ensemble), qp=qp, fps=fps)


def _is_ours(path: str) -> bool:
    """Whether ``path`` holds our codec's stream (decoded by `runtime.decoder`, not FFmpeg)."""
    from runtime.bitstream import MAGIC

    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def recorded_qp(path: str) -> int | None:
    """The encoder's QP as `encode_file` recorded it (container tag, or our stream's header), or None."""
    if _is_ours(path):
        from jaxcodec.errors import JaxcodecError
        from runtime import bitstream as bs

        try:
            return bs.parse_stream(Path(path).read_bytes())[0].qp
        except JaxcodecError:  # a damaged stream: the decoder reports it properly
            return None
    return _recorded_tag(path)[0]


def recorded_strength(path: str) -> float | None:
    """O's factor the encoder picked for the stream (`encode_file` with ``stream_strength``), or None."""
    return None if _is_ours(path) else _recorded_tag(path)[1]


def _recorded_tag(path: str) -> tuple[int | None, float | None]:
    """(QP, strength) from a container's ``comment`` tag (`to_container`); None for what it lacks."""
    import av

    try:
        with av.open(path) as c:
            tags = {k.lower(): v for k, v in c.metadata.items()}
    except (av.error.FFmpegError, OSError, ValueError):
        return None, None
    comment = tags.get("comment", "")
    if not comment.startswith(QP_TAG):
        return None, None
    qp_text, _, strength_text = comment[len(QP_TAG):].partition(STRENGTH_FIELD)
    try:
        strength = float(strength_text) if strength_text else None
    except ValueError:
        strength = None
    if strength is not None and not (math.isfinite(strength) and 0.0 < strength <= 4.0):
        strength = None  # not a factor this tool writes: the model's own applies
    return (int(qp_text) if qp_text.isdigit() else None), strength


def encode_file(source: str, out: str, *, codec_name: str, qp: int, model: str | None, no_wrapper: bool = False,
                max_frames: int | None = None, ensemble: int = DEFAULT_ENSEMBLE,
                stream_strength: Sequence[float] | None = None) -> dict:
    """``jaxcodec wrap encode``: read, P, encode, write a playable container (our codec: a .jxc stream) atomically.
    ``stream_strength``: also run O on the encoder's reconstruction at each of these factors and
    record the one `wrappers.strength.encoder_pick` takes in the container, for `decode_file`."""
    from jaxcodec.io import atomic_write_bytes, read_video
    from wrappers.train import load_wrapper

    suffix = Path(out).suffix.lower()
    ours = codec_family(codec_name) == "ours"
    if ours and suffix != ".jxc":
        raise InputError(f"our codec writes its own stream, not a {suffix or 'suffix-less'} container: use -o NAME.jxc")
    model = model or str(default_model(codec_name))
    wrapper = None if no_wrapper else load_wrapper(model)[0]
    if stream_strength is not None:
        if wrapper is None or wrapper.post is None:
            raise InputError("--stream-strength picks the postprocessor's factor; this wrapper has none")
        if ours or _CONTAINERS.get(suffix) in (None, "ivf"):
            raise InputError(f"--stream-strength records the factor in the container's tag: use .mp4, .mkv or .mov, "
                             f"not {suffix or 'a suffix-less name'}")
    codec = get_codec(codec_name)
    video = read_video(source, max_frames=max_frames)
    if video.frames.bit_depth != 8:
        raise InputError(f"{source}: wrappers are trained for 8-bit video, got {video.frames.bit_depth}-bit")
    result = wrap_encode(video.frames, codec=codec, qp=qp, wrapper=wrapper, fps=video.fps, ensemble=ensemble)
    strength = None
    if stream_strength is not None:
        from wrappers.strength import encoder_pick

        strength, _ = encoder_pick(wrapper, video.frames, result, qp, stream_strength, ensemble=ensemble)
    data = result.bitstream if ours else to_container(result.bitstream, codec_name=codec_name, fps=video.fps,
                                                      suffix=suffix, qp=qp, strength=strength)
    atomic_write_bytes(out, data)
    return {"frames": int(video.frames.y.shape[0]), "bytes": len(data), "bits": int(result.bits_per_frame.sum()),
            "codec": codec_name, "qp": qp, "wrapper": None if wrapper is None else model,
            **({} if strength is None else {"strength": strength})}


def set_strength(wrapper, strength: float | None):
    """Override the residual scaling of ``wrapper``'s O (`wrappers.nets.NetConfig.strength`); None keeps the model's."""
    from wrappers.nets import check_strength

    if strength is None or wrapper is None:
        return wrapper
    strength = check_strength(strength, "--strength", InputError)
    if wrapper.post is None:
        raise InputError("--strength scales the postprocessor's correction; this wrapper has none")
    wrapper.post.strength = strength
    return wrapper


def decode_file(source: str, out: str, *, model: str | None, no_wrapper: bool = False, qp: int | None = None,
                ensemble: int = DEFAULT_ENSEMBLE, strength: float | None = None) -> dict:
    """``jaxcodec wrap decode``: the real decoder (FFmpeg through PyAV; `runtime.decoder` for our
    streams), then O, then Y4M/YUV atomically. ``qp`` overrides the QP the stream records;
    ``ensemble``: O's self-ensemble size (`_apply_frames`); ``strength`` overrides the model's
    residual scaling (`set_strength`); without it, a factor the encoder recorded (`recorded_strength`)
    does."""
    from jaxcodec.io import read_video, write_video
    from wrappers.nets import needs_frame_qp
    from wrappers.train import load_wrapper

    if Path(out).suffix.lower() not in (".y4m", ".yuv"):
        raise InputError(f"cannot write {out}: output must be .y4m or .yuv")
    # A given model is checked before the stream is read; the default depends on the stream's codec.
    wrapper = None if no_wrapper or model is None else load_wrapper(model)[0]
    if not Path(source).is_file():
        raise InputError(f"{source}: no such file")
    if not no_wrapper and model is None:
        model = str(default_model(stream_codec(source)))
        wrapper = load_wrapper(model)[0]
    set_strength(wrapper, strength)  # a bad factor fails before the stream is decoded
    if strength is None and wrapper is not None and wrapper.post is not None:
        recorded = recorded_strength(source)
        if recorded is not None:
            set_strength(wrapper, recorded)
    if qp is None:
        qp = recorded_qp(source)
    if _is_ours(source):
        from runtime.bitstream import frame_qps
        from runtime.decoder import decode

        data = Path(source).read_bytes()
        decoded, fps = decode(data, return_fps=True)
        frame_qp = frame_qps(data)
    else:
        from jaxcodec.codecs.ffmpeg import read_frame_qps

        video = read_video(source)
        decoded, fps = video.frames, video.fps
        frame_qp = read_frame_qps(source, qp) if needs_frame_qp(wrapper.post if wrapper else None) else None
    frames = postprocess(wrapper, decoded, qp, ensemble=ensemble, frame_qp=frame_qp)
    write_video(out, frames, fps)
    return {"frames": int(frames.y.shape[0]), "qp": qp,
            "wrapper": None if wrapper is None else model,
            "strength": None if wrapper is None or wrapper.post is None else wrapper.post.strength}
