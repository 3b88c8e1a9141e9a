"""Encoder decision of the inter CU quadtree (8x8 .. 64x64) by Lagrangian RDO.

HM's ``TEncCu::xCompressCU`` in spirit, split in two halves:

* a vectorised JAX half (`motion_pyramid`, `level_candidates`) that, for every CU size S,
  proposes one motion per SxS block (the best of its four children's motions by SAD, starting
  from the 8x8 motion search) and computes, for the whole picture at once, the RDOQ levels
  with TU = min(S, 32), the SSE after reconstruction and the SSE of the bare prediction (the
  "no residual" option), per 8x8 block;
* a sequential half (`decide_quadtree`) that walks each CTU depth first in decoding order and
  keeps, per node, the cheaper of "one CU" (with or without its residual; merge/skip derived
  against the already decided neighbours) and "four sub-CUs", costing J = SSE + lambda * R
  where R is counted by the *stream writer itself* (`entropy.syntax.BitCounter`, the same
  code that writes the payload: rav1e's Writer / x264 rdo.c habit). Contexts are those at the
  start of the picture (no context carry between candidates).

Encoder only: the decoder reads the resulting decisions from the stream.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcodec.codec import analysis, inter, merge, motion, recon
from jaxcodec.codec.blocks import MODE_INTER, MODE_INTRA, BlockDecisions, CoeffPlanes
from jaxcodec.codec.entropy import mvpred, syntax

SIZES_LOG2 = (3, 4, 5, 6)


_up = analysis.upsample
field_decisions = analysis.field_decisions  # re-exported: the 8x8 field -> decisions used here


def _block_sum(a8, s8: int):
    """Sum of an (H8, W8) map over s8 x s8 blocks (zero padded at the edges)."""
    h8, w8 = a8.shape
    a = jnp.pad(a8, ((0, -h8 % s8), (0, -w8 % s8)))
    return a.reshape(a.shape[0] // s8, s8, a.shape[1] // s8, s8).sum((1, 3))


def _level_bits(d, m, r):
    """Approximate motion bits of every block of an S-level field ``(HS, WS)``: ~2 when it
    repeats its left or above neighbour (a merge candidate, A1/B1 of 8.5.3.2.3), else the MV
    difference against the median predictor plus inter_dir/ref/mvp overhead."""
    def same(a, b):
        eq = (a[0] == b[0]) & (a[2] == b[2]).all(-1)
        return eq & (a[1] == b[1]).all((-1, -2))

    left = tuple(jnp.pad(x, ((0, 0), (1, 0)) + ((0, 0),) * (x.ndim - 2), constant_values=-9)[:, :-1] for x in (d, m, r))
    above = tuple(jnp.pad(x, ((1, 0), (0, 0)) + ((0, 0),) * (x.ndim - 2), constant_values=-9)[:-1] for x in (d, m, r))
    merge_hit = same((d, m, r), left) | same((d, m, r), above)
    explicit = motion.mv_bits((m - analysis.median_mv_predictor(m)).astype(jnp.float32)).sum(-1) + 4.0
    return jnp.where(merge_hit, 2.0, explicit)


def _smooth_level(cur, refs_y, ref_list, field, s8: int, sqrt_lambda, bit_depth: int, iterations: int = 2):
    """Let each SxS block adopt its left or above neighbour's motion when SAD + sqrt(lambda) x
    `_level_bits` says so: the encoder side of merge mode at size S."""
    h8, w8 = field[0].shape
    sub = tuple(x[::s8, ::s8] for x in field)
    hs, ws = sub[0].shape

    def to8(x):
        return _up(x, s8)[:h8, :w8]

    def sad(f):
        pred = analysis.luma_prediction(refs_y, ref_list, *(to8(x) for x in f), bit_depth)
        return _block_sum(jnp.abs(cur - pred).reshape(h8, 8, w8, 8).sum((1, 3)).astype(jnp.float32), s8)

    def cost(f):
        return sad(f) + sqrt_lambda * _level_bits(*f)

    own = cost(sub)
    for _ in range(iterations):
        for shift in ((0, 1), (1, 0)):
            edge = (jnp.arange(hs)[:, None] < shift[0]) | (jnp.arange(ws)[None, :] < shift[1])

            def nb(a):
                return jnp.where(edge.reshape(edge.shape + (1,) * (a.ndim - 2)), a, jnp.roll(a, shift, (0, 1)))

            cand = tuple(nb(x) for x in sub)
            mixed_cost = cost(cand)
            take = mixed_cost < own
            sub = tuple(jnp.where(take.reshape(take.shape + (1,) * (a.ndim - 2)), b, a) for a, b in zip(sub, cand))
            own = jnp.where(take, mixed_cost, own)
    return tuple(to8(x) for x in sub)


@functools.partial(jax.jit, static_argnames=("bit_depth",))
def motion_pyramid(cur_y, refs_y, ref_list, inter_dir, mv, ref_idx, sqrt_lambda, *, bit_depth: int):
    """Per-size motion fields at 8x8 granularity: ``[(inter_dir, mv, ref_idx)]`` for S = 8, 16,
    32, 64, each constant over SxS blocks. S's motion is the child (S/2 block) motion with the
    least luma SAD over the whole SxS block, then neighbour adoption (`_smooth_level`) so
    that coherent regions share one motion and code it as merge/skip."""
    cur = jnp.asarray(cur_y, jnp.int32)
    refs_y = jnp.asarray(refs_y, jnp.int32)
    h8, w8 = inter_dir.shape
    fields = [(inter_dir, mv, ref_idx)]
    yy, xx = np.mgrid[0:h8, 0:w8]
    for log2 in SIZES_LOG2[1:]:
        s8, c8 = 1 << (log2 - 3), 1 << (log2 - 4)
        d_c, m_c, r_c = fields[-1]
        sads, cands = [], []
        for k in range(4):
            # child k of the S block containing each 8x8 position (clamped into the picture)
            cy = np.minimum((yy // s8) * s8 + (k // 2) * c8, h8 - 1)
            cx = np.minimum((xx // s8) * s8 + (k % 2) * c8, w8 - 1)
            cand = (d_c[cy, cx], m_c[cy, cx], r_c[cy, cx])
            pred = analysis.luma_prediction(refs_y, ref_list, *cand, bit_depth)
            sad8 = jnp.abs(cur - pred).reshape(h8, 8, w8, 8).sum((1, 3))
            sads.append(_block_sum(sad8, s8))
            cands.append(cand)
        best = jnp.argmin(jnp.stack(sads), 0)  # (HS, WS)
        b8 = _up(best, s8)[:h8, :w8]
        pick = lambda arrs: functools.reduce(  # noqa: E731
            lambda acc, k: jnp.where((b8 == k).reshape(b8.shape + (1,) * (arrs[k].ndim - 2)), arrs[k], acc),
            range(1, 4), arrs[0])
        field = tuple(pick([c[i] for c in cands]) for i in range(3))
        fields.append(_smooth_level(cur, refs_y, ref_list, field, s8, sqrt_lambda, bit_depth))
    return fields


@functools.partial(jax.jit, static_argnames=("log2_luma", "log2_split", "bit_depth"))
def level_candidates(orig, refs, ref_list, field, qp, qpc, lambda_, *, log2_luma: int, log2_split: int | None = None,
                     bit_depth: int):
    """For one CU size: the motion-compensated prediction of ``field``, RDOQ levels at luma TU
    ``2**log2_luma``, and per-8x8 SSE (Y + U + V) after reconstruction and of the prediction.
    With ``log2_split``, the same residual is also coded with TUs of that size (the CU's
    one-level transform split).

    Returns ``(levels (y, u, v), sse_rec8, sse_pred8, sse_pred8_luma, rec (y, u, v))`` with
    float32 ``(H8, W8)`` SSE maps, plus ``(levels_split, sse_rec8_split)`` with ``log2_split``.
    """
    d = field_decisions(*field)
    pred = inter.motion_compensate(*refs, d, ref_list=ref_list, bit_depth=bit_depth)

    def sse8(planes, comps=(0, 1, 2)):
        out = 0.0
        for c in comps:
            e = (jnp.asarray(orig[c], jnp.int32) - planes[c]).astype(jnp.float32) ** 2
            b = 8 if c == 0 else 4
            out = out + e.reshape(e.shape[0] // b, b, e.shape[1] // b, b).sum((1, 3))
        return out

    def coded(log2_tu):
        levels = recon.residual_levels(pred, orig, log2_tu, qp, qpc, lambda_, bit_depth=bit_depth)
        tu = jnp.full(d.cu_log2.shape, log2_tu, jnp.int32)
        return levels, recon.inter_reconstruct(pred, levels, tu, qp, qpc, bit_depth=bit_depth)

    levels, rec = coded(log2_luma)
    pred = tuple(jnp.asarray(p, jnp.int32) for p in pred)
    out = (levels, sse8(rec), sse8(pred), sse8(pred, (0,)), rec)
    if log2_split is not None:
        levels_s, rec_s = coded(log2_split)
        out = out + (levels_s, sse8(rec_s))
    return out


def _luma_block_sse(orig_y, refs_y, ref_list, x0, y0, n, idir, mv, ref, bit_depth):
    """SSE of the luma prediction of one n x n block for any motion (8-tap, float rounding:
    an encoder estimate of what `inter.motion_compensate` will produce exactly)."""
    h, w = orig_y.shape
    preds = []
    for lst in range(2):
        if not (idir >> lst) & 1:
            continue
        plane = refs_y[ref_list[lst, ref[lst]]]
        mx, my = int(mv[lst, 0]), int(mv[lst, 1])
        rows = np.clip(y0 + (my >> 2) - 3 + np.arange(n + 7), 0, h - 1)
        cols = np.clip(x0 + (mx >> 2) - 3 + np.arange(n + 7), 0, w - 1)
        win = plane[np.ix_(rows, cols)].astype(np.float32)
        fx, fy = inter.LUMA_FILTER[mx & 3], inter.LUMA_FILTER[my & 3]
        tmp = sum(float(fx[i]) * win[:, i:i + n] for i in range(8))
        preds.append(sum(float(fy[i]) * tmp[i:i + n, :] for i in range(8)) / 4096.0)
    pred = np.clip(np.rint(sum(preds) / len(preds)), 0, (1 << bit_depth) - 1)
    return float(((orig_y[y0:y0 + n, x0:x0 + n] - pred) ** 2).sum())


class SavedNode:
    """Saved state of a node's footprint (grid units and level samples), to undo a trial."""

    __slots__ = ("grid", "planes")

    def __init__(self, counter, y4, x4, n4):
        ys, xs = slice(y4, y4 + n4), slice(x4, x4 + n4)
        self.grid = [a[ys, xs].copy() for a in counter.grid]
        self.planes = [p[(y4 * 4 >> s):((y4 + n4) * 4 >> s), (x4 * 4 >> s):((x4 + n4) * 4 >> s)].copy()
                       for p, s in zip(counter.planes, (0, 1, 1))]

    def restore(self, counter, y4, x4, n4):
        ys, xs = slice(y4, y4 + n4), slice(x4, x4 + n4)
        for a, saved in zip(counter.grid, self.grid):
            a[ys, xs] = saved
        for p, s, saved in zip(counter.planes, (0, 1, 1), self.planes):
            p[(y4 * 4 >> s):((y4 + n4) * 4 >> s), (x4 * 4 >> s):((x4 + n4) * 4 >> s)] = saved


def rdo_quadtree(counter, info: syntax.FrameSyntaxInfo, lambda_: float, leaf) -> None:
    """Depth-first split decision over every CTU, J = D + lambda * R (HM's xCompressCU order).

    ``leaf(y8, x8, log2)`` codes the node unsplit into ``counter`` (its best candidate) and
    returns ``(D, J)``, or None where the node must split (picture edge, size not allowed).
    A node's J with split is the children's D plus lambda times the bits of the node as a
    whole (split flag and children, counted by the stream writer's own counter); where the
    unsplit coding wins, the counter's footprint is put back as the leaf left it.
    """
    h8, w8 = info.height // 8, info.width // 8
    ctx0 = syntax.init_contexts(info.slice_type, info.qp)

    def node(y8, x8, log2):
        best = leaf(y8, x8, log2)
        if log2 == 3:
            return best
        s8 = 1 << (log2 - 3)
        if best is not None:
            saved = SavedNode(counter, 2 * y8, 2 * x8, 2 * s8)
        d_split = 0.0
        half = s8 // 2
        for cy, cx in ((y8, x8), (y8, x8 + half), (y8 + half, x8), (y8 + half, x8 + half)):
            if cy < h8 and cx < w8:
                d_split += node(cy, cx, log2 - 1)[0]
        if best is None:  # forced split: nothing to compare
            return d_split, 0.0
        j_split = d_split + lambda_ * counter.count(x8 * 8, y8 * 8, log2, ctx0)[0]
        if best[1] <= j_split:
            saved.restore(counter, 2 * y8, 2 * x8, 2 * s8)
            return best
        return d_split, j_split

    ctu8 = info.ctu_size // 8
    ctu_log2 = info.ctu_size.bit_length() - 1
    for y8 in range(0, h8, ctu8):
        for x8 in range(0, w8, ctu8):
            node(y8, x8, ctu_log2)


def decide_quadtree(fields, cands, info: syntax.FrameSyntaxInfo, lambda_: float, qp: int, *, orig_y=None,
                    refs_y=None, ref_list=None, merge_min_log2: int = 4, bit_depth: int = 8, intra=None
                    ) -> tuple[BlockDecisions, CoeffPlanes]:
    """Depth-first RDO over every CTU (see module doc).

    Args:
      fields: numpy motion fields per size (`motion_pyramid`), 8x8 granularity.
      cands: per size the `level_candidates` output (numpy); where it carries the split
        levels (``log2_split``), the CU also tries its residual in four TUs of half its size.
      info: the picture's syntax info (the counter codes exactly what the writer will).
      orig_y, refs_y, ref_list: source luma, reference luma stack and list slots; when given,
        CUs of ``merge_min_log2`` and up also try skip with each merge candidate (HM's
        ``xCheckRDCostMerge2Nx2N``), its luma SSE estimated by `_luma_block_sse` and its
        chroma SSE taken from the CU's own prediction.
      intra: `intra_partition.level_candidates` output for 8x8 CUs (numpy): 8x8 CUs also try
        intra with its open-loop mode, levels and SSE (the encoder then codes the intra CUs
        closed loop).
    Returns the decisions (canonical for `entropy.syntax`) and levels to code.
    """
    h, w = info.height, info.width
    h8, w8 = h // 8, w // 8
    d0 = jax.tree_util.tree_map(np.array, field_decisions(*fields[0]))
    d0 = d0.replace(qp=np.full(d0.cu_log2.shape, qp, np.int8))
    coeffs = CoeffPlanes(np.zeros((h, w), np.int32), np.zeros((h // 2, w // 2), np.int32),
                         np.zeros((h // 2, w // 2), np.int32))
    counter = syntax.BitCounter(d0, coeffs, info)
    g = counter.grid
    ctx0 = syntax.init_contexts(info.slice_type, info.qp)
    zidx, ref_poc = counter.scratch.zidx, counter.scratch.ref_poc
    n_l0, n_l1, is_b = len(info.refs_l0), len(info.refs_l1), info.slice_type == "B"
    up2 = lambda a: np.repeat(np.repeat(a, 2, 0), 2, 1)  # noqa: E731

    cmv, cref, cdir = np.zeros((5, 2, 2), np.int64), np.zeros((5, 2), np.int64), np.zeros(5, np.int64)
    orig_y = None if orig_y is None else np.asarray(orig_y, np.float32)
    if refs_y is not None:
        refs_y, ref_list = np.asarray(refs_y), np.asarray(ref_list)
    sse_luma_pred = [c[3] for c in cands]

    def put_cu(y8, x8, log2, residual: bool, motion=None, split: bool = False):
        s8, n4 = 1 << (log2 - 3), 1 << (log2 - 2)
        y4, x4 = 2 * y8, 2 * x8
        ys, xs = slice(y4, y4 + n4), slice(x4, x4 + n4)
        k = log2 - 3
        if motion is None:
            idir, mv, ref = (f[y8, x8] for f in fields[k])
        else:
            idir, mv, ref = motion
        tu_log2 = log2 - 1 if split else min(log2, 5)
        g.cu_log2[ys, xs] = log2
        g.tu_log2[ys, xs] = tu_log2
        g.pred_mode[ys, xs] = MODE_INTER
        g.intra_mode[ys, xs] = 1
        g.intra_mode_c[ys, xs] = 1
        g.inter_dir[ys, xs] = idir
        g.mv[ys, xs] = mv
        g.ref_idx[ys, xs] = ref
        for c, (plane, lev) in enumerate(zip(counter.planes, cands[k][5 if split else 0])):
            sh = 0 if c == 0 else 1
            y0, x0, n = (y8 * 8) >> sh, (x8 * 8) >> sh, (s8 * 8) >> sh
            blk = lev[y0:y0 + n, x0:x0 + n] if residual else 0
            plane[y0:y0 + n, x0:x0 + n] = blk
            t = (1 << tu_log2) if c == 0 else max((1 << tu_log2) >> 1, 4)
            nz = (plane[y0:y0 + n, x0:x0 + n].reshape(n // t, t, n // t, t) != 0).any((1, 3))
            g.cbf[ys, xs, c] = np.repeat(np.repeat(nz, n4 // nz.shape[0], 0), n4 // nz.shape[1], 1)
        if split and not g.cbf[ys, xs].any():
            g.tu_log2[ys, xs] = min(log2, 5)  # no coded residual: no transform tree, TU canonical
        merge.derive(np.array([y4], np.int64), np.array([x4], np.int64), g.cu_log2, g.pred_mode, g.mv, g.ref_idx,
                      g.inter_dir, g.cbf, zidx, ref_poc, n_l0, n_l1, is_b, info.max_merge_cand, g.skip, g.merge_flag,
                      g.merge_idx)
        bits, _ = counter.count(x8 * 8, y8 * 8, log2, ctx0)
        return bits

    def put_intra(y8, x8):
        ys, xs = slice(2 * y8, 2 * y8 + 2), slice(2 * x8, 2 * x8 + 2)
        mode = int(intra[0][y8, x8])
        g.cu_log2[ys, xs] = 3
        g.tu_log2[ys, xs] = 3
        g.pred_mode[ys, xs] = MODE_INTRA
        g.skip[ys, xs] = 0
        g.merge_flag[ys, xs] = 0
        g.merge_idx[ys, xs] = 0
        g.intra_mode[ys, xs] = mode
        g.intra_mode_c[ys, xs] = mode
        g.inter_dir[ys, xs] = 0
        g.mv[ys, xs] = 0
        g.ref_idx[ys, xs] = -1
        for c, (plane, lev) in enumerate(zip(counter.planes, intra[2])):
            n = 8 if c == 0 else 4
            blk = lev[y8 * n:(y8 + 1) * n, x8 * n:(x8 + 1) * n]
            plane[y8 * n:(y8 + 1) * n, x8 * n:(x8 + 1) * n] = blk
            g.cbf[ys, xs, c] = int(blk.any())
        return counter.count(x8 * 8, y8 * 8, 3, ctx0)[0]

    def leaf(y8, x8, log2):
        """Code the node unsplit with its best candidate; returns its (D, J) (None: must split)."""
        s8 = 1 << (log2 - 3)
        if y8 + s8 <= h8 and x8 + s8 <= w8:
            k = log2 - 3
            d_res = float(cands[k][1][y8:y8 + s8, x8:x8 + s8].sum())
            best = (d_res, d_res + lambda_ * put_cu(y8, x8, log2, True))
            best_motion, best_res, best_split = None, True, False
            if len(cands[k]) > 5 and log2 <= 5:
                # the same motion with the residual coded in four TUs of half the CU
                d_s = float(cands[k][6][y8:y8 + s8, x8:x8 + s8].sum())
                if d_s < best[1]:
                    j_s = d_s + lambda_ * put_cu(y8, x8, log2, True, split=True)
                    if j_s < best[1]:
                        best, best_split = (d_s, j_s), True
            d_pred = float(cands[k][2][y8:y8 + s8, x8:x8 + s8].sum())
            if g.cbf[2 * y8:2 * (y8 + s8), 2 * x8:2 * (x8 + s8)].any():
                # the same motion without residual (skip when it is a merge candidate)
                j_pred = d_pred + lambda_ * put_cu(y8, x8, log2, False)
                if j_pred < best[1]:
                    best, best_res, best_split = (d_pred, j_pred), False, False
            if orig_y is not None and log2 >= merge_min_log2:
                own = (int(fields[k][0][y8, x8]), fields[k][1][y8, x8], fields[k][2][y8, x8])
                d_chroma = d_pred - float(sse_luma_pred[k][y8:y8 + s8, x8:x8 + s8].sum())
                n_cand = mvpred.merge_candidates(2 * x8, 2 * y8, 2 * s8, g.mv, g.ref_idx, g.inter_dir, g.pred_mode,
                                                 zidx, ref_poc, n_l0, n_l1, is_b, info.max_merge_cand, cmv, cref,
                                                 cdir)
                seen = []
                for c in range(n_cand):
                    used = np.array([(cdir[c] >> lst) & 1 for lst in range(2)], bool)
                    cand = (int(cdir[c]), np.where(used[:, None], cmv[c], 0).astype(np.int16),
                            np.where(used, cref[c], -1).astype(np.int8))
                    key = (cand[0], cand[1].tobytes(), cand[2].tobytes())
                    if key in seen or (cand[0] == own[0] and (cand[1] == own[1]).all() and (cand[2] == own[2]).all()):
                        continue
                    seen.append(key)
                    d_c = d_chroma + _luma_block_sse(orig_y, refs_y, ref_list, 8 * x8, 8 * y8, 8 * s8, *cand,
                                                     bit_depth)
                    if d_c >= best[1]:
                        continue
                    j_c = d_c + lambda_ * put_cu(y8, x8, log2, False, cand)
                    if j_c < best[1]:
                        best, best_res, best_motion, best_split = (d_c, j_c), False, cand, False
            best_intra = False
            if intra is not None and log2 == 3 and float(intra[1][y8, x8]) < best[1]:
                d_i = float(intra[1][y8, x8])
                j_i = d_i + lambda_ * put_intra(y8, x8)
                if j_i < best[1]:
                    best, best_intra = (d_i, j_i), True
            if not best_intra:
                put_cu(y8, x8, log2, best_res, best_motion, best_split)
            return best
        return None

    rdo_quadtree(counter, info, lambda_, leaf)
    decisions = BlockDecisions(**{name: np.array(a) for name, a in g._asdict().items()})
    planes = CoeffPlanes(*(np.array(p) for p in counter.planes))
    return decisions, planes
