"""Per-frame block decisions: one compact record over the 4x4 luma grid (dav1d/rav1e habit).

Everything the syntax writes for a frame (besides coefficient levels) and everything the
reconstruction, deblocking and the NN loop filter read lives here, as a struct of arrays over
the minimum (4x4 luma) block grid of the *padded* frame: ``(H4, W4) = (H/4, W/4)``. Every 4x4
unit repeats the values of the CU/TU that covers it, so kernels can gather per sample with
``arr[y >> 2, x >> 2]`` and tests can compare records with ``==``.

Coefficient levels travel separately as `CoeffPlanes`: one int32 plane per component with
the shape of the padded plane, each TU's quantized levels stored in its own spatial footprint
(coefficient (i, j) of the TU at (x0, y0) lies at ``[y0 + i, x0 + j]``). For 4:2:0, a luma
8x8 CU split into four 4x4 TUs carries one 4x4 chroma TU per plane (HEVC rule).
"""

from __future__ import annotations

import numpy as np
from flax import struct

MODE_INTRA = 0
MODE_INTER = 1

# Intra luma modes, HEVC numbering: 0 planar, 1 DC, 2..34 angular (10 horizontal, 26 vertical).
INTRA_PLANAR = 0
INTRA_DC = 1
INTRA_HOR = 10
INTRA_VER = 26
NUM_INTRA_MODES = 35

# inter_dir bits
PRED_L0 = 1
PRED_L1 = 2
PRED_BI = 3


@struct.dataclass
class BlockDecisions:
    """Decisions of one frame on the 4x4 luma grid, shapes ``(H4, W4[, ...])``.

    Attributes:
      cu_log2: log2 luma CU size (3..6), int8.
      tu_log2: log2 luma TU size (2..5), int8.
      pred_mode: MODE_INTRA or MODE_INTER, int8.
      skip: 1 for skipped CUs (inter, merge, no residual), int8.
      merge_flag: 1 when the motion comes from the merge list, int8.
      merge_idx: index in the merge candidate list, int8.
      intra_mode: luma intra mode 0..34, int8 (undefined for inter).
      intra_mode_c: chroma intra mode actually used 0..34, int8.
      inter_dir: PRED_L0 / PRED_L1 / PRED_BI, int8 (0 for intra).
      mv: motion vectors in quarter luma samples, int16 ``(H4, W4, 2, 2)`` = [list][x, y].
      ref_idx: reference index per list, int8 ``(H4, W4, 2)``, -1 when the list is unused.
      qp: luma QP of the CU, int8.
      cbf: coded-block flags of the TU covering the unit, int8 ``(H4, W4, 3)`` for Y, U, V.
    """

    cu_log2: np.ndarray
    tu_log2: np.ndarray
    pred_mode: np.ndarray
    skip: np.ndarray
    merge_flag: np.ndarray
    merge_idx: np.ndarray
    intra_mode: np.ndarray
    intra_mode_c: np.ndarray
    inter_dir: np.ndarray
    mv: np.ndarray
    ref_idx: np.ndarray
    qp: np.ndarray
    cbf: np.ndarray

    @property
    def grid_shape(self) -> tuple[int, int]:
        return tuple(self.cu_log2.shape[-2:]) if self.cu_log2.ndim == 2 else tuple(self.cu_log2.shape[:2])


def empty_decisions(height: int, width: int, qp: int = 32) -> BlockDecisions:
    """All-intra-DC 8x8 decisions of a padded ``height x width`` frame (numpy, int8/int16)."""
    if height % 8 or width % 8:
        raise ValueError(f"padded frame size must be a multiple of 8, got {width}x{height}")
    h4, w4 = height // 4, width // 4
    z8 = lambda *extra: np.zeros((h4, w4) + extra, np.int8)  # noqa: E731
    return BlockDecisions(
        cu_log2=np.full((h4, w4), 3, np.int8),
        tu_log2=np.full((h4, w4), 3, np.int8),
        pred_mode=z8(),
        skip=z8(),
        merge_flag=z8(),
        merge_idx=z8(),
        intra_mode=np.full((h4, w4), INTRA_DC, np.int8),
        intra_mode_c=np.full((h4, w4), INTRA_DC, np.int8),
        inter_dir=z8(),
        mv=np.zeros((h4, w4, 2, 2), np.int16),
        ref_idx=np.full((h4, w4, 2), -1, np.int8),
        qp=np.full((h4, w4), qp, np.int8),
        cbf=z8(3),
    )


@struct.dataclass
class CoeffPlanes:
    """Quantized levels per component, int32, shaped like the padded planes (see module doc)."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray


def zero_coeffs(height: int, width: int) -> CoeffPlanes:
    return CoeffPlanes(
        y=np.zeros((height, width), np.int32),
        u=np.zeros((height // 2, width // 2), np.int32),
        v=np.zeros((height // 2, width // 2), np.int32),
    )
