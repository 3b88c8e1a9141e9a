"""End-to-end wrapper objective, paper 004 eq. 4 (section 3.2) with the section 4.1 weights.

    L = D(I_in, I_out) + lambda * R_M
    D = lambda_L1 * |I_in - I_out|_1 + lambda_SSIM * (1 - SSIM) + lambda_MSSSIM * (1 - MS-SSIM)
        + lambda_DLM * (1 - DLM)

DLM is a quality score (1 = no detail lost), so its loss term is ``1 - DLM`` like the SSIMs.
R_M is the proxy's calibrated rate (eq. 3) in bits per luma pixel. Distortions are over the
three planes at their own resolution, weighted 4:1:1 (Y:Cb:Cr sample counts in 4:2:0).

The scores are `jaxcodec.metrics.differentiable`'s ``ssim``, ``ms_ssim`` and ``dlm`` over float
planes in [0, 1] (SSIM of Wang et al. 2004, MS-SSIM and the db2 DLM with as many scales as a
patch holds); this module defines no metric of its own.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from jaxcodec.errors import ConfigError

PLANE_WEIGHTS = (4.0, 1.0, 1.0)  # Y, Cb, Cr


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """Weights of eq. 4; defaults are paper 004 section 4.1.

    ``dlm_gain_limit``: the DLM term's enhancement gain limit (`jaxcodec.metrics.dlm.dlm`);
    0 = none (DLM as evaluated), 1 = VMAF NEG style, no credit for detail beyond the source's.
    A post filter trained on the unlimited DLM learned to sharpen (models/wrapper_x264_small.md).

    ``chroma``: scales the Cb and Cr weights of every term against luma's (Y : Cb : Cr =
    4 : c : c, normalised; 1 is `PLANE_WEIGHTS`). Near-flat chroma planes barely move SSIM,
    and a post filter drifted there at 1 (models/wrapper_x264_small.md).
    """

    lambda_: float = 0.1
    l1: float = 0.1
    ssim: float = 0.25
    ms_ssim: float = 0.25
    dlm: float = 0.2
    dlm_gain_limit: float = 0.0
    chroma: float = 1.0

    def __post_init__(self):
        for f in dataclasses.fields(self):
            if getattr(self, f.name) < 0:
                raise ConfigError(f"loss weight {f.name} must be >= 0, got {getattr(self, f.name)}")
        if 0 < self.dlm_gain_limit < 1:
            raise ConfigError(f"dlm_gain_limit must be 0 (none) or >= 1, got {self.dlm_gain_limit}")


class LossTerms(NamedTuple):
    total: jax.Array
    distortion: jax.Array
    rate_bpp: jax.Array
    l1: jax.Array
    ssim: jax.Array
    ms_ssim: jax.Array
    dlm: jax.Array


def metric_functions():
    """(ssim, ms_ssim, dlm) over float planes ``(N, H, W)`` in [0, 1] -> ``(N,)`` (`jaxcodec.metrics.differentiable`)."""
    from jaxcodec.metrics import differentiable

    return differentiable.ssim, differentiable.ms_ssim, differentiable.dlm


# --------------------------------------------------------------------------- eq. 4


def _planes(x):
    """Y, Cb, Cr planes ``(N, h, w)`` of a tensor ``(..., H/2, W/2, 6)``; N = every leading index (one image each)."""
    from proxy.ssf import tensor_to_planes

    return tuple(p.reshape(-1, *p.shape[-2:]) for p in tensor_to_planes(x))


def interior(x: jax.Array, margin: int) -> jax.Array:
    """A tensor ``(..., H/2, W/2, 6)`` without ``margin`` luma samples (even) on each side."""
    if margin % 2 or margin < 0:
        raise ValueError(f"margin must be an even number of luma samples >= 0, got {margin}")
    m = margin // 2
    if 2 * m >= min(x.shape[-3], x.shape[-2]):
        raise ValueError(f"margin {margin} leaves nothing of a {2 * x.shape[-3]}x{2 * x.shape[-2]} image")
    return x[..., m:x.shape[-3] - m, m:x.shape[-2] - m, :] if m else x


def distortion_terms(source: jax.Array, output: jax.Array, weights: LossWeights = LossWeights(), *, margin: int = 0):
    """Per-image eq. 4 distortion and its terms: ``(d, l1, ssim, ms_ssim, dlm)``, each ``(N,)``.

    N counts the images of the leading axes, flattened in order. Every image has the same size,
    so the batch means of these are the batch's eq. 4 terms (`wrapper_loss`). ``margin``: luma
    samples on each side of every image that the scores leave out (`interior`).
    """
    source, output = interior(source, margin), interior(output, margin)
    ssim_fn, ms_ssim_fn, dlm_fn = metric_functions()
    plane_w = (PLANE_WEIGHTS[0], *(w * weights.chroma for w in PLANE_WEIGHTS[1:]))
    pw = jnp.asarray(plane_w) / sum(plane_w)
    limit = weights.dlm_gain_limit or None
    l1 = ssim = ms_ssim = dlm = 0.0
    for w, a, b in zip(pw, _planes(source), _planes(output)):
        l1 = l1 + w * jnp.mean(jnp.abs(a - b), axis=(-2, -1))
        ssim = ssim + w * ssim_fn(a, b) if weights.ssim else ssim
        ms_ssim = ms_ssim + w * ms_ssim_fn(a, b) if weights.ms_ssim else ms_ssim
        dlm = dlm + w * dlm_fn(a, b, enhancement_gain_limit=limit) if weights.dlm else dlm
    n = l1.shape[0]
    ssim, ms_ssim, dlm = (jnp.broadcast_to(jnp.asarray(t, l1.dtype), (n,)) for t in (ssim, ms_ssim, dlm))
    d = weights.l1 * l1
    d = d + (weights.ssim * (1 - ssim) if weights.ssim else 0.0)
    d = d + (weights.ms_ssim * (1 - ms_ssim) if weights.ms_ssim else 0.0)
    d = d + (weights.dlm * (1 - dlm) if weights.dlm else 0.0)
    return d, l1, ssim, ms_ssim, dlm


def _normalised(loss: jax.Array, baseline: jax.Array) -> jax.Array:
    """``mean_i(loss_i / sg(b_i)) * sg(mean_i b_i)``: every image weighed by the inverse of its
    baseline, at the scale of the plain mean."""
    chex.assert_equal_shape((loss, baseline))
    b = jax.lax.stop_gradient(baseline)
    return jnp.mean(loss / jnp.maximum(b, 1e-6)) * jnp.mean(b)


def wrapper_loss(source: jax.Array, output: jax.Array, rate_bpp: jax.Array, weights: LossWeights = LossWeights(),
                 *, baseline_distortion: jax.Array | None = None,
                 baseline_terms: tuple[jax.Array, ...] | None = None, margin: int = 0) -> LossTerms:
    """Eq. 4 between ``source`` and ``output`` tensors ``(..., H/2, W/2, 6)`` plus ``lambda * rate_bpp``.

    ``baseline_distortion`` (optional): per-image eq. 4 distortion ``(N,)`` of another output of
    the same sources, e.g. the bare codec's decode (`distortion_terms`). The distortion in
    ``total`` then weighs every image by its inverse, ``mean_i(d_i / sg(b_i)) * sg(mean_i b_i)``:
    the same scale as eq. 4, but a clean image counts as much as a noisy one. Plain eq. 4 is
    dominated by the images the codec distorts most. The reported ``distortion`` stays the plain
    eq. 4 value.

    ``baseline_terms`` (optional, instead): the other output's per-image terms ``(l1, ssim,
    ms_ssim, dlm)``, each ``(N,)`` (`distortion_terms` without its first item). Every term of eq. 4
    is then normalised on its own, ``sum_k w_k * mean_i(t_ki / sg(b_ki)) * sg(mean_i b_ki)``
    over the losses t = (L1, 1 - SSIM, 1 - MS-SSIM, 1 - DLM): a relative change of any score
    on any image counts the same. A BD-rate over a metric weighs a quality change by the inverse
    slope of the rate-quality curve, which at the clean end of the curve is steep in 1 - SSIM
    but flat in L1; normalising the sum only (``baseline_distortion``) lets L1 dominate clean
    images.

    ``margin``: the distortion covers each image without this many luma samples on each side
    (`interior`; the baselines must be computed with the same margin).
    """
    if baseline_distortion is not None and baseline_terms is not None:
        raise ValueError("give baseline_distortion or baseline_terms, not both")
    d, l1, ssim, ms_ssim, dlm = distortion_terms(source, output, weights, margin=margin)
    dist = jnp.mean(d)
    objective = dist
    if baseline_distortion is not None:
        objective = _normalised(d, baseline_distortion)
    if baseline_terms is not None:
        b_l1, b_ssim, b_ms, b_dlm = baseline_terms
        objective = sum(w * _normalised(t, b) for w, t, b in (
            (weights.l1, l1, b_l1), (weights.ssim, 1 - ssim, 1 - b_ssim), (weights.ms_ssim, 1 - ms_ssim, 1 - b_ms),
            (weights.dlm, 1 - dlm, 1 - b_dlm)) if w)
    rate = jnp.mean(rate_bpp)
    return LossTerms(objective + weights.lambda_ * rate, dist, rate, jnp.mean(l1), jnp.mean(ssim), jnp.mean(ms_ssim),
                     jnp.mean(dlm))
