"""Random integer graphs over every op, size and shift (shared by the nnint tests)."""
from __future__ import annotations

import numpy as np

from runtime.nnint.graph import Graph, Node, value_bounds, weight_l1

INT32_SAFE = 2**31 - 2**20


def _inp(shape, q, bound):
    return Node("input", (), q, {"shape": tuple(shape), "bound": int(bound)})


def conv_node(rng, src, c_in, q_in, x_bound, *, k, stride, groups, c_out, regime, same=False):
    """A conv whose weight magnitudes put its accumulator in the given exactness regime."""
    taps = k * k * (c_in // groups)
    xb = max(x_bound, 1)
    if regime == "f32":        # taps * wmax * xb < 2**24
        wmax = 2**24 // (taps * xb)
    elif regime == "f32split":  # taps * wmax * 255 < 2**24
        wmax = 2**24 // (taps * 255) - 1
    else:                       # sum|w| well above 2**24 / 255, accumulator still within int32
        wmax = int(0.9 * 2**31) // (taps * xb)
    wmax = max(1, min(wmax, 32767))
    w = rng.integers(-wmax, wmax + 1, (k, k, c_in // groups, c_out)).astype(np.int32)
    qw = int(rng.integers(0, 16))
    q = int(rng.integers(max(q_in + qw - 20, -4), q_in + qw + 1))
    b = rng.integers(-2**20, 2**20, c_out).astype(np.int64)
    pad = int(rng.integers(0, k))
    padding = ((pad // 2, pad - pad // 2), (k - 1 - pad // 2, pad // 2))
    if same:
        padding = ((k // 2, k // 2), (k // 2, k // 2))
    return Node("conv2d", (src,), q, {"stride": (stride, stride), "padding": padding,
                                      "groups": groups, "qw": qw}, {"w": w, "b": b})


def op_graph(rng, op: str, *, h=8, w=8, c=4, regime="f32split", act_bits=16) -> Graph:
    """input(s) -> op -> relu-free output, random quantizers and parameters."""
    lim = 2 ** (act_bits - 1) - 1
    qa, qb = (int(v) for v in rng.integers(4, 15, 2))
    ba = int(rng.integers(1, lim + 1))
    if op == "conv2d":  # the regimes need a known input range
        ba = int(rng.integers(2**14, lim + 1)) if regime == "f32split" else int(rng.integers(256, 8000))
    nodes = [_inp((h, w, c), qa, ba), _inp((h, w, c), qb, int(rng.integers(1, lim + 1)))]
    if op == "conv2d":
        k = int(rng.choice([1, 3, 5]))
        groups = int(rng.choice([1, 2, c]))
        stride = int(rng.choice([1, 2]))
        nodes.append(conv_node(rng, 0, c, qa, ba, k=k, stride=stride, groups=groups,
                               c_out=groups * int(rng.integers(1, 4)), regime=regime))
    elif op == "dense":
        nodes.append(Node("reshape", (0,), qa, {"shape": (h * w * c,)}))
        wmax = min(32767, max(1, (2**30) // (h * w * c * ba)))
        qw = int(rng.integers(0, 16))
        nodes.append(Node("dense", (2,), int(rng.integers(qa + qw - 20, qa + qw + 1)), {"qw": qw},
                          {"w": rng.integers(-wmax, wmax + 1, (h * w * c, 6)).astype(np.int32),
                           "b": rng.integers(-1000, 1000, 6).astype(np.int64)}))
    elif op in ("add", "mul"):
        q = int(rng.integers(min(qa, qb) - 3, max(qa, qb) + 1)) if op == "add" else \
            int(rng.integers(qa + qb - 20, qa + qb + 1))
        nodes.append(Node(op, (0, 1), q))
    elif op == "concat":
        nodes.append(Node("concat", (0, 1), min(qa, qb)))
    elif op == "leaky_relu":
        qs = int(rng.integers(8, 16))
        nodes.append(Node(op, (0,), qa, {"alpha": int(rng.integers(0, 2**qs)), "qa": qs}))
    elif op == "prelu":
        qs = int(rng.integers(8, 16))
        nodes.append(Node(op, (0,), qa, {"qa": qs},
                          {"alpha": rng.integers(-2**qs, 2**qs, c).astype(np.int32)}))
    elif op in ("relu",):
        nodes.append(Node(op, (0,), qa))
    elif op == "max_pool":
        nodes.append(Node(op, (0,), qa, {"k": int(rng.choice([2, 3]))}))
    elif op in ("pixel_unshuffle", "upsample"):
        nodes.append(Node(op, (0,), qa, {"r": 2}))
    elif op == "pixel_shuffle":
        nodes.append(Node(op, (0,), qa, {"r": 2}))
    elif op == "reshape":
        nodes.append(Node(op, (0,), qa, {"shape": (h * w // 2, 2 * c)}))
    elif op == "transpose":
        nodes.append(Node(op, (0,), qa, {"perm": (2, 0, 1)}))
    elif op == "slice":
        nodes.append(Node(op, (0,), qa, {"begin": (1, 0, 1), "end": (h - 1, w, c)}))
    else:
        raise ValueError(op)
    return Graph(tuple(nodes), (len(nodes) - 1,), act_bits)


def chain_graph(rng, *, h=12, w=12, c=8, depth=6, regime="f32split") -> Graph:
    """A small random network mixing convs (all kinds), activations and residual adds."""
    nodes = [_inp((h, w, c), int(rng.integers(8, 15)), 32767)]
    cur = 0
    for _ in range(depth):
        g = Graph(tuple(nodes), ())
        x_bound = value_bounds(g)[cur]
        q_in = nodes[cur].q
        kind = rng.integers(0, 4)
        groups = [1, 1, 2, c][kind]
        conv = conv_node(rng, cur, c, q_in, x_bound, k=3, stride=1, groups=groups, c_out=c,
                         regime=regime, same=True)
        nodes.append(conv)
        act = rng.integers(0, 3)
        if act == 0:
            nodes.append(Node("relu", (len(nodes) - 1,), conv.q))
        elif act == 1:
            nodes.append(Node("leaky_relu", (len(nodes) - 1,), conv.q, {"alpha": 3277, "qa": 15}))
        else:
            nodes.append(Node("prelu", (len(nodes) - 1,), conv.q, {"qa": 14},
                              {"alpha": rng.integers(0, 2**14, c).astype(np.int32)}))
        nodes.append(Node("add", (cur, len(nodes) - 1), min(q_in, conv.q)))
        cur = len(nodes) - 1
    nodes.append(Node("pixel_unshuffle", (cur,), nodes[cur].q, {"r": 2}))
    nodes.append(Node("pixel_shuffle", (len(nodes) - 1,), nodes[cur].q, {"r": 2}))
    return Graph(tuple(nodes), (len(nodes) - 1, cur))


def random_inputs(rng, graph: Graph, batch: int) -> list[np.ndarray]:
    out = []
    for i in graph.inputs:
        n = graph.nodes[i]
        b = n.attrs["bound"]
        x = rng.integers(-b, b + 1, (batch, *n.attrs["shape"]))
        # Extremes too: saturation and the split's hi/lo edges are where bugs hide.
        x.flat[:4] = [b, -b, 255, -256][: min(4, x.size)]
        out.append(x.astype(np.int32))
    return out
