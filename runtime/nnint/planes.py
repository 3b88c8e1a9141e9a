"""Integer codec planes <-> integer model tensors, with no float anywhere (decoder side).

The loop filter's inputs are integer planes divided by powers of two (samples / 2**bd,
bS / 2, QP / 64, prediction type / 2; jaxcodec.nn.loopfilter.normalise), so quantizing
them to an input quantizer q is a left shift, and the output back to samples is a rounding
right shift. ``to_input`` equals graph.quantize_input on the normalised float planes.
"""
from __future__ import annotations

import numpy as np

from runtime.nnint.graph import Node


def to_input(plane: np.ndarray, log2_div: int, node: Node) -> np.ndarray:
    """Integer plane / 2**log2_div at the input node's quantizer, clipped to its bound."""
    s = node.q - log2_div
    x = np.asarray(plane, np.int64)
    x = x << s if s >= 0 else (x + (1 << (-s - 1))) >> -s
    b = int(node.attrs["bound"])
    return np.clip(x, -b, b).astype(np.int32)


def to_samples(out: np.ndarray, q: int, bit_depth: int) -> np.ndarray:
    """Model output at quantizer q (value = samples / 2**bit_depth) -> clipped samples."""
    s = q - bit_depth
    x = np.asarray(out, np.int64)
    x = (x + (1 << (s - 1))) >> s if s > 0 else x << -s
    return np.clip(x, 0, (1 << bit_depth) - 1).astype(np.uint16 if bit_depth > 8 else np.uint8)
