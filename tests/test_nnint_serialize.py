"""Integer model file: round trip, and every kind of bad file is a ModelError."""
from __future__ import annotations

import dataclasses
import hashlib
import struct
import subprocess
import sys

import numpy as np
import pytest

from jaxcodec.errors import ModelError
from runtime.nnint import reference, serialize
from runtime.nnint.graph import Graph
from tests.nnint_cases import chain_graph, op_graph, random_inputs


def _graphs():
    rng = np.random.default_rng(0)
    yield chain_graph(rng)
    for op in ("dense", "leaky_relu", "prelu", "slice", "transpose", "concat", "mul"):
        yield op_graph(rng, op)


def test_round_trip_is_identical(tmp_path):
    rng = np.random.default_rng(1)
    for k, g in enumerate(_graphs()):
        path = tmp_path / f"m{k}.jxnn"
        serialize.save(g, path)
        g2 = serialize.load(path)
        assert g2.outputs == g.outputs and g2.act_bits == g.act_bits
        for a, b in zip(g.nodes, g2.nodes):
            assert (a.op, a.inputs, a.q, dict(a.attrs)) == (b.op, b.inputs, b.q, dict(b.attrs))
            for name in a.params:
                np.testing.assert_array_equal(a.params[name], b.params[name])
        xs = random_inputs(rng, g, 2)
        for o1, o2 in zip(reference.run(g, *xs), reference.run(g2, *xs)):
            np.testing.assert_array_equal(o1, o2)


def test_weights_are_stored_as_int16():
    g = chain_graph(np.random.default_rng(2), regime="f32")
    size = len(serialize.to_bytes(g))
    n_w = sum(n.params["w"].size for n in g.nodes if "w" in n.params)
    assert size < 2 * n_w + 8 * sum(n.params["b"].size for n in g.nodes if "b" in n.params) + 8192


def _rehash(body: bytes) -> bytes:
    return body + hashlib.sha256(body).digest()


def test_bad_files_are_rejected(tmp_path):
    g = chain_graph(np.random.default_rng(3))
    data = serialize.to_bytes(g)
    with pytest.raises(ModelError, match="checksum"):
        serialize.from_bytes(data[:-40] + bytes(8) + data[-32:])
    with pytest.raises(ModelError, match="checksum"):
        serialize.from_bytes(data[:-1])
    bad_version = data[:8] + struct.pack("<I", 99) + data[12:-32]
    with pytest.raises(ModelError, match="version 99"):
        serialize.from_bytes(_rehash(bad_version))
    with pytest.raises(ModelError, match="magic"):
        serialize.from_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(ModelError, match="not found"):
        serialize.load(tmp_path / "missing.jxnn")
    # A weight whose shape does not fit the graph (valid checksum: the writer was wrong).
    nodes = list(g.nodes)
    conv = nodes[1]
    nodes[1] = dataclasses.replace(conv, params={**conv.params, "w": conv.params["w"][:, :, :3]})
    with pytest.raises(ModelError, match="does not fit"):
        serialize.to_bytes(Graph(tuple(nodes), g.outputs))
    # Forge such a file by hand: patch the JSON header's shape, re-hash.
    hlen = struct.unpack_from("<I", data, 12)[0]
    header = data[16:16 + hlen].decode()
    shape = list(conv.params["w"].shape)
    forged = header.replace(f'"w": ["int16", {shape}'.replace("'", ""),
                            f'"w": ["int16", {[shape[0], shape[1], shape[2] * shape[3], 1]}', 1)
    assert forged != header
    body = data[:12] + struct.pack("<I", len(forged)) + forged.encode() + data[16 + hlen:-32]
    with pytest.raises(ModelError, match="node 1"):
        serialize.from_bytes(_rehash(body))


def test_loads_without_flax_or_jax(tmp_path):
    g = chain_graph(np.random.default_rng(4))
    path = tmp_path / "m.jxnn"
    serialize.save(g, path)
    code = (f"import sys; from runtime.nnint import serialize, reference; "
            f"g = serialize.load({str(path)!r}); "
            f"assert 'flax' not in sys.modules and 'jax' not in sys.modules, "
            f"[m for m in sys.modules if m.startswith(('jax', 'flax'))]")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_integer_planes_match_float_normalisation():
    from runtime.nnint import planes
    from runtime.nnint.graph import Node, quantize_input
    rng = np.random.default_rng(5)
    for bd in (8, 10):
        samples = rng.integers(0, 2**bd, (1, 8, 8, 1))
        for q in (14, 12 - (bd == 10) * 2, 9):
            node = Node("input", (), q, {"shape": (8, 8, 1), "bound": 2**q})
            np.testing.assert_array_equal(planes.to_input(samples, bd, node),
                                          quantize_input(samples / 2.0**bd, node))
            np.testing.assert_array_equal(planes.to_samples(planes.to_input(samples, bd, node), q, bd)
                                          if q >= bd else samples, samples)
    out = np.array([-5, 0, 2**14 - 1, 2**14, 2**14 + 64, 3 * 2**12])
    np.testing.assert_array_equal(planes.to_samples(out, 14, 8), [0, 0, 255, 255, 255, 192])
