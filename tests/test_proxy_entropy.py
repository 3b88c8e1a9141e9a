"""Entropy models and the rANS coder of the proxy (proxy/entropy_models.py, proxy/rans.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxcodec.errors import BitstreamError
from proxy import rans
from proxy.entropy_models import (
    PRECISION,
    FactorizedPrior,
    RATE_LIKELIHOOD_BOUND,
    factorized_tables,
    gaussian_likelihood,
    gaussian_tables,
    noise_quantize,
    pmf_to_freqs,
    scale_indexes,
    scale_table,
    ste_round,
)


@pytest.fixture(scope="module")
def gtables():
    return gaussian_tables()


def test_tables_are_valid_integer_cdfs(gtables):
    for t in range(gtables.cdf.shape[0]):
        n = gtables.cdf_length[t]
        row = gtables.cdf[t, :n]
        assert row[0] == 0 and row[-1] == 1 << PRECISION
        assert np.all(np.diff(row) >= 1)  # every symbol codable
    assert gtables.cdf.dtype == np.int32 and gtables.bounds.dtype == np.int64


def test_pmf_to_freqs_sums_exactly():
    rng = np.random.default_rng(3)
    for n in (2, 7, 300):
        pmf = rng.exponential(size=n) ** 4
        f = pmf_to_freqs(pmf)
        assert f.sum() == 1 << PRECISION and f.min() >= 1


def test_scale_index_matches_float_reference(gtables):
    """Integer selection equals the nearest table in log domain (away from the bounds)."""
    rng = np.random.default_rng(0)
    s = np.exp(rng.uniform(np.log(0.12), np.log(60), 5000))
    idx = scale_indexes(s, gtables.bounds)
    ref = np.argmin(np.abs(np.log(s)[:, None] - np.log(scale_table())[None]), axis=1)
    table = scale_table()
    mids = np.sqrt(table[:-1] * table[1:])
    away = np.min(np.abs(s[:, None] - mids[None]), axis=1) > 1e-3
    assert np.array_equal(idx[away], ref[away])
    assert idx.dtype == np.int32
    assert scale_indexes(np.array([0.0, 1e9]), gtables.bounds).tolist() == [0, len(table) - 1]


def test_rans_round_trip_with_escapes_and_estimate(gtables):
    rng = np.random.default_rng(1)
    scales = np.exp(rng.uniform(np.log(0.11), np.log(64), 20000))
    idx = scale_indexes(scales, gtables.bounds)
    y = np.round(rng.normal(size=scales.shape) * scales).astype(np.int32)
    y[:6] = [1 << 20, -(1 << 20), 2**31 - 1, -(2**31), 500, -500]  # escapes
    starts, freqs = rans.segment_events(y, idx, gtables)
    data = rans.encode_events(starts, freqs)
    assert rans.encode_events(starts, freqs) == data  # identical bytes across runs
    dec = rans.Decoder(data)
    assert np.array_equal(dec.decode(idx, gtables), y)
    dec.finish()
    # rANS costs the ideal length of the integer tables plus the 4-byte state flush
    assert abs(8 * len(data) - rans.event_bits(freqs)) <= 40


def test_rans_segments_decode_in_order(gtables):
    prior = FactorizedPrior(5, rngs=nnx.Rngs(0))
    ftables = factorized_tables(prior)
    rng = np.random.default_rng(2)
    z = rng.integers(-3, 4, size=(2, 3, 4, 5)).astype(np.int32)
    zi = np.broadcast_to(np.arange(5, dtype=np.int32), z.shape)
    y = rng.integers(-9, 10, size=100).astype(np.int32)
    yi = rng.integers(0, 64, size=100).astype(np.int32)
    s1, f1 = rans.segment_events(z, zi, ftables)
    s2, f2 = rans.segment_events(y, yi, gtables)
    data = rans.encode_events(np.concatenate([s1, s2]), np.concatenate([f1, f2]))
    dec = rans.Decoder(data)
    assert np.array_equal(dec.decode(zi, ftables), z)
    assert np.array_equal(dec.decode(yi, gtables), y)
    dec.finish()
    with pytest.raises(BitstreamError):
        bad = rans.Decoder(data[: len(data) // 2])
        bad.decode(zi, ftables)
        bad.decode(yi, gtables)
        bad.finish()


def test_factorized_prior_is_a_distribution():
    prior = FactorizedPrior(3, rngs=nnx.Rngs(1))
    v = jnp.arange(-300, 301, dtype=jnp.float32)
    lik = np.asarray(prior.likelihood(jnp.tile(v[:, None], (1, 3))))
    # far tails sit at the rate model's floor (one coder frequency unit); the rest is the density
    floored = lik <= RATE_LIKELIHOOD_BOUND
    assert floored.any() and (lik >= RATE_LIKELIHOOD_BOUND).all()
    np.testing.assert_allclose(np.where(floored, 0.0, lik).sum(0), 1.0, atol=1e-3)


def test_gaussian_likelihood_is_a_distribution():
    v = jnp.arange(-400, 401, dtype=jnp.float32)
    for s in (0.2, 1.0, 30.0):
        lik = np.asarray(gaussian_likelihood(v, jnp.float32(s)))
        assert (lik >= RATE_LIKELIHOOD_BOUND).all()
        # the tails sit at the floor (one coder frequency unit); the rest is the density
        assert abs(float(np.where(lik <= RATE_LIKELIHOOD_BOUND, 0.0, lik).sum()) - 1.0) < 1e-3


def test_gaussian_likelihood_clips_scales_to_the_table_range():
    """The rate model uses the scale the coder's table has: below SCALE_MIN and above SCALE_MAX
    (64) it is clipped, as `scale_indexes` clips it."""
    v = jnp.asarray([0.0, 3.0, 100.0])
    np.testing.assert_array_equal(gaussian_likelihood(v, jnp.float32(600.0)), gaussian_likelihood(v, jnp.float32(64.0)))
    np.testing.assert_array_equal(gaussian_likelihood(v, jnp.float32(0.01)), gaussian_likelihood(v, jnp.float32(0.11)))
    assert float(gaussian_likelihood(v, jnp.float32(30.0))[1]) != float(gaussian_likelihood(v, jnp.float32(64.0))[1])


def test_surrogates():
    y = jnp.linspace(-3, 3, 101)
    n = noise_quantize(y, jax.random.key(0))
    assert float(jnp.max(jnp.abs(n - y))) <= 0.5
    assert np.array_equal(np.asarray(ste_round(y)), np.round(np.asarray(y)))
    np.testing.assert_allclose(np.asarray(jax.grad(lambda a: ste_round(a).sum())(y)), 1.0)
