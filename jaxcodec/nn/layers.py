"""NN layers for coding tools, written once against an ``ops`` backend.

A model's ``forward(ops, *inputs)`` calls only ``ops.<op>(...)``; :data:`FLOAT_OPS`
computes in float JAX (training, float inference), and the integer converter
(runtime.nnint.convert) passes a recording backend that builds an integer graph from the
same code, so the float model and its integer graph cannot drift apart.

Quantization-aware training (paper 001 IV-B, Fig. 9): with ``qat=True`` a layer
fake-quantizes its weights and output to int16 with power-of-two quantizers chosen from
the current maxima, with straight-through gradients.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

INT16_MAX = 32767


def pow2_quantizer(max_abs: jax.Array, bits: int = 16) -> jax.Array:
    """Largest q with max_abs * 2**q <= 2**(bits-1) - 1 (the SADL static quantizer rule)."""
    lim = 2.0 ** (bits - 1) - 1
    return jnp.floor(jnp.log2(lim / jnp.maximum(max_abs, 1e-12)))


def fake_quant(x: jax.Array, bits: int = 16) -> jax.Array:
    """Round to the int grid of a power-of-two quantizer; straight-through gradient."""
    q = jax.lax.stop_gradient(pow2_quantizer(jnp.max(jnp.abs(x)), bits))
    scale = 2.0 ** q
    lim = 2.0 ** (bits - 1)
    xq = jnp.clip(jnp.round(x * scale), -lim, lim - 1) / scale
    return x + jax.lax.stop_gradient(xq - x)


class Conv(nnx.Module):
    """NHWC conv2d, HWIO kernel with I = in_features / groups, SAME-style explicit padding."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, *,
                 stride: int = 1, groups: int = 1, qat: bool = False,
                 qat_bits: tuple[int, int] = (16, 16), rngs: nnx.Rngs):
        k = kernel_size
        fan_in = k * k * in_features // groups
        init = jax.random.normal(rngs.params(), (k, k, in_features // groups, out_features))
        self.kernel = nnx.Param(init * math.sqrt(2.0 / fan_in))
        self.bias = nnx.Param(jnp.zeros((out_features,)))
        self.stride = stride
        self.groups = groups
        self.qat = qat
        self.qat_bits = tuple(qat_bits)  # (weight bits, activation bits) simulated by QAT
        # SAME padding for odd kernels; for stride 2 pad so that H/2 comes out for even H.
        lo = (k - 1) // 2 if stride == 1 else max((k - stride + 1) // 2, 0)
        hi = k - 1 - lo if stride == 1 else max(k - stride - lo, 0)
        self.padding = ((lo, hi), (lo, hi))

    def __call__(self, x: jax.Array) -> jax.Array:
        w = self.kernel[...]
        wb, ab = self.qat_bits
        if self.qat:
            w = fake_quant(w, wb)
        y = jax.lax.conv_general_dilated(
            x, w, (self.stride, self.stride), self.padding,
            dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=self.groups)
        y = y + self.bias[...]
        return fake_quant(y, ab) if self.qat else y


class Dense(nnx.Module):
    def __init__(self, in_features: int, out_features: int, *, qat: bool = False, rngs: nnx.Rngs):
        init = jax.random.normal(rngs.params(), (in_features, out_features))
        self.kernel = nnx.Param(init * math.sqrt(1.0 / in_features))
        self.bias = nnx.Param(jnp.zeros((out_features,)))
        self.qat = qat

    def __call__(self, x: jax.Array) -> jax.Array:
        w = fake_quant(self.kernel[...]) if self.qat else self.kernel[...]
        y = x @ w + self.bias[...]
        return fake_quant(y) if self.qat else y


class PReLU(nnx.Module):
    def __init__(self, features: int, init: float = 0.1):
        self.alpha = nnx.Param(jnp.full((features,), init))

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.where(x >= 0, x, x * self.alpha[...])


def _pixel_shuffle(x, r):
    n, h, w, c = x.shape
    x = x.reshape(n, h, w, r, r, c // (r * r)).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h * r, w * r, c // (r * r))


def _pixel_unshuffle(x, r):
    n, h, w, c = x.shape
    x = x.reshape(n, h // r, r, w // r, r, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h // r, w // r, r * r * c)


class FloatOps:
    """Float JAX backend of the ops vocabulary (same semantics as runtime.nnint.graph)."""

    conv = staticmethod(lambda layer, x: layer(x))
    dense = staticmethod(lambda layer, x: layer(x))
    prelu = staticmethod(lambda layer, x: layer(x))
    add = staticmethod(lambda a, b: a + b)
    mul = staticmethod(lambda a, b: a * b)
    concat = staticmethod(lambda xs: jnp.concatenate(xs, axis=-1))
    relu = staticmethod(jax.nn.relu)
    leaky_relu = staticmethod(lambda x, slope: jnp.where(x >= 0, x, slope * x))
    pixel_shuffle = staticmethod(_pixel_shuffle)
    pixel_unshuffle = staticmethod(_pixel_unshuffle)
    upsample = staticmethod(lambda x, r: jnp.repeat(jnp.repeat(x, r, axis=1), r, axis=2))
    reshape = staticmethod(lambda x, shape: x.reshape((x.shape[0], *shape)))
    transpose = staticmethod(lambda x, perm: x.transpose((0, *[p + 1 for p in perm])))
    slice = staticmethod(lambda x, begin, end: x[(slice(None), *[slice(b, e) for b, e in zip(begin, end)])])

    @staticmethod
    def max_pool(x, k):
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, k, k, 1), (1, k, k, 1), "VALID")


FLOAT_OPS = FloatOps()
