"""Merge / skip derivation for inter CUs (H.265 8.5.3.2.2, 7.3.8.5 cu_skip_flag / merge_flag).

The motion search decides each CU's motion (inter_dir, mv, ref_idx); this pass, run in
z-scan order exactly as the decoder will see the CUs, turns that motion into the cheapest
syntax: when the CU's motion equals a merge candidate it is coded as ``merge_idx`` instead of
``inter_pred_idc``/``ref_idx``/``mvd``/``mvp_flag``, and a merge CU without residual is a
skip CU (one flag plus ``merge_idx``). It changes no prediction sample, only the syntax,
so the reconstruction stays the encoder's.

An encoder decision (it never runs in the decoder); numba because each CU's candidate list
depends on its already-finished causal neighbours.
"""

from __future__ import annotations

import numba
import numpy as np

from jaxcodec.codec.blocks import MODE_INTER, BlockDecisions
from jaxcodec.codec.entropy import mvpred


@numba.njit(cache=True, nogil=True)
def _same(mv, ref_idx, inter_dir, y4, x4, cmv, cref, cdir, k):
    if inter_dir[y4, x4] != cdir[k]:
        return False
    for lst in range(2):
        if cref[k, lst] >= 0 or ref_idx[y4, x4, lst] >= 0:
            if ref_idx[y4, x4, lst] != cref[k, lst]:
                return False
            if mv[y4, x4, lst, 0] != cmv[k, lst, 0] or mv[y4, x4, lst, 1] != cmv[k, lst, 1]:
                return False
    return True


@numba.njit(cache=True, nogil=True)
def _derive(origins_y, origins_x, cu_log2, pred_mode, mv, ref_idx, inter_dir, cbf, zidx, ref_poc, n_l0, n_l1, is_b,
            max_cand, skip, merge_flag, merge_idx):
    cmv = np.zeros((5, 2, 2), np.int64)
    cref = np.zeros((5, 2), np.int64)
    cdir = np.zeros(5, np.int64)
    for i in range(origins_y.shape[0]):
        y4, x4 = origins_y[i], origins_x[i]
        if pred_mode[y4, x4] != MODE_INTER:
            continue
        n4 = 1 << (cu_log2[y4, x4] - 2)
        mvpred.merge_candidates(x4, y4, n4, mv, ref_idx, inter_dir, pred_mode, zidx, ref_poc, n_l0, n_l1, is_b,
                                max_cand, cmv, cref, cdir)
        hit = -1
        for k in range(max_cand):
            if _same(mv, ref_idx, inter_dir, y4, x4, cmv, cref, cdir, k):
                hit = k
                break
        coded = False
        for y in range(y4, y4 + n4):
            for x in range(x4, x4 + n4):
                if cbf[y, x, 0] or cbf[y, x, 1] or cbf[y, x, 2]:
                    coded = True
        for y in range(y4, y4 + n4):
            for x in range(x4, x4 + n4):
                merge_flag[y, x] = 1 if hit >= 0 else 0
                merge_idx[y, x] = max(hit, 0)
                skip[y, x] = 1 if (hit >= 0 and not coded) else 0


def cu_origins(cu_log2: np.ndarray, zidx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """4x4-grid positions of every CU's top-left unit, in z-scan (decoding) order."""
    y, x = np.mgrid[0 : cu_log2.shape[0], 0 : cu_log2.shape[1]]
    n4 = 1 << (cu_log2.astype(np.int64) - 2)
    mask = (y % n4 == 0) & (x % n4 == 0)
    order = np.argsort(zidx[mask], kind="stable")
    return y[mask][order].astype(np.int64), x[mask][order].astype(np.int64)


def derive_merge_skip(decisions: BlockDecisions, *, refs_l0: tuple, refs_l1: tuple, slice_type: str,
                      ctu_size: int, max_merge_cand: int = 5) -> BlockDecisions:
    """``decisions`` with ``merge_flag``/``merge_idx``/``skip`` set wherever an inter CU's
    motion is a merge candidate (the first such index), and ``skip`` where such a CU also has
    no coded block flag. ``decisions.cbf`` must already describe the levels."""
    h4, w4 = decisions.grid_shape
    zidx = mvpred.zscan_order(h4, w4, ctu_size.bit_length() - 1)
    oy, ox = cu_origins(np.asarray(decisions.cu_log2), zidx)
    ref_poc = np.zeros((2, 4), np.int64)
    ref_poc[0, : len(refs_l0)] = refs_l0
    ref_poc[1, : len(refs_l1)] = refs_l1
    skip = np.zeros((h4, w4), np.int8)
    mflag = np.zeros((h4, w4), np.int8)
    midx = np.zeros((h4, w4), np.int8)
    _derive(oy, ox, np.ascontiguousarray(decisions.cu_log2, np.int8), np.ascontiguousarray(decisions.pred_mode, np.int8),
            np.ascontiguousarray(decisions.mv, np.int16), np.ascontiguousarray(decisions.ref_idx, np.int8),
            np.ascontiguousarray(decisions.inter_dir, np.int8), np.ascontiguousarray(decisions.cbf, np.int8), zidx,
            ref_poc, len(refs_l0), len(refs_l1), slice_type == "B", max_merge_cand, skip, mflag, midx)
    return decisions.replace(skip=skip, merge_flag=mflag, merge_idx=midx)
