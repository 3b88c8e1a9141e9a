"""Frame syntax: CTU / CU / TU syntax of H.265 (7.3.8) coded with the CABAC engine, in numba.

Public entry points::

    write_frame(decisions, coeffs, info, contexts=None) -> (payload bytes, final contexts)
    parse_frame(payload, info, contexts=None)            -> (decisions, coeffs, final contexts)
    count_quadtree_bits(decisions, coeffs, info, x, y, log2_size, contexts) -> (bits, contexts)
    init_contexts(slice_type, qp) -> int32 (NUM_CONTEXTS, 2)

One writer (`_w_*` functions) serves both the real encoder and the RDO bit counter: it calls
only `engine.put_bin` / `put_bypass` / `put_bypass_bins`, which encode or count depending on
the writer's mode. The parser (`_p_*`) mirrors it bin for bin.

Syntax (H.265 clause in brackets; one slice per frame, no tiles, no SAO, no PCM, no transform
skip, no sign hiding, no temporal MV prediction):

* CTUs in raster order, ``end_of_slice_segment_flag`` (terminating bin) after each (7.3.8.1).
* coding_quadtree (7.3.8.4): ``split_cu_flag`` with the neighbour-depth context (9.3.4.2.2),
  inferred 1 where the CU would cross the picture boundary.
* coding_unit (7.3.8.5), always 2Nx2N: ``cu_skip_flag`` (ctx from left/above skip),
  ``merge_idx`` (first bin ctx, TR bypass), ``pred_mode_flag``; intra: ``prev_intra_luma_pred_flag``,
  ``mpm_idx`` / ``rem_intra_luma_pred_mode`` with 3 MPMs (8.4.2), ``intra_chroma_pred_mode``
  (DM + planar/ver/hor/DC with mode-34 substitution, 8.4.3); inter: ``merge_flag``,
  ``merge_idx``, ``inter_pred_idc`` (B), ``ref_idx_lX``, ``mvd_coding`` (7.3.8.9: greater0,
  greater1, EG1 remainder, sign), ``mvp_lX_flag``, ``rqt_root_cbf``.
* transform_tree (7.3.8.8) restricted to what BlockDecisions can express: one level of split.
  A 64x64 CU is four 32x32 TUs (inferred split); an intra 8x8 CU codes one
  ``split_transform_flag`` choosing four 4x4 luma TUs that share the CU's luma mode, with one
  4x4 chroma TU per plane coded after the fourth luma TU; an inter CU of 8..32 with a residual
  codes one ``split_transform_flag`` (when ``inter_tu_split``) choosing four TUs of half its
  size (ctxInc 5 - log2TrafoSize). ``cbf_cb``/
  ``cbf_cr`` per depth, ``cbf_luma`` (inferred 1 for an inter leaf at depth 0 without chroma),
  ``cu_qp_delta_abs``/sign (9.3.3.10) in the first TU with a coded block flag when enabled.
* residual_coding (7.3.8.11): 4x4 sub-blocks in up-right diagonal order, last position
  prefix (contexts, 9.3.4.2.3) + suffix (bypass), ``coded_sub_block_flag`` (9.3.4.2.4),
  ``sig_coeff_flag`` (9.3.4.2.5), ``coeff_abs_level_greater1/2_flag`` with context sets
  (9.3.4.2.6/7), sign bypass, ``coeff_abs_level_remaining`` with the adaptive Rice parameter
  (9.3.3.11, HM's escape binarisation).

QP: ``qp`` of a CU with a coded residual is ``qPY_PRED + CuQpDeltaVal`` (8.6.1, quantisation
group = CU); a CU without coded residual (or with ``cu_qp_delta`` off) has ``QpY = qPY_PRED``.

Canonical decisions (what `parse_frame` produces, so what an encoder must hold for
``decisions == parsed``): every 4x4 unit of a CU repeats its values; ``tu_log2`` is 2 for a
split intra 8x8 CU, ``cu_log2 - 1`` for a split inter CU (which must code a residual), else
``min(cu_log2, 5)``; ``cbf`` is "any non-zero level" of the TU covering the unit (for 4x4 luma
TUs the chroma cbf is that of the CU's 4x4 chroma TU);
intra CUs: ``skip = merge_flag = merge_idx = inter_dir = 0``, ``mv = 0``, ``ref_idx = -1``;
inter CUs: ``intra_mode = intra_mode_c = 1`` (DC), a skipped CU has ``merge_flag = 1``, a
non-merge CU ``merge_idx = 0``, an unused list ``mv = 0, ref_idx = -1``. A merge (non-skip) CU
must carry a residual (H.265 has no rqt_root_cbf for it: no residual means skip).
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from jaxcodec.codec.blocks import BlockDecisions, CoeffPlanes
from jaxcodec.codec.entropy import engine as E
from jaxcodec.codec.entropy import mvpred
from jaxcodec.codec.quant import diagonal_scan
from jaxcodec.errors import BitstreamError

# ---------------------------------------------------------------------------------------------
# context layout and initial values (H.265 Tables 9-5 .. 9-37; initType 0 = I, 1 = P, 2 = B)

CNU = 154
_CTX_TABLE = [
    # name, (I), (P), (B)
    ("SPLIT", (139, 141, 157), (107, 139, 126), (107, 139, 126)),
    ("SKIP", (CNU,) * 3, (197, 185, 201), (197, 185, 201)),
    ("MERGE_FLAG", (CNU,), (110,), (154,)),
    ("MERGE_IDX", (CNU,), (122,), (137,)),
    ("PRED_MODE", (CNU,), (149,), (134,)),
    ("PREV_INTRA", (184,), (154,), (183,)),
    ("CHROMA_MODE", (63,), (152,), (152,)),
    ("TU_SPLIT", (153, 138, 138), (124, 138, 94), (224, 167, 122)),  # split_transform_flag, ctxInc 5 - log2TrafoSize
    ("INTER_DIR", (CNU,) * 5, (95, 79, 63, 31, 31), (95, 79, 63, 31, 31)),
    ("MVD_G0", (CNU,), (140,), (169,)),
    ("MVD_G1", (CNU,), (198,), (198,)),
    ("REF_IDX", (CNU,) * 2, (153, 153), (153, 153)),
    ("MVP_FLAG", (CNU,), (168,), (168,)),
    ("ROOT_CBF", (CNU,), (79,), (79,)),
    ("CBF_LUMA", (111, 141), (153, 111), (153, 111)),
    ("CBF_CHROMA", (94, 138, 182, 154), (149, 107, 167, 154), (149, 92, 167, 154)),
    ("DQP", (154, 154), (154, 154), (154, 154)),
    ("LAST_X", (110, 110, 124, 125, 140, 153, 125, 127, 140, 109, 111, 143, 127, 111, 79, 108, 123, 63),
     (125, 110, 94, 110, 95, 79, 125, 111, 110, 78, 110, 111, 111, 95, 94, 108, 123, 108),
     (125, 110, 124, 110, 95, 94, 125, 111, 111, 79, 125, 126, 111, 111, 79, 108, 123, 93)),
    ("LAST_Y", (110, 110, 124, 125, 140, 153, 125, 127, 140, 109, 111, 143, 127, 111, 79, 108, 123, 63),
     (125, 110, 94, 110, 95, 79, 125, 111, 110, 78, 110, 111, 111, 95, 94, 108, 123, 108),
     (125, 110, 124, 110, 95, 94, 125, 111, 111, 79, 125, 126, 111, 111, 79, 108, 123, 93)),
    ("CSBF", (91, 171, 134, 141), (121, 140, 61, 154), (121, 140, 61, 154)),
    ("SIG",
     (111, 111, 125, 110, 110, 94, 124, 108, 124, 107, 125, 141, 179, 153, 125, 107, 125, 141, 179, 153, 125,
      107, 125, 141, 179, 153, 125,
      140, 139, 182, 182, 152, 136, 152, 136, 153, 136, 139, 111, 136, 139, 111),
     (155, 154, 139, 153, 139, 123, 123, 63, 153, 166, 183, 140, 136, 153, 154, 166, 183, 140, 136, 153, 154,
      166, 183, 140, 136, 153, 154,
      170, 153, 123, 123, 107, 121, 107, 121, 167, 151, 183, 140, 151, 183, 140),
     (170, 154, 139, 153, 139, 123, 123, 63, 124, 166, 183, 140, 136, 153, 154, 166, 183, 140, 136, 153, 154,
      166, 183, 140, 136, 153, 154,
      170, 153, 138, 138, 122, 121, 122, 121, 167, 151, 183, 140, 151, 183, 140)),
    ("GT1",
     (140, 92, 137, 138, 140, 152, 138, 139, 153, 74, 149, 92, 139, 107, 122, 152,
      140, 179, 166, 182, 140, 227, 122, 197),
     (154, 196, 196, 167, 154, 152, 167, 182, 182, 134, 149, 136, 153, 121, 136, 137,
      169, 194, 166, 167, 154, 167, 137, 182),
     (154, 196, 167, 167, 154, 152, 167, 182, 182, 134, 149, 136, 153, 121, 136, 122,
      169, 208, 166, 167, 154, 152, 167, 182)),
    ("GT2", (138, 153, 136, 167, 152, 152), (107, 167, 91, 122, 107, 167), (107, 167, 91, 107, 107, 167)),
]
_offsets = {}
_n = 0
for _name, _i, _p, _b in _CTX_TABLE:
    assert len(_i) == len(_p) == len(_b), _name
    _offsets[_name] = _n
    _n += len(_i)
NUM_CONTEXTS = _n
_INIT_VALUES = np.array([sum((list(row[1 + t]) for row in _CTX_TABLE), []) for t in range(3)], np.int64)

C_SPLIT = _offsets["SPLIT"]
C_SKIP = _offsets["SKIP"]
C_MERGE_FLAG = _offsets["MERGE_FLAG"]
C_MERGE_IDX = _offsets["MERGE_IDX"]
C_PRED_MODE = _offsets["PRED_MODE"]
C_PREV_INTRA = _offsets["PREV_INTRA"]
C_CHROMA_MODE = _offsets["CHROMA_MODE"]
C_TU_SPLIT = _offsets["TU_SPLIT"]
C_INTER_DIR = _offsets["INTER_DIR"]
C_MVD_G0 = _offsets["MVD_G0"]
C_MVD_G1 = _offsets["MVD_G1"]
C_REF_IDX = _offsets["REF_IDX"]
C_MVP_FLAG = _offsets["MVP_FLAG"]
C_ROOT_CBF = _offsets["ROOT_CBF"]
C_CBF_LUMA = _offsets["CBF_LUMA"]
C_CBF_CHROMA = _offsets["CBF_CHROMA"]
C_DQP = _offsets["DQP"]
C_LAST_X = _offsets["LAST_X"]
C_LAST_Y = _offsets["LAST_Y"]
C_CSBF = _offsets["CSBF"]
C_SIG = _offsets["SIG"]
C_GT1 = _offsets["GT1"]
C_GT2 = _offsets["GT2"]

SLICE_I, SLICE_P, SLICE_B = 0, 1, 2
_SLICE_CODES = {"I": SLICE_I, "P": SLICE_P, "B": SLICE_B}


def init_contexts(slice_type: str, qp: int) -> np.ndarray:
    """Initial CABAC context states ``int32 (NUM_CONTEXTS, 2)`` of a slice (H.265 9.3.2.2 with
    initType = 0/1/2 for I/P/B, cabac_init_flag 0)."""
    if slice_type not in _SLICE_CODES:
        raise ValueError(f"slice_type must be 'I', 'P' or 'B', got {slice_type!r}")
    return E.init_states(_INIT_VALUES[_SLICE_CODES[slice_type]], qp)


# ---------------------------------------------------------------------------------------------
# frame parameters


class FrameSyntaxInfo(NamedTuple):
    """What both sides know about a frame before its payload (sequence + frame header).

    Attributes:
      width, height: padded luma size (multiples of ``min_cu_size``).
      slice_type: ``"I"``, ``"P"`` or ``"B"``.
      qp: slice QP (``SliceQpY``).
      poc: picture order count of the frame (AMVP scaling, combined merge candidates).
      refs_l0, refs_l1: POCs of RefPicList0/1 entries (their lengths are the numbers of active
        references; P slices leave ``refs_l1`` empty).
      ctu_size: 16, 32 or 64.
      min_cu_size: 8 (or any power of two up to ``ctu_size``).
      max_tu_size: 32 (the only value the transform tree supports: TU = min(CU, 32)).
      chroma_qp_offset: carried for the reconstruction; the syntax does not use it.
      cu_qp_delta: code ``cu_qp_delta`` per CU (per-CU QP in ``BlockDecisions.qp``).
      intra_tu_split: allow the 4x4-TU split of intra 8x8 CUs (``split_transform_flag``).
      inter_tu_split: allow one transform split of inter CUs of 8..32 (``split_transform_flag``
        at depth 0, max_transform_hierarchy_depth_inter = 1): four TUs of half the CU size.
      max_merge_cand: MaxNumMergeCand, 1..5.
      bit_depth: luma bit depth (QP range ``-6 * (bit_depth - 8) .. 51``).
    """

    width: int
    height: int
    slice_type: str = "I"
    qp: int = 32
    poc: int = 0
    refs_l0: tuple = ()
    refs_l1: tuple = ()
    ctu_size: int = 64
    min_cu_size: int = 8
    max_tu_size: int = 32
    chroma_qp_offset: int = 0
    cu_qp_delta: bool = False
    intra_tu_split: bool = True
    inter_tu_split: bool = False
    max_merge_cand: int = 5
    bit_depth: int = 8

    @property
    def num_ref_l0(self) -> int:
        return len(self.refs_l0)

    @property
    def num_ref_l1(self) -> int:
        return len(self.refs_l1)


# params vector indices
P_W, P_H, P_CTU_LOG2, P_MIN_CU_LOG2, P_SLICE, P_NREF0, P_NREF1, P_QP, P_MAX_MERGE, P_DQP, P_QP_MIN, P_POC, \
    P_TU_SPLIT, P_INTER_TU_SPLIT = range(14)
P_SIZE = 14
MAX_REFS = 16


def _check_info(info: FrameSyntaxInfo) -> None:
    def bad(msg):
        raise ValueError(f"FrameSyntaxInfo: {msg}")

    if info.slice_type not in _SLICE_CODES:
        bad(f"slice_type {info.slice_type!r}")
    if info.ctu_size not in (16, 32, 64):
        bad(f"ctu_size {info.ctu_size} not in 16/32/64")
    if info.min_cu_size < 8 or info.min_cu_size > info.ctu_size or info.min_cu_size & (info.min_cu_size - 1):
        bad(f"min_cu_size {info.min_cu_size}")
    if info.max_tu_size != 32:
        bad(f"max_tu_size {info.max_tu_size} (only 32 is supported)")
    if info.width <= 0 or info.height <= 0 or info.width % info.min_cu_size or info.height % info.min_cu_size:
        bad(f"padded size {info.width}x{info.height} is not a multiple of min_cu_size {info.min_cu_size}")
    if not 1 <= info.max_merge_cand <= 5:
        bad(f"max_merge_cand {info.max_merge_cand}")
    n0, n1 = len(info.refs_l0), len(info.refs_l1)
    if info.slice_type == "I" and (n0 or n1):
        bad("I slice with reference lists")
    if info.slice_type == "P" and (not 1 <= n0 <= MAX_REFS or n1):
        bad(f"P slice needs 1..{MAX_REFS} L0 references and no L1, got {n0}/{n1}")
    if info.slice_type == "B" and not (1 <= n0 <= MAX_REFS and 1 <= n1 <= MAX_REFS):
        bad(f"B slice needs 1..{MAX_REFS} references per list, got {n0}/{n1}")
    if info.poc in tuple(info.refs_l0) + tuple(info.refs_l1):
        bad("a reference has the POC of the current picture")


def _params(info: FrameSyntaxInfo):
    _check_info(info)
    p = np.zeros(P_SIZE, np.int64)
    p[P_W], p[P_H] = info.width, info.height
    p[P_CTU_LOG2] = info.ctu_size.bit_length() - 1
    p[P_MIN_CU_LOG2] = info.min_cu_size.bit_length() - 1
    p[P_SLICE] = _SLICE_CODES[info.slice_type]
    p[P_NREF0], p[P_NREF1] = len(info.refs_l0), len(info.refs_l1)
    p[P_QP] = info.qp
    p[P_MAX_MERGE] = info.max_merge_cand
    p[P_DQP] = int(bool(info.cu_qp_delta))
    p[P_QP_MIN] = -6 * (info.bit_depth - 8)
    p[P_POC] = info.poc
    p[P_TU_SPLIT] = int(bool(info.intra_tu_split))
    p[P_INTER_TU_SPLIT] = int(bool(info.inter_tu_split))
    ref_poc = np.zeros((2, MAX_REFS), np.int64)
    ref_poc[0, : len(info.refs_l0)] = info.refs_l0
    ref_poc[1, : len(info.refs_l1)] = info.refs_l1
    return p, ref_poc


# ---------------------------------------------------------------------------------------------
# scan tables (6.5.3 up-right diagonal; 6.5.4-style sub-block scan) and residual context tables

def _scan_tables():
    sx = np.zeros((6, 64), np.int64)
    sy = np.zeros((6, 64), np.int64)
    for log2 in range(2, 6):
        nsb = 1 << (log2 - 2)
        order = diagonal_scan(log2)  # raster indices, sub-block major
        for i in range(nsb * nsb):
            first = int(order[i * 16])  # first coefficient of sub-block i is its top-left
            sy[log2, i], sx[log2, i] = (first // (1 << log2)) >> 2, (first % (1 << log2)) >> 2
    d4 = diagonal_scan(2)
    return sx, sy, (d4 % 4).astype(np.int64), (d4 // 4).astype(np.int64)


_SB_X, _SB_Y, _S4_X, _S4_Y = _scan_tables()
_CTX_IDX_MAP = np.array([0, 1, 4, 5, 2, 3, 4, 5, 6, 6, 8, 8, 7, 7, 8, 8], np.int64)  # 9.3.4.2.5 (last unused)
_GROUP_IDX = np.array([0, 1, 2, 3, 4, 4, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7] + [8] * 8 + [9] * 8, np.int64)
_MIN_IN_GROUP = np.array([0, 1, 2, 3, 4, 6, 8, 12, 16, 24], np.int64)
_CHROMA_CANDS = np.array([0, 26, 10, 1], np.int64)  # intra_chroma_pred_mode 0..3 (8.4.3)
MAX_LEVEL = 32768  # |level| bound (CoeffMin/Max of H.265 7.4.9.11 for 8..10-bit)
MODE_INTRA, MODE_INTER = 0, 1

# error codes (parser: corrupt stream; writer: inconsistent decisions)
(ERR_NONE, ERR_TRUNCATED, ERR_END_FLAG, ERR_TRAILING, ERR_LEVEL, ERR_ESCAPE, ERR_QP, ERR_CU_SHAPE, ERR_CHROMA_MODE,
 ERR_MERGE, ERR_INTER, ERR_RESIDUAL, ERR_QP_MISMATCH, ERR_LEVEL_RANGE, ERR_INTRA_MODE) = range(15)
_ERR_TEXT = {
    ERR_TRUNCATED: "payload truncated (arithmetic decoder read past its end)",
    ERR_END_FLAG: "end_of_slice_segment_flag inconsistent with the picture size",
    ERR_TRAILING: "slice does not end where its data ends (bad stop bit or trailing bytes)",
    ERR_LEVEL: "coefficient level out of range",
    ERR_ESCAPE: "Exp-Golomb / Rice escape code too long",
    ERR_QP: "cu_qp_delta gives a QP out of range",
    ERR_CU_SHAPE: "cu_log2 does not describe a valid quadtree CU",
    ERR_CHROMA_MODE: "intra_mode_c is not derivable from the luma mode (DM, 0/26/10/1 or 34 substitute)",
    ERR_MERGE: "merge CU motion differs from merge candidate merge_idx (or merge_idx out of range)",
    ERR_INTER: "inter_dir / ref_idx invalid for the slice type and reference lists",
    ERR_RESIDUAL: "skip CU with non-zero levels, or merge (non-skip) CU without residual",
    ERR_QP_MISMATCH: "CU qp differs from the predicted QP although no cu_qp_delta can be coded",
    ERR_LEVEL_RANGE: "|level| above 32767",
    ERR_INTRA_MODE: "intra mode out of 0..34",
}


class _Grid(NamedTuple):
    """BlockDecisions arrays as numba sees them (numpy, blocks.py dtypes)."""

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


class _Scratch(NamedTuple):
    params: np.ndarray  # int64 (P_SIZE,)
    ref_poc: np.ndarray  # int64 (2, MAX_REFS)
    zidx: np.ndarray  # int32 (H4, W4)
    cmv: np.ndarray  # int64 (5, 2, 2) merge candidates
    cref: np.ndarray  # int64 (5, 2)
    cdir: np.ndarray  # int64 (5,)
    amvp: np.ndarray  # int64 (2, 2)
    levels: np.ndarray  # int64 (1024,) one TU in scan order
    csbf: np.ndarray  # int64 (9, 9) coded_sub_block_flag (+1 border)
    sigpos: np.ndarray  # int64 (16,)
    state: np.ndarray  # int64 (8,): [0] prev QpY, [1] c1 carry-over, [2] err x, [3] err y, [4] dqp coded


_DTYPES = dict(cu_log2=np.int8, tu_log2=np.int8, pred_mode=np.int8, skip=np.int8, merge_flag=np.int8,
               merge_idx=np.int8, intra_mode=np.int8, intra_mode_c=np.int8, inter_dir=np.int8, mv=np.int16,
               ref_idx=np.int8, qp=np.int8, cbf=np.int8)


def _grid_from(decisions: BlockDecisions, h4: int, w4: int) -> _Grid:
    out = {}
    for name, dt in _DTYPES.items():
        a = np.ascontiguousarray(np.asarray(getattr(decisions, name)), dt)
        want = (h4, w4) + {"mv": (2, 2), "ref_idx": (2,), "cbf": (3,)}.get(name, ())
        if a.shape != want:
            raise ValueError(f"decisions.{name} has shape {a.shape}, expected {want}")
        out[name] = a
    return _Grid(**out)


def _new_grid(h4: int, w4: int, qp: int) -> _Grid:
    z = lambda *extra: np.zeros((h4, w4) + extra, np.int8)  # noqa: E731
    return _Grid(cu_log2=z(), tu_log2=z(), pred_mode=z(), skip=z(), merge_flag=z(), merge_idx=z(),
                 intra_mode=z() + 1, intra_mode_c=z() + 1, inter_dir=z(), mv=np.zeros((h4, w4, 2, 2), np.int16),
                 ref_idx=z(2) - 1, qp=np.full((h4, w4), qp, np.int8), cbf=z(3))


_ZIDX_CACHE: dict = {}


def _zidx(h4: int, w4: int, ctu_log2: int) -> np.ndarray:
    key = (h4, w4, ctu_log2)
    z = _ZIDX_CACHE.get(key)  # a pure function of its key: a read-only memo, safe across threads
    if z is None:
        z = mvpred.zscan_order(h4, w4, ctu_log2)
        z.setflags(write=False)
        _ZIDX_CACHE[key] = z
    return z


def _scratch(info: FrameSyntaxInfo) -> _Scratch:
    params, ref_poc = _params(info)
    return _Scratch(params=params, ref_poc=ref_poc,
                    zidx=_zidx(info.height // 4, info.width // 4, int(params[P_CTU_LOG2])),
                    cmv=np.zeros((5, 2, 2), np.int64), cref=np.zeros((5, 2), np.int64), cdir=np.zeros(5, np.int64),
                    amvp=np.zeros((2, 2), np.int64), levels=np.zeros(1024, np.int64),
                    csbf=np.zeros((9, 9), np.int64), sigpos=np.zeros(16, np.int64), state=np.zeros(8, np.int64))


# ---------------------------------------------------------------------------------------------
# shared derivations (writer and parser)

_J = dict(cache=True, nogil=True)


def _sig_ctx(log2, chroma, xc, yc, prev_csbf):
    """sig_coeff_flag ctxInc, H.265 9.3.4.2.5 (scanIdx 0, no transform skip)."""
    if log2 == 2:
        sig = _CTX_IDX_MAP[(yc << 2) + xc]
    elif xc + yc == 0:
        sig = 0
    else:
        xp = xc & 3
        yp = yc & 3
        if prev_csbf == 0:
            sig = 2 if xp + yp == 0 else (1 if xp + yp < 3 else 0)
        elif prev_csbf == 1:
            sig = 2 if yp == 0 else (1 if yp == 1 else 0)
        elif prev_csbf == 2:
            sig = 2 if xp == 0 else (1 if xp == 1 else 0)
        else:
            sig = 2
        if chroma == 0 and ((xc >> 2) | (yc >> 2)) != 0:
            sig += 3
        if log2 == 3:
            sig += 9
        else:
            sig += 12 if chroma else 21
    return C_SIG + sig + (27 if chroma else 0)


def _sig_table():
    """``_SIG_TAB[chroma, log2, prev_csbf, first_sub_block, n]`` = `_sig_ctx` of scan position
    ``n`` of a sub-block: the context depends on the sub-block only through "is it (0, 0)"."""
    t = np.zeros((2, 6, 4, 2, 16), np.int64)
    for chroma in range(2):
        for log2 in range(2, 6):
            for prev in range(4):
                for first in range(2):
                    xs = 0 if first else 1
                    if log2 == 2 and not first:
                        continue
                    for n in range(16):
                        t[chroma, log2, prev, first, n] = _sig_ctx(
                            log2, chroma, 4 * xs + int(_S4_X[n]), int(_S4_Y[n]), prev)
    return t


_SIG_TAB = _sig_table()


@numba.njit(**_J)
def _mpm(g, x4, y4, ctu_log2):
    """Three most probable luma modes of the CU at (x4, y4), H.265 8.4.2 (sorted ascending is
    not applied here)."""
    a = 1
    if x4 > 0 and g.pred_mode[y4, x4 - 1] == MODE_INTRA:
        a = g.intra_mode[y4, x4 - 1]
    b = 1
    # above: only inside the current CTU row (yPb - 1 < ((yPb >> CtbLog2SizeY) << CtbLog2SizeY) -> DC)
    if y4 > 0 and ((y4 * 4 - 1) >> ctu_log2) == ((y4 * 4) >> ctu_log2) and g.pred_mode[y4 - 1, x4] == MODE_INTRA:
        b = g.intra_mode[y4 - 1, x4]
    m = np.empty(3, np.int64)
    if a == b:
        if a < 2:
            m[0], m[1], m[2] = 0, 1, 26
        else:
            m[0] = a
            m[1] = 2 + ((a + 29) % 32)
            m[2] = 2 + ((a - 2 + 1) % 32)
    else:
        m[0], m[1] = a, b
        if a != 0 and b != 0:
            m[2] = 0
        elif a != 1 and b != 1:
            m[2] = 1
        else:
            m[2] = 26
    return m


@numba.njit(**_J)
def _qp_pred(g, x4, y4, ctu_log2, prev_qp):
    """qPY_PRED of 8.6.1 with quantisation group = CU: mean of left and above QpY when inside
    the current CTU, else the previous CU's QpY."""
    n = ctu_log2 - 2
    qa = prev_qp
    if x4 > 0 and ((x4 - 1) >> n) == (x4 >> n):
        qa = g.qp[y4, x4 - 1]
    qb = prev_qp
    if y4 > 0 and ((y4 - 1) >> n) == (y4 >> n):
        qb = g.qp[y4 - 1, x4]
    return (qa + qb + 1) >> 1


@numba.njit(**_J)
def _wrap16(v):
    """v modulo 2^16 into -32768..32767 (8.5.3.2.1 eq. 8-272..8-275: uLX wraps, mvLX is signed)."""
    return ((v + 32768) & 0xFFFF) - 32768


@numba.njit(**_J)
def _eg_len(v, k):
    """Bins of the k-th order Exp-Golomb code of v >= 0 (9.3.3.3)."""
    n = 0
    while v >= (1 << k):
        v -= 1 << k
        k += 1
        n += 1
    return n + 1 + k


@numba.njit(**_J)
def _mvd_len(d):
    a = abs(d)
    if a == 0:
        return 1
    if a == 1:
        return 3
    return 3 + _eg_len(a - 2, 1)


@numba.njit(**_J)
def _set_cu(g, x4, y4, n4, log2, tu_log2, mode, skip, mflag, midx, imode, imode_c, idir, mv, ref, qp):
    for y in range(y4, y4 + n4):
        for x in range(x4, x4 + n4):
            g.cu_log2[y, x] = log2
            g.tu_log2[y, x] = tu_log2
            g.pred_mode[y, x] = mode
            g.skip[y, x] = skip
            g.merge_flag[y, x] = mflag
            g.merge_idx[y, x] = midx
            g.intra_mode[y, x] = imode
            g.intra_mode_c[y, x] = imode_c
            g.inter_dir[y, x] = idir
            for lst in range(2):
                g.ref_idx[y, x, lst] = ref[lst]
                g.mv[y, x, lst, 0] = mv[lst, 0]
                g.mv[y, x, lst, 1] = mv[lst, 1]
            g.qp[y, x] = qp


# ---------------------------------------------------------------------------------------------
# writer (encode or count, chosen by the writer mode)


@numba.njit(**_J)
def _w_eg(w, buf, v, k):
    """k-th order Exp-Golomb, bypass (9.3.3.3)."""
    while v >= (1 << k):
        E.put_bypass(w, buf, 1)
        v -= 1 << k
        k += 1
    E.put_bypass(w, buf, 0)
    if k > 0:
        E.put_bypass_bins(w, buf, v, k)


@numba.njit(**_J)
def _w_remaining(w, buf, v, rice):
    """coeff_abs_level_remaining (9.3.3.11; HM escape with COEF_REMAIN_BIN_REDUCTION 3)."""
    if v < (3 << rice):
        length = v >> rice
        E.put_bypass_bins(w, buf, (1 << (length + 1)) - 2, length + 1)
        if rice > 0:
            E.put_bypass_bins(w, buf, v, rice)
    else:
        length = rice
        v -= 3 << rice
        while v >= (1 << length):
            v -= 1 << length
            length += 1
        ones = 3 + length - rice
        for _ in range(ones):
            E.put_bypass(w, buf, 1)
        E.put_bypass(w, buf, 0)
        E.put_bypass_bins(w, buf, v, length)


@numba.njit(**_J)
def _w_last(w, ctx, buf, base, pos, log2, chroma):
    g = _GROUP_IDX[pos]
    if chroma:
        off, shift = 15, log2 - 2
    else:
        off, shift = 3 * (log2 - 2) + ((log2 - 1) >> 2), (log2 + 1) >> 2
    cmax = (log2 << 1) - 1
    for b in range(g):
        E.put_bin(w, ctx, buf, base + off + (b >> shift), 1)
    if g < cmax:
        E.put_bin(w, ctx, buf, base + off + (g >> shift), 0)


@numba.njit(**_J)
def _w_residual(w, ctx, buf, plane, px, py, log2, chroma, s):
    """residual_coding (7.3.8.11) of the TU at plane position (px, py); levels must not be all
    zero. Returns an error code."""
    nsb = 1 << (log2 - 2)
    lv = s.levels
    last = -1
    for i in range(nsb * nsb):
        bx = px + 4 * _SB_X[log2, i]
        by = py + 4 * _SB_Y[log2, i]
        for j in range(16):
            v = np.int64(plane[by + _S4_Y[j], bx + _S4_X[j]])
            if v != 0:
                if v > 32767 or v < -32767:
                    return ERR_LEVEL_RANGE
                last = i * 16 + j
            lv[i * 16 + j] = v
    lsb = last >> 4
    lpos = last & 15
    lx = 4 * _SB_X[log2, lsb] + _S4_X[lpos]
    ly = 4 * _SB_Y[log2, lsb] + _S4_Y[lpos]
    _w_last(w, ctx, buf, C_LAST_X, lx, log2, chroma)
    _w_last(w, ctx, buf, C_LAST_Y, ly, log2, chroma)
    gx = _GROUP_IDX[lx]
    if gx > 3:
        E.put_bypass_bins(w, buf, lx - _MIN_IN_GROUP[gx], (gx >> 1) - 1)
    gy = _GROUP_IDX[ly]
    if gy > 3:
        E.put_bypass_bins(w, buf, ly - _MIN_IN_GROUP[gy], (gy >> 1) - 1)
    csbf = s.csbf
    for yy in range(nsb + 1):
        for xx in range(nsb + 1):
            csbf[yy, xx] = 0
    sigpos = s.sigpos
    c1_carry = 1  # greater1Ctx state at the end of the previous coded sub-block (1: none yet)
    gt1_base = C_GT1 + (16 if chroma else 0)
    gt2_base = C_GT2 + (4 if chroma else 0)
    for i in range(lsb, -1, -1):
        xs = _SB_X[log2, i]
        ys = _SB_Y[log2, i]
        base = i * 16
        if 0 < i < lsb:
            flag = 0
            for j in range(16):
                if lv[base + j] != 0:
                    flag = 1
                    break
            c = min(csbf[ys, xs + 1] + csbf[ys + 1, xs], 1) + (2 if chroma else 0)
            E.put_bin(w, ctx, buf, C_CSBF + c, flag)
            csbf[ys, xs] = flag
            if flag == 0:
                continue
        else:
            csbf[ys, xs] = 1
        prev = csbf[ys, xs + 1] + 2 * csbf[ys + 1, xs]
        sig_tab = _SIG_TAB[chroma, log2, prev, 1 if i == 0 else 0]
        nsig = 0
        start = 15
        if i == lsb:
            sigpos[0] = lpos
            nsig = 1
            start = lpos - 1
        infer_dc = 0 < i < lsb
        for n in range(start, -1, -1):
            v = lv[base + n]
            if n == 0 and infer_dc:
                sigpos[nsig] = 0
                nsig += 1
                continue
            sig = 1 if v != 0 else 0
            E.put_bin_inline(w, ctx, buf, sig_tab[n], sig)
            if sig:
                sigpos[nsig] = n
                nsig += 1
                infer_dc = False
        ctx_set = 0 if (i == 0 or chroma) else 2
        if c1_carry == 0:
            ctx_set += 1
        c1 = 1
        first_g1 = -1
        for k in range(min(nsig, 8)):
            g1 = 1 if abs(lv[base + sigpos[k]]) > 1 else 0
            E.put_bin_inline(w, ctx, buf, gt1_base + 4 * ctx_set + c1, g1)
            if g1:
                c1 = 0
                if first_g1 < 0:
                    first_g1 = k
            elif 0 < c1 < 3:
                c1 += 1
        c1_carry = c1
        if first_g1 >= 0:
            E.put_bin(w, ctx, buf, gt2_base + ctx_set, 1 if abs(lv[base + sigpos[first_g1]]) > 2 else 0)
        signs = 0
        for k in range(nsig):
            signs = (signs << 1) | (1 if lv[base + sigpos[k]] < 0 else 0)
        E.put_bypass_bins(w, buf, signs, nsig)
        rice = 0
        for k in range(nsig):
            a = abs(lv[base + sigpos[k]])
            thr = (3 if k == first_g1 else 2) if k < 8 else 1
            if a >= thr:
                _w_remaining(w, buf, a - thr, rice)
                if a > 3 * (1 << rice):
                    rice = min(rice + 1, 4)
    return ERR_NONE


@numba.njit(**_J)
def _any_nonzero(plane, px, py, n):
    for y in range(py, py + n):
        for x in range(px, px + n):
            if plane[y, x] != 0:
                return 1
    return 0


@numba.njit(**_J)
def _w_dqp(w, ctx, buf, g, s, x4, y4, qp_pred):
    """cu_qp_delta_abs / sign (9.3.3.10) once per CU, in its first TU with a coded flag."""
    if s.params[P_DQP] == 0 or s.state[4] != 0:
        return
    s.state[4] = 1
    delta = np.int64(g.qp[y4, x4]) - qp_pred
    a = abs(delta)
    prefix = min(a, 5)
    for b in range(prefix):
        E.put_bin(w, ctx, buf, C_DQP + (0 if b == 0 else 1), 1)
    if prefix < 5:
        E.put_bin(w, ctx, buf, C_DQP + (0 if prefix == 0 else 1), 0)
    else:
        _w_eg(w, buf, a - 5, 0)
    if a > 0:
        E.put_bypass(w, buf, 1 if delta < 0 else 0)


@numba.njit(**_J)
def _split_coded(s, log2, intra):
    """Whether split_transform_flag is coded at depth 0 of a CU (7.3.8.8): intra 8x8 CUs (4x4
    TUs) and inter CUs of 8..32 (one level, max_transform_hierarchy_depth_inter = 1), each
    when its tool is on; a 64x64 CU's split into 32x32 TUs is inferred."""
    if intra:
        return log2 == 3 and s.params[P_TU_SPLIT] != 0
    return log2 <= 5 and s.params[P_INTER_TU_SPLIT] != 0


@numba.njit(**_J)
def _w_transform_tree(w, ctx, buf, g, py_, pu, pv, s, x4, y4, log2, intra, qp_pred):
    """transform_tree / transform_unit (7.3.8.8 / 7.3.8.10) of a CU, see module doc."""
    n = 1 << log2
    x0, y0 = 4 * x4, 4 * y4
    split = log2 > 5
    tu = g.tu_log2[y4, x4]
    if _split_coded(s, log2, intra):
        split = tu == log2 - 1
        if not split and tu != log2:
            return ERR_CU_SHAPE
        E.put_bin(w, ctx, buf, C_TU_SPLIT + 5 - log2, 1 if split else 0)
    elif tu != min(log2, 5):
        return ERR_CU_SHAPE
    cb0 = _any_nonzero(pu, x0 >> 1, y0 >> 1, n >> 1)
    cr0 = _any_nonzero(pv, x0 >> 1, y0 >> 1, n >> 1)
    E.put_bin(w, ctx, buf, C_CBF_CHROMA + 0, cb0)
    E.put_bin(w, ctx, buf, C_CBF_CHROMA + 0, cr0)
    if not split:
        yl = _any_nonzero(py_, x0, y0, n)
        if intra or cb0 or cr0:
            E.put_bin(w, ctx, buf, C_CBF_LUMA + 1, yl)
        elif yl == 0:
            return ERR_RESIDUAL  # inter leaf at depth 0 without chroma: cbf_luma inferred 1
        if yl or cb0 or cr0:
            _w_dqp(w, ctx, buf, g, s, x4, y4, qp_pred)
        if yl:
            e = _w_residual(w, ctx, buf, py_, x0, y0, log2, 0, s)
            if e:
                return e
        if cb0:
            e = _w_residual(w, ctx, buf, pu, x0 >> 1, y0 >> 1, log2 - 1, 1, s)
            if e:
                return e
        if cr0:
            e = _w_residual(w, ctx, buf, pv, x0 >> 1, y0 >> 1, log2 - 1, 1, s)
            if e:
                return e
        return ERR_NONE
    h = n >> 1
    cl = log2 - 1
    for k in range(4):
        cx = x0 + (k & 1) * h
        cy = y0 + (k >> 1) * h
        cb = cb0
        cr = cr0
        if cl > 2:
            cb = _any_nonzero(pu, cx >> 1, cy >> 1, h >> 1) if cb0 else 0
            cr = _any_nonzero(pv, cx >> 1, cy >> 1, h >> 1) if cr0 else 0
            if cb0:
                E.put_bin(w, ctx, buf, C_CBF_CHROMA + 1, cb)
            if cr0:
                E.put_bin(w, ctx, buf, C_CBF_CHROMA + 1, cr)
        yl = _any_nonzero(py_, cx, cy, h)
        E.put_bin(w, ctx, buf, C_CBF_LUMA + 0, yl)
        if yl or cb or cr:
            _w_dqp(w, ctx, buf, g, s, x4, y4, qp_pred)
        if yl:
            e = _w_residual(w, ctx, buf, py_, cx, cy, cl, 0, s)
            if e:
                return e
        if cl > 2:
            if cb:
                e = _w_residual(w, ctx, buf, pu, cx >> 1, cy >> 1, cl - 1, 1, s)
                if e:
                    return e
            if cr:
                e = _w_residual(w, ctx, buf, pv, cx >> 1, cy >> 1, cl - 1, 1, s)
                if e:
                    return e
        elif k == 3:
            if cb0:
                e = _w_residual(w, ctx, buf, pu, x0 >> 1, y0 >> 1, 2, 1, s)
                if e:
                    return e
            if cr0:
                e = _w_residual(w, ctx, buf, pv, x0 >> 1, y0 >> 1, 2, 1, s)
                if e:
                    return e
    return ERR_NONE


@numba.njit(**_J)
def _w_mvd(w, ctx, buf, dx, dy):
    """mvd_coding (7.3.8.9, binarisation 9.3.3.x: greater0/greater1 ctx, EG1 bypass, sign)."""
    ax = abs(dx)
    ay = abs(dy)
    E.put_bin(w, ctx, buf, C_MVD_G0, 1 if ax > 0 else 0)
    E.put_bin(w, ctx, buf, C_MVD_G0, 1 if ay > 0 else 0)
    if ax > 0:
        E.put_bin(w, ctx, buf, C_MVD_G1, 1 if ax > 1 else 0)
    if ay > 0:
        E.put_bin(w, ctx, buf, C_MVD_G1, 1 if ay > 1 else 0)
    if ax > 0:
        if ax > 1:
            _w_eg(w, buf, ax - 2, 1)
        E.put_bypass(w, buf, 1 if dx < 0 else 0)
    if ay > 0:
        if ay > 1:
            _w_eg(w, buf, ay - 2, 1)
        E.put_bypass(w, buf, 1 if dy < 0 else 0)


@numba.njit(**_J)
def _same_as_candidate(g, s, x4, y4, k):
    if g.inter_dir[y4, x4] != s.cdir[k]:
        return False
    for lst in range(2):
        if s.cref[k, lst] >= 0 or g.ref_idx[y4, x4, lst] >= 0:
            if g.ref_idx[y4, x4, lst] != s.cref[k, lst]:
                return False
            if g.mv[y4, x4, lst, 0] != s.cmv[k, lst, 0] or g.mv[y4, x4, lst, 1] != s.cmv[k, lst, 1]:
                return False
    return True


@numba.njit(**_J)
def _w_merge_idx(w, ctx, buf, g, s, x4, y4, n4):
    p = s.params
    mx = p[P_MAX_MERGE]
    mvpred.merge_candidates(x4, y4, n4, g.mv, g.ref_idx, g.inter_dir, g.pred_mode, s.zidx, s.ref_poc, p[P_NREF0],
                            p[P_NREF1], p[P_SLICE] == SLICE_B, mx, s.cmv, s.cref, s.cdir)
    idx = np.int64(g.merge_idx[y4, x4])
    if idx < 0 or idx >= mx or not _same_as_candidate(g, s, x4, y4, idx):
        return ERR_MERGE
    if mx > 1:
        E.put_bin(w, ctx, buf, C_MERGE_IDX, 1 if idx > 0 else 0)
        for b in range(1, mx - 1):
            if b > idx:
                break
            E.put_bypass(w, buf, 1 if idx > b else 0)
    return ERR_NONE


@numba.njit(**_J)
def _w_cu(w, ctx, buf, g, py_, pu, pv, s, x4, y4, log2):
    """coding_unit (7.3.8.5) at 4x4 position (x4, y4); returns an error code."""
    p = s.params
    n4 = 1 << (log2 - 2)
    n = 1 << log2
    x0, y0 = 4 * x4, 4 * y4
    ctu_log2 = p[P_CTU_LOG2]
    slice_t = p[P_SLICE]
    # the decisions must describe this CU uniformly
    for y in range(y4, y4 + n4):
        for x in range(x4, x4 + n4):
            if (g.cu_log2[y, x] != log2 or g.pred_mode[y, x] != g.pred_mode[y4, x4]
                    or g.skip[y, x] != g.skip[y4, x4]):
                return ERR_CU_SHAPE
    qp_pred = _qp_pred(g, x4, y4, ctu_log2, s.state[0])
    s.state[4] = 0
    intra = g.pred_mode[y4, x4] == MODE_INTRA
    skip = g.skip[y4, x4] != 0 and not intra
    if slice_t != SLICE_I:
        c = 0
        if x4 > 0 and g.skip[y4, x4 - 1]:
            c += 1
        if y4 > 0 and g.skip[y4 - 1, x4]:
            c += 1
        E.put_bin(w, ctx, buf, C_SKIP + c, 1 if skip else 0)
    elif not intra:
        return ERR_INTER
    coded = 0
    if skip:
        e = _w_merge_idx(w, ctx, buf, g, s, x4, y4, n4)
        if e:
            return e
        if _any_nonzero(py_, x0, y0, n) or _any_nonzero(pu, x0 >> 1, y0 >> 1, n >> 1) or _any_nonzero(
                pv, x0 >> 1, y0 >> 1, n >> 1):
            return ERR_RESIDUAL
    else:
        if slice_t != SLICE_I:
            E.put_bin(w, ctx, buf, C_PRED_MODE, 1 if intra else 0)
        if intra:
            mode = np.int64(g.intra_mode[y4, x4])
            if mode < 0 or mode > 34:
                return ERR_INTRA_MODE
            m = _mpm(g, x4, y4, ctu_log2)
            idx = -1
            for k in range(3):
                if m[k] == mode:
                    idx = k
            E.put_bin(w, ctx, buf, C_PREV_INTRA, 1 if idx >= 0 else 0)
            if idx >= 0:
                E.put_bypass(w, buf, 1 if idx > 0 else 0)
                if idx > 0:
                    E.put_bypass(w, buf, 1 if idx > 1 else 0)
            else:
                rem = mode
                for k in range(3):
                    if m[k] < mode:
                        rem -= 1
                E.put_bypass_bins(w, buf, rem, 5)
            mc = np.int64(g.intra_mode_c[y4, x4])
            code = -1
            if mc == mode:
                code = 4
            else:
                for k in range(4):
                    if _CHROMA_CANDS[k] == mc or (mc == 34 and _CHROMA_CANDS[k] == mode):
                        code = k
            if code < 0:
                return ERR_CHROMA_MODE
            E.put_bin(w, ctx, buf, C_CHROMA_MODE, 0 if code == 4 else 1)
            if code < 4:
                E.put_bypass_bins(w, buf, code, 2)
            coded = 1
        else:
            merge = g.merge_flag[y4, x4] != 0
            E.put_bin(w, ctx, buf, C_MERGE_FLAG, 1 if merge else 0)
            if merge:
                e = _w_merge_idx(w, ctx, buf, g, s, x4, y4, n4)
                if e:
                    return e
                coded = 1
            else:
                d = np.int64(g.inter_dir[y4, x4])
                if d < 1 or d > 3 or (slice_t == SLICE_P and d != 1):
                    return ERR_INTER
                if slice_t == SLICE_B:
                    E.put_bin(w, ctx, buf, C_INTER_DIR + (ctu_log2 - log2), 1 if d == 3 else 0)
                    if d != 3:
                        E.put_bin(w, ctx, buf, C_INTER_DIR + 4, 1 if d == 2 else 0)
                for lst in range(2):
                    if not (d >> lst) & 1:
                        if g.ref_idx[y4, x4, lst] != -1:
                            return ERR_INTER
                        continue
                    nref = p[P_NREF0 + lst]
                    r = np.int64(g.ref_idx[y4, x4, lst])
                    if r < 0 or r >= nref:
                        return ERR_INTER
                    if nref > 1:
                        for b in range(nref - 1):
                            bit = 1 if r > b else 0
                            if b < 2:
                                E.put_bin(w, ctx, buf, C_REF_IDX + b, bit)
                            else:
                                E.put_bypass(w, buf, bit)
                            if not bit:
                                break
                    mvpred.amvp_candidates(x4, y4, n4, lst, r, g.mv, g.ref_idx, g.pred_mode, s.zidx, s.ref_poc,
                                           p[P_POC], s.amvp)
                    mx = np.int64(g.mv[y4, x4, lst, 0])
                    my = np.int64(g.mv[y4, x4, lst, 1])
                    best = 0
                    best_len = 1 << 30
                    for k in range(2):
                        ln = _mvd_len(_wrap16(mx - s.amvp[k, 0])) + _mvd_len(_wrap16(my - s.amvp[k, 1]))
                        if ln < best_len:
                            best, best_len = k, ln
                    _w_mvd(w, ctx, buf, _wrap16(mx - s.amvp[best, 0]), _wrap16(my - s.amvp[best, 1]))
                    E.put_bin(w, ctx, buf, C_MVP_FLAG, best)
                yl = _any_nonzero(py_, x0, y0, n)
                cb = _any_nonzero(pu, x0 >> 1, y0 >> 1, n >> 1)
                cr = _any_nonzero(pv, x0 >> 1, y0 >> 1, n >> 1)
                coded = 1 if (yl or cb or cr) else 0
                E.put_bin(w, ctx, buf, C_ROOT_CBF, coded)
        if coded:
            e = _w_transform_tree(w, ctx, buf, g, py_, pu, pv, s, x4, y4, log2, intra, qp_pred)
            if e:
                return e
    qp = np.int64(g.qp[y4, x4])
    if s.state[4] == 0 and qp != qp_pred:
        return ERR_QP_MISMATCH
    if qp < p[P_QP_MIN] or qp > 51:
        return ERR_QP
    s.state[0] = qp
    return ERR_NONE


@numba.njit(**_J)
def _w_quadtree(w, ctx, buf, g, py_, pu, pv, s, x0, y0, log2_root):
    """coding_quadtree (7.3.8.4) from luma position (x0, y0) with an explicit stack."""
    p = s.params
    W, H = p[P_W], p[P_H]
    min_log2 = p[P_MIN_CU_LOG2]
    ctu_log2 = p[P_CTU_LOG2]
    stack = np.empty((64, 3), np.int64)
    top = 0
    stack[0, 0], stack[0, 1], stack[0, 2] = x0, y0, log2_root
    top = 1
    while top > 0:
        top -= 1
        x, y, log2 = stack[top, 0], stack[top, 1], stack[top, 2]
        if x >= W or y >= H:
            continue
        x4, y4 = x >> 2, y >> 2
        n = 1 << log2
        cu = g.cu_log2[y4, x4]
        if cu > log2 or cu < min_log2:
            s.state[2], s.state[3] = x, y
            return ERR_CU_SHAPE
        split = cu < log2
        if x + n <= W and y + n <= H:
            if log2 > min_log2:
                c = 0
                if x4 > 0 and g.cu_log2[y4, x4 - 1] < log2:
                    c += 1
                if y4 > 0 and g.cu_log2[y4 - 1, x4] < log2:
                    c += 1
                E.put_bin(w, ctx, buf, C_SPLIT + c, 1 if split else 0)
        elif not split:
            s.state[2], s.state[3] = x, y
            return ERR_CU_SHAPE  # a CU crossing the picture boundary
        if split:
            h = n >> 1
            for k in range(3, -1, -1):
                stack[top, 0] = x + (k & 1) * h
                stack[top, 1] = y + (k >> 1) * h
                stack[top, 2] = log2 - 1
                top += 1
        else:
            e = _w_cu(w, ctx, buf, g, py_, pu, pv, s, x4, y4, log2)
            if e:
                s.state[2], s.state[3] = x, y
                return e
    return ERR_NONE


@numba.njit(**_J)
def _write_frame(w, ctx, buf, g, py_, pu, pv, s):
    p = s.params
    ctu_log2 = p[P_CTU_LOG2]
    ctu = 1 << ctu_log2
    W, H = p[P_W], p[P_H]
    nx = (W + ctu - 1) >> ctu_log2
    ny = (H + ctu - 1) >> ctu_log2
    s.state[0] = p[P_QP]
    for cy in range(ny):
        for cx in range(nx):
            buf = E.ensure_capacity(w, buf, 1 << 17)  # worst case of one 64x64 CTU < 64 KiB
            e = _w_quadtree(w, ctx, buf, g, py_, pu, pv, s, cx * ctu, cy * ctu, ctu_log2)
            if e:
                return buf, e
            E.put_terminate(w, buf, 1 if (cy == ny - 1 and cx == nx - 1) else 0)
    buf = E.ensure_capacity(w, buf, 64)
    E.finish(w, buf)
    return buf, ERR_NONE


# ---------------------------------------------------------------------------------------------
# parser


@numba.njit(**_J)
def _p_eg(r, data, k):
    """k-th order Exp-Golomb (9.3.3.3); -1 when the prefix is implausibly long."""
    v = np.int64(0)
    while E.get_bypass(r, data):
        v += np.int64(1) << k
        k += 1
        if k > 31:
            return -1
    return v + (E.get_bypass_bins(r, data, k) if k > 0 else 0)


@numba.njit(**_J)
def _p_remaining(r, data, rice):
    prefix = 0
    while E.get_bypass(r, data):
        prefix += 1
        if prefix > 32:
            return -1
    if prefix < 3:
        return (prefix << rice) + (E.get_bypass_bins(r, data, rice) if rice > 0 else 0)
    length = prefix - 3 + rice
    return (((np.int64(1) << (prefix - 3)) + 2) << rice) + E.get_bypass_bins(r, data, length)


@numba.njit(**_J)
def _p_last(r, ctx, data, base, log2, chroma):
    if chroma:
        off, shift = 15, log2 - 2
    else:
        off, shift = 3 * (log2 - 2) + ((log2 - 1) >> 2), (log2 + 1) >> 2
    cmax = (log2 << 1) - 1
    g = 0
    while g < cmax and E.get_bin(r, ctx, data, base + off + (g >> shift)):
        g += 1
    return g


@numba.njit(**_J)
def _p_residual(r, ctx, data, plane, px, py, log2, chroma, s):
    """Mirror of `_w_residual`: writes the TU's levels into ``plane``; returns an error code."""
    nsb = 1 << (log2 - 2)
    gx = _p_last(r, ctx, data, C_LAST_X, log2, chroma)
    gy = _p_last(r, ctx, data, C_LAST_Y, log2, chroma)
    lx = gx
    if gx > 3:
        lx = _MIN_IN_GROUP[gx] + E.get_bypass_bins(r, data, (gx >> 1) - 1)
    ly = gy
    if gy > 3:
        ly = _MIN_IN_GROUP[gy] + E.get_bypass_bins(r, data, (gy >> 1) - 1)
    if lx >= (1 << log2) or ly >= (1 << log2):
        return ERR_LEVEL
    # scan position of (lx, ly)
    xs_l, ys_l = lx >> 2, ly >> 2
    lsb = 0
    for i in range(nsb * nsb):
        if _SB_X[log2, i] == xs_l and _SB_Y[log2, i] == ys_l:
            lsb = i
    lpos = 0
    for j in range(16):
        if _S4_X[j] == (lx & 3) and _S4_Y[j] == (ly & 3):
            lpos = j
    csbf = s.csbf
    for yy in range(nsb + 1):
        for xx in range(nsb + 1):
            csbf[yy, xx] = 0
    sigpos = s.sigpos
    c1_carry = 1
    gt1_base = C_GT1 + (16 if chroma else 0)
    gt2_base = C_GT2 + (4 if chroma else 0)
    absl = s.levels  # the parser does not need the writer's scan buffer: reuse 16 entries
    for i in range(lsb, -1, -1):
        xs = _SB_X[log2, i]
        ys = _SB_Y[log2, i]
        if 0 < i < lsb:
            c = min(csbf[ys, xs + 1] + csbf[ys + 1, xs], 1) + (2 if chroma else 0)
            flag = E.get_bin(r, ctx, data, C_CSBF + c)
            csbf[ys, xs] = flag
            if flag == 0:
                continue
        else:
            csbf[ys, xs] = 1
        prev = csbf[ys, xs + 1] + 2 * csbf[ys + 1, xs]
        sig_tab = _SIG_TAB[chroma, log2, prev, 1 if i == 0 else 0]
        nsig = 0
        start = 15
        if i == lsb:
            sigpos[0] = lpos
            nsig = 1
            start = lpos - 1
        infer_dc = 0 < i < lsb
        for n in range(start, -1, -1):
            if n == 0 and infer_dc:
                sigpos[nsig] = 0
                nsig += 1
                continue
            if E.get_bin_inline(r, ctx, data, sig_tab[n]):
                sigpos[nsig] = n
                nsig += 1
                infer_dc = False
        ctx_set = 0 if (i == 0 or chroma) else 2
        if c1_carry == 0:
            ctx_set += 1
        c1 = 1
        first_g1 = -1
        for k in range(nsig):
            absl[k] = 1
        for k in range(min(nsig, 8)):
            g1 = E.get_bin_inline(r, ctx, data, gt1_base + 4 * ctx_set + c1)
            absl[k] += g1
            if g1:
                c1 = 0
                if first_g1 < 0:
                    first_g1 = k
            elif 0 < c1 < 3:
                c1 += 1
        c1_carry = c1
        if first_g1 >= 0:
            absl[first_g1] += E.get_bin(r, ctx, data, gt2_base + ctx_set)
        signs = E.get_bypass_bins(r, data, nsig)
        rice = 0
        bx = px + 4 * xs
        by = py + 4 * ys
        for k in range(nsig):
            a = absl[k]
            thr = (3 if k == first_g1 else 2) if k < 8 else 1
            if a >= thr:
                rem = _p_remaining(r, data, rice)
                if rem < 0:
                    return ERR_ESCAPE
                a = thr + rem
                if a > MAX_LEVEL:
                    return ERR_LEVEL
                if a > 3 * (1 << rice):
                    rice = min(rice + 1, 4)
            neg = (signs >> (nsig - 1 - k)) & 1
            n = sigpos[k]
            plane[by + _S4_Y[n], bx + _S4_X[n]] = -a if neg else a
    return ERR_NONE


@numba.njit(**_J)
def _p_dqp(r, ctx, data, s, qp_pred):
    """Parse cu_qp_delta once per CU; stores the CU's QpY in s.state[5]. Returns error code."""
    if s.params[P_DQP] == 0 or s.state[4] != 0:
        return ERR_NONE
    s.state[4] = 1
    prefix = 0
    while prefix < 5 and E.get_bin(r, ctx, data, C_DQP + (0 if prefix == 0 else 1)):
        prefix += 1
    a = prefix
    if prefix == 5:
        sfx = _p_eg(r, data, 0)
        if sfx < 0:
            return ERR_ESCAPE
        a += sfx
    if a > 0 and E.get_bypass(r, data):
        a = -a
    qp = qp_pred + a
    if qp < s.params[P_QP_MIN] or qp > 51:
        return ERR_QP
    s.state[5] = qp
    return ERR_NONE


@numba.njit(**_J)
def _p_transform_tree(r, ctx, data, g, py_, pu, pv, s, x4, y4, log2, intra, qp_pred):
    """Mirror of `_w_transform_tree`; records tu_log2 and cbf into the grid."""
    n = 1 << log2
    n4 = n >> 2
    x0, y0 = 4 * x4, 4 * y4
    split = log2 > 5
    if _split_coded(s, log2, intra):
        split = E.get_bin(r, ctx, data, C_TU_SPLIT + 5 - log2) == 1
    cb0 = E.get_bin(r, ctx, data, C_CBF_CHROMA + 0)
    cr0 = E.get_bin(r, ctx, data, C_CBF_CHROMA + 0)
    if not split:
        yl = 1
        if intra or cb0 or cr0:
            yl = E.get_bin(r, ctx, data, C_CBF_LUMA + 1)
        if yl or cb0 or cr0:
            e = _p_dqp(r, ctx, data, s, qp_pred)
            if e:
                return e
        for y in range(y4, y4 + n4):
            for x in range(x4, x4 + n4):
                g.tu_log2[y, x] = log2
                g.cbf[y, x, 0] = yl
                g.cbf[y, x, 1] = cb0
                g.cbf[y, x, 2] = cr0
        if yl:
            e = _p_residual(r, ctx, data, py_, x0, y0, log2, 0, s)
            if e:
                return e
        if cb0:
            e = _p_residual(r, ctx, data, pu, x0 >> 1, y0 >> 1, log2 - 1, 1, s)
            if e:
                return e
        if cr0:
            e = _p_residual(r, ctx, data, pv, x0 >> 1, y0 >> 1, log2 - 1, 1, s)
            if e:
                return e
        return ERR_NONE
    h = n >> 1
    h4 = n4 >> 1
    cl = log2 - 1
    for k in range(4):
        cx = x0 + (k & 1) * h
        cy = y0 + (k >> 1) * h
        cb = cb0
        cr = cr0
        if cl > 2:
            cb = E.get_bin(r, ctx, data, C_CBF_CHROMA + 1) if cb0 else 0
            cr = E.get_bin(r, ctx, data, C_CBF_CHROMA + 1) if cr0 else 0
        yl = E.get_bin(r, ctx, data, C_CBF_LUMA + 0)
        if yl or cb or cr:
            e = _p_dqp(r, ctx, data, s, qp_pred)
            if e:
                return e
        for y in range(cy >> 2, (cy >> 2) + h4):
            for x in range(cx >> 2, (cx >> 2) + h4):
                g.tu_log2[y, x] = cl
                g.cbf[y, x, 0] = yl
                g.cbf[y, x, 1] = cb
                g.cbf[y, x, 2] = cr
        if yl:
            e = _p_residual(r, ctx, data, py_, cx, cy, cl, 0, s)
            if e:
                return e
        if cl > 2:
            if cb:
                e = _p_residual(r, ctx, data, pu, cx >> 1, cy >> 1, cl - 1, 1, s)
                if e:
                    return e
            if cr:
                e = _p_residual(r, ctx, data, pv, cx >> 1, cy >> 1, cl - 1, 1, s)
                if e:
                    return e
        elif k == 3:
            if cb0:
                e = _p_residual(r, ctx, data, pu, x0 >> 1, y0 >> 1, 2, 1, s)
                if e:
                    return e
            if cr0:
                e = _p_residual(r, ctx, data, pv, x0 >> 1, y0 >> 1, 2, 1, s)
                if e:
                    return e
    return ERR_NONE


@numba.njit(**_J)
def _p_merge(r, ctx, data, g, s, x4, y4, n4):
    p = s.params
    mx = p[P_MAX_MERGE]
    idx = 0
    if mx > 1:
        if E.get_bin(r, ctx, data, C_MERGE_IDX):
            idx = 1
            while idx < mx - 1 and E.get_bypass(r, data):
                idx += 1
    mvpred.merge_candidates(x4, y4, n4, g.mv, g.ref_idx, g.inter_dir, g.pred_mode, s.zidx, s.ref_poc, p[P_NREF0],
                            p[P_NREF1], p[P_SLICE] == SLICE_B, mx, s.cmv, s.cref, s.cdir)
    return idx


@numba.njit(**_J)
def _p_mvd_comp(r, data, g0, g1):
    if not g0:
        return 0
    a = 1
    if g1:
        v = _p_eg(r, data, 1)
        if v < 0:
            return 1 << 40
        a = v + 2
    return -a if E.get_bypass(r, data) else a


@numba.njit(**_J)
def _p_cu(r, ctx, data, g, py_, pu, pv, s, x4, y4, log2):
    """Mirror of `_w_cu`: fills every 4x4 unit of the CU in the grid."""
    p = s.params
    n4 = 1 << (log2 - 2)
    ctu_log2 = p[P_CTU_LOG2]
    slice_t = p[P_SLICE]
    qp_pred = _qp_pred(g, x4, y4, ctu_log2, s.state[0])
    s.state[4] = 0
    s.state[5] = qp_pred
    mv = np.zeros((2, 2), np.int64)
    ref = np.full(2, -1, np.int64)
    skip = 0
    intra = slice_t == SLICE_I
    if slice_t != SLICE_I:
        c = 0
        if x4 > 0 and g.skip[y4, x4 - 1]:
            c += 1
        if y4 > 0 and g.skip[y4 - 1, x4]:
            c += 1
        skip = E.get_bin(r, ctx, data, C_SKIP + c)
    mode, mflag, midx, imode, imode_c, idir = MODE_INTER, 0, 0, 1, 1, 0
    tu_log2 = min(log2, 5)
    coded = 0
    if skip:
        midx = _p_merge(r, ctx, data, g, s, x4, y4, n4)
        mflag = 1
    else:
        if slice_t != SLICE_I:
            intra = E.get_bin(r, ctx, data, C_PRED_MODE) == 1
        if intra:
            mode = MODE_INTRA
            m = _mpm(g, x4, y4, ctu_log2)
            if E.get_bin(r, ctx, data, C_PREV_INTRA):
                idx = 0
                if E.get_bypass(r, data):
                    idx = 1 + E.get_bypass(r, data)
                imode = m[idx]
            else:
                imode = E.get_bypass_bins(r, data, 5)
                # 8.4.2 step 4: ascending MPMs
                a0, a1, a2 = m[0], m[1], m[2]
                if a0 > a1:
                    a0, a1 = a1, a0
                if a0 > a2:
                    a0, a2 = a2, a0
                if a1 > a2:
                    a1, a2 = a2, a1
                if imode >= a0:
                    imode += 1
                if imode >= a1:
                    imode += 1
                if imode >= a2:
                    imode += 1
            code = 4
            if E.get_bin(r, ctx, data, C_CHROMA_MODE):
                code = E.get_bypass_bins(r, data, 2)
            if code == 4:
                imode_c = imode
            else:
                imode_c = _CHROMA_CANDS[code]
                if imode_c == imode:
                    imode_c = 34
            coded = 1
        else:
            imode, imode_c = 1, 1
            mflag = E.get_bin(r, ctx, data, C_MERGE_FLAG)
            if mflag:
                midx = _p_merge(r, ctx, data, g, s, x4, y4, n4)
                coded = 1
            else:
                idir = 1
                if slice_t == SLICE_B:
                    if E.get_bin(r, ctx, data, C_INTER_DIR + (ctu_log2 - log2)):
                        idir = 3
                    else:
                        idir = 1 + E.get_bin(r, ctx, data, C_INTER_DIR + 4)
                for lst in range(2):
                    if not (idir >> lst) & 1:
                        continue
                    nref = p[P_NREF0 + lst]
                    ri = 0
                    while ri < nref - 1:
                        bit = E.get_bin(r, ctx, data, C_REF_IDX + ri) if ri < 2 else E.get_bypass(r, data)
                        if not bit:
                            break
                        ri += 1
                    ref[lst] = ri
                    g0x = E.get_bin(r, ctx, data, C_MVD_G0)
                    g0y = E.get_bin(r, ctx, data, C_MVD_G0)
                    g1x = E.get_bin(r, ctx, data, C_MVD_G1) if g0x else 0
                    g1y = E.get_bin(r, ctx, data, C_MVD_G1) if g0y else 0
                    dx = _p_mvd_comp(r, data, g0x, g1x)
                    dy = _p_mvd_comp(r, data, g0y, g1y)
                    if abs(dx) > 32768 or abs(dy) > 32768:
                        s.state[2], s.state[3] = 4 * x4, 4 * y4
                        return ERR_ESCAPE
                    flag = E.get_bin(r, ctx, data, C_MVP_FLAG)
                    # predictors read the neighbours only (z-order), so the CU's own entries may stay stale
                    mvpred.amvp_candidates(x4, y4, n4, lst, ri, g.mv, g.ref_idx, g.pred_mode, s.zidx, s.ref_poc,
                                           p[P_POC], s.amvp)
                    mv[lst, 0] = _wrap16(s.amvp[flag, 0] + dx)
                    mv[lst, 1] = _wrap16(s.amvp[flag, 1] + dy)
                coded = E.get_bin(r, ctx, data, C_ROOT_CBF)
    if mflag:
        idir = s.cdir[midx]
        for lst in range(2):
            ref[lst] = s.cref[midx, lst]
            mv[lst, 0] = s.cmv[midx, lst, 0]
            mv[lst, 1] = s.cmv[midx, lst, 1]
    # write the CU before its transform tree (the tree overwrites tu_log2 / cbf)
    _set_cu(g, x4, y4, n4, log2, tu_log2, mode, 1 if skip else 0, mflag, midx, imode, imode_c, idir, mv, ref, qp_pred)
    for y in range(y4, y4 + n4):
        for x in range(x4, x4 + n4):
            g.cbf[y, x, 0] = 0
            g.cbf[y, x, 1] = 0
            g.cbf[y, x, 2] = 0
    if coded:
        e = _p_transform_tree(r, ctx, data, g, py_, pu, pv, s, x4, y4, log2, mode == MODE_INTRA, qp_pred)
        if e:
            return e
        qp = s.state[5]
        if qp != qp_pred:
            for y in range(y4, y4 + n4):
                for x in range(x4, x4 + n4):
                    g.qp[y, x] = qp
    s.state[0] = g.qp[y4, x4]
    return ERR_NONE


@numba.njit(**_J)
def _p_quadtree(r, ctx, data, g, py_, pu, pv, s, x0, y0, log2_root):
    p = s.params
    W, H = p[P_W], p[P_H]
    min_log2 = p[P_MIN_CU_LOG2]
    stack = np.empty((64, 3), np.int64)
    stack[0, 0], stack[0, 1], stack[0, 2] = x0, y0, log2_root
    top = 1
    while top > 0:
        top -= 1
        x, y, log2 = stack[top, 0], stack[top, 1], stack[top, 2]
        if x >= W or y >= H:
            continue
        x4, y4 = x >> 2, y >> 2
        n = 1 << log2
        if x + n <= W and y + n <= H:
            split = 0
            if log2 > min_log2:
                c = 0
                # not-yet-parsed units still hold 0 in cu_log2, but left/above are always parsed
                if x4 > 0 and g.cu_log2[y4, x4 - 1] < log2:
                    c += 1
                if y4 > 0 and g.cu_log2[y4 - 1, x4] < log2:
                    c += 1
                split = E.get_bin(r, ctx, data, C_SPLIT + c)
        else:
            split = 1 if log2 > min_log2 else 0
        if split:
            h = n >> 1
            for k in range(3, -1, -1):
                stack[top, 0] = x + (k & 1) * h
                stack[top, 1] = y + (k >> 1) * h
                stack[top, 2] = log2 - 1
                top += 1
        else:
            e = _p_cu(r, ctx, data, g, py_, pu, pv, s, x4, y4, log2)
            if e:
                s.state[2], s.state[3] = x, y
                return e
            if r[E.R_OVERRUN] > 0:
                s.state[2], s.state[3] = x, y
                return ERR_TRUNCATED
    return ERR_NONE


@numba.njit(**_J)
def _parse_frame(r, ctx, data, g, py_, pu, pv, s):
    p = s.params
    ctu_log2 = p[P_CTU_LOG2]
    ctu = 1 << ctu_log2
    W, H = p[P_W], p[P_H]
    nx = (W + ctu - 1) >> ctu_log2
    ny = (H + ctu - 1) >> ctu_log2
    s.state[0] = p[P_QP]
    E.start_reader(r, data)
    for cy in range(ny):
        for cx in range(nx):
            s.state[2], s.state[3] = cx * ctu, cy * ctu
            e = _p_quadtree(r, ctx, data, g, py_, pu, pv, s, cx * ctu, cy * ctu, ctu_log2)
            if e:
                return e
            last = 1 if (cy == ny - 1 and cx == nx - 1) else 0
            if E.get_terminate(r, data) != last:
                return ERR_END_FLAG
            if r[E.R_OVERRUN] > 0:
                return ERR_TRUNCATED
    if not E.reader_end_ok(r, data):
        return ERR_TRAILING
    return ERR_NONE


# ---------------------------------------------------------------------------------------------
# Python API


def _planes(coeffs: CoeffPlanes, h: int, w: int):
    out = []
    for name, shape in (("y", (h, w)), ("u", (h // 2, w // 2)), ("v", (h // 2, w // 2))):
        a = np.ascontiguousarray(np.asarray(getattr(coeffs, name)), np.int32)
        if a.shape != shape:
            raise ValueError(f"coeffs.{name} has shape {a.shape}, expected {shape}")
        out.append(a)
    return out


def _contexts(contexts, info):
    if contexts is None:
        return init_contexts(info.slice_type, info.qp)
    ctx = np.array(contexts, np.int32, copy=True)
    if ctx.shape != (NUM_CONTEXTS, 2):
        raise ValueError(f"contexts must have shape ({NUM_CONTEXTS}, 2), got {ctx.shape}")
    return ctx


def _writer_error(code: int, s: _Scratch) -> ValueError:
    return ValueError(f"write_frame: {_ERR_TEXT.get(code, code)} at luma ({s.state[2]}, {s.state[3]})")


def write_frame(decisions: BlockDecisions, coeffs: CoeffPlanes, info: FrameSyntaxInfo,
                contexts: np.ndarray | None = None) -> tuple[bytes, np.ndarray]:
    """Entropy code one frame (one slice). Returns ``(payload, final_contexts)``.

    ``decisions`` over the padded frame's 4x4 grid, ``coeffs`` its quantized levels (see
    `jaxcodec.codec.blocks`); ``contexts`` (default `init_contexts`) are not modified.
    Raises ValueError when the decisions are inconsistent (an encoder bug, not a user error).
    """
    h4, w4 = info.height // 4, info.width // 4
    s = _scratch(info)
    g = _grid_from(decisions, h4, w4)
    py_, pu, pv = _planes(coeffs, info.height, info.width)
    ctx = _contexts(contexts, info)
    w, buf = E.new_writer(E.MODE_ENCODE, capacity=info.width * info.height // 4 + 4096)
    buf, err = _write_frame(w, ctx, buf, g, py_, pu, pv, s)
    if err:
        raise _writer_error(err, s)
    return bytes(buf[: w[E.W_POS]]), ctx


def parse_frame(payload: bytes, info: FrameSyntaxInfo,
                contexts: np.ndarray | None = None) -> tuple[BlockDecisions, CoeffPlanes, np.ndarray]:
    """Decode one frame payload written by `write_frame` with the same ``info`` and initial
    ``contexts``. Returns ``(decisions, coeffs, final_contexts)`` as numpy arrays.

    Raises `BitstreamError` naming the problem and the CTU / CU position on corrupt input;
    never reads out of bounds and always terminates.
    """
    h, w_ = info.height, info.width
    s = _scratch(info)
    g = _new_grid(h // 4, w_ // 4, info.qp)
    planes = [np.zeros((h, w_), np.int32), np.zeros((h // 2, w_ // 2), np.int32),
              np.zeros((h // 2, w_ // 2), np.int32)]
    ctx = _contexts(contexts, info)
    r = np.zeros(E.R_SIZE, np.int64)
    data = np.frombuffer(bytes(payload), np.uint8)
    err = _parse_frame(r, ctx, data, g, planes[0], planes[1], planes[2], s)
    if err:
        x, y = int(s.state[2]), int(s.state[3])
        ctu = info.ctu_size
        raise BitstreamError(f"frame payload corrupt: {_ERR_TEXT.get(err, err)} "
                             f"(CTU {x // ctu},{y // ctu}, luma {x},{y})")
    return BlockDecisions(**g._asdict()), CoeffPlanes(*planes), ctx


@numba.njit(**_J)
def _count_quadtree(w, ctx, buf, g, py_, pu, pv, s, x0, y0, log2, prev_qp):
    s.state[0] = prev_qp
    return _w_quadtree(w, ctx, buf, g, py_, pu, pv, s, x0, y0, log2)


def count_quadtree_bits(decisions: BlockDecisions, coeffs: CoeffPlanes, info: FrameSyntaxInfo, x: int, y: int,
                        log2_size: int, contexts: np.ndarray, *, prev_qp: int | None = None
                        ) -> tuple[float, np.ndarray]:
    """Bits (fractional, from the adaptive contexts) of coding the coding quadtree rooted at
    luma ``(x, y)`` of size ``2**log2_size`` as the decisions describe it: split flags, CUs,
    residuals. The RDO entry point: put one CU (or its four sub-CUs) into ``decisions``, count
    with a copy of the current contexts, keep the winner's returned contexts. Neighbours are
    read from ``decisions`` as the writer would (only units before (x, y) in z-order).
    ``prev_qp``: QpY of the previously coded CU (defaults to the slice QP).
    Returns ``(bits, contexts_after)``; ``contexts`` is not modified.
    """
    h4, w4 = info.height // 4, info.width // 4
    s = _scratch(info)
    g = _grid_from(decisions, h4, w4)
    py_, pu, pv = _planes(coeffs, info.height, info.width)
    ctx = _contexts(contexts, info)
    w, buf = E.new_writer(E.MODE_COUNT)
    err = _count_quadtree(w, ctx, buf, g, py_, pu, pv, s, x, y, log2_size, info.qp if prev_qp is None else prev_qp)
    if err:
        raise _writer_error(err, s)
    return float(w[E.W_FRAC]) / E.FRAC_ONE, ctx


# ---------------------------------------------------------------------------------------------
# random valid frames (round-trip tests, benchmarks)


def random_frame(info: FrameSyntaxInfo, seed: int, *, split_prob: float = 0.6, intra_prob: float = 0.2,
                 skip_prob: float = 0.3, merge_prob: float = 0.3, cbf_prob: float = 0.5, big_level_prob: float = 0.02
                 ) -> tuple[BlockDecisions, CoeffPlanes]:
    """Random *valid, canonical* decisions and levels for ``info``: random quadtrees (forced
    splits at the picture edge), intra modes and chroma modes (incl. the mode-34 substitute),
    4x4-TU intra 8x8 CUs, skip / merge CUs that copy a real merge candidate, explicit MVs
    (small, near the AMVP predictor, or anywhere in int16), per-CU QPs with cu_qp_delta, and
    sparse levels with occasional large magnitudes (up to 32767). ``parse_frame(write_frame(.))``
    must return them unchanged."""
    rng = np.random.default_rng(seed)
    _check_info(info)
    W, H = info.width, info.height
    s = _scratch(info)
    p = s.params
    g = _new_grid(H // 4, W // 4, info.qp)
    planes = [np.zeros((H, W), np.int32), np.zeros((H // 2, W // 2), np.int32), np.zeros((H // 2, W // 2), np.int32)]
    ctu_log2 = int(p[P_CTU_LOG2])
    min_log2 = int(p[P_MIN_CU_LOG2])
    slice_t = int(p[P_SLICE])
    state = {"prev_qp": info.qp}

    def levels(n, dc_bias=True):
        blk = np.zeros((n, n), np.int32)
        if rng.random() >= cbf_prob:
            return blk
        cnt = int(rng.integers(1, max(2, n * n // int(rng.choice([2, 4, 16, 64])))))
        ys = np.minimum((rng.exponential(n / 4, cnt)).astype(int), n - 1) if dc_bias else rng.integers(0, n, cnt)
        xs = np.minimum((rng.exponential(n / 4, cnt)).astype(int), n - 1) if dc_bias else rng.integers(0, n, cnt)
        mags = rng.geometric(0.45, cnt)
        big = rng.random(cnt) < big_level_prob
        mags = np.where(big, rng.integers(1, 32768, cnt), mags)
        blk[ys, xs] = mags * rng.choice([-1, 1], cnt)
        return blk

    def put(plane, x, y, blk):
        n = blk.shape[0]
        plane[y:y + n, x:x + n] = blk

    def residual(x, y, log2, t):
        if t == 2:
            for k in range(4):
                put(planes[0], x + (k & 1) * 4, y + (k >> 1) * 4, levels(4))
            put(planes[1], x // 2, y // 2, levels(4))
            put(planes[2], x // 2, y // 2, levels(4))
            return
        for ty in range(y, y + (1 << log2), 1 << t):
            for tx in range(x, x + (1 << log2), 1 << t):
                put(planes[0], tx, ty, levels(1 << t, dc_bias=rng.random() < 0.8))
                put(planes[1], tx // 2, ty // 2, levels(1 << (t - 1)))
                put(planes[2], tx // 2, ty // 2, levels(1 << (t - 1)))

    def has_residual(x, y, n):
        return bool(planes[0][y:y + n, x:x + n].any() or planes[1][y // 2:(y + n) // 2, x // 2:(x + n) // 2].any()
                    or planes[2][y // 2:(y + n) // 2, x // 2:(x + n) // 2].any())

    def set_cbf(x, y, log2, tu_log2):
        t = 1 << tu_log2
        for ty in range(y, y + (1 << log2), t):
            for tx in range(x, x + (1 << log2), t):
                sl = (slice(ty // 4, (ty + t) // 4), slice(tx // 4, (tx + t) // 4))
                g.cbf[sl + (0,)] = planes[0][ty:ty + t, tx:tx + t].any()
                if tu_log2 == 2:
                    cx, cy, ct = x // 2, y // 2, 4
                else:
                    cx, cy, ct = tx // 2, ty // 2, t // 2
                g.cbf[sl + (1,)] = planes[1][cy:cy + ct, cx:cx + ct].any()
                g.cbf[sl + (2,)] = planes[2][cy:cy + ct, cx:cx + ct].any()

    def cu(x, y, log2):
        x4, y4, n4, n = x // 4, y // 4, 1 << (log2 - 2), 1 << log2
        sl = (slice(y4, y4 + n4), slice(x4, x4 + n4))
        qp_pred = int(_qp_pred(g, x4, y4, ctu_log2, state["prev_qp"]))
        intra = slice_t == SLICE_I or rng.random() < intra_prob
        g.cu_log2[sl] = log2
        g.tu_log2[sl] = min(log2, 5)
        g.pred_mode[sl] = MODE_INTRA if intra else MODE_INTER
        # inter TU: one split level when the tool is on (canonical only with a coded residual)
        t_inter = log2 - 1 if info.inter_tu_split and log2 <= 5 and rng.random() < 0.4 else min(log2, 5)
        if intra:
            mode = int(rng.integers(0, 35))
            code = int(rng.integers(0, 5))
            mc = mode if code == 4 else (int(_CHROMA_CANDS[code]) if _CHROMA_CANDS[code] != mode else 34)
            g.intra_mode[sl], g.intra_mode_c[sl] = mode, mc
            split = bool(info.intra_tu_split and log2 == 3 and rng.random() < 0.5)
            if split:
                g.tu_log2[sl] = 2
            residual(x, y, log2, int(g.tu_log2[y4, x4]))
        else:
            skip = rng.random() < skip_prob
            merge = skip or rng.random() < merge_prob
            if merge:
                mvpred.merge_candidates(x4, y4, n4, g.mv, g.ref_idx, g.inter_dir, g.pred_mode, s.zidx, s.ref_poc,
                                        p[P_NREF0], p[P_NREF1], slice_t == SLICE_B, info.max_merge_cand, s.cmv,
                                        s.cref, s.cdir)
                k = int(rng.integers(0, info.max_merge_cand))
                g.skip[sl], g.merge_flag[sl], g.merge_idx[sl] = int(skip), 1, k
                g.inter_dir[sl] = s.cdir[k]
                g.ref_idx[sl] = s.cref[k]
                g.mv[sl] = s.cmv[k]
                if not skip:
                    residual(x, y, log2, t_inter)
                    if not has_residual(x, y, n):
                        planes[0][y + int(rng.integers(0, n)), x + int(rng.integers(0, n))] = int(rng.choice([-1, 1]))
            else:
                d = 1 if slice_t == SLICE_P else int(rng.integers(1, 4))
                g.inter_dir[sl] = d
                for lst in range(2):
                    if not (d >> lst) & 1:
                        continue
                    r = int(rng.integers(0, p[P_NREF0 + lst]))
                    g.ref_idx[sl + (lst,)] = r
                    kind = rng.random()
                    if kind < 0.4:
                        mv = rng.integers(-64, 65, 2)
                    elif kind < 0.8:
                        mvpred.amvp_candidates(x4, y4, n4, lst, r, g.mv, g.ref_idx, g.pred_mode, s.zidx, s.ref_poc,
                                               info.poc, s.amvp)
                        mv = np.clip(s.amvp[int(rng.integers(0, 2))] + rng.integers(-3, 4, 2), -32768, 32767)
                    else:
                        mv = rng.integers(-32768, 32768, 2)
                    g.mv[sl + (lst,)] = mv
                residual(x, y, log2, t_inter)
        if not intra:
            g.tu_log2[sl] = t_inter if has_residual(x, y, n) else min(log2, 5)
        qp = qp_pred
        if info.cu_qp_delta and has_residual(x, y, n):
            qp_min = -6 * (info.bit_depth - 8)
            delta = int(rng.integers(-3, 4)) if rng.random() < 0.8 else int(rng.integers(-40, 41))
            qp = int(np.clip(qp_pred + delta, qp_min, 51))
        g.qp[sl] = qp
        state["prev_qp"] = qp
        set_cbf(x, y, log2, int(g.tu_log2[y4, x4]))

    def quadtree(x, y, log2):
        if x >= W or y >= H:
            return
        n = 1 << log2
        inside = x + n <= W and y + n <= H
        if log2 > min_log2 and (not inside or rng.random() < split_prob * (0.6 if log2 < 5 else 1.0)):
            h = n // 2
            for k in range(4):
                quadtree(x + (k & 1) * h, y + (k >> 1) * h, log2 - 1)
        else:
            cu(x, y, log2)

    ctu = info.ctu_size
    for cy in range(0, H, ctu):
        for cx in range(0, W, ctu):
            quadtree(cx, cy, ctu_log2)
    return BlockDecisions(**g._asdict()), CoeffPlanes(*planes)


class BitCounter:
    """Reusable RDO bit counter of one frame (saves `count_quadtree_bits`' per-call array
    conversion). It keeps *views* of ``decisions`` / ``coeffs`` when their dtypes already
    match `BlockDecisions` (int8 / int16 mv) and int32 planes, so an encoder can write its
    candidate CU into those arrays in place and call `count` again.

    From numba code, call ``_count_quadtree(w, ctx, buf, grid, y, u, v, scratch, x, y, log2,
    prev_qp)`` directly with ``self.grid``, ``self.planes`` and ``self.scratch`` and a writer
    from ``engine.new_writer(engine.MODE_COUNT)``: no Python in the loop at all.
    """

    def __init__(self, decisions: BlockDecisions, coeffs: CoeffPlanes, info: FrameSyntaxInfo):
        self.info = info
        self.scratch = _scratch(info)
        self.grid = _grid_from(decisions, info.height // 4, info.width // 4)
        self.planes = _planes(coeffs, info.height, info.width)
        self._w, self._buf = E.new_writer(E.MODE_COUNT)

    def count(self, x: int, y: int, log2_size: int, contexts: np.ndarray, prev_qp: int | None = None
              ) -> tuple[float, np.ndarray]:
        """Same as `count_quadtree_bits` (returns ``(bits, contexts_after)``; input untouched)."""
        ctx = np.array(contexts, np.int32, copy=True)
        w = self._w
        E.reset_writer(w, E.MODE_COUNT)
        err = _count_quadtree(w, ctx, self._buf, self.grid, *self.planes, self.scratch, x, y, log2_size,
                              self.info.qp if prev_qp is None else prev_qp)
        if err:
            raise _writer_error(err, self.scratch)
        return float(w[E.W_FRAC]) / E.FRAC_ONE, ctx
