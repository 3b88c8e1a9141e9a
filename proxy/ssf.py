"""Scale-space flow video codec (Agustsson et al., CVPR 2020) used as the codec proxy of paper 004.

Three hyperprior autoencoders (Ballé 2018, no autoregressive context), as in paper 004
section 3.1: *intra* codes the first frame of a GOP; for inter frames *flow* codes the
scale-space flow ``(flow x, flow y, scale)`` from the current frame and the reference, the
reference is warped trilinearly in a blur stack (`scale_space_warp`), and *residual* codes
the prediction error.

Frames enter as 4:2:0 tensors (`frames_to_tensor`): luma pixel-unshuffled to 4 channels plus
Cb and Cr, i.e. ``(..., H/2, W/2, 6)`` in [0, 1]. A flow at half resolution moves every luma
phase plane exactly as it moves the full-resolution luma, so the warp stays exact in this
layout. Latents are at 1/8 of the luma size, hyper latents at 1/32 (`DOWNSAMPLING`): a small
model trained on 64x64 patches needs latent maps larger than 4x4 to learn interior (not
border) behaviour, and the finer latents reach the PSNR range of the targets.

QP conditioning: one model for QP ``qp_min..qp_max``. Latents are divided by the target's
quantizer step law (the step doubles every 6 QP, as in H.264/HEVC) times a learned
per-channel gain, and multiplied back before synthesis. Per-QP gains are not left free:
phase 1's pure distortion loss (eq. 1) has no rate term that would keep them apart.

``code_frame`` is the one pipeline for training, encoding and decoding: what happens to
each latent is decided by the coder passed in (`proxy.coders`).

    intra:  x ─[intra AE]──────────────────────────────> x_hat
    inter:  (x, ref) ─[flow AE]─> (fx, fy, s) ─warp(ref)─> x_pred
            x - x_pred ─[residual AE]─> r_hat;   x_hat = x_pred + r_hat
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import struct as pystruct
from pathlib import Path
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxcodec.errors import BitstreamError, ConfigError, InputError, ModelError
from jaxcodec.frame import Frame, crop_frame, make_frame, pad_frame
from proxy.coders import DecodeCoder, EncodeCoder, ForwardCoder
from proxy.entropy_models import (
    CdfTables,
    FactorizedPrior,
    factorized_tables,
    gaussian_tables,
    ste_round,
)

DOWNSAMPLING = 32  # luma samples per hyper-latent sample (2 unshuffle * 4 analysis * 4 hyper)
HYPER_PARAM_NAMES = ("h_a", "h_s", "prior")  # paper 004's theta_h; everything else is theta_g


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of the proxy (all widths configurable; defaults train on a CPU).

    Attributes:
      intra_channels / intra_latent: hidden / latent channels of the intra autoencoder.
      flow_channels / flow_latent: same for the flow autoencoder.
      residual_channels / residual_latent: same for the residual autoencoder.
      hyper_channels / hyper_latent: hidden / hyper-latent channels of every hyperprior.
      scale_levels: levels of the scale-space volume (level 0 is the sharp reference).
      scale_sigma0: blur of level 1 in half-resolution samples; level k has sigma0 * 2^(k-1).
      qp_min / qp_max: QP range covered (one gain vector per QP).
      intra_refine: code each intra frame's error after the intra autoencoder with the residual
        autoencoder (the one inter frames use; no new parameters), x_hat = x_I + r(x - x_I).
        The shallow intra transform saturates (medium proxy on held-out bigbuckbunny: 39.7 dB
        however fine the quantizer, against x264's 47.8 dB intra at QP 22), while the residual
        coder reaches the target's range; without it the proxy's intra frames sit 3-6 dB below
        its own inter frames and the per-frame PSNR alignment breaks. False = the plain SSF intra.
    """

    intra_channels: int = 32
    intra_latent: int = 48
    flow_channels: int = 24
    flow_latent: int = 32
    residual_channels: int = 32
    residual_latent: int = 48
    hyper_channels: int = 32
    hyper_latent: int = 24
    scale_levels: int = 4
    scale_sigma0: float = 1.0
    qp_min: int = 22
    qp_max: int = 42
    intra_refine: bool = False

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, int) and not isinstance(v, bool) and v <= 0:
                raise ConfigError(f"ModelConfig.{f.name} must be positive, got {v}")
        if not 0 <= self.qp_min <= self.qp_max <= 63:
            raise ConfigError(f"bad QP range {self.qp_min}..{self.qp_max}")

    @property
    def num_qps(self) -> int:
        return self.qp_max - self.qp_min + 1


# --------------------------------------------------------------------------- layers


class GDN(nnx.Module):
    """Generalized divisive normalization (Ballé 2016); ``inverse`` multiplies instead."""

    def __init__(self, channels: int, *, inverse: bool = False):
        self.inverse = inverse
        self.beta = nnx.Param(jnp.ones((channels,), jnp.float32))
        self.gamma = nnx.Param(0.1 * jnp.eye(channels, dtype=jnp.float32))

    def __call__(self, x):
        norm = jnp.sqrt(jnp.maximum(self.beta[...], 1e-6) + jnp.matmul(x * x, jnp.abs(self.gamma[...])))
        return x * norm if self.inverse else x / norm


def _conv(cin, cout, k, stride, rngs):
    return nnx.Conv(cin, cout, (k, k), strides=(stride, stride), padding="SAME", rngs=rngs)


def _deconv(cin, cout, k, stride, rngs):
    return nnx.ConvTranspose(cin, cout, (k, k), strides=(stride, stride), padding="SAME", rngs=rngs)


def qp_log_step(qp_index):
    """log of the quantizer step relative to ``qp_min``: the step doubles every 6 QP (H.264/HEVC/AV1-like)."""
    return jnp.asarray(qp_index, jnp.float32) * (math.log(2.0) / 6.0)


class HyperpriorAE(nnx.Module):
    """g_a/g_s (2 stride-2 stages + one stride-1, GDN), h_a/h_s (2 stride-2 stages), factorized prior, gains."""

    def __init__(self, cin: int, cout: int, channels: int, latent: int, hyper_channels: int, hyper_latent: int,
                 num_qps: int, *, rngs: nnx.Rngs):
        n, m, nh = channels, latent, hyper_channels
        self.g_a = nnx.List([_conv(cin, n, 5, 2, rngs), GDN(n), _conv(n, n, 3, 1, rngs), GDN(n), _conv(n, m, 5, 2, rngs)])
        self.g_s = nnx.List([_deconv(m, n, 5, 2, rngs), GDN(n, inverse=True), _conv(n, n, 3, 1, rngs),
                             GDN(n, inverse=True), _deconv(n, cout, 5, 2, rngs)])
        self.h_a = nnx.List([_conv(m, nh, 3, 1, rngs), _conv(nh, nh, 5, 2, rngs), _conv(nh, hyper_latent, 5, 2, rngs)])
        self.h_s = nnx.List([_deconv(hyper_latent, nh, 5, 2, rngs), _deconv(nh, nh, 5, 2, rngs), _conv(nh, m, 3, 1, rngs)])
        self.prior = FactorizedPrior(hyper_latent, rngs=rngs)
        # learned per-channel log gains; the QP dependence is the target's step-size law (below)
        # start with a quantizer step of 1/8 of the untrained latents' scale at qp_min, so that
        # rounding does not zero every latent at high QP before the transforms have grown
        self.gain_enc = nnx.Param(jnp.full((m,), math.log(8.0), jnp.float32))
        self.gain_dec = nnx.Param(jnp.full((m,), -math.log(8.0), jnp.float32))

    @staticmethod
    def _run(layers, x, relu: bool = False):
        for i, layer in enumerate(layers):
            x = layer(x)
            if relu and i < len(layers) - 1:
                x = jax.nn.relu(x)
        return x

    def analysis(self, x, qp_index):
        gain = jnp.exp(self.gain_enc[...] - qp_log_step(qp_index)[:, None])
        return self._run(self.g_a, x) * gain[:, None, None, :]

    def synthesis(self, y_hat, qp_index):
        gain = jnp.exp(self.gain_dec[...] + qp_log_step(qp_index)[:, None])
        return self._run(self.g_s, y_hat * gain[:, None, None, :])

    def hyper_analysis(self, y):
        return self._run(self.h_a, jnp.abs(y), relu=True)

    def hyper_synthesis(self, z_hat):
        return jax.nn.softplus(self._run(self.h_s, z_hat, relu=True))


class SSFModel(nnx.Module):
    """The proxy: intra, flow and residual hyperprior autoencoders (no autoregressive context)."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        c = config
        self.config = c
        self.intra = HyperpriorAE(6, 6, c.intra_channels, c.intra_latent, c.hyper_channels, c.hyper_latent, c.num_qps, rngs=rngs)
        self.flow = HyperpriorAE(12, 3, c.flow_channels, c.flow_latent, c.hyper_channels, c.hyper_latent, c.num_qps, rngs=rngs)
        self.residual = HyperpriorAE(6, 6, c.residual_channels, c.residual_latent, c.hyper_channels, c.hyper_latent,
                                     c.num_qps, rngs=rngs)


def is_hyper_param(path, value) -> bool:
    """nnx filter: hyperprior parameters (theta_h of paper 004 eq. 2)."""
    return isinstance(value, nnx.Param) and any(p in HYPER_PARAM_NAMES for p in map(str, path))


def is_transform_param(path, value) -> bool:
    """nnx filter: transform parameters (theta_g of paper 004 eq. 1), gains included."""
    return isinstance(value, nnx.Param) and not is_hyper_param(path, value)


# --------------------------------------------------------------------------- frames <-> tensors


def luma_phases(y):
    """Luma ``(..., H, W)`` pixel-unshuffled into its four 2x2 phases: float ``(..., H/2, W/2, 4)``
    (sample values unscaled), the first channels of `frames_to_tensor`."""
    y = jnp.asarray(y, jnp.float32)
    *lead, h, w = y.shape
    phases = y.reshape(*lead, h // 2, 2, w // 2, 2)
    return jnp.moveaxis(phases, -3, -2).reshape(*lead, h // 2, w // 2, 4)


def frames_to_tensor(y, u, v, peak: int):
    """4:2:0 planes ``(..., H, W)``/``(..., H/2, W/2)`` -> float ``(..., H/2, W/2, 6)`` in [0, 1]."""
    x = jnp.concatenate([luma_phases(y), jnp.asarray(u, jnp.float32)[..., None],
                         jnp.asarray(v, jnp.float32)[..., None]], -1)
    return x / peak


def tensor_to_planes(x):
    """Inverse of `frames_to_tensor` (values stay float in [0, 1] scale)."""
    *lead, h2, w2, _ = x.shape
    phases = x[..., :4].reshape(*lead, h2, w2, 2, 2)
    y = jnp.moveaxis(phases, -2, -3).reshape(*lead, 2 * h2, 2 * w2)
    return y, x[..., 4], x[..., 5]


def check_size(height: int, width: int) -> None:
    """Frames must cover at least one hyper-latent sample (``DOWNSAMPLING`` luma samples)."""
    if height < DOWNSAMPLING or width < DOWNSAMPLING:
        raise InputError(f"frames of {width}x{height} are smaller than the proxy's downsampling factor "
                         f"{DOWNSAMPLING}; need at least {DOWNSAMPLING}x{DOWNSAMPLING} luma samples")


# --------------------------------------------------------------------------- scale-space warp


def gaussian_blur(x, sigma: float):
    """Separable Gaussian blur of ``(B, H, W, C)`` (edge-replicated borders, radius 3 sigma)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k = jnp.asarray(k / k.sum(), x.dtype)
    pad = [(0, 0), (radius, radius), (radius, radius), (0, 0)]
    xp = jnp.pad(x, pad, mode="edge")
    c = x.shape[-1]
    kh = jnp.tile(k[:, None, None, None], (1, 1, 1, c))  # HWIO depthwise
    kw = jnp.tile(k[None, :, None, None], (1, 1, 1, c))
    dn = ("NHWC", "HWIO", "NHWC")
    xp = jax.lax.conv_general_dilated(xp, kh, (1, 1), "VALID", dimension_numbers=dn, feature_group_count=c)
    return jax.lax.conv_general_dilated(xp, kw, (1, 1), "VALID", dimension_numbers=dn, feature_group_count=c)


def scale_space_volume(ref, levels: int, sigma0: float):
    """``[ref, blur(ref, sigma0), blur(ref, 2 sigma0), ...]`` stacked on a leading axis (Agustsson eq. 2)."""
    return jnp.stack([ref] + [gaussian_blur(ref, sigma0 * 2 ** (k - 1)) for k in range(1, levels)])


def bilinear_sample(img, px, py):
    """Sample ``img (B, H, W, C)`` at float positions ``px, py (B, H, W)``; borders clamp."""
    b, h, w, c = img.shape
    x0, y0 = jnp.floor(px), jnp.floor(py)
    wx, wy = (px - x0)[..., None], (py - y0)[..., None]
    flat = img.reshape(b, h * w, c)

    def tap(yi, xi):
        yi = jnp.clip(yi, 0, h - 1).astype(jnp.int32)
        xi = jnp.clip(xi, 0, w - 1).astype(jnp.int32)
        return jnp.take_along_axis(flat, (yi * w + xi).reshape(b, -1, 1), axis=1).reshape(b, h, w, c)

    return ((1 - wy) * ((1 - wx) * tap(y0, x0) + wx * tap(y0, x0 + 1))
            + wy * ((1 - wx) * tap(y0 + 1, x0) + wx * tap(y0 + 1, x0 + 1)))


def scale_space_warp(ref, flow, *, levels: int, sigma0: float):
    """Trilinear warp of ``ref (B, H, W, C)`` by ``flow (B, H, W, 3)`` = (dx, dy, scale level).

    Bilinear in x, y on every level of the blur stack, linear across levels with weights
    ``max(0, 1 - |s - k|)`` for ``s`` clipped to ``[0, levels - 1]`` (Agustsson et al. 2020,
    section 3.2).
    """
    b, h, w, _ = ref.shape
    gy, gx = jnp.meshgrid(jnp.arange(h, dtype=ref.dtype), jnp.arange(w, dtype=ref.dtype), indexing="ij")
    px, py = gx + flow[..., 0], gy + flow[..., 1]
    s = jnp.clip(flow[..., 2], 0.0, levels - 1.0)
    vol = scale_space_volume(ref, levels, sigma0)
    out = 0.0
    for k in range(levels):
        weight = jax.nn.relu(1.0 - jnp.abs(s - k))[..., None]
        out = out + weight * bilinear_sample(vol[k], px, py)
    return out


# --------------------------------------------------------------------------- the pipeline


def _code_latents(ae: HyperpriorAE, name: str, analysis_input, qp_index, coder, size, latent: int, hyper_latent: int):
    """One hyperprior autoencoder: returns (synthesis output, bits (B,))."""
    b, h, w = size
    y_cache = []

    def y_fn():
        if not y_cache:
            y_cache.append(ae.analysis(analysis_input(), qp_index))
        return y_cache[0]

    z_hat, z_bits = coder.factorized(name, ae.prior, lambda: ae.hyper_analysis(y_fn()), (b, h // 16, w // 16, hyper_latent))
    scales = ae.hyper_synthesis(z_hat)
    y_hat, y_bits = coder.gaussian(name, scales, y_fn, (b, h // 4, w // 4, latent))
    return ae.synthesis(y_hat, qp_index), z_bits + y_bits


def code_frame(model: SSFModel, x, ref, qp_index, coder, *, size):
    """Code one frame: intra when ``ref`` is None, else scale-space-flow inter (paper 004, 3.1).

    Args:
      model: the proxy.
      x: current frame tensor ``(B, H/2, W/2, 6)``, or None when decoding.
      ref: reconstructed reference tensor (same shape) or None for an intra frame.
      qp_index: int32 ``(B,)``, ``qp - qp_min``.
      coder: a `proxy.coders` coder (forward / encode / decode).
      size: ``(B, H/2, W/2)``, the tensor size (known to the decoder from the header).

    Returns:
      ``(x_hat, bits)``: reconstruction clipped to [0, 1] and bits (B,) (flow + residual for
      inter frames, intra + refinement for intra frames with ``intra_refine``; R_M^hyp of
      paper 004 eq. 2 before the affine map).
    """
    c = model.config
    if ref is None:
        x_hat, bits = _code_latents(model.intra, "intra", lambda: x, qp_index, coder, size, c.intra_latent, c.hyper_latent)
        if c.intra_refine:
            base = x_hat
            res, bits_res = _code_latents(model.residual, "residual", lambda: x - base, qp_index, coder, size,
                                          c.residual_latent, c.hyper_latent)
            x_hat, bits = base + res, bits + bits_res
    else:
        flow, bits_flow = _code_latents(model.flow, "flow", lambda: jnp.concatenate([x, ref], -1), qp_index, coder, size,
                                        c.flow_latent, c.hyper_latent)
        pred = scale_space_warp(ref, flow, levels=c.scale_levels, sigma0=c.scale_sigma0)
        res, bits_res = _code_latents(model.residual, "residual", lambda: x - pred, qp_index, coder, size,
                                      c.residual_latent, c.hyper_latent)
        x_hat, bits = pred + res, bits_flow + bits_res
    return jnp.clip(x_hat, 0.0, 1.0), bits


def code_gop(model: SSFModel, frames, qp_index, coder):
    """Code a GOP ``(T, B, H/2, W/2, 6)``: intra frame, then inter frames on the previous reconstruction.

    Returns ``(recon (T, B, ...), bits (T, B))``. Used by training and the differentiable proxy.
    """
    t_len, b, h, w, _ = frames.shape
    ref, recons, bits = None, [], []
    for t in range(t_len):
        ref, r = code_frame(model, frames[t], ref, qp_index, coder, size=(b, h, w))
        recons.append(ref)
        bits.append(r)
    return jnp.stack(recons), jnp.stack(bits)


class Calibration(NamedTuple):
    """Affine rate map of paper 004 eq. 3, per frame type: ``R_M = alpha R_hyp + beta * pixels``.

    ``beta`` is in bits per luma pixel (the fit is done on bits per pixel), so one map holds
    for 64x64 training patches and full frames alike.
    """

    alpha_intra: float = 1.0
    beta_intra: float = 0.0
    alpha_inter: float = 1.0
    beta_inter: float = 0.0


def apply_calibration(cal: Calibration, bits_hyp, intra, pixels: int):
    """Eq. 3: calibrated bits of frames with model bits ``bits_hyp`` and intra flags ``intra``."""
    return jnp.where(intra, cal.alpha_intra * bits_hyp + cal.beta_intra * pixels,
                     cal.alpha_inter * bits_hyp + cal.beta_inter * pixels)


def fit_calibration(bpp_hyp: np.ndarray, bpp_target: np.ndarray, intra: np.ndarray) -> Calibration:
    """Least-squares fit of eq. 3 (MSE of alpha R_hyp + beta against R_C, in bits per pixel), per frame type."""
    out = []
    for sel in (intra, ~intra):
        x, y = np.asarray(bpp_hyp, np.float64)[sel], np.asarray(bpp_target, np.float64)[sel]
        if x.size < 2 or np.ptp(x) == 0:
            out += [1.0, float(np.mean(y - x)) if x.size else 0.0]
            continue
        alpha, beta = np.polyfit(x, y, 1)
        out += [float(alpha), float(beta)]
    return Calibration(*out)


class ProxyOutput(NamedTuple):
    """Differentiable proxy output for a GOP.

    Attributes:
      recon: ``(T, B, H/2, W/2, 6)`` reconstruction tensor in [0, 1].
      bits_hyp: ``(T, B)`` model bits R_M^hyp.
      bits: ``(T, B)`` calibrated bits R_M (eq. 3).
    """

    recon: jax.Array
    bits_hyp: jax.Array
    bits: jax.Array


def forward(model: SSFModel, frames, qp, calibration: Calibration = Calibration(), *, key=None) -> ProxyOutput:
    """Differentiable proxy of the target codec on a GOP ``(T, B, H/2, W/2, 6)`` at ``qp`` (B,).

    Straight-through rounding for both synthesis and rate, so d(recon, rate)/d(frames)
    exists; this is what the wrappers back-propagate through.
    """
    chex.assert_rank(frames, 5)
    check_size(2 * frames.shape[2], 2 * frames.shape[3])
    qp_index = jnp.clip(jnp.asarray(qp, jnp.int32) - model.config.qp_min, 0, model.config.num_qps - 1)
    key = jax.random.key(0) if key is None else key
    coder = ForwardCoder(rate_surrogate=ste_round, synthesis_surrogate=ste_round, key=key)
    recon, bits = code_gop(model, frames, qp_index, coder)
    intra = (jnp.arange(frames.shape[0]) == 0)[:, None]
    pixels = 4 * frames.shape[2] * frames.shape[3]
    return ProxyOutput(recon, bits, apply_calibration(calibration, bits, intra, pixels))


# --------------------------------------------------------------------------- tables and codec


class ProxyTables(NamedTuple):
    """All integer tables of the codec: one factorized table set per autoencoder, the Gaussian set."""

    intra: CdfTables
    flow: CdfTables
    residual: CdfTables
    gaussian: CdfTables


def build_tables(model: SSFModel) -> ProxyTables:
    """Integer tables from the learned priors; stored with the model, never rebuilt by the decoder."""
    return ProxyTables(factorized_tables(model.intra.prior), factorized_tables(model.flow.prior),
                       factorized_tables(model.residual.prior), gaussian_tables())


MAGIC = b"JXPX"
VERSION = 1
_HEADER = ">4sBHHHBBBB"  # magic, version, width, height, frames, gop, qp, bit depth, reserved


class Compressed(NamedTuple):
    """Result of `compress`.

    Attributes:
      bitstream: the complete stream (header, then per frame: length, rANS payload, MD5).
      recon: encoder reconstruction (stacked `Frame`, uint), equal to `decompress`'s output.
      bits_per_frame: int64 (T,) rANS payload bits of each frame.
      estimated_bits: float64 (T,) ideal code length under the integer tables.
      model_bits: float64 (T,) the proxy's rate estimate R_M^hyp (float likelihoods, rounded latents).
      symbols: per frame, the latent symbols in decode order (for round-trip checks).
    """

    bitstream: bytes
    recon: Frame
    bits_per_frame: np.ndarray
    estimated_bits: np.ndarray
    model_bits: np.ndarray
    symbols: list


def _to_uint(x_planes, frame_like: Frame) -> Frame:
    peak = frame_like.peak
    dtype = np.uint8 if frame_like.bit_depth == 8 else np.uint16
    y, u, v = (np.clip(np.round(np.asarray(p, np.float64) * peak), 0, peak).astype(dtype) for p in x_planes)
    return make_frame(y, u, v, bit_depth=frame_like.bit_depth)


def _frame_md5(f: Frame) -> bytes:
    h = hashlib.md5()
    for p in f.planes:
        h.update(np.ascontiguousarray(p).tobytes())
    return h.digest()


def _gop_position(t: int, gop: int) -> bool:
    return t % gop == 0


def compress(model: SSFModel, tables: ProxyTables, frames: Frame, *, qp: int, gop: int = 4) -> Compressed:
    """Encode a clip (stacked `Frame`, ``(T, H, W)``) with the proxy at ``qp``: a real bitstream.

    Frames are edge-padded to a multiple of `DOWNSAMPLING`; every ``gop``-th frame is intra.
    The reconstruction is produced by the same `code_frame` the decoder runs (closed loop).
    """
    c = model.config
    if not c.qp_min <= qp <= c.qp_max:
        raise ConfigError(f"qp {qp} outside the proxy's range {c.qp_min}..{c.qp_max}")
    if len(frames.batch_shape) != 1:
        raise InputError("compress expects stacked frames (T, H, W)")
    check_size(frames.height, frames.width)
    if not 1 <= gop <= 255:
        raise ConfigError(f"gop must be in 1..255, got {gop}")
    padded = pad_frame(frames, DOWNSAMPLING)
    x_all = frames_to_tensor(padded.y, padded.u, padded.v, frames.peak)
    t_len, h, w, _ = x_all.shape
    qp_index = jnp.asarray([qp - c.qp_min], jnp.int32)
    header = pystruct.pack(_HEADER, MAGIC, VERSION, frames.width, frames.height, t_len, gop, qp, frames.bit_depth, 0)
    out = [header]
    recons, bits, est, model_bits, symbols = [], [], [], [], []
    ref = None
    for t in range(t_len):
        x = x_all[t][None]
        ref_in = None if _gop_position(t, gop) else ref
        coder = EncodeCoder(tables)
        ref, _ = code_frame(model, x, ref_in, qp_index, coder, size=(1, h, w))
        # the model's own (float likelihood) estimate of the same rounded latents
        fwd = ForwardCoder(rate_surrogate=_round, synthesis_surrogate=_round, key=jax.random.key(0))
        _, mb = code_frame(model, x, ref_in, qp_index, fwd, size=(1, h, w))
        payload = coder.stream()
        recon = crop_frame(_to_uint(tensor_to_planes(ref[0]), frames), frames.height, frames.width)
        out += [pystruct.pack(">I", len(payload)), payload, _frame_md5(recon)]
        recons.append(recon)
        bits.append(8 * len(payload))
        est.append(coder.estimated_bits())
        model_bits.append(float(mb[0]))
        symbols.append(coder.symbols)
    from jaxcodec.frame import stack_frames

    return Compressed(b"".join(out), stack_frames(recons), np.asarray(bits, np.int64), np.asarray(est),
                      np.asarray(model_bits), symbols)


def _round(y, key=None):
    return jnp.round(y)


def decompress(model: SSFModel, tables: ProxyTables, data: bytes, *, symbols_out: list | None = None) -> Frame:
    """Decode a `compress` bitstream; checks every frame's MD5 against the encoder's."""
    n = pystruct.calcsize(_HEADER)
    if len(data) < n:
        raise BitstreamError("proxy bitstream shorter than its header")
    magic, version, width, height, t_len, gop, qp, bit_depth, _ = pystruct.unpack(_HEADER, data[:n])
    if magic != MAGIC or version != VERSION:
        raise BitstreamError(f"not a proxy bitstream of version {VERSION} (magic {magic!r}, version {version})")
    c = model.config
    if not c.qp_min <= qp <= c.qp_max or gop == 0:
        raise BitstreamError(f"bad qp {qp} or gop {gop} in the header")
    h = (height + DOWNSAMPLING - 1) // DOWNSAMPLING * DOWNSAMPLING // 2
    w = (width + DOWNSAMPLING - 1) // DOWNSAMPLING * DOWNSAMPLING // 2
    like = Frame(y=np.zeros((2, 2)), u=np.zeros((1, 1)), v=np.zeros((1, 1)), bit_depth=bit_depth)
    qp_index = jnp.asarray([qp - c.qp_min], jnp.int32)
    pos, ref, recons = n, None, []
    for t in range(t_len):
        if pos + 4 > len(data):
            raise BitstreamError(f"proxy bitstream truncated at frame {t}")
        (length,) = pystruct.unpack(">I", data[pos:pos + 4])
        payload = data[pos + 4:pos + 4 + length]
        digest = data[pos + 4 + length:pos + 20 + length]
        if len(payload) != length or len(digest) != 16:
            raise BitstreamError(f"proxy bitstream truncated at frame {t}")
        pos += 20 + length
        if _gop_position(t, gop):
            ref = None
        coder = DecodeCoder(tables, payload)
        ref, _ = code_frame(model, None, ref, qp_index, coder, size=(1, h, w))
        coder.finish()
        if symbols_out is not None:
            symbols_out.append(coder.symbols)
        recon = crop_frame(_to_uint(tensor_to_planes(ref[0]), like), height, width)
        if _frame_md5(recon) != digest:
            raise BitstreamError(f"frame {t}: decoded MD5 differs from the encoder's")
        recons.append(recon)
    if pos != len(data):
        raise BitstreamError("trailing bytes after the last frame")
    from jaxcodec.frame import stack_frames

    return stack_frames(recons)


# --------------------------------------------------------------------------- model files


def model_config_dict(config: ModelConfig) -> dict:
    return dataclasses.asdict(config)


def save_model(path: str | Path, model: SSFModel, calibration: Calibration, *, extra: dict | None = None) -> None:
    """Save params + integer tables (orbax) and meta.json (config, calibration) under ``path``."""
    import orbax.checkpoint as ocp

    from jaxcodec.io import atomic_write_bytes

    path = Path(path).resolve()
    path.mkdir(parents=True, exist_ok=True)
    tree = {"params": nnx.to_pure_dict(nnx.state(model, nnx.Param)), "tables": build_tables_abstract(model)}
    ckpt = ocp.StandardCheckpointer()
    target = path / "state"
    if target.exists():
        import shutil

        shutil.rmtree(target)
    ckpt.save(target, tree)
    ckpt.wait_until_finished()
    meta = {"format": "jaxcodec-proxy-ssf", "version": 1, "model": model_config_dict(model.config),
            "calibration": calibration._asdict(), **(extra or {})}
    atomic_write_bytes(path / "meta.json", json.dumps(meta, indent=2, sort_keys=True).encode())


def load_model(path: str | Path, config: ModelConfig | None = None) -> tuple[SSFModel, ProxyTables, Calibration, dict]:
    """Load a saved proxy. A ``config`` that differs from the saved one raises `ModelError` naming the keys."""
    import orbax.checkpoint as ocp

    path = Path(path).resolve()
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise ModelError(f"{path}: not a proxy model directory (no meta.json)")
    try:
        meta = json.loads(meta_path.read_text())
        saved = ModelConfig(**meta["model"])
    except (ValueError, KeyError, TypeError) as e:
        raise ModelError(f"{meta_path}: unreadable model metadata ({e})") from None
    if config is not None and config != saved:
        diff = [f"{k}: checkpoint {getattr(saved, k)} vs config {getattr(config, k)}"
                for k in model_config_dict(saved) if getattr(saved, k) != getattr(config, k)]
        raise ModelError(f"{path} was trained with another model config ({'; '.join(diff)})")
    model = SSFModel(saved, rngs=nnx.Rngs(0))
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    tables = build_tables_abstract(model)
    target = {"params": params, "tables": tables}
    try:
        restored = ocp.StandardCheckpointer().restore(path / "state", target)
    except Exception as e:  # orbax raises many types for a shape/structure mismatch
        raise ModelError(f"{path}: checkpoint does not match its model config ({type(e).__name__}: {str(e)[:200]})") from None
    state = nnx.state(model, nnx.Param)
    nnx.replace_by_pure_dict(state, restored["params"])
    nnx.update(model, state)
    tabs = ProxyTables(**{k: CdfTables(**{f: np.asarray(a) for f, a in v.items()}) for k, v in restored["tables"].items()})
    return model, tabs, Calibration(**meta["calibration"]), meta


def build_tables_abstract(model: SSFModel) -> dict:
    t = build_tables(model)
    return {k: {"cdf": v.cdf, "cdf_length": v.cdf_length, "offset": v.offset, "bounds": v.bounds} for k, v in t._asdict().items()}


# --------------------------------------------------------------------------- clip evaluation


class ClipEstimate(NamedTuple):
    """Proxy estimate for a clip: reconstruction (uint Frame, cropped), R_M^hyp and R_M per frame."""

    recon: Frame
    bits_hyp: np.ndarray
    bits: np.ndarray


@functools.partial(jax.jit, static_argnums=0)
def _estimate_gop(graphdef, state, frames, qp_index):
    """Hard-rounded `code_gop`; compiled once per (architecture, GOP length, frame size)."""
    from proxy.entropy_models import hard_round

    model = nnx.merge(graphdef, state)
    coder = ForwardCoder(rate_surrogate=hard_round, synthesis_surrogate=hard_round, key=jax.random.key(0))
    return code_gop(model, frames, qp_index, coder)


def estimate_clip(model: SSFModel, frames: Frame, *, qp: int, gop: int = 4,
                  calibration: Calibration = Calibration()) -> ClipEstimate:
    """Run the proxy as the target would code a clip (GOPs of ``gop`` frames, hard rounding).

    Jitted once per GOP length and frame size. Frames are edge-padded to a multiple of
    `DOWNSAMPLING`; the rate counts the padded area (as a codec would code it).
    """
    c = model.config
    if not c.qp_min <= qp <= c.qp_max:
        raise ConfigError(f"qp {qp} outside the proxy's range {c.qp_min}..{c.qp_max}")
    check_size(frames.height, frames.width)
    padded = pad_frame(frames, DOWNSAMPLING)
    x_all = frames_to_tensor(padded.y, padded.u, padded.v, frames.peak)
    graphdef, state = nnx.split(model)
    qp_index = jnp.asarray([qp - c.qp_min], jnp.int32)
    recons, bits = [], []
    for t0 in range(0, x_all.shape[0], gop):
        r, b = _estimate_gop(graphdef, state, x_all[t0:t0 + gop][:, None], qp_index)
        recons.append(np.asarray(r[:, 0]))
        bits.append(np.asarray(b[:, 0]))
    recon = np.concatenate(recons)
    bits_hyp = np.concatenate(bits).astype(np.float64)
    intra = np.arange(bits_hyp.size) % gop == 0
    pixels = frames.height * frames.width  # beta is per pixel of the coded picture, as the target's
    mapped = np.asarray(apply_calibration(calibration, bits_hyp, intra, pixels))
    rec = crop_frame(_to_uint(tensor_to_planes(jnp.asarray(recon)), frames), frames.height, frames.width)
    return ClipEstimate(rec, bits_hyp, mapped)
