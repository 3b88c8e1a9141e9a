"""Inter prediction (H.265 8.5.3.3) against the literal four-case numpy reference, and the
frame-level motion compensation against block-by-block prediction."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcodec.codec import blocks, inter
import ref_kernels as ref


@pytest.mark.parametrize("jit", [True, False])
@pytest.mark.parametrize("bit_depth", [8, 10])
@pytest.mark.parametrize("is_luma", [True, False])
def test_predict_block_every_fraction_matches_reference(is_luma, bit_depth, jit):
    rng = np.random.default_rng(bit_depth + 2 * is_luma)
    plane = rng.integers(0, 1 << bit_depth, (20, 28)).astype(np.int32)
    plane[:4, :4] = (1 << bit_depth) - 1  # extremes near the clamped corner
    prec = 2 if is_luma else 3
    sizes = [(4, 4), (8, 16)] if is_luma else [(2, 2), (4, 8)]
    for h, w in sizes:
        f = lambda r, y, x, m, h=h, w=w: inter.predict_block(r, y, x, h, w, m, is_luma=is_luma, bit_depth=bit_depth)  # noqa: E731
        if jit:
            f = jax.jit(f)
        for fy in range(1 << prec):
            for fx in range(1 << prec):
                # integer parts from far outside (edge extension) to inside
                ix, iy = (int(v) for v in rng.integers(-12, 12, 2))
                y0, x0 = int(rng.integers(0, 20 - h + 1)), int(rng.integers(0, 28 - w + 1))
                mv = np.array([(ix << prec) | fx, (iy << prec) | fy], np.int32)
                got = np.asarray(f(plane, y0, x0, mv))
                want = ref.ref_predict_block(plane, y0, x0, h, w, mv, is_luma, bit_depth)
                np.testing.assert_array_equal(got, want, err_msg=f"{h}x{w} frac ({fx},{fy}) mv {mv}")


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_weighted_prediction_matches_reference(bit_depth):
    rng = np.random.default_rng(4)
    p0 = rng.integers(-(1 << 14), 1 << 15, (64,)).astype(np.int32)  # beyond range: clipping
    p1 = rng.integers(-(1 << 14), 1 << 15, (64,)).astype(np.int32)
    np.testing.assert_array_equal(np.asarray(inter.finish_uni(p0, bit_depth=bit_depth)), ref.ref_weighted(p0, None, bit_depth))
    np.testing.assert_array_equal(np.asarray(inter.finish_bi(p0, p1, bit_depth=bit_depth)), ref.ref_weighted(p0, p1, bit_depth))
    flat = np.full(4, 77, np.int32) << (14 - bit_depth)
    np.testing.assert_array_equal(np.asarray(inter.finish_uni(flat, bit_depth=bit_depth)), 77)
    np.testing.assert_array_equal(np.asarray(inter.finish_bi(flat, flat, bit_depth=bit_depth)), 77)


def _random_decisions(rng, h, w, num_refs):
    """Random CUs (8x8 or 16x16) with constant motion per CU, some intra, all inter_dirs."""
    d = blocks.empty_decisions(h, w)
    fields = {k: np.array(getattr(d, k)) for k in ("pred_mode", "inter_dir", "mv", "ref_idx", "cu_log2")}
    cus = []
    for y in range(0, h, 16):
        for x in range(0, w, 16):
            sub = [(y, x, 16)] if rng.random() < 0.5 else [(y + dy, x + dx, 8) for dy in (0, 8) for dx in (0, 8)]
            cus.extend(sub)
    for (y, x, s) in cus:
        sl = np.s_[y // 4:(y + s) // 4, x // 4:(x + s) // 4]
        idir = int(rng.integers(0, 4))
        fields["cu_log2"][sl] = s.bit_length() - 1
        fields["pred_mode"][sl] = blocks.MODE_INTRA if idir == 0 else blocks.MODE_INTER
        fields["inter_dir"][sl] = idir
        for lst in (0, 1):
            used = idir & (1 << lst)
            fields["ref_idx"][sl + (lst,)] = rng.integers(0, num_refs) if used else -1
            fields["mv"][sl + (lst,)] = rng.integers(-70, 70, 2) if used else 0
    return d.replace(**fields), cus


def _block_by_block(refs, ref_list, d, cus, bit_depth):
    out = []
    for p, (plane_refs, is_luma) in enumerate(((refs[0], True), (refs[1], False), (refs[2], False))):
        sc = 1 if is_luma else 2
        pred = np.zeros((plane_refs.shape[1], plane_refs.shape[2]), np.int64)
        for (y, x, s) in cus:
            idir = int(d.inter_dir[y // 4, x // 4])
            if idir == 0:
                continue
            p14 = []
            for lst in (0, 1):
                if idir & (1 << lst):
                    slot = ref_list[lst][int(d.ref_idx[y // 4, x // 4, lst])]
                    mv = np.asarray(d.mv[y // 4, x // 4, lst])
                    p14.append(np.asarray(inter.predict_block(plane_refs[slot], y // sc, x // sc, s // sc, s // sc, mv,
                                                              is_luma=is_luma, bit_depth=bit_depth)))
            if len(p14) == 2:
                blk = inter.finish_bi(p14[0], p14[1], bit_depth=bit_depth)
            else:
                blk = inter.finish_uni(p14[0], bit_depth=bit_depth)
            pred[y // sc:(y + s) // sc, x // sc:(x + s) // sc] = np.asarray(blk)
        out.append(pred)
    return out


class MotionCompensation(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_frame_equals_block_by_block(self):
        for bit_depth in (8, 10):
            rng = np.random.default_rng(bit_depth)
            h, w, npics = 32, 48, 3
            refs = (rng.integers(0, 1 << bit_depth, (npics, h, w)).astype(np.int32),
                    rng.integers(0, 1 << bit_depth, (npics, h // 2, w // 2)).astype(np.int32),
                    rng.integers(0, 1 << bit_depth, (npics, h // 2, w // 2)).astype(np.int32))
            ref_list = np.array([[2, 0], [1, 2]], np.int32)
            d, cus = _random_decisions(rng, h, w, 2)
            mc = self.variant(lambda a, b, c, dd, rl: inter.motion_compensate(a, b, c, dd, ref_list=rl, bit_depth=bit_depth))
            got = mc(*refs, d, ref_list)
            want = _block_by_block(refs, ref_list, d, cus, bit_depth)
            for g, wnt in zip(got, want):
                assert g.dtype == jnp.int32
                np.testing.assert_array_equal(np.asarray(g), wnt)
            # spot-check one CU of each kind against the literal reference too
            for (y, x, s) in cus[:6]:
                idir = int(d.inter_dir[y // 4, x // 4])
                if idir in (1, 2):
                    lst = idir - 1
                    slot = ref_list[lst][int(d.ref_idx[y // 4, x // 4, lst])]
                    p14 = ref.ref_predict_block(refs[0][slot], y, x, s, s, d.mv[y // 4, x // 4, lst], True, bit_depth)
                    np.testing.assert_array_equal(np.asarray(got[0])[y:y + s, x:x + s], ref.ref_weighted(p14, None, bit_depth))


def test_motion_compensation_compiles_once():
    rng = np.random.default_rng(9)
    h, w = 16, 16
    refs = (rng.integers(0, 256, (2, h, w)), rng.integers(0, 256, (2, 8, 8)), rng.integers(0, 256, (2, 8, 8)))
    f = jax.jit(chex.assert_max_traces(lambda a, b, c, d, rl: inter.motion_compensate(a, b, c, d, ref_list=rl), n=1))
    for _ in range(3):
        d, _ = _random_decisions(rng, h, w, 2)
        f(*(jnp.asarray(r, jnp.int32) for r in refs), jax.tree.map(jnp.asarray, d), jnp.array([[0, 1], [1, 0]]))


@pytest.mark.parametrize("is_luma", [True, False])
def test_interpolate_plane_equals_predict_block(is_luma):
    rng = np.random.default_rng(5)
    plane = rng.integers(0, 256, (16, 20)).astype(np.int32)
    prec = 2 if is_luma else 3
    pad = 6
    for fy in range(0, 1 << prec, 1 if is_luma else 3):
        for fx in range(1 << prec):
            full = np.asarray(inter.interpolate_plane(plane, fx, fy, is_luma=is_luma, pad=pad))
            assert full.shape == (16 + 2 * pad, 20 + 2 * pad)
            for (y0, x0, my, mx) in ((0, 0, -6, -6), (4, 8, 3, -2), (8, 12, 6, 6)):
                mv = np.array([(mx << prec) | fx, (my << prec) | fy])
                blk = np.asarray(inter.predict_block(plane, y0, x0, 8, 8, mv, is_luma=is_luma))
                np.testing.assert_array_equal(full[pad + y0 + my:pad + y0 + my + 8, pad + x0 + mx:pad + x0 + mx + 8], blk)


def test_motion_geometry_on_ramps():
    """Independent of the reference: integer MVs copy the displaced block; on a linear ramp the
    half-sample filter gives the exact midpoint and the quarter-sample filters land within
    a small fraction of a step of the quarter positions; positive mv_x reads to the right."""
    yy, xx = np.mgrid[0:40, 0:40]
    plane = (100 + 3 * xx + 5 * yy).astype(np.int32)
    p = lambda mv: np.asarray(inter.predict_block(plane, 16, 12, 4, 4, np.array(mv), is_luma=True)) / 64.0  # noqa: E731
    np.testing.assert_array_equal(p([4 * 3, 4 * -2]), plane[14:18, 15:19])
    np.testing.assert_allclose(p([2, 0]), plane[16:20, 12:16] + 1.5)  # half right: +3/2
    np.testing.assert_allclose(p([0, 2]), plane[16:20, 12:16] + 2.5)  # half down: +5/2
    np.testing.assert_allclose(p([1, 3]), plane[16:20, 12:16] + 3 * 0.25 + 5 * 0.75, atol=0.25)
    c = np.asarray(inter.predict_block(plane[::2, ::2], 4, 4, 2, 2, np.array([4, 0]), is_luma=False)) / 64.0
    np.testing.assert_allclose(c, plane[::2, ::2][4:6, 4:6] + 3, atol=0.01)  # 4 eighths = half chroma sample


def test_default_ref_list_is_identity():
    rng = np.random.default_rng(13)
    refs = [rng.integers(0, 256, s).astype(np.int32) for s in ((3, 16, 16), (3, 8, 8), (3, 8, 8))]
    d, _ = _random_decisions(rng, 16, 16, 3)
    a = inter.motion_compensate(*refs, d)
    b = inter.motion_compensate(*refs, d, ref_list=np.array([[0, 1, 2], [0, 1, 2]]))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
