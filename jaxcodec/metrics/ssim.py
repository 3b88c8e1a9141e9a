"""SSIM (Wang et al. 2004) and MS-SSIM (Wang, Simoncelli, Bovik 2003), pure JAX, differentiable.

SSIM uses an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, population
(co)variances, and averages the SSIM map over the positions where the whole window lies inside
the image. That is exactly scikit-image's ``structural_similarity(gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=peak)``: its reflect-padded filter output is
cropped by the window radius before the mean, so padding never enters.

The window is separable: two 1-D passes of shifted multiply-adds that XLA fuses, applied to the
five moment maps (x, y, x^2, y^2, xy) at once.

MS-SSIM: 5 scales, exponents (0.0448, 0.2856, 0.3001, 0.2363, 0.1333) from Wang 2003
section 3.2; 2x2 average pooling between scales; contrast-structure terms at scales 1..4 and
full SSIM at scale 5. Where a scale is smaller than 11 samples the Gaussian window is truncated
to the largest odd size that fits (as TensorFlow's ``tf.image.ssim_multiscale`` does), so
CIF-sized luma still has 5 scales. Negative cs terms are clamped at 0 before the power.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcodec.errors import InputError
from jaxcodec.metrics.psnr import check_same_shape

K1, K2 = 0.01, 0.03
SIGMA = 1.5
WINDOW = 11
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def gaussian_taps(size: int = WINDOW, sigma: float = SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian of odd ``size`` (scipy.ndimage's, radius int(3.5 sigma + .5) = 5)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return (g / g.sum()).astype(np.float32)


def _filter_valid(x, taps: np.ndarray):
    """Separable 'valid' filtering of the last two axes: (..., H, W) -> (..., H-k+1, W-k+1)."""
    k = len(taps)
    h, w = x.shape[-2:]
    rows = sum(float(taps[i]) * x[..., :, i:w - k + 1 + i] for i in range(k))
    return sum(float(taps[i]) * rows[..., i:h - k + 1 + i, :] for i in range(k))


def _ssim_cs(x, y, *, peak: float, size: int):
    """Mean SSIM and mean contrast-structure term over valid window positions (last two axes)."""
    taps = gaussian_taps(size)
    c1, c2 = (K1 * peak) ** 2, (K2 * peak) ** 2
    stats = _filter_valid(jnp.stack([x, y, x * x, y * y, x * y]), taps)
    mx, my, exx, eyy, exy = stats
    vx, vy, cxy = exx - mx * mx, eyy - my * my, exy - mx * my
    cs_map = (2 * cxy + c2) / (vx + vy + c2)
    l_map = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    return jnp.mean(l_map * cs_map, axis=(-2, -1)), jnp.mean(cs_map, axis=(-2, -1))


def _prepare(a, b, min_size: int):
    check_same_shape(a, b)
    if a.ndim < 2:
        raise InputError(f"SSIM needs planes (..., H, W), got shape {tuple(a.shape)}")
    if min(a.shape[-2:]) < min_size:
        raise InputError(f"planes of {a.shape[-1]}x{a.shape[-2]} are smaller than the {min_size}-sample SSIM window")
    return jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)


@functools.partial(jax.jit, static_argnames=("peak",))
def ssim(a, b, *, peak: float = 255.0):
    """Mean SSIM over the last two axes (leading axes kept). Planes at least 11x11."""
    a, b = _prepare(a, b, WINDOW)
    return _ssim_cs(a, b, peak=float(peak), size=WINDOW)[0]


def _pool2(x):
    h, w = (x.shape[-2] // 2) * 2, (x.shape[-1] // 2) * 2
    x = x[..., :h, :w]
    return 0.25 * (x[..., 0::2, 0::2] + x[..., 1::2, 0::2] + x[..., 0::2, 1::2] + x[..., 1::2, 1::2])


def _window_for(h: int, w: int) -> int:
    size = min(WINDOW, h, w)
    return size if size % 2 else size - 1


@functools.partial(jax.jit, static_argnames=("peak", "scales"))
def ms_ssim(a, b, *, peak: float = 255.0, scales: int = 5):
    """MS-SSIM over the last two axes (Wang 2003 eq. 7), ``scales`` <= 5 scales.

    With fewer than 5 scales the first ``scales`` exponents are renormalised to sum to 1.
    Planes need at least 3 samples per side at the coarsest scale.
    """
    if not 1 <= scales <= 5:
        raise InputError(f"MS-SSIM has 1..5 scales, got {scales}")
    a, b = _prepare(a, b, 3 * 2 ** (scales - 1))
    weights = np.asarray(MS_SSIM_WEIGHTS[:scales], np.float32)
    weights = weights / weights.sum()
    value = 1.0
    for j in range(scales):
        s, cs = _ssim_cs(a, b, peak=float(peak), size=_window_for(*a.shape[-2:]))
        term = s if j == scales - 1 else cs
        value = value * jnp.maximum(term, 1e-6) ** float(weights[j])
        if j < scales - 1:
            a, b = _pool2(a), _pool2(b)
    return value
