"""Neural pre- and postprocessors P and O of paper 004 (section 3.2, Fig. 1), in YUV 4:2:0.

Both are the same small residual CNN. They work on the proxy's 4:2:0 tensor layout
(`proxy.ssf.frames_to_tensor`): the luma plane pixel-unshuffled into its four 2x2 phases plus
Cb and Cr, ``(..., H/2, W/2, 6)`` in [0, 1]. Every channel then sits on the chroma grid, so one
convolution sees co-sited luma and chroma samples; chroma is never up- or downsampled and luma
keeps its full resolution (a 3x3 kernel on the phase planes spans 6x6 luma samples).

    x (6 ch) ─conv3x3─relu─[conv3x3─relu─conv3x3 (+)] x blocks─conv3x3─(+ x)─> y

The last convolution starts at zero, so an untrained wrapper is the identity and training
starts from the bare codec. "No wrapper" does not rely on that: `apply_wrapper` with
``net=None`` (or a disabled config) returns its input unchanged, so the deployed encoder sees
the source samples themselves (bit-identical to the bare codec, tests/test_wrappers_deploy.py).

`SIZE_FACTOR` (2: frame sizes must be even for the phase layout) and `CHROMA_FORMAT` are
recorded in every checkpoint so that a wrapper trained for another layout is refused.
"""

from __future__ import annotations

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
from flax import nnx

from jaxcodec.codec import motion
from jaxcodec.errors import ConfigError, InputError
from jaxcodec.frame import Frame, make_frame

CHROMA_FORMAT = "420"
SIZE_FACTOR = 2  # luma samples per tensor sample; width and height must be multiples of it
CHANNELS = 6  # 4 luma phases + Cb + Cr
LUMA_CHANNELS = 4  # the 2x2 luma phases come first
PLANES = ("yuv", "y")
QP_SCALE = 64.0  # QP plane = QP / QP_SCALE (H.264/HEVC QPs 0..51 map into [0, 0.8])
MAX_STRENGTH = 4.0  # NetConfig.strength in (0, MAX_STRENGTH]


def check_strength(value: float, what: str = "NetConfig strength", error: type = ConfigError) -> float:
    """``value`` as a float if it is a valid residual scaling (`NetConfig.strength`), else ``error``."""
    if not 0.0 < float(value) <= MAX_STRENGTH:
        raise error(f"{what} must be in (0, {MAX_STRENGTH:g}], got {value}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class NetConfig:
    """Architecture of one wrapper network (P or O).

    Attributes:
      channels: hidden feature channels.
      blocks: residual blocks (two 3x3 convolutions each); 0 keeps only head and tail.
      enabled: False makes the network the exact identity (no parameters are used).
      qp_input: the network also reads the codec's QP as a constant plane (QP / 64, the NN loop
        filter's normalisation, paper 001 III-A). A postprocessor blind to the QP must apply
        one correction to every quality level: it harms the finely quantised end of the curve
        (models/wrapper_x264_small.md). The deployed decoder takes the QP from the container's
        metadata (`wrappers.deploy`) or from ``--qp``.
      planes: which planes the network changes: ``"yuv"`` all, ``"y"`` luma only (it still reads
        chroma; Cb and Cr pass through unchanged, so it cannot harm them). Post filters trained on
        our synthetic content damaged real clips' chroma (models/wrapper_x264_small.md).
      zero_mean: the network's correction has zero mean over each image and plane (the luma
        phases together): it may move samples locally but never shifts a picture's brightness.
        On the panned photographs that make most of our training data, x264's decodes are
        0.2-0.45 code values brighter than their sources; an unconstrained O learned to darken
        every picture by about that much, which costs PSNR on content without the bias
        (models/wrapper_x264_large.md). The mean is over the whole picture when deployed
        (`wrappers.deploy` runs whole frames) and over the patch in training.
      temporal: radius of decoded neighbour frames the network also reads (postprocessor only):
        the luma of frames t-r..t-1 and t+1..t+r, clamped at the clip's ends. x264 and x265 code
        their B-frames about 2 QP coarser than the P-frames around them (``pbratio``), so a
        frame's neighbours often hold, a sample or two away, the detail it lost: the
        multi-frame quality enhancement idea (MFQE, Yang et al., CVPR 2018), without motion
        compensation: a small network only reaches motion within its receptive field.
      frame_qp: the QP plane holds each frame's own coded QP (``qp_input`` needed), not the
        stream's nominal one. In x264's and x265's CQP streams an I picture is coded 3 QP finer
        and a B picture 1-2 QP coarser than the stream QP; a filter told only the stream QP
        must give every picture type one correction. The decoder reads these QPs from the
        stream (`jaxcodec.codecs.ffmpeg.frame_qp`: exact for H.264, by picture type otherwise).
        The network is the same; what it is fed differs, so a model trained either way must be
        deployed the same way.
      temporal_qp: a temporal O also reads each neighbour's coded QP (one constant plane per
        neighbour, after their luma; needs ``frame_qp``). MFQE's observation: the frames of a
        stream differ in quality, and the better-coded neighbours carry what a coarse frame lost;
        the QPs tell O which neighbours those are.
      align: a temporal O reads its neighbours motion-compensated onto the frame, not as they
        are: each 8x8 block of the decoded frame takes the best integer-sample match within
        +-``align`` samples in each decoded neighbour (`jaxcodec.codec.motion.align_window`,
        SAD plus an MV cost). MFQE (Yang et al., CVPR 2018, section 4.2) and EDVR align for the
        reason the ``temporal`` note gives: without it the detail a neighbour holds lies
        wherever the motion put it. Only decoded pictures are used, so the decoder aligns
        exactly as training did. 0: unaligned neighbours.
      strength: residual scaling of the deployed network: the output is ``x + strength * (O(x) - x)``
        (after the self-ensemble's mean, before rounding: `wrappers.deploy`): the residual
        scaling of NNVC's loop filter (paper 001 section III-C, eq. 3), one factor for the model
        instead of one signalled per picture, since the wrapped stream must stay standard. A
        deployment setting, never used in training: `wrappers.strength` picks it on training
        clips. 1: the network as trained.
    """

    channels: int = 24
    blocks: int = 2
    enabled: bool = True
    qp_input: bool = False
    planes: str = "yuv"
    zero_mean: bool = False
    temporal: int = 0
    frame_qp: bool = False
    temporal_qp: bool = False
    align: int = 0
    strength: float = 1.0

    def __post_init__(self):
        check_strength(self.strength)
        if self.channels <= 0 or self.blocks < 0:
            raise ConfigError(f"NetConfig needs channels > 0 and blocks >= 0, got {self.channels}, {self.blocks}")
        if self.temporal < 0:
            raise ConfigError(f"NetConfig temporal must be >= 0, got {self.temporal}")
        if self.planes not in PLANES:
            raise ConfigError(f"NetConfig planes must be one of {PLANES}, got {self.planes!r}")
        if self.frame_qp and not self.qp_input:
            raise ConfigError("NetConfig frame_qp needs qp_input: it says which QP the QP plane holds")
        if self.align < 0 or (self.align and not self.temporal):
            raise ConfigError(f"NetConfig align (a search range) must be >= 0 and needs temporal > 0, got {self.align}")
        if self.temporal_qp and not (self.frame_qp and self.temporal):
            raise ConfigError("NetConfig temporal_qp needs frame_qp and temporal > 0: the neighbours' QPs are "
                              "their coded QPs")

    @property
    def context_channels(self) -> int:
        """Channels of the neighbour-frame input (`temporal_context`): luma phases, then QP planes."""
        return 2 * self.temporal * (LUMA_CHANNELS + self.temporal_qp)

    @property
    def in_channels(self) -> int:
        """Input channels of the head convolution: frame, QP plane, neighbour luma, in that
        order (so a model without the later inputs widens by zero rows, `grow_network`)."""
        return CHANNELS + self.qp_input + self.context_channels


class ResidualCNN(nnx.Module):
    """Global-residual CNN on the 6-channel 4:2:0 tensor: ``y = x + f(x)``, f(x) = 0 at init."""

    def __init__(self, config: NetConfig, *, rngs: nnx.Rngs):
        c = config.channels
        self.qp_input = config.qp_input
        self.zero_mean = config.zero_mean
        self.temporal = config.temporal
        self.frame_qp = config.frame_qp
        self.temporal_qp = config.temporal_qp
        self.align = config.align
        self.strength = config.strength
        self.head = nnx.Conv(config.in_channels, c, (3, 3), rngs=rngs)
        self.blocks = nnx.List([nnx.List([nnx.Conv(c, c, (3, 3), rngs=rngs), nnx.Conv(c, c, (3, 3), rngs=rngs)])
                                for _ in range(config.blocks)])
        out = LUMA_CHANNELS if config.planes == "y" else CHANNELS
        self.tail = nnx.Conv(c, out, (3, 3), kernel_init=nnx.initializers.zeros, rngs=rngs)

    def __call__(self, x: jax.Array, qp: jax.Array | None = None, context: jax.Array | None = None) -> jax.Array:
        """``x``: ``(..., H/2, W/2, 6)``; ``qp``: the codec QP, broadcastable to ``x.shape[:-3]``
        (one per image), needed iff the network was built with ``qp_input``; ``context``: the
        neighbour frames' luma phases ``(..., H/2, W/2, 8 * temporal)``, then with ``temporal_qp``
        their QP planes (``2 * temporal`` more channels; `temporal_context`), needed iff it was
        built with ``temporal``."""
        chex.assert_axis_dimension(x, -1, CHANNELS)
        h = x
        if self.qp_input:
            if qp is None:
                raise InputError("this wrapper network reads the codec's QP; none was given")
            q = jnp.asarray(qp, x.dtype)[..., None, None, None] / QP_SCALE
            h = jnp.concatenate([x, jnp.broadcast_to(q, x.shape[:-1] + (1,))], axis=-1)
        if self.temporal:
            if context is None:
                raise InputError("this wrapper network reads neighbouring decoded frames; none were given")
            chex.assert_shape(context, x.shape[:-1] + (2 * self.temporal * (LUMA_CHANNELS + self.temporal_qp),))
            h = jnp.concatenate([h, context.astype(x.dtype)], axis=-1)
        h = jax.nn.relu(self.head(h))
        for a, b in self.blocks:
            h = h + b(jax.nn.relu(a(h)))
        r = self.tail(h)
        if self.zero_mean:
            r = _zero_mean(r)
        if r.shape[-1] == LUMA_CHANNELS:  # planes = "y": chroma is passed through, not recomputed
            return jnp.concatenate([x[..., :LUMA_CHANNELS] + r, x[..., LUMA_CHANNELS:]], axis=-1)
        return x + r


def _zero_mean(r: jax.Array) -> jax.Array:
    """``r`` minus its mean per image and plane: the luma phases (the first `LUMA_CHANNELS`)
    share one mean, each chroma channel has its own."""
    luma = r[..., :LUMA_CHANNELS]
    parts = [luma - jnp.mean(luma, axis=(-3, -2, -1), keepdims=True)]
    if r.shape[-1] > LUMA_CHANNELS:
        chroma = r[..., LUMA_CHANNELS:]
        parts.append(chroma - jnp.mean(chroma, axis=(-3, -2), keepdims=True))
    return jnp.concatenate(parts, axis=-1)


class Wrapper(nnx.Module):
    """The pair (P, O). A disabled side holds no network (``None``)."""

    def __init__(self, pre: NetConfig, post: NetConfig, *, rngs: nnx.Rngs):
        self.pre = ResidualCNN(pre, rngs=rngs) if pre.enabled else None
        self.post = ResidualCNN(post, rngs=rngs) if post.enabled else None


def apply_wrapper(net: ResidualCNN | None, x: jax.Array, qp: jax.Array | None = None,
                  context: jax.Array | None = None) -> jax.Array:
    """``net(x, qp, context)`` clipped to [0, 1], or ``x`` itself when there is no network (exact bypass).

    ``qp`` is only read by a network built with ``qp_input``, ``context`` by one built with ``temporal``.
    """
    if net is None:
        return x
    return jnp.clip(net(x, qp, context), 0.0, 1.0)


def temporal_context(seq: jax.Array, radius: int, qp: jax.Array | None = None) -> jax.Array:
    """Neighbour input of the ``T`` middle frames of ``seq`` ``(T + 2 radius, ..., H/2, W/2, C >= 4)``:
    for each frame t, the luma phases of frames t-radius..t-1 then t+1..t+radius, concatenated
    on the channel axis: ``(T, ..., H/2, W/2, 8 radius)``. With ``qp`` (the frames' coded QPs,
    ``(T + 2 radius, ...)`` matching ``seq``'s batch axes) the same neighbours' QP planes follow
    (`NetConfig.temporal_qp`): ``2 radius`` more channels. The caller pads ``seq`` (with the
    clip's real neighbours in training, `edge_frames` at a clip's ends)."""
    t = seq.shape[0] - 2 * radius
    if t <= 0:
        raise InputError(f"temporal context of radius {radius} needs more than {2 * radius} frames, got {seq.shape[0]}")
    offsets = [d for d in range(-radius, radius + 1) if d]
    parts = [seq[radius + d:radius + d + t, ..., :LUMA_CHANNELS] for d in offsets]
    if qp is not None:
        q = jnp.asarray(qp, seq.dtype)[..., None, None, None] / QP_SCALE
        parts += [jnp.broadcast_to(q[radius + d:radius + d + t], (t,) + seq.shape[1:-1] + (1,)) for d in offsets]
    return jnp.concatenate(parts, axis=-1)


def edge_frames(length: int, t: int, radius: int) -> list[int]:
    """Indices of frames t-radius..t-1, t+1..t+radius in a clip of ``length`` frames, clamped to
    its ends (the first and last frames stand in for the neighbours a clip does not have)."""
    return [min(max(t + d, 0), length - 1) for d in range(-radius, radius + 1) if d]


ALIGN_LAMBDA = 4.0  # sqrt(lambda) of the MV cost: ties and flat blocks keep small motion


@functools.partial(jax.jit, static_argnames=("search_range",))
def _align_region(region: jax.Array, windows: jax.Array, *, search_range: int) -> jax.Array:
    return jax.vmap(lambda win: motion.align_window(region, win, ALIGN_LAMBDA, search_range=search_range))(windows)


def align_neighbours(cur, refs, search_range: int, *, top: int = 0, left: int = 0,
                     height: int | None = None, width: int | None = None) -> jax.Array:
    """Neighbours ``refs (N, H, W)`` motion-compensated onto ``cur`` (`NetConfig.align`):
    ``(N, h, w)`` in ``refs``' dtype, for the ``h x w`` region of ``cur`` at (``top``, ``left``)
    (the whole frame by default). The search sees each neighbour's real samples around the region
    and edge extension beyond the picture, so a training crop aligns as the same pixels of the
    whole deployed frame do. A region whose size is not a multiple of 8 is edge-extended for the
    search and cropped back."""
    import numpy as np

    r = search_range
    cur, refs = np.asarray(cur), np.asarray(refs)
    full_h, full_w = cur.shape
    h = full_h - top if height is None else height
    w = full_w - left if width is None else width
    ph, pw = -h % motion.BLOCK, -w % motion.BLOCK
    # Row/column indices clamped to the picture: edge extension, and the region's real
    # surroundings. Gathered on the host, so only the region and its windows reach the device.
    ys = np.clip(np.arange(top - r, top + h + ph + r), 0, full_h - 1)
    xs = np.clip(np.arange(left - r, left + w + pw + r), 0, full_w - 1)
    cy = np.clip(np.arange(top, top + h + ph), 0, top + h - 1)
    cx = np.clip(np.arange(left, left + w + pw), 0, left + w - 1)
    out = _align_region(cur[np.ix_(cy, cx)], refs[:, ys][:, :, xs], search_range=r)
    return out[:, :h, :w]


def neighbour_luma(luma: jax.Array, *, bit_depth: int = 8) -> jax.Array:
    """Neighbour luma planes ``(..., 2 r, H, W)`` -> their phases on the channel axis,
    neighbour-major: ``(..., H/2, W/2, 8 r)`` in [0, 1], the layout of `temporal_context`."""
    from proxy.ssf import luma_phases

    phases = luma_phases(luma) / ((1 << bit_depth) - 1)  # (..., 2r, H/2, W/2, 4)
    moved = jnp.moveaxis(phases, -4, -2)
    return moved.reshape(moved.shape[:-2] + (-1,))


def aligned_context(aligned: jax.Array, context: jax.Array, *, bit_depth: int = 8) -> jax.Array:
    """`temporal_context`'s ``context`` ``(..., H/2, W/2, C)`` with its neighbour luma channels
    replaced by ``aligned`` ``(..., 2 r, H, W)`` (`align_neighbours`, in the same neighbour
    order); the neighbours' QP planes, if any, stay."""
    luma = neighbour_luma(aligned, bit_depth=bit_depth)
    return jnp.concatenate([luma.astype(context.dtype), context[..., luma.shape[-1]:]], axis=-1)


def needs_context(net: ResidualCNN | None) -> int:
    """The radius of neighbour frames ``net`` reads (0: none)."""
    return 0 if net is None else net.temporal


def grow_network(saved: ResidualCNN, config: NetConfig, *, rngs: nnx.Rngs) -> ResidualCNN:
    """A network of ``config`` that computes exactly what ``saved`` does, so that a trained O can
    start a larger one (function-preserving growth, Net2Net, Chen et al., ICLR 2016):

    - more head inputs (a ``temporal`` O from a single-frame one): the new input channels
      (`NetConfig.in_channels` order) get zero weights;
    - more residual blocks: the new ones come after the saved ones with a zero second
      convolution, so each adds zero until training moves it (its first convolution is random,
      so the zero one gets gradients at once);
    - more output planes (a ``planes="yuv"`` O from a luma-only one): the Cb and Cr rows of the
      tail start at zero, so chroma passes through unchanged until training moves them.

    Everything else (channels, QP input, zero mean) must be equal (`ConfigError`)."""
    old = saved.head.kernel.value
    extra = config.in_channels - old.shape[2]
    out = saved.tail.kernel.value.shape[3]
    want_out = LUMA_CHANNELS if config.planes == "y" else CHANNELS
    if extra < 0 or old.shape[3] != config.channels or len(saved.blocks) > config.blocks or out > want_out:
        raise ConfigError(f"cannot grow a network of {old.shape[3]} channels, {len(saved.blocks)} blocks, "
                          f"{old.shape[2]} inputs and {out} outputs into {config.channels}, {config.blocks}, "
                          f"{config.in_channels} and {want_out}")
    net = ResidualCNN(config, rngs=rngs)
    pad = jnp.zeros(old.shape[:2] + (extra, old.shape[3]), old.dtype)
    net.head.kernel.value = jnp.concatenate([old, pad], axis=2)
    net.head.bias.value = saved.head.bias.value
    for i, (a, b) in enumerate(net.blocks):
        if i < len(saved.blocks):
            nnx.update(net.blocks[i], nnx.state(saved.blocks[i]))
        else:
            b.kernel.value = jnp.zeros_like(b.kernel.value)
            b.bias.value = jnp.zeros_like(b.bias.value)
    tail = saved.tail.kernel.value
    net.tail.kernel.value = jnp.concatenate([tail, jnp.zeros(tail.shape[:3] + (want_out - out,), tail.dtype)], axis=3)
    net.tail.bias.value = jnp.concatenate([saved.tail.bias.value, jnp.zeros((want_out - out,), tail.dtype)])
    return net


def needs_qp(net: ResidualCNN | None) -> bool:
    """Whether ``net`` reads the codec's QP (`NetConfig.qp_input`)."""
    return net is not None and net.qp_input


def needs_frame_qp(net: ResidualCNN | None) -> bool:
    """Whether ``net`` reads each frame's own coded QP (`NetConfig.frame_qp`)."""
    return net is not None and net.frame_qp


def check_frames(frames: Frame) -> None:
    """Frames a wrapper can process: 8/10-bit 4:2:0 with even width and height."""
    if frames.chroma_format != CHROMA_FORMAT:
        raise InputError(f"wrappers process 4:{CHROMA_FORMAT[1]}:{CHROMA_FORMAT[2]} only, got {frames.chroma_format}")
    if frames.height % SIZE_FACTOR or frames.width % SIZE_FACTOR:
        raise InputError(f"frame size {frames.width}x{frames.height} is not a multiple of {SIZE_FACTOR}")


def frames_to_tensor(frames: Frame) -> jax.Array:
    """uint Frame ``(..., H, W)`` -> float ``(..., H/2, W/2, 6)`` in [0, 1] (the proxy's layout)."""
    from proxy.ssf import frames_to_tensor as to_tensor

    return to_tensor(frames.y, frames.u, frames.v, frames.peak)


def tensor_to_frames(x: jax.Array, *, bit_depth: int = 8) -> Frame:
    """Float tensor in [0, 1] -> rounded uint Frame (what a real encoder receives)."""
    from proxy.ssf import tensor_to_planes

    peak = (1 << bit_depth) - 1
    dtype = jnp.uint8 if bit_depth == 8 else jnp.uint16
    y, u, v = (jnp.round(jnp.clip(p, 0.0, 1.0) * peak).astype(dtype) for p in tensor_to_planes(x))
    return make_frame(y, u, v, bit_depth=bit_depth)
