"""Frame reconstruction shared by encoder and decoder (H.265 8.4 / 8.5 / 8.6 decoding process).

v1 block structure: intra pictures are all intra 8x8 luma CUs with one 8x8 luma TU and one 4x4
TU per chroma plane; B pictures are all inter, CUs 8..64 with TU = min(CU, 32).

* `intra_picture`: CUs reconstructed sequentially in raster order inside one `lax.fori_loop`
  (reference samples from the reconstructed neighbours, 8.4.4.2). The *encoder* variant
  (``encode=True``) chooses the luma mode in the loop from the 35 predictions (SAD + sqrt(lambda)
  x MPM-based mode bits) and quantizes the residual closed loop with RDOQ; the *decoder* variant reads modes
  and levels. Both run the same kernels in the same order, so they reconstruct the same samples.
* inter pictures: prediction from `inter.motion_compensate`; `residual_levels` quantizes a
  whole frame's residual at one TU size at once (it does not depend on the current
  reconstruction; the CU/TU sizes are chosen by `jaxcodec.codec.partition`), and
  `inter_reconstruct` adds the dequantized, inverse-transformed levels of TUs of any size.
* `loop_filter`: deblocking (8.7.2) with picture-identity bS.

Everything here is integer arithmetic; jitted once per frame size.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcodec.codec import intra, quant, transform
from jaxcodec.codec.blocks import MODE_INTRA, BlockDecisions, CoeffPlanes
from jaxcodec.errors import BitstreamError

CU = 8


def _mode_bits(mode, mpm):
    # 8.4.2 binarization: prev_intra_luma_pred_flag + mpm_idx (1..2 bins) or 5-bit rem mode.
    hit = (mode[..., None] == mpm).any(-1)
    idx = jnp.argmax(mode[..., None] == mpm, -1)
    return jnp.where(hit, 2.0 + (idx > 0), 6.0)


@functools.partial(jax.jit, static_argnames=("bit_depth", "encode", "ctu_size"))
def intra_picture(orig_y, orig_u, orig_v, modes, lev_y, lev_u, lev_v, qp, qpc, sqrt_lambda, modes_c=None,
                  init=None, mask8=None, *, bit_depth: int, encode: bool, ctu_size: int = 64):
    """Reconstruct (and, with ``encode``, decide and quantize) an all-intra picture.

    Args:
      orig_*: original planes (encoder) or anything of the right shape (decoder).
      modes: int32 ``(H/8, W/8)`` luma modes (decoder input; ignored when encoding).
      modes_c: int32 ``(H/8, W/8)`` chroma modes actually used (decoder input; default DM).
        The encoder picks each CU's chroma mode among DM, planar, vertical, horizontal and DC
        (34 substituted for the one equal to the luma mode, 8.4.3) by U+V SAD plus
        sqrt(lambda) x its bins.
      init, mask8: intra CUs inside an inter picture. ``init`` (y, u, v) holds the picture
        with its inter CUs already reconstructed; only the 8x8 CUs where ``mask8 (H/8, W/8)``
        is True are coded (the others keep ``init`` and are available as reference samples,
        and count as DC for the MPM estimate).
      lev_*: int32 level planes (decoder input; ignored when encoding).
      qp, qpc: luma and chroma QP (int32 scalars).

    Returns:
      ``(rec_y, rec_u, rec_v, modes, lev_y, lev_u, lev_v, modes_c)`` int32.
    """
    h, w = orig_y.shape
    h8, w8 = h // CU, w // CU
    peak = (1 << bit_depth) - 1
    orig_y = orig_y.astype(jnp.int32)
    orig_u = orig_u.astype(jnp.int32)
    orig_v = orig_v.astype(jnp.int32)
    if init is None:
        rec = (jnp.zeros((h, w), jnp.int32), jnp.zeros((h // 2, w // 2), jnp.int32),
               jnp.zeros((h // 2, w // 2), jnp.int32))
    else:
        rec = tuple(jnp.asarray(p, jnp.int32) for p in init)
    levels = (jnp.asarray(lev_y, jnp.int32), jnp.asarray(lev_u, jnp.int32), jnp.asarray(lev_v, jnp.int32))
    modes = jnp.asarray(modes, jnp.int32)
    if mask8 is None:
        done = jnp.zeros((h // 4, w // 4), bool)
    else:
        mask8 = jnp.asarray(mask8, bool)
        done = ~jnp.repeat(jnp.repeat(mask8, 2, 0), 2, 1)
        modes = jnp.where(mask8, modes, 1)
    modes_c = modes if modes_c is None else jnp.asarray(modes_c, jnp.int32)

    def code_tu(rec_p, lev_p, orig_p, pred, y0, x0, log2n, q, dst):
        n = 1 << log2n
        if encode:
            blk = jax.lax.dynamic_slice(orig_p, (y0, x0), (n, n))
            coef = transform.forward_transform(blk - pred, log2n, dst=dst, bit_depth=bit_depth)
            lev = quant.rdoq(coef, q, log2n, lambda_=sqrt_lambda * sqrt_lambda, bit_depth=bit_depth)
            lev_p = jax.lax.dynamic_update_slice(lev_p, lev, (y0, x0))
        else:
            lev = jax.lax.dynamic_slice(lev_p, (y0, x0), (n, n))
        res = transform.inverse_transform(quant.dequantize(lev, q, log2n, bit_depth=bit_depth), log2n,
                                          dst=dst, bit_depth=bit_depth)
        out = jnp.clip(pred + res, 0, peak)
        return jax.lax.dynamic_update_slice(rec_p, out, (y0, x0)), lev_p

    def body(k, state):
        rec, levels, done, modes, modes_c = state
        by, bx = k // w8, k % w8
        y0, x0 = by * CU, bx * CU
        at, al, ac, unit = intra.neighbour_availability(done, y0, x0, 3)
        top, left = intra.reference_samples(rec[0], y0, x0, 3, at, al, ac, bit_depth=bit_depth, unit=unit)
        if encode:
            # MPM candidates (8.4.2): left, above (above only within the same CTU row).
            left_m = jnp.where(bx > 0, modes[by, jnp.maximum(bx - 1, 0)], 1)
            above_m = jnp.where((by > 0) & ((y0 % ctu_size) != 0), modes[jnp.maximum(by - 1, 0), bx], 1)
            mpm = intra.most_probable_modes(left_m, above_m)
            preds = intra.predict_all_modes(top[None], left[None], 3, is_luma=True, bit_depth=bit_depth)[0]
            blk = jax.lax.dynamic_slice(orig_y, (y0, x0), (CU, CU))
            sad = jnp.abs(preds - blk).sum((-2, -1)).astype(jnp.float32)
            cost = sad + sqrt_lambda * _mode_bits(jnp.arange(35, dtype=jnp.int32), mpm)
            mode = jnp.argmin(cost).astype(jnp.int32)
            pred = preds[mode]
            modes = modes.at[by, bx].set(mode)
        else:
            mode = modes[by, bx]
            pred = intra.intra_predict(top, left, mode, 3, is_luma=True, bit_depth=bit_depth)
        ry, ly = code_tu(rec[0], levels[0], orig_y, pred, y0, x0, 3, qp, False)
        new_rec, new_lev = [ry], [ly]
        cy0, cx0 = y0 // 2, x0 // 2
        cat, cal, cac, cunit = intra.neighbour_availability(done, cy0, cx0, 2, chroma=True)
        refs_c = [intra.reference_samples(rec[c], cy0, cx0, 2, cat, cal, cac, bit_depth=bit_depth, unit=cunit)
                  for c in (1, 2)]
        if encode:
            fixed = jnp.asarray([0, 26, 10, 1], jnp.int32)
            cand = jnp.concatenate([mode[None], jnp.where(fixed == mode, 34, fixed)])
            cost = sqrt_lambda * jnp.asarray([1.0, 3.0, 3.0, 3.0, 3.0], jnp.float32)
            cpreds = []
            for (ct, cl), orig_c in zip(refs_c, (orig_u, orig_v)):
                p = jax.vmap(lambda m: intra.intra_predict(ct, cl, m, 2, is_luma=False, bit_depth=bit_depth))(cand)
                blk = jax.lax.dynamic_slice(orig_c, (cy0, cx0), (CU // 2, CU // 2))
                cost = cost + jnp.abs(p - blk).sum((-2, -1)).astype(jnp.float32)
                cpreds.append(p)
            pick = jnp.argmin(cost)
            mode_c = cand[pick]
            modes_c = modes_c.at[by, bx].set(mode_c)
            cpreds = [p[pick] for p in cpreds]
        else:
            mode_c = modes_c[by, bx]
            cpreds = [intra.intra_predict(ct, cl, mode_c, 2, is_luma=False, bit_depth=bit_depth) for ct, cl in refs_c]
        for c, orig_c, cpred in ((1, orig_u, cpreds[0]), (2, orig_v, cpreds[1])):
            rc, lc = code_tu(rec[c], levels[c], orig_c, cpred, cy0, cx0, 2, qpc, False)
            new_rec.append(rc)
            new_lev.append(lc)
        done = jax.lax.dynamic_update_slice(done, jnp.ones((2, 2), bool), (by * 2, bx * 2))
        return tuple(new_rec), tuple(new_lev), done, modes, modes_c

    step = body
    if mask8 is not None:
        def step(k, state):
            return jax.lax.cond(mask8[k // w8, k % w8], lambda s: body(k, s), lambda s: s, state)

    rec, levels, _, modes, modes_c = jax.lax.fori_loop(0, h8 * w8, step, (rec, levels, done, modes, modes_c))
    return rec + levels + (modes, modes_c)


def _tiles_q(plane, q, log2n, fn):
    t = transform.plane_to_tiles(plane, log2n)
    return transform.tiles_to_plane(fn(t, q, log2n), log2n)


def _padded(fn, plane, log2n):
    """``fn`` on ``plane`` zero-padded to whole ``2**log2n`` tiles, cropped back: TUs of that
    size never cross the picture edge (the CU quadtree splits there), so the padding only
    fills tiles no TU uses."""
    n = 1 << log2n
    h, w = plane.shape
    ph, pw = -h % n, -w % n
    if ph or pw:
        return fn(jnp.pad(plane, ((0, ph), (0, pw))))[:h, :w]
    return fn(plane)


def _residual(lev, q, log2n, bit_depth):
    def fn(lv):
        deq = _tiles_q(lv, q, log2n, lambda t, q_, n: quant.dequantize(t, q_, n, bit_depth=bit_depth))
        return transform.inverse_transform_tiles(deq, log2n, bit_depth=bit_depth)

    return _padded(fn, lev, log2n)


@functools.partial(jax.jit, static_argnames=("log2_luma", "bit_depth"))
def residual_levels(pred, orig, log2_luma: int, qp, qpc, lambda_, *, bit_depth: int):
    """Encoder: RDOQ levels of ``orig - pred`` with every luma TU ``2**log2_luma`` (3..5) and
    chroma TUs half that (4:2:0), over whole planes. Returns int32 level planes (y, u, v)."""
    out = []
    for c in range(3):
        log2n, q = (log2_luma, qp) if c == 0 else (log2_luma - 1, qpc)
        p = jnp.asarray(pred[c], jnp.int32)

        def fn(r, log2n=log2n, q=q):
            coef = transform.forward_transform_tiles(r, log2n, bit_depth=bit_depth)
            return _tiles_q(coef, q, log2n, lambda t, q_, n: quant.rdoq(t, q_, n, lambda_=lambda_, bit_depth=bit_depth))

        out.append(_padded(fn, jnp.asarray(orig[c], jnp.int32) - p, log2n))
    return tuple(out)


@functools.partial(jax.jit, static_argnames=("bit_depth",))
def residual_planes(lev, tu_log2, qp, qpc, *, bit_depth: int):
    """Decoded residual (y, u, v) int32 of CUs whose luma TU size is ``tu_log2`` (4x4 grid,
    3..5; chroma TUs one size smaller, H.265 8.6.2 with 4:2:0). Each TU's levels lie in its
    own footprint, so inverse-transforming the whole level plane on the tile grid of each size
    and picking, per sample, the size its TU has gives every TU's residual."""
    tu = jnp.asarray(tu_log2, jnp.int32)
    out = []
    for c in range(3):
        lv = jnp.asarray(lev[c], jnp.int32)
        q = qp if c == 0 else qpc
        f = 4 if c == 0 else 2
        sel = jnp.repeat(jnp.repeat(tu, f, 0), f, 1) - (0 if c == 0 else 1)
        res = jnp.zeros(lv.shape, jnp.int32)
        for log2_luma in (3, 4, 5):
            log2n = log2_luma - (0 if c == 0 else 1)
            res = jnp.where(sel == log2n, _residual(lv, q, log2n, bit_depth), res)
        out.append(res)
    return tuple(out)


@functools.partial(jax.jit, static_argnames=("bit_depth",))
def inter_reconstruct(pred, lev, tu_log2, qp, qpc, *, bit_depth: int):
    """``clip(pred + residual)`` of inter CUs (`residual_planes`)."""
    peak = (1 << bit_depth) - 1
    res = residual_planes(lev, tu_log2, qp, qpc, bit_depth=bit_depth)
    return tuple(jnp.clip(jnp.asarray(p, jnp.int32) + r, 0, peak) for p, r in zip(pred, res))


def cbf_map(levels: CoeffPlanes) -> np.ndarray:
    """Coded-block flags on the 4x4 luma grid for the v1 layout (8x8 luma TU, 4x4 chroma TU)."""
    out = []
    for plane, n in ((levels.y, 8), (levels.u, 4), (levels.v, 4)):
        p = np.asarray(plane)
        nz = (p.reshape(p.shape[0] // n, n, p.shape[1] // n, n) != 0).any((1, 3))
        out.append(np.repeat(np.repeat(nz, 2, 0), 2, 1))
    return np.stack(out, -1).astype(np.int8)


def intra_decisions(qp: int, modes, modes_c, levels: CoeffPlanes) -> BlockDecisions:
    """`BlockDecisions` (4x4 grid) of an intra picture of 8x8 CUs from its per-CU luma and
    chroma modes ``(H/8, W/8)`` and levels (numpy)."""
    up = lambda a: np.repeat(np.repeat(np.asarray(a, np.int8), 2, 0), 2, 1)  # noqa: E731
    h4, w4 = 2 * np.shape(modes)[0], 2 * np.shape(modes)[1]
    z = np.zeros((h4, w4), np.int8)
    return BlockDecisions(
        cu_log2=z + 3, tu_log2=z + 3, pred_mode=z + MODE_INTRA, skip=z, merge_flag=z, merge_idx=z,
        intra_mode=up(modes), intra_mode_c=up(modes_c), inter_dir=z,
        mv=np.zeros((h4, w4, 2, 2), np.int16), ref_idx=np.full((h4, w4, 2), -1, np.int8),
        qp=np.full((h4, w4), qp, np.int8), cbf=cbf_map(levels),
    )


def check_v1_layout(decisions: BlockDecisions, intra_picture_: bool) -> None:
    """Refuse parsed decisions this reconstruction cannot follow (I pictures: intra 8x8 CUs
    and TUs; B pictures: inter CUs of 8..64 with TU = min(CU, 32)) with a `BitstreamError`:
    the syntax can express more than the v1 reconstruction implements."""
    cu, tu = np.asarray(decisions.cu_log2), np.asarray(decisions.tu_log2)
    if intra_picture_ and ((cu != 3).any() or (tu != 3).any()):
        raise BitstreamError("intra picture uses CU/TU sizes other than 8x8, which this decoder does not implement")
    is_intra = np.asarray(decisions.pred_mode) == MODE_INTRA
    if not intra_picture_ and (tu != np.where(is_intra, 3, np.minimum(cu, 5))).any():
        raise BitstreamError("inter picture uses a TU split, which this decoder does not implement")
    if not intra_picture_ and (cu[is_intra] != 3).any():
        raise BitstreamError("inter picture has an intra CU other than 8x8, which this decoder does not implement")
    if intra_picture_ and not is_intra.all():
        raise BitstreamError("intra picture with inter CUs")
