"""End-to-end training of the wrappers through the codec proxy: paper 004 Algorithm 1.

Every step, for a batch of source GOPs I_in (random clip, crop and QP per sample, one model
for the whole QP range):

    I_P = P(I_in)                                 jitted `pre_step`
    (I_C, R_C) = C(I_P)                           the REAL target codec, on the host
    theta_g <- MSE(M(I_P), I_C)                   \
    theta_h <- R_M^hyp (likelihood)                } jitted `proxy_step` (iterative refinement)
    (alpha, beta) <- MSE(alpha R_hyp + beta, R_C) /
    I_O_in = sg(I_C - I_M) + I_M                  eq. 8
    theta_P, theta_O <- eq. 4 on O(I_O_in)        jitted `wrapper_step`

The target codec runs outside the jitted steps, between them, not through a host callback:
the codec (libx264 & co. through PyAV, or our own runtime codec) is not traceable, and an
``io_callback`` inside the step would only serialize XLA around a blocking call of the same
length while forcing the codec's inputs and outputs through the callback boundary; outside,
the step stays one compiled program per shape (compiled once) and the codec time is simply
measured and logged per step (``codec_s`` in metrics.jsonl).

The codec encodes ``2 * gop`` frames and the second GOP is kept (as in `proxy.data`): its
first frame is an IDR picture without the stream headers of the first packet, aligned to
the proxy's intra frame.

Ablations (paper 004 Tables 3-4) are config switches: ``pre``/``post`` (component),
``stop_gradient`` (False: O receives I_M), ``iterative_update`` (False: the proxy stays
frozen), ``pretrained`` (False: start from a random proxy, calibration alpha=1, beta=0).

Runs resume exactly: the batch of step ``s`` is a function of ``(seed, s)``, the noise key is
``fold_in(seed, s)``, the codec is deterministic (one thread), and the orbax checkpoint
holds every parameter and optimizer state.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, NamedTuple

from jaxcodec.config import load_config
from jaxcodec.errors import ConfigError, ModelError

WRAPPER_FORMAT = "jaxcodec-wrapper"
WRAPPER_VERSION = 1


@dataclasses.dataclass(frozen=True)
class WrapperTrainConfig:
    """Wrapper training (paper 004 section 4.1 defaults where the paper gives them).

    Attributes:
      pre_channels / pre_blocks / post_channels / post_blocks: network sizes (`wrappers.nets.NetConfig`).
      pre / post: train with P / O (component ablation, Table 3).
      stop_gradient: eq. 8 input to O; False feeds O the proxy output I_M (Table 4).
      iterative_update: refine the proxy every step (Algorithm 1); False freezes it (Table 4).
      pretrained: start from the two-phase pretrained proxy; False from a random one (Table 4).
      lambda_, l1, ssim, ms_ssim, dlm: eq. 4 weights (`wrappers.loss.LossWeights`).
      dlm_gain_limit: enhancement gain limit of the DLM loss term (0 = none, 1 = VMAF NEG style).
      chroma_weight: Cb/Cr weight of every eq. 4 term relative to the 4:1:1 default (`LossWeights.chroma`).
      learning_rate: P and O (paper: 1e-4). proxy_learning_rate: theta_g and theta_h.
      lr_schedule: P and O's learning rate over the run: "constant", or "cosine" (linear warm-up
        over the first 5 % of ``steps``, then cosine decay to ``lr_final`` x ``learning_rate``).
        A decayed rate lets the final weights settle instead of ending wherever the last
        steps left them (a post filter's useful correction is a fraction of a code value).
      calib_learning_rate: alpha/beta of eq. 3; must track R_C faster than P moves, or P learns
        patterns that are cheap for the proxy and expensive for the real codec.
      qp_min / qp_max: QP range sampled per sample (the target's range of interest).
      steps, batch_size, patch, gop, clips, max_clip_frames, seed: data and schedule.
      checkpoint_every / image_every: orbax checkpoint and PNG triptych periods in steps.
      codec_on_full_frames: post-only training without proxy refinement: the target codes every
        training clip once per QP at its full size before training (`full_frame_targets`), in
        the structure `jaxcodec wrap encode` deploys (the codec's default, B-frames and all;
        ``jaxcodec train wrappers`` builds it so), and O learns from crops of those decodes.
        The default codes each GOP-long patch sequence on its own, low delay with an IDR every
        ``gop`` frames, as Algorithm 1 must when P changes the codec's input; O then learns
        artifacts of another coding structure than the one it is deployed behind.
      augment_symmetries: with ``codec_on_full_frames``, each training sample is turned by a
        random one of the square's 8 symmetries (`jaxcodec.nn.ensemble`; source and codec output
        alike), so O learns a filter that the deployed self-ensemble (`wrappers.deploy`) averages
        over consistent members.
      augment_time_reversal: with ``post_temporal``, each training sample is also played
        backwards with probability 1/2 (its frames, their coded QPs and their neighbours in reverse
        order), so that O learns a filter for either order of its neighbours, and the deployed
        16-member self-ensemble (`wrappers.deploy.ensemble_members`) averages consistent members.
      normalise_distortion: weigh each training image's eq. 4 distortion by the inverse of the
        bare codec's distortion on it (`wrappers.loss.wrapper_loss` ``baseline_distortion``), so that clean
        content (low QP, flat chroma) counts as much as heavily distorted content.
      normalise_terms: weigh each term of each training image's eq. 4 by the inverse of the bare
        codec's value of that term on it (`wrappers.loss.wrapper_loss` ``baseline_terms``): a
        relative change of SSIM at low QP counts like one of L1, as the BD-rates do. Excludes
        ``normalise_distortion``.
      pre_qp_input / post_qp_input: P / O also read the sample's QP (`wrappers.nets.NetConfig.qp_input`).
      pre_planes / post_planes: ``"yuv"``, or ``"y"``: P / O change luma only
        (`wrappers.nets.NetConfig.planes`).
      pre_zero_mean / post_zero_mean: P / O's correction has zero mean per image and plane
        (`wrappers.nets.NetConfig.zero_mean`).
      init_from: a saved wrapper model directory (`save_wrapper`) whose P and O start the run
        (fine-tuning, e.g. with another eq. 4 weighting); its network configs must equal this
        config's, except that a single-frame O may start a temporal one (``post_temporal``, also
        with neighbour QPs, ``post_temporal_qp``), a shallower O a deeper one (``post_blocks``)
        and a stream-QP O a frame-QP one (``post_frame_qp``); `wrappers.nets.grow_network` keeps its
        function. The proxy still comes from ``--proxy``.
      post_temporal: O also reads the luma of this many decoded frames on each side
        (`wrappers.nets.NetConfig.temporal`). Needs ``codec_on_full_frames`` and
        ``stop_gradient``: the neighbours are the real codec's decodes of the whole clip, as
        deployed, which the proxy does not model.
      post_frame_qp: O's QP plane holds each frame's own coded QP as the decoder reports it
        (`wrappers.nets.NetConfig.frame_qp`), not the sample's stream QP. Needs
        ``post_qp_input`` and ``codec_on_full_frames`` (the QPs come from the whole-clip decodes).
        A stream-QP O may start a frame-QP one (``init_from``): the network is the same.
      post_temporal_qp: a temporal O also reads its neighbours' coded QPs
        (`wrappers.nets.NetConfig.temporal_qp`; needs ``post_frame_qp`` and ``post_temporal``).
        A temporal O without them may start one (zero weights for the new planes).
      post_align: a temporal O reads its neighbours motion-compensated onto each frame, block
        matching within +-``post_align`` samples (`wrappers.nets.NetConfig.align`; 0: as they
        are). An unaligned temporal O may start an aligned one: the network is the same.
      loss_margin: eq. 4 leaves out this many luma samples (even) on each side of every training
        patch (`wrappers.loss.interior`), for O's output and the bare codec's baseline alike.
        O's output near a crop's edge is computed from zero padding where, deployed on whole
        frames, it reads picture content: training on it teaches O a border the deployed filter
        meets only at the picture's edge. A patch of ``patch`` samples then trains on its
        interior, ``patch - 2 loss_margin`` wide, with real context all round. Needs
        ``codec_on_full_frames`` (patch-coded batches end where the codec's picture ends).
    """

    pre_channels: int = 24
    pre_blocks: int = 2
    post_channels: int = 24
    post_blocks: int = 2
    pre: bool = True
    post: bool = True
    stop_gradient: bool = True
    iterative_update: bool = True
    pretrained: bool = True
    lambda_: float = 0.1
    l1: float = 0.1
    ssim: float = 0.25
    ms_ssim: float = 0.25
    dlm: float = 0.2
    dlm_gain_limit: float = 0.0
    chroma_weight: float = 1.0
    learning_rate: float = 1e-4
    lr_schedule: str = "constant"
    lr_final: float = 0.01
    proxy_learning_rate: float = 1e-4
    calib_learning_rate: float = 1e-2
    qp_min: int = 22
    qp_max: int = 37
    steps: int = 500
    batch_size: int = 4
    patch: int = 64
    gop: int = 4
    clips: tuple[str, ...] = ("carphone", "bikes", "generated")
    max_clip_frames: int = 120
    seed: int = 0
    checkpoint_every: int = 50
    image_every: int = 100
    codec_on_full_frames: bool = False
    augment_symmetries: bool = False
    augment_time_reversal: bool = False
    normalise_distortion: bool = False
    normalise_terms: bool = False
    pre_qp_input: bool = False
    post_qp_input: bool = False
    pre_planes: str = "yuv"
    post_planes: str = "yuv"
    pre_zero_mean: bool = False
    post_zero_mean: bool = False
    init_from: str = ""
    post_temporal: int = 0
    post_frame_qp: bool = False
    post_temporal_qp: bool = False
    post_align: int = 0
    loss_margin: int = 0

    def __post_init__(self):
        if not (self.pre or self.post):
            raise ConfigError("at least one of pre / post must be enabled")
        if "bigbuckbunny" in self.clips:
            raise ConfigError("bigbuckbunny is the held-out evaluation clip; do not train on it")
        if self.qp_min > self.qp_max:
            raise ConfigError(f"bad QP range {self.qp_min}..{self.qp_max}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if not 0.0 <= self.lr_final <= 1.0:
            raise ConfigError(f"lr_final is a fraction of learning_rate in [0, 1], got {self.lr_final}")
        if self.patch % 32 or self.patch <= 0:
            raise ConfigError(f"patch must be a positive multiple of 32 (the proxy's downsampling), got {self.patch}")
        self.loss_weights()  # refuses bad eq. 4 weights now, before a run directory is written
        self.net_configs()  # and bad network settings (planes)
        if self.codec_on_full_frames and (self.pre or self.iterative_update):
            raise ConfigError("codec_on_full_frames needs pre = false and iterative_update = false: the codec's "
                              "input must not depend on the step (it is coded once, before training)")
        if self.post_temporal and not (self.codec_on_full_frames and self.stop_gradient):
            raise ConfigError("post_temporal needs codec_on_full_frames = true and stop_gradient = true: O's "
                              "neighbour frames are the codec's decodes of whole clips, which the proxy does not model")
        if self.post_frame_qp and not self.codec_on_full_frames:
            raise ConfigError("post_frame_qp needs codec_on_full_frames = true: the frames' coded QPs come from "
                              "the decodes of whole clips")
        if self.augment_symmetries and not self.codec_on_full_frames:
            raise ConfigError("augment_symmetries needs codec_on_full_frames = true (the patch-coded batches of "
                              "Algorithm 1 are not augmented)")
        if self.normalise_distortion and self.normalise_terms:
            raise ConfigError("normalise_distortion and normalise_terms exclude each other: pick one normalisation")
        if self.loss_margin and not self.codec_on_full_frames:
            raise ConfigError("loss_margin needs codec_on_full_frames = true: a patch-coded batch's edge is the edge of "
                              "the codec's picture too")
        if self.loss_margin % 2 or self.loss_margin < 0 or self.patch - 2 * self.loss_margin < 32:
            raise ConfigError(f"loss_margin must be even, >= 0 and leave at least 32 samples of the {self.patch} patch, "
                              f"got {self.loss_margin}")
        if self.augment_time_reversal and not self.post_temporal:
            raise ConfigError("augment_time_reversal needs post_temporal > 0: it reverses the order of O's neighbour "
                              "frames")

    @property
    def proxy_free_step(self) -> bool:
        """Post only with eq. 8: P is the identity and O reads I_C's value, so the proxy changes
        neither O's input nor its gradient, and lambda * R_M is a constant. The wrapper step then
        skips the proxy's forward pass (`make_steps`): the same updates of O at a fraction of the
        cost; the logged rate is the real codec's."""
        return not self.pre and self.stop_gradient

    def wrapper_learning_rate(self):
        """P and O's learning rate: a float, or an optax schedule over the step (``lr_schedule``)."""
        import optax

        if self.lr_schedule == "constant":
            return self.learning_rate
        warmup = max(1, self.steps // 20)
        return optax.warmup_cosine_decay_schedule(0.0, self.learning_rate, warmup, max(self.steps, warmup + 1),
                                                  self.learning_rate * self.lr_final)

    def net_configs(self):
        from wrappers.nets import NetConfig

        return (NetConfig(self.pre_channels, self.pre_blocks, self.pre, self.pre_qp_input, self.pre_planes,
                          self.pre_zero_mean),
                NetConfig(self.post_channels, self.post_blocks, self.post, self.post_qp_input, self.post_planes,
                          self.post_zero_mean, self.post_temporal, self.post_frame_qp, self.post_temporal_qp,
                          self.post_align))

    def loss_weights(self):
        from wrappers.loss import LossWeights

        return LossWeights(self.lambda_, self.l1, self.ssim, self.ms_ssim, self.dlm, self.dlm_gain_limit,
                           self.chroma_weight)


def load_train_config(name_or_path: str, **overrides) -> WrapperTrainConfig:
    """Config from ``configs/<name>.toml`` or a path; unknown keys raise `ConfigError`."""
    if "clips" in overrides and overrides["clips"] is not None:
        overrides["clips"] = tuple(overrides["clips"])
    config = load_config(WrapperTrainConfig, name_or_path, **{k: v for k, v in overrides.items() if v is not None})
    return dataclasses.replace(config, clips=tuple(config.clips))


class TrainState(NamedTuple):
    wrapper: Any
    transform: Any
    hyper: Any
    calib: Any  # (4,) alpha_intra, beta_intra, alpha_inter, beta_inter (eq. 3)
    opt_wrapper: Any
    opt_transform: Any
    opt_hyper: Any
    opt_calib: Any
    step: Any


class Steps(NamedTuple):
    pre: Any
    proxy: Any
    wrapper: Any


def _calibration(calib):
    from proxy.ssf import Calibration

    return Calibration(calib[0], calib[1], calib[2], calib[3])


def make_steps(config: WrapperTrainConfig, wrapper_graph, proxy_graph, optimizers, *,
               proxy_free: bool | None = None) -> Steps:
    """The three jitted pure steps of Algorithm 1 (the codec runs between ``pre`` and ``proxy``).

    ``proxy_free`` (default: post only with eq. 8) leaves the proxy out of the wrapper step; the
    other value is the reference path of the test that holds both equal."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from proxy.coders import ForwardCoder
    from proxy.entropy_models import noise_quantize, ste_round
    from proxy.ssf import apply_calibration, code_gop
    from wrappers.loss import distortion_terms, wrapper_loss
    from wrappers.nets import apply_wrapper

    opt_w, opt_t, opt_h, opt_c = optimizers
    weights = config.loss_weights()

    @jax.jit
    def pre(wrapper, source, qp):
        return apply_wrapper(nnx.merge(wrapper_graph, wrapper).pre, source, qp)

    def pixels(x):
        return 4 * x.shape[-3] * x.shape[-2]

    def intra_flags(x):
        return (jnp.arange(x.shape[0]) == 0)[:, None]

    @jax.jit
    def proxy(state: TrainState, i_p, i_c, bits_c, qp_index, key):
        """Iterative refinement: theta_g on MSE to I_C, theta_h on likelihood, alpha/beta on rate MSE."""

        def run(transform, hyper):
            model = nnx.merge(proxy_graph, transform, hyper)
            coder = ForwardCoder(rate_surrogate=noise_quantize, synthesis_surrogate=ste_round, key=key)
            recon, bits = code_gop(model, i_p, qp_index, coder)
            return jnp.mean((recon - i_c) ** 2), jnp.mean(bits) / pixels(i_p), bits

        (mse, bpp, bits_hyp), vjp = jax.vjp(run, state.transform, state.hyper)
        g_t, _ = vjp((jnp.ones_like(mse), jnp.zeros_like(bpp), jnp.zeros_like(bits_hyp)))
        _, g_h = vjp((jnp.zeros_like(mse), jnp.ones_like(bpp), jnp.zeros_like(bits_hyp)))

        def calib_loss(calib):
            r_m = apply_calibration(_calibration(calib), jax.lax.stop_gradient(bits_hyp), intra_flags(i_p), pixels(i_p))
            return jnp.mean(((r_m - bits_c) / pixels(i_p)) ** 2)

        c_loss, g_c = jax.value_and_grad(calib_loss)(state.calib)
        u_t, o_t = opt_t.update(g_t, state.opt_transform, state.transform)
        u_h, o_h = opt_h.update(g_h, state.opt_hyper, state.hyper)
        u_c, o_c = opt_c.update(g_c, state.opt_calib, state.calib)
        new = state._replace(transform=optax.apply_updates(state.transform, u_t), opt_transform=o_t,
                             hyper=optax.apply_updates(state.hyper, u_h), opt_hyper=o_h,
                             calib=optax.apply_updates(state.calib, u_c), opt_calib=o_c)
        return new, {"proxy_mse": mse, "proxy_bpp": bpp, "calib_mse": c_loss}

    if proxy_free is None:
        proxy_free = config.proxy_free_step
    if proxy_free and not config.proxy_free_step:
        raise ConfigError("the proxy-free wrapper step needs pre = false and stop_gradient = true")
    if config.post_temporal and not proxy_free:
        raise ConfigError("a temporal O trains with the proxy-free step only (pre = false, stop_gradient = true)")

    def end_to_end(wrapper, state: TrainState, source, i_c, codec_terms, qp_index, qp, key, bits_c, context):
        net = nnx.merge(wrapper_graph, wrapper)
        baseline = ({"baseline_distortion": codec_terms[0]} if config.normalise_distortion else
                    {"baseline_terms": codec_terms[1:]} if config.normalise_terms else {})
        if proxy_free:
            out = apply_wrapper(net.post, i_c, qp, context)
            terms = wrapper_loss(source, out, bits_c / pixels(i_c), weights, margin=config.loss_margin,
                                 **baseline)
            return terms.total, (terms, out)
        i_p = apply_wrapper(net.pre, source, qp)
        model = nnx.merge(proxy_graph, jax.lax.stop_gradient(state.transform), jax.lax.stop_gradient(state.hyper))
        coder = ForwardCoder(rate_surrogate=ste_round, synthesis_surrogate=ste_round, key=key)
        i_m, bits_hyp = code_gop(model, i_p, qp_index, coder)
        r_m = apply_calibration(_calibration(jax.lax.stop_gradient(state.calib)), bits_hyp, intra_flags(i_p), pixels(i_p))
        o_in = stop_gradient_input(i_c, i_m) if config.stop_gradient else i_m
        out = apply_wrapper(net.post, o_in, qp)
        terms = wrapper_loss(source, out, r_m / pixels(i_p), weights, margin=config.loss_margin,
                             **baseline)
        return terms.total, (terms, out)

    @jax.jit
    def wrapper(state: TrainState, source, i_c, qp_index, qp, key, bits_c, context=None):
        """``qp``: (1, B) codec QPs, one per sample, broadcast over the GOP axis of the tensors;
        ``bits_c``: (T, B) the real codec's bits per frame (the logged rate when ``proxy_free``);
        ``context``: a temporal O's neighbour input (`wrappers.nets.temporal_context`)."""
        # Per-image eq. 4 distortion of the codec output and its terms: the logged baseline of every
        # step, and the weights of `normalise_distortion` / `normalise_terms`. It does not depend on
        # the wrapper: computed once, outside the gradient.
        codec_terms = distortion_terms(source, i_c, weights, margin=config.loss_margin)
        codec_d = codec_terms[0]
        (loss, (terms, out)), grads = jax.value_and_grad(end_to_end, has_aux=True)(state.wrapper, state, source, i_c,
                                                                                  codec_terms, qp_index, qp, key,
                                                                                  bits_c, context)
        updates, opt = opt_w.update(grads, state.opt_wrapper, state.wrapper)
        new = state._replace(wrapper=optax.apply_updates(state.wrapper, updates), opt_wrapper=opt, step=state.step + 1)
        return new, {**terms._asdict(), "codec_distortion": jnp.mean(codec_d)}, out

    return Steps(pre, proxy, wrapper)


def stop_gradient_input(i_c, i_m):
    """Eq. 8: ``sg(I_C - I_M) + I_M``: the value of I_C, the gradient of I_M."""
    import jax

    return jax.lax.stop_gradient(i_c - i_m) + i_m


# --------------------------------------------------------------------------- model files


def save_wrapper(path: str | Path, wrapper, *, meta: dict) -> None:
    """Params (orbax) + meta.json (format, colour format, size factor, net configs) under ``path``."""
    import shutil

    import orbax.checkpoint as ocp
    from flax import nnx

    from jaxcodec.io import atomic_write_bytes
    from wrappers.nets import CHROMA_FORMAT, SIZE_FACTOR

    path = Path(path).resolve()
    path.mkdir(parents=True, exist_ok=True)
    if (path / "state").exists():
        shutil.rmtree(path / "state")
    ckpt = ocp.StandardCheckpointer()
    ckpt.save(path / "state", nnx.to_pure_dict(nnx.state(wrapper, nnx.Param)))
    ckpt.wait_until_finished()
    full = {"format": WRAPPER_FORMAT, "version": WRAPPER_VERSION, "chroma_format": CHROMA_FORMAT,
            "size_factor": SIZE_FACTOR, **meta}
    atomic_write_bytes(path / "meta.json", json.dumps(full, indent=2, sort_keys=True).encode())


def check_output_model(out: str | Path) -> Path:
    """``out`` as a Path, refused (`ConfigError`) if it exists and is not a wrapper model directory."""
    out = Path(out)
    if out.exists() and not (out / "meta.json").is_file():
        raise ConfigError(f"{out}: exists and is not a wrapper model directory; not overwriting it")
    return out


def replace_wrapper(out: str | Path, wrapper, *, meta: dict) -> None:
    """`save_wrapper` into a fresh directory beside ``out``, then renamed onto it, so that an
    interrupted write leaves ``out`` as it was; refuses an ``out`` that is not a wrapper model."""
    import shutil
    import tempfile

    out = check_output_model(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_wrapper(tmp, wrapper, meta=meta)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def load_wrapper(path: str | Path):
    """Load a wrapper; a model for another format, colour format or size factor raises `ModelError`."""
    import orbax.checkpoint as ocp
    from flax import nnx

    from wrappers.nets import CHROMA_FORMAT, SIZE_FACTOR, NetConfig, Wrapper

    path = Path(path).resolve()
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise ModelError(f"{path}: not a wrapper model directory (no meta.json)")
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError as e:
        raise ModelError(f"{meta_path}: unreadable ({e})") from None
    if meta.get("format") != WRAPPER_FORMAT or meta.get("version") != WRAPPER_VERSION:
        raise ModelError(f"{path}: not a {WRAPPER_FORMAT} v{WRAPPER_VERSION} model "
                         f"(format {meta.get('format')!r} v{meta.get('version')})")
    if meta.get("chroma_format") != CHROMA_FORMAT:
        raise ModelError(f"{path}: wrapper trained for chroma format {meta.get('chroma_format')!r}; "
                         f"this build processes {CHROMA_FORMAT!r}")
    if meta.get("size_factor") != SIZE_FACTOR:
        raise ModelError(f"{path}: wrapper trained with size factor {meta.get('size_factor')}; "
                         f"this build uses {SIZE_FACTOR}")
    try:
        pre, post = NetConfig(**meta["pre"]), NetConfig(**meta["post"])
    except (KeyError, TypeError, ConfigError) as e:
        raise ModelError(f"{meta_path}: bad network config ({e})") from None
    wrapper = Wrapper(pre, post, rngs=nnx.Rngs(0))
    state = nnx.state(wrapper, nnx.Param)
    try:
        restored = ocp.StandardCheckpointer().restore(path / "state", nnx.to_pure_dict(state))
    except Exception as e:  # orbax raises many types for a structure mismatch
        raise ModelError(f"{path}: checkpoint does not match its config ({type(e).__name__})") from None
    nnx.replace_by_pure_dict(state, restored)
    nnx.update(wrapper, state)
    return wrapper, meta


# --------------------------------------------------------------------------- training loop


class TrainResult(NamedTuple):
    step: int
    model_dir: Path | None
    last: dict


def _yuv_to_rgb(x):
    """(H/2, W/2, 6) tensor -> (H, W, 3) BT.601 RGB in [0, 1] (chroma repeated 2x2) for PNGs."""
    import numpy as np

    from proxy.ssf import tensor_to_planes

    y, u, v = (np.asarray(p, np.float32) for p in tensor_to_planes(x))
    u, v = (np.repeat(np.repeat(c, 2, 0), 2, 1) - 0.5 for c in (u, v))
    rgb = np.stack([y + 1.402 * v, y - 0.344136 * u - 0.714136 * v, y + 1.772 * u], -1)
    return np.clip(rgb, 0, 1)


def write_triptych(path: Path, source, i_p, i_c, out) -> None:
    """Paper 004 Fig. 5 style strip: source | P output | codec output | O output."""
    import numpy as np
    from matplotlib import pyplot as plt

    strip = np.concatenate([_yuv_to_rgb(a) for a in (source, i_p, i_c, out)], 1)
    tmp = path.with_suffix(".tmp.png")
    plt.imsave(tmp, strip)
    tmp.replace(path)


def full_frame_targets(target, pool, qps, *, log=None) -> dict:
    """``{(clip index, qp): (decoded Frame, bits per frame, coded QP per frame)}``: every clip
    coded whole, once per QP. The per-frame QPs are the decoder's (`EncodeResult.frame_qp`), or
    the stream QP for every frame of a codec that reports none."""
    import numpy as np

    out = {}
    for i, clip in enumerate(pool):
        for qp in qps:
            result = target.encode(clip, qp=int(qp))
            n = len(result.bits_per_frame)
            frame_qp = np.full(n, qp, np.float32) if result.frame_qp is None else np.asarray(result.frame_qp, np.float32)
            out[i, int(qp)] = (result.recon, np.asarray(result.bits_per_frame, np.float64), frame_qp)
        if log:
            log(f"full-frame targets: clip {i + 1}/{len(pool)} ({clip.width}x{clip.height}, {clip.y.shape[0]} frames)")
    return out


class FullFrameBatch(NamedTuple):
    """One training batch cut from whole-clip decodes (`sample_full_frame_batch`)."""

    patches: object  # proxy.data.PatchBatch: sources and stream QPs
    targets: object  # proxy.data.TargetBatch: the codec's decodes (with neighbours) and bits
    frame_qp: object  # (gop + 2 r, B) coded QP of each decode frame
    aligned: object  # (gop, B, 2 r, patch, patch) motion-compensated neighbours, or None


def sample_full_frame_batch(pool, targets: dict, *, seed: int, step: int, batch: int, patch: int, gop: int,
                            qp_range: tuple[int, int], symmetries: bool = False, context: int = 0,
                            align: int = 0, time_reversal: bool = False) -> FullFrameBatch:
    """Batch of step ``step`` cut from `full_frame_targets`: random clip, QP, start frame and 2-aligned crop.

    ``gop`` frames are kept from any start frame (the stream's own frame types, whatever its
    structure); the source sequence also holds the ``gop`` frames before them, the layout of
    the patch-coded batches. Bits are the frames' bits scaled to the crop's share of the frame
    (logging only: no proxy is refined). With ``symmetries`` each sample's crops (source and
    decode alike) are turned by a random symmetry of the square (`jaxcodec.nn.ensemble`).
    With ``context`` r > 0 the decodes also hold the r frames on either side of the kept
    ones (``gop + 2 r`` frames, clamped at the clip's ends as `wrappers.nets.edge_frames` does
    when deployed): the neighbours a temporal O reads.

    With ``align`` R > 0 (and ``context``) each kept frame's 2 r neighbours are also returned
    motion-compensated onto it (`wrappers.nets.align_neighbours`, search range R), aligned on the
    whole decodes around the crop before the symmetry turns them, as the deployed O aligns whole
    frames.

    With ``time_reversal`` each sample is played backwards with probability 1/2: its kept frames,
    their sources, the decodes around them, their coded QPs and aligned neighbours all in reverse
    order, so frame t's neighbours come as t+r..t+1, t-1..t-r (what the deployed O reads in a
    time-reversed ensemble member, `wrappers.deploy.ensemble_members`). The draw is only made when
    it is on, so batches without it are unchanged.

    Returns a `FullFrameBatch`: ``frame_qp`` float32 ``(gop + 2 r, B)`` is the coded QP of each
    decode frame in ``targets.recon`` (`full_frame_targets`); ``aligned`` uint ``(gop, B, 2 r,
    patch, patch)`` or None.
    """
    import numpy as np

    from jaxcodec.errors import InputError
    from jaxcodec.frame import make_frame
    from jaxcodec.nn import ensemble
    from proxy.data import PatchBatch, TargetBatch
    from wrappers.nets import align_neighbours

    rng = np.random.default_rng([seed, step])
    src, rec, bits, qps, frame_qps, aligned = [], [], [], [], [], []
    for _ in range(batch):
        c = int(rng.integers(len(pool)))
        clip = pool[c]
        t_len, h, w = clip.y.shape
        if t_len < 2 * gop or h < patch or w < patch:
            raise InputError(f"training clip of {t_len} frames {w}x{h} is too small for {2 * gop} frames of {patch}x{patch}")
        qp = int(rng.integers(qp_range[0], qp_range[1] + 1))
        start = int(rng.integers(gop, t_len - gop + 1))
        y0 = int(rng.integers(0, (h - patch) // 2 + 1)) * 2
        x0 = int(rng.integers(0, (w - patch) // 2 + 1)) * 2
        decoded, frame_bits, coded_qp = targets[c, qp]
        k = int(rng.integers(8)) if symmetries else 0
        backwards = bool(rng.integers(2)) if time_reversal else False

        def crop(f, t):
            ys, xs = slice(y0, y0 + patch), slice(x0, x0 + patch)
            cys, cxs = slice(y0 // 2, (y0 + patch) // 2), slice(x0 // 2, (x0 + patch) // 2)
            return tuple(ensemble.symmetry(np.asarray(p[t, s0, s1]), k, axes=(1, 2))
                         for p, s0, s1 in ((f.y, ys, xs), (f.u, cys, cxs), (f.v, cys, cxs)))

        # Backwards, each half of the source stays in its place (the kept frames are the second).
        order = (lambda a: a[::-1]) if backwards else (lambda a: a)  # noqa: E731
        src.append(crop(clip, np.concatenate([order(np.arange(start - gop, start)), order(np.arange(start, start + gop))])))
        around = order(np.clip(np.arange(start - context, start + gop + context), 0, t_len - 1))
        rec.append(crop(decoded, around))
        bits.append(order(frame_bits[start:start + gop]) * (patch * patch / (h * w)))
        qps.append(qp)
        frame_qps.append(coded_qp[around])
        if align and context:
            offsets = order(np.asarray([d for d in range(-context, context + 1) if d]))
            aligned.append(np.stack([ensemble.symmetry(np.asarray(align_neighbours(
                decoded.y[t], decoded.y[np.clip(t + offsets, 0, t_len - 1)], align,
                top=y0, left=x0, height=patch, width=patch)), k, axes=(1, 2))
                for t in order(np.arange(start, start + gop))]))
    stack = lambda xs, k: np.stack([x[k] for x in xs])  # noqa: E731
    source = make_frame(stack(src, 0), stack(src, 1), stack(src, 2))
    kept = make_frame(source.y[:, gop:], source.u[:, gop:], source.v[:, gop:])
    recon = make_frame(stack(rec, 0), stack(rec, 1), stack(rec, 2))
    qp_arr = np.asarray(qps, np.int32)
    return FullFrameBatch(PatchBatch(source, qp_arr), TargetBatch(kept, recon, np.stack(bits), qp_arr, 0.0),
                          np.stack(frame_qps, axis=1).astype(np.float32),
                          np.stack(aligned, axis=1) if aligned else None)


def _to_tensor(frames):
    """uint8 Frame (B, T, H, W) -> float (T, B, H/2, W/2, 6)."""
    import jax.numpy as jnp

    from wrappers.nets import frames_to_tensor

    return jnp.moveaxis(frames_to_tensor(frames), 1, 0)


def _from_tensor(x):
    """(T, B, H/2, W/2, 6) float -> uint8 Frame (B, T, H, W) as numpy (codec input)."""
    import jax.numpy as jnp
    import numpy as np

    from wrappers.nets import tensor_to_frames

    f = tensor_to_frames(jnp.moveaxis(x, 0, 1))
    return f.replace(y=np.asarray(f.y), u=np.asarray(f.u), v=np.asarray(f.v))


def _init_wrapper(config: WrapperTrainConfig):
    """The saved wrapper ``config.init_from``, refused unless its P and O configs equal ``config``'s
    (a single-frame O may start a temporal one, a temporal O one with neighbour QPs, a shallower O
    a deeper one, a luma-only O one that also changes chroma: `wrappers.nets.grow_network`; a
    stream-QP O a frame-QP one)."""
    from flax import nnx

    from wrappers.nets import NetConfig, grow_network

    saved, meta = load_wrapper(config.init_from)
    pre, post = config.net_configs()
    # Through NetConfig, so that a key an older meta.json lacks compares as its default.
    have_post = NetConfig(**meta["post"])
    # A trained O may start a temporal one (from a single-frame O) or a deeper one.
    grow = {}
    if post.enabled and have_post.temporal == 0 and post.temporal > 0:
        grow["temporal"] = post.temporal
    if post.enabled and have_post.blocks < post.blocks:
        grow["blocks"] = post.blocks
    if post.enabled and post.temporal_qp and not have_post.temporal_qp:
        grow["temporal_qp"] = True
    if post.enabled and have_post.planes == "y" and post.planes == "yuv":
        grow["planes"] = "yuv"
    # Same network, fed each frame's QP instead of the stream's: fine-tuning adapts it.
    fed = {"frame_qp": True} if post.enabled and post.frame_qp and not have_post.frame_qp else {}
    if post.enabled and post.align and not have_post.align and have_post.temporal:
        fed["align"] = post.align  # the same neighbour channels, fed aligned
    if post.enabled and have_post.strength != post.strength:
        fed["strength"] = post.strength  # a deployment setting, never trained: the run's own applies
    have_post = dataclasses.replace(have_post, **fed)
    have_post = dataclasses.replace(have_post, **grow)
    diff = [f"{name}.{k}: checkpoint {have!r} vs config {want!r}"
            for name, have_net, net in (("pre", NetConfig(**meta["pre"]), pre), ("post", have_post, post))
            for (k, have), want in zip(dataclasses.asdict(have_net).items(), dataclasses.asdict(net).values())
            if have != want]
    if diff:
        raise ConfigError(f"init_from {config.init_from} was trained with other networks ({'; '.join(diff)})")
    for k, v in fed.items():
        setattr(saved.post, k, v)
    if grow:
        saved.post = grow_network(saved.post, post, rngs=nnx.Rngs(config.seed))
    return saved


def init_state(config: WrapperTrainConfig, proxy_path: str | Path | None):
    """Fresh TrainState, graphdefs, optimizers and the proxy metadata."""
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from proxy.ssf import ModelConfig, SSFModel, is_hyper_param, is_transform_param, load_model
    from wrappers.nets import Wrapper

    if proxy_path is None:
        raise ConfigError("wrapper training needs a pretrained proxy (--proxy DIR), also for pretrained = false "
                          "(its architecture is reused)")
    proxy_model, _, calibration, proxy_meta = load_model(proxy_path)
    if not config.pretrained:
        proxy_model = SSFModel(proxy_model.config, rngs=nnx.Rngs(config.seed + 1))
        calibration = type(calibration)()
    assert isinstance(proxy_model.config, ModelConfig)
    # With the proxy-free step and no refinement the proxy never runs: O may then train on QPs
    # the proxy was not trained for, e.g. below x264's range of interest, where the I pictures of
    # the lowest evaluated QP are coded.
    proxy_runs = not config.proxy_free_step or config.iterative_update
    if proxy_runs and not proxy_model.config.qp_min <= config.qp_min <= config.qp_max <= proxy_model.config.qp_max:
        raise ConfigError(f"QP range {config.qp_min}..{config.qp_max} is outside the proxy's "
                          f"{proxy_model.config.qp_min}..{proxy_model.config.qp_max}")
    pre, post = config.net_configs()
    wrapper = _init_wrapper(config) if config.init_from else Wrapper(pre, post, rngs=nnx.Rngs(config.seed))
    wrapper_graph, wrapper_params = nnx.split(wrapper, nnx.Param)
    proxy_graph, hyper, transform = nnx.split(proxy_model, is_hyper_param, is_transform_param)
    optimizers = (optax.adam(config.wrapper_learning_rate()), optax.adam(config.proxy_learning_rate),
                  optax.adam(config.proxy_learning_rate), optax.adam(config.calib_learning_rate))
    calib = jnp.asarray([calibration.alpha_intra, calibration.beta_intra, calibration.alpha_inter,
                         calibration.beta_inter], jnp.float32)
    state = TrainState(wrapper_params, transform, hyper, calib, optimizers[0].init(wrapper_params),
                       optimizers[1].init(transform), optimizers[2].init(hyper), optimizers[3].init(calib),
                       jnp.asarray(0, jnp.int32))
    return state, wrapper_graph, proxy_graph, optimizers, proxy_model.config, proxy_meta


def train(config: WrapperTrainConfig, *, target, target_name: str, proxy_path: str | Path | None,
          out_dir: str | Path, stop_at: int | None = None, progress: bool = True,
          export_to: str | Path | None = None, pool=None) -> TrainResult:
    """Run (or resume) Algorithm 1; writes checkpoints/, metrics.jsonl, images/, model/ under ``out_dir``."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import orbax.checkpoint as ocp
    from flax import nnx
    from tqdm import tqdm

    from proxy.data import PatchBatch, load_pool, run_target, sample_batch
    from proxy.train import open_checkpoints
    from wrappers.nets import aligned_context, temporal_context

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    run_meta = json.loads(json.dumps({"config": dataclasses.asdict(config), "target": target_name,
                                      "proxy": str(proxy_path)}))
    meta_path = out_dir / "run.json"
    if meta_path.is_file():
        if json.loads(meta_path.read_text()) != run_meta:
            raise ModelError(f"{out_dir} holds a run with another config, target or proxy; use a new --out directory")
    else:
        meta_path.write_text(json.dumps(run_meta, indent=2))

    state, wrapper_graph, proxy_graph, optimizers, proxy_config, proxy_meta = init_state(config, proxy_path)
    steps = make_steps(config, wrapper_graph, proxy_graph, optimizers)

    manager, start, state = open_checkpoints(out_dir, state)

    metrics_path = out_dir / "metrics.jsonl"
    kept = []
    if metrics_path.is_file():  # rows a killed run wrote after its last checkpoint are redone
        kept = [ln for ln in metrics_path.read_text().splitlines() if ln and json.loads(ln).get("step", 0) <= start]
    metrics_path.write_text("".join(ln + "\n" for ln in kept))
    (out_dir / "images").mkdir(exist_ok=True)

    pool = load_pool(config.clips, max_frames=config.max_clip_frames) if pool is None else pool
    full = None
    if config.codec_on_full_frames:
        t0 = time.perf_counter()
        full = full_frame_targets(target, pool, range(config.qp_min, config.qp_max + 1),
                                  log=None if progress else print)
        (out_dir / "full_frame_targets.json").write_text(json.dumps(
            {"clips": len(pool), "qps": [config.qp_min, config.qp_max], "seconds": time.perf_counter() - t0}))
    base_key = jax.random.key(config.seed)
    end = config.steps if stop_at is None else min(stop_at, config.steps)
    gop = config.gop
    radius = config.post_temporal
    row: dict = {}
    bar = tqdm(total=end, initial=start, disable=not progress, desc="wrappers", unit="step")
    with open(metrics_path, "a") as log:
        for step in range(start, end):
            t0 = time.perf_counter()
            if full is not None:  # P is off: the codec's input is the source, coded before training
                pb, tb, frame_qp, aligned = sample_full_frame_batch(
                    pool, full, seed=config.seed, step=step, batch=config.batch_size, patch=config.patch, gop=gop,
                    qp_range=(config.qp_min, config.qp_max), symmetries=config.augment_symmetries, context=radius,
                    align=config.post_align, time_reversal=config.augment_time_reversal)
                source = _to_tensor(pb.frames)
            else:
                pb = sample_batch(pool, seed=config.seed, step=step, batch=config.batch_size, patch=config.patch,
                                  gop=gop, qp_range=(config.qp_min, config.qp_max))
                source = _to_tensor(pb.frames)  # (2*gop, B, ...)
                i_p_frames = _from_tensor(steps.pre(state.wrapper, source, jnp.asarray(pb.qp, jnp.float32)[None]))
                tb = run_target(target, PatchBatch(i_p_frames, pb.qp), gop=gop)  # host: the real codec
            i_c = _to_tensor(tb.recon)
            context = None
            if radius:  # the decodes hold the neighbours around the gop kept frames
                context = temporal_context(i_c, radius, frame_qp if config.post_temporal_qp else None)
                if config.post_align:  # the same channels, the neighbours' luma motion-compensated
                    context = aligned_context(aligned, context)
                i_c = i_c[radius:radius + gop]
                frame_qp = frame_qp[radius:radius + gop]  # post_temporal implies codec_on_full_frames
            i_p = _to_tensor(tb.source)  # the rounded samples the codec really received
            qp_index = jnp.asarray(pb.qp - proxy_config.qp_min, jnp.int32)
            key = jax.random.fold_in(base_key, step)
            t1 = time.perf_counter()
            if config.iterative_update:
                state, proxy_terms = steps.proxy(state, i_p, i_c, jnp.asarray(tb.bits.T, jnp.float32), qp_index, key)
            else:
                proxy_terms = {}
            # (1, B) stream QPs broadcast over the GOP, or (gop, B) coded QPs (post_frame_qp).
            qp = jnp.asarray(frame_qp if config.post_frame_qp else pb.qp[None], jnp.float32)
            state, terms, out = steps.wrapper(state, source[gop:], i_c, qp_index, qp, key,
                                              jnp.asarray(tb.bits.T, jnp.float32), context)
            row = {"step": step + 1, **{k: float(v) for k, v in {**terms, **proxy_terms}.items()},
                   "target_bpp": float(tb.bits.sum() / (tb.bits.size * config.patch ** 2)),
                   "codec_s": tb.codec_seconds, "jax_s": time.perf_counter() - t1, "step_s": time.perf_counter() - t0}
            log.write(json.dumps(row) + "\n")
            log.flush()
            bar.update(1)
            bar.set_postfix(loss=f"{row['total']:.4g}", bpp=f"{row['rate_bpp']:.3g}")
            if config.image_every and (step + 1) % config.image_every == 0:
                write_triptych(out_dir / "images" / f"step_{step + 1:07d}.png", source[gop, 0], i_p[0, 0],
                               i_c[0, 0], np.asarray(out[0, 0]))
            if (step + 1) % config.checkpoint_every == 0 or step + 1 == end:
                manager.save(step + 1, args=ocp.args.StandardSave(state))
                manager.wait_until_finished()
    bar.close()
    manager.close()
    if end < config.steps:
        return TrainResult(end, None, row)

    wrapper = nnx.merge(wrapper_graph, state.wrapper)
    pre, post = config.net_configs()
    meta = {"pre": dataclasses.asdict(pre), "post": dataclasses.asdict(post), "target": target_name,
            "qp_range": [config.qp_min, config.qp_max], "steps": config.steps,
            "train_config": json.loads(json.dumps(dataclasses.asdict(config))),
            # the proxy's directory name, not the training machine's absolute path (shipped file)
            "proxy": {"name": Path(proxy_path).name, "target": proxy_meta.get("target")}}
    save_wrapper(out_dir / "model", wrapper, meta=meta)
    if export_to is not None:
        save_wrapper(export_to, wrapper, meta=meta)
    return TrainResult(end, out_dir / "model", row)
