"""CNN in-loop filter (paper 001 section III-A, Fig. 5), luma and chroma models.

::

    rec  ─conv3x3─PReLU─┐
    pred ─conv3x3─PReLU─┤
    bs   ─conv3x3─PReLU─┼─concat─conv1x1─PReLU─conv3x3/2─PReLU─[ResBlock x 8]─conv3x3─shuffle x2─(+rec)─> out
    qp   ─conv3x3─PReLU─┤        (fusion)       (half res)         (backbone)     (reconstruction)
    ipb  ─conv3x3─PReLU─┘

Output = rec + F(...) (paper 001 eq. 2). The chroma model reads both chroma planes, their
prediction, boundary strength, QP and the co-located luma reconstruction (space-to-depth
by 2 to chroma resolution, paper: "luma features are downsampled and concatenated");
no IPB input for chroma (paper: no benefit).

Inputs are real-valued planes in [0, 1] (samples / 2**bit_depth, bS / 2, QP / 64,
prediction type / 2: see :func:`normalise`), NHWC with one channel each (two for chroma
rec/pred). All divisors are powers of two, so the integer runtime's input quantization
(x * 2**q) of integer sample/bS/QP planes is an exact shift. Both models
are written once as ``forward(ops, ...)`` so runtime.nnint.convert turns the same code
into an integer graph. Heights and widths must be multiples of 2 (luma) / 4 (luma of
the chroma model).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxcodec.nn.layers import FLOAT_OPS, Conv, PReLU

#: Max |real value| of every model input (all are normalised to [0, 1]).
INPUT_BOUND = 1.0


@dataclasses.dataclass(frozen=True)
class LoopFilterConfig:  # noqa: D101
    width: int = 32         # backbone channels
    features: int = 8       # channels per input's feature extractor
    blocks: int = 8         # residual blocks (paper: 8)
    qat: bool = False       # fake-quant weights/outputs (paper 001 IV-B, Fig. 9)
    # (weight, activation) bits QAT simulates: (16, 16) for the int16 profile; about (8, 12)
    # for the profile whose every conv runs exactly in float32 (runtime.nnint.execute).
    qat_bits: tuple[int, int] = (16, 16)


class ResBlock(nnx.Module):
    def __init__(self, c: int, *, qat: bool, qat_bits=(16, 16), rngs: nnx.Rngs):
        self.conv1 = Conv(c, c, 3, qat=qat, qat_bits=qat_bits, rngs=rngs)
        self.act = PReLU(c)
        self.conv2 = Conv(c, c, 3, qat=qat, qat_bits=qat_bits, rngs=rngs)
        # Small residual branches at init keep 8 un-normalised blocks from blowing up.
        self.conv2.kernel[...] = self.conv2.kernel[...] * 0.1

    def forward(self, ops, x):
        return ops.add(x, ops.conv(self.conv2, ops.prelu(self.act, ops.conv(self.conv1, x))))


class _Branch(nnx.Module):
    def __init__(self, cin: int, cout: int, *, qat: bool, qat_bits=(16, 16), rngs: nnx.Rngs):
        self.conv = Conv(cin, cout, 3, qat=qat, qat_bits=qat_bits, rngs=rngs)
        self.act = PReLU(cout)

    def forward(self, ops, x):
        return ops.prelu(self.act, ops.conv(self.conv, x))


class _Trunk(nnx.Module):
    """Fusion, downsampling, backbone and reconstruction shared by luma and chroma."""

    def __init__(self, cin: int, cout: int, cfg: LoopFilterConfig, *, rngs: nnx.Rngs):
        w, qat, qb = cfg.width, cfg.qat, cfg.qat_bits
        self.fuse = Conv(cin, w, 1, qat=qat, qat_bits=qb, rngs=rngs)
        self.fuse_act = PReLU(w)
        self.down = Conv(w, w, 3, stride=2, qat=qat, qat_bits=qb, rngs=rngs)
        self.down_act = PReLU(w)
        self.blocks = nnx.List([ResBlock(w, qat=qat, qat_bits=qb, rngs=rngs) for _ in range(cfg.blocks)])
        self.up = Conv(w, 4 * cout, 3, qat=qat, qat_bits=qb, rngs=rngs)
        # Start as the identity filter: the residual is zero until trained.
        self.up.kernel[...] = self.up.kernel[...] * 0.0

    def forward(self, ops, feats):
        x = ops.prelu(self.fuse_act, ops.conv(self.fuse, ops.concat(feats)))
        x = ops.prelu(self.down_act, ops.conv(self.down, x))
        for blk in self.blocks:
            x = blk.forward(ops, x)
        return ops.pixel_shuffle(ops.conv(self.up, x), 2)


class LumaFilter(nnx.Module):
    """Luma NN loop filter: (rec, pred, bs, qp, ipb) -> filtered rec, all (N, H, W, 1)."""

    n_inputs = 5

    def __init__(self, cfg: LoopFilterConfig = LoopFilterConfig(), *, rngs: nnx.Rngs):
        f = cfg.features
        self.branches = nnx.List([_Branch(1, f, qat=cfg.qat, qat_bits=cfg.qat_bits, rngs=rngs) for _ in range(5)])
        self.trunk = _Trunk(5 * f, 1, cfg, rngs=rngs)

    def forward(self, ops, rec, pred, bs, qp, ipb):
        feats = [b.forward(ops, x) for b, x in zip(self.branches, (rec, pred, bs, qp, ipb))]
        return ops.add(rec, self.trunk.forward(ops, feats))

    def __call__(self, rec, pred, bs, qp, ipb):
        return self.forward(FLOAT_OPS, rec, pred, bs, qp, ipb)


class ChromaFilter(nnx.Module):
    """Chroma NN loop filter: (rec_uv, pred_uv (N, H/2, W/2, 2), bs, qp (N, H/2, W/2, 1),
    luma rec (N, H, W, 1)) -> filtered rec_uv."""

    n_inputs = 5

    def __init__(self, cfg: LoopFilterConfig = LoopFilterConfig(), *, rngs: nnx.Rngs):
        f = cfg.features
        self.branches = nnx.List([_Branch(c, f, qat=cfg.qat, qat_bits=cfg.qat_bits, rngs=rngs) for c in (2, 2, 1, 1, 4)])
        self.trunk = _Trunk(5 * f, 2, cfg, rngs=rngs)

    def forward(self, ops, rec_uv, pred_uv, bs, qp, luma):
        ins = (rec_uv, pred_uv, bs, qp, ops.pixel_unshuffle(luma, 2))
        feats = [b.forward(ops, x) for b, x in zip(self.branches, ins)]
        return ops.add(rec_uv, self.trunk.forward(ops, feats))

    def __call__(self, rec_uv, pred_uv, bs, qp, luma):
        return self.forward(FLOAT_OPS, rec_uv, pred_uv, bs, qp, luma)


def normalise(samples, bs, qp, ipb, *, bit_depth: int):
    """Integer planes -> model inputs: samples / 2**bit_depth, bS / 2, QP / 64, type / 2
    (0 intra, 1 uni-inter, 2 bi-inter, paper 001 III-A IPB input). Returns float32 arrays."""
    f = lambda a, d: jnp.asarray(a, jnp.float32) / d  # noqa: E731
    return f(samples, 2.0**bit_depth), f(bs, 2.0), f(qp, 64.0), f(ipb, 2.0)


def macs_per_pixel(model: nnx.Module, h: int = 64, w: int = 64) -> float:
    """Multiply-accumulates per luma pixel (counted from the conv shapes)."""
    total = 0

    def count(layer, x_shape):
        nonlocal total
        kh, kw, cig, co = layer.kernel.shape
        oh, ow = x_shape[1] // layer.stride, x_shape[2] // layer.stride
        total += oh * ow * kh * kw * cig * co

    class Counting:
        def __getattr__(self, name):
            fn = getattr(FLOAT_OPS, name)
            if name == "conv":
                return lambda layer, x: (count(layer, x.shape), layer(x))[1]
            return fn

    shapes = _example_shapes(model, h, w)
    jax.eval_shape(lambda *xs: model.forward(Counting(), *xs),
                   *[jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes])
    return total / (h * w)


def _example_shapes(model, h, w):
    if isinstance(model, ChromaFilter):
        c = (1, h // 2, w // 2)
        return [(*c, 2), (*c, 2), (*c, 1), (*c, 1), (1, h, w, 1)]
    return [(1, h, w, 1)] * 5


def param_count(model: nnx.Module) -> int:
    return int(sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


LOSSES = ("mse", "relative")
RELATIVE_EPS = 2.0**-16
"""Floor of the unfiltered MSE in the relative loss (normalised units, about (1/255)^2 / 4): a
patch the codec already reconstructs exactly must not dominate the batch."""


def loss_fn(model, inputs, target, loss: str = "mse"):
    """Loss of the filtered reconstruction against the original (both normalised).

    ``mse``: the batch MSE (paper 001 III-A trains on L2/L1 of the whole batch). Patches coded at
    a high QP have errors 10-30x those at QP 22, so they dominate it and the filter learns little
    for fine quantisers.
    ``relative``: each patch's MSE divided by that of its unfiltered reconstruction
    (``inputs[0]``), averaged: the mean ratio 10^(-gain/10) of the patches' PSNR gains, so every
    QP and every kind of content weighs the same.
    """
    err = (model(*inputs) - target) ** 2
    if loss == "mse":
        return jnp.mean(err)
    if loss != "relative":
        raise ValueError(f"unknown loss {loss!r} (one of {LOSSES})")
    axes = tuple(range(1, err.ndim))
    base = jnp.mean((inputs[0] - target) ** 2, axis=axes)
    return jnp.mean(jnp.mean(err, axis=axes) / (base + RELATIVE_EPS))


def make_train_step(tx: optax.GradientTransformation, graphdef, loss_kind: str = "mse"):
    """Functional train step (flax performance guide): split once, jit a pure step."""
    if loss_kind not in LOSSES:
        raise ValueError(f"unknown loss {loss_kind!r} (one of {LOSSES})")

    @jax.jit
    def step(params, rest, opt_state, inputs, target):
        def f(p):
            return loss_fn(nnx.merge(graphdef, p, rest), inputs, target, loss_kind)
        loss, grads = jax.value_and_grad(f)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def save_checkpoint(path: str | Path, model: nnx.Module) -> None:
    """orbax checkpoint of the float model state (training state for resume)."""
    import orbax.checkpoint as ocp
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(Path(path).absolute(), nnx.state(model), force=True)


def restore_checkpoint(path: str | Path, model: nnx.Module) -> nnx.Module:
    """Restore into a model built with the same config (its state gives the structure)."""
    import orbax.checkpoint as ocp
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: model))
    with ocp.StandardCheckpointer() as ckpt:
        state = ckpt.restore(Path(path).absolute(), abstract)
    return nnx.merge(graphdef, state)
