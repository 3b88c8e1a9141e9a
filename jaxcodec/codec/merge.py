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

from jaxcodec.codec.blocks import MODE_INTER
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
def derive(origins_y, origins_x, cu_log2, pred_mode, mv, ref_idx, inter_dir, cbf, zidx, ref_poc, n_l0, n_l1, is_b,
            max_cand, skip, merge_flag, merge_idx):
    """Set ``merge_flag``/``merge_idx``/``skip`` (in place, over each CU's 4x4 units) for the
    inter CUs whose top-left units are ``(origins_y, origins_x)``, taken in that (z-scan) order:
    merge with the first candidate equal to the CU's motion, skip when it also has no cbf.
    Arrays are the `BlockDecisions` fields on the 4x4 grid; ``ref_poc (2, 4)`` the list POCs."""
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
