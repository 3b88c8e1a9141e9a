"""Encoder analysis of B pictures: per 8x8 CU, the reference, MVs and prediction direction.

Vectorised over the frame (encoder only, so float costs are fine here): every DPB slot is
searched (`motion.search_ref`), each list keeps its cheapest reference (SAD + sqrt(lambda) x
(MV bits + ref_idx bits)), and bi-prediction competes with the rounded average of the two
list winners (HM ``TEncSearch::predInterSearch`` order: uni L0, uni L1, then bi).
The chosen vectors are coded exactly; the reconstruction uses `inter.motion_compensate`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxcodec.codec import inter, motion
from jaxcodec.codec.blocks import MODE_INTER, PRED_BI, PRED_L0, PRED_L1, BlockDecisions


@functools.partial(jax.jit, static_argnames=("search_range", "bit_depth", "subpel", "coarse_range"))
def analyse_inter(cur_y, refs_y, ref_list, sqrt_lambda, *, search_range: int, bit_depth: int, subpel: bool,
                  coarse_range: int = 0):
    """Decide inter_dir ``(H8, W8)``, mv ``(H8, W8, 2, 2)`` (quarter samples, [list][x, y]) and
    ref_idx ``(H8, W8, 2)`` (-1 unused) for every 8x8 CU.

    ``refs_y (P, H, W)``: DPB slots; ``ref_list (2, R)``: slot of each (list, ref_idx).
    """
    cur_y = jnp.asarray(cur_y, jnp.int32)
    search = functools.partial(motion.search_ref, search_range=search_range, bit_depth=bit_depth, subpel=subpel,
                               coarse_range=coarse_range)
    mvs, costs, preds = jax.lax.map(lambda ref: search(cur_y, ref, sqrt_lambda), jnp.asarray(refs_y, jnp.int32))
    r = ref_list.shape[1]
    idx_bits = jnp.minimum(jnp.arange(r) + 1, max(r - 1, 0)).astype(jnp.float32)  # truncated unary ref_idx
    best = []
    for lst in range(2):
        c = costs[ref_list[lst]] + sqrt_lambda * idx_bits[:, None, None]  # (R, H8, W8)
        i = jnp.argmin(c, 0)
        slot = ref_list[lst][i]
        pick = lambda a: jnp.take_along_axis(a, slot.reshape((1,) + slot.shape + (1,) * (a.ndim - 3)), 0)[0]  # noqa: E731
        best.append((i, jnp.take_along_axis(c, i[None], 0)[0], pick(mvs), pick(preds)))
    (i0, c0, m0, p0), (i1, c1, m1, p1) = best
    h8, w8 = cur_y.shape[0] // 8, cur_y.shape[1] // 8
    cur_b = jnp.swapaxes(cur_y.reshape(h8, 8, w8, 8), 1, 2)
    bi_pred = (p0 + p1 + 1) >> 1
    c_bi = (jnp.abs(cur_b - bi_pred).sum((-2, -1)).astype(jnp.float32)
            + sqrt_lambda * (motion.mv_bits(m0.astype(jnp.float32)) + motion.mv_bits(m1.astype(jnp.float32))
                             + idx_bits[i0] + idx_bits[i1] + 1.0))
    c1 = c1 + sqrt_lambda * 1.0  # inter_pred_idc bins: L0 cheapest
    inter_dir = jnp.where((c_bi < c0) & (c_bi < c1), PRED_BI, jnp.where(c1 < c0, PRED_L1, PRED_L0))
    use0 = (inter_dir & PRED_L0) != 0
    use1 = (inter_dir & PRED_L1) != 0
    mv = jnp.stack([jnp.where(use0[..., None], m0, 0), jnp.where(use1[..., None], m1, 0)], 2)
    ref_idx = jnp.stack([jnp.where(use0, i0, -1), jnp.where(use1, i1, -1)], -1)
    return inter_dir.astype(jnp.int32), mv.astype(jnp.int32), ref_idx.astype(jnp.int32)


def upsample(a, f: int = 2):
    """Repeat a per-block map f times along both axes (8x8 -> 4x4 grid by default)."""
    return jnp.repeat(jnp.repeat(a, f, 0), f, 1)


def field_decisions(inter_dir, mv, ref_idx) -> BlockDecisions:
    """All-inter 8x8-CU `BlockDecisions` (4x4 grid) from per-8x8 motion (JAX or numpy)."""
    h8, w8 = inter_dir.shape
    z = jnp.zeros((2 * h8, 2 * w8), jnp.int8)
    return BlockDecisions(cu_log2=z + 3, tu_log2=z + 3, pred_mode=z + MODE_INTER, skip=z, merge_flag=z, merge_idx=z,
                          intra_mode=z + 1, intra_mode_c=z + 1, inter_dir=upsample(jnp.asarray(inter_dir, jnp.int8)),
                          mv=upsample(jnp.asarray(mv, jnp.int16)), ref_idx=upsample(jnp.asarray(ref_idx, jnp.int8)),
                          qp=z, cbf=jnp.zeros((2 * h8, 2 * w8, 3), jnp.int8))


def luma_prediction(refs_y, ref_list, inter_dir, mv, ref_idx, bit_depth):
    """Luma motion-compensated prediction of a per-8x8 motion field (`inter.motion_compensate`)."""
    refs_c = jnp.zeros((refs_y.shape[0], refs_y.shape[1] // 2, refs_y.shape[2] // 2), jnp.int32)
    # chroma is not needed for the decision; the kernel computes all planes, zeros are cheap
    d = field_decisions(inter_dir, mv, ref_idx)
    return inter.motion_compensate(refs_y, refs_c, refs_c, d, ref_list=ref_list, bit_depth=bit_depth)[0]


def median_mv_predictor(mv):
    """Median of the left, above and above-right (above-left at the right edge) MVs: the
    encoder's cheap stand-in for the AMVP predictor when it scores MV fields in bulk."""
    w8 = mv.shape[1]
    p = jnp.pad(mv, ((1, 0), (1, 1), (0, 0), (0, 0)))
    a, b, c = p[1:, :-2], p[:-1, 1:-1], p[:-1, 2:]
    if w8 > 1:
        c = c.at[:, -1].set(p[:-1, -3])
    return jnp.maximum(jnp.minimum(a, b), jnp.minimum(jnp.maximum(a, b), c))


@functools.partial(jax.jit, static_argnames=("bit_depth", "iterations"))
def merge_smooth(cur_y, refs_y, ref_list, inter_dir, mv, ref_idx, sqrt_lambda, *, bit_depth: int, iterations: int = 2):
    """Let each CU adopt its left or above neighbour's motion when that is cheaper in
    SAD + sqrt(lambda) x (MV-difference bits against the median predictor): the spatial
    coherence merge mode exploits, here as an encoder decision on the explicit-MV syntax."""
    refs_y = jnp.asarray(refs_y, jnp.int32)
    h8, w8 = inter_dir.shape
    cur = jnp.asarray(cur_y, jnp.int32)

    def block_sad(pred):
        return jnp.abs(cur - pred).reshape(h8, 8, w8, 8).sum((1, 3)).astype(jnp.float32)

    def cost(d, m, r):
        bits = motion.mv_bits((m - median_mv_predictor(m)).astype(jnp.float32)).sum(-1)
        return block_sad(luma_prediction(refs_y, ref_list, d, m, r, bit_depth)) + sqrt_lambda * bits

    for _ in range(iterations):
        own = cost(inter_dir, mv, ref_idx)
        for shift in ((0, 1), (1, 0)):
            def nb(a):
                rolled = jnp.roll(a, shift, (0, 1))
                edge = (jnp.arange(h8)[:, None] < shift[0]) | (jnp.arange(w8)[None, :] < shift[1])
                return jnp.where(edge.reshape(edge.shape + (1,) * (a.ndim - 2)), a, rolled)

            d2, m2, r2 = nb(inter_dir), nb(mv), nb(ref_idx)
            c2 = cost(d2, m2, r2)
            take = c2 < own
            inter_dir = jnp.where(take, d2, inter_dir)
            mv = jnp.where(take[..., None, None], m2, mv)
            ref_idx = jnp.where(take[..., None], r2, ref_idx)
            own = jnp.where(take, c2, own)
    return inter_dir, mv, ref_idx
