"""Scalar quantization (HM's dead-zone quantizer) and scaling (H.265 8.6.2, 8.6.3).

Kernel contract (stated once, here):

* ``coeffs`` / ``levels`` are integer ``(..., N, N)`` blocks, ``N = 2**log2n``; results int32.
* ``qp`` is a Python int or an integer array that broadcasts against the *leading* dims
  (one QP per block). It is the QP used for scaling, H.265's ``qP`` = ``Qp'Y = QpY + QpBdOffsetY``
  (``QpBdOffsetY = 6 * (bit_depth - 8)``, see `qp_prime`); at 8 bits the two coincide. The
  quantizer and the scaler only need to agree, which they do when given the same ``qp``.
* Forward (HM ``TComTrQuant::xQuant``, flat scaling lists)::

      qbits  = 14 + qp // 6 + (15 - bit_depth - log2n)
      level  = sign(c) * ((|c| * quantScale[qp % 6] + offset) >> qbits)
      offset = (171 if intra else 85) << (qbits - 9)      # dead zone 1/3 (intra), 1/6 (inter)

  ``|c|`` is first clipped to 32767 (coefficients of in-range residuals never exceed it) and
  the level to int16, so everything stays exact in int32.
* Scaling (H.265 8.6.3, m = 16)::

      bdShift = bit_depth + log2n - 5
      d = Clip3(-32768, 32767, (level * 16 * levelScale[qp % 6] << (qp // 6) + (1 << (bdShift-1))) >> bdShift)

  computed exactly in int32 by cancelling the power of two first (see `dequantize`).
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

QUANT_SCALE = np.array([26214, 23302, 20560, 18396, 16384, 14564], np.int32)
LEVEL_SCALE = np.array([40, 45, 51, 57, 64, 72], np.int32)

# H.265 Table 8-10: QpC as a function of qPi for ChromaArrayType == 1, qPi in 30..43.
_CHROMA_QP_30_43 = np.array([29, 30, 31, 32, 33, 33, 34, 34, 35, 35, 36, 36, 37, 37], np.int32)

INT16_MIN, INT16_MAX = -32768, 32767


def qp_prime(qp, *, bit_depth: int = 8):
    """``Qp' = QP + QpBdOffset`` (H.265 7.4.3.2.1: QpBdOffset = 6 * (bit_depth - 8))."""
    return qp + 6 * (bit_depth - 8)


def _qp_block(qp, ndim: int):
    """Broadcast a per-block QP (shape = leading dims) against ``(..., N, N)``."""
    qp = jnp.asarray(qp, jnp.int32)
    chex.assert_rank(qp, set(range(0, ndim - 1)))
    return qp[..., None, None]


def quantize(coeffs, qp, log2n: int, *, intra: bool, bit_depth: int = 8):
    """HM dead-zone quantization of transform coefficients to levels (int32, see module doc)."""
    chex.assert_type(coeffs, int)
    c = jnp.asarray(coeffs, jnp.int32)
    q = _qp_block(qp, c.ndim)
    qbits = 14 + q // 6 + (15 - bit_depth - log2n)
    scale = jnp.asarray(QUANT_SCALE)[q % 6]
    offset = jnp.left_shift(jnp.int32(171 if intra else 85), qbits - 9)
    mag = (jnp.minimum(jnp.abs(c), INT16_MAX) * scale + offset) >> qbits
    return jnp.clip(jnp.where(c < 0, -mag, mag), INT16_MIN, INT16_MAX)


def dequantize(levels, qp, log2n: int, *, bit_depth: int = 8):
    """Scaling process for transform coefficients, H.265 8.6.3 with flat m = 16 (int32).

    With ``r = bdShift - 4 - qp // 6``, the spec's expression equals
    ``(level * levelScale + (1 << (r - 1))) >> r`` when ``r > 0`` and
    ``level * levelScale << -r`` otherwise (the rounding term is then below one unit);
    the product is clipped to ``+-2**16`` before the left shift, which cannot change the
    int16-clipped result, so no step overflows int32.
    """
    chex.assert_type(levels, int)
    lv = jnp.clip(jnp.asarray(levels, jnp.int32), INT16_MIN, INT16_MAX)
    q = _qp_block(qp, lv.ndim)
    r = (bit_depth + log2n - 5) - 4 - q // 6
    prod = lv * jnp.asarray(LEVEL_SCALE)[q % 6]
    rs = jnp.maximum(r, 1)
    right = (prod + jnp.left_shift(1, rs - 1)) >> rs
    left = jnp.left_shift(jnp.clip(prod, -(1 << 16), 1 << 16), jnp.maximum(-r, 0))
    return jnp.clip(jnp.where(r > 0, right, left), INT16_MIN, INT16_MAX)


def chroma_qp(qpi, *, bit_depth: int = 8):
    """QpC from ``qPi = QpY + chroma offset`` for 4:2:0 (H.265 8.6.1, Table 8-10).

    ``qPi`` is clipped to ``-QpBdOffsetC..57`` first; identity below 30, table for 30..43,
    ``qPi - 6`` above. Works on ints and integer arrays (returns the same kind).
    """
    lo = -6 * (bit_depth - 8)
    if isinstance(qpi, (int, np.integer)):
        q = min(max(int(qpi), lo), 57)
        return q if q < 30 else int(_CHROMA_QP_30_43[q - 30]) if q <= 43 else q - 6
    q = jnp.clip(jnp.asarray(qpi, jnp.int32), lo, 57)
    table = jnp.asarray(_CHROMA_QP_30_43)[jnp.clip(q - 30, 0, 13)]
    return jnp.where(q < 30, q, jnp.where(q <= 43, table, q - 6))


def qstep(qp):
    """Quantization step size ``2 ** ((qp - 4) / 6)`` (doubles every 6 QP)."""
    return 2.0 ** ((qp - 4) / 6.0)


def coeff_step(qp, log2n: int, *, bit_depth: int = 8):
    """Step of `quantize` in units of `forward_transform` coefficients.

    ``quantScale[qp % 6] / 2**qbits == 1 / (qstep(qp) * 2**(15 - bit_depth - log2n))`` up to
    the rounding of the HM table, so this is the step the float quantizers should use on
    `forward_transform_float` output.
    """
    return qstep(qp) * 2.0 ** (15 - bit_depth - log2n)


# HM (TEncGOP / encoder_*_main.cfg) QP factors for inter pictures by temporal layer.
_RA_QP_FACTOR = (0.442, 0.3536, 0.3536, 0.68, 0.68)
_LD_QP_FACTOR = (0.578, 0.4624, 0.4624, 0.4624, 0.4624)


def lambda_from_qp(qp, *, frame_type: str, temporal_layer: int = 0, low_delay: bool = False,
                   num_b_frames: int = 0):
    """Lagrange multiplier for SSE-domain RDO, following HM's ``TEncGOP`` / ``TEncSlice``.

    ``lambda = f * 2 ** ((qp - 12) / 3)`` with

    * ``frame_type == "I"``: ``f = 0.57 * (1 - min(0.5, 0.05 * num_b_frames))`` (AI: 0.57).
    * ``"P"``/``"B"``: ``f`` from the HM configuration files by temporal layer 0..4 —
      random access ``0.442, 0.3536, 0.3536, 0.68, 0.68``; low delay
      (``low_delay=True``) ``0.578`` for the GOP anchor (layer 0) and ``0.4624`` otherwise —
      and for layers > 0 in random access HM's extra ``clip(2, 4, (qp - 12) / 6)`` factor.

    ``qp`` may be a Python number, numpy or JAX array; the result is of the same kind (float).
    Pass ``Qp' = QP + 6 * (bit_depth - 8)`` (`qp_prime`), as HM does, so that lambda matches
    SSE measured at the sample bit depth. An encoder-only quantity: it never feeds the decoder.
    """
    xp = jnp if isinstance(qp, jax.Array) else np
    qp_temp = xp.asarray(qp, xp.float32) - 12.0
    layer = min(max(int(temporal_layer), 0), 4)
    if frame_type == "I":
        factor = 0.57 * (1.0 - min(0.5, 0.05 * num_b_frames))
        extra = 1.0
    elif frame_type in ("P", "B"):
        factor = (_LD_QP_FACTOR if low_delay else _RA_QP_FACTOR)[layer]
        extra = xp.clip(qp_temp / 6.0, 2.0, 4.0) if (layer > 0 and not low_delay) else 1.0
    else:
        raise ValueError(f"frame_type must be 'I', 'P' or 'B', got {frame_type!r}")
    lam = factor * extra * 2.0 ** (qp_temp / 3.0)
    return float(lam) if isinstance(qp, (int, float, np.integer, np.floating)) else lam


@jax.custom_vjp
def _round_ste(x):
    return jnp.round(x)


_round_ste.defvjp(lambda x: (jnp.round(x), None), lambda _, g: (g,))


def quantize_ste(coeffs, step):
    """Float quantization with a straight-through gradient: ``round(c / step)`` (levels, float).

    Forward value is the hard rounding (no dead zone); gradient is that of ``c / step``.
    ``step`` broadcasts against ``coeffs`` (see `coeff_step`).
    """
    return _round_ste(jnp.asarray(coeffs, jnp.float32) / step)


def quantize_noisy(coeffs, step, key):
    """Additive-uniform-noise quantization proxy: ``c / step + U(-1/2, 1/2)`` (levels, float)."""
    x = jnp.asarray(coeffs, jnp.float32) / step
    return x + jax.random.uniform(key, x.shape, x.dtype, -0.5, 0.5)


def dequantize_float(levels, step):
    """Float inverse of the quantizers above: ``levels * step``."""
    return jnp.asarray(levels, jnp.float32) * step


# ---------------------------------------------------------------------------------------------
# RDOQ (encoder only)
# ---------------------------------------------------------------------------------------------

def diagonal_scan(log2n: int) -> np.ndarray:
    """Raster indices of an ``N x N`` block in H.265 coefficient scan order (6.5.3 up-right
    diagonal over 4x4 sub-blocks, diagonal inside each sub-block), ``(N*N,)`` int32."""

    def diag(size):
        out, x, y = [], 0, 0
        while len(out) < size * size:
            while y >= 0:
                if x < size and y < size:
                    out.append((x, y))
                y -= 1
                x += 1
            y, x = x, 0
        return out

    n = 1 << log2n
    order = []
    for sx, sy in diag(n // 4):
        for x, y in diag(4):
            order.append((sy * 4 + y) * n + sx * 4 + x)
    return np.array(order, np.int32)


class RateModel(NamedTuple):
    """Static bit estimates for RDOQ (a stand-in for CABAC context states).

    Attributes:
      sig0: bits of a zero significance flag.
      sig1: bits of a one significance flag.
      gt1: bits of coeff_abs_level_greater1_flag (either value).
      gt2: bits of coeff_abs_level_greater2_flag (either value).
      sign: bits of a sign (bypass).
      last_per_log2: bits per unit of ``log2(x + 1) + log2(y + 1)`` of the last position.
      cbf0: bits of coding the block as all-zero (cbf = 0).
    """

    sig0: float = 0.6
    sig1: float = 1.6
    gt1: float = 1.0
    gt2: float = 1.0
    sign: float = 1.0
    last_per_log2: float = 2.0
    cbf0: float = 0.5


def level_bits(level, *, rate: RateModel = RateModel()):
    """Estimated bits of coding ``|level|`` (> 0 part, without the significance flag)."""
    a = jnp.abs(jnp.asarray(level, jnp.float32))
    rem = jnp.maximum(a - 3.0, 0.0)
    egk = 1.0 + 2.0 * jnp.floor(jnp.log2(rem + 1.0))  # exp-Golomb order 0 of the remainder
    return jnp.where(a == 0, 0.0,
                     rate.sign + rate.gt1 + jnp.where(a >= 2, rate.gt2, 0.0) + jnp.where(a >= 3, egk, 0.0))


def rdoq(coeffs, qp, log2n: int, *, lambda_, bit_depth: int = 8, rate: RateModel = RateModel()):
    """Rate-distortion optimised quantization (HM ``xRateDistOptQuant`` in spirit), encoder only.

    For every coefficient the candidates are the nearest level ``l``, ``l - 1`` and 0; the
    cost is ``D + lambda_ * R`` with ``D`` the squared error mapped to the sample domain
    (coefficients carry a gain of ``2**(15 - bit_depth - log2n)``) and ``R`` from `RateModel`.
    Then the last significant position (in `diagonal_scan` order) is chosen exactly by prefix
    sums: coefficients after it cost their full distortion and no bits, the last one drops
    its significance flag, and the all-zero block costs ``cbf0``. Per-coefficient choices are
    independent given the last position, so the result minimises the model cost over those
    candidates (it can only beat `quantize`, whose levels are among them).

    ``qp`` and ``lambda_`` broadcast against the leading dims. Decisions use float32; the
    returned levels are int32 and feed `dequantize` like any others.
    """
    chex.assert_type(coeffs, int)
    c = jnp.asarray(coeffs, jnp.int32)
    n2 = 1 << (2 * log2n)
    lead = c.shape[:-2]
    q = _qp_block(qp, c.ndim)
    lam = jnp.asarray(lambda_, jnp.float32)[..., None, None]
    qbits = (14 + q // 6 + (15 - bit_depth - log2n)).astype(jnp.float32)
    scale = jnp.asarray(QUANT_SCALE)[q % 6].astype(jnp.float32)
    a = jnp.minimum(jnp.abs(c), INT16_MAX).astype(jnp.float32)
    lf = a * scale * jnp.exp2(-qbits)  # level in float
    # sample-domain error per level unit: step in coefficients / coefficient gain
    unit = jnp.exp2(qbits) / scale * 2.0 ** -(15 - bit_depth - log2n)
    l_hi = jnp.floor(lf + 0.5)
    l_lo = jnp.maximum(l_hi - 1.0, 0.0)

    def dist(lv):
        return ((lf - lv) * unit) ** 2

    def cost_nz(lv):  # coded, significant (sig flag paid separately)
        return dist(lv) + lam * level_bits(lv, rate=rate)

    d0 = dist(0.0)
    j0 = d0 + lam * rate.sig0  # coded as not significant (before the last position)
    j_hi, j_lo = cost_nz(l_hi), jnp.where(l_lo > 0, cost_nz(l_lo), jnp.inf)
    best_nz = jnp.where(j_lo < j_hi, l_lo, l_hi)
    j_nz = jnp.minimum(j_hi, j_lo)  # inf-free: l_hi >= 0 and level_bits(0) = 0
    j_nz = jnp.where(best_nz > 0, j_nz, jnp.inf)  # no nonzero candidate
    j_sig = j_nz + lam * rate.sig1
    use_nz = j_sig < j0
    j_coded = jnp.minimum(j_sig, j0)
    lvl_coded = jnp.where(use_nz, best_nz, 0.0)

    order = jnp.asarray(diagonal_scan(log2n))
    flat = lambda t: jnp.broadcast_to(t, lead + (1 << log2n, 1 << log2n)).reshape(lead + (n2,))[..., order]  # noqa: E731
    jc, jn, dz = flat(j_coded), flat(j_nz), flat(d0)
    # total(k) = sum_{i<k} jc_i + jn_k + lambda * last_bits(k) + sum_{i>k} d0_i
    before = jnp.cumsum(jc, -1) - jc
    after = jnp.sum(dz, -1, keepdims=True) - jnp.cumsum(dz, -1)
    pos = jnp.asarray(order)
    px, py = (pos % (1 << log2n)).astype(jnp.float32), (pos >> log2n).astype(jnp.float32)
    last_bits = rate.last_per_log2 * (jnp.log2(px + 1.0) + jnp.log2(py + 1.0))
    total = before + jn + lam[..., 0] * last_bits + after
    k = jnp.argmin(total, -1)
    zero_total = jnp.sum(dz, -1) + lam[..., 0, 0] * rate.cbf0
    coded_any = jnp.take_along_axis(total, k[..., None], -1)[..., 0] < zero_total

    lv_scan = flat(lvl_coded)
    bnz_scan = flat(best_nz)
    idx = jnp.arange(n2)
    lv_scan = jnp.where(idx < k[..., None], lv_scan, jnp.where(idx == k[..., None], bnz_scan, 0.0))
    lv_scan = jnp.where(coded_any[..., None], lv_scan, 0.0)
    lv = jnp.zeros(lead + (n2,), jnp.int32).at[..., order].set(lv_scan.astype(jnp.int32))
    lv = lv.reshape(c.shape)
    return jnp.where(c < 0, -lv, lv)
