"""Jitted integer execution of a :class:`~runtime.nnint.graph.Graph`, exact and fast.

XLA's integer convolution on CPU is slow (issue 4: ~3.4 GMAC/s vs ~45 GMAC/s float32),
but float arithmetic on integers is exact, and hence independent of summation order and
thread count, while every partial sum stays below 2**24 (float32) or 2**53 (float64). So
each conv2d/dense node runs on the fastest path that :func:`choose_path` can *prove*
exact from its weights and its input's provable bound (graph.value_bounds):

``f32``        one float32 conv, if sum|w| * max|x| < 2**24;
``f32split``   x = hi*256 + lo (lo in [0, 255], hi = x >> 8), both halves stacked on the
               batch axis into one float32 conv, each exact if sum|w| * max(255, max|hi|) < 2**24;
``f64``        one float64 conv if the bound is < 2**53 (only when jax_enable_x64 is on);
``int``        int32 arithmetic: XLA's integer conv/dot on CPU (``int_impl="native"``), or,
               on other backends, a sum over kernel taps and input channels of int32
               elementwise products (``int_impl="taps"``): cuDNN has no int32 convolution
               (seen on an H200: UNIMPLEMENTED), and integer sums are exact in any order.

Bias, rounding shift and saturation are then done in int32 (int32 wrap-around in the
split recombination is harmless: the true sum fits int32, graph.validate checks it).
Everything else (add, mul, activations, reshapes) is int32 elementwise work.

Which path a layer gets is decided by its precision profile at conversion time
(runtime.nnint.convert): SADL's int16 activations with >= 10-bit weights need the split
(about 4x slower than float32 here, under 0.002 dB from the float model on the loop
filter); 11-12-bit activations with 7-9-bit weights put every conv on one float32 conv
(about float32 speed, under 0.01 dB). Both are bit-exact on every machine.

On GPUs this exactness argument also needs the convolution algorithm to compute exact
products and sums (precision=HIGHEST rules out TF32; FFT/Winograd algorithms would not be
exact). Checked on an NVIDIA H200 (JAX 0.11.2, 2026-11-30): the shipped loop filter's f32
convs gave the CPU's output bit for bit (codec streams encoded on the GPU were byte-identical
to the CPU's, and decoded to the same MD5 on both), and the parity tests of every op passed
there except the native int32 conv, which is why ``int_impl`` exists.
"""
from __future__ import annotations

from typing import Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np

from runtime.nnint.graph import Graph, Node, validate, value_bounds, weight_l1

F32_EXACT = 2**24
F64_EXACT = 2**53
PATHS = ("f32", "f32split", "f64", "int")
INT_IMPLS = ("native", "taps")


def default_int_impl() -> str:
    """``native`` on CPU (XLA's integer conv), ``taps`` elsewhere (no int32 conv in cuDNN)."""
    return "native" if jax.default_backend() == "cpu" else "taps"


def _x64_enabled() -> bool:
    return bool(jax.config.read("jax_enable_x64"))


def choose_path(l1: int, x_bound: int, *, allow_f64: bool | None = None) -> str:
    """Fastest provably exact path for a layer with max-channel sum|w| = l1 and |x| <= x_bound."""
    if allow_f64 is None:
        allow_f64 = _x64_enabled()
    if l1 * x_bound < F32_EXACT:
        return "f32"
    hi_bound = (x_bound >> 8) + 1
    if l1 * max(255, hi_bound) < F32_EXACT:
        return "f32split"
    if allow_f64 and l1 * x_bound < F64_EXACT:
        return "f64"
    return "int"


def plan(graph: Graph, *, allow_f64: bool | None = None) -> dict[int, str]:
    """Chosen path per conv2d/dense node index."""
    vb = value_bounds(graph)
    return {i: choose_path(weight_l1(n), vb[n.inputs[0]], allow_f64=allow_f64)
            for i, n in enumerate(graph.nodes) if n.op in ("conv2d", "dense")}


def rshift_round(x: jax.Array, s: int) -> jax.Array:
    return jnp.right_shift(x + (1 << (s - 1)), s) if s > 0 else x


def align(x: jax.Array, qx: int, q: int) -> jax.Array:
    return jnp.left_shift(x, q - qx) if q >= qx else rshift_round(x, qx - q)


def _linear(node: Node, x: jax.Array, w: jax.Array, dtype) -> jax.Array:
    if node.op == "dense":
        return jnp.matmul(x.astype(dtype), w, precision=jax.lax.Precision.HIGHEST,
                          preferred_element_type=dtype)
    a = node.attrs
    return jax.lax.conv_general_dilated(
        x.astype(dtype), w, window_strides=tuple(a["stride"]),
        padding=tuple(tuple(p) for p in a["padding"]),
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=a["groups"],
        precision=jax.lax.Precision.HIGHEST, preferred_element_type=dtype)


def _int_taps(node: Node, x: jax.Array, w: jax.Array) -> jax.Array:
    """int32 conv2d/dense from elementwise products only: runs on any XLA backend.

    Memory stays at one output-sized accumulator per group: the loop over taps and input
    channels is unrolled (kh * kw * cin/groups multiply-adds, fused by XLA). Wrap-around of
    partial sums is harmless: the true sum fits int32 (graph.validate).
    """
    if node.op == "dense":
        return jnp.sum(x[..., :, None] * w, axis=-2, dtype=jnp.int32)
    a = node.attrs
    kh, kw, cig, cout = w.shape
    g = a["groups"]
    sh, sw = a["stride"]
    (pt, pb), (pl, pr) = (tuple(p) for p in a["padding"])
    xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    n, hp, wp, _ = xp.shape
    ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    xg = xp.reshape(n, hp, wp, g, cig)
    wg = w.reshape(kh, kw, cig, g, cout // g)  # output channel o is in group o // (cout / g)
    acc = jnp.zeros((n, ho, wo, g, cout // g), jnp.int32)
    for dy in range(kh):
        for dx in range(kw):
            xs = xg[:, dy:dy + (ho - 1) * sh + 1:sh, dx:dx + (wo - 1) * sw + 1:sw]
            for ci in range(cig):
                acc = acc + xs[..., ci:ci + 1] * wg[dy, dx, ci]
    return acc.reshape(n, ho, wo, cout)


def _accumulate(node: Node, path: str, x: jax.Array, w: dict, int_impl: str = "native") -> jax.Array:
    """Exact int32 sum w*x for one conv2d/dense node on the given path."""
    if path == "f32":
        return _linear(node, x, w["f32"], jnp.float32).astype(jnp.int32)
    if path == "f32split":
        n = x.shape[0]
        halves = jnp.concatenate([jnp.right_shift(x, 8), jnp.bitwise_and(x, 255)], axis=0)
        acc = _linear(node, halves, w["f32"], jnp.float32).astype(jnp.int32)
        return acc[:n] * 256 + acc[n:]
    if path == "f64":
        return _linear(node, x, w["f64"], jnp.float64).astype(jnp.int32)
    if int_impl == "taps":
        return _int_taps(node, x, w["i32"])
    return _linear(node, x, w["i32"], jnp.int32)


def make_apply(graph: Graph, *, paths: dict[int, str] | None = None, int_impl: str | None = None
               ) -> Callable[..., tuple[jax.Array, ...]]:
    """Pure function ``apply(*int_inputs) -> outputs`` (int32); jit it or not.

    ``paths`` overrides :func:`plan` (e.g. to force ``int`` in tests); a forced float path
    that is not provably exact is refused. ``int_impl`` picks how ``int`` layers run
    (default: :func:`default_int_impl`); both give the same integers.
    """
    int_impl = default_int_impl() if int_impl is None else int_impl
    if int_impl not in INT_IMPLS:
        raise ValueError(f"int_impl must be one of {INT_IMPLS}, got {int_impl!r}")
    validate(graph)
    chosen = plan(graph)
    if paths:
        for i, p in paths.items():
            if PATHS.index(p) < PATHS.index(chosen[i]) and not (p == "f64" and chosen[i] == "int"):
                raise ValueError(f"node {i}: path {p} is not provably exact (needs {chosen[i]})")
            if p == "f64" and chosen[i] == "int" and not _x64_enabled():
                raise ValueError("f64 path needs jax_enable_x64")
        chosen = {**chosen, **paths}
    lo, hi = graph.act_min, graph.act_max
    weights = {}
    for i, n in enumerate(graph.nodes):
        if n.op in ("conv2d", "dense"):
            wi = np.asarray(n.params["w"], np.int64)
            p = chosen[i]
            weights[i] = {
                "f32": jnp.asarray(wi, jnp.float32) if p in ("f32", "f32split") else None,
                "f64": jnp.asarray(wi, jnp.float64) if p == "f64" else None,
                "i32": jnp.asarray(wi, jnp.int32) if p == "int" else None,
                "b": jnp.asarray(n.params["b"], jnp.int32),
            }
        elif n.op == "prelu":
            weights[i] = {"alpha": jnp.asarray(n.params["alpha"], jnp.int32)}

    def apply(*inputs):
        vals = []
        feed = iter(inputs)
        for i, node in enumerate(graph.nodes):
            a = node.attrs
            if node.op == "input":
                vals.append(jnp.asarray(next(feed)).astype(jnp.int32))
                continue
            xs = [vals[j] for j in node.inputs]
            qs = [graph.nodes[j].q for j in node.inputs]
            op = node.op
            if op in ("conv2d", "dense"):
                acc = _accumulate(node, chosen[i], xs[0], weights[i], int_impl) + weights[i]["b"]
                y = jnp.clip(rshift_round(acc, qs[0] + a["qw"] - node.q), lo, hi)
            elif op == "add":
                y = jnp.clip(align(xs[0], qs[0], node.q) + align(xs[1], qs[1], node.q), lo, hi)
            elif op == "mul":
                y = jnp.clip(rshift_round(xs[0] * xs[1], qs[0] + qs[1] - node.q), lo, hi)
            elif op == "concat":
                y = jnp.concatenate([align(x, qx, node.q) for x, qx in zip(xs, qs)], axis=-1)
            elif op == "relu":
                y = jnp.maximum(xs[0], 0)
            elif op == "leaky_relu":
                y = jnp.where(xs[0] >= 0, xs[0], rshift_round(xs[0] * a["alpha"], a["qa"]))
            elif op == "prelu":
                y = jnp.where(xs[0] >= 0, xs[0],
                              rshift_round(xs[0] * weights[i]["alpha"], a["qa"]))
            elif op == "max_pool":
                k = a["k"]
                y = jax.lax.reduce_window(xs[0], jnp.iinfo(jnp.int32).min, jax.lax.max,
                                          (1, k, k, 1), (1, k, k, 1), "VALID")
            elif op == "pixel_shuffle":
                x, r = xs[0], a["r"]
                n_, h, w, c = x.shape
                y = x.reshape(n_, h, w, r, r, c // (r * r)).transpose(0, 1, 3, 2, 4, 5)
                y = y.reshape(n_, h * r, w * r, c // (r * r))
            elif op == "pixel_unshuffle":
                x, r = xs[0], a["r"]
                n_, h, w, c = x.shape
                y = x.reshape(n_, h // r, r, w // r, r, c).transpose(0, 1, 3, 2, 4, 5)
                y = y.reshape(n_, h // r, w // r, r * r * c)
            elif op == "upsample":
                y = jnp.repeat(jnp.repeat(xs[0], a["r"], axis=1), a["r"], axis=2)
            elif op == "reshape":
                y = xs[0].reshape((xs[0].shape[0], *a["shape"]))
            elif op == "transpose":
                y = xs[0].transpose((0, *[p + 1 for p in a["perm"]]))
            elif op == "slice":
                y = xs[0][(slice(None), *[slice(b, e) for b, e in zip(a["begin"], a["end"])])]
            else:
                raise ValueError(op)
            vals.append(y)
        return tuple(vals[o] for o in graph.outputs)

    apply.paths = chosen  # type: ignore[attr-defined]
    apply.int_impl = int_impl  # type: ignore[attr-defined]
    return apply


class Executor:
    """Jitted :func:`make_apply` (compiles once per input shape); ``paths`` records the
    path chosen for each conv2d/dense node."""

    def __init__(self, graph: Graph, *, paths: dict[int, str] | None = None, jit: bool = True,
                 int_impl: str | None = None):
        apply = make_apply(graph, paths=paths, int_impl=int_impl)
        self.paths: dict[int, str] = apply.paths  # type: ignore[attr-defined]
        self._fn = jax.jit(apply) if jit else apply

    def __call__(self, *inputs) -> tuple[jax.Array, ...]:
        # A float plane here would be truncated silently: inputs come from quantize_input/planes.
        chex.assert_type(list(inputs), int)
        return self._fn(*inputs)


def make_executor(graph: Graph, *, paths: dict[int, str] | None = None, jit: bool = True,
                  int_impl: str | None = None) -> Executor:
    return Executor(graph, paths=paths, jit=jit, int_impl=int_impl)
