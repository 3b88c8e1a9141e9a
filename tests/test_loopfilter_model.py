"""NN loop filter models (paper 001 III-A): shapes, identity start, integer conversion,
QAT option, orbax checkpoint round trip."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxcodec.nn import loopfilter as lf
from jaxcodec.nn.layers import fake_quant
from runtime.nnint import convert, execute, reference

SMALL = lf.LoopFilterConfig(width=16, features=4, blocks=2)


def _luma_inputs(rng, n=1, h=32, w=32):
    rec = rng.random((n, h, w, 1)).astype(np.float32)
    pred = np.clip(rec + rng.normal(0, 0.05, rec.shape), 0, 1).astype(np.float32)
    bs = (rng.integers(0, 3, rec.shape) / 2).astype(np.float32)
    return rec, pred, bs, np.full(rec.shape, 32 / 63, np.float32), np.full(rec.shape, 0.5, np.float32)


def _chroma_inputs(rng, n=1, h=32, w=32):
    rec = rng.random((n, h // 2, w // 2, 2)).astype(np.float32)
    pred = np.clip(rec + rng.normal(0, 0.05, rec.shape), 0, 1).astype(np.float32)
    one = rec[..., :1]
    return rec, pred, (rng.integers(0, 3, one.shape) / 2).astype(np.float32), \
        np.full(one.shape, 0.5, np.float32), rng.random((n, h, w, 1)).astype(np.float32)


def _perturb(model, seed):
    """Trained-looking weights: the reconstruction layer is zero at init (identity filter)."""
    k = model.trunk.up.kernel
    k[...] = jax.random.normal(jax.random.key(seed), k.shape) * 0.02


def test_default_size_and_identity_start():
    rng = np.random.default_rng(0)
    luma = lf.LumaFilter(rngs=nnx.Rngs(0))
    chroma = lf.ChromaFilter(rngs=nnx.Rngs(0))
    # Default: CPU-sized (paper scale is ~673 kMAC/pixel, 1.55M parameters).
    assert 30e3 < lf.macs_per_pixel(luma) < 60e3 and lf.param_count(luma) < 250_000
    assert lf.macs_per_pixel(chroma) < 30e3 and lf.param_count(chroma) < 250_000
    fwd = nnx.jit(lambda m, *a: m(*a))
    luma, chroma = lf.LumaFilter(SMALL, rngs=nnx.Rngs(0)), lf.ChromaFilter(SMALL, rngs=nnx.Rngs(0))
    x = _luma_inputs(rng, 1, 24, 40)
    np.testing.assert_array_equal(np.asarray(fwd(luma, *x)), x[0])
    c = _chroma_inputs(rng, 1, 24, 40)
    np.testing.assert_array_equal(np.asarray(fwd(chroma, *c)), c[0])


@pytest.mark.parametrize("kind,act_bits", [("luma", 16), ("chroma", 16), ("luma", 12)])
def test_model_converts_to_exact_integer_graph(kind, act_bits):
    rng = np.random.default_rng(1)
    make, data = {"luma": (lf.LumaFilter, _luma_inputs), "chroma": (lf.ChromaFilter, _chroma_inputs)}[kind]
    model = make(SMALL, rngs=nnx.Rngs(1))
    _perturb(model, 1)
    graph = convert.convert(model, [data(rng, 2) for _ in range(2)], [lf.INPUT_BOUND] * 5,
                            act_bits=act_bits, min_weight_bits=10 if act_bits == 16 else 4)
    ex = execute.make_executor(graph)
    # No slow integer conv needed; with 12-bit activations every conv is one float32 conv.
    assert set(ex.paths.values()) <= ({"f32", "f32split"} if act_bits == 16 else {"f32"})
    x = data(rng, 1)
    xi = convert.quantize_inputs(graph, *x)
    want = reference.run(graph, *xi)[0]
    np.testing.assert_array_equal(np.asarray(ex(*xi)[0], np.int64), want)
    out = want / 2.0 ** graph.nodes[graph.outputs[0]].q
    f = np.asarray(nnx.jit(lambda m, *a: m(*a))(model, *x))
    assert np.sqrt(np.mean((out - f) ** 2)) < 2e-3  # well below one 8-bit step (3.9e-3)


def test_qat_bits_put_weights_on_the_grid():
    cfg = lf.LoopFilterConfig(width=8, features=2, blocks=1, qat=True, qat_bits=(8, 12))
    model = lf.LumaFilter(cfg, rngs=nnx.Rngs(3))
    conv = model.trunk.blocks[0].conv1
    assert conv.qat_bits == (8, 12)
    w = np.asarray(conv.kernel[...])
    wq = np.asarray(jax.jit(lambda v: fake_quant(v, 8))(jnp.asarray(w)))
    q = np.floor(np.log2(127 / np.abs(w).max()))
    np.testing.assert_array_equal(wq * 2**q, np.round(w * 2**q))


def test_training_step_and_orbax_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    cfg = lf.LoopFilterConfig(width=8, features=2, blocks=1)
    model = lf.LumaFilter(cfg, rngs=nnx.Rngs(2))
    x = tuple(jnp.asarray(a) for a in _luma_inputs(rng, 2, 16, 16))
    target = jnp.clip(x[0] + 0.02, 0, 1)
    tx = optax.adam(1e-3)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    opt_state = tx.init(params)
    step = lf.make_train_step(tx, graphdef)
    losses = []
    for _ in range(5):
        params, opt_state, loss = step(params, rest, opt_state, x, target)
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    model = nnx.merge(graphdef, params, rest)
    lf.save_checkpoint(tmp_path / "ckpt", model)
    restored = lf.restore_checkpoint(tmp_path / "ckpt", lf.LumaFilter(cfg, rngs=nnx.Rngs(9)))
    fwd = jax.jit(lambda p, *a: nnx.merge(graphdef, p, rest)(*a))
    np.testing.assert_array_equal(np.asarray(fwd(nnx.split(restored, nnx.Param, ...)[1], *x)),
                                  np.asarray(fwd(params, *x)))


def test_relative_loss_weighs_each_patch_by_its_unfiltered_error():
    """``relative``: mean over patches of MSE(filtered) / MSE(unfiltered); a patch with 10x the
    codec error counts as much as the others, where the batch MSE lets it dominate."""
    rng = np.random.default_rng(4)
    model = lf.LumaFilter(lf.LoopFilterConfig(width=8, features=2, blocks=1), rngs=nnx.Rngs(4))
    x = tuple(jnp.asarray(a) for a in _luma_inputs(rng, 3, 16, 16))
    err = jnp.asarray(rng.normal(0, 1, x[0].shape), jnp.float32) * jnp.asarray([0.01, 0.01, 0.1])[:, None, None, None]
    target = x[0] + err
    out = np.asarray(model(*x), np.float64)
    t, rec = np.asarray(target, np.float64), np.asarray(x[0], np.float64)
    mse = ((out - t) ** 2).reshape(3, -1).mean(1)
    base = ((rec - t) ** 2).reshape(3, -1).mean(1)
    np.testing.assert_allclose(float(lf.loss_fn(model, x, target, "relative")),
                               np.mean(mse / (base + lf.RELATIVE_EPS)), rtol=1e-5)
    np.testing.assert_allclose(float(lf.loss_fn(model, x, target)), mse.mean(), rtol=1e-5)
    with pytest.raises(ValueError, match="unknown loss"):
        lf.make_train_step(optax.adam(1e-3), nnx.split(model, nnx.Param, ...)[0], "l3")
