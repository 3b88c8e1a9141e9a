"""Deblocking filter, H.265 8.7.2, as an in-loop filter stage.

Contract (stated once, here):

* Boundary strengths live on the 4x4 luma grid of `BlockDecisions`, int8 ``(H/4, W/4)``:
  ``bs_ver[y4, x4]`` is the bS of the vertical edge on the *left* side of unit ``(y4, x4)``
  (luma x = 4 * x4), ``bs_hor[y4, x4]`` that of the horizontal edge on its *top* side. Only
  edges on the 8x8 luma grid that are CU or TU boundaries inside the picture can be non-zero
  (8.7.2.3, 8.7.2.4). Values: 2 intra on either side; 1 TU edge with a non-zero luma cbf on
  either side, or different reference pictures / number of MVs, or an MV component
  difference >= 4 quarter samples; 0 otherwise.
* Reference-picture identity: ``ref_ids`` int ``(2, R)`` gives a picture id (POC or DPB slot)
  of each ``(list, ref_idx)``; bS compares pictures, not indices, as 8.7.2.4 requires. When
  omitted, entries of different lists count as different pictures.
* QP: ``decisions.qp`` is the luma QpY of each CU. Luma uses ``qPL = (QpQ + QpP + 1) >> 1``
  with β′/tC′ of Table 8-12 (slice offsets 0); chroma (4:2:0, bS == 2, edges on the 8x8
  chroma grid) uses QpC of ``qPL + chroma_qp_offset`` (Table 8-10).
* Vertical edges of the whole picture are filtered first, horizontal edges on that result
  (8.7.2). Edges 8 samples apart never read what another edge of the same direction writes,
  so each direction is one vectorised pass over all edges.
* Planes come back with their input dtype; all arithmetic is int32.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxcodec.codec.blocks import MODE_INTRA, PRED_L0, PRED_L1, BlockDecisions
from jaxcodec.codec.quant import chroma_qp
from jaxcodec.frame import Frame

# H.265 Table 8-12.
BETA_TABLE = np.array([0] * 16 + list(range(6, 19)) + list(range(20, 65, 2)), np.int32)
TC_TABLE = np.array([0] * 18 + [1] * 9 + [2] * 4 + [3] * 4 + [4] * 3 + [5, 5, 6, 6, 7, 8, 9, 10, 11, 13, 14, 16, 18, 20, 22, 24],
                    np.int32)
assert BETA_TABLE.shape == (52,) and TC_TABLE.shape == (54,)


class DeblockInfo(NamedTuple):
    """Boundary strengths on the 4x4 luma grid, int8 ``(H/4, W/4)`` (see module doc)."""

    bs_ver: jax.Array
    bs_hor: jax.Array


# ---------------------------------------------------------------------------------------------
# Boundary strength, 8.7.2.3 / 8.7.2.4
# ---------------------------------------------------------------------------------------------

def _motion_differs(ids_p, mv_p, ids_q, mv_q):
    """bS-1 motion rule of 8.7.2.4 for P/Q pairs: ids ``(..., 2)`` (-1 unused), mv ``(..., 2, 2)``."""
    used_p, used_q = ids_p >= 0, ids_q >= 0
    n_p, n_q = used_p.sum(-1), used_q.sum(-1)

    def far(a, b):
        return (jnp.abs(a - b) >= 4).any(-1)

    # one MV each: the used list's picture and vector
    one_id_p = jnp.where(used_p[..., 0], ids_p[..., 0], ids_p[..., 1])
    one_id_q = jnp.where(used_q[..., 0], ids_q[..., 0], ids_q[..., 1])
    one_mv_p = jnp.where(used_p[..., 0, None], mv_p[..., 0, :], mv_p[..., 1, :])
    one_mv_q = jnp.where(used_q[..., 0, None], mv_q[..., 0, :], mv_q[..., 1, :])
    uni = (one_id_p != one_id_q) | far(one_mv_p, one_mv_q)

    # two MVs each
    p0, p1, q0, q1 = ids_p[..., 0], ids_p[..., 1], ids_q[..., 0], ids_q[..., 1]
    same_set = ((p0 == q0) & (p1 == q1)) | ((p0 == q1) & (p1 == q0))
    straight = far(mv_p[..., 0, :], mv_q[..., 0, :]) | far(mv_p[..., 1, :], mv_q[..., 1, :])
    crossed = far(mv_p[..., 0, :], mv_q[..., 1, :]) | far(mv_p[..., 1, :], mv_q[..., 0, :])
    two_pictures = jnp.where(p0 == q0, straight, crossed)
    one_picture = straight & crossed  # both MVs of each side refer to the same picture
    bi = ~same_set | jnp.where(p0 != p1, two_pictures, one_picture)

    return (n_p != n_q) | jnp.where(n_p == 1, uni, jnp.where(n_p == 2, bi, False))


def _edge_bs(d, axis: int, ref_ids):
    """bS of the edges between each unit and its predecessor along ``axis`` (1: vertical edges)."""
    h4, w4 = d.cu_log2.shape
    pos4 = jnp.arange(w4 if axis == 1 else h4, dtype=jnp.int32)
    pos4 = pos4[None, :] if axis == 1 else pos4[:, None]

    def prev(a):  # value of the P side (unit before along axis); row/col 0 is masked below
        return jnp.roll(a, 1, axis=axis)

    cu = jnp.asarray(d.cu_log2, jnp.int32)
    tu = jnp.asarray(d.tu_log2, jnp.int32)
    x = pos4 * 4
    on_grid = (x % 8 == 0) & (x > 0)
    aligned = lambda lg: (x & ((1 << lg) - 1)) == 0  # noqa: E731
    tu_edge = aligned(tu) | aligned(prev(tu))
    cu_edge = aligned(cu) | aligned(prev(cu))
    edge = on_grid & (tu_edge | cu_edge)

    intra = jnp.asarray(d.pred_mode) == MODE_INTRA
    cbf_y = jnp.asarray(d.cbf)[..., 0] != 0
    ref_idx = jnp.asarray(d.ref_idx, jnp.int32)
    inter_dir = jnp.asarray(d.inter_dir, jnp.int32)
    used = jnp.stack([(inter_dir & PRED_L0) != 0, (inter_dir & PRED_L1) != 0], -1) & (ref_idx >= 0)
    if ref_ids is None:
        ids = ref_idx + jnp.array([0, 1 << 16], jnp.int32)
    else:
        ref_ids = jnp.asarray(ref_ids, jnp.int32)
        ids = jnp.stack([ref_ids[lst][jnp.clip(ref_idx[..., lst], 0, ref_ids.shape[1] - 1)] for lst in (0, 1)], -1)
    ids = jnp.where(used, ids, -1)
    mv = jnp.asarray(d.mv, jnp.int32)
    motion = _motion_differs(prev(ids), prev(mv), ids, mv)

    bs = jnp.where(intra | prev(intra), 2,
                   jnp.where(tu_edge & (cbf_y | prev(cbf_y)), 1, jnp.where(motion, 1, 0)))
    return jnp.where(edge, bs, 0).astype(jnp.int8)


def boundary_strength(decisions: BlockDecisions, *, ref_ids=None) -> DeblockInfo:
    """bS of every vertical and horizontal edge segment, H.265 8.7.2.3-8.7.2.4 (int8 maps)."""
    chex.assert_rank(decisions.cu_log2, 2)
    return DeblockInfo(_edge_bs(decisions, 1, ref_ids), _edge_bs(decisions, 0, ref_ids))


# ---------------------------------------------------------------------------------------------
# Edge filtering, 8.7.2.5 (written for vertical edges; horizontal edges run on the transpose)
# ---------------------------------------------------------------------------------------------

def _luma_vertical_edges(plane, bs, qp, bit_depth: int):
    """Filter all vertical luma edges of ``plane (H, W)``; ``bs, qp`` on the 4x4 grid."""
    h, w = plane.shape
    if w < 16:
        return plane
    xs = jnp.arange(8, w, 8)  # edge positions (E,)
    cols = xs[:, None] + jnp.arange(-4, 4)  # p3 p2 p1 p0 q0 q1 q2 q3
    s = plane[:, cols]  # (H, E, 8)
    e4 = xs // 4
    seg_bs = jnp.asarray(bs, jnp.int32)[:, e4]  # (H4, E)
    qp = jnp.asarray(qp, jnp.int32)
    qpl = (qp[:, e4] + qp[:, e4 - 1] + 1) >> 1
    scale = 1 << (bit_depth - 8)
    beta = jnp.asarray(BETA_TABLE)[jnp.clip(qpl, 0, 51)] * scale
    tc = jnp.asarray(TC_TABLE)[jnp.clip(qpl + 2 * (seg_bs - 1), 0, 53)] * scale

    seg = s.reshape(h // 4, 4, -1, 8)  # (H4, line, E, sample)
    p = [seg[..., 3 - i] for i in range(4)]  # p[i]: (H4, 4, E)
    q = [seg[..., 4 + i] for i in range(4)]
    dp = jnp.abs(p[2] - 2 * p[1] + p[0])
    dq = jnp.abs(q[2] - 2 * q[1] + q[0])
    dpq0 = dp[:, 0] + dq[:, 0]
    dpq3 = dp[:, 3] + dq[:, 3]
    d = dpq0 + dpq3
    on = (seg_bs > 0) & (d < beta)

    def d_sam(line, dpq):
        return ((2 * dpq < (beta >> 2))
                & (jnp.abs(p[3][:, line] - p[0][:, line]) + jnp.abs(q[0][:, line] - q[3][:, line]) < (beta >> 3))
                & (jnp.abs(p[0][:, line] - q[0][:, line]) < ((5 * tc + 1) >> 1)))

    strong = d_sam(0, dpq0) & d_sam(3, dpq3)
    side_thr = (beta + (beta >> 1)) >> 3
    dep = (dp[:, 0] + dp[:, 3]) < side_thr
    deq = (dq[:, 0] + dq[:, 3]) < side_thr

    # per-segment decisions broadcast over the segment's 4 lines
    b = lambda a: a[:, None, :]  # noqa: E731
    tcb, on, strong, dep, deq = b(tc), b(on), b(strong), b(dep), b(deq)
    peak = (1 << bit_depth) - 1
    clip1 = lambda v: jnp.clip(v, 0, peak)  # noqa: E731
    t2 = 2 * tcb
    c2 = lambda v, ref: jnp.clip(v, ref - t2, ref + t2)  # noqa: E731
    sp0 = c2((p[2] + 2 * p[1] + 2 * p[0] + 2 * q[0] + q[1] + 4) >> 3, p[0])
    sp1 = c2((p[2] + p[1] + p[0] + q[0] + 2) >> 2, p[1])
    sp2 = c2((2 * p[3] + 3 * p[2] + p[1] + p[0] + q[0] + 4) >> 3, p[2])
    sq0 = c2((p[1] + 2 * p[0] + 2 * q[0] + 2 * q[1] + q[2] + 4) >> 3, q[0])
    sq1 = c2((p[0] + q[0] + q[1] + q[2] + 2) >> 2, q[1])
    sq2 = c2((p[0] + q[0] + q[1] + 3 * q[2] + 2 * q[3] + 4) >> 3, q[2])

    delta0 = (9 * (q[0] - p[0]) - 3 * (q[1] - p[1]) + 8) >> 4
    normal_on = jnp.abs(delta0) < tcb * 10
    delta = jnp.clip(delta0, -tcb, tcb)
    np0, nq0 = clip1(p[0] + delta), clip1(q[0] - delta)
    th = tcb >> 1
    np1 = clip1(p[1] + jnp.clip((((p[2] + p[0] + 1) >> 1) - p[1] + delta) >> 1, -th, th))
    nq1 = clip1(q[1] + jnp.clip((((q[2] + q[0] + 1) >> 1) - q[1] - delta) >> 1, -th, th))

    weak = on & ~strong & normal_on
    strong = on & strong
    out = [
        p[3],
        jnp.where(strong, sp2, p[2]),
        jnp.where(strong, sp1, jnp.where(weak & dep, np1, p[1])),
        jnp.where(strong, sp0, jnp.where(weak, np0, p[0])),
        jnp.where(strong, sq0, jnp.where(weak, nq0, q[0])),
        jnp.where(strong, sq1, jnp.where(weak & deq, nq1, q[1])),
        jnp.where(strong, sq2, q[2]),
        q[3],
    ]  # order p3 p2 p1 p0 q0 q1 q2 q3
    new = jnp.stack(out, -1).reshape(h, -1, 8)
    return plane.at[:, cols].set(new)


def _chroma_vertical_edges(plane, bs, qp, bit_depth: int, chroma_qp_offset: int):
    """Filter vertical 4:2:0 chroma edges (8x8 chroma grid, bS == 2), 8.7.2.5.5."""
    hc, wc = plane.shape
    if wc < 16:
        return plane
    xs = jnp.arange(8, wc, 8)
    cols = xs[:, None] + jnp.arange(-2, 2)  # p1 p0 q0 q1
    s = plane[:, cols]  # (Hc, E, 4)
    e4 = xs // 2  # luma unit column of q0
    # A 4-line chroma segment takes bS and QP at its first sample: luma unit row 2 * (yc >> 2)
    # (8.7.2.5.5, yDm = m << 2). With 8x8 minimum CUs this equals HM's per-4x4-part reading.
    rows = (jnp.arange(hc) >> 2) << 1
    seg_bs = jnp.asarray(bs, jnp.int32)[rows[:, None], e4[None, :]]
    qp = jnp.asarray(qp, jnp.int32)
    qpi = ((qp[rows[:, None], e4[None, :]] + qp[rows[:, None], e4[None, :] - 1] + 1) >> 1) + chroma_qp_offset
    qpc = chroma_qp(qpi)
    tc = jnp.asarray(TC_TABLE)[jnp.clip(qpc + 2, 0, 53)] * (1 << (bit_depth - 8))
    p1, p0, q0, q1 = (s[..., i] for i in range(4))
    delta = jnp.clip((((q0 - p0) << 2) + p1 - q1 + 4) >> 3, -tc, tc)
    peak = (1 << bit_depth) - 1
    on = seg_bs == 2
    np0 = jnp.where(on, jnp.clip(p0 + delta, 0, peak), p0)
    nq0 = jnp.where(on, jnp.clip(q0 - delta, 0, peak), q0)
    return plane.at[:, cols].set(jnp.stack([p1, np0, nq0, q1], -1))


def deblock_luma(plane, info: DeblockInfo, qp, *, bit_depth: int = 8):
    """Luma deblocking of one ``(H, W)`` plane: vertical edges, then horizontal (8.7.2.5.3/.7)."""
    chex.assert_rank(plane, 2)
    chex.assert_type(plane, int)
    x = jnp.asarray(plane, jnp.int32)
    x = _luma_vertical_edges(x, info.bs_ver, qp, bit_depth)
    x = _luma_vertical_edges(x.T, info.bs_hor.T, jnp.asarray(qp).T, bit_depth).T
    return x.astype(jnp.asarray(plane).dtype)


def deblock_chroma(plane, info: DeblockInfo, qp, *, bit_depth: int = 8, chroma_qp_offset: int = 0):
    """4:2:0 chroma deblocking of one ``(H/2, W/2)`` plane: vertical, then horizontal (8.7.2.5.5)."""
    chex.assert_rank(plane, 2)
    chex.assert_type(plane, int)
    x = jnp.asarray(plane, jnp.int32)
    x = _chroma_vertical_edges(x, info.bs_ver, qp, bit_depth, chroma_qp_offset)
    x = _chroma_vertical_edges(x.T, info.bs_hor.T, jnp.asarray(qp).T, bit_depth, chroma_qp_offset).T
    return x.astype(jnp.asarray(plane).dtype)


def deblock_frame(frame: Frame, decisions: BlockDecisions, *, bit_depth: int | None = None, ref_ids=None,
                  chroma_qp_offset: int = 0) -> tuple[Frame, DeblockInfo]:
    """Deblock a whole (padded, unbatched) frame, H.265 8.7.2. Returns ``(frame, DeblockInfo)``."""
    bd = frame.bit_depth if bit_depth is None else bit_depth
    h4, w4 = decisions.grid_shape
    chex.assert_shape(frame.y, (4 * h4, 4 * w4))
    info = boundary_strength(decisions, ref_ids=ref_ids)
    qp = jnp.asarray(decisions.qp, jnp.int32)
    y = deblock_luma(frame.y, info, qp, bit_depth=bd)
    u = deblock_chroma(frame.u, info, qp, bit_depth=bd, chroma_qp_offset=chroma_qp_offset)
    v = deblock_chroma(frame.v, info, qp, bit_depth=bd, chroma_qp_offset=chroma_qp_offset)
    return frame.replace(y=y, u=u, v=v), info


class InLoopFilter(NamedTuple):
    """An in-loop filter stage (optax style): ``init(frame) -> state``,
    ``apply(frame, decisions, bit_depth, **kw) -> (frame, info)``."""

    init: Callable
    apply: Callable


def deblocking_filter(*, enabled: bool = True) -> InLoopFilter:
    """The deblocking stage. Stateless (``init`` returns ``()``).

    ``apply(frame, decisions, bit_depth, *, ref_ids=None, chroma_qp_offset=0)`` returns
    ``(filtered_frame, DeblockInfo(bs_ver, bs_hor))``; with ``enabled=False`` the frame passes
    unchanged but the bS maps are still computed (the NN loop filter reads them).

    Example::

        stage = deblocking_filter()
        frame, info = stage.apply(recon, decisions, 8, ref_ids=pocs)
    """

    def init(frame=None):
        del frame
        return ()

    def apply(frame: Frame, decisions: BlockDecisions, bit_depth: int | None = None, *, ref_ids=None,
              chroma_qp_offset: int = 0):
        if enabled:
            return deblock_frame(frame, decisions, bit_depth=bit_depth, ref_ids=ref_ids,
                                 chroma_qp_offset=chroma_qp_offset)
        return frame, boundary_strength(decisions, ref_ids=ref_ids)

    return InLoopFilter(init, apply)
