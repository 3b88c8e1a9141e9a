"""Integer graph IR for SADL-style inference (paper 001 section IV-B).

A :class:`Graph` is a topologically ordered tuple of :class:`Node`; node ``i`` produces
tensor ``i``. Tensors are NHWC (or NC for dense) integers; a tensor with quantizer ``q``
stands for the real value ``x / 2**q``. Every op saturates its output to the graph's
activation range (int16 by default, int8 optional) and shifts with rounding
(``(acc + 2**(s-1)) >> s``, arithmetic). Accumulators are exact; conversion guarantees
they stay within int32 (:func:`accumulator_bounds`).

Op semantics (``C`` = saturation, ``A(x, qx, q)`` = align x from quantizer qx to q:
``x << (q-qx)`` if q >= qx else rounding ``x >> (qx-q)``):

=================  ===========================================================
input              x (the caller quantizes with :func:`quantize_input`)
conv2d / dense     C((sum w*x + b) >> (qx + qw - q)); b stored at qx + qw (BiasAdd rule)
add                C(A(a, qa, q) + A(b, qb, q))             (Add rule: align shifts)
mul                C((a*b) >> (qa + qb - q))                 (Mul rule: sum of quantizers)
concat             concat(A(x_i, q_i, q)) with q = min q_i   (Concat rule)
relu               max(x, 0)                                  (one input: keeps its q)
leaky_relu         x if x >= 0 else (x*alpha) >> qa           (slope quantizer qa maximal)
prelu              as leaky_relu with one alpha per channel
max_pool           max over k x k windows, stride k
pixel_shuffle      depth to space by r;  pixel_unshuffle: space to depth
upsample           nearest neighbour by r
reshape/transpose/slice   over the non-batch axes
=================  ===========================================================
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from jaxcodec.errors import ModelError

OPS = (
    "input", "conv2d", "dense", "add", "mul", "concat", "relu", "leaky_relu", "prelu",
    "max_pool", "pixel_shuffle", "pixel_unshuffle", "upsample", "reshape", "transpose", "slice",
)
# Ops whose output quantizer is the quantizer of their (single) input.
PASS_THROUGH = ("relu", "leaky_relu", "prelu", "max_pool", "pixel_shuffle", "pixel_unshuffle",
                "upsample", "reshape", "transpose", "slice")

INT32_MAX = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class Node:
    """One operation. ``attrs`` holds static ints/tuples, ``params`` integer arrays."""

    op: str
    inputs: tuple[int, ...]
    q: int
    attrs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    params: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    outputs: tuple[int, ...]
    act_bits: int = 16

    @property
    def inputs(self) -> tuple[int, ...]:
        return tuple(i for i, n in enumerate(self.nodes) if n.op == "input")

    @property
    def act_max(self) -> int:
        return 2 ** (self.act_bits - 1) - 1

    @property
    def act_min(self) -> int:
        return -(2 ** (self.act_bits - 1))


def quantize_input(x: np.ndarray, node: Node, act_bits: int = 16) -> np.ndarray:
    """Real-valued input -> integer tensor at the input node's quantizer, clipped to its bound."""
    bound = int(node.attrs["bound"])
    # Half-up rounding, as the integer shift in runtime.nnint.planes.to_input.
    xi = np.floor(np.asarray(x, np.float64) * 2.0 ** node.q + 0.5)
    return np.clip(xi, -bound, bound).astype(np.int32)


def dequantize(x, q: int) -> np.ndarray:
    return np.asarray(x, np.float64) / 2.0 ** q


def conv_out_hw(h: int, w: int, node: Node) -> tuple[int, int]:
    kh, kw = node.params["w"].shape[:2]
    sh, sw = node.attrs["stride"]
    (pt, pb), (pl, pr) = node.attrs["padding"]
    return (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1


def infer_shapes(graph: Graph, input_shapes: Mapping[int, tuple[int, ...]] | None = None
                 ) -> list[tuple[int, ...]]:
    """Per-tensor shapes excluding batch; raises ModelError on any inconsistency.

    Input shapes default to the node's ``shape`` attr (spatial dims may be given instead).
    """
    shapes: list[tuple[int, ...]] = []
    for i, n in enumerate(graph.nodes):
        if n.op not in OPS:
            raise ModelError(f"node {i}: unknown op {n.op!r}")
        if any(j >= i or j < 0 for j in n.inputs):
            raise ModelError(f"node {i} ({n.op}): inputs {n.inputs} are not earlier nodes")
        ins = [shapes[j] for j in n.inputs]
        a = n.attrs
        if n.op == "input":
            s = tuple((input_shapes or {}).get(i, a["shape"]))
        elif n.op == "conv2d":
            (h, w, c), = ins
            kh, kw, cig, co = n.params["w"].shape
            g = a["groups"]
            if c % g or cig * g != c or co % g:
                raise ModelError(f"node {i} conv2d: weight shape {n.params['w'].shape} does not fit "
                                 f"{c} input channels in {g} groups")
            if n.params["b"].shape != (co,):
                raise ModelError(f"node {i} conv2d: bias shape {n.params['b'].shape} != ({co},)")
            s = (*conv_out_hw(h, w, n), co)
        elif n.op == "dense":
            (c,), = [x[-1:] for x in ins]
            ci, co = n.params["w"].shape
            if ci != c or n.params["b"].shape != (co,):
                raise ModelError(f"node {i} dense: weight {n.params['w'].shape} / bias "
                                 f"{n.params['b'].shape} do not fit input {ins[0]}")
            s = ins[0][:-1] + (co,)
        elif n.op in ("add", "mul"):
            if ins[0] != ins[1]:
                raise ModelError(f"node {i} {n.op}: shapes {ins[0]} and {ins[1]} differ")
            s = ins[0]
        elif n.op == "concat":
            if len({x[:-1] for x in ins}) != 1:
                raise ModelError(f"node {i} concat: spatial shapes differ {ins}")
            s = ins[0][:-1] + (sum(x[-1] for x in ins),)
        elif n.op == "prelu":
            if n.params["alpha"].shape != (ins[0][-1],):
                raise ModelError(f"node {i} prelu: alpha shape {n.params['alpha'].shape}")
            s = ins[0]
        elif n.op in ("relu", "leaky_relu"):
            s = ins[0]
        elif n.op == "max_pool":
            h, w, c = ins[0]
            k = a["k"]
            s = (h // k, w // k, c)
        elif n.op == "pixel_shuffle":
            h, w, c = ins[0]
            r = a["r"]
            if c % (r * r):
                raise ModelError(f"node {i} pixel_shuffle: {c} channels not divisible by {r * r}")
            s = (h * r, w * r, c // (r * r))
        elif n.op == "pixel_unshuffle":
            h, w, c = ins[0]
            r = a["r"]
            if h % r or w % r:
                raise ModelError(f"node {i} pixel_unshuffle: {h}x{w} not divisible by {r}")
            s = (h // r, w // r, c * r * r)
        elif n.op == "upsample":
            h, w, c = ins[0]
            s = (h * a["r"], w * a["r"], c)
        elif n.op == "reshape":
            s = tuple(a["shape"])
            if int(np.prod(s)) != int(np.prod(ins[0])):
                raise ModelError(f"node {i} reshape: {ins[0]} -> {s} changes the size")
        elif n.op == "transpose":
            s = tuple(ins[0][p] for p in a["perm"])
        elif n.op == "slice":
            s = tuple(len(range(*slice(b, e).indices(d)))
                      for b, e, d in zip(a["begin"], a["end"], ins[0]))
        shapes.append(tuple(int(v) for v in s))
    for o in graph.outputs:
        if not 0 <= o < len(graph.nodes):
            raise ModelError(f"output {o} is not a node")
    return shapes


def weight_l1(node: Node) -> int:
    """max over output channels of sum |w| (the accumulator gain per unit of input)."""
    w = np.abs(node.params["w"].astype(np.int64))
    return int(w.reshape(-1, w.shape[-1]).sum(0).max()) if w.size else 0


def value_bounds(graph: Graph) -> list[int]:
    """Provable max |value| of every tensor, from input bounds, weights and saturation.

    Holds for every input the runtime accepts (inputs are clipped to their ``bound``).
    """
    amax = graph.act_max + 1  # |act_min|
    bounds: list[int] = []
    for n in graph.nodes:
        ib = [bounds[j] for j in n.inputs]
        qs = [graph.nodes[j].q for j in n.inputs]
        if n.op == "input":
            b = int(n.attrs["bound"])
        elif n.op in ("conv2d", "dense"):
            s = qs[0] + n.attrs["qw"] - n.q
            acc = weight_l1(n) * ib[0] + int(np.abs(n.params["b"].astype(np.int64)).max(initial=0))
            b = min(amax, (acc >> s) + 1)
        elif n.op in ("add", "concat"):
            al = [(x << (n.q - qi)) if n.q >= qi else (x >> (qi - n.q)) + 1 for x, qi in zip(ib, qs)]
            b = min(amax, sum(al) if n.op == "add" else max(al))
        elif n.op == "mul":
            b = min(amax, ((ib[0] * ib[1]) >> (qs[0] + qs[1] - n.q)) + 1)
        else:
            b = ib[0]
        bounds.append(int(b))
    return bounds


def accumulator_bounds(graph: Graph) -> dict[int, int]:
    """For conv2d/dense nodes: bound of |sum w*x| (before bias), the quantity that decides
    which float path is exact."""
    vb = value_bounds(graph)
    return {i: weight_l1(n) * vb[n.inputs[0]] for i, n in enumerate(graph.nodes)
            if n.op in ("conv2d", "dense")}


def validate(graph: Graph) -> list[tuple[int, ...]]:
    """Shapes plus the int32 guarantee; raises ModelError."""
    shapes = infer_shapes(graph)
    vb = value_bounds(graph)
    for i, n in enumerate(graph.nodes):
        if n.op in ("conv2d", "dense"):
            s = graph.nodes[n.inputs[0]].q + n.attrs["qw"] - n.q
            if s < 0:
                raise ModelError(f"node {i} {n.op}: negative shift {s}")
            acc = weight_l1(n) * vb[n.inputs[0]] + int(np.abs(n.params["b"].astype(np.int64)).max(initial=0))
            if acc + (1 << max(s - 1, 0)) > INT32_MAX:
                raise ModelError(f"node {i} {n.op}: accumulator bound {acc} exceeds int32")
        if n.op == "mul" and graph.nodes[n.inputs[0]].q + graph.nodes[n.inputs[1]].q < n.q:
            raise ModelError(f"node {i} mul: negative shift")
    return shapes
