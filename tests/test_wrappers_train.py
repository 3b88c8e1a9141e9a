"""Wrapper training (paper 004 Algorithm 1): loss goes down on a fixed tiny batch, exact resume, eq. 8."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from proxy.coders import ForwardCoder
from jaxcodec.errors import ConfigError
from jaxcodec.io.synthetic import moving_textures
from proxy.ssf import Calibration, ModelConfig, SSFModel, code_gop, save_model
from proxy.targets import resolve_target
from wrappers.train import load_train_config, stop_gradient_input, train

TINY_PROXY = ModelConfig(intra_channels=8, intra_latent=8, flow_channels=8, flow_latent=8, residual_channels=8,
                         residual_latent=8, hyper_channels=8, hyper_latent=8, scale_levels=2, qp_min=22, qp_max=42)


@pytest.fixture(scope="module")
def proxy_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("proxy") / "model"
    save_model(path, SSFModel(TINY_PROXY, rngs=nnx.Rngs(0)), Calibration(), extra={"target": "x264"})
    return path


def _config(**kw):
    # One 32x32 clip of exactly 2 GOPs and one QP: every step sees the same batch.
    base = dict(pre_channels=8, pre_blocks=1, post_channels=8, post_blocks=1, learning_rate=3e-4,
                proxy_learning_rate=3e-3, lambda_=0.0, qp_min=30, qp_max=30, steps=6, batch_size=1, patch=32, gop=2,
                clips=("generated",), checkpoint_every=3, image_every=3)
    base.update(kw)
    return load_train_config("wrappers_small", **base)


@pytest.fixture(scope="module")
def pool():
    return moving_textures(count=1, frames=4, size=32)


FULL_RUN = dict(pre=False, post_qp_input=True)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, proxy_dir, pool):
    out = tmp_path_factory.mktemp("run")
    # Post-only: the codec sees the same samples every step, so eq. 4 is a fixed smooth objective in O.
    # O reads the QP (post_qp_input), so the run also covers the QP plane's path through the steps.
    result = train(_config(**FULL_RUN), target=resolve_target("x264", gop=2), target_name="x264", proxy_path=proxy_dir,
                   out_dir=out, pool=pool, progress=False)
    return out, result


def test_a_few_steps_reduce_the_loss(full_run):
    out, result = full_run
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 7))
    totals = [r["total"] for r in rows]
    assert max(totals[-2:]) < totals[0], totals  # eq. 4 (rate weight 0 here: the proxy's rate is being refit)
    assert rows[-1]["proxy_mse"] < rows[0]["proxy_mse"]  # iterative refinement pulls M(I_P) towards I_C
    assert {"proxy_mse", "proxy_bpp", "calib_mse", "codec_s"} <= rows[0].keys()  # iterative update ran
    assert (out / "images" / "step_0000006.png").is_file()
    assert json.loads((result.model_dir / "meta.json").read_text())["post"]["qp_input"] is True


@pytest.mark.slow  # two more runs (their compiles dominate): ~3 minutes on a busy 2-core machine
def test_resume_is_exact(full_run, tmp_path, proxy_dir, pool):
    from wrappers.train import load_wrapper

    out, result = full_run
    kw = dict(target=resolve_target("x264", gop=2), target_name="x264", proxy_path=proxy_dir, out_dir=tmp_path,
              pool=pool, progress=False)
    assert train(_config(**FULL_RUN), stop_at=3, **kw).model_dir is None
    resumed = train(_config(**FULL_RUN), **kw)
    a = nnx.to_pure_dict(nnx.state(load_wrapper(result.model_dir)[0], nnx.Param))
    b = nnx.to_pure_dict(nnx.state(load_wrapper(resumed.model_dir)[0], nnx.Param))
    jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 7))


def _identity(y, key):
    del key
    return y


def test_stop_gradient_passes_codec_forward_and_proxy_gradient_backward(proxy_dir):
    """Eq. 8 on the real (tiny) proxy: value of I_C forward; d/dI_P equals J_M^T grad (finite differences)."""
    model = SSFModel(TINY_PROXY, rngs=nnx.Rngs(1))
    graph, params = nnx.split(model)
    rng = np.random.default_rng(0)
    i_p = jnp.asarray(rng.uniform(0.2, 0.8, (2, 1, 16, 16, 6)), jnp.float32)
    i_c = jnp.asarray(rng.uniform(0, 1, i_p.shape), jnp.float32)
    weight = jnp.asarray(rng.normal(size=i_p.shape), jnp.float32)
    qp = jnp.asarray([8])

    def proxy(x):  # quantizers replaced by the identity: smooth in x, so finite differences are meaningful
        coder = ForwardCoder(rate_surrogate=_identity, synthesis_surrogate=_identity, key=jax.random.key(3))
        return code_gop(nnx.merge(graph, params), x, qp, coder)[0]

    def loss(x):
        return jnp.sum(weight * stop_gradient_input(i_c, proxy(x)) ** 2)

    np.testing.assert_allclose(stop_gradient_input(i_c, proxy(i_p)), i_c, atol=1e-6)  # forward: I_C
    grad = jax.grad(loss)(i_p)
    # Eq. 7: the gradient is J_M(I_P)^T applied to dL/dO_in evaluated at O_in = I_C.
    _, vjp = jax.vjp(proxy, i_p)
    np.testing.assert_allclose(grad, vjp(2 * weight * i_c)[0], rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(grad).max()) > 0
    # Finite differences along a random direction: L(I_C + M(x + e v) - M(x)) in float64.
    with jax.enable_x64():
        v = jnp.asarray(rng.normal(size=i_p.shape))
        x64, c64, w64 = (jnp.asarray(a, jnp.float64) for a in (i_p, i_c, weight))
        p64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a, params)

        def proxy64(x):
            coder = ForwardCoder(rate_surrogate=_identity, synthesis_surrogate=_identity, key=jax.random.key(3))
            return code_gop(nnx.merge(graph, p64), x, qp, coder)[0]

        base = proxy64(x64)
        eps = 1e-4
        numeric = (jnp.sum(w64 * (c64 + proxy64(x64 + eps * v) - base) ** 2)
                   - jnp.sum(w64 * (c64 + proxy64(x64 - eps * v) - base) ** 2)) / (2 * eps)
    assert float(numeric) == pytest.approx(float(jnp.sum(grad * v.astype(jnp.float32))), rel=2e-2)


def test_config_refuses_held_out_clip_and_empty_wrapper():
    from jaxcodec.errors import ConfigError

    with pytest.raises(ConfigError, match="held-out"):
        _config(clips=("carphone", "bigbuckbunny"))
    with pytest.raises(ConfigError, match="pre / post"):
        _config(pre=False, post=False)
    # whole-frame targets are coded once: only possible when P does not change the codec input
    with pytest.raises(ConfigError, match="codec_on_full_frames"):
        _config(pre=True, codec_on_full_frames=True)
    with pytest.raises(ConfigError, match="codec_on_full_frames"):
        _config(pre=False, iterative_update=True, codec_on_full_frames=True)
    with pytest.raises(ConfigError, match="chroma"):
        _config(chroma_weight=-1.0)
    with pytest.raises(ConfigError, match="lr_schedule"):
        _config(lr_schedule="step")
    with pytest.raises(ConfigError, match="lr_final"):
        _config(lr_schedule="cosine", lr_final=2.0)


def test_cosine_schedule_warms_up_peaks_and_decays_to_its_floor():
    assert _config().wrapper_learning_rate() == pytest.approx(3e-4)  # "constant" keeps older runs as they were
    lr = _config(lr_schedule="cosine", lr_final=0.01, steps=200).wrapper_learning_rate()
    values = np.array([float(lr(s)) for s in range(201)])
    assert values[0] == 0.0 and values[10] == pytest.approx(3e-4)  # 5 % warm-up
    assert np.all(np.diff(values[10:]) <= 1e-12)
    assert values[200] == pytest.approx(3e-6)


def test_full_frame_batches_are_crops_of_whole_frame_decodes():
    """codec_on_full_frames: the target codes the whole clip once per QP; a batch is a crop of
    that decode, with the source frames before it."""
    from wrappers.deploy import get_codec
    from wrappers.train import full_frame_targets, sample_full_frame_batch

    gop = 2
    clips = [moving_textures(count=1, frames=8, size=64, seed=4)[0]]
    # The deployed codec reports each decoded picture's QP: the IDRs at 0 and 4 are 3 finer.
    targets = full_frame_targets(get_codec("x264", gop=4), clips, [30, 31])
    assert set(targets) == {(0, 30), (0, 31)}
    assert not np.array_equal(targets[0, 30][0].y, targets[0, 31][0].y)
    np.testing.assert_array_equal(targets[0, 30][2], [27, 30, 30, 30, 27, 30, 30, 30])
    nominal = full_frame_targets(resolve_target("x264", gop=4), clips, [30])  # reports none: the stream QP
    np.testing.assert_array_equal(nominal[0, 30][2], np.full(8, 30))
    seen = set()
    for step in range(8):
        pb, tb, frame_qp, aligned = sample_full_frame_batch(clips, targets, seed=0, step=step, batch=2, patch=32,
                                                            gop=gop, qp_range=(30, 31))
        assert aligned is None
        assert frame_qp.shape == (gop, 2) and frame_qp.dtype == np.float32
        assert pb.frames.y.shape == (2, 2 * gop, 32, 32) and tb.recon.y.shape == (2, gop, 32, 32)
        for b in range(2):
            qp = int(tb.qp[b])
            decoded = targets[0, qp][0]
            src = np.asarray(clips[0].y)
            hits = [(t, y, x) for t in range(gop, 8 - gop + 1) for y in range(0, 33, 2) for x in range(0, 33, 2)
                    if np.array_equal(src[t:t + gop, y:y + 32, x:x + 32], tb.source.y[b])
                    and np.array_equal(np.asarray(decoded.y)[t:t + gop, y:y + 32, x:x + 32], tb.recon.y[b])
                    and np.array_equal(src[t - gop:t, y:y + 32, x:x + 32], pb.frames.y[b, :gop])]
            assert hits, (step, b)
            np.testing.assert_array_equal(frame_qp[:, b], targets[0, qp][2][hits[0][0]:hits[0][0] + gop])
            seen.add(qp)
    assert seen == {30, 31}
    # augment_symmetries: the first sample (same clip, QP and crop, drawn before the symmetry)
    # is one symmetry of the plain one, the same for source, source history and decode, all planes.
    from jaxcodec.nn.ensemble import symmetry

    turned = set()
    for step in range(8):
        plain = sample_full_frame_batch(clips, targets, seed=0, step=step, batch=1, patch=32, gop=gop,
                                        qp_range=(30, 31))
        aug = sample_full_frame_batch(clips, targets, seed=0, step=step, batch=1, patch=32, gop=gop,
                                      qp_range=(30, 31), symmetries=True)
        pairs = [(plain[0].frames, aug[0].frames), (plain[1].recon, aug[1].recon), (plain[1].source, aug[1].source)]
        ks = [k for k in range(8) if all(np.array_equal(symmetry(np.asarray(getattr(a, c)), k, axes=(2, 3)),
                                                        np.asarray(getattr(b, c))) for a, b in pairs for c in "yuv")]
        assert ks, step
        turned.add(ks[0])
    assert len(turned) > 1


def test_normalised_distortion_weighs_each_image_by_the_baseline():
    """``normalise_distortion``: per-image eq. 4 over the baseline's, rescaled to eq. 4's size;
    the reported distortion is unchanged, and the baseline itself scores exactly eq. 4."""
    from wrappers.loss import LossWeights, distortion_terms, wrapper_loss

    rng = np.random.default_rng(1)
    src = jnp.asarray(rng.uniform(0, 1, (3, 2, 16, 16, 6)), jnp.float32)  # (gop, batch, ...)
    noise = jnp.asarray(rng.normal(0, 1, src.shape), jnp.float32) * jnp.asarray([0.01, 0.1])[None, :, None, None, None]
    codec = jnp.clip(src + noise, 0, 1)  # batch entry 0 clean, entry 1 noisy
    out = jnp.clip(src + 0.5 * noise + 0.01, 0, 1)
    d, *_ = distortion_terms(src, out)
    b, *_ = distortion_terms(src, codec)
    assert d.shape == b.shape == (6,) and float(b[1::2].min()) > 5 * float(b[::2].max())  # (gop, batch) flattened
    plain = wrapper_loss(src, out, jnp.zeros(()))
    norm = wrapper_loss(src, out, jnp.zeros(()), baseline_distortion=b)
    assert float(plain.distortion) == pytest.approx(float(jnp.mean(d)), rel=1e-6) == float(norm.distortion)
    assert float(norm.total) == pytest.approx(float(jnp.mean(d / b) * jnp.mean(b)), rel=1e-5)
    assert float(wrapper_loss(src, codec, jnp.zeros(()), baseline_distortion=b).total) == pytest.approx(
        float(jnp.mean(b)), rel=1e-5)
    # the clean images' share of the gradient grows (L1 only: the same weighting, a fraction of the compile time)
    l1 = LossWeights(ssim=0.0, ms_ssim=0.0, dlm=0.0)
    g_plain = jax.grad(lambda o: wrapper_loss(src, o, jnp.zeros(()), l1).total)(out)
    b1 = distortion_terms(src, codec, l1)[0]
    g_norm = jax.grad(lambda o: wrapper_loss(src, o, jnp.zeros(()), l1, baseline_distortion=b1).total)(out)
    share = lambda g: float(jnp.abs(g[:, 0]).sum() / jnp.abs(g).sum())
    assert share(g_norm) > share(g_plain) + 0.3


def test_normalised_terms_weigh_each_term_of_each_image_by_its_baseline():
    """``normalise_terms``: sum_k w_k mean_i(t_ki / b_ki) mean_i(b_ki) over L1 and the 1 - score
    losses, computed here by hand from the terms; the baseline itself scores exactly eq. 4, and
    the clean image's share of the SSIM gradient grows as with the whole-sum normalisation."""
    from wrappers.loss import LossWeights, distortion_terms, wrapper_loss

    rng = np.random.default_rng(2)
    src = jnp.asarray(rng.uniform(0, 1, (2, 16, 16, 6)), jnp.float32)
    noise = jnp.asarray(rng.normal(0, 1, src.shape), jnp.float32) * jnp.asarray([0.01, 0.1])[:, None, None, None]
    codec = jnp.clip(src + noise, 0, 1)
    out = jnp.clip(src + 0.5 * noise + 0.01, 0, 1)
    w = LossWeights(l1=1.0, ssim=0.5, ms_ssim=1.0, dlm=0.2)
    d, *t = distortion_terms(src, out, w)
    b, *bt = distortion_terms(src, codec, w)
    losses = lambda x: (x[0], 1 - x[1], 1 - x[2], 1 - x[3])
    expected = sum(k * float(jnp.mean(a / c) * jnp.mean(c))
                   for k, a, c in zip((w.l1, w.ssim, w.ms_ssim, w.dlm), losses(t), losses(bt)))
    norm = wrapper_loss(src, out, jnp.zeros(()), w, baseline_terms=tuple(bt))
    assert float(norm.total) == pytest.approx(expected, rel=1e-5)
    assert float(norm.distortion) == pytest.approx(float(jnp.mean(d)), rel=1e-6)  # reported: plain eq. 4
    assert float(wrapper_loss(src, codec, jnp.zeros(()), w, baseline_terms=tuple(bt)).total) == pytest.approx(
        float(jnp.mean(b)), rel=1e-5)
    with pytest.raises(ValueError):
        wrapper_loss(src, out, jnp.zeros(()), w, baseline_distortion=b, baseline_terms=tuple(bt))
    ssim_only = LossWeights(l1=0.0, ssim=1.0, ms_ssim=0.0, dlm=0.0)
    bs = distortion_terms(src, codec, ssim_only)[1:]
    g_plain = jax.grad(lambda o: wrapper_loss(src, o, jnp.zeros(()), ssim_only).total)(out)
    g_norm = jax.grad(lambda o: wrapper_loss(src, o, jnp.zeros(()), ssim_only, baseline_terms=bs).total)(out)
    share = lambda g: float(jnp.abs(g[0]).sum() / jnp.abs(g).sum())
    assert share(g_norm) > share(g_plain) + 0.2
    with pytest.raises(ConfigError):
        _config(pre=False, normalise_distortion=True, normalise_terms=True)


def test_loss_margin_scores_the_interior_only():
    """``margin``: eq. 4 and its baseline over each image's interior; O's output in the margin
    gets no gradient; the training config refuses margins it cannot honour."""
    from wrappers.loss import LossWeights, distortion_terms, interior, wrapper_loss

    rng = np.random.default_rng(5)
    src = jnp.asarray(rng.uniform(0, 1, (2, 32, 32, 6)), jnp.float32)
    out = jnp.clip(src + jnp.asarray(rng.normal(0, 0.05, src.shape), jnp.float32), 0, 1)
    w = LossWeights(l1=1.0, ssim=0.5, ms_ssim=0.0, dlm=0.0)  # the margin does not depend on the scores: two suffice
    inner = interior(src, 16), interior(out, 16)
    assert inner[0].shape == (2, 16, 16, 6)
    np.testing.assert_array_equal(inner[0], src[:, 8:24, 8:24])
    bt = distortion_terms(src, out * 0.9, w, margin=16)[1:]
    np.testing.assert_allclose(bt[0], distortion_terms(inner[0], inner[1] * 0.9, w)[1], rtol=1e-6)
    got = wrapper_loss(src, out, jnp.zeros(()), w, margin=16, baseline_terms=bt)
    want = wrapper_loss(*inner, jnp.zeros(()), w, baseline_terms=bt)
    assert float(got.total) == pytest.approx(float(want.total), rel=1e-6)
    g = jax.grad(lambda o: wrapper_loss(src, o, jnp.zeros(()), w, margin=16).total)(out)
    ring = np.ones(g.shape[1:3], bool)
    ring[8:24, 8:24] = False
    assert not np.asarray(g)[:, ring].any() and np.asarray(g)[:, ~ring].any()
    with pytest.raises(ValueError):
        interior(src, 3)
    for bad in ({"loss_margin": 16}, {"loss_margin": 6, "codec_on_full_frames": True, "patch": 32},
                {"loss_margin": 3, "codec_on_full_frames": True}):
        with pytest.raises(ConfigError):
            _config(pre=False, iterative_update=False, **bad)
    assert _config(pre=False, iterative_update=False, codec_on_full_frames=True, patch=64, loss_margin=16).loss_margin == 16


def test_loss_scores_are_the_library_metrics():
    """wrappers.loss defines no metric of its own: its SSIM / MS-SSIM / DLM terms are
    jaxcodec.metrics.differentiable's over Y, Cb, Cr weighted 4:1:1, and eq. 4 adds them up."""
    from jaxcodec.metrics import differentiable
    from proxy.ssf import tensor_to_planes
    from wrappers.loss import LossWeights, metric_functions, wrapper_loss

    assert metric_functions() == (differentiable.ssim, differentiable.ms_ssim, differentiable.dlm)
    rng = np.random.default_rng(0)
    src = jnp.asarray(rng.uniform(0, 1, (2, 16, 16, 6)), jnp.float32)
    out = jnp.clip(src + jnp.asarray(rng.normal(0, 0.05, src.shape), jnp.float32), 0, 1)
    terms = wrapper_loss(src, out, jnp.asarray([0.3, 0.5]))
    weights = np.array([4.0, 1.0, 1.0]) / 6
    for name, fn in (("ssim", differentiable.ssim), ("ms_ssim", differentiable.ms_ssim), ("dlm", differentiable.dlm)):
        expected = sum(w * float(jnp.mean(fn(a, b))) for w, a, b in zip(weights, tensor_to_planes(src), tensor_to_planes(out)))
        assert float(getattr(terms, name)) == pytest.approx(expected, rel=1e-5), name
    w = LossWeights()
    d = w.l1 * terms.l1 + w.ssim * (1 - terms.ssim) + w.ms_ssim * (1 - terms.ms_ssim) + w.dlm * (1 - terms.dlm)
    assert float(terms.distortion) == pytest.approx(float(d), rel=1e-6)
    assert float(terms.total) == pytest.approx(float(d) + w.lambda_ * 0.4, rel=1e-6)
    # chroma weight: Y : Cb : Cr = 4 : c : c, normalised, in every term
    heavy = wrapper_loss(src, out, jnp.asarray([0.3, 0.5]), LossWeights(chroma=3.0))
    weights = np.array([4.0, 3.0, 3.0]) / 10
    expected = sum(w * float(jnp.mean(differentiable.ssim(a, b)))
                   for w, a, b in zip(weights, tensor_to_planes(src), tensor_to_planes(out)))
    assert float(heavy.ssim) == pytest.approx(expected, rel=1e-5)
    l1 = sum(w * float(jnp.mean(jnp.abs(a - b))) for w, a, b in zip(weights, tensor_to_planes(src), tensor_to_planes(out)))
    assert float(heavy.l1) == pytest.approx(l1, rel=1e-5)


def test_post_only_step_without_the_proxy_updates_o_alike(proxy_dir):
    """Post only with eq. 8, O's input is I_C's value and lambda * R_M does not depend on O: the
    proxy-free wrapper step (the default there) moves O exactly as the step through the proxy."""
    from wrappers.train import init_state, make_steps

    # L1 and SSIM only: the two steps differ in how O's input is made, not in the scores, and the
    # MS-SSIM and DLM gradients would double the compile time of both steps.
    cfg = _config(pre=False, post_qp_input=True, lambda_=0.1, normalise_distortion=True, ms_ssim=0.0, dlm=0.0)
    state, wgraph, pgraph, opts, _, _ = init_state(cfg, proxy_dir)
    # A non-zero tail, so that every layer of O gets a gradient.
    net = nnx.merge(wgraph, state.wrapper)
    net.post.tail.kernel[...] = jax.random.normal(jax.random.key(1), net.post.tail.kernel.shape) * 0.05
    state = state._replace(wrapper=nnx.split(net, nnx.Param)[1])
    state = state._replace(opt_wrapper=opts[0].init(state.wrapper))
    rng = np.random.default_rng(0)
    source = jnp.asarray(rng.random((2, 1, 16, 16, 6)), jnp.float32)
    i_c = jnp.clip(source + jnp.asarray(rng.normal(0, 0.03, source.shape), jnp.float32), 0, 1)
    args = (state, source, i_c, jnp.asarray([8]), jnp.asarray([[30.0]]), jax.random.key(2), jnp.full((2, 1), 900.0))
    fast, terms_fast, out_fast = make_steps(cfg, wgraph, pgraph, opts).wrapper(*args)
    ref, terms_ref, out_ref = make_steps(cfg, wgraph, pgraph, opts, proxy_free=False).wrapper(*args)
    np.testing.assert_allclose(out_fast, out_ref, atol=1e-6)
    np.testing.assert_allclose(terms_fast["distortion"], terms_ref["distortion"], rtol=1e-6)
    assert float(terms_fast["rate_bpp"]) == pytest.approx(900.0 / (4 * 16 * 16))  # the real codec's rate
    moved = 0.0
    for a, b, c in zip(jax.tree.leaves(fast.wrapper), jax.tree.leaves(ref.wrapper), jax.tree.leaves(state.wrapper)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
        moved = max(moved, float(jnp.max(jnp.abs(a - c))))
    assert moved > 0
    with pytest.raises(ConfigError, match="proxy-free"):
        make_steps(_config(), wgraph, pgraph, opts, proxy_free=True)


def test_init_from_starts_from_a_saved_wrapper_and_refuses_other_networks(proxy_dir, tmp_path):
    """``init_from`` (fine-tuning) starts P and O at a saved model's parameters; other sizes are one clear error."""
    import dataclasses

    from wrappers.nets import Wrapper
    from wrappers.train import init_state, save_wrapper

    cfg = _config(pre=False, post_qp_input=True)
    pre, post = cfg.net_configs()
    saved = Wrapper(pre, post, rngs=nnx.Rngs(7))
    saved.post.tail.kernel[...] = jax.random.normal(jax.random.key(3), saved.post.tail.kernel.shape)
    save_wrapper(tmp_path / "m", saved, meta={"pre": dataclasses.asdict(pre), "post": dataclasses.asdict(post)})
    state = init_state(_config(pre=False, post_qp_input=True, init_from=str(tmp_path / "m")), proxy_dir)[0]
    want = nnx.to_pure_dict(nnx.state(saved, nnx.Param))
    jax.tree_util.tree_map(np.testing.assert_array_equal, nnx.to_pure_dict(state.wrapper), want)
    fresh = nnx.to_pure_dict(init_state(cfg, proxy_dir)[0].wrapper)
    assert not np.array_equal(fresh["post"]["tail"]["kernel"], want["post"]["tail"]["kernel"])
    # A meta.json from before a NetConfig field existed reads as that field's default.
    old = {k: v for k, v in dataclasses.asdict(post).items() if k != "zero_mean"}
    save_wrapper(tmp_path / "old", saved, meta={"pre": dataclasses.asdict(pre), "post": old})
    init_state(_config(pre=False, post_qp_input=True, init_from=str(tmp_path / "old")), proxy_dir)
    with pytest.raises(ConfigError, match="post.channels: checkpoint 8 vs config 16"):
        init_state(_config(pre=False, post_qp_input=True, post_channels=16, init_from=str(tmp_path / "m")), proxy_dir)
    # A residual scaling (`jaxcodec wrap strength`) is a deployment setting: a scaled model may
    # start a run, which trains the network as it is, unscaled.
    scaled = {**dataclasses.asdict(post), "strength": 1.3}
    save_wrapper(tmp_path / "scaled", saved, meta={"pre": dataclasses.asdict(pre), "post": scaled})
    state, wgraph = init_state(_config(pre=False, post_qp_input=True, init_from=str(tmp_path / "scaled")), proxy_dir)[:2]
    assert nnx.merge(wgraph, state.wrapper).post.strength == 1.0
    jax.tree_util.tree_map(np.testing.assert_array_equal, nnx.to_pure_dict(state.wrapper), want)
    # A stream-QP O may start a frame-QP one (the same network, fed each frame's QP); not back.
    full = dict(pre=False, post_qp_input=True, iterative_update=False, codec_on_full_frames=True)
    fcfg = _config(**full, post_frame_qp=True, init_from=str(tmp_path / "m"))
    state, wgraph = init_state(fcfg, proxy_dir)[:2]
    assert nnx.merge(wgraph, state.wrapper).post.frame_qp
    jax.tree_util.tree_map(np.testing.assert_array_equal, nnx.to_pure_dict(state.wrapper), want)
    save_wrapper(tmp_path / "fq", nnx.merge(wgraph, state.wrapper),
                 meta={"pre": dataclasses.asdict(pre), "post": dataclasses.asdict(fcfg.net_configs()[1])})
    with pytest.raises(ConfigError, match="post.frame_qp: checkpoint True vs config False"):
        init_state(_config(**full, init_from=str(tmp_path / "fq")), proxy_dir)
    with pytest.raises(ConfigError, match="post_frame_qp needs codec_on_full_frames"):
        _config(pre=False, post_qp_input=True, post_frame_qp=True)
    with pytest.raises(ConfigError, match="frame_qp needs qp_input"):
        _config(pre=False, iterative_update=False, codec_on_full_frames=True, post_frame_qp=True)


def test_qp_range_beyond_the_proxy_is_refused_only_where_the_proxy_runs(proxy_dir):
    from wrappers.train import init_state

    free = dict(pre=False, iterative_update=False, codec_on_full_frames=True, qp_min=18, qp_max=30)
    init_state(_config(**free), proxy_dir)  # post only, eq. 8, no refinement: the proxy never runs
    for runs in (dict(iterative_update=True, codec_on_full_frames=False), dict(stop_gradient=False)):
        with pytest.raises(ConfigError, match="outside the proxy's 22..42"):
            init_state(_config(**{**free, **runs}), proxy_dir)


def test_temporal_o_starts_from_a_single_frame_one_and_trains_on_real_neighbours(proxy_dir, tmp_path):
    """``post_temporal``: init_from a single-frame O grows it (head widened by zero weights, an
    extra block with a zero second convolution: the same output whatever the neighbours), the sampler hands over the decodes around the kept frames
    (clamped at the clip's ends), and a short run moves the neighbour weights off zero and
    saves a temporal model."""
    import dataclasses

    from wrappers.nets import Wrapper, temporal_context
    from wrappers.train import full_frame_targets, init_state, load_wrapper, sample_full_frame_batch, save_wrapper

    full = dict(pre=False, post_qp_input=True, iterative_update=False, codec_on_full_frames=True)
    cfg = _config(**full)
    pre, post = cfg.net_configs()
    saved = Wrapper(pre, post, rngs=nnx.Rngs(7))
    saved.post.tail.kernel[...] = jax.random.normal(jax.random.key(3), saved.post.tail.kernel.shape) * 0.1
    save_wrapper(tmp_path / "m", saved, meta={"pre": dataclasses.asdict(pre), "post": dataclasses.asdict(post)})
    tcfg = _config(**full, post_temporal=1, post_blocks=2, init_from=str(tmp_path / "m"))
    state, wgraph = init_state(tcfg, proxy_dir)[:2]
    widened = nnx.merge(wgraph, state.wrapper).post
    assert widened.temporal == 1 and widened.head.kernel.shape[2] == saved.post.head.kernel.shape[2] + 8
    assert len(widened.blocks) == 2 and len(saved.post.blocks) == 1
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((3, 1, 16, 16, 6)), jnp.float32)
    np.testing.assert_allclose(widened(x[1:2], jnp.float32(30), temporal_context(x, 1)),
                               saved.post(x[1:2], jnp.float32(30)), atol=1e-6)
    save_wrapper(tmp_path / "deep", nnx.merge(wgraph, state.wrapper),
                 meta={"pre": dataclasses.asdict(pre), "post": dataclasses.asdict(tcfg.net_configs()[1])})
    # The temporal O may start one that also reads its neighbours' coded QPs, output unchanged.
    qcfg = _config(**full, post_temporal=1, post_blocks=2, post_frame_qp=True, post_temporal_qp=True,
                   init_from=str(tmp_path / "deep"))
    qstate, qgraph = init_state(qcfg, proxy_dir)[:2]
    with_qp = nnx.merge(qgraph, qstate.wrapper).post
    assert with_qp.temporal_qp and with_qp.head.kernel.shape[2] == widened.head.kernel.shape[2] + 2
    qps = jnp.asarray([[27.0], [32.0], [30.0]])
    np.testing.assert_allclose(with_qp(x[1:2], qps[1:2], temporal_context(x, 1, qps)),
                               widened(x[1:2], qps[1:2], temporal_context(x, 1)), atol=1e-6)
    with pytest.raises(ConfigError, match="post.blocks: checkpoint 2 vs config 1"):  # shrinking is refused
        init_state(_config(**full, post_temporal=1, init_from=str(tmp_path / "deep")), proxy_dir)
    with pytest.raises(ConfigError, match="post_temporal needs codec_on_full_frames"):
        _config(pre=False, post_temporal=1)
    # The sampler: the same draws as without context, with the neighbours around them.
    clips = [moving_textures(count=1, frames=6, size=32, seed=4)[0]]
    targets = full_frame_targets(resolve_target("x264", gop=4), clips, [30])
    decoded = np.asarray(targets[0, 30][0].y)
    for step in range(6):
        kw = dict(seed=0, step=step, batch=1, patch=32, gop=2, qp_range=(30, 30))
        plain = sample_full_frame_batch(clips, targets, **kw)[1].recon.y[0]
        wide_batch = sample_full_frame_batch(clips, targets, **kw, context=2)
        wide = wide_batch[1].recon.y[0]
        assert wide_batch[2].shape == (6, 1)  # the coded QPs of the decode frames, neighbours too
        assert wide.shape[0] == 6
        np.testing.assert_array_equal(wide[2:4], plain)
        start = [t for t in range(2, 5) if np.array_equal(decoded[t:t + 2], plain)][0]
        for i, t in enumerate(range(start - 2, start + 4)):
            np.testing.assert_array_equal(wide[i], decoded[min(max(t, 0), 5)])
    # post_align: each kept frame's neighbours, motion-compensated on the whole decodes (the
    # 32x32 crop is the whole 32x32 clip here), clamped at the clip's ends as deployed.
    from wrappers.nets import align_neighbours

    for step in range(3):
        batch = sample_full_frame_batch(clips, targets, seed=0, step=step, batch=1, patch=32, gop=2,
                                        qp_range=(30, 30), context=2, align=4)
        assert batch.aligned.shape == (2, 1, 4, 32, 32) and batch.aligned.dtype == np.uint8
        kept = batch.targets.recon.y[0, 2:4]
        start = [t for t in range(2, 5) if np.array_equal(decoded[t:t + 2], kept)][0]
        for i, t in enumerate(range(start, start + 2)):
            near = decoded[[min(max(t + d, 0), 5) for d in (-2, -1, 1, 2)]]
            np.testing.assert_array_equal(batch.aligned[i, 0], np.asarray(align_neighbours(decoded[t], near, 4)))
    # A short run, with each frame's coded QP and the neighbours' (the deployed x264 reports
    # them), aligned: an unaligned temporal O starts an aligned one (the same network, fed
    # motion-compensated neighbours); the neighbour inputs get gradients, the saved model reads them.
    from wrappers.deploy import get_codec

    # (L1 and SSIM only: what is checked is the neighbour inputs' path, and the MS-SSIM and DLM
    # gradients would double the step's compile time.)
    result = train(dataclasses.replace(qcfg, steps=4, checkpoint_every=4, image_every=0, post_align=4, ms_ssim=0.0,
                                       dlm=0.0),
                   target=get_codec("x264", gop=4),
                   target_name="x264", proxy_path=proxy_dir, out_dir=tmp_path / "run", pool=clips, progress=False)
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(np.isfinite(r["total"]) for r in rows)
    model, meta = load_wrapper(result.model_dir)
    assert meta["post"]["temporal"] == 1 and model.post.temporal == 1
    assert meta["post"]["frame_qp"] and meta["post"]["temporal_qp"] and model.post.temporal_qp
    assert meta["post"]["align"] == 4 and model.post.align == 4
    first = saved.post.head.kernel.shape[2]
    kernel = model.post.head.kernel.value
    assert float(jnp.max(jnp.abs(kernel[:, :, first:first + 8]))) > 0  # neighbour luma
    assert float(jnp.max(jnp.abs(kernel[:, :, first + 8:]))) > 0  # neighbour QPs


def test_time_reversal_plays_the_sample_backwards():
    """``augment_time_reversal``: the first sample (same clip, QP, crop and symmetry, drawn before
    the reversal) is the plain one played backwards when the reversal is drawn, unchanged
    otherwise: kept sources, the decodes around them (neighbours included), their coded QPs, and
    each kept frame's aligned neighbours (frame axis and neighbour axis reversed)."""
    from wrappers.train import full_frame_targets, sample_full_frame_batch

    clips = [moving_textures(count=1, frames=8, size=32, seed=5)[0]]
    targets = full_frame_targets(resolve_target("x264", gop=4), clips, [30])
    flips = set()
    for step in range(8):
        kw = dict(seed=0, step=step, batch=1, patch=32, gop=2, qp_range=(30, 30), symmetries=True, context=2, align=4)
        plain = sample_full_frame_batch(clips, targets, **kw)
        rev = sample_full_frame_batch(clips, targets, **kw, time_reversal=True)
        backwards = not np.array_equal(plain.targets.recon.y, rev.targets.recon.y)
        flips.add(backwards)
        order = (lambda a: a[::-1]) if backwards else (lambda a: a)  # noqa: E731
        for c in "yuv":
            np.testing.assert_array_equal(getattr(rev.targets.recon, c)[0], order(getattr(plain.targets.recon, c)[0]))
            np.testing.assert_array_equal(getattr(rev.targets.source, c)[0], order(getattr(plain.targets.source, c)[0]))
            np.testing.assert_array_equal(getattr(rev.patches.frames, c)[0, 2:], order(getattr(plain.patches.frames, c)[0, 2:]))
        np.testing.assert_array_equal(rev.frame_qp[:, 0], order(plain.frame_qp[:, 0]))
        want = plain.aligned[::-1, :, ::-1] if backwards else plain.aligned
        np.testing.assert_array_equal(rev.aligned, want)
    assert flips == {True, False}
    with pytest.raises(ConfigError, match="augment_time_reversal needs post_temporal"):
        _config(pre=False, iterative_update=False, codec_on_full_frames=True, augment_time_reversal=True)
