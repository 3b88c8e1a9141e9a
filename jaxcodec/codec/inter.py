"""Inter prediction: fractional sample interpolation and default weighted prediction,
H.265 8.5.3.3.3 and 8.5.3.3.4.2.

Kernel contract (stated once, here):

* ``mv`` is ``(mv_x, mv_y)`` in quarter *luma* samples (int). For luma, ``frac = mv & 3`` and
  the integer part is ``mv >> 2``; for 4:2:0 chroma the same vector is read in eighth chroma
  samples (``mv & 7``, ``mv >> 3``), H.265 8.5.3.2.10.
* Reference sample coordinates are clamped to the picture (edge extension), as in 8.5.3.3.3.
* The interpolation output is the spec's 14-bit intermediate ``predSamplesLX`` (int32):
  full-sample positions give ``ref << (14 - bit_depth)``; a fractional position filters
  horizontally with ``>> (bit_depth - 8)`` and then vertically with ``>> 6`` (no rounding
  offsets, exactly as the spec; see `_filter_window` for why one separable pass with an
  identity tap row reproduces all four cases of the spec bit-exactly).
* `finish_uni` / `finish_bi` turn intermediates into samples (8.5.3.3.4.2): rounding shift by
  ``14 - bit_depth`` (uni) or ``15 - bit_depth`` (bi), clipped to ``0..2**bit_depth - 1``.
* Luma filters are 8-tap (quarter, half, three-quarter), chroma 4-tap (eighth positions),
  H.265 Tables 8-11 / 8-12 (8.5.3.3.3.1 / 8.5.3.3.3.2); row 0 is the identity ``64``.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxcodec.codec.blocks import BlockDecisions, PRED_BI, PRED_L0, PRED_L1, MODE_INTER

LUMA_FILTER = np.array([
    [0, 0, 0, 64, 0, 0, 0, 0],
    [-1, 4, -10, 58, 17, -5, 1, 0],
    [-1, 4, -11, 40, 40, -11, 4, -1],
    [0, 1, -5, 17, 58, -10, 4, -1],
], np.int32)
CHROMA_FILTER = np.array([
    [0, 64, 0, 0],
    [-2, 58, 10, -2],
    [-4, 54, 16, -2],
    [-6, 46, 28, -4],
    [-4, 36, 36, -4],
    [-4, 28, 46, -6],
    [-2, 16, 54, -4],
    [-2, 10, 58, -2],
], np.int32)


def _geometry(is_luma: bool):
    """(filter table, taps, samples before the position, log2 sub-sample precision)."""
    return (LUMA_FILTER, 8, 3, 2) if is_luma else (CHROMA_FILTER, 4, 1, 3)


def _filter_window(win, frac_x, frac_y, h: int, w: int, *, is_luma: bool, bit_depth: int):
    """Separable interpolation of a ``(h + taps - 1, w + taps - 1)`` window -> ``(h, w)`` int32.

    The spec has four cases (full, horizontal only, vertical only, both). Using the identity
    row ``64`` for a zero fraction folds them into one: with ``s1 = bit_depth - 8 <= 6``,
    ``(64 * v) >> s1 == v << (6 - s1)`` is exact, and a vertical identity pass
    ``(64 * t) >> 6 == t`` is exact too, so e.g. the vertical-only case becomes
    ``(sum f * (v << (6 - s1))) >> 6 == (sum f * v) >> s1`` — the spec's value.
    """
    table, taps, _, _ = _geometry(is_luma)
    table = jnp.asarray(table)
    fh = table[frac_x]
    fv = table[frac_y]
    s1 = bit_depth - 8
    tmp = sum(fh[i] * win[:, i:i + w] for i in range(taps)) >> s1
    return sum(fv[i] * tmp[i:i + h, :] for i in range(taps)) >> 6


def _split_mv(mv, is_luma: bool):
    _, _, _, prec = _geometry(is_luma)
    mv = jnp.asarray(mv, jnp.int32)
    mask = (1 << prec) - 1
    return mv[..., 0] >> prec, mv[..., 1] >> prec, mv[..., 0] & mask, mv[..., 1] & mask


def predict_block(ref_plane, y0, x0, h: int, w: int, mv_qpel, *, is_luma: bool, bit_depth: int = 8):
    """Fractional sample interpolation of one ``h x w`` block, H.265 8.5.3.3.3.

    Args:
      ref_plane: ``(H, W)`` reference plane (luma or one 4:2:0 chroma plane).
      y0, x0: block position in that plane's samples (may be traced).
      h, w: block size in that plane's samples (static).
      mv_qpel: ``(mv_x, mv_y)`` in quarter luma samples (may be traced).

    Returns:
      The 14-bit intermediate prediction, int32 ``(h, w)``.
    """
    chex.assert_rank(ref_plane, 2)
    chex.assert_type(ref_plane, int)
    _, taps, before, _ = _geometry(is_luma)
    ref = jnp.asarray(ref_plane, jnp.int32)
    ih, iw = ref.shape
    ix, iy, fx, fy = _split_mv(mv_qpel, is_luma)
    ys = jnp.clip(jnp.asarray(y0, jnp.int32) + iy - before + jnp.arange(h + taps - 1), 0, ih - 1)
    xs = jnp.clip(jnp.asarray(x0, jnp.int32) + ix - before + jnp.arange(w + taps - 1), 0, iw - 1)
    win = ref[ys[:, None], xs[None, :]]
    return _filter_window(win, fx, fy, h, w, is_luma=is_luma, bit_depth=bit_depth)


def finish_uni(pred14, *, bit_depth: int = 8):
    """Default weighted sample prediction, one list (H.265 8.5.3.3.4.2, eq. 8-262)."""
    shift = 14 - bit_depth
    return jnp.clip((jnp.asarray(pred14, jnp.int32) + (1 << (shift - 1))) >> shift, 0, (1 << bit_depth) - 1)


def finish_bi(pred14_l0, pred14_l1, *, bit_depth: int = 8):
    """Default weighted sample prediction, bi-prediction average (H.265 8.5.3.3.4.2, eq. 8-264)."""
    shift = 15 - bit_depth
    total = jnp.asarray(pred14_l0, jnp.int32) + jnp.asarray(pred14_l1, jnp.int32)
    return jnp.clip((total + (1 << (shift - 1))) >> shift, 0, (1 << bit_depth) - 1)


def _mc_plane(refs, slots, mvs, *, is_luma: bool, bit_depth: int):
    """14-bit prediction of every 4x4-luma unit of one plane for one list.

    refs ``(P, H, W)``; slots ``(H4, W4)`` DPB index; mvs ``(H4, W4, 2)``. Each unit is a
    ``u x u`` block (u = 4 luma, 2 chroma) interpolated from its own gathered window.
    """
    _, taps, before, _ = _geometry(is_luma)
    _, ih, iw = refs.shape
    u = 4 if is_luma else 2
    h4, w4 = slots.shape
    ix, iy, fx, fy = _split_mv(mvs, is_luma)
    k = jnp.arange(u + taps - 1, dtype=jnp.int32)
    ys = jnp.arange(h4, dtype=jnp.int32)[:, None, None] * u + iy[..., None] - before + k  # (h4, w4, k)
    xs = jnp.arange(w4, dtype=jnp.int32)[None, :, None] * u + ix[..., None] - before + k
    ys = jnp.clip(ys, 0, ih - 1)
    xs = jnp.clip(xs, 0, iw - 1)
    win = refs[slots[..., None, None], ys[..., :, None], xs[..., None, :]]  # (h4, w4, k, k)
    filt = functools.partial(_filter_window, h=u, w=u, is_luma=is_luma, bit_depth=bit_depth)
    pred = jax.vmap(jax.vmap(filt))(win, fx, fy)  # (h4, w4, u, u)
    return jnp.swapaxes(pred, 1, 2).reshape(h4 * u, w4 * u)


def motion_compensate(refs_y, refs_u, refs_v, decisions: BlockDecisions, *, ref_list=None, bit_depth: int = 8):
    """Inter prediction of a whole frame from its block decisions (H.265 8.5.3.3).

    Args:
      refs_y, refs_u, refs_v: decoded picture buffer stacks ``(P, H, W)`` and ``(P, H/2, W/2)``.
      decisions: the frame's `BlockDecisions` (grid ``(H/4, W/4)``); ``mv``, ``ref_idx``,
        ``inter_dir`` and ``pred_mode`` are read. MVs are constant per 4x4 luma unit.
      ref_list: int ``(2, R)``: DPB slot of ``(list, ref_idx)`` (RefPicList0/1). Default:
        slot = ref_idx for both lists (P frames, or B frames whose lists are identical).

    Returns:
      ``(pred_y, pred_u, pred_v)`` int32 sample planes; inter units carry the uni- or
      bi-prediction (`finish_uni` / `finish_bi` per ``inter_dir``), intra units are 0.
      Equals `predict_block` + finish applied block by block.
    """
    chex.assert_rank([refs_y, refs_u, refs_v], 3)
    chex.assert_type([refs_y, refs_u, refs_v], int)
    h4, w4 = decisions.grid_shape
    chex.assert_shape(refs_y, (None, 4 * h4, 4 * w4))
    if ref_list is None:
        ref_list = jnp.tile(jnp.arange(refs_y.shape[0], dtype=jnp.int32), (2, 1))
    ref_list = jnp.asarray(ref_list, jnp.int32)
    chex.assert_rank(ref_list, 2)
    ref_idx = jnp.asarray(decisions.ref_idx, jnp.int32)
    mv = jnp.asarray(decisions.mv, jnp.int32)
    inter_dir = jnp.asarray(decisions.inter_dir, jnp.int32)
    is_inter = jnp.asarray(decisions.pred_mode, jnp.int32) == MODE_INTER
    out = []
    for refs, is_luma in ((refs_y, True), (refs_u, False), (refs_v, False)):
        refs = jnp.asarray(refs, jnp.int32)
        p = []
        for lst in (0, 1):
            slot = ref_list[lst][jnp.clip(ref_idx[..., lst], 0, ref_list.shape[1] - 1)]
            p.append(_mc_plane(refs, slot, mv[..., lst, :], is_luma=is_luma, bit_depth=bit_depth))
        up = 4 if is_luma else 2
        d = jnp.repeat(jnp.repeat(inter_dir, up, 0), up, 1)
        inter = jnp.repeat(jnp.repeat(is_inter, up, 0), up, 1)
        pred = jnp.where(d == PRED_BI, finish_bi(p[0], p[1], bit_depth=bit_depth),
                         jnp.where(d == PRED_L1, finish_uni(p[1], bit_depth=bit_depth),
                                   finish_uni(p[0], bit_depth=bit_depth)))
        out.append(jnp.where(inter & ((d & (PRED_L0 | PRED_L1)) != 0), pred, 0))
    return tuple(out)


motion_compensate_jit = jax.jit(motion_compensate, static_argnames=("bit_depth",))


def interpolate_plane(ref, frac_x, frac_y, *, is_luma: bool = True, bit_depth: int = 8, pad: int = 0):
    """Whole plane at one fractional offset, for motion search (14-bit intermediate, int32).

    ``out[pad + y, pad + x]`` is the prediction sample at integer position ``(y, x)`` for a
    motion vector with fractional part ``(frac_x, frac_y)`` (0..3 luma, 0..7 chroma), for
    ``y, x`` in ``-pad .. H + pad - 1``: so ``out[pad + y0 + my : ..., pad + x0 + mx : ...]``
    equals `predict_block` with ``mv = (mx << 2 | frac_x, my << 2 | frac_y)`` (luma) for any
    integer displacement ``|my|, |mx| <= pad`` — edge extension included. Shape
    ``(H + 2 pad, W + 2 pad)``.
    """
    chex.assert_rank(ref, 2)
    chex.assert_type(ref, int)
    _, taps, before, _ = _geometry(is_luma)
    ref = jnp.asarray(ref, jnp.int32)
    h, w = ref.shape
    ext = jnp.pad(ref, ((pad + before, pad + taps - 1 - before),) * 2, mode="edge")
    return _filter_window(ext, jnp.asarray(frac_x, jnp.int32), jnp.asarray(frac_y, jnp.int32),
                          h + 2 * pad, w + 2 * pad, is_luma=is_luma, bit_depth=bit_depth)
