"""Encoder decision of the intra CU quadtree (8x8 .. 32x32, 4x4 TUs) by Lagrangian RDO.

HM's ``TEncCu::xCheckRDCostIntra`` over the quadtree, split in the same two halves as the
inter decision (`jaxcodec.codec.partition`):

* `level_candidates` (JAX, vectorised over the picture): for one CU kind (an 8x8 CU with four
  4x4 luma TUs coded with DST-VII, or a CU of 8, 16 or 32 with TU = CU) every block's best
  luma mode by SAD over the 35 predictions, the chroma planes predicted with that mode (DM),
  RDOQ levels, and the SSE (Y + U + V) per 8x8 that reconstruction leaves. Open loop: the
  reference samples come from a stand-in picture (the source in intra pictures), with the
  availability the decoder will see (`intra.availability_in_order`).
* `decide_quadtree` (sequential): each CTU depth first in decoding order; per node the
  cheapest of the CU (and for 8x8 its 4x4-TU variant) and the four sub-CUs by
  J = SSE + lambda * R, with R counted by the stream writer itself (`entropy.syntax.BitCounter`).

The chosen structure is then coded closed loop by `jaxcodec.codec.recon.intra_cus`, which
re-decides the modes of whole-TU CUs on the real neighbours. Encoder only.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcodec.codec import intra, quant, recon, transform
from jaxcodec.codec.blocks import MODE_INTRA, CoeffPlanes
from jaxcodec.codec.entropy import syntax
from jaxcodec.codec.partition import rdo_quadtree

# CU kinds, as `recon.intra_cus` numbers them: 0 = 8x8 CU with 4x4 TUs, k = CU of 2**(k+2).
KINDS = (0, 1, 2, 3)


def _kind_log2(kind: int) -> tuple[int, int]:
    """(CU log2, luma TU log2) of a kind."""
    return (3, 2) if kind == 0 else (kind + 2, kind + 2)


def cu_log2(kind: int) -> int:
    """CU size (log2) of a kind."""
    return _kind_log2(kind)[0]


def _blocks(plane, n: int):
    h, w = plane.shape
    return jnp.swapaxes(plane.reshape(h // n, n, w // n, n), 1, 2).reshape(-1, n, n)


def _unblocks(b, h: int, w: int):
    n = b.shape[-1]
    return jnp.swapaxes(b.reshape(h // n, w // n, n, n), 1, 2).reshape(h, w)


def _refs(plane, log2n: int, order4, *, chroma: bool, bit_depth: int):
    """Unfiltered reference samples of every ``2**log2n`` block of ``plane``: availability in
    decoding order, or everything available (bar the picture edge) without ``order4``."""
    n = 1 << log2n
    h, w = plane.shape
    by, bx = jnp.meshgrid(jnp.arange(h // n, dtype=jnp.int32) * n, jnp.arange(w // n, dtype=jnp.int32) * n,
                          indexing="ij")
    unit = 2 if chroma else 4

    def one(y0, x0):
        if order4 is None:
            ones = jnp.ones(((2 << log2n) // unit,), bool)
            at, al, ac = ones, ones, True
        else:
            at, al, ac, _ = intra.availability_in_order(order4, y0, x0, log2n, chroma=chroma)
        return intra.reference_samples(plane, y0, x0, log2n, at, al, ac, bit_depth=bit_depth, unit=unit)

    return jax.vmap(one)(by.ravel(), bx.ravel())


@functools.partial(jax.jit, static_argnames=("kind", "ordered", "ctu_size", "bit_depth"))
def level_candidates(orig, qp, qpc, lambda_, neighbours=None, *, kind: int, ordered: bool = True,
                     ctu_size: int = 64, bit_depth: int):
    """Open-loop intra coding of every CU of one kind (see module doc).

    Args:
      orig: source planes (y, u, v), luma sides multiples of 8.
      qp, qpc: luma and chroma QP'; lambda_: the RDOQ Lagrangian.
      neighbours: planes the reference samples are read from (default ``orig``).
      kind: 0 (8x8 CU, four 4x4 TUs sharing one mode) or 1..3 (CU of 8, 16, 32, TU = CU).
      ordered: reference availability in decoding order (an intra picture); False treats
        every neighbour inside the picture as available (intra CUs coded after the inter CUs).

    Returns:
      ``(mode (H/S, W/S) int32, sse8 (H/8, W/8) float32, levels (y, u, v) int32)`` with S the
      CU size (the grid covers the picture padded to whole CUs; blocks crossing the edge are
      estimates the quadtree never takes).
    """
    log2_cu, log2_tu = _kind_log2(kind)
    cu = 1 << log2_cu
    h, w = orig[0].shape
    ph, pw = -h % cu, -w % cu

    def pad(p, sub):
        return jnp.pad(jnp.asarray(p, jnp.int32), ((0, ph // sub), (0, pw // sub)), mode="edge")

    oy, ou, ov = pad(orig[0], 1), pad(orig[1], 2), pad(orig[2], 2)
    ny, nu, nv = (oy, ou, ov) if neighbours is None else (pad(neighbours[0], 1), pad(neighbours[1], 2),
                                                          pad(neighbours[2], 2))
    hp, wp = oy.shape
    order4 = jnp.asarray(recon.decoding_order4(hp // 4, wp // 4, ctu_size), jnp.int32) if ordered else None
    peak = (1 << bit_depth) - 1
    hc, wc = hp // cu, wp // cu

    # luma: one mode per CU by SAD over its TUs (the four 4x4 TUs of kind 0 share it)
    top, left = _refs(ny, log2_tu, order4, chroma=False, bit_depth=bit_depth)
    preds = intra.predict_all_modes(top, left, log2_tu, is_luma=True, bit_depth=bit_depth)  # (B, 35, t, t)
    blk_y = _blocks(oy, 1 << log2_tu)
    sad = transform.satd(preds - blk_y[:, None])
    if kind == 0:
        sad_cu = sad.reshape(hc, 2, wc, 2, 35).sum((1, 3)).reshape(-1, 35)
        mode_cu = jnp.argmin(sad_cu, -1).astype(jnp.int32).reshape(hc, wc)
        mode_tu = jnp.repeat(jnp.repeat(mode_cu, 2, 0), 2, 1).ravel()
    else:
        mode_cu = jnp.argmin(sad, -1).astype(jnp.int32).reshape(hc, wc)
        mode_tu = mode_cu.ravel()
    pred_y = jnp.take_along_axis(preds, mode_tu[:, None, None, None], 1)[:, 0]

    log2_c = max(log2_cu - 1, 2)
    out_lev, sse = [], 0.0
    for c, (plane, nb, log2n, q) in enumerate(((oy, ny, log2_tu, qp), (ou, nu, log2_c, qpc), (ov, nv, log2_c, qpc))):
        if c == 0:
            pred = pred_y
        else:
            ct, cl = _refs(nb, log2n, order4, chroma=True, bit_depth=bit_depth)
            pred = jax.vmap(lambda t, l_, m: intra.intra_predict(t, l_, m, log2n, is_luma=False, bit_depth=bit_depth))(
                ct, cl, mode_cu.ravel())
        dst = c == 0 and log2n == 2
        blk = _blocks(plane, 1 << log2n)
        coef = jax.vmap(lambda r: transform.forward_transform(r, log2n, dst=dst, bit_depth=bit_depth))(blk - pred)
        lev = quant.rdoq(coef, q, log2n, lambda_=lambda_, bit_depth=bit_depth)
        res = jax.vmap(lambda lv: transform.inverse_transform(quant.dequantize(lv, q, log2n, bit_depth=bit_depth),
                                                              log2n, dst=dst, bit_depth=bit_depth))(lev)
        err = (_unblocks(blk - jnp.clip(pred + res, 0, peak), *plane.shape)).astype(jnp.float32) ** 2
        b = 8 if c == 0 else 4
        sse = sse + err.reshape(err.shape[0] // b, b, err.shape[1] // b, b).sum((1, 3))
        sub = 1 if c == 0 else 2
        out_lev.append(_unblocks(lev, *plane.shape)[:h // sub, :w // sub])
    return mode_cu, sse[:h // 8, :w // 8], tuple(out_lev)


def decide_quadtree(cands: dict, info: syntax.FrameSyntaxInfo, lambda_: float, qp: int, *, max_log2: int = 5):
    """Depth-first RDO of an intra picture's CU quadtree (see module doc).

    Args:
      cands: ``{kind: (mode, sse8, levels)}`` numpy (`level_candidates`); kind 1 (8x8 CUs)
        is required, the others are options (kind 0 only where ``info.intra_tu_split``).
      info: the picture's syntax info (slice type I).
      max_log2: largest CU tried (a 64x64 CTU is always split).

    Returns ``(decisions, levels)`` canonical for `entropy.syntax`; the modes are the
    open-loop ones (`recon.intra_cus` re-decides those of whole-TU CUs).
    """
    h, w = info.height, info.width
    h8, w8 = h // 8, w // 8
    h4, w4 = 2 * h8, 2 * w8
    up = lambda a, f: np.repeat(np.repeat(np.asarray(a), f, 0), f, 1)  # noqa: E731
    mode8 = up(cands[1][0], 2)[:h4, :w4]
    coeffs = CoeffPlanes(np.zeros((h, w), np.int32), np.zeros((h // 2, w // 2), np.int32),
                         np.zeros((h // 2, w // 2), np.int32))
    d0 = recon.intra_decisions(qp, np.full((h4, w4), 3), np.full((h4, w4), 3), mode8, mode8, coeffs)
    counter = syntax.BitCounter(d0, coeffs, info)
    g = counter.grid
    ctx0 = syntax.init_contexts(info.slice_type, info.qp)
    kinds = [k for k in KINDS if k in cands and (k != 0 or info.intra_tu_split)]

    def put(y8, x8, kind):
        log2, log2_tu = _kind_log2(kind)
        s8, n4 = 1 << (log2 - 3), 1 << (log2 - 2)
        mode_grid, sse8, levs = cands[kind]
        ys, xs = slice(2 * y8, 2 * y8 + n4), slice(2 * x8, 2 * x8 + n4)
        mode = int(mode_grid[y8 // s8, x8 // s8])
        g.cu_log2[ys, xs] = log2
        g.tu_log2[ys, xs] = log2_tu
        g.intra_mode[ys, xs] = mode
        g.intra_mode_c[ys, xs] = mode
        for c, (plane, lev) in enumerate(zip(counter.planes, levs)):
            sh = 0 if c == 0 else 1
            y0, x0, n = (y8 * 8) >> sh, (x8 * 8) >> sh, (s8 * 8) >> sh
            blk = lev[y0:y0 + n, x0:x0 + n]
            plane[y0:y0 + n, x0:x0 + n] = blk
            if c == 0 and kind == 0:
                g.cbf[ys, xs, 0] = (blk.reshape(2, 4, 2, 4) != 0).any((1, 3))
            else:
                g.cbf[ys, xs, c] = int(blk.any())
        d = float(sse8[y8:y8 + s8, x8:x8 + s8].sum())
        return d, d + lambda_ * counter.count(x8 * 8, y8 * 8, log2, ctx0)[0]

    def leaf(y8, x8, log2):
        s8 = 1 << (log2 - 3)
        if y8 + s8 > h8 or x8 + s8 > w8 or log2 > max_log2:
            return None
        best = None
        for kind in [k for k in kinds if _kind_log2(k)[0] == log2]:
            d, j = put(y8, x8, kind)
            if best is None or j < best[1]:
                best = (d, j, kind)
        if best is None:
            return None
        if best[2] != kind:
            put(y8, x8, best[2])
        return best[:2]

    rdo_quadtree(counter, info, lambda_, leaf)
    planes = CoeffPlanes(*(np.array(p) for p in counter.planes))
    decisions = recon.intra_decisions(qp, g.cu_log2, g.tu_log2, g.intra_mode, g.intra_mode_c, planes)
    return decisions, planes
