"""Encoder analysis: motion search against brute-force references (checkasm habit)."""

import numpy as np

import jax.numpy as jnp
from jaxcodec.codec import analysis, inter, motion
from jaxcodec.codec.blocks import PRED_BI, PRED_L0


def _frame(seed, h=32, w=32):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h + 16, 0:w + 16]
    return np.clip(128 + 50 * np.sin(xx / 3.0) * np.cos(yy / 4.0) + rng.normal(0, 8, (h + 16, w + 16)), 0, 255).astype(np.int32)


def test_integer_search_matches_brute_force():
    big = _frame(0)
    ref = big[8:40, 8:40]
    cur = big[5:37, 10:42]  # content moved by (dx, dy) = (+2, -3)
    mv, cost = motion.integer_search(jnp.asarray(cur), jnp.asarray(ref), jnp.float32(0.0), search_range=4)
    mv = np.asarray(mv)
    pad = np.pad(ref, 4, mode="edge")
    for by in range(4):
        for bx in range(4):
            blk = cur[by * 8:by * 8 + 8, bx * 8:bx * 8 + 8]
            best = min(((np.abs(blk - pad[4 + by * 8 + dy:12 + by * 8 + dy, 4 + bx * 8 + dx:12 + bx * 8 + dx]).sum(), dy, dx)
                        for dy in range(-4, 5) for dx in range(-4, 5)))
            assert np.asarray(cost)[by, bx] == best[0]
    assert (mv[1:3, 1:3] == [2, -3]).all()  # interior blocks find the true motion


def _ref_align(cur, window, sqrt_lambda, r):
    """Brute-force `motion.align_window`: per 8x8 block the window block of least SAD + MV cost,
    ties to the first displacement in (dy, dx) raster order."""
    h, w = cur.shape
    out = np.zeros_like(cur)
    bits = lambda d: 2 * np.floor(np.log2(abs(4 * d) + 1.0)) + 1  # noqa: E731  (motion.mv_bits)
    for y in range(0, h, 8):
        for x in range(0, w, 8):
            best = None
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    cand = window[r + y + dy:r + y + dy + 8, r + x + dx:r + x + dx + 8]
                    cost = np.abs(cur[y:y + 8, x:x + 8] - cand).sum() + sqrt_lambda * (bits(dx) + bits(dy))
                    if best is None or cost < best[0]:
                        best = (cost, cand)
            out[y:y + 8, x:x + 8] = best[1]
    return out


def test_align_window_matches_brute_force():
    big = _frame(1, 32, 40)
    window = big[:, :]  # (48, 56): the reference around a 32x40 picture, R = 8
    cur = _frame(2, 32, 40)[8:40, 8:48] // 2 + big[5:37, 11:51] // 2  # moved content, plus noise
    for lam in (0.0, 4.0):
        got = np.asarray(motion.align_window(jnp.asarray(cur), jnp.asarray(window), jnp.float32(lam), search_range=8))
        np.testing.assert_array_equal(got, _ref_align(cur, window, lam, 8))
    # A pure translation is undone exactly (away from where the window runs out).
    shifted = np.asarray(motion.align_window(jnp.asarray(big[5:37, 11:51]), jnp.asarray(window), jnp.float32(4.0),
                                             search_range=8))
    np.testing.assert_array_equal(shifted, big[5:37, 11:51])


def test_subpel_prediction_equals_kernel():
    big = _frame(1)
    ref = jnp.asarray(big[8:40, 8:40])
    cur = jnp.asarray(big[7:39, 9:41])
    mv, cost, pred = motion.search_ref(cur, ref, jnp.float32(4.0), search_range=4, bit_depth=8, subpel=True)
    mv, pred = np.asarray(mv), np.asarray(pred)
    for by, bx in [(0, 0), (1, 2), (3, 3)]:
        p14 = inter.predict_block(ref, by * 8, bx * 8, 8, 8, jnp.asarray(mv[by, bx]), is_luma=True, bit_depth=8)
        assert np.array_equal(np.asarray(inter.finish_uni(p14, bit_depth=8)), pred[by, bx])


def test_analyse_inter_picks_bi_for_average():
    a, b = _frame(2)[:32, :32], _frame(3)[:32, :32]
    cur = (a + b + 1) >> 1
    refs = jnp.asarray(np.stack([a, b]))
    ref_list = jnp.asarray([[0], [1]], jnp.int32)
    inter_dir, mv, ref_idx = analysis.analyse_inter(jnp.asarray(cur), refs, ref_list, jnp.float32(2.0),
                                                    search_range=2, bit_depth=8, subpel=False)
    assert (np.asarray(inter_dir) == PRED_BI).mean() > 0.9
    inter_dir, mv, ref_idx = analysis.analyse_inter(jnp.asarray(a), refs, ref_list, jnp.float32(2.0),
                                                    search_range=2, bit_depth=8, subpel=False)
    assert (np.asarray(inter_dir) == PRED_L0).all() and (np.asarray(mv) == 0).all()
    assert (np.asarray(ref_idx)[..., 1] == -1).all()


def _median_reference(mv):
    # left, above, above-right (above-left at the right edge); zeros outside the picture
    h, w = mv.shape[:2]
    out = np.zeros_like(mv)
    get = lambda y, x: mv[y, x] if 0 <= y < h and 0 <= x < w else np.zeros_like(mv[0, 0])  # noqa: E731
    for y in range(h):
        for x in range(w):
            c = get(y - 1, x + 1) if (x + 1 < w or w == 1) else get(y - 1, x - 1)
            out[y, x] = np.median(np.stack([get(y, x - 1), get(y - 1, x), c]), 0)
    return out


def test_median_mv_predictor_matches_loop_reference():
    from jaxcodec.codec.analysis import median_mv_predictor

    rng = np.random.default_rng(5)
    for h, w in [(1, 1), (1, 4), (3, 1), (5, 7)]:
        mv = rng.integers(-40, 40, (h, w, 2, 2)).astype(np.int32)
        assert np.array_equal(np.asarray(median_mv_predictor(jnp.asarray(mv))), _median_reference(mv))


def test_merge_smooth_zero_field_on_static_picture():
    a = _frame(4)[:32, :32]
    refs = jnp.asarray(np.stack([a, a]))
    ref_list = jnp.asarray([[0], [1]], jnp.int32)
    cur = jnp.asarray(a)
    inter_dir, mv, ref_idx = analysis.analyse_inter(cur, refs, ref_list, jnp.float32(4.0), search_range=2, bit_depth=8,
                                                    subpel=True)
    d2, m2, r2 = analysis.merge_smooth(cur, refs, ref_list, inter_dir, mv, ref_idx, jnp.float32(4.0), bit_depth=8)
    assert (np.asarray(m2) == 0).all()  # a static picture ends with a zero field
