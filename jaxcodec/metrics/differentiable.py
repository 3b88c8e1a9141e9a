"""Float, jit-able, differentiable scores over planes ``(N, H, W)`` in [0, 1] -> ``(N,)``.

The loss-side view of `jaxcodec.metrics` used by the wrappers (paper 004 eq. 4): SSIM,
MS-SSIM and DLM with as many of their 5 / 4 scales as the plane holds (MS-SSIM exponents renormalised).
"""

from __future__ import annotations

from jaxcodec.metrics import dlm as _dlm
from jaxcodec.metrics import ssim as _ssim


def ssim(a, b):
    return _ssim.ssim(a, b, peak=1.0)


def ms_ssim(a, b):
    side = min(a.shape[-2:])
    scales = 5
    while scales > 1 and side < 3 * 2 ** (scales - 1):
        scales -= 1
    return _ssim.ms_ssim(a, b, peak=1.0, scales=scales)


def dlm(a, b, *, enhancement_gain_limit: float | None = None):
    side = min(a.shape[-2:])
    scales = max(1, min(_dlm.SCALES, side.bit_length() - 2))  # 2**(scales+1) <= side
    return _dlm.dlm(a, b, peak=1.0, scales=scales, enhancement_gain_limit=enhancement_gain_limit)
