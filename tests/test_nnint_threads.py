"""1 vs 2 CPU threads: the integer runtime and the NN loop filter give the same bytes.

Each side runs in a fresh process that restricts its CPU affinity to one or two cores
*before* jax is imported: XLA sizes its CPU thread pools from the affinity mask when the
client starts. (XLA_FLAGS=--xla_cpu_multi_thread_eigen=false is not enough: with jaxlib
0.10.2 two threads still shared the work of one conv, per /proc/self/task CPU times.) The
children print a digest per case; the test compares them, and the graph cases also against
the numpy int64 reference computed here. Run as a script, this file is that child.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name: the conv path it exercises -> (graph, weight regime, force the int path, jax_enable_x64).
# A chain's saturated activations never need more than f32split, so f64 gets one wide conv.
GRAPH_CASES = {"f32": ("chain", "f32", False, False), "f32split": ("chain", "f32split", False, False),
               "int": ("chain", "int", True, False), "f64": ("conv", "int", False, True)}
NNLF_SHAPE = (64, 96)  # luma; big enough that XLA splits the convs over two threads

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux CPU affinity and at least two usable cores")


def _digest(arrays) -> str:
    import numpy as np
    return hashlib.sha256(b"".join(np.asarray(a, np.int64).tobytes() for a in arrays)).hexdigest()


def _graph_case(name: str):
    """(graph, batch-4 inputs, forced paths or None, x64) of one case, the same in every process."""
    import numpy as np

    from tests.nnint_cases import chain_graph, op_graph, random_inputs

    kind, regime, force_int, x64 = GRAPH_CASES[name]
    rng = np.random.default_rng(list(GRAPH_CASES).index(name) + 100)
    if kind == "chain":
        g = chain_graph(rng, h=48, w=40, c=16, depth=4, regime=regime)
    else:
        g = op_graph(rng, "conv2d", h=48, w=40, c=16, regime=regime)
    xs = random_inputs(rng, g, 4)
    if force_int:
        from runtime.nnint import execute
        return g, xs, {i: "int" for i in execute.plan(g)}, x64
    return g, xs, None, x64


def _nnlf_inputs():
    import numpy as np

    from runtime import nnlf

    rng = np.random.default_rng(9)
    h, w = NNLF_SHAPE
    shapes = ((h, w), (h // 2, w // 2), (h // 2, w // 2))
    planes = lambda: tuple(rng.integers(0, 256, s).astype(np.int32) for s in shapes)  # noqa: E731
    return nnlf.FilterInputs(planes(), planes(), rng.integers(0, 3, (h, w)).astype(np.int32),
                             rng.integers(22, 38, (h, w)).astype(np.int32),
                             rng.integers(0, 3, (h, w)).astype(np.int32))


def _child_runtime() -> dict[str, str]:
    """Every graph case jitted and not, batch 1 and 4; the shipped NNLF model as the codec runs
    it (jitted; unjitted it takes 3 s here, and test_nnlf holds the two equal)."""
    import jax

    from runtime import nnlf
    from runtime.nnint import execute

    digests = {}
    for name in GRAPH_CASES:
        g, xs, paths, x64 = _graph_case(name)
        with jax.enable_x64(x64):
            for jit in (True, False):
                ex = execute.make_executor(g, paths=paths, jit=jit)
                for batch in (1, 4):
                    digests[f"{name}/jit={jit}/batch={batch}"] = _digest(ex(*[x[:batch] for x in xs]))
    digests["nnlf"] = _digest(nnlf.filter_planes(nnlf.load_model(), _nnlf_inputs(), bit_depth=8))
    digests["nnlf_ensemble"] = _digest(nnlf.filter_planes(nnlf.load_model(), _nnlf_inputs(), bit_depth=8,
                                                          sizes=(8, 2)))
    return digests


def _child_decode(stream: str) -> dict[str, str]:
    from runtime.decoder import decode

    with open(stream, "rb") as f:
        dec = decode(f.read())
    return {"decoded": _digest([dec.y, dec.u, dec.v])}


def _run_child(cpus, *args) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, os.path.abspath(__file__), ",".join(map(str, cpus)), *args],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"child on CPUs {cpus} failed:\n{r.stderr[-3000:]}"
    out = json.loads(r.stdout.strip().splitlines()[-1])
    # The restriction must have taken effect, or the comparison proves nothing.
    assert out["affinity"] == len(cpus), out
    return out


def _one_and_two(*args) -> tuple[dict, dict]:
    cpus = sorted(os.sched_getaffinity(0))[:2]
    return _run_child(cpus[:1], *args), _run_child(cpus, *args)


def test_integer_runtime_and_nnlf_one_vs_two_threads():
    """Graph cases on every conv path (jit / no jit, batch 1 / 4), equal to the numpy reference,
    and the shipped NNLF model: identical bytes on one and two threads."""
    import jax

    from runtime.nnint import execute, reference

    one, two = _one_and_two("runtime")
    assert one["digests"] == two["digests"], (one, two)
    for name in GRAPH_CASES:
        g, xs, paths, x64 = _graph_case(name)
        with jax.enable_x64(x64):
            assert name in set((paths or execute.plan(g)).values())  # each case names its path
            for batch in (1, 4):
                want = _digest(reference.run(g, *[x[:batch] for x in xs]))
                for jit in (True, False):
                    assert one["digests"][f"{name}/jit={jit}/batch={batch}"] == want, (name, jit, batch)


@pytest.mark.slow
def test_nnlf_decode_one_vs_two_threads(tmp_path):
    """A stream with the shipped NN loop filter on in every picture decodes to the encoder's
    reconstruction on one and two threads (about a minute: encoder and decoder compile)."""
    from codec_clips import generated_clip
    from jaxcodec.config import load_coding_config
    from runtime import bitstream as bs
    from runtime.encoder import encode

    cfg = load_coding_config("ai", qp=32, ctu_size=32).replace(nnlf=True)
    data, recon = encode(generated_clip(n=1, height=16, width=32), cfg, nnlf_force=True)
    assert all(fh.tool_flags & bs.TOOL_NNLF for fh, _ in bs.parse_stream(data)[1])
    stream = tmp_path / "nnlf.jxc"
    stream.write_bytes(data)
    one, two = _one_and_two("decode", str(stream))
    want = _digest([recon.y, recon.u, recon.v])
    assert one["digests"]["decoded"] == two["digests"]["decoded"] == want


def _child_main(argv: list[str]) -> None:
    # Before jax (and numpy's BLAS) start their thread pools, which read the mask once.
    os.sched_setaffinity(0, {int(c) for c in argv[0].split(",")})
    sys.path.insert(0, ROOT)
    digests = _child_runtime() if argv[1] == "runtime" else _child_decode(argv[2])
    print(json.dumps({"affinity": len(os.sched_getaffinity(0)), "digests": digests}))


if __name__ == "__main__":
    _child_main(sys.argv[1:])
