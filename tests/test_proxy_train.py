"""Proxy training (proxy/train.py): exact resume after a kill, one compile per step, errors."""

import json

import jax
import numpy as np
import pytest

from jaxcodec.errors import CodecUnavailableError, ConfigError, JaxcodecError
from proxy.train import ProxyTrainConfig, load_train_config, resolve_target, train

TINY = dict(intra_channels=8, intra_latent=8, flow_channels=8, flow_latent=8, residual_channels=8, residual_latent=8,
            hyper_channels=8, hyper_latent=4, batch_size=2, gop=2, phase1_steps=2, phase2_steps=2,
            calibration_frames=8, checkpoint_every=1, clips=("generated",))


def _params(run_dir):
    from proxy.ssf import load_model

    model, _, cal, _ = load_model(run_dir / "model")
    from flax import nnx

    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))], cal


@pytest.mark.slow  # about 50 s on CI
def test_killed_and_resumed_run_equals_uninterrupted(tmp_path):
    """Also: prefetching target batches on 3 threads trains exactly what inline batches train."""
    target = resolve_target("x264", gop=2)
    config = ProxyTrainConfig(**TINY)
    full = train(config, target=target, target_name="x264", out_dir=tmp_path / "full", progress=False, data_workers=3)
    part = train(config, target=target, target_name="x264", out_dir=tmp_path / "part", stop_at=3, progress=False,
                 data_workers=0)
    assert part.step == 3 and part.model_dir is None
    resumed = train(config, target=target, target_name="x264", out_dir=tmp_path / "part", progress=False)
    assert resumed.step == full.step == 4
    (pa, ca), (pb, cb) = _params(tmp_path / "full"), _params(tmp_path / "part")
    assert all(np.array_equal(a, b) for a, b in zip(pa, pb))
    assert ca == cb
    rows = [json.loads(x) for x in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert {"codec_s", "wait_s", "jax_s", "loss", "phase"} <= set(rows[0])
    assert (tmp_path / "full" / "alignment.png").stat().st_size > 1000
    # the same run directory with another config is refused
    with pytest.raises(JaxcodecError, match="another config"):
        train(ProxyTrainConfig(**(TINY | {"seed": 5})), target=target, target_name="x264", out_dir=tmp_path / "full",
              progress=False)


def test_unknown_or_missing_target_codec(monkeypatch):
    with pytest.raises(JaxcodecError):
        resolve_target("no-such-codec", gop=4)
    # libaom is absent from PyAV's bundled FFmpeg: a known family whose encoder is missing
    import av

    if "libaom-av1" not in av.codecs_available:
        with pytest.raises(CodecUnavailableError):
            resolve_target("aom", gop=4)
    target = resolve_target("x264", gop=4)
    assert target.name.startswith("x264") and target.structure == "ld" and target.gop == 4


def test_config_rejects_unknown_keys_and_held_out_clips(tmp_path):
    with pytest.raises(ConfigError, match="unknown key"):
        load_train_config("proxy_small", batchsize=3)
    assert load_train_config("proxy_small").model_config().intra_latent == 64
    from proxy.data import load_pool

    with pytest.raises(ConfigError, match="held out"):
        load_pool(("carphone", "bigbuckbunny"))


def test_gradient_clipping_bounds_a_spike():
    """grad_clip_norm: a gradient spike after many normal steps moves Adam less than unclipped
    (early on, Adam's bias correction damps a spike by itself)."""
    import jax.numpy as jnp

    from proxy.train import make_optimizers

    with pytest.raises(ConfigError, match="grad_clip_norm"):
        ProxyTrainConfig(grad_clip_norm=-1.0)
    params = {"w": jnp.zeros(4)}
    grads = [{"w": jnp.full(4, 0.1)}] * 3000 + [{"w": jnp.asarray([1e4, -1e4, 1e4, -1e4])}]
    moved = {}
    for clip in (0.0, 1.0):
        opt, _ = make_optimizers(ProxyTrainConfig(grad_clip_norm=clip))
        state = opt.init(params)
        step = jax.jit(opt.update)
        for g in grads:
            update, state = step(g, state, params)
        moved[clip] = float(jnp.abs(update["w"]).max())
    assert moved[1.0] < 0.5 * moved[0.0]


def test_intra_weight_weights_the_first_frame_of_each_gop():
    """Phase-1 loss with intra_weight w = (w * mse_intra + sum mse_inter) / (w + gop - 1)."""
    import jax.numpy as jnp
    from flax import nnx

    from proxy.coders import ForwardCoder
    from proxy.entropy_models import noise_quantize, ste_round
    from proxy.ssf import SSFModel, code_gop, is_hyper_param, is_transform_param
    from proxy.train import Batch, TrainState, make_optimizers, make_steps

    with pytest.raises(ConfigError, match="intra_weight"):
        ProxyTrainConfig(intra_weight=0.0)
    config = ProxyTrainConfig(**TINY)
    model = SSFModel(config.model_config(), rngs=nnx.Rngs(0))
    graphdef, hyper, transform = nnx.split(model, is_hyper_param, is_transform_param)
    rng = np.random.default_rng(0)
    shape = (config.gop, 2, 16, 16, 6)
    batch = Batch(jnp.asarray(rng.random(shape), jnp.float32), jnp.asarray(rng.random(shape), jnp.float32),
                  jnp.asarray([0, 5], jnp.int32), jax.random.key(1))
    coder = ForwardCoder(rate_surrogate=noise_quantize, synthesis_surrogate=ste_round, key=batch.key)
    recon, _ = code_gop(nnx.merge(graphdef, transform, hyper), batch.source, batch.qp_index, coder)
    mse = np.asarray(jnp.mean((recon - batch.target) ** 2, axis=(1, 2, 3, 4)))
    opt_t, opt_h = make_optimizers(config)
    state = TrainState(transform, hyper, opt_t.init(transform), opt_h.init(hyper), jnp.asarray(0, jnp.int32))
    for w in (1.0, 3.0):
        step1, _ = make_steps(graphdef, opt_t, opt_h, intra_weight=w)
        _, loss = step1(state, batch)
        want = (w * mse[0] + mse[1:].sum()) / (w + len(mse) - 1)
        assert float(loss) == pytest.approx(want, rel=1e-5)


def test_distortion_match_adds_the_log_mse_gap_to_eq1():
    """Phase-1 loss with distortion_match d = eq. 1 + d * mean_(t,b) (ln mse_Y(I_M, I) - ln mse_Y(I_C, I))^2."""
    import jax.numpy as jnp
    from flax import nnx

    from proxy.coders import ForwardCoder
    from proxy.entropy_models import noise_quantize, ste_round
    from proxy.ssf import SSFModel, code_gop, is_hyper_param, is_transform_param
    from proxy.train import Batch, TrainState, distortion_match_loss, make_optimizers, make_steps

    with pytest.raises(ConfigError, match="distortion_match"):
        ProxyTrainConfig(distortion_match=-1.0)
    config = ProxyTrainConfig(**TINY)
    model = SSFModel(config.model_config(), rngs=nnx.Rngs(0))
    graphdef, hyper, transform = nnx.split(model, is_hyper_param, is_transform_param)
    rng = np.random.default_rng(1)
    shape = (config.gop, 2, 16, 16, 6)
    source = rng.random(shape).astype(np.float32)
    target = np.clip(source + rng.normal(0, 0.02, shape), 0, 1).astype(np.float32)
    batch = Batch(jnp.asarray(source), jnp.asarray(target), jnp.asarray([0, 5], jnp.int32), jax.random.key(1))
    coder = ForwardCoder(rate_surrogate=noise_quantize, synthesis_surrogate=ste_round, key=batch.key)
    recon = np.asarray(code_gop(nnx.merge(graphdef, transform, hyper), batch.source, batch.qp_index, coder)[0])

    def ln_mse_y(a):
        return np.log(((a[..., :4].astype(np.float64) - source[..., :4]) ** 2).mean(axis=(2, 3, 4)) + 1e-6)

    gap = float(((ln_mse_y(recon) - ln_mse_y(target)) ** 2).mean())
    assert gap > 0.1  # an untrained proxy is far from the target's distortion
    assert float(distortion_match_loss(jnp.asarray(recon), batch.target, batch.source)) == pytest.approx(gap, rel=1e-4)
    assert float(distortion_match_loss(batch.target, batch.target, batch.source)) == 0.0
    opt_t, opt_h = make_optimizers(config)
    state = TrainState(transform, hyper, opt_t.init(transform), opt_h.init(hyper), jnp.asarray(0, jnp.int32))
    eq1 = float(((recon - target) ** 2).mean())
    step1, _ = make_steps(graphdef, opt_t, opt_h, distortion_match=0.01)
    _, loss = step1(state, batch)
    assert float(loss) == pytest.approx(eq1 + 0.01 * gap, rel=1e-4)


@pytest.mark.slow  # about 65 s on CI
def test_init_from_starts_at_a_saved_model_and_refuses_another_config(tmp_path):
    from flax import nnx

    from jaxcodec.errors import ModelError
    from proxy.ssf import is_transform_param, load_model

    target = resolve_target("x264", gop=2)
    base = train(ProxyTrainConfig(**TINY), target=target, target_name="x264", out_dir=tmp_path / "base",
                 progress=False, data_workers=0)
    # phase 2 only: the transforms (phase 1's parameters) must stay the saved model's; intra
    # refinement adds no parameters, so a plain proxy may start a refined one
    tuned = train(ProxyTrainConfig(**{**TINY, "phase1_steps": 0, "phase2_steps": 1}, intra_refine=True,
                                   init_from=str(base.model_dir)),
                  target=target, target_name="x264", out_dir=tmp_path / "tuned", progress=False, data_workers=0)

    def transform(path):
        _, tr, _ = nnx.split(load_model(path)[0], is_transform_param, ...)
        return jax.tree.leaves(tr)

    a, b = transform(base.model_dir), transform(tuned.model_dir)
    assert load_model(tuned.model_dir)[0].config.intra_refine
    assert a and all(np.array_equal(x, y) for x, y in zip(a, b))
    other = {**TINY, "residual_latent": 12}
    with pytest.raises(ModelError, match="another model config"):
        train(ProxyTrainConfig(**other, init_from=str(base.model_dir)), target=target, target_name="x264",
              out_dir=tmp_path / "other", progress=False, data_workers=0)
