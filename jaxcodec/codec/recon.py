"""Frame reconstruction shared by encoder and decoder (H.265 8.4 / 8.5 / 8.6 decoding process).

Block structure: intra CUs of 8..32 luma samples with TU = CU, or 8x8 CUs with four 4x4 luma
TUs (DST-VII, 8.6.4.2) and one 4x4 TU per chroma plane; inter CUs of 8..64 with TU = min(CU, 32)
or (CUs up to 32) four TUs of half the CU.

* `intra_cus`: intra CUs reconstructed sequentially in decoding order (z-scan inside each CTU)
  inside one `lax.fori_loop` (reference samples from the reconstructed neighbours, 8.4.4.2).
  The *encoder* variant (``encode=True``) chooses the luma mode in the loop from the 35
  predictions (SAD + sqrt(lambda) x MPM-based mode bits) and quantizes the residual closed
  loop with RDOQ; the *decoder* variant reads modes and levels. Both run the same kernels in
  the same order, so they reconstruct the same samples. In inter pictures the intra CUs are
  coded after all inter CUs, which they may use as reference samples.
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

def _mode_bits(mode, mpm):
    # 8.4.2 binarization: prev_intra_luma_pred_flag + mpm_idx (1..2 bins) or 5-bit rem mode.
    hit = (mode[..., None] == mpm).any(-1)
    idx = jnp.argmax(mode[..., None] == mpm, -1)
    return jnp.where(hit, 2.0 + (idx > 0), 6.0)


# CU kinds of `intra_cus` (index of the lax.switch branch): an 8x8 CU split into four 4x4
# luma TUs (DST-VII), then one CU of 8, 16, 32 luma samples with TU = CU.
KIND_SPLIT8 = 0


def cu_kind(cu_log2: int, tu_log2: int) -> int:
    """`intra_cus` kind of an intra CU: 0 for the 4x4-TU 8x8 CU, else ``cu_log2 - 2``."""
    return 0 if tu_log2 == 2 else cu_log2 - 2


def _zorder(y4, x4, ctu4: int):
    """Morton index of a 4x4 unit inside its CTU (z-scan, H.265 6.5.2)."""
    out = np.zeros(np.shape(y4), np.int64)
    yy, xx = np.asarray(y4) % ctu4, np.asarray(x4) % ctu4
    for b in range(max(ctu4.bit_length(), 1)):
        out |= ((xx >> b) & 1) << (2 * b)
        out |= ((yy >> b) & 1) << (2 * b + 1)
    return out


def decoding_order4(h4: int, w4: int, ctu_size: int) -> np.ndarray:
    """Decoding-order index of every 4x4 luma unit: CTUs in raster order, z-scan inside."""
    ctu4 = ctu_size // 4
    y4, x4 = np.mgrid[0:h4, 0:w4]
    ctus_w = -(-w4 // ctu4)
    return ((y4 // ctu4) * ctus_w + x4 // ctu4) * ctu4 * ctu4 + _zorder(y4, x4, ctu4)


def intra_cu_list(decisions: BlockDecisions, ctu_size: int):
    """The intra CUs of a picture in decoding order (CTUs in raster order, z-scan inside).

    Returns numpy int32 ``(ys, xs, kinds)`` (luma sample origin, `cu_kind`) padded to one
    entry per 8x8 block, and the count: a fixed length so `intra_cus` compiles once per size.
    """
    cu = np.asarray(decisions.cu_log2)
    tu = np.asarray(decisions.tu_log2)
    is_intra = np.asarray(decisions.pred_mode) == MODE_INTRA
    h4, w4 = cu.shape
    y4, x4 = np.mgrid[0:h4, 0:w4]
    n4 = 1 << (cu.astype(np.int64) - 2)
    origin = is_intra & (y4 % n4 == 0) & (x4 % n4 == 0)
    ys, xs = y4[origin], x4[origin]
    order = np.argsort(decoding_order4(h4, w4, ctu_size)[ys, xs], kind="stable")
    ys, xs = ys[order], xs[order]
    kinds = np.array([cu_kind(int(cu[y, x]), int(tu[y, x])) for y, x in zip(ys, xs)], np.int32)
    size = max((h4 // 2) * (w4 // 2), 1)
    pad = lambda a: np.pad(np.asarray(a, np.int32), (0, size - len(a)))  # noqa: E731
    return pad(ys * 4), pad(xs * 4), pad(kinds), len(ys)


@functools.partial(jax.jit, static_argnames=("bit_depth", "encode", "ctu_size"))
def intra_cus(orig, init, cu_y, cu_x, cu_kinds, count, modes4, modes_c4, levels, qp, qpc, sqrt_lambda, done4, *,
              bit_depth: int, encode: bool, ctu_size: int = 64):
    """Reconstruct (and, with ``encode``, decide and quantize) a list of intra CUs in order.

    The intra CUs of an I picture (whole quadtree, 8x8 .. 32x32, 4x4 luma TUs with DST-VII in
    8x8 CUs) or those of an inter picture, coded after its inter CUs. One `lax.while_loop`
    over the CU list (`intra_cu_list`), one `lax.switch` branch per CU kind so every block
    size is static: reference samples from the current reconstruction (8.4.4.2.2, with the
    4x4-unit availability map ``done4``), prediction, residual, clipping, CU by CU and TU by
    TU (the second..fourth 4x4 TU predicts from the first). Encoder and decoder run the same
    kernels in the same order, so they reconstruct the same samples.

    Args:
      orig: source planes (y, u, v) (encoder) or anything of their shape (decoder).
      init: planes (y, u, v) the CUs are written into (zeros, or an inter reconstruction).
      cu_y, cu_x, cu_kinds, count: the CU list (`intra_cu_list`).
      modes4, modes_c4: int32 ``(H/4, W/4)`` luma / chroma modes. The decoder reads them. The
        encoder reads the luma mode of 4x4-TU CUs (decided beforehand: the four TUs share it)
        and decides every other CU's luma mode in the loop on the real neighbours (SAD +
        sqrt(lambda) x the MPM-based mode bits, 8.4.2), and every chroma mode among DM,
        planar, vertical, horizontal and DC (8.4.3) by U+V SAD + sqrt(lambda) x its bins.
        Units of non-intra CUs must hold DC (1), the MPM substitute for them.
      levels: int32 level planes (y, u, v) (decoder input; the encoder overwrites the CUs').
      qp, qpc: luma and chroma QP' (int32 scalars).
      done4: bool ``(H/4, W/4)``: units already reconstructed before the first CU.

    Returns:
      ``(rec (y, u, v), levels (y, u, v), modes4, modes_c4, pred (y, u, v))`` int32, with
      ``pred`` the intra prediction inside the CUs (``init``'s zeros elsewhere).
    """
    h, w = orig[0].shape
    peak = (1 << bit_depth) - 1
    orig = tuple(jnp.asarray(p, jnp.int32) for p in orig)
    rec = tuple(jnp.asarray(p, jnp.int32) for p in init)
    levels = tuple(jnp.asarray(p, jnp.int32) for p in levels)
    pred0 = tuple(jnp.zeros_like(p) for p in rec)
    modes4 = jnp.asarray(modes4, jnp.int32)
    modes_c4 = jnp.asarray(modes_c4, jnp.int32)

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

    def luma_refs(rec_y, done, y0, x0, log2n):
        at, al, ac, unit = intra.neighbour_availability(done, y0, x0, log2n)
        return intra.reference_samples(rec_y, y0, x0, log2n, at, al, ac, bit_depth=bit_depth, unit=unit)

    def set_block(plane, value, y0, x0, n):
        return jax.lax.dynamic_update_slice(plane, jnp.full((n, n), value, plane.dtype), (y0, x0))

    def chroma(state, y0, x0, log2c, mode):
        rec, levels, pred, done, modes4, modes_c4 = state
        cy0, cx0 = y0 // 2, x0 // 2
        cat, cal, cac, cunit = intra.neighbour_availability(done, cy0, cx0, log2c, chroma=True)
        refs_c = [intra.reference_samples(rec[c], cy0, cx0, log2c, cat, cal, cac, bit_depth=bit_depth, unit=cunit)
                  for c in (1, 2)]
        nc = 1 << log2c
        if encode:
            fixed = jnp.asarray([0, 26, 10, 1], jnp.int32)
            cand = jnp.concatenate([mode[None], jnp.where(fixed == mode, 34, fixed)])
            cost = sqrt_lambda * jnp.asarray([1.0, 3.0, 3.0, 3.0, 3.0], jnp.float32)
            cpreds = []
            for (ct, cl), orig_c in zip(refs_c, orig[1:]):
                p = jax.vmap(lambda m: intra.intra_predict(ct, cl, m, log2c, is_luma=False, bit_depth=bit_depth))(cand)
                blk = jax.lax.dynamic_slice(orig_c, (cy0, cx0), (nc, nc))
                cost = cost + transform.satd(p - blk)
                cpreds.append(p)
            pick = jnp.argmin(cost)
            mode_c = cand[pick]
            cpreds = [p[pick] for p in cpreds]
        else:
            mode_c = modes_c4[y0 // 4, x0 // 4]
            cpreds = [intra.intra_predict(ct, cl, mode_c, log2c, is_luma=False, bit_depth=bit_depth)
                      for ct, cl in refs_c]
        rec, levels, pred = list(rec), list(levels), list(pred)
        for c, cpred in ((1, cpreds[0]), (2, cpreds[1])):
            rec[c], levels[c] = code_tu(rec[c], levels[c], orig[c], cpred, cy0, cx0, log2c, qpc, False)
            pred[c] = jax.lax.dynamic_update_slice(pred[c], cpred, (cy0, cx0))
        modes_c4 = set_block(modes_c4, mode_c, y0 // 4, x0 // 4, 1 << (log2c - 1))
        return tuple(rec), tuple(levels), tuple(pred), done, modes4, modes_c4

    def whole_cu(log2n):
        n, n4 = 1 << log2n, 1 << (log2n - 2)

        def branch(state, y0, x0):
            rec, levels, pred, done, modes4, modes_c4 = state
            y4, x4 = y0 // 4, x0 // 4
            top, left = luma_refs(rec[0], done, y0, x0, log2n)
            if encode:
                # MPM candidates (8.4.2): left, above (above only within the same CTU row)
                left_m = jnp.where(x4 > 0, modes4[y4, jnp.maximum(x4 - 1, 0)], 1)
                above_m = jnp.where((y4 > 0) & ((y0 % ctu_size) != 0), modes4[jnp.maximum(y4 - 1, 0), x4], 1)
                mpm = intra.most_probable_modes(left_m, above_m)
                preds = intra.predict_all_modes(top[None], left[None], log2n, is_luma=True, bit_depth=bit_depth)[0]
                blk = jax.lax.dynamic_slice(orig[0], (y0, x0), (n, n))
                sad = transform.satd(preds - blk)
                mode = jnp.argmin(sad + sqrt_lambda * _mode_bits(jnp.arange(35, dtype=jnp.int32), mpm)).astype(jnp.int32)
                p = preds[mode]
                modes4 = set_block(modes4, mode, y4, x4, n4)
            else:
                mode = modes4[y4, x4]
                p = intra.intra_predict(top, left, mode, log2n, is_luma=True, bit_depth=bit_depth)
            ry, ly = code_tu(rec[0], levels[0], orig[0], p, y0, x0, log2n, qp, False)
            pred = (jax.lax.dynamic_update_slice(pred[0], p, (y0, x0)),) + pred[1:]
            done = set_block(done, True, y4, x4, n4)
            state = ((ry,) + rec[1:], (ly,) + levels[1:], pred, done, modes4, modes_c4)
            return chroma(state, y0, x0, log2n - 1, mode)

        return branch

    def split_cu(state, y0, x0):
        rec, levels, pred, done, modes4, modes_c4 = state
        mode = modes4[y0 // 4, x0 // 4]
        ry, ly, py = rec[0], levels[0], pred[0]
        for i in range(4):  # z-scan of the four TUs (8.4.4.1: each predicts from the ones before)
            ty, tx = y0 + 4 * (i // 2), x0 + 4 * (i % 2)
            top, left = luma_refs(ry, done, ty, tx, 2)
            p = intra.intra_predict(top, left, mode, 2, is_luma=True, bit_depth=bit_depth)
            ry, ly = code_tu(ry, ly, orig[0], p, ty, tx, 2, qp, True)
            py = jax.lax.dynamic_update_slice(py, p, (ty, tx))
            done = done.at[ty // 4, tx // 4].set(True)
        state = ((ry,) + rec[1:], (ly,) + levels[1:], (py,) + pred[1:], done, modes4, modes_c4)
        return chroma(state, y0, x0, 2, mode)

    # a CU larger than the picture cannot occur; its branch must still trace, as a no-op
    branches = [split_cu] + [whole_cu(log2n) if (1 << log2n) <= min(h, w) else (lambda st, y0, x0: st)
                             for log2n in (3, 4, 5)]

    def body(k, state):
        return jax.lax.switch(cu_kinds[k], branches, state, cu_y[k], cu_x[k])

    state = (rec, levels, pred0, jnp.asarray(done4, bool), modes4, modes_c4)
    rec, levels, pred, _, modes4, modes_c4 = jax.lax.fori_loop(0, count, body, state)
    return rec, levels, modes4, modes_c4, pred


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


def _chroma_log2(log2_luma):
    # 4:2:0: chroma TUs are half the luma size, but never below 4x4 (a 4x4-luma-TU CU has one
    # 4x4 chroma TU per plane, 7.3.8.8)
    return max(log2_luma - 1, 2)


@functools.partial(jax.jit, static_argnames=("log2_luma", "bit_depth"))
def residual_levels(pred, orig, log2_luma: int, qp, qpc, lambda_, *, bit_depth: int):
    """Encoder: RDOQ levels of ``orig - pred`` with every luma TU ``2**log2_luma`` (2..5) and
    chroma TUs half that (4x4 at least), over whole planes. Returns int32 level planes (y, u, v)."""
    out = []
    for c in range(3):
        log2n, q = (log2_luma, qp) if c == 0 else (_chroma_log2(log2_luma), qpc)
        p = jnp.asarray(pred[c], jnp.int32)

        def fn(r, log2n=log2n, q=q):
            coef = transform.forward_transform_tiles(r, log2n, bit_depth=bit_depth)
            return _tiles_q(coef, q, log2n, lambda t, q_, n: quant.rdoq(t, q_, n, lambda_=lambda_, bit_depth=bit_depth))

        out.append(_padded(fn, jnp.asarray(orig[c], jnp.int32) - p, log2n))
    return tuple(out)


@functools.partial(jax.jit, static_argnames=("bit_depth",))
def residual_planes(lev, tu_log2, qp, qpc, *, bit_depth: int):
    """Decoded residual (y, u, v) int32 of inter CUs whose luma TU size is ``tu_log2`` (4x4
    grid, 2..5, DCT-II; chroma TUs one size smaller, 4x4 at least, H.265 8.6.2 with 4:2:0).
    Each TU's levels lie in its own footprint, so inverse-transforming the whole level plane
    on the tile grid of each size and picking, per sample, the size its TU has gives every
    TU's residual."""
    tu = jnp.asarray(tu_log2, jnp.int32)
    out = []
    for c in range(3):
        lv = jnp.asarray(lev[c], jnp.int32)
        q = qp if c == 0 else qpc
        f = 4 if c == 0 else 2
        sel = jnp.repeat(jnp.repeat(tu if c == 0 else jnp.maximum(tu - 1, 2), f, 0), f, 1)
        res = jnp.zeros(lv.shape, jnp.int32)
        for log2n in ((2, 3, 4, 5) if c == 0 else (2, 3, 4)):
            res = jnp.where(sel == log2n, _residual(lv, q, log2n, bit_depth), res)
        out.append(res)
    return tuple(out)


@functools.partial(jax.jit, static_argnames=("bit_depth",))
def inter_reconstruct(pred, lev, tu_log2, qp, qpc, *, bit_depth: int):
    """``clip(pred + residual)`` of inter CUs (`residual_planes`)."""
    peak = (1 << bit_depth) - 1
    res = residual_planes(lev, tu_log2, qp, qpc, bit_depth=bit_depth)
    return tuple(jnp.clip(jnp.asarray(p, jnp.int32) + r, 0, peak) for p, r in zip(pred, res))


def cbf_map(levels: CoeffPlanes, tu_log2) -> np.ndarray:
    """Canonical coded-block flags (4x4 luma grid, Y/U/V) of ``levels`` for the TU layout
    ``tu_log2`` (4x4 grid, 2..5): a unit's flag is "any non-zero level in the TU covering it";
    the chroma TU is one size smaller than the luma one, and 4x4 for 4x4 luma TUs (the CU's
    single chroma TU, 7.3.8.8 with 4:2:0)."""
    tu = np.asarray(tu_log2)
    out = []
    for c, plane in enumerate((levels.y, levels.u, levels.v)):
        p = np.asarray(plane)
        sel = tu if c == 0 else np.maximum(tu - 1, 2)
        f = np.zeros(tu.shape, bool)
        for log2n in np.unique(sel):
            n = 1 << int(log2n)
            ph, pw = -p.shape[0] % n, -p.shape[1] % n
            q = np.pad(p, ((0, ph), (0, pw)))
            nz = (q.reshape(q.shape[0] // n, n, q.shape[1] // n, n) != 0).any((1, 3))
            r = n // (4 if c == 0 else 2)  # 4x4 luma units per TU side
            up = np.repeat(np.repeat(nz, r, 0), r, 1)[:tu.shape[0], :tu.shape[1]]
            f = np.where(sel == log2n, up, f)
        out.append(f)
    return np.stack(out, -1).astype(np.int8)


def intra_decisions(qp: int, cu_log2, tu_log2, modes4, modes_c4, levels: CoeffPlanes) -> BlockDecisions:
    """Canonical `BlockDecisions` of an all-intra picture from its CU / TU sizes and luma /
    chroma modes on the 4x4 grid and its levels (numpy)."""
    cu = np.asarray(cu_log2, np.int8)
    tu = np.asarray(tu_log2, np.int8)
    h4, w4 = cu.shape
    z = np.zeros((h4, w4), np.int8)
    return BlockDecisions(
        cu_log2=cu, tu_log2=tu, pred_mode=z + MODE_INTRA, skip=z, merge_flag=z, merge_idx=z,
        intra_mode=np.asarray(modes4, np.int8), intra_mode_c=np.asarray(modes_c4, np.int8), inter_dir=z,
        mv=np.zeros((h4, w4, 2, 2), np.int16), ref_idx=np.full((h4, w4, 2), -1, np.int8),
        qp=np.full((h4, w4), qp, np.int8), cbf=cbf_map(levels, tu),
    )


def check_layout(decisions: BlockDecisions, intra_picture_: bool) -> None:
    """Refuse parsed decisions this reconstruction cannot follow with a `BitstreamError` (the
    syntax can express more than the reconstruction implements): intra CUs of 8..32 with TU =
    CU or, in 8x8 CUs, four 4x4 TUs; inter CUs of 8..64 with TU = min(CU, 32) or, up to 32, four
    TUs of half the CU; no inter CU in an intra picture."""
    cu, tu = np.asarray(decisions.cu_log2), np.asarray(decisions.tu_log2)
    is_intra = np.asarray(decisions.pred_mode) == MODE_INTRA
    if intra_picture_ and not is_intra.all():
        raise BitstreamError("intra picture with inter CUs")
    if (cu[is_intra] > 5).any():
        raise BitstreamError("intra CU of 64x64, which this decoder does not implement")
    ok_intra = (tu == cu) | ((cu == 3) & (tu == 2))
    if not ok_intra[is_intra].all():
        raise BitstreamError("intra CU with a transform split other than 4x4 TUs in an 8x8 CU, which this decoder "
                             "does not implement")
    ok_inter = (tu == np.minimum(cu, 5)) | ((cu <= 5) & (tu == cu - 1))
    if not ok_inter[~is_intra].all():
        raise BitstreamError("inter CU with a transform split deeper than one level, which this decoder does not "
                             "implement")
