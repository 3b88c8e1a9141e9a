"""Plain numpy int64 reference of every integer op (the checkasm "C" version).

Written for obviousness, not speed: convolution is an explicit sum over kernel taps.
:mod:`runtime.nnint.execute` must match it bit for bit.
"""
from __future__ import annotations

import numpy as np

from runtime.nnint.graph import Graph, Node


def rshift_round(x: np.ndarray, s: int) -> np.ndarray:
    """Arithmetic right shift with rounding: (x + 2**(s-1)) >> s; s == 0 is the identity."""
    x = np.asarray(x, np.int64)
    return (x + (1 << (s - 1))) >> s if s > 0 else x


def align(x: np.ndarray, qx: int, q: int) -> np.ndarray:
    x = np.asarray(x, np.int64)
    return x << (q - qx) if q >= qx else rshift_round(x, qx - q)


def conv2d(x: np.ndarray, w: np.ndarray, stride, padding, groups: int) -> np.ndarray:
    """Exact int64 NHWC convolution, weights HWIO with I = C_in / groups."""
    x = np.asarray(x, np.int64)
    w = np.asarray(w, np.int64)
    (pt, pb), (pl, pr) = padding
    x = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    n, h, wd, c = x.shape
    kh, kw, cig, co = w.shape
    sh, sw = stride
    oh, ow = (h - kh) // sh + 1, (wd - kw) // sw + 1
    cog = co // groups
    out = np.zeros((n, oh, ow, co), np.int64)
    for g in range(groups):
        xg = x[..., g * cig:(g + 1) * cig]
        wg = w[..., g * cog:(g + 1) * cog]
        for i in range(kh):
            for j in range(kw):
                patch = xg[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :]
                out[..., g * cog:(g + 1) * cog] += patch @ wg[i, j]
    return out


def pixel_shuffle(x: np.ndarray, r: int) -> np.ndarray:
    n, h, w, c = x.shape
    x = x.reshape(n, h, w, r, r, c // (r * r))
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(n, h * r, w * r, c // (r * r))


def pixel_unshuffle(x: np.ndarray, r: int) -> np.ndarray:
    n, h, w, c = x.shape
    x = x.reshape(n, h // r, r, w // r, r, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(n, h // r, w // r, r * r * c)


def run_node(graph: Graph, node: Node, xs: list[np.ndarray]) -> np.ndarray:
    lo, hi = graph.act_min, graph.act_max
    qs = [graph.nodes[j].q for j in node.inputs]
    a = node.attrs
    op = node.op
    if op in ("conv2d", "dense"):
        if op == "conv2d":
            acc = conv2d(xs[0], node.params["w"], a["stride"], a["padding"], a["groups"])
        else:
            acc = np.asarray(xs[0], np.int64) @ node.params["w"].astype(np.int64)
        acc = acc + node.params["b"].astype(np.int64)
        return np.clip(rshift_round(acc, qs[0] + a["qw"] - node.q), lo, hi)
    if op == "add":
        return np.clip(align(xs[0], qs[0], node.q) + align(xs[1], qs[1], node.q), lo, hi)
    if op == "mul":
        acc = np.asarray(xs[0], np.int64) * np.asarray(xs[1], np.int64)
        return np.clip(rshift_round(acc, qs[0] + qs[1] - node.q), lo, hi)
    if op == "concat":
        return np.concatenate([align(x, qx, node.q) for x, qx in zip(xs, qs)], axis=-1)
    x = np.asarray(xs[0], np.int64)
    if op == "relu":
        return np.maximum(x, 0)
    if op == "leaky_relu":
        return np.where(x >= 0, x, rshift_round(x * a["alpha"], a["qa"]))
    if op == "prelu":
        return np.where(x >= 0, x, rshift_round(x * node.params["alpha"].astype(np.int64), a["qa"]))
    if op == "max_pool":
        k = a["k"]
        n, h, w, c = x.shape
        x = x[:, :h // k * k, :w // k * k]
        return x.reshape(n, h // k, k, w // k, k, c).max(axis=(2, 4))
    if op == "pixel_shuffle":
        return pixel_shuffle(x, a["r"])
    if op == "pixel_unshuffle":
        return pixel_unshuffle(x, a["r"])
    if op == "upsample":
        return x.repeat(a["r"], axis=1).repeat(a["r"], axis=2)
    if op == "reshape":
        return x.reshape((x.shape[0], *a["shape"]))
    if op == "transpose":
        return x.transpose((0, *[p + 1 for p in a["perm"]]))
    if op == "slice":
        return x[(slice(None), *[slice(b, e) for b, e in zip(a["begin"], a["end"])])]
    raise ValueError(op)


def run(graph: Graph, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
    """Evaluate ``graph`` on integer inputs (batch first); returns the output tensors (int64)."""
    vals: list[np.ndarray] = []
    feed = iter(inputs)
    for node in graph.nodes:
        if node.op == "input":
            vals.append(np.asarray(next(feed), np.int64))
        else:
            vals.append(run_node(graph, node, [vals[j] for j in node.inputs]))
    return tuple(vals[o] for o in graph.outputs)
