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


# ---------------------------------------------------------------------------------------------
# Intra prediction, H.265 8.4.4.2 (p[x][y] kept as a dict keyed (x, y), x = column)
# ---------------------------------------------------------------------------------------------

_ANGLE = {2: 32, 3: 26, 4: 21, 5: 17, 6: 13, 7: 9, 8: 5, 9: 2, 10: 0, 11: -2, 12: -5, 13: -9, 14: -13,
          15: -17, 16: -21, 17: -26, 18: -32, 19: -26, 20: -21, 21: -17, 22: -13, 23: -9, 24: -5,
          25: -2, 26: 0, 27: 2, 28: 5, 29: 9, 30: 13, 31: 17, 32: 21, 33: 26, 34: 32}
_INV = {11: -4096, 12: -1638, 13: -910, 14: -630, 15: -482, 16: -390, 17: -315, 18: -256,
        19: -315, 20: -390, 21: -482, 22: -630, 23: -910, 24: -1638, 25: -4096}


def ref_reference_samples(plane, y0, x0, n, avail, bit_depth):
    """8.4.4.2.2. ``avail(x, y)`` says whether p[x][y] (relative to the block) is available."""
    h, w = plane.shape
    pos = [(-1, y) for y in range(2 * n - 1, -2, -1)] + [(x, -1) for x in range(0, 2 * n)]
    ok = {}
    for (x, y) in pos:
        ay, ax = y0 + y, x0 + x
        ok[(x, y)] = avail(x, y) and 0 <= ay < h and 0 <= ax < w
    p = {}
    if not any(ok.values()):
        for q in pos:
            p[q] = 1 << (bit_depth - 1)
    else:
        for q in pos:
            if ok[q]:
                p[q] = int(plane[y0 + q[1], x0 + q[0]])
        if not ok[pos[0]]:
            for q in pos:
                if ok[q]:
                    p[pos[0]] = p[q]
                    break
        for k in range(1, len(pos)):
            if not ok[pos[k]]:
                p[pos[k]] = p[pos[k - 1]]
    top = [p[(-1, -1)]] + [p[(x, -1)] for x in range(2 * n)]
    left = [p[(-1, -1)]] + [p[(-1, y)] for y in range(2 * n)]
    return np.array(top), np.array(left)


def _p_from(top, left):
    n2 = len(top) - 1
    p = {(-1, -1): int(top[0])}
    for i in range(n2):
        p[(i, -1)] = int(top[1 + i])
        p[(-1, i)] = int(left[1 + i])
    return p


def ref_filter(top, left, mode, n, is_luma, bit_depth, strong):
    """8.4.4.2.3."""
    p = _p_from(top, left)
    flag = False
    if is_luma and mode != 1 and n != 4:
        dist = min(abs(mode - 26), abs(mode - 10))
        flag = dist > {8: 7, 16: 1, 32: 0}[n]
    if not flag:
        return np.array(top), np.array(left)
    pf = {}
    bi = (strong and is_luma and n == 32
          and abs(p[(-1, -1)] + p[(2 * n - 1, -1)] - 2 * p[(n - 1, -1)]) < (1 << (bit_depth - 5))
          and abs(p[(-1, -1)] + p[(-1, 2 * n - 1)] - 2 * p[(-1, n - 1)]) < (1 << (bit_depth - 5)))
    if bi:
        pf[(-1, -1)] = p[(-1, -1)]
        for y in range(0, 63):
            pf[(-1, y)] = ((63 - y) * p[(-1, -1)] + (y + 1) * p[(-1, 63)] + 32) >> 6
        pf[(-1, 63)] = p[(-1, 63)]
        for x in range(0, 63):
            pf[(x, -1)] = ((63 - x) * p[(-1, -1)] + (x + 1) * p[(63, -1)] + 32) >> 6
        pf[(63, -1)] = p[(63, -1)]
    else:
        pf[(-1, -1)] = (p[(-1, 0)] + 2 * p[(-1, -1)] + p[(0, -1)] + 2) >> 2
        for y in range(0, 2 * n - 1):
            pf[(-1, y)] = (p[(-1, y + 1)] + 2 * p[(-1, y)] + p[(-1, y - 1)] + 2) >> 2
        pf[(-1, 2 * n - 1)] = p[(-1, 2 * n - 1)]
        for x in range(0, 2 * n - 1):
            pf[(x, -1)] = (p[(x - 1, -1)] + 2 * p[(x, -1)] + p[(x + 1, -1)] + 2) >> 2
        pf[(2 * n - 1, -1)] = p[(2 * n - 1, -1)]
    t = [pf[(-1, -1)]] + [pf[(x, -1)] for x in range(2 * n)]
    l = [pf[(-1, -1)]] + [pf[(-1, y)] for y in range(2 * n)]  # noqa: E741
    return np.array(t), np.array(l)


def ref_predict(top, left, mode, n, is_luma, bit_depth):
    """8.4.4.2.4 - 8.4.4.2.6 from filtered references; returns pred[y][x]."""
    p = _p_from(top, left)
    log2n = n.bit_length() - 1
    pred = np.zeros((n, n), np.int64)  # pred[y, x]
    clip1 = lambda v: min(max(v, 0), (1 << bit_depth) - 1)  # noqa: E731
    if mode == 0:
        for x in range(n):
            for y in range(n):
                pred[y, x] = ((n - 1 - x) * p[(-1, y)] + (x + 1) * p[(n, -1)] + (n - 1 - y) * p[(x, -1)]
                              + (y + 1) * p[(-1, n)] + n) >> (log2n + 1)
        return pred
    if mode == 1:
        dc = (sum(p[(x, -1)] for x in range(n)) + sum(p[(-1, y)] for y in range(n)) + n) >> (log2n + 1)
        pred[:, :] = dc
        if is_luma and n < 32:
            pred[0, 0] = (p[(-1, 0)] + 2 * dc + p[(0, -1)] + 2) >> 2
            for x in range(1, n):
                pred[0, x] = (p[(x, -1)] + 3 * dc + 2) >> 2
            for y in range(1, n):
                pred[y, 0] = (p[(-1, y)] + 3 * dc + 2) >> 2
        return pred
    ang = _ANGLE[mode]
    ref = {}
    if mode >= 18:
        for x in range(0, n + 1):
            ref[x] = p[(-1 + x, -1)]
        if ang < 0:
            if (n * ang) >> 5 < -1:
                for x in range((n * ang) >> 5, 0):
                    ref[x] = p[(-1, -1 + ((x * _INV[mode] + 128) >> 8))]
        else:
            for x in range(n + 1, 2 * n + 1):
                ref[x] = p[(-1 + x, -1)]
        for x in range(n):
            for y in range(n):
                i_idx = ((y + 1) * ang) >> 5
                i_fact = ((y + 1) * ang) & 31
                if i_fact != 0:
                    pred[y, x] = ((32 - i_fact) * ref[x + i_idx + 1] + i_fact * ref[x + i_idx + 2] + 16) >> 5
                else:
                    pred[y, x] = ref[x + i_idx + 1]
                if mode == 26 and is_luma and n < 32 and x == 0:
                    pred[y, x] = clip1(p[(x, -1)] + ((p[(-1, y)] - p[(-1, -1)]) >> 1))
    else:
        for x in range(0, n + 1):
            ref[x] = p[(-1, -1 + x)]
        if ang < 0:
            if (n * ang) >> 5 < -1:
                for x in range((n * ang) >> 5, 0):
                    ref[x] = p[(-1 + ((x * _INV[mode] + 128) >> 8), -1)]
        else:
            for x in range(n + 1, 2 * n + 1):
                ref[x] = p[(-1, -1 + x)]
        for x in range(n):
            for y in range(n):
                i_idx = ((x + 1) * ang) >> 5
                i_fact = ((x + 1) * ang) & 31
                if i_fact != 0:
                    pred[y, x] = ((32 - i_fact) * ref[y + i_idx + 1] + i_fact * ref[y + i_idx + 2] + 16) >> 5
                else:
                    pred[y, x] = ref[y + i_idx + 1]
                if mode == 10 and is_luma and n < 32 and y == 0:
                    pred[y, x] = clip1(p[(-1, y)] + ((p[(x, -1)] - p[(-1, -1)]) >> 1))
    return pred


# ---------------------------------------------------------------------------------------------
# Inter prediction, H.265 8.5.3.3.3 (literal four-case form) and 8.5.3.3.4.2
# ---------------------------------------------------------------------------------------------

_FL = {1: [-1, 4, -10, 58, 17, -5, 1, 0], 2: [-1, 4, -11, 40, 40, -11, 4, -1], 3: [0, 1, -5, 17, 58, -10, 4, -1]}
_FC = {1: [-2, 58, 10, -2], 2: [-4, 54, 16, -2], 3: [-6, 46, 28, -4], 4: [-4, 36, 36, -4],
       5: [-4, 28, 46, -6], 6: [-2, 16, 54, -4], 7: [-2, 10, 58, -2]}


def ref_predict_block(ref, y0, x0, h, w, mv, is_luma, bit_depth):
    ih, iw = ref.shape
    if is_luma:
        filt, taps, before, prec = _FL, 8, 3, 2
    else:
        filt, taps, before, prec = _FC, 4, 1, 3
    mvx, mvy = int(mv[0]), int(mv[1])
    fx, fy = mvx & ((1 << prec) - 1), mvy & ((1 << prec) - 1)
    shift1, shift2, shift3 = min(4, bit_depth - 8), 6, max(2, 14 - bit_depth)

    def r(yy, xx):
        return int(ref[min(max(yy, 0), ih - 1), min(max(xx, 0), iw - 1)])

    out = np.zeros((h, w), np.int64)
    for y in range(h):
        for x in range(w):
            xi = x0 + (mvx >> prec) + x
            yi = y0 + (mvy >> prec) + y
            if fx == 0 and fy == 0:
                v = r(yi, xi) << shift3
            elif fy == 0:
                v = sum(filt[fx][i] * r(yi, xi + i - before) for i in range(taps)) >> shift1
            elif fx == 0:
                v = sum(filt[fy][i] * r(yi + i - before, xi) for i in range(taps)) >> shift1
            else:
                tmp = [sum(filt[fx][i] * r(yi + n - before, xi + i - before) for i in range(taps)) >> shift1
                       for n in range(taps)]
                v = sum(filt[fy][i] * tmp[i] for i in range(taps)) >> shift2
            out[y, x] = v
    return out


def ref_weighted(p0, p1, bit_depth):
    """Default weighted prediction: uni when p1 is None, else bi."""
    peak = (1 << bit_depth) - 1
    if p1 is None:
        s = 14 - bit_depth
        return np.clip((p0 + (1 << (s - 1))) >> s, 0, peak)
    s = 15 - bit_depth
    return np.clip((p0 + p1 + (1 << (s - 1))) >> s, 0, peak)


# ---------------------------------------------------------------------------------------------
# Deblocking, H.265 8.7.2 (one edge segment at a time, vertical edges then horizontal)
# ---------------------------------------------------------------------------------------------

_BETA = [0] * 16 + [6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36,
                    38, 40, 42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 62, 64]
_TC = [0] * 18 + [1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 5, 5, 6, 6, 7, 8, 9, 10,
                  11, 13, 14, 16, 18, 20, 22, 24]


def _motion_info(d, y4, x4, ref_ids):
    """[(picture, (mvx, mvy)), ...] of the PB covering unit (y4, x4)."""
    out = []
    for lst in (0, 1):
        if int(d.inter_dir[y4, x4]) & (1 << lst) and int(d.ref_idx[y4, x4, lst]) >= 0:
            ri = int(d.ref_idx[y4, x4, lst])
            pic = ref_ids[lst][ri] if ref_ids is not None else (lst, ri)
            out.append((pic, (int(d.mv[y4, x4, lst, 0]), int(d.mv[y4, x4, lst, 1]))))
    return out


def ref_bs_pair(d, pu, qu, is_tu_edge, ref_ids):
    """8.7.2.4 for the samples p0 in unit pu and q0 in unit qu."""
    if int(d.pred_mode[pu]) == 0 or int(d.pred_mode[qu]) == 0:  # MODE_INTRA
        return 2
    if is_tu_edge and (int(d.cbf[pu][0]) or int(d.cbf[qu][0])):
        return 1
    mp, mq = _motion_info(d, *pu, ref_ids), _motion_info(d, *qu, ref_ids)
    if len(mp) != len(mq):
        return 1
    far = lambda a, b: abs(a[0] - b[0]) >= 4 or abs(a[1] - b[1]) >= 4  # noqa: E731
    if len(mp) == 1:
        if mp[0][0] != mq[0][0]:
            return 1
        return 1 if far(mp[0][1], mq[0][1]) else 0
    if len(mp) == 2:
        if sorted(map(repr, (mp[0][0], mp[1][0]))) != sorted(map(repr, (mq[0][0], mq[1][0]))):
            return 1
        if mp[0][0] != mp[1][0]:
            # match MVs referring to the same picture
            mq_by_pic = {repr(pic): mv for pic, mv in mq}
            return 1 if any(far(mv, mq_by_pic[repr(pic)]) for pic, mv in mp) else 0
        c1 = far(mp[0][1], mq[0][1]) or far(mp[1][1], mq[1][1])
        c2 = far(mp[0][1], mq[1][1]) or far(mp[1][1], mq[0][1])
        return 1 if (c1 and c2) else 0
    return 0


def ref_boundary_strength(d, ref_ids=None):
    h4, w4 = np.asarray(d.cu_log2).shape
    bs_ver = np.zeros((h4, w4), np.int64)
    bs_hor = np.zeros((h4, w4), np.int64)

    def is_edge(pos, lg_p, lg_q):
        return pos % (1 << lg_p) == 0 or pos % (1 << lg_q) == 0

    for y4 in range(h4):
        for x4 in range(w4):
            for axis, out in ((1, bs_ver), (0, bs_hor)):
                pos = 4 * (x4 if axis == 1 else y4)
                if pos == 0 or pos % 8:
                    continue
                pu = (y4, x4 - 1) if axis == 1 else (y4 - 1, x4)
                qu = (y4, x4)
                tu_edge = is_edge(pos, int(d.tu_log2[pu]), int(d.tu_log2[qu]))
                cu_edge = is_edge(pos, int(d.cu_log2[pu]), int(d.cu_log2[qu]))
                if tu_edge or cu_edge:
                    out[y4, x4] = ref_bs_pair(d, pu, qu, tu_edge, ref_ids)
    return bs_ver, bs_hor


def _luma_segment(img, get, put, bs, qpl, bit_depth):
    """Decision + filter of one 4-line luma edge segment. get(i, k): p_i (i<0: p_{-i-1}), q_i."""
    beta = _BETA[min(max(qpl, 0), 51)] * (1 << (bit_depth - 8))
    tc = _TC[min(max(qpl + 2 * (bs - 1), 0), 53)] * (1 << (bit_depth - 8))
    P = lambda i, k: get(-i - 1, k)  # noqa: E731
    Q = lambda i, k: get(i, k)  # noqa: E731
    dp0 = abs(P(2, 0) - 2 * P(1, 0) + P(0, 0))
    dp3 = abs(P(2, 3) - 2 * P(1, 3) + P(0, 3))
    dq0 = abs(Q(2, 0) - 2 * Q(1, 0) + Q(0, 0))
    dq3 = abs(Q(2, 3) - 2 * Q(1, 3) + Q(0, 3))
    dpq0, dpq3 = dp0 + dq0, dp3 + dq3
    dp, dq = dp0 + dp3, dq0 + dq3
    d = dpq0 + dpq3
    if d >= beta:
        return

    def dsam(k, dpq):
        return (dpq < (beta >> 2) and abs(P(3, k) - P(0, k)) + abs(Q(0, k) - Q(3, k)) < (beta >> 3)
                and abs(P(0, k) - Q(0, k)) < ((5 * tc + 1) >> 1))

    de = 2 if (dsam(0, 2 * dpq0) and dsam(3, 2 * dpq3)) else 1
    dep = dp < ((beta + (beta >> 1)) >> 3)
    deq = dq < ((beta + (beta >> 1)) >> 3)
    peak = (1 << bit_depth) - 1
    c3 = lambda lo, hi, v: min(max(v, lo), hi)  # noqa: E731
    for k in range(4):
        p0, p1, p2, p3 = P(0, k), P(1, k), P(2, k), P(3, k)
        q0, q1, q2, q3 = Q(0, k), Q(1, k), Q(2, k), Q(3, k)
        if de == 2:
            put(-1, k, c3(p0 - 2 * tc, p0 + 2 * tc, (p2 + 2 * p1 + 2 * p0 + 2 * q0 + q1 + 4) >> 3))
            put(-2, k, c3(p1 - 2 * tc, p1 + 2 * tc, (p2 + p1 + p0 + q0 + 2) >> 2))
            put(-3, k, c3(p2 - 2 * tc, p2 + 2 * tc, (2 * p3 + 3 * p2 + p1 + p0 + q0 + 4) >> 3))
            put(0, k, c3(q0 - 2 * tc, q0 + 2 * tc, (p1 + 2 * p0 + 2 * q0 + 2 * q1 + q2 + 4) >> 3))
            put(1, k, c3(q1 - 2 * tc, q1 + 2 * tc, (p0 + q0 + q1 + q2 + 2) >> 2))
            put(2, k, c3(q2 - 2 * tc, q2 + 2 * tc, (p0 + q0 + q1 + 3 * q2 + 2 * q3 + 4) >> 3))
        else:
            delta = (9 * (q0 - p0) - 3 * (q1 - p1) + 8) >> 4
            if abs(delta) < tc * 10:
                delta = c3(-tc, tc, delta)
                put(-1, k, c3(0, peak, p0 + delta))
                put(0, k, c3(0, peak, q0 - delta))
                if dep:
                    dlp = c3(-(tc >> 1), tc >> 1, (((p2 + p0 + 1) >> 1) - p1 + delta) >> 1)
                    put(-2, k, c3(0, peak, p1 + dlp))
                if deq:
                    dlq = c3(-(tc >> 1), tc >> 1, (((q2 + q0 + 1) >> 1) - q1 - delta) >> 1)
                    put(1, k, c3(0, peak, q1 + dlq))


def ref_deblock(y, u, v, qp, bs_ver, bs_hor, bit_depth, chroma_qp_offset=0):
    """Whole-picture deblocking: all vertical edges (luma + chroma), then horizontal edges."""
    planes = [np.array(p, np.int64) for p in (y, u, v)]
    qp = np.asarray(qp)
    for vertical in (True, False):
        src = [p.copy() for p in planes]  # decisions read the input of this direction's pass
        dst = planes
        img = src[0]
        h, w = img.shape
        bs_map = bs_ver if vertical else bs_hor
        for y4 in range(h // 4):
            for x4 in range(w // 4):
                bs = int(bs_map[y4, x4])
                if bs == 0:
                    continue
                pu = (y4, x4 - 1) if vertical else (y4 - 1, x4)
                qpl = (int(qp[y4, x4]) + int(qp[pu]) + 1) >> 1
                y0, x0 = 4 * y4, 4 * x4
                if vertical:
                    get = lambda i, k: int(src[0][y0 + k, x0 + i])  # noqa: E731
                    def put(i, k, val):
                        dst[0][y0 + k, x0 + i] = val
                else:
                    get = lambda i, k: int(src[0][y0 + i, x0 + k])  # noqa: E731
                    def put(i, k, val):
                        dst[0][y0 + i, x0 + k] = val
                _luma_segment(src[0], get, put, bs, qpl, bit_depth)
                # chroma: bS 2, on the 8x8 chroma grid (luma multiple of 16); one 4-line chroma
                # segment per 8 luma lines, with the bS / QP at its first line (yDm = m << 2)
                edge, along = (x0, y0) if vertical else (y0, x0)
                if bs == 2 and edge % 16 == 0 and along % 8 == 0:
                    qpi = qpl + chroma_qp_offset
                    qpc = ref_chroma_qp(qpi)
                    tc = _TC[min(max(qpc + 2, 0), 53)] * (1 << (bit_depth - 8))
                    for c in (1, 2):
                        for k in range(4):
                            if vertical:
                                yc, xc = y0 // 2 + k, x0 // 2
                                pp1, pp0, qq0, qq1 = (int(src[c][yc, xc + o]) for o in (-2, -1, 0, 1))
                            else:
                                yc, xc = y0 // 2, x0 // 2 + k
                                pp1, pp0, qq0, qq1 = (int(src[c][yc + o, xc]) for o in (-2, -1, 0, 1))
                            delta = min(max((((qq0 - pp0) << 2) + pp1 - qq1 + 4) >> 3, -tc), tc)
                            peak = (1 << bit_depth) - 1
                            a, b = min(max(pp0 + delta, 0), peak), min(max(qq0 - delta, 0), peak)
                            if vertical:
                                dst[c][yc, xc - 1], dst[c][yc, xc] = a, b
                            else:
                                dst[c][yc - 1, xc], dst[c][yc, xc] = a, b
    return planes


# ---------------------------------------------------------------------------------------------
# RDOQ model cost and exhaustive-over-last-position reference (float64)
# ---------------------------------------------------------------------------------------------

def ref_diag_scan(n):
    """6.5.3 up-right diagonal scan of 4x4 sub-blocks, as raster indices."""
    def diag(size):
        out = []
        for s in range(2 * size - 1):  # anti-diagonals, each walked bottom-left to top-right
            for y in range(min(s, size - 1), -1, -1):
                x = s - y
                if x < size:
                    out.append((x, y))
        return out
    return [(sy * 4 + y) * n + sx * 4 + x for sx, sy in diag(n // 4) for x, y in diag(4)]


def _ref_level_bits(a, rate):
    if a == 0:
        return 0.0
    bits = rate.sign + rate.gt1 + (rate.gt2 if a >= 2 else 0.0)
    if a >= 3:
        bits += 1.0 + 2.0 * math.floor(math.log2(a - 3 + 1))
    return bits


def ref_rdoq_cost(coeffs, levels, qp, log2n, lam, bit_depth, rate):
    """Model RD cost of ``levels`` for ``coeffs`` (the quantity `rdoq` minimises)."""
    n = 1 << log2n
    qbits = 14 + qp // 6 + (15 - bit_depth - log2n)
    scale = _QUANT[qp % 6]
    unit = 2.0 ** qbits / scale * 2.0 ** -(15 - bit_depth - log2n)
    order = ref_diag_scan(n)
    c = np.asarray(coeffs).reshape(-1)
    lv = np.abs(np.asarray(levels).reshape(-1))
    lf = [min(abs(int(v)), 32767) * scale / 2.0 ** qbits for v in c]
    dist = sum(((lf[i] - lv[i]) * unit) ** 2 for i in range(n * n))
    nz = [k for k in range(n * n) if lv[order[k]] != 0]
    if not nz:
        return dist + lam * rate.cbf0
    last = nz[-1]
    bits = 0.0
    for k in range(last + 1):
        a = int(lv[order[k]])
        if k < last:
            bits += rate.sig1 if a else rate.sig0
        bits += _ref_level_bits(a, rate)
    pos = order[last]
    bits += rate.last_per_log2 * (math.log2(pos % n + 1) + math.log2(pos // n + 1))
    return dist + lam * bits


def ref_rdoq_best_cost(coeffs, qp, log2n, lam, bit_depth, rate):
    """Minimum model cost over candidates {nearest, nearest-1, 0} per coefficient, trying every
    last position explicitly (and the all-zero block)."""
    n = 1 << log2n
    qbits = 14 + qp // 6 + (15 - bit_depth - log2n)
    scale = _QUANT[qp % 6]
    unit = 2.0 ** qbits / scale * 2.0 ** -(15 - bit_depth - log2n)
    order = ref_diag_scan(n)
    c = np.asarray(coeffs).reshape(-1)
    lf = [min(abs(int(c[order[k]])), 32767) * scale / 2.0 ** qbits for k in range(n * n)]
    d = lambda k, a: ((lf[k] - a) * unit) ** 2  # noqa: E731
    best = dist0 = sum(d(k, 0) for k in range(n * n)) + lam * rate.cbf0
    for last in range(n * n):
        hi = math.floor(lf[last] + 0.5)
        cands = [a for a in (hi, hi - 1) if a > 0]
        if not cands:
            continue
        pos = order[last]
        cost = min(d(last, a) + lam * _ref_level_bits(a, rate) for a in cands)
        cost += lam * rate.last_per_log2 * (math.log2(pos % n + 1) + math.log2(pos // n + 1))
        for k in range(last):
            hk = math.floor(lf[k] + 0.5)
            opts = [d(k, 0) + lam * rate.sig0]
            opts += [d(k, a) + lam * (rate.sig1 + _ref_level_bits(a, rate)) for a in (hk, hk - 1) if a > 0]
            cost += min(opts)
        cost += sum(d(k, 0) for k in range(last + 1, n * n))
        best = min(best, cost)
    del dist0
    return best


# ---------------------------------------------------------------------------------------------
# Symmetries of the square (self-ensemble, jaxcodec.nn.ensemble)
# ---------------------------------------------------------------------------------------------

def ref_symmetry(a, k, inverse=False):
    """Symmetry ``k`` of a 2-D+ array on its first two axes, or its inverse, written with plain
    transposes and slices: bit 4 transpose, then bit 1 horizontal flip, then bit 2 vertical flip."""
    steps = [(4, lambda t: np.swapaxes(t, 0, 1)), (1, lambda t: t[:, ::-1]), (2, lambda t: t[::-1])]
    for bit, f in (reversed(steps) if inverse else steps):
        if k & bit:
            a = f(a)
    return np.ascontiguousarray(a)
