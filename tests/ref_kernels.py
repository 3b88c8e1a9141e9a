"""Plain numpy reference kernels: naive loops written straight from the H.265 text.

These are deliberately slow and literal (one sample at a time, Python ints) so the fast JAX
kernels in `jaxcodec.codec` can be held bit-exactly equal to them (dav1d checkasm habit).
They share no code with the kernels they check.
"""

from __future__ import annotations

import math

import numpy as np

# ---------------------------------------------------------------------------------------------
# Transforms, H.265 8.6.4.2
# ---------------------------------------------------------------------------------------------

_COEF = [90, 90, 90, 89, 88, 87, 85, 83, 82, 80, 78, 75, 73, 70, 67, 64,
         61, 57, 54, 50, 46, 43, 38, 36, 31, 25, 22, 18, 13, 9, 4, 0]  # C[1..32]


def ref_mat32():
    """32x32 HEVC matrix: row 0 all 64; else |C| at the folded angle, sign of the cosine."""
    m = [[0] * 32 for _ in range(32)]
    for k in range(32):
        for n in range(32):
            if k == 0:
                m[k][n] = 64
                continue
            ang = (2 * n + 1) * k  # in units of pi/64
            c = math.cos(math.pi * ang / 64)
            j = ang % 64
            j = min(j, 64 - j)  # |cos| depends only on distance to the nearest multiple of pi
            mag = 64 if j == 0 else _COEF[j - 1]
            m[k][n] = 0 if abs(c) < 1e-9 else (mag if c > 0 else -mag)
    return m


_M32 = ref_mat32()
_DST = [[29, 55, 74, 84], [74, 74, 0, -74], [84, -29, -74, 55], [55, -84, 74, -29]]


def ref_matrix(n, dst=False):
    """N-point basis row k = 32-point row k * 32 / N, first N entries (H.265 transMatrix use)."""
    if dst:
        return [row[:] for row in _DST]
    return [[_M32[k * (32 // n)][i] for i in range(n)] for k in range(n)]


def ref_forward(block, log2n, dst=False, bit_depth=8):
    n = 1 << log2n
    m = ref_matrix(n, dst)
    s1, s2 = log2n + bit_depth - 9, log2n + 6
    x = [[int(v) for v in row] for row in block]
    tmp = [[0] * n for _ in range(n)]  # rows first (HM), tmp[y][k]
    for y in range(n):
        for k in range(n):
            acc = sum(m[k][i] * x[y][i] for i in range(n))
            tmp[y][k] = (acc + (1 << (s1 - 1))) >> s1
    out = np.zeros((n, n), np.int64)
    for k in range(n):
        for xk in range(n):
            acc = sum(m[k][y] * tmp[y][xk] for y in range(n))
            out[k, xk] = (acc + (1 << (s2 - 1))) >> s2
    return out


def ref_inverse(coeffs, log2n, dst=False, bit_depth=8):
    n = 1 << log2n
    m = ref_matrix(n, dst)
    d = [[int(v) for v in row] for row in coeffs]
    g = [[0] * n for _ in range(n)]
    for x in range(n):  # each column: y[i] = sum_j transMatrix[j][i] * x[j]
        for i in range(n):
            e = sum(m[j][i] * d[j][x] for j in range(n))
            g[i][x] = min(max((e + 64) >> 7, -32768), 32767)
    bd_shift = 20 - bit_depth
    out = np.zeros((n, n), np.int64)
    for y in range(n):
        for i in range(n):
            acc = sum(m[j][i] * g[y][j] for j in range(n))
            out[y, i] = (acc + (1 << (bd_shift - 1))) >> bd_shift
    return out


# ---------------------------------------------------------------------------------------------
# Quantization (HM xQuant) and scaling (H.265 8.6.3)
# ---------------------------------------------------------------------------------------------

_QUANT = [26214, 23302, 20560, 18396, 16384, 14564]
_LEVEL = [40, 45, 51, 57, 64, 72]


def ref_quantize(coeffs, qp, log2n, intra, bit_depth=8):
    qbits = 14 + qp // 6 + (15 - bit_depth - log2n)
    add = (171 if intra else 85) << (qbits - 9)
    out = np.zeros(np.shape(coeffs), np.int64)
    for idx, c in np.ndenumerate(np.asarray(coeffs)):
        c = int(c)
        a = min(abs(c), 32767)
        lv = (a * _QUANT[qp % 6] + add) >> qbits
        lv = -lv if c < 0 else lv
        out[idx] = min(max(lv, -32768), 32767)
    return out


def ref_dequantize(levels, qp, log2n, bit_depth=8):
    bd_shift = bit_depth + log2n - 5
    out = np.zeros(np.shape(levels), np.int64)
    for idx, lv in np.ndenumerate(np.asarray(levels)):
        lv = min(max(int(lv), -32768), 32767)
        v = ((lv * 16 * _LEVEL[qp % 6]) << (qp // 6)) + (1 << (bd_shift - 1))
        out[idx] = min(max(v >> bd_shift, -32768), 32767)  # Python ints: no overflow
    return out


def ref_chroma_qp(qpi, bit_depth=8):
    qpi = min(max(qpi, -6 * (bit_depth - 8)), 57)
    if qpi < 30:
        return qpi
    if qpi > 43:
        return qpi - 6
    return {30: 29, 31: 30, 32: 31, 33: 32, 34: 33, 35: 33, 36: 34, 37: 34, 38: 35, 39: 35,
            40: 36, 41: 36, 42: 37, 43: 37}[qpi]
