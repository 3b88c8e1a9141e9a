"""Aligned CSR dense layers (paper 001 IV-C) and the MAC counter."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.nnint import sparse
from runtime.nnint.graph import Graph, Node
from tests.nnint_cases import chain_graph


@pytest.mark.parametrize("align", [8, 16])
@pytest.mark.parametrize("density", [0.0, 0.05, 0.3, 1.0])
def test_csr_product_equals_dense(align, density):
    rng = np.random.default_rng(int(density * 100) + align)
    cin, cout = 100, 24  # 100 is not a multiple of the alignment: last run is short
    w = rng.integers(-32768, 32768, (cin, cout)) * (rng.random((cin, cout)) < density)
    m = sparse.to_csr(w.astype(np.int32), align)
    x = rng.integers(-32768, 32768, (3, cin))
    np.testing.assert_array_equal(sparse.csr_matmul(x, m), x.astype(np.int64) @ w)
    # Runs start on aligned inputs and are whole blocks (except at the end of a column).
    assert np.all(m.run_start % align == 0)
    assert np.all((m.run_len % align == 0) | (m.run_start + m.run_len == cin))
    assert m.macs >= np.count_nonzero(w)
    if density == 0.0:
        assert m.macs == 0
    if density == 1.0:
        assert m.macs == cin * cout


def test_block_sparse_weights_cost_their_density():
    rng = np.random.default_rng(0)
    w = np.zeros((256, 16), np.int32)
    for j in range(16):  # two aligned 16-blocks per output: 1/8 density
        for b in rng.choice(16, 2, replace=False):
            w[b * 16:(b + 1) * 16, j] = rng.integers(1, 100, 16)
    m = sparse.to_csr(w, 16)
    assert m.macs == 2 * 16 * 16 and m.density == pytest.approx(1 / 8)


def test_mac_counter_counts_convs_and_dense():
    g = chain_graph(np.random.default_rng(1), h=12, w=12, c=8, depth=3)
    got = sparse.count_macs(g)
    assert got["dense"] == sum(12 * 12 * n.params["w"].size for n in g.nodes if n.op == "conv2d")
    # Another input size scales linearly.
    assert sparse.count_macs(g, {0: (24, 12)})["dense"] == 2 * got["dense"]
    w = np.zeros((64, 8), np.int32)
    w[:8, :] = 1
    dense_graph = Graph((Node("input", (), 10, {"shape": (64,), "bound": 100}),
                         Node("dense", (0,), 10, {"qw": 0}, {"w": w, "b": np.zeros(8, np.int64)})), (1,))
    c = sparse.count_macs(dense_graph, align=8)
    assert (c["dense"], c["sparse"]) == (64 * 8, 8 * 8)
