"""End-to-end wrapper objective, paper 004 eq. 4 (section 3.2) with the section 4.1 weights.

    L = D(I_in, I_out) + lambda * R_M
    D = lambda_L1 * |I_in - I_out|_1 + lambda_SSIM * (1 - SSIM) + lambda_MSSSIM * (1 - MS-SSIM)
        + lambda_DLM * (1 - DLM)

DLM is a quality score (1 = no detail lost), so its loss term is ``1 - DLM`` like the SSIMs.
R_M is the proxy's calibrated rate (eq. 3) in bits per luma pixel. Distortions are over the
three planes at their own resolution, weighted 4:1:1 (Y:Cb:Cr sample counts in 4:2:0).

The scores come from `jaxcodec.metrics` when it provides differentiable ``ssim``,
``ms_ssim`` and ``dlm`` over float planes; until then `_local_metrics` is a thin stand-in
(Gaussian SSIM of Wang et al. 2004, MS-SSIM with as many scales as the plane holds, and a
Haar-wavelet detail-loss measure after Li et al. 2011) kept only in this module.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxcodec.errors import ConfigError

PLANE_WEIGHTS = (4.0, 1.0, 1.0)  # Y, Cb, Cr


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """Weights of eq. 4; defaults are paper 004 section 4.1."""

    lambda_: float = 0.1
    l1: float = 0.1
    ssim: float = 0.25
    ms_ssim: float = 0.25
    dlm: float = 0.2

    def __post_init__(self):
        for f in dataclasses.fields(self):
            if getattr(self, f.name) < 0:
                raise ConfigError(f"loss weight {f.name} must be >= 0, got {getattr(self, f.name)}")


class LossTerms(NamedTuple):
    total: jax.Array
    distortion: jax.Array
    rate_bpp: jax.Array
    l1: jax.Array
    ssim: jax.Array
    ms_ssim: jax.Array
    dlm: jax.Array


# --------------------------------------------------------------------------- local metric stand-ins


def _gaussian_filter(x, size: int = 11, sigma: float = 1.5):
    """Separable 'valid' Gaussian over the last two axes of ``(N, H, W)``."""
    size = min(size, x.shape[-1], x.shape[-2])
    r = jnp.arange(size, dtype=jnp.float32) - (size - 1) / 2
    g = jnp.exp(-0.5 * (r / sigma) ** 2)
    g = g / g.sum()
    x = x[:, None]
    x = jax.lax.conv_general_dilated(x, g.reshape(1, 1, size, 1), (1, 1), "VALID")
    x = jax.lax.conv_general_dilated(x, g.reshape(1, 1, 1, size), (1, 1), "VALID")
    return x[:, 0]


def _ssim_parts(a, b, peak: float = 1.0):
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mu_a, mu_b = _gaussian_filter(a), _gaussian_filter(b)
    saa = _gaussian_filter(a * a) - mu_a ** 2
    sbb = _gaussian_filter(b * b) - mu_b ** 2
    sab = _gaussian_filter(a * b) - mu_a * mu_b
    cs = (2 * sab + c2) / (saa + sbb + c2)
    lum = (2 * mu_a * mu_b + c1) / (mu_a ** 2 + mu_b ** 2 + c1)
    return jnp.mean(lum * cs, axis=(-2, -1)), jnp.mean(cs, axis=(-2, -1))


def _ssim(a, b):
    return _ssim_parts(a, b)[0]


MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _ms_ssim(a, b):
    """MS-SSIM with the scales that fit (>= 11 samples at the coarsest), weights renormalised."""
    scales = 1
    while scales < 5 and min(a.shape[-2:]) >= 11 * 2 ** scales:
        scales += 1
    w = jnp.asarray(MS_WEIGHTS[:scales])
    w = w / w.sum()
    out = 1.0
    for s in range(scales):
        ssim, cs = _ssim_parts(a, b)
        last = s == scales - 1
        out = out * jnp.maximum(ssim if last else cs, 1e-6) ** w[s]
        if not last:
            a, b = _avg_pool2(a), _avg_pool2(b)
    return out


def _avg_pool2(x):
    n, h, w = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2]
    return x.reshape(n, h // 2, 2, w // 2, 2).mean((2, 4))


def _haar(x):
    a, b = x[:, 0::2, 0::2], x[:, 0::2, 1::2]
    c, d = x[:, 1::2, 0::2], x[:, 1::2, 1::2]
    return (a + b + c + d) / 2, jnp.stack([(a - b + c - d) / 2, (a + b - c - d) / 2, (a - b - c + d) / 2], 1)


def _dlm(ref, dist, levels: int = 3):
    """Detail-loss measure (Li et al. 2011, simplified): restored / reference detail energy.

    Per Haar level, the distorted detail is split into its part explained by the reference
    (``clip(dist/ref, 0, 1) * ref``, the restored detail) and an additive impairment that is
    ignored; the score is sum |restored| / sum |ref| over levels, 1 for no loss.
    """
    num = den = 0.0
    for _ in range(levels):
        if min(ref.shape[-2:]) < 2:
            break
        ref, r_det = _haar(ref)
        dist, d_det = _haar(dist)
        safe = jnp.where(jnp.abs(r_det) > 1e-4, r_det, 1e-4)
        k = jnp.clip(d_det / safe, 0.0, 1.0)
        num = num + jnp.sum(jnp.abs(k * r_det), axis=(-3, -2, -1))
        den = den + jnp.sum(jnp.abs(r_det), axis=(-3, -2, -1))
    return (num + 1e-4) / (den + 1e-4)


def _local_metrics():
    return _ssim, _ms_ssim, _dlm


def metric_functions():
    """(ssim, ms_ssim, dlm) over float planes ``(N, H, W)`` in [0, 1] -> ``(N,)``."""
    try:
        from jaxcodec.metrics import differentiable  # the toolkit's float, jit-able scores
    except ImportError:
        return _local_metrics()
    return differentiable.ssim, differentiable.ms_ssim, differentiable.dlm


# --------------------------------------------------------------------------- eq. 4


def _planes(x):
    from proxy.ssf import tensor_to_planes

    return tuple(p.reshape(-1, *p.shape[-2:]) for p in tensor_to_planes(x))


def wrapper_loss(source: jax.Array, output: jax.Array, rate_bpp: jax.Array, weights: LossWeights = LossWeights()) -> LossTerms:
    """Eq. 4 between ``source`` and ``output`` tensors ``(..., H/2, W/2, 6)`` plus ``lambda * rate_bpp``."""
    ssim_fn, ms_ssim_fn, dlm_fn = metric_functions()
    pw = jnp.asarray(PLANE_WEIGHTS) / sum(PLANE_WEIGHTS)
    l1 = ssim = ms_ssim = dlm = 0.0
    for w, a, b in zip(pw, _planes(source), _planes(output)):
        l1 = l1 + w * jnp.mean(jnp.abs(a - b))
        ssim = ssim + w * jnp.mean(ssim_fn(a, b)) if weights.ssim else ssim
        ms_ssim = ms_ssim + w * jnp.mean(ms_ssim_fn(a, b)) if weights.ms_ssim else ms_ssim
        dlm = dlm + w * jnp.mean(dlm_fn(a, b)) if weights.dlm else dlm
    d = weights.l1 * l1
    d = d + (weights.ssim * (1 - ssim) if weights.ssim else 0.0)
    d = d + (weights.ms_ssim * (1 - ms_ssim) if weights.ms_ssim else 0.0)
    d = d + (weights.dlm * (1 - dlm) if weights.dlm else 0.0)
    rate = jnp.mean(rate_bpp)
    f = jnp.asarray
    return LossTerms(d + weights.lambda_ * rate, f(d), rate, f(l1), f(ssim), f(ms_ssim), f(dlm))
