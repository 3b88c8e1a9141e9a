"""Bjontegaard delta rate and delta quality (VCEG-M33; JVET common test conditions).

BD-rate: fit log10(rate) as a function of quality for anchor and test, integrate both over
the quality interval where the curves overlap, and turn the mean log-rate difference into a
percentage, ``(10**mean_diff - 1) * 100`` (negative = the test saves bits). BD-quality
(BD-PSNR for PSNR) swaps the axes: quality as a function of log10(rate), mean difference.

Two interpolations:

- ``"pchip"``: piecewise cubic Hermite with Fritsch-Carlson / Fritsch-Butland slopes
  (harmonic-mean interior slopes, shape-preserving one-sided end slopes), the method of the
  JVET CTC spreadsheet (JVET-K1010 / JCTVC-L1100 "piecewise cubic"). Integrated exactly.
- ``"cubic"``: one least-squares cubic polynomial through all points (VCEG-M33).

The quality axis may be any metric (PSNR-Y, PSNR-YUV, SSIM, MS-SSIM, VMAF) that grows with
rate. Fewer than 4 points per curve, non-positive rates or a curve whose quality does not
strictly increase with rate raise `InputError`; overlap below ``min_overlap`` (75 %) of the
union interval warns with `BDOverlapWarning`; no overlap at all is an `InputError`.
"""

from __future__ import annotations

import warnings

import numpy as np

from jaxcodec.errors import ConfigError, InputError

METHODS = ("pchip", "cubic")


class BDOverlapWarning(UserWarning):
    """The two RD curves overlap on less than ``min_overlap`` of their union interval."""


def _curve(rate, quality, which: str) -> tuple[np.ndarray, np.ndarray]:
    r, q = np.asarray(rate, np.float64).ravel(), np.asarray(quality, np.float64).ravel()
    if r.shape != q.shape:
        raise InputError(f"{which} curve: {r.size} rates but {q.size} quality values")
    if r.size < 4:
        raise InputError(f"{which} curve has {r.size} RD points; BD-rate needs at least 4")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(q))):
        raise InputError(f"{which} curve has non-finite rate or quality values")
    if np.any(r <= 0):
        raise InputError(f"{which} curve has non-positive rates {r.tolist()}")
    order = np.argsort(r)
    r, q = r[order], q[order]
    if np.any(np.diff(r) <= 0) or np.any(np.diff(q) <= 0):
        raise InputError(f"{which} curve is not monotonic: quality must strictly increase with rate "
                         f"(rates {np.round(r, 3).tolist()}, quality {np.round(q, 4).tolist()})")
    return r, q


def pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Shape-preserving derivatives at the knots (Fritsch & Carlson 1980; MATLAB/scipy pchip)."""
    h = np.diff(x)
    delta = np.diff(y) / h
    d = np.zeros_like(y)
    for k in range(1, len(x) - 1):
        if delta[k - 1] * delta[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])

    def end(h0, h1, d0, d1):
        s = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
        if np.sign(s) != np.sign(d0):
            return 0.0
        if np.sign(d0) != np.sign(d1) and abs(s) > abs(3 * d0):
            return 3 * d0
        return s

    d[0] = end(h[0], h[1], delta[0], delta[1])
    d[-1] = end(h[-1], h[-2], delta[-1], delta[-2])
    return d


def _pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Exact integral of the pchip interpolant over [lo, hi] inside [x[0], x[-1]]."""
    d = pchip_slopes(x, y)
    total = 0.0
    for k in range(len(x) - 1):
        a, b = max(lo, x[k]), min(hi, x[k + 1])
        if b <= a:
            continue
        h = x[k + 1] - x[k]
        delta = (y[k + 1] - y[k]) / h
        c2 = (3 * delta - 2 * d[k] - d[k + 1]) / h
        c3 = (d[k] + d[k + 1] - 2 * delta) / (h * h)

        def prim(t):
            return y[k] * t + d[k] * t**2 / 2 + c2 * t**3 / 3 + c3 * t**4 / 4

        total += prim(b - x[k]) - prim(a - x[k])
    return total


def _cubic_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """VCEG-M33: integral of the least-squares cubic through the points."""
    p = np.polyint(np.polyfit(x, y, 3))
    return float(np.polyval(p, hi) - np.polyval(p, lo))


def _mean_delta(xa, ya, xt, yt, method: str, min_overlap: float) -> float:
    if method not in METHODS:
        raise ConfigError(f"unknown BD interpolation {method!r}; expected one of {METHODS}")
    lo, hi = max(xa[0], xt[0]), min(xa[-1], xt[-1])
    union = max(xa[-1], xt[-1]) - min(xa[0], xt[0])
    if hi <= lo:
        raise InputError(f"RD curves do not overlap ([{xa[0]:.4g}, {xa[-1]:.4g}] vs [{xt[0]:.4g}, {xt[-1]:.4g}])")
    overlap = (hi - lo) / union
    if overlap < min_overlap:
        warnings.warn(f"RD curves overlap on {100 * overlap:.1f}% of their range (< {100 * min_overlap:.0f}%): "
                      "the BD value extrapolates little but averages a narrow interval", BDOverlapWarning,
                      stacklevel=3)
    integral = _pchip_integral if method == "pchip" else _cubic_integral
    return (integral(xt, yt, lo, hi) - integral(xa, ya, lo, hi)) / (hi - lo)


def bd_rate(rate_anchor, quality_anchor, rate_test, quality_test, *, method: str = "pchip",
            min_overlap: float = 0.75) -> float:
    """BD-rate of test vs anchor in percent (negative = fewer bits at equal quality)."""
    ra, qa = _curve(rate_anchor, quality_anchor, "anchor")
    rt, qt = _curve(rate_test, quality_test, "test")
    mean = _mean_delta(qa, np.log10(ra), qt, np.log10(rt), method, min_overlap)
    return float((10.0**mean - 1.0) * 100.0)


def bd_quality(rate_anchor, quality_anchor, rate_test, quality_test, *, method: str = "pchip",
               min_overlap: float = 0.75) -> float:
    """BD-quality (BD-PSNR in dB for PSNR) of test vs anchor: mean quality gain at equal rate."""
    ra, qa = _curve(rate_anchor, quality_anchor, "anchor")
    rt, qt = _curve(rate_test, quality_test, "test")
    return float(_mean_delta(np.log10(ra), qa, np.log10(rt), qt, method, min_overlap))


bd_psnr = bd_quality
