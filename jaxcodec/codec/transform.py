"""Integer core transforms of H.265 (clause 8.6.4.2) and their float twins.

Kernel contract (stated once, here):

* ``residual`` / ``coeffs`` are integer arrays ``(..., N, N)`` with ``N = 2**log2n``,
  ``log2n`` in 2..5; every leading dimension is a batch dimension. Results are int32.
* Forward (HM ``xTrMxN``): rows first, ``t = (x @ M.T + r1) >> s1`` with
  ``s1 = log2n + bit_depth - 9``, then columns, ``c = (M @ t + r2) >> s2`` with
  ``s2 = log2n + 6``; ``r = 1 << (s - 1)``. No clipping (for residuals within
  ``bit_depth + 1`` signed bits the output fits int16 by design).
* Inverse (H.265 8.6.4.2): columns first, ``e = M.T @ d`` and
  ``g = Clip3(-32768, 32767, (e + 64) >> 7)``; then rows, ``r = (g @ M + rnd) >> (20 - bit_depth)``.
  Input coefficients must lie in int16 (dequantize clips them so).
* ``dst=True`` uses the 4x4 DST-VII matrix (intra luma 4x4 TUs, H.265 8.6.4.2 trType 1).
* The float versions use the same integer tables and the same total scale
  (``2**-(s1+s2)`` forward, ``2**-(7 + 20 - bit_depth)`` inverse) without rounding, so they
  are differentiable stand-ins that agree with the integer path up to rounding.

Every arithmetic step is exact int32: the largest intermediate is
``32767 * 90 * 32 < 2**31``.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp
import numpy as np

# H.265 8.6.4.2: the 32 distinct magnitudes of the DCT-II basis, C[j] ~ 64*sqrt(2)*cos(pi*j/64).
_C = (64, 90, 90, 90, 89, 88, 87, 85, 83, 82, 80, 78, 75, 73, 70, 67, 64,
      61, 57, 54, 50, 46, 43, 38, 36, 31, 25, 22, 18, 13, 9, 4, 0)  # index 0 unused (row 0 is 64)

DST4 = np.array([[29, 55, 74, 84], [74, 74, 0, -74], [84, -29, -74, 55], [55, -84, 74, -29]], np.int32)


def _dct_matrix(n: int) -> np.ndarray:
    """HEVC integer DCT-II matrix ``M[k, n]`` (rows are basis functions)."""
    m = np.empty((n, n), np.int32)
    step = 32 // n
    for k in range(n):
        for i in range(n):
            if k == 0:
                m[k, i] = 64
                continue
            a = ((2 * i + 1) * k * step) % 128  # cos(pi * a / 64)
            if a > 64:
                a = 128 - a  # cos is even about pi
            m[k, i] = _C[a] if a <= 32 else -_C[64 - a]
    return m


DCT = {log2n: _dct_matrix(1 << log2n) for log2n in (2, 3, 4, 5)}


def transform_matrix(log2n: int, *, dst: bool = False) -> np.ndarray:
    """The int32 ``N x N`` transform matrix (DST-VII only for ``log2n == 2``)."""
    if dst:
        if log2n != 2:
            raise ValueError("DST-VII exists only for 4x4 blocks")
        return DST4
    if log2n not in DCT:
        raise ValueError(f"log2n must be 2..5, got {log2n}")
    return DCT[log2n]


def forward_shifts(log2n: int, bit_depth: int) -> tuple[int, int]:
    """(first, second) stage right shifts of the forward transform (HM ``xTrMxN``)."""
    return log2n + bit_depth - 9, log2n + 6


def inverse_shifts(bit_depth: int) -> tuple[int, int]:
    """(first, second) stage right shifts of the inverse transform (H.265 8.6.4.2: 7, 20 - bitDepth)."""
    return 7, 20 - bit_depth


def _round_shift(x, s: int):
    return (x + (1 << (s - 1))) >> s


def _check_block(x, log2n: int, *, integer: bool = True) -> None:
    chex.assert_rank(x, {2, 3, 4, 5, 6})
    if integer:
        chex.assert_type(x, int)
    n = 1 << log2n
    if x.shape[-2:] != (n, n):
        raise ValueError(f"expected (..., {n}, {n}) blocks, got {x.shape}")


def forward_transform(residual, log2n: int, *, dst: bool = False, bit_depth: int = 8):
    """Integer 2-D forward DCT-II / DST-VII (HM forward of H.265 8.6.4.2), int32 ``(..., N, N)``."""
    _check_block(residual, log2n)
    m = jnp.asarray(transform_matrix(log2n, dst=dst))
    s1, s2 = forward_shifts(log2n, bit_depth)
    x = jnp.asarray(residual, jnp.int32)
    t = _round_shift(jnp.matmul(x, m.T, preferred_element_type=jnp.int32), s1)
    return _round_shift(jnp.matmul(m, t, preferred_element_type=jnp.int32), s2)


def inverse_transform(coeffs, log2n: int, *, dst: bool = False, bit_depth: int = 8):
    """Integer 2-D inverse transform, H.265 8.6.4.2 (columns, clip to int16, rows), int32."""
    _check_block(coeffs, log2n)
    m = jnp.asarray(transform_matrix(log2n, dst=dst))
    s1, s2 = inverse_shifts(bit_depth)
    d = jnp.asarray(coeffs, jnp.int32)
    g = jnp.clip(_round_shift(jnp.matmul(m.T, d, preferred_element_type=jnp.int32), s1), -32768, 32767)
    return _round_shift(jnp.matmul(g, m, preferred_element_type=jnp.int32), s2)


def forward_transform_float(residual, log2n: int, *, dst: bool = False, bit_depth: int = 8):
    """Differentiable `forward_transform`: same table and scale, no rounding (float32)."""
    _check_block(residual, log2n, integer=False)
    m = jnp.asarray(transform_matrix(log2n, dst=dst), jnp.float32)
    s1, s2 = forward_shifts(log2n, bit_depth)
    x = jnp.asarray(residual, jnp.float32)
    return (m @ x @ m.T) * (2.0 ** -(s1 + s2))


def inverse_transform_float(coeffs, log2n: int, *, dst: bool = False, bit_depth: int = 8):
    """Differentiable `inverse_transform`: same table and scale, no rounding or clipping (float32)."""
    _check_block(coeffs, log2n, integer=False)
    m = jnp.asarray(transform_matrix(log2n, dst=dst), jnp.float32)
    s1, s2 = inverse_shifts(bit_depth)
    d = jnp.asarray(coeffs, jnp.float32)
    return (m.T @ d @ m) * (2.0 ** -(s1 + s2))


def plane_to_tiles(plane, log2n: int):
    """``(..., H, W)`` -> ``(..., H/N, W/N, N, N)``: every aligned N x N tile."""
    n = 1 << log2n
    h, w = plane.shape[-2:]
    if h % n or w % n:
        raise ValueError(f"plane {w}x{h} is not a multiple of the {n}x{n} tile")
    lead = plane.shape[:-2]
    t = plane.reshape(lead + (h // n, n, w // n, n))
    return jnp.swapaxes(t, -3, -2)


def tiles_to_plane(tiles, log2n: int):
    """Inverse of `plane_to_tiles`."""
    lead = tiles.shape[:-4]
    th, tw, n, _ = tiles.shape[-4:]
    return jnp.swapaxes(tiles, -3, -2).reshape(lead + (th * n, tw * n))


def _on_tiles(fn, plane, log2n: int, dst, bit_depth: int):
    tiles = plane_to_tiles(jnp.asarray(plane), log2n)
    if isinstance(dst, (bool, np.bool_)):
        out = fn(tiles, log2n, dst=bool(dst), bit_depth=bit_depth)
    else:
        # per-tile choice (intra luma 4x4 TUs use DST-VII, inter ones DCT-II): both, then select
        mask = jnp.asarray(dst, bool)
        chex.assert_shape(mask, tiles.shape[:-2])
        out = jnp.where(mask[..., None, None], fn(tiles, log2n, dst=True, bit_depth=bit_depth),
                        fn(tiles, log2n, dst=False, bit_depth=bit_depth))
    return tiles_to_plane(out, log2n)


def forward_transform_tiles(plane, log2n: int, *, dst=False, bit_depth: int = 8):
    """`forward_transform` of every aligned N x N tile of a ``(..., H, W)`` plane.

    Coefficient (i, j) of the tile at (y0, x0) lands at ``[y0 + i, x0 + j]`` (the
    `CoeffPlanes` layout of `jaxcodec.codec.blocks`). ``dst`` is a bool for all tiles or,
    for ``log2n == 2``, a bool array ``(..., H/4, W/4)`` choosing DST-VII per tile.
    """
    return _on_tiles(forward_transform, plane, log2n, dst, bit_depth)


def inverse_transform_tiles(coeff_plane, log2n: int, *, dst=False, bit_depth: int = 8):
    """`inverse_transform` of every aligned N x N tile of a ``(..., H, W)`` coefficient plane
    (``dst`` as in `forward_transform_tiles`)."""
    return _on_tiles(inverse_transform, coeff_plane, log2n, dst, bit_depth)


def _hadamard(k: int) -> np.ndarray:
    h = np.ones((1, 1), np.int32)
    while h.shape[0] < k:
        h = np.block([[h, h], [h, -h]])
    return h


def satd(diff):
    """Sum of absolute Hadamard-transformed differences of ``(..., N, N)`` blocks (N >= 4):
    8x8 Hadamard tiles (4x4 for N = 4), scaled to SAD's range as HM's ``xCalcHADs8x8`` /
    ``xCalcHADs4x4`` do (divide by 4 / 2). The encoder's mode-decision distortion: it
    follows the coded residual's cost more closely than SAD. Returns float32 ``(...)``."""
    d = jnp.asarray(diff, jnp.int32)
    n = d.shape[-1]
    k = 4 if n == 4 else 8
    h = jnp.asarray(_hadamard(k))
    lead = d.shape[:-2]
    t = d.reshape(lead + (n // k, k, n // k, k))
    t = jnp.swapaxes(t, -3, -2)  # (..., n/k, n/k, k, k)
    c = jnp.matmul(jnp.matmul(h, t, preferred_element_type=jnp.int32), h.T, preferred_element_type=jnp.int32)
    return jnp.abs(c).sum((-4, -3, -2, -1)).astype(jnp.float32) / (2.0 if k == 4 else 4.0)
