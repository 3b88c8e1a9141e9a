"""Motion vector prediction: merge candidate list and AMVP (H.265 8.5.3.2), in numba.

One implementation serves the syntax writer, the parser and the encoder analysis. It reads
the (partially filled) per-4x4 decision arrays of `jaxcodec.codec.blocks.BlockDecisions`
(``mv (H4, W4, 2, 2)``, ``ref_idx (H4, W4, 2)``, ``inter_dir``, ``pred_mode``) and a z-scan
index per 4x4 unit (`zscan_order`). A neighbouring unit is *available* (H.265 6.4.1 / 6.4.2)
when it lies inside the picture, precedes the current CU in z-scan order (a comparison of z
indices: later units may hold garbage, they are never read) and is inter coded.

Neighbours of a CU at 4x4 position ``(x4, y4)`` with ``n4`` units per side (Fig. 8-3):
A1 left-bottom ``(x4-1, y4+n4-1)``, B1 above-right-most ``(x4+n4-1, y4-1)``, B0 above-right
``(x4+n4, y4-1)``, A0 below-left ``(x4-1, y4+n4)``, B2 above-left ``(x4-1, y4-1)``.

Merge list (8.5.3.2.2..8.5.3.2.5): spatial A1, B1, B0, A0, B2 with the HEVC pairwise pruning
(B1 vs A1, B0 vs B1, A0 vs A1, B2 vs A1 and B1; B2 only when fewer than four spatial
candidates), then for B slices the combined bi-predictive candidates (8.5.3.2.4, pairs
(0,1), (1,0), (0,2), ... ), then zero-MV candidates with increasing reference index
(8.5.3.2.5). The temporal (collocated) candidate is not used (slice_temporal_mvp_enabled_flag
= 0): it would need the collocated picture's motion field stored in the DPB.

AMVP (8.5.3.2.6 / 8.5.3.2.7): candidate A from A0, A1 and B from B0, B1, B2; each first looks
for a neighbour whose reference is the *same picture* (either list, compared by POC), then
(A always, B only when no left neighbour is available) for any inter neighbour with its MV
scaled by the POC distance ratio (8.5.3.2.8); duplicates removed, zero fill to two entries.
No temporal candidate (as above).

MVs are quarter-sample integers; every candidate stays within int16.
"""

from __future__ import annotations

import numba
import numpy as np

MODE_INTER = 1  # jaxcodec.codec.blocks.MODE_INTER (kept literal: numba freezes globals anyway)
MAX_MERGE_CAND = 5

# H.265 Table 8-6: combIdx -> (l0CandIdx, l1CandIdx)
_COMB_L0 = np.array([0, 1, 0, 2, 1, 2, 0, 3, 1, 3, 2, 3], np.int64)
_COMB_L1 = np.array([1, 0, 2, 0, 2, 1, 3, 0, 3, 1, 3, 2], np.int64)


def zscan_order(h4: int, w4: int, ctu_log2: int) -> np.ndarray:
    """z-scan index of every 4x4 unit ``int32 (h4, w4)``: CTUs in raster order, Morton order
    of the 4x4 units inside each CTU (H.265 6.5.2). Comparing two indices tells which unit is
    decoded first."""
    n = 1 << (ctu_log2 - 2)  # 4x4 units per CTU side
    y, x = np.mgrid[0:h4, 0:w4]
    ctus_per_row = -(-w4 // n)
    ctu = (y // n) * ctus_per_row + (x // n)
    lx, ly = x % n, y % n
    morton = np.zeros_like(lx)
    for b in range(ctu_log2 - 2):
        morton |= ((lx >> b) & 1) << (2 * b)
        morton |= ((ly >> b) & 1) << (2 * b + 1)
    return (ctu * n * n + morton).astype(np.int32)


@numba.njit(cache=True, nogil=True, inline="always")
def _available(x4, y4, cur_z, zidx, pred_mode):
    """6.4.2 prediction block availability: inside, already coded, inter."""
    if x4 < 0 or y4 < 0 or y4 >= zidx.shape[0] or x4 >= zidx.shape[1]:
        return False
    if zidx[y4, x4] >= cur_z:
        return False
    return pred_mode[y4, x4] == MODE_INTER


@numba.njit(cache=True, nogil=True, inline="always")
def _same_motion(mv, ref_idx, inter_dir, ya, xa, yb, xb):
    if inter_dir[ya, xa] != inter_dir[yb, xb]:
        return False
    for lst in range(2):
        if ref_idx[ya, xa, lst] != ref_idx[yb, xb, lst]:
            return False
        if ref_idx[ya, xa, lst] >= 0:
            if mv[ya, xa, lst, 0] != mv[yb, xb, lst, 0] or mv[ya, xa, lst, 1] != mv[yb, xb, lst, 1]:
                return False
    return True


@numba.njit(cache=True, nogil=True, inline="always")
def _push_unit(y, x, mv, ref_idx, inter_dir, k, cmv, cref, cdir):
    d = inter_dir[y, x]
    cdir[k] = d
    for lst in range(2):
        if d & (1 << lst):
            cref[k, lst] = ref_idx[y, x, lst]
            cmv[k, lst, 0] = mv[y, x, lst, 0]
            cmv[k, lst, 1] = mv[y, x, lst, 1]
        else:
            cref[k, lst] = -1
            cmv[k, lst, 0] = 0
            cmv[k, lst, 1] = 0


@numba.njit(cache=True, nogil=True)
def merge_candidates(x4, y4, n4, mv, ref_idx, inter_dir, pred_mode, zidx, ref_poc, num_ref_l0, num_ref_l1,
                     is_b, max_cand, cmv, cref, cdir):
    """Build the merge candidate list of the CU at ``(x4, y4)`` (``n4`` units wide), H.265
    8.5.3.2.2. Writes ``cmv (>=max_cand, 2, 2)``, ``cref (.., 2)`` (-1 unused list) and ``cdir``
    (PRED_L0/L1/BI); returns the number of candidates (always ``max_cand``, 1..5).

    ``ref_poc (2, R)``: POC of every reference list entry (for the combined bi-predictive
    candidates' "different picture or different MV" test).
    """
    cur_z = zidx[y4, x4]
    xa1, ya1 = x4 - 1, y4 + n4 - 1
    xb1, yb1 = x4 + n4 - 1, y4 - 1
    xb0, yb0 = x4 + n4, y4 - 1
    xa0, ya0 = x4 - 1, y4 + n4
    xb2, yb2 = x4 - 1, y4 - 1
    av_a1 = _available(xa1, ya1, cur_z, zidx, pred_mode)
    av_b1 = _available(xb1, yb1, cur_z, zidx, pred_mode)
    if av_b1 and av_a1 and _same_motion(mv, ref_idx, inter_dir, ya1, xa1, yb1, xb1):
        av_b1 = False
    av_b0 = _available(xb0, yb0, cur_z, zidx, pred_mode)
    if av_b0 and _available(xb1, yb1, cur_z, zidx, pred_mode) and _same_motion(mv, ref_idx, inter_dir, yb1, xb1,
                                                                                yb0, xb0):
        av_b0 = False
    av_a0 = _available(xa0, ya0, cur_z, zidx, pred_mode)
    if av_a0 and av_a1 and _same_motion(mv, ref_idx, inter_dir, ya1, xa1, ya0, xa0):
        av_a0 = False
    av_b2 = _available(xb2, yb2, cur_z, zidx, pred_mode)
    if av_b2:
        if av_a1 and _same_motion(mv, ref_idx, inter_dir, ya1, xa1, yb2, xb2):
            av_b2 = False
        elif _available(xb1, yb1, cur_z, zidx, pred_mode) and _same_motion(mv, ref_idx, inter_dir, yb1, xb1, yb2, xb2):
            av_b2 = False
        elif int(av_a0) + int(av_a1) + int(av_b0) + int(av_b1) == 4:
            av_b2 = False
    k = 0
    if av_a1 and k < max_cand:
        _push_unit(ya1, xa1, mv, ref_idx, inter_dir, k, cmv, cref, cdir)
        k += 1
    if av_b1 and k < max_cand:
        _push_unit(yb1, xb1, mv, ref_idx, inter_dir, k, cmv, cref, cdir)
        k += 1
    if av_b0 and k < max_cand:
        _push_unit(yb0, xb0, mv, ref_idx, inter_dir, k, cmv, cref, cdir)
        k += 1
    if av_a0 and k < max_cand:
        _push_unit(ya0, xa0, mv, ref_idx, inter_dir, k, cmv, cref, cdir)
        k += 1
    if av_b2 and k < max_cand:
        _push_unit(yb2, xb2, mv, ref_idx, inter_dir, k, cmv, cref, cdir)
        k += 1
    # 8.5.3.2.4 combined bi-predictive candidates (B slices)
    num_orig = k
    if is_b and 1 < num_orig < max_cand:
        comb = 0
        while comb < num_orig * (num_orig - 1) and k < max_cand:
            i0 = _COMB_L0[comb]
            i1 = _COMB_L1[comb]
            if (cdir[i0] & 1) and (cdir[i1] & 2):
                r0 = cref[i0, 0]
                r1 = cref[i1, 1]
                if (ref_poc[0, r0] != ref_poc[1, r1] or cmv[i0, 0, 0] != cmv[i1, 1, 0]
                        or cmv[i0, 0, 1] != cmv[i1, 1, 1]):
                    cdir[k] = 3
                    cref[k, 0] = r0
                    cref[k, 1] = r1
                    cmv[k, 0, 0] = cmv[i0, 0, 0]
                    cmv[k, 0, 1] = cmv[i0, 0, 1]
                    cmv[k, 1, 0] = cmv[i1, 1, 0]
                    cmv[k, 1, 1] = cmv[i1, 1, 1]
                    k += 1
            comb += 1
    # 8.5.3.2.5 zero candidates
    num_ref = min(num_ref_l0, num_ref_l1) if is_b else num_ref_l0
    zero = 0
    while k < max_cand:
        r = zero if zero < num_ref else 0
        cmv[k, :, :] = 0
        cref[k, 0] = r
        cref[k, 1] = r if is_b else -1
        cdir[k] = 3 if is_b else 1
        k += 1
        zero += 1
    return k


@numba.njit(cache=True, nogil=True, inline="always")
def _trunc_div(a, b):
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


@numba.njit(cache=True, nogil=True)
def scale_mv(v, td, tb):
    """8.5.3.2.8 POC-distance MV scaling of one component (td: current - neighbour's
    reference, tb: current - target reference)."""
    td = min(max(td, -128), 127)
    tb = min(max(tb, -128), 127)
    if td == 0:
        return v
    tx = _trunc_div(16384 + (abs(td) >> 1), td)
    dsf = min(max((tb * tx + 32) >> 6, -4096), 4095)
    p = dsf * v
    s = (abs(p) + 127) >> 8
    return min(max(-s if p < 0 else s, -32768), 32767)


@numba.njit(cache=True, nogil=True)
def _amvp_search(xs, ys, cnt, lst, target_poc, cur_z, mv, ref_idx, pred_mode, zidx, ref_poc, cur_poc, scaled, out):
    """First available neighbour in ``(xs, ys)[:cnt]`` with a reference to ``target_poc``
    (``scaled`` False) or any reference, MV scaled (``scaled`` True). Returns found."""
    for i in range(cnt):
        x, y = xs[i], ys[i]
        if not _available(x, y, cur_z, zidx, pred_mode):
            continue
        for j in range(2):
            lx = lst if j == 0 else 1 - lst
            r = ref_idx[y, x, lx]
            if r < 0:
                continue
            poc = ref_poc[lx, r]
            if not scaled:
                if poc == target_poc:
                    out[0] = mv[y, x, lx, 0]
                    out[1] = mv[y, x, lx, 1]
                    return True
            else:
                td = cur_poc - poc
                tb = cur_poc - target_poc
                out[0] = mv[y, x, lx, 0]
                out[1] = mv[y, x, lx, 1]
                if poc != target_poc:
                    out[0] = scale_mv(out[0], td, tb)
                    out[1] = scale_mv(out[1], td, tb)
                return True
    return False


@numba.njit(cache=True, nogil=True)
def amvp_candidates(x4, y4, n4, lst, ref_i, mv, ref_idx, pred_mode, zidx, ref_poc, cur_poc, out):
    """Fill ``out (2, 2)`` with the two MV predictor candidates of list ``lst`` for reference
    index ``ref_i`` of the CU at ``(x4, y4)``, H.265 8.5.3.2.6 / 8.5.3.2.7 (see module doc)."""
    cur_z = zidx[y4, x4]
    target = ref_poc[lst, ref_i]
    xs = np.empty(3, np.int64)
    ys = np.empty(3, np.int64)
    mva = np.zeros(2, np.int64)
    mvb = np.zeros(2, np.int64)
    # A: A0, A1
    xs[0], ys[0] = x4 - 1, y4 + n4
    xs[1], ys[1] = x4 - 1, y4 + n4 - 1
    is_scaled = (_available(xs[0], ys[0], cur_z, zidx, pred_mode)
                 or _available(xs[1], ys[1], cur_z, zidx, pred_mode))
    av_a = _amvp_search(xs, ys, 2, lst, target, cur_z, mv, ref_idx, pred_mode, zidx, ref_poc, cur_poc, False, mva)
    if not av_a:
        av_a = _amvp_search(xs, ys, 2, lst, target, cur_z, mv, ref_idx, pred_mode, zidx, ref_poc, cur_poc, True, mva)
    # B: B0, B1, B2
    xs[0], ys[0] = x4 + n4, y4 - 1
    xs[1], ys[1] = x4 + n4 - 1, y4 - 1
    xs[2], ys[2] = x4 - 1, y4 - 1
    av_b = _amvp_search(xs, ys, 3, lst, target, cur_z, mv, ref_idx, pred_mode, zidx, ref_poc, cur_poc, False, mvb)
    if not is_scaled:
        if av_b:
            mva[0], mva[1] = mvb[0], mvb[1]
            av_a = True
        av_b = _amvp_search(xs, ys, 3, lst, target, cur_z, mv, ref_idx, pred_mode, zidx, ref_poc, cur_poc, True, mvb)
    k = 0
    if av_a:
        out[0, 0], out[0, 1] = mva[0], mva[1]
        k = 1
    if av_b and not (av_a and mva[0] == mvb[0] and mva[1] == mvb[1]):
        out[k, 0], out[k, 1] = mvb[0], mvb[1]
        k += 1
    while k < 2:
        out[k, 0] = 0
        out[k, 1] = 0
        k += 1
