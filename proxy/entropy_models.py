"""Entropy models of the proxy: factorized prior, Gaussian conditional, their integer tables.

Ballé et al. 2018 ("Variational image compression with a scale hyperprior"): the hyper
latents ``z`` use a *factorized prior* (a learned, per-channel cumulative density, the
"entropy bottleneck" of Ballé 2018 appendix 6.1); the latents ``y`` are a zero-mean
Gaussian whose scales the hyper-synthesis predicts from ``z_hat`` (the *Gaussian
conditional*). Paper 004 section 3.1 uses this model as ``R(.; h_a, h_s)``.

Quantization surrogates are separate functions (`noise_quantize`, `ste_round`), never a
mode string. Likelihoods give rates in bits (`bits_per_sample`).

The real coder (`proxy.rans`) consumes integer CDF tables (`CdfTables`). They are built
once from the learned parameters by `factorized_tables` / `gaussian_tables`, stored in the
model checkpoint next to the parameters, and passed explicitly to compress/decompress: no
post-training ``update()`` to remember, and the decoder never recomputes a table in
float. A scale selects its Gaussian table by integer arithmetic only (`scale_indexes`):
the scale is put on a fixed-point grid and compared with integer bounds, so encoder and
decoder (which compute the scales with the same function on the same ``z_hat``) pick
the same table.
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct

from proxy.rans import PRECISION

LIKELIHOOD_BOUND = 1e-9  # floor of a table's escape (tail) mass before quantization
# Floor of every likelihood in the rate model: the coder gives no symbol less than one frequency
# unit, 2^-PRECISION, so no coded symbol costs more than PRECISION bits (escapes aside). With
# CompressAI's 1e-9 a latent the hyperprior deems impossible was priced at up to 30 bits
# instead of 16, and the rate estimate of a proxy whose residual scales sit at SCALE_MIN
# overshot the coded size by 5-9 % (models/proxy_x264_refined.md).
RATE_LIKELIHOOD_BOUND = 2.0 ** -PRECISION
SCALE_MIN = 0.11  # lower bound of Gaussian scales (CompressAI's default)
SCALE_MAX = 64.0
NUM_SCALES = 64
SCALE_FIX_BITS = 12  # fixed-point bits of scales when selecting a table
FACTORIZED_SUPPORT = 24  # hyper latents coded in [-24, 24] + escape
TAIL_SIGMAS = 6.0  # Gaussian table half-width in scales


# --------------------------------------------------------------------------- surrogates


def noise_quantize(y: jax.Array, key: jax.Array) -> jax.Array:
    """Additive uniform noise U(-1/2, 1/2): the training surrogate of rounding (Ballé 2017)."""
    return y + jax.random.uniform(key, y.shape, y.dtype, -0.5, 0.5)


def ste_round(y: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """Rounding in the forward pass, identity gradient (straight-through estimator)."""
    del key
    return y + jax.lax.stop_gradient(jnp.round(y) - y)


def hard_round(y: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """Rounding with its true (zero) gradient; what the codec does."""
    del key
    return jnp.round(y)


def bits_per_sample(likelihood: jax.Array) -> jax.Array:
    """``-sum log2 p`` over all but the leading (batch) axis: bits of each sample."""
    bits = -jnp.log2(likelihood)
    return bits.reshape(bits.shape[0], -1).sum(axis=1)


# --------------------------------------------------------------------------- factorized prior


class FactorizedPrior(nnx.Module):
    """Per-channel learned density of the hyper latents (Ballé 2018, appendix 6.1).

    The cumulative ``c(v) = sigmoid(f_K(...f_1(v)))`` is a monotone chain of per-channel
    affine maps with softplus-positive matrices and ``tanh`` gates; the likelihood of a
    (noisy or rounded) value is ``c(v + 1/2) - c(v - 1/2)``, evaluated on the side of the
    median where it does not saturate.
    """

    def __init__(self, channels: int, *, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0, rngs: nnx.Rngs):
        self.channels = channels
        dims = (1,) + tuple(filters) + (1,)
        scale = init_scale ** (1.0 / (len(dims) - 1))
        matrices, biases, factors = [], [], []
        for i in range(len(dims) - 1):
            init = math.log(math.expm1(1.0 / scale / dims[i + 1]))
            matrices.append(nnx.Param(jnp.full((channels, dims[i + 1], dims[i]), init, jnp.float32)))
            biases.append(nnx.Param(jax.random.uniform(rngs.params(), (channels, dims[i + 1], 1), jnp.float32, -0.5, 0.5)))
            if i < len(dims) - 2:
                factors.append(nnx.Param(jnp.zeros((channels, dims[i + 1], 1), jnp.float32)))
        self.matrices = nnx.List(matrices)
        self.biases = nnx.List(biases)
        self.factors = nnx.List(factors)

    def _logits_cdf(self, v: jax.Array) -> jax.Array:
        """``v``: (C, 1, N) -> logits of the cumulative, (C, 1, N)."""
        x = v
        for i in range(len(self.matrices)):
            x = jnp.matmul(jax.nn.softplus(self.matrices[i][...]), x) + self.biases[i][...]
            if i < len(self.factors):
                x = x + jnp.tanh(self.factors[i][...]) * jnp.tanh(x)
        return x

    def likelihood(self, z: jax.Array) -> jax.Array:
        """Likelihood of each element of ``z`` (..., C) under its channel's density."""
        chex.assert_axis_dimension(z, -1, self.channels)
        shape = z.shape
        v = jnp.moveaxis(z.reshape(-1, self.channels), -1, 0)[:, None, :]
        lower = self._logits_cdf(v - 0.5)
        upper = self._logits_cdf(v + 0.5)
        sign = jax.lax.stop_gradient(-jnp.sign(lower + upper))
        lik = jnp.abs(jax.nn.sigmoid(sign * upper) - jax.nn.sigmoid(sign * lower))
        lik = jnp.moveaxis(lik[:, 0, :], 0, -1).reshape(shape)
        return jnp.maximum(lik, RATE_LIKELIHOOD_BOUND)


# --------------------------------------------------------------------------- Gaussian conditional


def gaussian_likelihood(y: jax.Array, scale: jax.Array) -> jax.Array:
    """Likelihood of ``y`` under N(0, scale^2) convolved with U(-1/2, 1/2) (Ballé 2018 eq. 10).

    Scales are clipped to the table range [SCALE_MIN, SCALE_MAX], as the coder clips them: the
    small proxy predicts scales up to 600 for 95 % of its flow latents on bigbuckbunny, which the
    coder codes with the scale-64 table, and the unclipped estimate overshot their coded size by 6 %.
    """
    s = jnp.clip(scale, SCALE_MIN, SCALE_MAX)
    v = jnp.abs(y)
    upper = jax.scipy.special.ndtr((0.5 - v) / s)
    lower = jax.scipy.special.ndtr((-0.5 - v) / s)
    return jnp.maximum(upper - lower, RATE_LIKELIHOOD_BOUND)


def scale_table() -> np.ndarray:
    """The ``NUM_SCALES`` log-spaced scales of the Gaussian tables (float64, fixed)."""
    return np.exp(np.linspace(np.log(SCALE_MIN), np.log(SCALE_MAX), NUM_SCALES))


def scale_indexes(scales: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Table index of each scale by integer arithmetic.

    The scale goes to a fixed-point integer ``round(scale * 2^SCALE_FIX_BITS)`` (the one
    float-to-int step, on values computed identically by encoder and decoder); the index is
    the number of integer bounds it reaches (`np.searchsorted` on int64).
    """
    fixed = np.round(np.clip(np.asarray(scales, np.float64), 0.0, 2 * SCALE_MAX) * (1 << SCALE_FIX_BITS)).astype(np.int64)
    return np.searchsorted(np.asarray(bounds, np.int64), fixed, side="right").astype(np.int32)


# --------------------------------------------------------------------------- integer tables


@struct.dataclass
class CdfTables:
    """Integer CDF tables consumed by `proxy.rans`.

    Attributes:
      cdf: int32 ``(n_tables, max_length)``; row t is ``0 = cdf[t,0] < ... < cdf[t, L_t-1] =
        2^PRECISION``, padded after ``L_t``. Symbol ``s`` of table t has frequency
        ``cdf[t, s+1] - cdf[t, s]``; symbol ``L_t - 2`` is the escape.
      cdf_length: int32 ``(n_tables,)`` number of CDF entries ``L_t`` (symbols + 1).
      offset: int32 ``(n_tables,)`` value coded by symbol 0.
      bounds: int64 fixed-point scale bounds for `scale_indexes` (Gaussian tables; empty
        for factorized tables).
    """

    cdf: np.ndarray
    cdf_length: np.ndarray
    offset: np.ndarray
    bounds: np.ndarray


def pmf_to_freqs(pmf: np.ndarray) -> np.ndarray:
    """Quantize a pmf (the escape mass last) to integer frequencies >= 1 summing to 2^PRECISION."""
    pmf = np.asarray(pmf, np.float64)
    total = 1 << PRECISION
    if pmf.size >= total:
        raise ValueError("table too long for the coder precision")
    freq = np.maximum(1, np.floor(pmf / pmf.sum() * (total - pmf.size))).astype(np.int64)
    diff = total - int(freq.sum())
    order = np.argsort(-freq, kind="stable")
    k = 0
    while diff != 0:
        i = order[k % freq.size]
        step = diff if diff > 0 else -min(-diff, int(freq[i]) - 1)
        freq[i] += step
        diff -= step
        k += 1
    return freq


def _stack_tables(pmfs: list[np.ndarray], offsets: list[int], bounds: np.ndarray) -> CdfTables:
    lengths = [p.size + 1 for p in pmfs]
    cdf = np.zeros((len(pmfs), max(lengths)), np.int32)
    for t, pmf in enumerate(pmfs):
        freq = pmf_to_freqs(pmf)
        cdf[t, 1 : freq.size + 1] = np.cumsum(freq)
        cdf[t, freq.size + 1 :] = 1 << PRECISION
    return CdfTables(cdf=cdf, cdf_length=np.asarray(lengths, np.int32), offset=np.asarray(offsets, np.int32),
                     bounds=np.asarray(bounds, np.int64))


def factorized_tables(prior: FactorizedPrior) -> CdfTables:
    """One table per channel over ``[-FACTORIZED_SUPPORT, FACTORIZED_SUPPORT]`` plus escape."""
    k = FACTORIZED_SUPPORT
    values = jnp.arange(-k, k + 1, dtype=jnp.float32)
    lik = np.asarray(prior.likelihood(jnp.tile(values[:, None], (1, prior.channels))), np.float64).T  # (C, 2k+1)
    pmfs, offsets = [], []
    for c in range(prior.channels):
        tail = max(1.0 - float(lik[c].sum()), LIKELIHOOD_BOUND)
        pmfs.append(np.concatenate([lik[c], [tail]]))
        offsets.append(-k)
    return _stack_tables(pmfs, offsets, np.zeros(1, np.int64))  # unused; orbax cannot store empty arrays


def gaussian_tables() -> CdfTables:
    """One table per entry of `scale_table` with half-width ``ceil(TAIL_SIGMAS * scale)``."""
    from scipy.special import ndtr

    scales = scale_table()
    pmfs, offsets = [], []
    for s in scales:
        k = int(math.ceil(TAIL_SIGMAS * s))
        v = np.arange(-k, k + 1, dtype=np.float64)
        pmf = ndtr((v + 0.5) / s) - ndtr((v - 0.5) / s)
        tail = max(1.0 - pmf.sum(), LIKELIHOOD_BOUND)
        pmfs.append(np.concatenate([pmf, [tail]]))
        offsets.append(-k)
    # a scale picks the table whose scale is nearest in log domain: bounds at geometric midpoints
    mids = np.sqrt(scales[:-1] * scales[1:])
    bounds = np.round(mids * (1 << SCALE_FIX_BITS)).astype(np.int64)
    return _stack_tables(pmfs, offsets, bounds)
