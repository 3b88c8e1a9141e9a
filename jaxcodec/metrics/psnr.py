"""PSNR per plane and weighted PSNR-YUV (JVET CTC reporting), for 8- and 10-bit peaks.

Per-frame values: each function reduces the last two (H, W) axes and keeps every leading
(time, batch) axis, so a sequence PSNR is the mean of per-frame PSNRs, as JVET reports it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from jaxcodec.errors import ConfigError, InputError
from jaxcodec.frame import Frame

YUV_WEIGHTS = {"611": (6.0, 1.0, 1.0), "411": (4.0, 1.0, 1.0), "1011": (10.0, 1.0, 1.0)}


def check_same_shape(a, b, what: str = "planes") -> None:
    """InputError naming both shapes when two planes/frames cannot be compared."""
    if tuple(a.shape) != tuple(b.shape):
        raise InputError(f"{what} differ in size: {tuple(a.shape)} vs {tuple(b.shape)}")


def mse(a, b):
    """Mean squared error over the last two axes, float32."""
    check_same_shape(a, b)
    d = jnp.asarray(a, jnp.float32) - jnp.asarray(b, jnp.float32)
    return jnp.mean(d * d, axis=(-2, -1))


def psnr(a, b, *, peak: float = 255.0):
    """10 log10(peak^2 / MSE) over the last two axes; +inf where the planes are equal."""
    m = mse(a, b)
    return jnp.where(m > 0, 10.0 * jnp.log10(peak * peak / jnp.maximum(m, 1e-30)), jnp.inf)


class FramePSNR(NamedTuple):
    y: jnp.ndarray
    u: jnp.ndarray
    v: jnp.ndarray
    yuv: jnp.ndarray


def yuv_weights(weights) -> tuple[float, float, float]:
    """(6,1,1) default; also "611", "411", "1011" or any 3 non-negative numbers."""
    if isinstance(weights, str):
        if weights not in YUV_WEIGHTS:
            raise ConfigError(f"unknown PSNR-YUV weights {weights!r}; expected one of {sorted(YUV_WEIGHTS)} or 3 numbers")
        weights = YUV_WEIGHTS[weights]
    w = tuple(float(x) for x in weights)
    if len(w) != 3 or min(w) < 0 or sum(w) <= 0:
        raise ConfigError(f"PSNR-YUV weights must be 3 non-negative numbers, got {weights!r}")
    return w


def psnr_frame(ref: Frame, dist: Frame, *, weights=(6.0, 1.0, 1.0)) -> FramePSNR:
    """PSNR of Y, Cb, Cr and PSNR-YUV = (wY*Y + wU*U + wV*V) / (wY+wU+wV), per frame.

    The peak is ``2**bit_depth - 1`` of ``ref`` (255 or 1023).
    """
    if ref.bit_depth != dist.bit_depth:
        raise InputError(f"bit depths differ: {ref.bit_depth} vs {dist.bit_depth}")
    for c in "yuv":
        check_same_shape(getattr(ref, c), getattr(dist, c), f"{c.upper()} planes")
    wy, wu, wv = yuv_weights(weights)
    py, pu, pv = (psnr(getattr(ref, c), getattr(dist, c), peak=float(ref.peak)) for c in "yuv")
    return FramePSNR(py, pu, pv, (wy * py + wu * pu + wv * pv) / (wy + wu + wv))
