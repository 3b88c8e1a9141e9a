"""flax NNX model -> integer :class:`~runtime.nnint.graph.Graph` (paper 001 IV-B static quantization).

The model's ``forward(ops, *inputs)`` (jaxcodec.nn.layers) is run once with a recording
backend, which yields a float graph with the model's own weights. Sample inputs are run
through that float graph to find each tensor's max |value| (static calibration); each
layer gets the power-of-two quantizer that keeps the calibrated max inside int16.

Weight quantizers: the int16 rule (largest q with max|w| * 2**q <= 32767) is lowered, while
the weights keep at least ``min_weight_bits`` bits, to the largest q whose accumulator
bound admits the fastest provably exact path (execute.choose_path); float32 on split
8-bit activation halves is the common case. Every accumulator is kept within int32.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxcodec.errors import ModelError
from jaxcodec.nn import layers as L
from runtime.nnint import execute
from runtime.nnint.graph import INT32_MAX, PASS_THROUGH, Graph, Node, value_bounds, weight_l1


@dataclasses.dataclass
class FloatNode:
    op: str
    inputs: tuple[int, ...]
    attrs: dict[str, Any]
    params: dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Sym:
    """A symbolic tensor while recording: the index of the node that produces it."""

    idx: int


class Recorder:
    """Ops backend that records a float graph instead of computing."""

    def __init__(self):
        self.nodes: list[FloatNode] = []

    def _add(self, op, inputs, attrs=None, params=None) -> Sym:
        self.nodes.append(FloatNode(op, tuple(s.idx for s in inputs), attrs or {}, params or {}))
        return Sym(len(self.nodes) - 1)

    def input(self, shape) -> Sym:
        return self._add("input", (), {"shape": tuple(shape)})

    def conv(self, layer: L.Conv, x: Sym) -> Sym:
        return self._add("conv2d", (x,), {"stride": (layer.stride, layer.stride),
                                          "padding": tuple(tuple(p) for p in layer.padding),
                                          "groups": layer.groups},
                         {"w": np.asarray(layer.kernel[...], np.float64),
                          "b": np.asarray(layer.bias[...], np.float64)})

    def dense(self, layer: L.Dense, x: Sym) -> Sym:
        return self._add("dense", (x,), {}, {"w": np.asarray(layer.kernel[...], np.float64),
                                             "b": np.asarray(layer.bias[...], np.float64)})

    def prelu(self, layer: L.PReLU, x: Sym) -> Sym:
        return self._add("prelu", (x,), {}, {"alpha": np.asarray(layer.alpha[...], np.float64)})

    def add(self, a, b):
        return self._add("add", (a, b))

    def mul(self, a, b):
        return self._add("mul", (a, b))

    def concat(self, xs):
        return self._add("concat", tuple(xs))

    def relu(self, x):
        return self._add("relu", (x,))

    def leaky_relu(self, x, slope):
        return self._add("leaky_relu", (x,), {"slope": float(slope)})

    def max_pool(self, x, k):
        return self._add("max_pool", (x,), {"k": int(k)})

    def pixel_shuffle(self, x, r):
        return self._add("pixel_shuffle", (x,), {"r": int(r)})

    def pixel_unshuffle(self, x, r):
        return self._add("pixel_unshuffle", (x,), {"r": int(r)})

    def upsample(self, x, r):
        return self._add("upsample", (x,), {"r": int(r)})

    def reshape(self, x, shape):
        return self._add("reshape", (x,), {"shape": tuple(int(s) for s in shape)})

    def transpose(self, x, perm):
        return self._add("transpose", (x,), {"perm": tuple(int(p) for p in perm)})

    def slice(self, x, begin, end):
        return self._add("slice", (x,), {"begin": tuple(begin), "end": tuple(end)})


def record(model, input_shapes: Sequence[tuple[int, ...]]) -> tuple[list[FloatNode], tuple[int, ...]]:
    """Float graph of ``model.forward(ops, *inputs)``; shapes exclude the batch axis."""
    rec = Recorder()
    syms = [rec.input(s) for s in input_shapes]
    out = model.forward(rec, *syms)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return rec.nodes, tuple(o.idx for o in outs)


def run_float(nodes: list[FloatNode], *inputs) -> list[jax.Array]:
    """Every tensor of the float graph (float32 JAX), for calibration and float reference."""
    vals: list[jax.Array] = []
    feed = iter(inputs)
    ops = L.FLOAT_OPS
    for n in nodes:
        xs = [vals[j] for j in n.inputs]
        a, p = n.attrs, n.params
        if n.op == "input":
            y = jnp.asarray(next(feed), jnp.float32)
        elif n.op == "conv2d":
            y = jax.lax.conv_general_dilated(
                xs[0], jnp.asarray(p["w"], jnp.float32), a["stride"], a["padding"],
                dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=a["groups"],
                precision=jax.lax.Precision.HIGHEST) + jnp.asarray(p["b"], jnp.float32)
        elif n.op == "dense":
            y = xs[0] @ jnp.asarray(p["w"], jnp.float32) + jnp.asarray(p["b"], jnp.float32)
        elif n.op == "prelu":
            y = jnp.where(xs[0] >= 0, xs[0], xs[0] * jnp.asarray(p["alpha"], jnp.float32))
        elif n.op == "add":
            y = xs[0] + xs[1]
        elif n.op == "mul":
            y = xs[0] * xs[1]
        elif n.op == "concat":
            y = ops.concat(xs)
        elif n.op == "leaky_relu":
            y = ops.leaky_relu(xs[0], a["slope"])
        elif n.op in ("max_pool", "pixel_shuffle", "pixel_unshuffle", "upsample"):
            y = getattr(ops, n.op)(xs[0], a.get("k", a.get("r")))
        elif n.op == "reshape":
            y = ops.reshape(xs[0], a["shape"])
        elif n.op == "transpose":
            y = ops.transpose(xs[0], a["perm"])
        elif n.op == "slice":
            y = ops.slice(xs[0], a["begin"], a["end"])
        elif n.op == "relu":
            y = ops.relu(xs[0])
        else:
            raise ValueError(n.op)
        vals.append(y)
    return vals


def _q_for(max_abs: float, lim: int) -> int:
    """Largest q with max_abs * 2**q <= lim (paper 001 IV-B static quantizer)."""
    if max_abs <= 0:
        return 15
    return int(math.floor(math.log2(lim / max_abs)))


def _calibrate(nodes, samples: Sequence[Sequence[np.ndarray]]) -> list[float]:
    fn = jax.jit(lambda *xs: [jnp.max(jnp.abs(v)) for v in run_float(nodes, *xs)])
    maxes = np.zeros(len(nodes))
    for batch in samples:
        maxes = np.maximum(maxes, np.array([float(m) for m in fn(*batch)]))
    return list(maxes)


def quantize_graph(nodes: list[FloatNode], outputs: tuple[int, ...], maxes: Sequence[float],
                   input_bounds: Sequence[float], *, act_bits: int = 16, weight_bits: int = 16,
                   min_weight_bits: int = 10, fast: bool = True, headroom_bits: int = 1) -> Graph:
    """Float graph + calibrated maxima -> integer graph (shift rules of paper 001 IV-B).

    ``headroom_bits``: activation quantizers leave this many bits above the calibrated
    maximum, for content louder than the calibration set (saturation is the fallback).
    """
    lim = 2 ** (act_bits - 1) - 1
    wlim = 2 ** (weight_bits - 1) - 1
    out: list[Node] = []
    bounds = iter(input_bounds)
    for i, n in enumerate(nodes):
        qs = [out[j].q for j in n.inputs]
        q_cal = _q_for(maxes[i], lim) - headroom_bits
        if n.op == "input":
            b = float(next(bounds))
            q = _q_for(b, lim)
            out.append(Node("input", (), q, {"shape": n.attrs["shape"], "bound": int(math.floor(b * 2**q))}))
            continue
        if n.op in ("conv2d", "dense"):
            w, bias = n.params["w"], n.params["b"]
            q_in = qs[0]
            q_w16 = _q_for(float(np.abs(w).max()), wlim)
            x_bound = value_bounds(Graph(tuple(out), (), act_bits))[n.inputs[0]]
            l1_float = float(np.abs(w).reshape(-1, w.shape[-1]).sum(0).max())

            def make(qw):
                q = min(q_cal, q_in + qw)
                attrs = {**n.attrs, "qw": qw}
                return Node(n.op, n.inputs, q, attrs,
                            {"w": np.rint(w * 2.0**qw).astype(np.int32),
                             "b": np.rint(bias * 2.0**(q_in + qw)).astype(np.int64)})

            def ok_int32(node):
                s = q_in + node.attrs["qw"] - node.q
                acc = weight_l1(node) * x_bound + int(np.abs(node.params["b"]).max(initial=0))
                return acc + (1 << max(s - 1, 0)) <= INT32_MAX and np.abs(node.params["b"]).max(initial=0) <= INT32_MAX

            q_min = q_w16 - (weight_bits - min_weight_bits)
            best = None
            qw = q_w16
            while best is None or qw >= q_min:
                node = make(qw)
                if ok_int32(node):
                    path = execute.choose_path(weight_l1(node), x_bound, allow_f64=False)
                    rank = execute.PATHS.index(path)
                    if best is None or rank < best[0]:
                        # Recorded for inspection; execute re-derives it from the bounds.
                        node.attrs["path"] = path
                        best = (rank, node)
                    if not fast or rank == 0:
                        break
                qw -= 1
                if qw < q_w16 - 40:
                    raise ModelError(f"node {i} {n.op}: cannot keep the accumulator within int32 "
                                     f"(sum|w| = {l1_float:.3g})")
            out.append(best[1])
            continue
        a = dict(n.attrs)
        params = {}
        if n.op in PASS_THROUGH:
            q = qs[0]
            if n.op == "leaky_relu":
                slope = a.pop("slope")
                qa = _q_for(abs(slope), 32767) if slope else 15
                qa = min(qa, 15)
                a.update(alpha=int(round(slope * 2**qa)), qa=qa)
            elif n.op == "prelu":
                alpha = n.params["alpha"]
                qa = min(_q_for(float(np.abs(alpha).max()), 32767), 15)
                a["qa"] = qa
                params["alpha"] = np.rint(alpha * 2**qa).astype(np.int32)
        elif n.op == "add":
            q = min(q_cal, max(qs))
        elif n.op == "mul":
            q = min(q_cal, qs[0] + qs[1])
        elif n.op == "concat":
            q = min(qs)
        else:
            raise ValueError(n.op)
        out.append(Node(n.op, n.inputs, q, a, params))
    return Graph(tuple(out), tuple(outputs), act_bits)


def convert(model, samples: Sequence[Sequence[np.ndarray]], input_bounds: Sequence[float], *,
            act_bits: int = 16, weight_bits: int = 16, min_weight_bits: int = 10,
            fast: bool = True, headroom_bits: int = 1) -> Graph:
    """Convert ``model`` (with ``forward(ops, *inputs)``) to an integer graph.

    Args:
      samples: calibration batches, each a tuple of float NHWC inputs.
      input_bounds: max |real value| of each input (inputs are clipped to it at run time).
      act_bits: 16 (SADL int16) or 8.
      min_weight_bits: the weights keep at least this many bits when the quantizer is
        lowered to reach a faster exact path; ``fast=False`` keeps the int16 rule.
    """
    shapes = [tuple(np.shape(x)[1:]) for x in samples[0]]
    nodes, outputs = record(model, shapes)
    maxes = _calibrate(nodes, samples)
    return quantize_graph(nodes, outputs, maxes, input_bounds, act_bits=act_bits,
                          weight_bits=weight_bits, min_weight_bits=min_weight_bits, fast=fast,
                          headroom_bits=headroom_bits)


def quantize_inputs(graph: Graph, *xs) -> tuple[np.ndarray, ...]:
    from runtime.nnint.graph import quantize_input
    return tuple(quantize_input(x, graph.nodes[i]) for x, i in zip(xs, graph.inputs))
