"""Model complexity (parameters, kMAC/pixel) and EncT/DecT time ratios as the papers print them.

kMAC/pixel is counted from the jaxpr of one forward pass: every ``conv_general_dilated``
costs ``output elements x kernel window x input channels / groups`` multiply-accumulates and
every ``dot_general`` ``output elements x contracted size``; element-wise ops are not counted
(the convention of the JVET NNVC complexity reports). Sub-jaxprs (jit, scan, remat,
custom_jvp/vjp) are walked, scan bodies multiplied by their length.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import numpy as np


class Complexity(NamedTuple):
    params: int
    macs: int
    pixels: int

    @property
    def kmac_per_pixel(self) -> float:
        return self.macs / self.pixels / 1000.0


def count_params(model) -> int:
    """Number of trainable parameters (``nnx.Param`` leaves) of a flax NNX model."""
    from flax import nnx

    state = nnx.state(model, nnx.Param)
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(state)))


def _eqn_macs(eqn) -> int:
    name = eqn.primitive.name
    if name == "conv_general_dilated":
        out = eqn.outvars[0].aval.shape
        rhs = eqn.invars[1].aval.shape
        dn = eqn.params["dimension_numbers"]
        kernel_out_dim = dn.rhs_spec[0]
        per_output = math.prod(rhs) // rhs[kernel_out_dim]  # window x in-channels per group
        return math.prod(out) * per_output
    if name == "dot_general":
        (lhs_contract, _), _ = eqn.params["dimension_numbers"]
        lhs = eqn.invars[0].aval.shape
        return math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in lhs_contract)
    return 0


def _jaxpr_macs(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        total += _eqn_macs(eqn)
        mult = eqn.params.get("length", 1) if eqn.primitive.name == "scan" else 1
        for p in eqn.params.values():
            for sub in (p if isinstance(p, (tuple, list)) else (p,)):
                if hasattr(sub, "eqns"):  # a Jaxpr
                    total += mult * _jaxpr_macs(sub)
                elif hasattr(getattr(sub, "jaxpr", None), "eqns"):  # a ClosedJaxpr
                    total += mult * _jaxpr_macs(sub.jaxpr)
    return total


def count_macs(fn, *args) -> int:
    """Multiply-accumulates of ``fn(*args)`` (conv + dot_general) from its jaxpr."""
    return _jaxpr_macs(jax.make_jaxpr(fn)(*args).jaxpr)


def model_complexity(model, example, *, pixels: int | None = None) -> Complexity:
    """Parameters and MACs of ``model(example)``; ``pixels`` defaults to H*W of an NHWC ``example``."""
    from flax import nnx

    graph, state = nnx.split(model)
    macs = count_macs(lambda s, x: nnx.merge(graph, s)(x), state, example)
    if pixels is None:
        pixels = int(math.prod(example.shape[:-1]))  # N*H*W of NHWC
    return Complexity(count_params(model), int(macs), int(pixels))


def time_ratio(seconds: float, anchor_seconds: float) -> str:
    """EncT/DecT column entry: test time over anchor time in percent, e.g. ``"183%"``."""
    if anchor_seconds <= 0:
        return "n/a"
    return f"{100.0 * seconds / anchor_seconds:.0f}%"
