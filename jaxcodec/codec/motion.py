"""Encoder motion search, vectorised over the whole frame (encoder only; never feeds the decoder).

* `integer_search`: full search of every 8x8 block over ``+-search_range`` integer
  displacements, SAD plus ``sqrt(lambda)`` times an MV-bit estimate (HM's
  ``TEncSearch::xPatternSearch`` cost with a zero predictor), one `lax.scan` over rows of
  displacements so memory stays ``O((2R+1) H W)``.
* `subpel_refine`: quarter-pel refinement around the integer vector (HM half- then quarter-pel
  pattern collapsed into one +-3 quarter-sample window), on planes interpolated with the
  kernels' 8-tap filters (`jaxcodec.codec.inter.interpolate_plane`) so the SAD is measured on
  the exact prediction the decoder will form.
* `coarse_search` + `local_search`: hierarchical search for motion beyond the full search's
  window (x264's ``--me`` starts from predictors for the same reason): a full search on the
  4x-subsampled planes gives each 32x32 region a centre up to ``4 * coarse_range`` samples
  away, refined at full resolution by a +-3 window around it; the cheaper of that and the
  zero-centred full search wins per 8x8 block.
* `bi_cost`: SAD of the rounded average of the best list-0 and list-1 predictions.
* `window_search` / `align_window`: the full search against a reference window whose
  surroundings the caller supplies, and the block-wise motion-compensated picture it gives: a
  decoder-side alignment of decoded neighbours for temporal post filters (`wrappers`).
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp

from jaxcodec.codec import inter

BLOCK = 8


def _block_sum(x, b: int = BLOCK):
    h, w = x.shape[-2:]
    return x.reshape(x.shape[:-2] + (h // b, b, w // b, b)).sum((-3, -1))


def mv_bits(mv_qpel):
    """Rough exp-Golomb length of a quarter-sample MV component pair (zero predictor)."""
    a = jnp.abs(mv_qpel)
    return (2 * jnp.floor(jnp.log2(a + 1.0)) + 1).sum(-1)


@functools.partial(jax.jit, static_argnames=("search_range",))
def integer_search(cur, ref, sqrt_lambda, *, search_range: int):
    """Best integer MV per 8x8 block: ``cur, ref (H, W)`` -> ``mv (H/8, W/8, 2)`` [x, y] in
    integer samples and its cost (float32). Outside the picture ``ref`` is edge-extended."""
    r = search_range
    return window_search(cur, jnp.pad(ref.astype(jnp.int32), r, mode="edge"), sqrt_lambda, search_range=r)


@functools.partial(jax.jit, static_argnames=("search_range",))
def window_search(cur, ref_window, sqrt_lambda, *, search_range: int):
    """`integer_search` against ``ref_window (H + 2R, W + 2R)``: the reference samples around
    ``cur``'s position, R = ``search_range`` on every side. The caller says what lies beyond the
    picture (edge extension in `integer_search`; a crop's real surroundings in training)."""
    r = search_range
    h, w = cur.shape
    chex.assert_shape(ref_window, (h + 2 * r, w + 2 * r))
    cur = cur.astype(jnp.int32)
    pad = ref_window.astype(jnp.int32)
    dxs = jnp.arange(-r, r + 1, dtype=jnp.int32)

    def row(carry, dy):
        best_cost, best_mv = carry
        strip = jax.lax.dynamic_slice(pad, (dy + r, 0), (h, w + 2 * r))

        def col(dx):
            cand = jax.lax.dynamic_slice(strip, (0, dx + r), (h, w))
            return _block_sum(jnp.abs(cur - cand))

        sad = jax.vmap(col)(dxs).astype(jnp.float32)  # (2r+1, H8, W8)
        mvs = jnp.stack([dxs, jnp.full_like(dxs, dy)], -1) * 4
        cost = sad + sqrt_lambda * mv_bits(mvs.astype(jnp.float32))[:, None, None]
        i = jnp.argmin(cost, 0)
        c = jnp.take_along_axis(cost, i[None], 0)[0]
        mv = jnp.stack([dxs[i], jnp.full_like(i, dy)], -1)
        better = c < best_cost
        return (jnp.where(better, c, best_cost), jnp.where(better[..., None], mv, best_mv)), None

    init = (jnp.full((h // BLOCK, w // BLOCK), jnp.inf, jnp.float32), jnp.zeros((h // BLOCK, w // BLOCK, 2), jnp.int32))
    # Scan dy from 0 outwards-equivalent order is not needed: ties keep the first (dy = -r ..),
    # so bias ties toward zero motion through the MV cost term instead.
    (cost, mv), _ = jax.lax.scan(row, init, jnp.arange(-r, r + 1, dtype=jnp.int32))
    return mv, cost


@functools.partial(jax.jit, static_argnames=("search_range",))
def align_window(cur, ref_window, sqrt_lambda, *, search_range: int):
    """``cur (H, W)`` predicted from ``ref_window`` (`window_search`) block by block: the
    reference's samples moved onto ``cur``'s grid by each 8x8 block's integer MV, ``(H, W)`` in
    ``ref_window``'s dtype. A decoder-side motion compensation: it needs only decoded pictures."""
    r = search_range
    h, w = cur.shape
    mv, _ = window_search(cur, ref_window, sqrt_lambda, search_range=r)
    by, bx = jnp.meshgrid(jnp.arange(h // BLOCK, dtype=jnp.int32) * BLOCK,
                          jnp.arange(w // BLOCK, dtype=jnp.int32) * BLOCK, indexing="ij")

    def one(y, x):
        return jax.lax.dynamic_slice(ref_window, (y, x), (BLOCK, BLOCK))

    blocks = jax.vmap(jax.vmap(one))(by + r + mv[..., 1], bx + r + mv[..., 0])  # (H8, W8, 8, 8)
    return jnp.swapaxes(blocks, 1, 2).reshape(h, w)


def _downsample4(x):
    h, w = x.shape
    x = jnp.pad(x.astype(jnp.int32), ((0, -h % 32), (0, -w % 32)), mode="edge")
    return (x.reshape(x.shape[0] // 4, 4, x.shape[1] // 4, 4).sum((1, 3)) + 8) >> 4


def coarse_search(cur, ref, sqrt_lambda, *, coarse_range: int):
    """Integer MV (full-resolution samples, multiples of 4) of every 8x8 block from a full
    search of its 32x32 region on the 4x-subsampled planes (``+-4 coarse_range`` samples)."""
    h, w = cur.shape
    mv4, _ = integer_search(_downsample4(cur), _downsample4(ref), sqrt_lambda / 4, search_range=coarse_range)
    mv = jnp.repeat(jnp.repeat(mv4 * 4, 4, 0), 4, 1)
    return mv[: h // BLOCK, : w // BLOCK]


def local_search(cur, ref, centre, sqrt_lambda, *, radius: int, pad: int):
    """Best integer MV within ``+-radius`` of a per-block ``centre (H8, W8, 2)`` (samples):
    SAD + sqrt(lambda) x MV bits, like `integer_search`. ``pad`` >= max |centre| + radius."""
    h, w = cur.shape
    h8, w8 = h // BLOCK, w // BLOCK
    refp = jnp.pad(ref.astype(jnp.int32), pad, mode="edge")
    cur_b = jnp.swapaxes(cur.astype(jnp.int32).reshape(h8, BLOCK, w8, BLOCK), 1, 2)
    by, bx = jnp.meshgrid(jnp.arange(h8, dtype=jnp.int32) * BLOCK, jnp.arange(w8, dtype=jnp.int32) * BLOCK,
                          indexing="ij")
    d = jnp.arange(-radius, radius + 1, dtype=jnp.int32)
    cands = jnp.stack(jnp.meshgrid(d, d, indexing="ij"), -1).reshape(-1, 2)[:, ::-1]  # [dx, dy]

    def cost_of(delta):
        mv = centre + delta
        ys = jnp.clip(pad + by + mv[..., 1], 0, refp.shape[0] - BLOCK)
        xs = jnp.clip(pad + bx + mv[..., 0], 0, refp.shape[1] - BLOCK)
        blocks = jax.vmap(jax.vmap(lambda y, x: jax.lax.dynamic_slice(refp, (y, x), (BLOCK, BLOCK))))(ys, xs)
        sad = jnp.abs(cur_b - blocks).sum((-2, -1)).astype(jnp.float32)
        return sad + sqrt_lambda * mv_bits((mv * 4).astype(jnp.float32))

    costs = jax.lax.map(cost_of, cands)
    i = jnp.argmin(costs, 0)
    return centre + cands[i], jnp.take_along_axis(costs, i[None], 0)[0]


def subpel_planes(ref, *, pad: int, bit_depth: int):
    """All 16 quarter-sample phases of a luma plane as samples, ``(4, 4, H + 2 pad, W + 2 pad)``
    indexed ``[frac_y, frac_x]``."""
    f = jnp.arange(4, dtype=jnp.int32)
    interp = functools.partial(inter.interpolate_plane, ref, is_luma=True, bit_depth=bit_depth, pad=pad)
    p14 = jax.vmap(lambda fy: jax.vmap(lambda fx: interp(fx, fy))(f))(f)
    return inter.finish_uni(p14, bit_depth=bit_depth)


def predict_blocks(planes, mv_qpel, *, pad: int):
    """8x8 predictions of every block for per-block quarter-sample MVs ``(H8, W8, 2)``."""
    h8, w8 = mv_qpel.shape[:2]
    by, bx = jnp.meshgrid(jnp.arange(h8, dtype=jnp.int32) * BLOCK, jnp.arange(w8, dtype=jnp.int32) * BLOCK, indexing="ij")
    ix, iy = mv_qpel[..., 0] >> 2, mv_qpel[..., 1] >> 2
    fx, fy = mv_qpel[..., 0] & 3, mv_qpel[..., 1] & 3
    hp, wp = planes.shape[-2:]
    ys = jnp.clip(pad + by + iy, 0, hp - BLOCK)
    xs = jnp.clip(pad + bx + ix, 0, wp - BLOCK)

    def one(fy_, fx_, y, x):
        return jax.lax.dynamic_slice(planes[fy_, fx_], (y, x), (BLOCK, BLOCK))

    return jax.vmap(jax.vmap(one))(fy, fx, ys, xs)


@functools.partial(jax.jit, static_argnames=("search_range", "bit_depth", "subpel", "coarse_range"))
def search_ref(cur, ref, sqrt_lambda, *, search_range: int, bit_depth: int, subpel: bool, coarse_range: int = 0):
    """Integer search (plus the hierarchical one when ``coarse_range`` > 0), then
    (optionally) the +-3 quarter-sample window.

    Returns ``mv (H8, W8, 2)`` quarter samples, ``cost (H8, W8)`` and the 8x8 predictions
    ``(H8, W8, 8, 8)`` of the chosen vectors.
    """
    mv_int, cost_int = integer_search(cur, ref, sqrt_lambda, search_range=search_range)
    reach = search_range
    if coarse_range > 0:
        radius = 3
        reach = max(search_range, 4 * coarse_range + 4 + radius)
        centre = coarse_search(cur, ref, sqrt_lambda, coarse_range=coarse_range)
        mv_loc, cost_loc = local_search(cur, ref, centre, sqrt_lambda, radius=radius, pad=reach)
        better = cost_loc < cost_int
        mv_int = jnp.where(better[..., None], mv_loc, mv_int)
    pad = reach + 4
    planes = subpel_planes(ref.astype(jnp.int32), pad=pad, bit_depth=bit_depth)
    cur_b = jnp.swapaxes(cur.astype(jnp.int32).reshape(cur.shape[0] // BLOCK, BLOCK, cur.shape[1] // BLOCK, BLOCK), 1, 2)
    base = mv_int * 4
    deltas = jnp.arange(-3, 4, dtype=jnp.int32) if subpel else jnp.zeros((1,), jnp.int32)
    cands = jnp.stack(jnp.meshgrid(deltas, deltas, indexing="ij"), -1).reshape(-1, 2)

    def cost_of(d):
        mv = base + d
        pred = predict_blocks(planes, mv, pad=pad)
        sad = jnp.abs(cur_b - pred).sum((-2, -1)).astype(jnp.float32)
        return sad + sqrt_lambda * mv_bits(mv.astype(jnp.float32)), pred

    costs, preds = jax.lax.map(cost_of, cands)
    i = jnp.argmin(costs, 0)
    mv = base + cands[i]
    cost = jnp.take_along_axis(costs, i[None], 0)[0]
    pred = jnp.take_along_axis(preds, i[None, ..., None, None], 0)[0]
    return mv, cost, pred
