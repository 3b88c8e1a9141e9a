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

from jaxcodec.codec import motion
from jaxcodec.codec.blocks import PRED_BI, PRED_L0, PRED_L1


@functools.partial(jax.jit, static_argnames=("search_range", "bit_depth", "subpel"))
def analyse_inter(cur_y, refs_y, ref_list, sqrt_lambda, *, search_range: int, bit_depth: int, subpel: bool):
    """Decide inter_dir ``(H8, W8)``, mv ``(H8, W8, 2, 2)`` (quarter samples, [list][x, y]) and
    ref_idx ``(H8, W8, 2)`` (-1 unused) for every 8x8 CU.

    ``refs_y (P, H, W)``: DPB slots; ``ref_list (2, R)``: slot of each (list, ref_idx).
    """
    cur_y = jnp.asarray(cur_y, jnp.int32)
    search = functools.partial(motion.search_ref, search_range=search_range, bit_depth=bit_depth, subpel=subpel)
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
