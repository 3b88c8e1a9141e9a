"""Integer transforms (H.265 8.6.4.2) against the literal numpy reference, plus table checks."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcodec.codec import transform as tr
import ref_kernels as ref


def test_dct4_and_dst4_tables():
    np.testing.assert_array_equal(
        tr.transform_matrix(2), [[64, 64, 64, 64], [83, 36, -36, -83], [64, -64, -64, 64], [36, -83, 83, -36]])
    np.testing.assert_array_equal(
        tr.transform_matrix(2, dst=True),
        [[29, 55, 74, 84], [74, 74, 0, -74], [84, -29, -74, 55], [55, -84, 74, -29]])


def test_dct_tables_known_rows():
    m8 = tr.transform_matrix(3)
    np.testing.assert_array_equal(m8[1], [89, 75, 50, 18, -18, -50, -75, -89])
    np.testing.assert_array_equal(m8[3], [75, -18, -89, -50, 50, 89, 18, -75])
    np.testing.assert_array_equal(m8[2], [83, 36, -36, -83, -83, -36, 36, 83])
    np.testing.assert_array_equal(tr.transform_matrix(4)[1][:8], [90, 87, 80, 70, 57, 43, 25, 9])
    np.testing.assert_array_equal(
        tr.transform_matrix(5)[1][:16], [90, 90, 88, 85, 82, 78, 73, 67, 61, 54, 46, 38, 31, 22, 13, 4])


@pytest.mark.parametrize("log2n", [2, 3, 4, 5])
def test_tables_match_reference_and_are_nearly_orthogonal(log2n):
    n = 1 << log2n
    m = tr.transform_matrix(log2n).astype(np.int64)
    np.testing.assert_array_equal(m, np.array(ref.ref_matrix(n)))
    gram = m @ m.T
    # HEVC matrices are orthogonal up to small integer errors with norm 64^2 * N (<0.3% off).
    np.testing.assert_allclose(np.diag(gram), 4096 * n, rtol=0.01)
    off = gram - np.diag(np.diag(gram))
    assert np.abs(off).max() <= 0.003 * 4096 * n


def _blocks(rng, log2n, bit_depth, count, lo=None):
    n = 1 << log2n
    peak = (1 << bit_depth) - 1
    res = rng.integers(-peak, peak + 1, (count, n, n))
    res[0] = peak  # extreme flat block
    res[1] = -peak
    res[2] = np.where(np.indices((n, n)).sum(0) % 2, peak, -peak)  # checkerboard
    return res.astype(np.int32)


CASES = [(l, d, bd) for l in (2, 3, 4, 5) for d in (False, True) for bd in (8, 10) if not (d and l != 2)]


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("log2n,dst,bit_depth", CASES)
def test_forward_inverse_match_reference(log2n, dst, bit_depth, jit):
    rng = np.random.default_rng(log2n * 10 + bit_depth + dst)
    count = 4 if log2n == 5 else 8
    res = _blocks(rng, log2n, bit_depth, count)
    fwd = lambda x: tr.forward_transform(x, log2n, dst=dst, bit_depth=bit_depth)  # noqa: E731
    inv = lambda x: tr.inverse_transform(x, log2n, dst=dst, bit_depth=bit_depth)  # noqa: E731
    if jit:
        fwd, inv = jax.jit(fwd), jax.jit(inv)
    coeffs = np.asarray(fwd(res))
    assert coeffs.dtype == np.int32
    for b in range(count):
        np.testing.assert_array_equal(coeffs[b], ref.ref_forward(res[b], log2n, dst, bit_depth))
    assert np.abs(coeffs).max() <= 32767
    # random in-range coefficients (sparse + dense) through the inverse, clipping included
    cin = rng.integers(-32768, 32768, res.shape).astype(np.int32)
    cin[: count // 2] = coeffs[: count // 2]
    back = np.asarray(inv(cin))
    for b in range(count):
        np.testing.assert_array_equal(back[b], ref.ref_inverse(cin[b], log2n, dst, bit_depth))
    # round trip of an unquantized block is near-lossless
    err = np.abs(np.asarray(inv(coeffs))[: count // 2] - res[: count // 2])
    # 10-bit residuals map to coefficients of the same magnitude as 8-bit ones: 4x coarser.
    assert err.mean() < 1.5 * 4 ** (bit_depth - 8) and err.max() <= 8 * 4 ** (bit_depth - 8)


class TransformVariants(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_tiles_equal_blocks(self):
        rng = np.random.default_rng(0)
        plane = rng.integers(-255, 256, (2, 16, 24)).astype(np.int32)
        for log2n in (2, 3):
            n = 1 << log2n
            fwd = self.variant(lambda p, l=log2n: tr.forward_transform_tiles(p, l))
            inv = self.variant(lambda p, l=log2n: tr.inverse_transform_tiles(p, l))
            c = np.asarray(fwd(plane))
            r = np.asarray(inv(c))
            for t in range(2):
                for y in range(0, 16, n):
                    for x in range(0, 24, n):
                        blk = plane[t, y:y + n, x:x + n]
                        np.testing.assert_array_equal(c[t, y:y + n, x:x + n], ref.ref_forward(blk, log2n))
                        np.testing.assert_array_equal(
                            r[t, y:y + n, x:x + n], ref.ref_inverse(c[t, y:y + n, x:x + n], log2n))

    @chex.variants(with_jit=True, without_jit=True)
    def test_tiles_with_per_tile_dst(self):
        rng = np.random.default_rng(4)
        plane = rng.integers(-255, 256, (8, 12)).astype(np.int32)
        mask = rng.random((2, 3)) < 0.5
        c = np.asarray(self.variant(lambda p, m: tr.forward_transform_tiles(p, 2, dst=m))(plane, mask))
        r = np.asarray(self.variant(lambda p, m: tr.inverse_transform_tiles(p, 2, dst=m))(c, mask))
        for ty in range(2):
            for tx in range(3):
                sl = np.s_[4 * ty:4 * ty + 4, 4 * tx:4 * tx + 4]
                np.testing.assert_array_equal(c[sl], ref.ref_forward(plane[sl], 2, bool(mask[ty, tx])))
                np.testing.assert_array_equal(r[sl], ref.ref_inverse(c[sl], 2, bool(mask[ty, tx])))

    @chex.variants(with_jit=True, without_jit=True)
    def test_float_twin_tracks_integer_path(self):
        rng = np.random.default_rng(1)
        for log2n, dst in ((2, True), (2, False), (3, False), (4, False), (5, False)):
            x = rng.integers(-255, 256, (3, 1 << log2n, 1 << log2n)).astype(np.int32)
            ci = np.asarray(tr.forward_transform(x, log2n, dst=dst))
            cf = np.asarray(self.variant(lambda v: tr.forward_transform_float(v, log2n, dst=dst))(x))
            assert np.abs(ci - cf).max() <= 1.0
            rf = np.asarray(self.variant(lambda v: tr.inverse_transform_float(v, log2n, dst=dst))(ci))
            ri = np.asarray(tr.inverse_transform(ci, log2n, dst=dst))
            assert np.abs(ri - rf).max() <= 1.0
            # differentiable
            g = jax.grad(lambda v: tr.forward_transform_float(v, log2n, dst=dst).sum())(x.astype(np.float32))
            assert np.isfinite(np.asarray(g)).all() and np.abs(np.asarray(g)).sum() > 0


def test_compiles_once_per_size():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(x):
        return tr.inverse_transform(tr.forward_transform(x, 3), 3)

    rng = np.random.default_rng(2)
    for _ in range(3):
        f(jnp.asarray(rng.integers(-255, 256, (5, 8, 8)), jnp.int32))


def test_bad_block_shape_rejected():
    with pytest.raises(ValueError):
        tr.forward_transform(np.zeros((4, 8), np.int32), 2)
    with pytest.raises(ValueError):
        tr.transform_matrix(3, dst=True)
