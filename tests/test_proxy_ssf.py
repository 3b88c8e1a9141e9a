"""The scale-space-flow proxy (proxy/ssf.py): pipeline, gradients, codec round trip, errors."""

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxcodec.errors import BitstreamError, InputError, ModelError
from jaxcodec.frame import make_frame
from jaxcodec.io import read_video
from proxy.ssf import (
    ModelConfig,
    SSFModel,
    bilinear_sample,
    build_tables,
    compress,
    decompress,
    forward,
    frames_to_tensor,
    load_model,
    save_model,
    scale_space_warp,
    tensor_to_planes,
    Calibration,
)

MODELS = Path(__file__).resolve().parent.parent / "models"
TINY = ModelConfig(intra_channels=8, intra_latent=8, flow_channels=8, flow_latent=8, residual_channels=8,
                   residual_latent=8, hyper_channels=8, hyper_latent=4)


@pytest.fixture(scope="module")
def tiny():
    return SSFModel(TINY, rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def carphone():
    return read_video("carphone", max_frames=5).frames


def test_tensor_layout_round_trip(carphone):
    x = frames_to_tensor(carphone.y, carphone.u, carphone.v, 255)
    assert x.shape == (5, 72, 88, 6)
    y, u, v = tensor_to_planes(x)
    np.testing.assert_array_equal(np.asarray(y * 255).round(), carphone.y)
    np.testing.assert_array_equal(np.asarray(u * 255).round(), carphone.u)


def test_warp_matches_integer_shift_reference():
    """Level 0 with an integer flow is a plain shift (edge-clamped), as the reference gather says."""
    rng = np.random.default_rng(0)
    ref = jnp.asarray(rng.uniform(size=(2, 16, 16, 3)), jnp.float32)
    flow = jnp.zeros((2, 16, 16, 3)).at[..., 0].set(2.0).at[..., 1].set(-1.0)
    out = np.asarray(scale_space_warp(ref, flow, levels=4, sigma0=1.0))
    yy, xx = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    expect = np.asarray(ref)[:, np.clip(yy - 1, 0, 15), np.clip(xx + 2, 0, 15)]
    np.testing.assert_allclose(out, expect, atol=1e-6)
    # scale 3 (most blurred level) of a constant is the constant; half-way levels interpolate
    const = jnp.full((1, 8, 8, 1), 0.25)
    blur = scale_space_warp(const, jnp.zeros((1, 8, 8, 3)).at[..., 2].set(1.5), levels=4, sigma0=1.0)
    np.testing.assert_allclose(np.asarray(blur), 0.25, atol=1e-6)
    half = np.asarray(bilinear_sample(ref, jnp.full((2, 16, 16), 3.5), jnp.full((2, 16, 16), 4.0)))
    np.testing.assert_allclose(half, 0.5 * (np.asarray(ref)[:, 4:5, 3:4] + np.asarray(ref)[:, 4:5, 4:5]) * np.ones((1, 16, 16, 1)), atol=1e-6)


def test_gradients_of_recon_and_rate_wrt_input(tiny):
    rng = np.random.default_rng(0)
    frames = jnp.asarray(rng.uniform(size=(3, 1, 32, 32, 6)), jnp.float32)

    def sums(x):
        out = forward(tiny, x, jnp.array([30]))
        return out.recon.sum(), out.bits.sum()

    @jax.jit
    def gradients(x):  # of the reconstruction's sum and the rate's: one compile for both
        _, vjp = jax.vjp(sums, x)
        return vjp((jnp.float32(1), jnp.float32(0)))[0], vjp((jnp.float32(0), jnp.float32(1)))[0]

    for g in gradients(frames):
        g = np.asarray(g)
        assert np.all(np.isfinite(g))
        assert np.abs(g).sum() > 0
        assert np.abs(g[1:]).sum() > 0  # inter frames receive gradient too


@pytest.mark.parametrize("refine", [False, True])
def test_compress_decompress_round_trip(tiny, carphone, refine):
    plain = tiny
    if refine:  # the same parameters, intra frames refined by the residual autoencoder
        tiny = SSFModel(dataclasses.replace(TINY, intra_refine=True), rngs=nnx.Rngs(0))
        nnx.update(tiny, nnx.state(plain))
    tables = build_tables(tiny)
    c1 = compress(tiny, tables, carphone, qp=27, gop=4)
    if refine:  # the refinement's latents are in the stream: the intra frame costs more
        c0 = compress(plain, tables, carphone, qp=27, gop=4)
        assert c1.bits_per_frame[0] > c0.bits_per_frame[0]
    c2 = compress(tiny, tables, carphone, qp=27, gop=4)
    assert c1.bitstream == c2.bitstream  # identical bytes across runs
    symbols = []
    out = decompress(tiny, tables, c1.bitstream, symbols_out=symbols)
    for enc, dec in zip(c1.symbols, symbols):  # identical latents
        assert all(np.array_equal(a, b) for a, b in zip(enc, dec))
    np.testing.assert_array_equal(out.y, c1.recon.y)  # identical reconstruction
    np.testing.assert_array_equal(out.v, c1.recon.v)
    assert out.y.shape == carphone.y.shape
    with pytest.raises(BitstreamError):
        decompress(tiny, tables, c1.bitstream[:-3])


@pytest.mark.parametrize("name", [pytest.param("proxy_x264_small", marks=pytest.mark.slow), "proxy_x264_refined"])
def test_rate_estimate_matches_coded_size_on_real_clip(carphone, name):
    """The proxy's own rate (float likelihoods) is within 2% of the real coded size."""
    model, tables, _, _ = load_model(MODELS / name)
    for qp in (22, 42):
        c = compress(model, tables, carphone, qp=qp, gop=4)
        coded, estimated = c.bits_per_frame.sum(), c.model_bits.sum()
        assert abs(estimated - coded) / coded < 0.02, (qp, estimated, coded)


def test_frames_smaller_than_downsampling_factor(tiny):
    small = make_frame(np.zeros((2, 16, 96), np.uint8), np.zeros((2, 8, 48), np.uint8), np.zeros((2, 8, 48), np.uint8))
    with pytest.raises(InputError, match="downsampling factor 32"):
        compress(tiny, build_tables(tiny), small, qp=30)
    with pytest.raises(InputError, match="downsampling factor"):
        forward(tiny, jnp.zeros((2, 1, 8, 48, 6)), jnp.array([30]))


def test_checkpoint_from_another_config(tmp_path, tiny):
    save_model(tmp_path / "m", tiny, Calibration(1.0, 2.0, 3.0, 4.0))
    model, _, cal, _ = load_model(tmp_path / "m", TINY)
    assert cal == Calibration(1.0, 2.0, 3.0, 4.0)
    a = jax.tree.leaves(nnx.state(model, nnx.Param))
    b = jax.tree.leaves(nnx.state(tiny, nnx.Param))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ModelError, match="intra_latent: checkpoint 8 vs config 48"):
        load_model(tmp_path / "m", ModelConfig())
    with pytest.raises(ModelError, match="not a proxy model"):
        load_model(tmp_path)


def test_clip_estimate_compiles_once_per_shape(tiny, carphone):
    from proxy.ssf import _estimate_gop, estimate_clip

    before = _estimate_gop._cache_size()
    a = estimate_clip(tiny, carphone[:4], qp=22)
    b = estimate_clip(tiny, carphone[:4], qp=42)
    assert _estimate_gop._cache_size() == before + 1  # QP is traced, not static
    assert a.bits_hyp.shape == (4,) and np.all(np.isfinite(a.bits_hyp))
    assert b.bits_hyp.sum() < a.bits_hyp.sum()  # coarser quantizer at QP 42 (step-size law)
