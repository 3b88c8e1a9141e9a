"""Detail loss metric (DLM), Li, Ma, Ngan & Lin 2011, as VMAF's ADM computes it; pure JAX.

    ref, dist ─db2 DWT, 4 scales─> O, T (H, V, D bands per scale)
    decoupling (Li 2011 sec. II-A): k = clip(T / O, 0, 1), restored R = k * O, except where the
        (H, V) orientation of T is within 1 degree of O's (R = T: contrast enhancement is kept;
        with an enhancement gain limit g, libvmaf's "NEG" option, R = min(g * k * O, T) in
        magnitude, so g = 1 gives no credit for detail beyond the reference's);
        additive impairment A = T - R
    CSF (sec. II-B): every band scaled by 1 / Q(scale, orientation), Watson et al. 1997 wavelet
        quantisation thresholds (a = 0.495, k = 0.466, f0 = 0.401, g = 1.501/1/0.534; 3 picture
        heights viewing distance on a 1080-line display; 9/7 basis amplitudes, as VMAF does)
    contrast masking (sec. II-C): |csf R| minus the masker sum over a 3x3 neighbourhood of
        |csf A| in all three orientations / 30, floored at 0
    pooling (sec. II-D): per band, cube root of the sum of cubes over the centre (10 % border
        dropped) plus cbrt(area / 32); DLM = sum over bands of the restored pooling divided by
        the same pooling of csf O.

Scores are ~1 for identical pictures and fall as detail is lost. The function is
differentiable everywhere that matters (safe divisions, floors); it follows VMAF's
``adm`` float model structurally but is not bit-matched to libvmaf (no libvmaf here to check).
Planes are rescaled to the 8-bit range (``255 / peak``) first, so CSF thresholds mean the same
at 8 and 10 bits and for [0, 1] floats (``peak=1``).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxcodec.errors import InputError
from jaxcodec.metrics.psnr import check_same_shape

SCALES = 4
DB2_LO = np.array([0.482962913144690, 0.836516303737469, 0.224143868041857, -0.129409522550921], np.float32)
DB2_HI = np.array([-0.129409522550921, -0.224143868041857, 0.836516303737469, -0.482962913144690], np.float32)
# Watson 1997 table: 9/7 basis function amplitudes for Y, [scale][orientation LL, H?, D, V?] as VMAF indexes them.
_AMPLITUDES = ((0.62171, 0.67234, 0.72709, 0.67234), (0.34537, 0.41317, 0.49428, 0.41317),
               (0.18004, 0.22727, 0.28688, 0.22727), (0.091401, 0.11792, 0.15214, 0.11792))
_COS_1DEG_SQ = math.cos(math.radians(1.0)) ** 2
_BORDER = 0.1


def quant_step(scale: int, theta: int, *, viewing_distance: float = 3.0, display_height: int = 1080) -> float:
    """Watson 1997 eq. for the visibility threshold Q of wavelet band (scale, theta)."""
    a, k, f0, g = 0.495, 0.466, 0.401, (1.501, 1.0, 0.534, 1.0)
    r = viewing_distance * display_height * math.pi / 180.0
    y = a * 10.0 ** (k * math.log10(2.0 ** (scale + 1) * f0 * g[theta] / r) ** 2)
    return 2.0 * y / _AMPLITUDES[scale][theta]


def _analyse_1d(x, taps, axis: int):
    """Filter with ``taps`` and keep every second sample along ``axis`` (symmetric borders)."""
    n = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (1, 2)
    xp = jnp.pad(x, pad, mode="reflect")
    m = (n + 1) // 2
    out = 0.0
    for k, t in enumerate(taps):
        out = out + float(t) * jax.lax.slice_in_dim(xp, k, k + 2 * m - 1, stride=2, axis=axis)
    return out


def dwt2(x):
    """One level of the separable db2 DWT over the last two axes -> (LL, H, V, D)."""
    lo = _analyse_1d(x, DB2_LO, x.ndim - 2)  # vertical low-pass
    hi = _analyse_1d(x, DB2_HI, x.ndim - 2)
    ll, lh = _analyse_1d(lo, DB2_LO, x.ndim - 1), _analyse_1d(lo, DB2_HI, x.ndim - 1)
    hl, hh = _analyse_1d(hi, DB2_LO, x.ndim - 1), _analyse_1d(hi, DB2_HI, x.ndim - 1)
    return ll, hl, lh, hh  # H (horizontal edges: vertical high-pass), V, D


def _centre_sum_cubes(x):
    h, w = x.shape[-2:]
    top, left = int(h * _BORDER + 0.5), int(w * _BORDER + 0.5)
    c = x[..., top:h - top, left:w - left]
    area = c.shape[-2] * c.shape[-1]
    return jnp.cbrt(jnp.sum(c**3, axis=(-2, -1)) + 1e-20) + (area / 32.0) ** (1.0 / 3.0)


def _box3(x):
    xp = jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)], mode="edge")
    h, w = x.shape[-2:]
    return sum(xp[..., i:i + h, j:j + w] for i in range(3) for j in range(3))


def _safe_div(a, b, eps=1e-6):
    return a / jnp.where(jnp.abs(b) < eps, jnp.where(b < 0, -eps, eps), b)


@functools.partial(jax.jit, static_argnames=("peak", "scales", "enhancement_gain_limit"))
def dlm(ref, dist, *, peak: float = 255.0, scales: int = SCALES, enhancement_gain_limit: float | None = None):
    """DLM score over the last two axes (leading axes kept); planes at least ``2**(scales+1)`` per side.

    ``enhancement_gain_limit``: None keeps enhanced detail as restored detail (R = T, the
    score can pass 1 for a sharpened picture); a number g >= 1 caps it at g times the
    reference's detail (libvmaf ``adm_enhn_gain_limit``; its default 100 is near None, 1 is
    VMAF NEG). A training loss that should not reward sharpening uses 1.
    """
    if enhancement_gain_limit is not None and enhancement_gain_limit < 1.0:
        raise InputError(f"DLM enhancement gain limit must be >= 1, got {enhancement_gain_limit}")
    check_same_shape(ref, dist)
    if not 1 <= scales <= SCALES:
        raise InputError(f"DLM has 1..{SCALES} scales, got {scales}")
    if min(ref.shape[-2:]) < 2 ** (scales + 1):
        raise InputError(f"DLM needs planes of at least {2 ** (scales + 1)} samples per side, got {tuple(ref.shape[-2:])}")
    o = jnp.asarray(ref, jnp.float32) * (255.0 / peak)
    t = jnp.asarray(dist, jnp.float32) * (255.0 / peak)
    num, den = 0.0, 0.0
    for scale in range(scales):
        o, oh, ov, od = dwt2(o)
        t, th, tv, td = dwt2(t)
        rh, rv, rd = (jnp.clip(_safe_div(tb, ob), 0.0, 1.0) * ob for ob, tb in ((oh, th), (ov, tv), (od, td)))
        dot = oh * th + ov * tv
        same_angle = (dot >= 0) & (dot * dot >= _COS_1DEG_SQ * (oh * oh + ov * ov) * (th * th + tv * tv))
        if enhancement_gain_limit is None:
            enhanced = ((rh, th), (rv, tv), (rd, td))
            rh, rv, rd = (jnp.where(same_angle, tb, rb) for rb, tb in enhanced)
        else:  # same sign as T where the angle matches, so the cap is a magnitude minimum
            g = float(enhancement_gain_limit)
            capped = ((rh, th), (rv, tv), (rd, td))
            rh, rv, rd = (jnp.where(same_angle, jnp.where(tb >= 0, jnp.minimum(g * rb, tb), jnp.maximum(g * rb, tb)), rb)
                          for rb, tb in capped)
        rf = (1.0 / quant_step(scale, 1), 1.0 / quant_step(scale, 1), 1.0 / quant_step(scale, 2))
        masker = _box3(sum(jnp.abs((tb - rb) * f) for tb, rb, f in ((th, rh, rf[0]), (tv, rv, rf[1]), (td, rd, rf[2])))) / 30.0
        for rb, ob, f in ((rh, oh, rf[0]), (rv, ov, rf[1]), (rd, od, rf[2])):
            num = num + _centre_sum_cubes(jax.nn.relu(jnp.abs(rb * f) - masker))
            den = den + _centre_sum_cubes(jnp.abs(ob * f))
    return num / den
