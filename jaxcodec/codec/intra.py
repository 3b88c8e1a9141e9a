"""Intra sample prediction, H.265 8.4.4.2 (planar, DC, 33 angular modes).

Kernel contract (stated once, here):

* Reference samples of an ``N x N`` block (``N = 2**log2n``, 4..32) travel as two int32
  vectors of ``2N + 1`` entries, corner first:

      top[0]  = p[-1][-1]   top[1 + x]  = p[x][-1]   x = 0..2N-1  (above, above-right)
      left[0] = p[-1][-1]   left[1 + y] = p[-1][y]   y = 0..2N-1  (left, below-left)

  (H.265 writes ``p[x][y]`` with x the column.) `reference_samples` builds them from a
  reconstructed plane with the substitution process of 8.4.4.2.2; `filter_reference` applies
  8.4.4.2.3. `predict` consumes references *already filtered for its mode*; `intra_predict`
  and `predict_batch` run the whole of 8.4.4.2 (filter, then predict) from unfiltered ones.
* ``mode`` is an int32 scalar 0..34 (0 planar, 1 DC, 2..34 angular; 10 horizontal,
  26 vertical) and may be traced: nothing branches on its value in Python, so one
  compilation per ``(log2n, is_luma, bit_depth)`` serves every mode and `jax.vmap` works over
  ``(top, left, mode)``.
* The prediction is int32 ``(N, N)`` indexed ``[y, x]`` (row, column), within
  ``0..2**bit_depth - 1``.
* ``is_luma`` (static) enables the luma-only tools: reference filtering (4:2:0 chroma is
  never filtered), the DC edge filter and the mode 10/26 edge filters (both for N < 32).

Apply-side helpers: `neighbour_availability` (masks from a reconstructed-unit map),
`reference_samples_batch`, `predict_batch` (traced modes), `predict_all_modes` (all 35 modes
of many blocks, the encoder's mode search), `most_probable_modes` (8.4.2) and
`chroma_intra_mode` (8.4.3).
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

# H.265 Table 8-4 (intraPredAngle) and Table 8-5 (invAngle), indexed by mode 0..34.
INTRA_PRED_ANGLE = np.array(
    [0, 0, 32, 26, 21, 17, 13, 9, 5, 2, 0, -2, -5, -9, -13, -17, -21, -26,
     -32, -26, -21, -17, -13, -9, -5, -2, 0, 2, 5, 9, 13, 17, 21, 26, 32], np.int32)
INV_ANGLE = np.zeros(35, np.int32)
INV_ANGLE[11:26] = [-4096, -1638, -910, -630, -482, -390, -315, -256, -315, -390, -482, -630, -910, -1638, -4096]

# 8.4.4.2.3: intraHorVerDistThres by nTbS (4x4 is never filtered).
_DIST_THRES = {3: 7, 4: 1, 5: 0}


def _check_refs(top, left, log2n: int) -> None:
    n2 = (2 << log2n) + 1
    chex.assert_shape([top, left], (n2,))
    chex.assert_type([top, left], int)


def _expand_mask(mask, count: int, unit: int):
    mask = jnp.asarray(mask, bool)
    chex.assert_shape(mask, (count // unit,))
    return jnp.repeat(mask, unit, total_repeat_length=count)


def _availability(lookup, shape, y0, x0, log2n: int, chroma: bool):
    h4, w4 = shape
    sub = 2 if chroma else 1
    unit = 4 // sub
    count = (2 << log2n) // unit
    uy = jnp.asarray(y0, jnp.int32) * sub // 4
    ux = jnp.asarray(x0, jnp.int32) * sub // 4
    k = jnp.arange(count, dtype=jnp.int32)

    def at(r, c):
        inside = (r >= 0) & (r < h4) & (c >= 0) & (c < w4)
        return inside & lookup(jnp.clip(r, 0, h4 - 1), jnp.clip(c, 0, w4 - 1))

    return at(uy - 1, ux + k), at(uy + k, ux - 1), at(uy - 1, ux - 1), unit


def neighbour_availability(done, y0, x0, log2n: int, *, chroma: bool = False):
    """Availability masks for `reference_samples` from a map of reconstructed 4x4 luma units.

    Args:
      done: bool ``(H/4, W/4)`` on the luma 4x4 grid: True where the unit is already
        reconstructed and may be used (decoding order; the caller folds in slice/tile and
        constrained-intra rules). HEVC's availability granularity is this 4x4 luma unit.
      y0, x0, log2n: the block in its own plane's samples (chroma plane when ``chroma``).

    Returns:
      ``(avail_top, avail_left, avail_corner, unit)``: masks of ``2N / unit`` entries and the
      static ``unit`` (4 for luma, 2 chroma samples per luma unit in 4:2:0) to pass on.
    """
    done = jnp.asarray(done, bool)
    chex.assert_rank(done, 2)
    return _availability(lambda r, c: done[r, c], done.shape, y0, x0, log2n, chroma)


def availability_in_order(order4, y0, x0, log2n: int, *, chroma: bool = False):
    """`neighbour_availability` for a picture tiled by blocks of one size, without a map
    per block: a unit is available when its decoding-order index ``order4`` (``(H/4, W/4)``,
    e.g. CTU raster x z-scan) is below that of the block's first unit. Exact for aligned
    power-of-two blocks (a unit precedes the block iff its whole block does); the encoder's
    open-loop estimates use it to see what the decoder will see."""
    order4 = jnp.asarray(order4, jnp.int32)
    chex.assert_rank(order4, 2)
    sub = 2 if chroma else 1
    own = order4[jnp.asarray(y0, jnp.int32) * sub // 4, jnp.asarray(x0, jnp.int32) * sub // 4]
    return _availability(lambda r, c: order4[r, c] < own, order4.shape, y0, x0, log2n, chroma)


def reference_samples(plane, y0, x0, log2n: int, avail_top, avail_left, avail_corner, *,
                      bit_depth: int, unit: int = 1):
    """Reference samples with substitution, H.265 8.4.4.2.2 (see module doc for the layout).

    Args:
      plane: reconstructed ``(H, W)`` plane (luma or one chroma plane) before in-loop filtering.
      y0, x0: top-left sample of the block in ``plane`` (ints or traced int32 scalars).
      log2n: block size.
      avail_top: bool ``(2N / unit,)``: p[x][-1] available, x = 0..2N-1, one entry per ``unit``
        samples (``unit=4`` luma / ``unit=2`` chroma gives HEVC's 4x4-luma granularity).
      avail_left: bool ``(2N / unit,)`` for p[-1][y], y = 0..2N-1.
      avail_corner: bool scalar for p[-1][-1].
      bit_depth: fills ``1 << (bit_depth - 1)`` when nothing is available.
      unit: samples per availability entry.

    The caller states decoding-order availability (not yet reconstructed, other slice,
    constrained intra); samples outside the plane are treated as unavailable here in any case.

    Returns:
      ``(top, left)`` int32, each ``(2N + 1,)``, corner first.
    """
    chex.assert_rank(plane, 2)
    chex.assert_type(plane, int)
    n2 = 2 << log2n
    h, w = plane.shape
    plane = jnp.asarray(plane, jnp.int32)
    y0 = jnp.asarray(y0, jnp.int32)
    x0 = jnp.asarray(x0, jnp.int32)
    i = jnp.arange(n2, dtype=jnp.int32)
    top_ok = _expand_mask(avail_top, n2, unit) & (y0 >= 1) & (x0 + i < w)
    left_ok = _expand_mask(avail_left, n2, unit) & (x0 >= 1) & (y0 + i < h)
    corner_ok = jnp.asarray(avail_corner, bool) & (y0 >= 1) & (x0 >= 1)
    yt = jnp.clip(y0 - 1, 0, h - 1)
    xl = jnp.clip(x0 - 1, 0, w - 1)
    top_s = plane[yt, jnp.clip(x0 + i, 0, w - 1)]
    left_s = plane[jnp.clip(y0 + i, 0, h - 1), xl]
    corner_s = plane[yt, xl]
    # Substitution scans p[-1][2N-1] .. p[-1][-1], p[0][-1] .. p[2N-1][-1]: a missing sample
    # copies its predecessor in that order; leading missing samples copy the first available.
    seq = jnp.concatenate([left_s[::-1], corner_s[None], top_s])
    ok = jnp.concatenate([left_ok[::-1], corner_ok[None], top_ok])
    pos = jnp.arange(seq.shape[0], dtype=jnp.int32)
    last = jax.lax.cummax(jnp.where(ok, pos, -1))
    src = jnp.where(last >= 0, last, jnp.argmax(ok))
    filled = jnp.where(ok.any(), seq[src], 1 << (bit_depth - 1))
    corner = filled[n2]
    top = jnp.concatenate([corner[None], filled[n2 + 1:]])
    left = jnp.concatenate([corner[None], filled[:n2][::-1]])
    return top, left


def _static_filter_flag(mode: int, log2n: int, is_luma: bool) -> bool:
    """`filter_flag` for a Python-int mode (static tables)."""
    if not is_luma or log2n == 2 or mode == 1:
        return False
    return min(abs(mode - 26), abs(mode - 10)) > _DIST_THRES[log2n]


def filter_flag(mode, log2n: int, *, is_luma: bool):
    """filterFlag of H.265 8.4.4.2.3 (traced bool): not DC, N > 4, far enough from H/V."""
    if not is_luma or log2n == 2:
        return jnp.asarray(False)
    mode = jnp.asarray(mode, jnp.int32)
    min_dist = jnp.minimum(jnp.abs(mode - 26), jnp.abs(mode - 10))
    return (mode != 1) & (min_dist > _DIST_THRES[log2n])


def filter_reference(top, left, mode, log2n: int, *, is_luma: bool = True, bit_depth: int = 8,
                     strong_smoothing: bool = False):
    """Filtering of neighbouring samples, H.265 8.4.4.2.3.

    [1, 2, 1] smoothing along left (bottom to top), corner, top when `filter_flag`; with
    ``strong_smoothing`` (``strong_intra_smoothing_enabled_flag``) a flat 32x32 luma
    neighbourhood is replaced by the bilinear ramps between its end samples. Returns
    ``(top, left)`` of the same layout.
    """
    _check_refs(top, left, log2n)
    top = jnp.asarray(top, jnp.int32)
    left = jnp.asarray(left, jnp.int32)
    seq = jnp.concatenate([left[::-1], top[1:]])  # p[-1][2N-1] .. corner .. p[2N-1][-1]
    smooth = (jnp.roll(seq, 1) + 2 * seq + jnp.roll(seq, -1) + 2) >> 2
    smooth = smooth.at[0].set(seq[0]).at[-1].set(seq[-1])
    n2 = 2 << log2n
    f_top = jnp.concatenate([smooth[n2:n2 + 1], smooth[n2 + 1:]])
    f_left = smooth[: n2 + 1][::-1]
    if strong_smoothing and is_luma and log2n == 5:
        n = 1 << log2n
        thr = 1 << (bit_depth - 5)
        c, t_end, l_end = top[0], top[2 * n], left[2 * n]
        flat = (jnp.abs(c + t_end - 2 * top[n]) < thr) & (jnp.abs(c + l_end - 2 * left[n]) < thr)
        k = jnp.arange(2 * n, dtype=jnp.int32)
        ramp_t = ((63 - k) * c + (k + 1) * t_end + 32) >> 6
        ramp_l = ((63 - k) * c + (k + 1) * l_end + 32) >> 6
        s_top = jnp.concatenate([c[None], ramp_t[:-1], t_end[None]])
        s_left = jnp.concatenate([c[None], ramp_l[:-1], l_end[None]])
        f_top = jnp.where(flat, s_top, f_top)
        f_left = jnp.where(flat, s_left, f_left)
    on = filter_flag(mode, log2n, is_luma=is_luma)
    return jnp.where(on, f_top, top), jnp.where(on, f_left, left)


def predict(top, left, mode, log2n: int, *, is_luma: bool, bit_depth: int = 8):
    """Intra prediction kernel from (already filtered) references, H.265 8.4.4.2.4-8.4.4.2.6.

    Computes planar, DC and the angular prediction for ``mode`` and selects with
    ``jnp.where``; the angular one works on the vertical-mode form (main reference = top) and
    transposes for horizontal modes (2..17), which is how the spec's two cases mirror.
    Returns int32 ``(N, N)`` ``[y, x]``.
    """
    _check_refs(top, left, log2n)
    n = 1 << log2n
    top = jnp.asarray(top, jnp.int32)
    left = jnp.asarray(left, jnp.int32)
    mode = jnp.asarray(mode, jnp.int32)
    idx = jnp.arange(n, dtype=jnp.int32)
    yy, xx = idx[:, None], idx[None, :]

    # 8.4.4.2.5 planar
    planar = ((n - 1 - xx) * left[1 + yy] + (xx + 1) * top[1 + n] + (n - 1 - yy) * top[1 + xx]
              + (yy + 1) * left[1 + n] + n) >> (log2n + 1)

    # 8.4.4.2.6 DC (+ luma edge filter for N < 32)
    dc_val = (top[1:n + 1].sum() + left[1:n + 1].sum() + n) >> (log2n + 1)
    dc = jnp.full((n, n), dc_val, jnp.int32)
    if is_luma and n < 32:
        dc = dc.at[0, 1:].set((top[2:n + 1] + 3 * dc_val + 2) >> 2)
        dc = dc.at[1:, 0].set((left[2:n + 1] + 3 * dc_val + 2) >> 2)
        dc = dc.at[0, 0].set((left[1] + 2 * dc_val + top[1] + 2) >> 2)

    # 8.4.4.2.6 angular, vertical form: main = top (modes >= 18) or left (modes < 18).
    is_hor = mode < 18
    main = jnp.where(is_hor, left, top)
    side = jnp.where(is_hor, top, left)
    angle = jnp.asarray(INTRA_PRED_ANGLE)[mode]
    inv_angle = jnp.asarray(INV_ANGLE)[mode]
    # ref[x] for x = -N..2N stored at ext[x + N]; ref[x < 0] projects the side reference
    # (only read when intraPredAngle < 0, where the spec defines it).
    xr = jnp.arange(-n, 2 * n + 1, dtype=jnp.int32)
    proj = side[jnp.clip((xr * inv_angle + 128) >> 8, 0, 2 * n)]
    ext = jnp.where(xr >= 0, main[jnp.clip(xr, 0, 2 * n)], proj)
    pos = (yy + 1) * angle
    i_idx, i_fact = pos >> 5, pos & 31
    a = ext[jnp.clip(n + xx + i_idx + 1, 0, 3 * n)]
    b = ext[jnp.clip(n + xx + i_idx + 2, 0, 3 * n)]  # weight 0 when out of range (iFact == 0)
    ang = ((32 - i_fact) * a + i_fact * b + 16) >> 5
    if is_luma and n < 32:
        # modes 26 / 10 edge filter: first column (of the vertical form) follows the side gradient
        peak = (1 << bit_depth) - 1
        edge = jnp.clip(main[1] + ((side[1 + idx] - side[0]) >> 1), 0, peak)
        ang = jnp.where((angle == 0) & (xx == 0), edge[:, None], ang)
    ang = jnp.where(is_hor, ang.T, ang)

    return jnp.where(mode == 0, planar, jnp.where(mode == 1, dc, ang))


def intra_predict(top, left, mode, log2n: int, *, is_luma: bool, bit_depth: int = 8,
                  strong_smoothing: bool = False):
    """The whole of H.265 8.4.4.2 for one block: `filter_reference` then `predict`."""
    ft, fl = filter_reference(top, left, mode, log2n, is_luma=is_luma, bit_depth=bit_depth,
                              strong_smoothing=strong_smoothing)
    return predict(ft, fl, mode, log2n, is_luma=is_luma, bit_depth=bit_depth)


@functools.partial(jax.jit, static_argnames=("log2n", "is_luma", "bit_depth", "strong_smoothing"))
def predict_batch(top, left, modes, log2n: int, *, is_luma: bool, bit_depth: int = 8,
                  strong_smoothing: bool = False):
    """`intra_predict` over a batch: ``top, left (B, 2N+1)``, ``modes (B,)`` -> ``(B, N, N)``.

    Unfiltered references in (the filtering depends on each block's mode). Compiled once per
    ``(B, log2n, is_luma, bit_depth, strong_smoothing)``.
    """
    chex.assert_rank([top, left, modes], [2, 2, 1])
    fn = functools.partial(intra_predict, log2n=log2n, is_luma=is_luma, bit_depth=bit_depth,
                           strong_smoothing=strong_smoothing)
    return jax.vmap(fn)(top, left, jnp.asarray(modes, jnp.int32))


@functools.lru_cache(maxsize=None)
def _angular_tables(log2n: int, is_luma: bool):
    """Static gather tables of all 33 angular modes (8.4.4.2.6) for `predict_all_modes`.

    Indices point into ``concat([top, left, filtered_top, filtered_left])`` (``8N + 4``
    entries); the mode's filter flag picks the half. Returns ``(idx_a, idx_b, frac)``, each
    ``(33, N, N)`` in output orientation ``[y, x]``.
    """
    n = 1 << log2n
    n2 = 2 * n + 1
    idx_a = np.zeros((33, n, n), np.int32)
    idx_b = np.zeros((33, n, n), np.int32)
    frac = np.zeros((33, n, n), np.int32)
    k = np.arange(n)
    for m in range(2, 35):
        angle, inv = int(INTRA_PRED_ANGLE[m]), int(INV_ANGLE[m])
        base = 2 * n2 if _static_filter_flag(m, log2n, is_luma) else 0
        main, side = (n2, 0) if m < 18 else (0, n2)  # offsets of left / top in the table
        ext = np.empty(3 * n + 1, np.int64)
        for x in range(-n, 2 * n + 1):
            ext[x + n] = main + x if x >= 0 else side + min(max((x * inv + 128) >> 8, 0), 2 * n)
        pos = (k + 1) * angle
        i_idx, i_fact = pos >> 5, pos & 31
        a = ext[np.clip(n + k[None, :] + i_idx[:, None] + 1, 0, 3 * n)] + base
        b = ext[np.clip(n + k[None, :] + i_idx[:, None] + 2, 0, 3 * n)] + base
        f = np.broadcast_to(i_fact[:, None], (n, n))
        if m < 18:  # horizontal modes: the vertical form transposed
            a, b, f = a.T, b.T, f.T
        idx_a[m - 2], idx_b[m - 2], frac[m - 2] = a, b, f
    return idx_a, idx_b, frac


@functools.partial(jax.jit, static_argnames=("log2n", "is_luma", "bit_depth", "strong_smoothing"))
def predict_all_modes(top, left, log2n: int, *, is_luma: bool, bit_depth: int = 8,
                      strong_smoothing: bool = False):
    """All 35 predictions of each block: ``top, left (B, 2N+1)`` (unfiltered) -> ``(B, 35, N, N)``.

    Equal to `predict_batch` with every mode, but with the mode static the 33 angular modes
    become two constant-index gathers (`_angular_tables`) instead of 35 traced-mode passes.
    """
    chex.assert_rank([top, left], 2)
    n = 1 << log2n
    top = jnp.asarray(top, jnp.int32)
    left = jnp.asarray(left, jnp.int32)
    smooth = functools.partial(filter_reference, log2n=log2n, is_luma=is_luma, bit_depth=bit_depth,
                               strong_smoothing=strong_smoothing)
    ftop, fleft = jax.vmap(lambda t, l: smooth(t, l, 0))(top, left)  # planar: filtered whenever any mode is
    table = jnp.concatenate([top, left, ftop, fleft], -1)  # (B, 8N + 4)
    idx_a, idx_b, frac = _angular_tables(log2n, is_luma)
    a = table[:, idx_a]
    b = table[:, idx_b]
    frac = jnp.asarray(frac)
    ang = ((32 - frac) * a + frac * b + 16) >> 5  # (B, 33, N, N)
    if is_luma and n < 32:
        peak = (1 << bit_depth) - 1
        idx = jnp.arange(n)
        ver = jnp.clip(top[:, 1:2] + ((left[:, 1 + idx] - left[:, :1]) >> 1), 0, peak)  # mode 26, column 0
        hor = jnp.clip(left[:, 1:2] + ((top[:, 1 + idx] - top[:, :1]) >> 1), 0, peak)  # mode 10, row 0
        ang = ang.at[:, 26 - 2, :, 0].set(ver).at[:, 10 - 2, 0, :].set(hor)
    kern = functools.partial(predict, log2n=log2n, is_luma=is_luma, bit_depth=bit_depth)
    use_f0 = _static_filter_flag(0, log2n, is_luma)
    planar = jax.vmap(lambda t, l: kern(t, l, 0))(ftop if use_f0 else top, fleft if use_f0 else left)
    dc = jax.vmap(lambda t, l: kern(t, l, 1))(top, left)
    return jnp.concatenate([planar[:, None], dc[:, None], ang], 1)


@functools.partial(jax.jit, static_argnames=("log2n", "bit_depth", "unit"))
def reference_samples_batch(plane, y0, x0, log2n: int, avail_top, avail_left, avail_corner, *,
                            bit_depth: int, unit: int = 1):
    """`reference_samples` for B blocks of one plane: ``y0, x0 (B,)``, masks ``(B, 2N/unit)``,
    ``avail_corner (B,)`` -> ``top, left (B, 2N+1)``."""
    fn = functools.partial(reference_samples, log2n=log2n, bit_depth=bit_depth, unit=unit)
    return jax.vmap(lambda y, x, at, al, ac: fn(plane, y, x, avail_top=at, avail_left=al, avail_corner=ac))(
        y0, x0, avail_top, avail_left, avail_corner)


def most_probable_modes(cand_a, cand_b):
    """The three MPM candidates ``candModeList`` of H.265 8.4.2 (eq. 8-17 .. 8-25).

    ``cand_a`` (left) and ``cand_b`` (above) are the neighbour modes *after* the spec's
    substitution: DC (1) when the neighbour is unavailable, not intra, or (for B) in the CTU
    row above. Works element-wise on int arrays; returns int32 ``(..., 3)``.
    """
    a = jnp.asarray(cand_a, jnp.int32)
    b = jnp.asarray(cand_b, jnp.int32)
    same_low = jnp.stack(jnp.broadcast_arrays(jnp.int32(0), jnp.int32(1), jnp.int32(26)), -1)
    same_ang = jnp.stack([a, 2 + ((a + 29) % 32), 2 + ((a - 2 + 1) % 32)], -1)
    third = jnp.where((a != 0) & (b != 0), 0, jnp.where((a != 1) & (b != 1), 1, 26))
    differ = jnp.stack([a, b, third], -1)
    same = jnp.where((a < 2)[..., None], same_low, same_ang)
    return jnp.where((a == b)[..., None], same, differ)


def chroma_intra_mode(intra_chroma_pred_mode, luma_mode):
    """IntraPredModeC for 4:2:0 from ``intra_chroma_pred_mode`` 0..4 (H.265 8.4.3, Table 8-2).

    0..3 select planar, vertical (26), horizontal (10), DC, replaced by 34 when equal to the
    luma mode; 4 (DM) copies the luma mode. Element-wise on int arrays.
    """
    idx = jnp.asarray(intra_chroma_pred_mode, jnp.int32)
    luma = jnp.asarray(luma_mode, jnp.int32)
    fixed = jnp.asarray(np.array([0, 26, 10, 1, 0], np.int32))[jnp.clip(idx, 0, 4)]
    return jnp.where(idx == 4, luma, jnp.where(fixed == luma, 34, fixed))
