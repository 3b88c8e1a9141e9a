"""BD-rate / BD-quality against the independent `bjontegaard` package, and bad-input errors."""

from __future__ import annotations

import warnings

import bjontegaard
import numpy as np
import pytest

from jaxcodec.errors import InputError
from jaxcodec.metrics.bdrate import BDOverlapWarning, bd_quality, bd_rate, pchip_slopes

# Real curves measured here with jaxcodec.codecs (x264:medium / x265:medium, carphone, 30 frames,
# QP 22/27/32/37; kbps, mean per-frame PSNR-YUV 6:1:1).
X264 = ([244.7, 129.15, 71.46, 42.86], [42.626, 39.507, 36.656, 34.142])
X265 = ([239.12, 130.46, 74.81, 47.36], [42.527, 39.462, 36.44, 33.631])


def _random_curve(rng, n=4):
    rate = np.sort(rng.uniform(20, 3000, n))
    quality = np.sort(rng.uniform(28, 45, n))
    return rate, quality


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_matches_bjontegaard_on_random_curves(method):
    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(200):
        ra, qa = _random_curve(rng, rng.integers(4, 7))
        rt, qt = _random_curve(rng, len(ra))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ours = bd_rate(ra, qa, rt, qt, method=method)
                ours_q = bd_quality(ra, qa, rt, qt, method=method)
            except InputError:  # no overlap on one of the axes
                continue
            ref = bjontegaard.bd_rate(ra, qa, rt, qt, method=method)
            ref_q = bjontegaard.bd_psnr(ra, qa, rt, qt, method=method)
        assert abs(ours - ref) < 1e-3 * max(1.0, abs(ref) / 100), (ra, qa, rt, qt)
        assert abs(ours_q - ref_q) < 1e-6
        checked += 1
    assert checked > 100


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_matches_bjontegaard_on_real_curves(method):
    ours = bd_rate(*X264, *X265, method=method)
    ref = bjontegaard.bd_rate(*X264, *X265, method=method)
    assert abs(ours - ref) < 1e-3
    assert 0 < ours < 20  # x265 worse than x264 on carphone at these points (PSNR-YUV)


def test_hand_computed_cases():
    r = np.array([100.0, 200.0, 400.0, 800.0])
    q = np.array([30.0, 33.0, 36.0, 39.0])
    assert bd_rate(r, q, r, q) == pytest.approx(0.0, abs=1e-12)
    assert bd_rate(r, q, r / 2, q) == pytest.approx(-50.0, abs=1e-9)  # same quality at half the rate
    assert bd_rate(r, q, 2 * r, q + 3, min_overlap=0) == pytest.approx(0.0, abs=1e-9)  # shifted along a straight line
    assert bd_quality(r, q, r, q + 0.5) == pytest.approx(0.5, abs=1e-12)
    # pchip slopes on a straight line are the line's slope
    np.testing.assert_allclose(pchip_slopes(np.log10(r), q), 3 / np.log10(2))


def test_bad_input_is_a_clear_error():
    with pytest.raises(InputError, match="at least 4"):
        bd_rate([1, 2, 3], [30, 31, 32], [1, 2, 3], [30, 31, 32])
    with pytest.raises(InputError, match="test curve is not monotonic"):
        bd_rate([1, 2, 3, 4], [30, 31, 32, 33], [1, 2, 3, 4], [30, 32, 31, 33])
    with pytest.raises(InputError, match="non-positive"):
        bd_rate([0, 2, 3, 4], [30, 31, 32, 33], [1, 2, 3, 4], [30, 31, 32, 33])
    with pytest.raises(InputError, match="do not overlap"):
        bd_rate([1, 2, 3, 4], [30, 31, 32, 33], [1, 2, 3, 4], [40, 41, 42, 43])


def test_small_overlap_warns():
    with pytest.warns(BDOverlapWarning, match="overlap"):
        bd_rate([1, 2, 3, 4], [30, 31, 32, 33], [1, 2, 3, 4], [32.5, 33.5, 34.5, 35.5])
