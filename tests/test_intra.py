"""Intra prediction (H.265 8.4.4.2) against the literal numpy reference: every mode, size,
bit depth, luma/chroma, jitted and not."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcodec.codec import intra
import ref_kernels as ref


def _refs(rng, n, bit_depth, count):
    """Random references; half of them smooth ramps so strong smoothing and flat paths trigger."""
    peak = (1 << bit_depth) - 1
    top = rng.integers(0, peak + 1, (count, 2 * n + 1))
    left = rng.integers(0, peak + 1, (count, 2 * n + 1))
    for b in range(count // 2):
        base, slope_t, slope_l = rng.integers(0, peak // 2), rng.integers(0, 3), rng.integers(0, 3)
        k = np.arange(2 * n + 1)
        top[b] = np.clip(base + slope_t * k, 0, peak)
        left[b] = np.clip(base + slope_l * k, 0, peak)
        left[b, 0] = top[b, 0]
    left[:, 0] = top[:, 0]
    return top.astype(np.int32), left.astype(np.int32)


CASES = [(l, bd, lu) for l in (2, 3, 4, 5) for bd in (8, 10) for lu in (True, False)]


@pytest.mark.parametrize("jit", [True, False])
@pytest.mark.parametrize("log2n,bit_depth,is_luma", CASES)
def test_all_modes_match_reference(log2n, bit_depth, is_luma, jit):
    n = 1 << log2n
    rng = np.random.default_rng(log2n * 100 + bit_depth + is_luma)
    modes = np.tile(np.arange(35, dtype=np.int32), 2)
    top, left = _refs(rng, n, bit_depth, 70)
    for strong in ((False, True) if (log2n == 5 and is_luma) else (False,)):
        kw = dict(log2n=log2n, is_luma=is_luma, bit_depth=bit_depth, strong_smoothing=strong)
        if jit:
            got = np.asarray(intra.predict_batch(top, left, modes, **kw))
        else:
            got = np.asarray(jax.vmap(lambda t, l, m: intra.intra_predict(t, l, m, **kw))(top, left, modes))
        assert got.dtype == np.int32 and got.shape == (70, n, n)
        for b in range(70):
            m = int(modes[b])
            ft, fl = ref.ref_filter(top[b], left[b], m, n, is_luma, bit_depth, strong)
            want = ref.ref_predict(ft, fl, m, n, is_luma, bit_depth)
            np.testing.assert_array_equal(got[b], want, err_msg=f"mode {m} block {b} strong {strong}")


def test_strong_smoothing_actually_triggers():
    n = 32
    k = np.arange(2 * n + 1)
    top = (100 + k).astype(np.int32)
    left = (100 + 2 * k).astype(np.int32)
    ft, fl = intra.filter_reference(top, left, 0, 5, strong_smoothing=True)
    nt, nl = intra.filter_reference(top, left, 0, 5, strong_smoothing=False)
    rt, rl = ref.ref_filter(top, left, 0, n, True, 8, True)
    np.testing.assert_array_equal(np.asarray(ft), rt)
    np.testing.assert_array_equal(np.asarray(fl), rl)
    assert not np.array_equal(np.asarray(ft), np.asarray(nt))  # the ramp differs from [1,2,1]


def test_all_modes_helper_equals_batch():
    rng = np.random.default_rng(7)
    top, left = _refs(rng, 8, 8, 3)
    allm = np.asarray(intra.predict_all_modes(top, left, 3, is_luma=True))
    assert allm.shape == (3, 35, 8, 8)
    for m in range(35):
        one = np.asarray(intra.predict_batch(top, left, np.full(3, m, np.int32), 3, is_luma=True))
        np.testing.assert_array_equal(allm[:, m], one)


def test_known_values():
    top = np.array([50] + [100] * 8, np.int32)
    left = np.array([50] + [20] * 8, np.int32)
    p = np.asarray(intra.predict(top, left, 26, 2, is_luma=False))  # vertical, chroma: pure copy
    np.testing.assert_array_equal(p, np.full((4, 4), 100))
    p = np.asarray(intra.predict(top, left, 10, 2, is_luma=False))
    np.testing.assert_array_equal(p, np.full((4, 4), 20))
    p = np.asarray(intra.predict(top, left, 1, 2, is_luma=False))
    np.testing.assert_array_equal(p, np.full((4, 4), 60))


class ReferenceSamples(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_substitution_matches_reference(self):
        rng = np.random.default_rng(11)
        fns = {(l, u, bd): self.variant(lambda p, y, x, a, b, c, l=l, u=u, bd=bd:
                                        intra.reference_samples(p, y, x, l, a, b, c, bit_depth=bd, unit=u))
               for l in (2, 3, 4, 5) for u in (1, 4) for bd in (8, 10)}
        for bit_depth in (8, 10):
            plane = rng.integers(0, 1 << bit_depth, (40, 48)).astype(np.int32)
            for log2n in (2, 3, 4, 5):
                n = 1 << log2n
                for trial in range(6):
                    unit = (1, 4)[trial % 2]
                    y0 = int(rng.choice([0, 4, 8, 16, 32])) if n < 32 else int(rng.choice([0, 8]))
                    x0 = int(rng.choice([0, 4, 8, 16])) if n < 32 else int(rng.choice([0, 16]))
                    if trial == 5:
                        y0 = x0 = 0  # nothing available
                    at = rng.random(2 * n // unit) < 0.6
                    al = rng.random(2 * n // unit) < 0.6
                    ac = bool(rng.random() < 0.5)
                    f = fns[(log2n, unit, bit_depth)]
                    top, left = f(plane, y0, x0, at, al, ac)

                    def avail(x, y, at=at, al=al, ac=ac, unit=unit):
                        if x == -1 and y == -1:
                            return ac
                        return bool(at[x // unit]) if y == -1 else bool(al[y // unit])

                    rt, rl = ref.ref_reference_samples(plane, y0, x0, n, avail, bit_depth)
                    np.testing.assert_array_equal(np.asarray(top), rt)
                    np.testing.assert_array_equal(np.asarray(left), rl)

    def test_batch_equals_single(self):
        rng = np.random.default_rng(12)
        plane = rng.integers(0, 256, (32, 32)).astype(np.int32)
        y0 = np.array([0, 8, 16, 8], np.int32)
        x0 = np.array([8, 0, 16, 24], np.int32)
        at = rng.random((4, 4)) < 0.7
        al = rng.random((4, 4)) < 0.7
        ac = rng.random(4) < 0.7
        bt, bl = intra.reference_samples_batch(plane, y0, x0, 3, at, al, ac, bit_depth=8, unit=4)
        for b in range(4):
            t, l = intra.reference_samples(plane, y0[b], x0[b], 3, at[b], al[b], ac[b], bit_depth=8, unit=4)
            np.testing.assert_array_equal(np.asarray(bt[b]), np.asarray(t))
            np.testing.assert_array_equal(np.asarray(bl[b]), np.asarray(l))


def test_one_compile_serves_every_mode():
    f = jax.jit(chex.assert_max_traces(lambda t, l, m: intra.intra_predict(t, l, m, 3, is_luma=True), n=1))
    rng = np.random.default_rng(3)
    top, left = _refs(rng, 8, 8, 1)
    for m in range(35):
        f(jnp.asarray(top[0]), jnp.asarray(left[0]), jnp.int32(m))


@pytest.mark.parametrize("log2n,bit_depth,is_luma", CASES)
def test_all_modes_fast_path_matches_reference(log2n, bit_depth, is_luma):
    n = 1 << log2n
    rng = np.random.default_rng(log2n * 31 + bit_depth + is_luma)
    top, left = _refs(rng, n, bit_depth, 6)
    for strong in ((False, True) if (log2n == 5 and is_luma) else (False,)):
        got = np.asarray(intra.predict_all_modes(top, left, log2n, is_luma=is_luma, bit_depth=bit_depth,
                                                 strong_smoothing=strong))
        assert got.shape == (6, 35, n, n) and got.dtype == np.int32
        for b in range(6):
            for m in range(35):
                ft, fl = ref.ref_filter(top[b], left[b], m, n, is_luma, bit_depth, strong)
                np.testing.assert_array_equal(got[b, m], ref.ref_predict(ft, fl, m, n, is_luma, bit_depth),
                                              err_msg=f"mode {m} block {b} strong {strong}")


def test_neighbour_availability_from_done_map():
    rng = np.random.default_rng(21)
    done = rng.random((8, 10)) < 0.6
    for chroma in (False, True):
        sub = 2 if chroma else 1
        for log2n in (2, 3, 4):
            n = 1 << log2n
            for (y0, x0) in ((0, 0), (4, 4), (8, 12), (16 // sub, 24 // sub), (28 // sub, 36 // sub)):
                if (y0 * sub) % 4 or (x0 * sub) % 4:
                    continue
                at, al, ac, unit = intra.neighbour_availability(done, y0, x0, log2n, chroma=chroma)
                assert unit == 4 // sub and at.shape == (2 * n // unit,)

                def ok(yl, xl):  # luma sample position -> done?
                    return 0 <= yl < 32 and 0 <= xl < 40 and bool(done[yl // 4, xl // 4])

                want_t = [ok((y0 - 1) * sub, (x0 + i * unit) * sub) for i in range(2 * n // unit)]
                want_l = [ok((y0 + i * unit) * sub, (x0 - 1) * sub) for i in range(2 * n // unit)]
                np.testing.assert_array_equal(np.asarray(at), want_t)
                np.testing.assert_array_equal(np.asarray(al), want_l)
                assert bool(ac) == ok((y0 - 1) * sub, (x0 - 1) * sub)
                # and they drive reference_samples end to end
                plane = rng.integers(0, 256, (32 // sub, 40 // sub)).astype(np.int32)
                top, left = intra.reference_samples(plane, y0, x0, log2n, at, al, ac, bit_depth=8, unit=unit)

                def avail(x, y):
                    if x == -1 and y == -1:
                        return bool(ac)
                    return bool(at[x // unit]) if y == -1 else bool(al[y // unit])

                rt, rl = ref.ref_reference_samples(plane, y0, x0, n, avail, 8)
                np.testing.assert_array_equal(np.asarray(top), rt)
                np.testing.assert_array_equal(np.asarray(left), rl)


@pytest.mark.parametrize("log2n", [2, 3, 4, 5])
def test_angular_geometry(log2n):
    """Independent of the reference: content constant along a direction is predicted exactly
    by the mode of that direction (26 vertical, 10 horizontal, 18 down-right, 2 / 34 the
    anti-diagonal), so orientation and sign conventions are right."""
    n = 1 << log2n
    rng = np.random.default_rng(log2n)
    f = rng.integers(0, 256, 8 * n)
    yy, xx = np.mgrid[-1:2 * n, -1:2 * n]
    cases = {26: f[xx + n], 10: f[yy + n], 18: f[xx - yy + 4 * n], 34: f[xx + yy + 2], 2: f[xx + yy + 2]}
    for mode, img in cases.items():
        top = img[0, :].astype(np.int32)  # row y = -1, x = -1..2N-1
        left = img[:, 0].astype(np.int32)  # column x = -1, y = -1..2N-1
        pred = np.asarray(intra.predict(top, left, mode, log2n, is_luma=False))
        np.testing.assert_array_equal(pred, img[1:n + 1, 1:n + 1], err_msg=f"mode {mode}")


def test_best_mode_beats_dc_on_real_content():
    from jaxcodec.io import read_video

    y = np.asarray(read_video("carphone", max_frames=1).frames.y[0], np.int32)
    blocks_yx = [(by, bx) for by in range(8, 136, 8) for bx in range(8, 160, 8)]
    top = np.stack([y[by - 1, bx - 1:bx + 16] for by, bx in blocks_yx]).astype(np.int32)
    left = np.stack([y[by - 1:by + 16, bx - 1] for by, bx in blocks_yx]).astype(np.int32)
    preds = np.asarray(intra.predict_all_modes(top, left, 3, is_luma=True))
    orig = np.stack([y[by:by + 8, bx:bx + 8] for by, bx in blocks_yx])
    sad = np.abs(preds - orig[:, None]).sum((-1, -2))  # (B, 35)
    best = sad.min(1)
    assert best.sum() < 0.8 * sad[:, 1].sum()  # angular/planar choice cuts SAD by > 20 %
    assert len(np.unique(sad.argmin(1))) > 15  # many directions actually win


def test_most_probable_modes_and_chroma_mode():
    def ref_mpm(a, b):  # H.265 8.4.2, written out
        if a == b:
            return [0, 1, 26] if a < 2 else [a, 2 + ((a + 29) % 32), 2 + ((a - 2 + 1) % 32)]
        if a != 0 and b != 0:
            c = 0
        elif a != 1 and b != 1:
            c = 1
        else:
            c = 26
        return [a, b, c]

    a, b = np.meshgrid(np.arange(35), np.arange(35), indexing="ij")
    got = np.asarray(jax.jit(intra.most_probable_modes)(a, b))
    for i in range(35):
        for j in range(35):
            assert list(got[i, j]) == ref_mpm(i, j)
            assert len(set(got[i, j])) == 3 and got[i, j].min() >= 0 and got[i, j].max() <= 34
    assert list(np.asarray(intra.most_probable_modes(2, 2))) == [2, 33, 3]  # wraps around
    idx, luma = np.meshgrid(np.arange(5), np.arange(35), indexing="ij")
    cm = np.asarray(intra.chroma_intra_mode(idx, luma))
    for i in range(5):
        for m in range(35):
            want = m if i == 4 else ([0, 26, 10, 1][i] if [0, 26, 10, 1][i] != m else 34)
            assert cm[i, m] == want
