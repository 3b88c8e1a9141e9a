"""Quality metrics against independent references (scikit-image, scipy, hand-computed cases)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from jaxcodec.errors import ConfigError, InputError
from jaxcodec.frame import make_frame
from jaxcodec.io import read_video
from jaxcodec.metrics import complexity, differentiable, vmaf
from jaxcodec.metrics.dlm import dlm, dwt2
from jaxcodec.metrics.psnr import psnr, psnr_frame
from jaxcodec.metrics.ssim import MS_SSIM_WEIGHTS, ms_ssim, ssim


@pytest.fixture(scope="module")
def clip():
    return read_video("carphone", max_frames=3).frames


def _noisy(x, sigma, seed=0, peak=255):
    rng = np.random.default_rng(seed)
    return np.clip(np.round(x + rng.normal(0, sigma, x.shape)), 0, peak).astype(x.dtype)


def _sk_ssim(a, b, peak):
    return structural_similarity(np.asarray(a, np.float64), np.asarray(b, np.float64), gaussian_weights=True,
                                 sigma=1.5, use_sample_covariance=False, data_range=peak)


# ------------------------------------------------------------------------------------------ PSNR


def test_psnr_hand_computed_and_skimage(clip):
    a = np.full((4, 6), 100, np.uint8)
    assert float(psnr(a, a + 1)) == pytest.approx(10 * np.log10(255**2), abs=1e-4)  # MSE 1
    assert float(psnr(a, a)) == np.inf
    b = a.astype(np.uint16) * 4
    assert float(psnr(b, b + 2, peak=1023)) == pytest.approx(10 * np.log10(1023**2 / 4), abs=1e-4)
    y = np.asarray(clip.y)
    d = _noisy(y, 5)
    ours = np.asarray(psnr(y, d))
    assert ours.shape == (3,)
    for t in range(3):
        assert ours[t] == pytest.approx(peak_signal_noise_ratio(y[t], d[t], data_range=255), abs=1e-3)


def test_psnr_yuv_weights(clip):
    dist = clip.map(lambda p: _noisy(np.asarray(p), 4))
    p = psnr_frame(clip, dist)
    np.testing.assert_allclose(p.yuv, (6 * p.y + p.u + p.v) / 8, rtol=1e-6)
    p411 = psnr_frame(clip, dist, weights="411")
    np.testing.assert_allclose(p411.yuv, (4 * p.y + p.u + p.v) / 6, rtol=1e-6)
    p1011 = psnr_frame(clip, dist, weights="1011")
    np.testing.assert_allclose(p1011.yuv, (10 * p.y + p.u + p.v) / 12, rtol=1e-6)
    with pytest.raises(ConfigError, match="weights"):
        psnr_frame(clip, dist, weights="211")


def test_mismatched_sizes_are_rejected(clip):
    small = make_frame(np.zeros((3, 64, 64), np.uint8), np.zeros((3, 32, 32), np.uint8), np.zeros((3, 32, 32), np.uint8))
    with pytest.raises(InputError, match="differ in size"):
        psnr_frame(clip, small)
    with pytest.raises(InputError, match="differ in size"):
        ssim(clip.y, small.y)
    with pytest.raises(InputError, match="differ in size"):
        dlm(clip.y, small.y)


# ------------------------------------------------------------------------------------------ SSIM


@pytest.mark.parametrize("sigma", [2.0, 12.0])
def test_ssim_matches_skimage_on_real_content(clip, sigma):
    y = np.asarray(clip.y)
    d = _noisy(y, sigma, seed=int(sigma))
    ours = np.asarray(ssim(y, d))
    ref = [_sk_ssim(y[t], d[t], 255) for t in range(3)]
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_ssim_10bit_and_chroma_match_skimage(clip):
    u = np.asarray(clip.u[0]).astype(np.uint16) * 4
    d = _noisy(u, 10, peak=1023)
    assert float(ssim(u, d, peak=1023)) == pytest.approx(_sk_ssim(u, d, 1023), abs=1e-4)
    assert float(ssim(u, u, peak=1023)) == pytest.approx(1.0, abs=1e-6)


def _ref_ms_ssim(a, b, peak=255.0):
    """Independent MS-SSIM: scipy's Gaussian filter, cropped, 2x2 averaging, Wang 2003 exponents."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    value = 1.0
    for j, w in enumerate(MS_SSIM_WEIGHTS):
        f = lambda x: gaussian_filter(x, 1.5, truncate=3.5)[5:-5, 5:-5]  # noqa: E731
        ma, mb = f(a), f(b)
        va, vb, cab = f(a * a) - ma**2, f(b * b) - mb**2, f(a * b) - ma * mb
        cs = (2 * cab + c2) / (va + vb + c2)
        lum = (2 * ma * mb + c1) / (ma**2 + mb**2 + c1)
        value *= max(np.mean(lum * cs) if j == 4 else np.mean(cs), 1e-6) ** w
        a = 0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2])
        b = 0.25 * (b[0::2, 0::2] + b[1::2, 0::2] + b[0::2, 1::2] + b[1::2, 1::2])
    return value


def test_ms_ssim_matches_independent_reference():
    rng = np.random.default_rng(3)
    a = np.clip(gaussian_filter(rng.uniform(0, 255, (192, 224)), 2) * 3 - 255, 0, 255).round()
    b = _noisy(a, 8, seed=4)
    assert float(ms_ssim(a, b)) == pytest.approx(_ref_ms_ssim(a, b), abs=1e-4)
    assert float(ms_ssim(a, a)) == pytest.approx(1.0, abs=1e-6)


def test_ms_ssim_on_qcif_luma_and_batching(clip):
    y = np.asarray(clip.y)  # 176x144: coarsest scale 11x9, window truncated to 9
    d = _noisy(y, 6)
    batched = np.asarray(ms_ssim(y, d))
    single = [float(ms_ssim(y[t], d[t])) for t in range(3)]
    np.testing.assert_allclose(batched, single, rtol=1e-6)
    assert np.all((batched > 0.5) & (batched < 1.0))
    assert float(ms_ssim(y[0], _noisy(y[0], 15))) < batched[0]


# ------------------------------------------------------------------------------------------ DLM


def test_dwt_of_a_constant_has_no_detail():
    ll, h, v, d = dwt2(jnp.full((16, 20), 7.0))
    np.testing.assert_allclose(ll, 14.0, rtol=1e-5)  # db2 low-pass sums to sqrt(2) per axis
    for band in (h, v, d):
        np.testing.assert_allclose(band, 0.0, atol=1e-5)
    assert ll.shape == (8, 10)


def test_dlm_orders_distortions(clip):
    y = np.asarray(clip.y[0], np.float32)
    assert float(dlm(y, y)) == pytest.approx(1.0, abs=1e-6)
    blur1 = gaussian_filter(y, 0.7)
    blur2 = gaussian_filter(y, 1.5)
    s1, s2 = float(dlm(y, blur1)), float(dlm(y, blur2))
    assert 1.0 > s1 > s2 > 0.3
    # samples scaled with their peak (10-bit-like, [0, 1] floats) score the same: CSF thresholds are in 8-bit units
    assert float(dlm(y * 4, blur1 * 4, peak=1020.0)) == pytest.approx(s1, abs=1e-4)
    assert float(dlm(y / 255, blur1 / 255, peak=1.0)) == pytest.approx(s1, abs=1e-4)


def test_dlm_enhancement_gain_limit(clip):
    """Sharpening scores above 1 as evaluated; a gain limit of 1 (VMAF NEG style) gives it no credit,
    never raises a score, and barely moves one of a blurred picture (a few coefficients still grow)."""
    y = np.asarray(clip.y[0], np.float32)
    sharp = np.clip(y + 1.5 * (y - gaussian_filter(y, 1.0)), 0, 255)
    blur = gaussian_filter(y, 0.7)
    assert float(dlm(y, sharp)) > 1.0
    assert float(dlm(y, sharp, enhancement_gain_limit=1.0)) <= 1.0
    assert float(dlm(y, sharp, enhancement_gain_limit=100.0)) == pytest.approx(float(dlm(y, sharp)), abs=1e-3)
    limited, plain = float(dlm(y, blur, enhancement_gain_limit=1.0)), float(dlm(y, blur))
    assert plain - 0.005 < limited <= plain
    with pytest.raises(InputError, match="gain limit"):
        dlm(y, blur, enhancement_gain_limit=0.5)


# ------------------------------------------------------------------------------------ gradients


@pytest.mark.parametrize("fn", [differentiable.ssim, differentiable.ms_ssim, differentiable.dlm],
                         ids=["ssim", "ms_ssim", "dlm"])
def test_gradients_are_finite_and_non_zero(clip, fn):
    ref = jnp.asarray(np.asarray(clip.y[:2], np.float32) / 255)
    dist = jnp.clip(ref + 0.03 * jax.random.normal(jax.random.PRNGKey(0), ref.shape), 0, 1)
    g = jax.grad(lambda d: jnp.sum(fn(ref, d)))(dist)
    assert g.shape == ref.shape
    assert bool(jnp.all(jnp.isfinite(g)))
    assert float(jnp.max(jnp.abs(g))) > 0


def test_loss_side_metrics_accept_small_patches():
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.uniform(0, 1, (2, 16, 16)), jnp.float32)
    for fn in (differentiable.ssim, differentiable.ms_ssim, differentiable.dlm):
        out = fn(a, a)
        assert out.shape == (2,) and np.allclose(out, 1.0, atol=1e-5)


# ------------------------------------------------------------------------------- complexity, VMAF


def test_complexity_counts_conv_and_dense_macs():
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.conv = nnx.Conv(3, 8, (3, 3), rngs=rngs)
            self.dense = nnx.Linear(8, 4, rngs=rngs)

        def __call__(self, x):
            return self.dense(jax.nn.relu(self.conv(x)))

    net = Net(nnx.Rngs(0))
    c = complexity.model_complexity(net, jnp.zeros((1, 16, 24, 3)))
    assert c.params == 3 * 3 * 3 * 8 + 8 + 8 * 4 + 4
    assert c.macs == 16 * 24 * (8 * 3 * 3 * 3 + 4 * 8)
    assert c.kmac_per_pixel == pytest.approx((216 + 32) / 1000)
    assert complexity.time_ratio(3.0, 2.0) == "150%"


def test_vmaf_is_unavailable_not_invented(clip, monkeypatch):
    monkeypatch.setenv("JAXCODEC_FFMPEG", "/nonexistent/ffmpeg")
    vmaf.find_ffmpeg_with_libvmaf.cache_clear()
    try:
        assert not vmaf.vmaf_available()
        assert vmaf.vmaf(clip, clip) is None
    finally:
        vmaf.find_ffmpeg_with_libvmaf.cache_clear()
