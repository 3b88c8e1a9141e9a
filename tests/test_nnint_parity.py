"""checkasm habit: the jitted integer runtime equals the numpy int64 reference bit for bit.

1 vs 2 CPU threads: tests/test_nnint_threads.py (separate processes).
"""
from __future__ import annotations

import jax
import numpy as np
import pytest

from runtime.nnint import execute, reference
from runtime.nnint.graph import Graph, validate
from tests.nnint_cases import chain_graph, op_graph, random_inputs

OPS = ["conv2d", "dense", "add", "mul", "concat", "relu", "leaky_relu", "prelu", "max_pool",
       "pixel_shuffle", "pixel_unshuffle", "upsample", "reshape", "transpose", "slice"]


def _check(graph: Graph, inputs, *, jit=True, paths=None, int_impl=None):
    want = reference.run(graph, *inputs)
    got = execute.make_executor(graph, jit=jit, paths=paths, int_impl=int_impl)(*inputs)
    for g, w in zip(got, want):
        assert np.asarray(g).dtype == np.int32
        np.testing.assert_array_equal(np.asarray(g, np.int64), w)
    return want


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("batch", [1, 4])
def test_each_op_matches_reference(op, batch):
    rng = np.random.default_rng(OPS.index(op) * 10 + batch)
    for trial in range(3):
        g = op_graph(rng, op, h=int(rng.choice([4, 6, 8])) * 2, w=int(rng.choice([4, 8])) * 2,
                     act_bits=int(rng.choice([16, 8])) if op != "conv2d" else 16)
        validate(g)
        _check(g, random_inputs(rng, g, batch), jit=trial != 1)


@pytest.mark.parametrize("regime", ["f32", "f32split", "int"])
def test_conv_paths_match_reference(regime):
    """Every path (strided, grouped, depthwise convs, all shifts) on each exactness regime."""
    rng = np.random.default_rng(["f32", "f32split", "int"].index(regime))
    seen = set()
    for trial in range(12):
        g = op_graph(rng, "conv2d", h=10, w=12, c=4, regime=regime)
        ex = execute.make_executor(g)
        seen |= set(ex.paths.values())
        _check(g, random_inputs(rng, g, 2))
        # The integer path is always allowed and must agree too, in both implementations.
        for impl in execute.INT_IMPLS:
            _check(g, random_inputs(rng, g, 1), paths={i: "int" for i in ex.paths}, int_impl=impl)
    assert regime in seen


def test_float_path_refuses_unprovable_layers():
    rng = np.random.default_rng(7)
    g = op_graph(rng, "conv2d", regime="int")
    (i, p), = execute.make_executor(g).paths.items()
    assert p == "int"
    with pytest.raises(ValueError, match="not provably exact"):
        execute.make_executor(g, paths={i: "f32"})


def test_f64_path_matches_reference():
    rng = np.random.default_rng(3)
    g = op_graph(rng, "conv2d", regime="int")
    with jax.enable_x64(True):
        ex = execute.make_executor(g)
        assert set(ex.paths.values()) == {"f64"}
        _check(g, random_inputs(rng, g, 2))


@pytest.mark.parametrize("regime", ["f32split", "int", "int-taps"])
@pytest.mark.parametrize("jit", [True, False])
def test_random_networks_match_reference(regime, jit):
    rng = np.random.default_rng(11 + jit)
    for _ in range(2):
        g = chain_graph(rng, regime=regime.removesuffix("-taps"))
        paths = {i: "int" for i in execute.plan(g)} if regime.startswith("int") else None
        impl = "taps" if regime.endswith("taps") else None
        for batch in (1, 4):
            _check(g, random_inputs(rng, g, batch), jit=jit, paths=paths, int_impl=impl)


def test_int_impl_default_and_unknown():
    assert execute.default_int_impl() == ("native" if jax.default_backend() == "cpu" else "taps")
    with pytest.raises(ValueError, match="int_impl"):
        execute.make_executor(chain_graph(np.random.default_rng(0)), int_impl="cuda")


def test_batch_items_are_independent():
    rng = np.random.default_rng(5)
    g = chain_graph(rng)
    xs = random_inputs(rng, g, 4)
    ex = execute.make_executor(g)
    full = np.asarray(ex(*xs)[0])
    one = np.asarray(ex(*[x[2:3] for x in xs])[0])
    np.testing.assert_array_equal(full[2:3], one)
