"""Latent coders: what the one SSF pipeline does with each latent tensor.

The pipeline (`proxy.ssf.code_frame`) is written once. Wherever it meets a latent it calls
its coder, which is one of:

* `ForwardCoder` — training and the differentiable proxy: quantization surrogates (chosen
  by passing functions, e.g. `noise_quantize` for the rate and `ste_round` for synthesis)
  and rates from the model likelihoods. Pure JAX, traced inside ``jit``.
* `EncodeCoder` — compress: rounds, selects integer tables, records the symbols of each
  segment (in decode order) and returns the rounded latents, so the encoder's
  reconstruction is computed by the same code as the decoder's.
* `DecodeCoder` — decompress: never evaluates the analysis thunk; reads the symbols from
  the rANS stream with the same table indexes.

A coder method gets the analysis as a thunk (``lambda: g_a(x)``) so the decoder, which
has no input frame, simply does not call it. Methods return ``(latent_hat, bits)`` with
``bits`` of shape (B,).

    x ──g_a──> y ──h_a──> z ──coder.factorized──> z_hat ──h_s──> scales
                 └─────────coder.gaussian(scales)──> y_hat ──g_s──> x_hat
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from proxy import rans
from proxy.entropy_models import (
    CdfTables,
    FactorizedPrior,
    bits_per_sample,
    gaussian_likelihood,
    scale_indexes,
)

Surrogate = Callable[[jax.Array, jax.Array], jax.Array]


class ForwardCoder:
    """Surrogate quantization and model rate (training, differentiable proxy)."""

    def __init__(self, *, rate_surrogate: Surrogate, synthesis_surrogate: Surrogate, key: jax.Array):
        self._rate = rate_surrogate
        self._synthesis = synthesis_surrogate
        self._key = key

    def _next(self) -> jax.Array:
        self._key, sub = jax.random.split(self._key)
        return sub

    def factorized(self, name: str, prior: FactorizedPrior, analysis, shape):
        del name, shape
        z = analysis()
        bits = bits_per_sample(prior.likelihood(self._rate(z, self._next())))
        return self._synthesis(z, self._next()), bits

    def gaussian(self, name: str, scales: jax.Array, analysis, shape):
        del name, shape
        y = analysis()
        bits = bits_per_sample(gaussian_likelihood(self._rate(y, self._next()), scales))
        return self._synthesis(y, self._next()), bits


def _channel_indexes(shape) -> np.ndarray:
    return np.broadcast_to(np.arange(shape[-1], dtype=np.int32), shape)


class EncodeCoder:
    """Rounds latents and records their symbols and integer table indexes (compress)."""

    def __init__(self, tables):
        self._tables = tables
        self._starts: list[np.ndarray] = []
        self._freqs: list[np.ndarray] = []
        self.symbols: list[np.ndarray] = []  # kept for tests (round trip of latents)

    def _record(self, symbols: np.ndarray, indexes: np.ndarray, table: CdfTables) -> np.ndarray:
        starts, freqs = rans.segment_events(symbols, indexes, table)
        self._starts.append(starts)
        self._freqs.append(freqs)
        self.symbols.append(symbols)
        return np.full((symbols.shape[0],), rans.event_bits(freqs) / symbols.shape[0], np.float32)

    def factorized(self, name: str, prior: FactorizedPrior, analysis, shape):
        del prior
        z = np.asarray(jnp.round(analysis())).astype(np.int32)
        bits = self._record(z, _channel_indexes(z.shape), getattr(self._tables, name))
        return jnp.asarray(z, jnp.float32), jnp.asarray(bits)

    def gaussian(self, name: str, scales: jax.Array, analysis, shape):
        del name
        y = np.asarray(jnp.round(analysis())).astype(np.int32)
        idx = scale_indexes(np.asarray(scales), self._tables.gaussian.bounds)
        bits = self._record(y, idx, self._tables.gaussian)
        return jnp.asarray(y, jnp.float32), jnp.asarray(bits)

    def stream(self) -> bytes:
        """The frame's rANS stream (all segments, decode order)."""
        if not self._starts:
            return rans.encode_events(np.zeros(0, np.int64), np.zeros(0, np.int64))
        return rans.encode_events(np.concatenate(self._starts), np.concatenate(self._freqs))

    def estimated_bits(self) -> float:
        """Ideal code length of the recorded events under the integer tables."""
        return sum(rans.event_bits(f) for f in self._freqs)


class DecodeCoder:
    """Reads latents from a frame's rANS stream (decompress); analysis thunks are never called."""

    def __init__(self, tables, data: bytes):
        self._tables = tables
        self._decoder = rans.Decoder(data)
        self.symbols: list[np.ndarray] = []

    def factorized(self, name: str, prior: FactorizedPrior, analysis, shape):
        del prior, analysis
        z = self._decoder.decode(_channel_indexes(shape), getattr(self._tables, name))
        self.symbols.append(z)
        return jnp.asarray(z, jnp.float32), jnp.zeros((shape[0],), jnp.float32)

    def gaussian(self, name: str, scales: jax.Array, analysis, shape):
        del name, analysis
        idx = scale_indexes(np.asarray(scales), self._tables.gaussian.bounds)
        y = self._decoder.decode(idx, self._tables.gaussian)
        self.symbols.append(y)
        return jnp.asarray(y, jnp.float32), jnp.zeros((shape[0],), jnp.float32)

    def finish(self) -> None:
        self._decoder.finish()
