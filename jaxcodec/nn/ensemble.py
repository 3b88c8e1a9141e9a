"""Geometric self-ensemble: a filter run on the 8 symmetries of the square, outputs averaged.

Test-time augmentation as in Lim et al. 2017 (EDSR, "self-ensemble", the "+" models): a
restoration CNN sees the picture transposed and flipped, each output is transformed back, and
the mean is the result. For a CNN trained with the same symmetries as augmentation it is a
cheap ensemble of slightly different filters (stride-2 layers sample other phases of a
flipped picture), and the full 8-member mean is exactly equivariant under every symmetry.

Used by the NN in-loop filter (`runtime.nnlf`, integer samples, rounded-shift mean so that
every decoder computes the same integers) and by the wrappers' postprocessor
(`wrappers.deploy`, float mean). Numpy only: the transforms are views, made contiguous.
"""

from __future__ import annotations

import numpy as np

#: Symmetries as bit sets: 4 transpose, 1 horizontal flip, 2 vertical flip, applied in that
#: order. A size-n ensemble uses the first n. Transposes and the half-turn come first: with
#: our loop filters they add the most (the first 4 give about 3/4 of the full ensemble's luma
#: gain on the training clips).
ORDER = (0, 4, 3, 7, 1, 5, 2, 6)
SIZES = (1, 2, 4, 8)


def check_size(n: int) -> None:
    if n not in SIZES:
        raise ValueError(f"ensemble size must be one of {SIZES}, got {n}")


def symmetry(a: np.ndarray, k: int, axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Symmetry ``k`` of ``a`` on ``axes`` (rows, columns): bit 4 transpose, then bit 1
    horizontal flip, then bit 2 vertical flip."""
    r, c = axes
    if k & 4:
        a = np.swapaxes(a, r, c)
    if k & 1:
        a = np.flip(a, c)
    if k & 2:
        a = np.flip(a, r)
    return np.ascontiguousarray(a)


def inverse_symmetry(a: np.ndarray, k: int, axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Undo :func:`symmetry` with the same ``k`` and ``axes``."""
    r, c = axes
    if k & 2:
        a = np.flip(a, r)
    if k & 1:
        a = np.flip(a, c)
    if k & 4:
        a = np.swapaxes(a, r, c)
    return np.ascontiguousarray(a)


def rounded_mean(outputs: list[np.ndarray]) -> np.ndarray:
    """Integer mean of 1, 2, 4 or 8 integer arrays, round half up: ``(sum + n/2) >> log2 n``
    (int64 sums: exact; one member is returned as it is)."""
    n = len(outputs)
    check_size(n)
    if n == 1:
        return outputs[0]
    total = np.sum(np.stack(outputs).astype(np.int64), axis=0)
    return (total + n // 2) >> (n.bit_length() - 1)
