"""Converter: an NNX model using every op becomes an integer graph that (a) runs bit-equal
in the jitted runtime and the int64 reference and (b) stays close to the float model."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxcodec.nn import layers as L
from runtime.nnint import convert, execute, reference


class AllOps(nnx.Module):
    """Exercises conv (plain, strided, grouped, depthwise), dense and every other op."""

    def __init__(self, *, qat=False, rngs):
        self.c1 = L.Conv(3, 8, 3, qat=qat, rngs=rngs)
        self.c2 = L.Conv(8, 8, 3, stride=2, qat=qat, rngs=rngs)
        self.grouped = L.Conv(8, 8, 3, groups=2, qat=qat, rngs=rngs)
        self.depthwise = L.Conv(8, 8, 3, groups=8, qat=qat, rngs=rngs)
        self.pw = L.Conv(16, 4, 1, qat=qat, rngs=rngs)
        self.act = L.PReLU(8, init=0.2)
        self.fc = L.Dense(4 * 4 * 4, 6, qat=qat, rngs=rngs)

    def forward(self, ops, x, g):
        y = ops.prelu(self.act, ops.conv(self.c1, x))                 # 16x16x8
        y = ops.leaky_relu(ops.conv(self.c2, y), 0.1)                 # 8x8x8
        a = ops.relu(ops.conv(self.grouped, y))
        b = ops.conv(self.depthwise, y)
        y = ops.concat([ops.add(a, b), ops.mul(a, b)])                # 8x8x16
        y = ops.conv(self.pw, y)                                      # 8x8x4
        up = ops.upsample(y, 2)                                       # 16x16x4
        s = ops.pixel_shuffle(ops.pixel_unshuffle(up, 2), 2)
        s = ops.add(s, ops.mul(ops.slice(ops.concat([g, g]), (0, 0, 0), (16, 16, 4)), up))
        p = ops.max_pool(s, 4)                                         # 4x4x4
        p = ops.transpose(p, (1, 0, 2))
        return ops.dense(self.fc, ops.reshape(p, (4 * 4 * 4,))), s

    def __call__(self, x, g):
        return self.forward(L.FLOAT_OPS, x, g)


def _data(rng, n):
    return (rng.uniform(-1, 1, (n, 16, 16, 3)).astype(np.float32),
            rng.uniform(-1, 1, (n, 16, 16, 2)).astype(np.float32))


@pytest.mark.parametrize("fast", [True, False])
def test_all_ops_model_converts_exactly(fast):
    rng = np.random.default_rng(0)
    model = AllOps(rngs=nnx.Rngs(0))
    graph = convert.convert(model, [_data(rng, 4) for _ in range(3)], [1.0, 1.0], fast=fast)
    from runtime.nnint.graph import OPS
    assert {n.op for n in graph.nodes} == set(OPS)
    x = _data(rng, 2)
    xi = convert.quantize_inputs(graph, *x)
    want = reference.run(graph, *xi)
    ex = execute.make_executor(graph)
    for got, w in zip(ex(*xi), want):
        np.testing.assert_array_equal(np.asarray(got, np.int64), w)
    if not fast:
        assert "int" in ex.paths.values()
    # Float model vs dequantized integer outputs.
    for f, w, o in zip(nnx.jit(lambda m, *a: m(*a))(model, *x), want, graph.outputs):
        deq = w / 2.0 ** graph.nodes[o].q
        assert np.max(np.abs(deq - np.asarray(f))) < 0.02 * max(1.0, np.abs(f).max())


def test_recorded_graph_is_the_model():
    """The recorded float graph reproduces the NNX model (same code path)."""
    rng = np.random.default_rng(1)
    model = AllOps(rngs=nnx.Rngs(1))
    x = _data(rng, 2)
    nodes, outs = convert.record(model, [a.shape[1:] for a in x])
    vals = convert.run_float(nodes, *x)
    for f, o in zip(nnx.jit(lambda m, *a: m(*a))(model, *x), outs):
        np.testing.assert_allclose(np.asarray(vals[o]), np.asarray(f), atol=1e-5)


def test_qat_fake_quant_straight_through():
    w = jnp.array([0.3, -0.7, 0.001])
    q = L.fake_quant(w)
    assert np.all(np.asarray(q) * 2.0**15 == np.round(np.asarray(q) * 2.0**15))
    np.testing.assert_allclose(np.asarray(jax.grad(lambda v: jnp.sum(L.fake_quant(v) * 3.0))(w)), 3.0)
    model = AllOps(qat=True, rngs=nnx.Rngs(2))
    x = _data(np.random.default_rng(2), 2)
    grads = nnx.jit(nnx.grad(lambda m: jnp.mean(m(*x)[0] ** 2)))(model)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
    assert np.abs(np.asarray(grads.c1.kernel[...])).sum() > 0
