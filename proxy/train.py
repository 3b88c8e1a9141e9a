"""Two-phase pretraining of the proxy to a target codec (paper 004, section 3.1, eq. 1-3).

    phase 1 (eq. 1): theta_g <- Adam on E||I_M - I_C||^2      (transforms + QP gains; I_C = target output)
    phase 2 (eq. 2): theta_h <- Adam on R_M^hyp (max. likelihood of the quantized latents,
                      transforms frozen; rate surrogate: additive uniform noise)
    eq. 3:           R_M = alpha R_M^hyp + beta by least squares on the target's per-frame bits
                      (fitted per frame type, beta per pixel so the map holds at any frame size)

The step is functional: the model is split once (``nnx.split``) into graph, transform
params and hyper params; ``phase1_step`` / ``phase2_step`` are pure jitted functions of
``(state, batch)``. The target codec runs on the host between steps (`proxy.data`); the
time split codec/JAX is logged per step.

Data parallelism: the batch axis is sharded over all local devices with
``jax.sharding.NamedSharding`` on a 1-D ``data`` mesh; parameters and optimizer state are
replicated, so XLA inserts the gradient all-reduce. The same code runs on one CPU device.
Multi-host: start one process per host with ``jax.distributed.initialize(coordinator_address=
"host0:1234", num_processes=N, process_id=i)`` before `train` (or let the cluster environment
set it, e.g. SLURM/TPU pods), build the mesh over ``jax.devices()`` (all hosts), give each
process its own data seed offset and assemble the global batch with
``jax.make_array_from_process_local_data(sharding, local_batch)``; orbax checkpoints are
multi-host aware (every process calls ``save``).

Checkpoints (orbax ``CheckpointManager``) hold params, optimizer states and the step; every
batch and noise key is a function of ``(seed, step)``, so a run killed and resumed ends with
the same parameters as an uninterrupted one.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import numpy as np

from jaxcodec.errors import CodecUnavailableError, ConfigError, ModelError


@dataclasses.dataclass(frozen=True)
class ProxyTrainConfig:
    """Training configuration (flat; ``configs/proxy_small.toml``). Model fields mirror `ModelConfig`.

    Attributes:
      gop: frames per GOP of proxy and target (intra + gop-1 inter; paper 004 uses 4).
      batch_size: sequences per step (paper 004: 4); must divide by the device count.
      patch: luma patch size (multiple of 32, the downsampling factor).
      phase1_steps / phase2_steps: steps of eq. 1 and eq. 2.
      calibration_frames: frames per training clip (whole frames, QPs qp_min..qp_max step 5)
        used for the eq. 3 least-squares fit and the scatter plot.
      learning_rate: peak Adam step size, cosine-decayed to 10% in each phase (paper 004: 1e-4
        constant over 500k steps; short CPU runs need more).
      intra_weight: weight of each GOP's intra frame in the phase-1 MSE (1 = eq. 1 as written).
        With 1, the medium proxy's intra frames came out ~5.5 dB below its inter frames at every
        QP, while x264's are level: the residual coder makes up for a weak intra coder, and the
        pooled per-frame PSNR correlation suffers.
      grad_clip_norm: clip each step's gradient to this global norm before Adam (0 = off, as
        the small model was trained; CompressAI's training example clips at 1.0). It does not
        prevent the medium proxy's divergence at lr 1e-3 (phase-1 MSE 0.002 -> 0.07-0.26 within
        6 steps after ~660-730 steps, with or without it): that needs a lower learning rate.
      distortion_match: weight of a phase-1 term that matches the proxy's per-frame luma
        distortion to the target's, (ln MSE(I_M, I) - ln MSE(I_C, I))^2 averaged over frames
        (0 = eq. 1 alone). Eq. 1 alone drives I_M to E[I_C | I], the target's output without its
        unpredictable coding noise, so the proxy is *better* than the target where that noise is
        large (medium proxy, bigbuckbunny QP 42: inter frames 36 dB against x264's 32.5 dB) and
        worse where its capacity runs out (intra, QP 22: 38 dB against 47.8 dB); the term asks
        for the target's distortion level, which is what the per-frame PSNR alignment measures.
        In nats^2: 1e-3 weighs a 1 dB mismatch about like a 5e-5 MSE (8-bit QP 32 scale).
      init_from: a saved proxy model directory (``save_model``) whose parameters start the run
        instead of a random initialisation (fine-tuning); its parameters must have this config's
        shapes (``intra_refine`` may differ: it adds none).
      seed: data and initialisation seed.
      clips: training clips (``carphone``, ``bikes``, ``generated`` or Y4M paths).
      max_clip_frames: frames read per clip.
      checkpoint_every: steps between checkpoints.
    """

    intra_channels: int = 32
    intra_latent: int = 48
    flow_channels: int = 24
    flow_latent: int = 32
    residual_channels: int = 32
    residual_latent: int = 48
    hyper_channels: int = 32
    hyper_latent: int = 24
    scale_levels: int = 4
    scale_sigma0: float = 1.0
    intra_refine: bool = False
    qp_min: int = 22
    qp_max: int = 42
    gop: int = 4
    batch_size: int = 4
    patch: int = 64
    phase1_steps: int = 2000
    phase2_steps: int = 1000
    calibration_frames: int = 16
    learning_rate: float = 1e-3
    intra_weight: float = 1.0
    grad_clip_norm: float = 0.0
    distortion_match: float = 0.0
    init_from: str = ""
    seed: int = 0
    clips: tuple[str, ...] = ("carphone", "bikes", "generated")
    max_clip_frames: int = 120
    checkpoint_every: int = 100

    def __post_init__(self):
        if self.patch % 32 or self.patch <= 0:
            raise ConfigError(f"patch must be a positive multiple of 32, got {self.patch}")
        if self.gop < 1 or self.batch_size < 1 or self.phase1_steps < 0 or self.phase2_steps < 0:
            raise ConfigError("gop and batch_size must be >= 1, phase steps >= 0")
        if self.learning_rate <= 0:
            raise ConfigError("learning_rate must be positive")
        if self.intra_weight <= 0:
            raise ConfigError("intra_weight must be positive")
        if self.grad_clip_norm < 0:
            raise ConfigError("grad_clip_norm must be >= 0 (0 = no clipping)")
        if self.distortion_match < 0:
            raise ConfigError("distortion_match must be >= 0 (0 = eq. 1 alone)")

    def model_config(self):
        from proxy.ssf import ModelConfig

        names = {f.name for f in dataclasses.fields(ModelConfig)}
        return ModelConfig(**{k: v for k, v in dataclasses.asdict(self).items() if k in names})

    @property
    def total_steps(self) -> int:
        return self.phase1_steps + self.phase2_steps


def load_train_config(name_or_path: str, **overrides) -> ProxyTrainConfig:
    from jaxcodec.config import load_config

    return load_config(ProxyTrainConfig, name_or_path, **overrides)


def resolve_target(name: str, *, gop: int):
    """The target `Codec` by name (`proxy.targets.resolve_target`)."""
    from proxy.targets import resolve_target as resolve

    return resolve(name, gop=gop)


class Batch(NamedTuple):
    """Device batch: source and target tensors ``(T, B, P/2, P/2, 6)``, qp index (B,), noise key."""

    source: Any
    target: Any
    qp_index: Any
    key: Any


class TrainState(NamedTuple):
    transform: Any
    hyper: Any
    opt_transform: Any
    opt_hyper: Any
    step: Any


def make_optimizers(config: ProxyTrainConfig):
    """Adam per phase with a cosine decay to 10% of ``learning_rate`` over the phase, after
    global-norm gradient clipping when ``grad_clip_norm`` > 0."""
    import optax

    def adam(steps):
        opt = optax.adam(optax.cosine_decay_schedule(config.learning_rate, max(steps, 1), alpha=0.1))
        return optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), opt) if config.grad_clip_norm else opt

    return adam(config.phase1_steps), adam(config.phase2_steps)


def make_steps(graphdef, optimizer_transform, optimizer_hyper, *, intra_weight: float = 1.0,
               distortion_match: float = 0.0):
    """The two pure, jitted steps (eq. 1 and eq. 2) over `TrainState` and `Batch`.

    ``intra_weight`` weights each GOP's first (intra) frame in eq. 1's MSE;
    ``distortion_match`` adds `distortion_match_loss` (see `ProxyTrainConfig`).
    """
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from proxy.coders import ForwardCoder
    from proxy.entropy_models import noise_quantize, ste_round
    from proxy.ssf import code_gop

    def run(transform, hyper, batch):
        model = nnx.merge(graphdef, transform, hyper)
        coder = ForwardCoder(rate_surrogate=noise_quantize, synthesis_surrogate=ste_round, key=batch.key)
        return code_gop(model, batch.source, batch.qp_index, coder)

    def loss1(transform, hyper, batch):
        recon, _ = run(transform, hyper, batch)
        if intra_weight == 1.0:
            loss = jnp.mean((recon - batch.target) ** 2)  # eq. 1: distortion to the target codec's output
        else:
            per_frame = jnp.mean((recon - batch.target) ** 2, axis=tuple(range(1, recon.ndim)))
            w = jnp.ones(per_frame.shape[0]).at[0].set(intra_weight)
            loss = jnp.sum(w * per_frame) / jnp.sum(w)
        if distortion_match:
            loss = loss + distortion_match * distortion_match_loss(recon, batch.target, batch.source)
        return loss

    def loss2(hyper, transform, batch):
        _, bits = run(jax.lax.stop_gradient(transform), hyper, batch)
        pixels = batch.source.shape[2] * batch.source.shape[3] * 4  # luma pixels per frame
        return jnp.mean(bits) / pixels  # eq. 2: bits per pixel, maximum likelihood

    @jax.jit
    def phase1_step(state: TrainState, batch: Batch):
        loss, grads = jax.value_and_grad(loss1)(state.transform, state.hyper, batch)
        updates, opt = optimizer_transform.update(grads, state.opt_transform, state.transform)
        return state._replace(transform=optax.apply_updates(state.transform, updates), opt_transform=opt,
                              step=state.step + 1), loss

    @jax.jit
    def phase2_step(state: TrainState, batch: Batch):
        loss, grads = jax.value_and_grad(loss2)(state.hyper, state.transform, batch)
        updates, opt = optimizer_hyper.update(grads, state.opt_hyper, state.hyper)
        return state._replace(hyper=optax.apply_updates(state.hyper, updates), opt_hyper=opt, step=state.step + 1), loss

    return phase1_step, phase2_step


def _init_model(config: ProxyTrainConfig):
    """The saved model ``config.init_from``'s parameters in a model of ``config``'s architecture.

    Configs may differ only where the parameters do not (``intra_refine`` reuses the residual
    autoencoder), so a plain SSF proxy can be fine-tuned into a refined one.
    """
    import jax
    from flax import nnx

    from proxy.ssf import SSFModel, load_model

    saved = load_model(config.init_from)[0]
    model = SSFModel(config.model_config(), rngs=nnx.Rngs(config.seed))
    got, want = nnx.state(saved, nnx.Param), nnx.state(model, nnx.Param)
    shapes = lambda t: jax.tree.map(lambda a: a.shape, nnx.to_pure_dict(t))  # noqa: E731
    if shapes(got) != shapes(want):
        ours, theirs = dataclasses.asdict(config.model_config()), dataclasses.asdict(saved.config)
        diff = [f"{k}: checkpoint {theirs[k]} vs config {ours[k]}" for k in ours if ours[k] != theirs.get(k)]
        raise ModelError(f"{config.init_from} was trained with another model config ({'; '.join(diff)})")
    nnx.update(model, got)
    return model


def distortion_match_loss(recon, target, source, eps: float = 1e-6):
    """Mean over frames and sequences of (ln MSE_Y(I_M, I) - ln MSE_Y(I_C, I))^2.

    Tensors are the proxy layout (T, B, H/2, W/2, 6) in [0, 1], luma in channels 0-3. The log
    makes a dB of mismatch cost the same at every QP; ``eps`` (60 dB) keeps a lossless target
    finite. The target's MSE is data (no gradient).
    """
    import jax
    import jax.numpy as jnp

    def mse_y(a):
        return jnp.mean((a[..., :4] - source[..., :4]) ** 2, axis=(2, 3, 4))

    want = jax.lax.stop_gradient(jnp.log(mse_y(target) + eps))
    return jnp.mean((jnp.log(mse_y(recon) + eps) - want) ** 2)


def _to_tensor(frames):
    """uint8 Frame (B, T, H, W) -> float (T, B, H/2, W/2, 6)."""
    import jax.numpy as jnp

    from proxy.ssf import frames_to_tensor

    return jnp.moveaxis(frames_to_tensor(frames.y, frames.u, frames.v, frames.peak), 1, 0)


class TrainResult(NamedTuple):
    step: int
    model_dir: Path | None
    timing: dict
    calibration: Any


def open_checkpoints(out_dir: Path, state):
    """(orbax manager of ``out_dir/checkpoints`` keeping 2, latest step or 0, ``state`` restored from it or as given).

    Shared by the proxy and wrapper trainers; a checkpoint that does not fit ``state`` is a `ModelError`.
    """
    import jax
    import orbax.checkpoint as ocp

    manager = ocp.CheckpointManager(out_dir / "checkpoints", options=ocp.CheckpointManagerOptions(max_to_keep=2))
    if manager.latest_step() is None:
        return manager, 0, state
    start = int(manager.latest_step())
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)
    try:
        state = manager.restore(start, args=ocp.args.StandardRestore(abstract))
    except Exception as e:
        raise ModelError(f"{out_dir}/checkpoints: cannot restore step {start} ({type(e).__name__})") from None
    return manager, start, state


def train(config: ProxyTrainConfig, *, target, target_name: str, out_dir: str | Path, stop_at: int | None = None,
          progress: bool = True, export_to: str | Path | None = None, data_workers: int | None = None) -> TrainResult:
    """Run (or resume) two-phase pretraining; returns the final step and where the model went.

    Args:
      config: training configuration.
      target: the target `Codec`.
      target_name: its name (recorded in the model card metadata).
      out_dir: run directory: ``checkpoints/``, ``metrics.jsonl``, ``alignment.png``, ``model/``.
      stop_at: stop after this global step (simulates a kill; a later call resumes).
      progress: show a tqdm bar.
      export_to: also save the final model there (e.g. ``models/proxy_x264_small``).
      data_workers: threads coding target batches ahead of the JAX step, 0 for none (default:
        `default_data_workers`); the result does not depend on it.
    """
    import jax
    import jax.numpy as jnp
    import optax
    import orbax.checkpoint as ocp
    from flax import nnx
    from jax.sharding import NamedSharding, PartitionSpec as P
    from tqdm import tqdm

    from proxy.data import load_pool
    from proxy.ssf import SSFModel, fit_calibration, is_hyper_param, is_transform_param, save_model

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    meta_path = out_dir / "run.json"
    run_meta = {"config": dataclasses.asdict(config), "target": target_name}
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())
        if old != json.loads(json.dumps(run_meta)):
            raise ModelError(f"{out_dir} holds a run with another config or target; use a new --out directory")
    else:
        meta_path.write_text(json.dumps(run_meta, indent=2))

    devices = jax.devices()
    if config.batch_size % len(devices):
        raise ConfigError(f"batch_size {config.batch_size} must be a multiple of the {len(devices)} local devices")
    mesh = jax.make_mesh((len(devices),), ("data",), devices=devices, axis_types=(jax.sharding.AxisType.Auto,))
    replicated = NamedSharding(mesh, P())
    batch_sharding = NamedSharding(mesh, P(None, "data"))
    qp_sharding = NamedSharding(mesh, P("data"))

    if config.init_from:
        model = _init_model(config)
    else:
        model = SSFModel(config.model_config(), rngs=nnx.Rngs(config.seed))
    graphdef, hyper, transform = nnx.split(model, is_hyper_param, is_transform_param)
    opt_t, opt_h = make_optimizers(config)
    state = TrainState(transform, hyper, opt_t.init(transform), opt_h.init(hyper), jnp.asarray(0, jnp.int32))
    state = jax.device_put(state, replicated)
    phase1_step, phase2_step = make_steps(graphdef, opt_t, opt_h, intra_weight=config.intra_weight,
                                          distortion_match=config.distortion_match)

    manager, start, state = open_checkpoints(out_dir, state)
    state = jax.device_put(state, replicated)

    metrics_path = out_dir / "metrics.jsonl"
    kept = []
    if metrics_path.is_file():  # drop rows a killed run wrote after its last checkpoint
        kept = [ln for ln in metrics_path.read_text().splitlines() if ln and json.loads(ln).get("step", 0) <= start]
    metrics_path.write_text("".join(ln + "\n" for ln in kept))

    pool = load_pool(config.clips, max_frames=config.max_clip_frames)
    data_workers = default_data_workers() if data_workers is None else max(0, int(data_workers))
    base_key = jax.random.key(config.seed)
    end = config.total_steps if stop_at is None else min(stop_at, config.total_steps)
    qp_range = (config.qp_min, config.qp_max)

    def device_batch(step, tb):
        src, tgt = _to_tensor(tb.source), _to_tensor(tb.recon)
        return Batch(jax.device_put(src, batch_sharding), jax.device_put(tgt, batch_sharding),
                     jax.device_put(jnp.asarray(tb.qp - config.qp_min, jnp.int32), qp_sharding),
                     jax.random.fold_in(base_key, step))

    codec_times, wait_times, jax_times = [], [], []
    bar = tqdm(total=end, initial=start, disable=not progress, desc="proxy", unit="step")
    batches = target_batches(pool, target, seed=config.seed, start=start, end=end, batch=config.batch_size,
                             patch=config.patch, gop=config.gop, qp_range=qp_range, workers=data_workers)
    with open(metrics_path, "a") as log:
        try:
            for step in range(start, end):
                t0 = time.perf_counter()
                t_data, tb = next(batches)
                t_wait = time.perf_counter() - t0
                batch = device_batch(step, tb)
                t1 = time.perf_counter()
                phase = 1 if step < config.phase1_steps else 2
                state, loss = (phase1_step if phase == 1 else phase2_step)(state, batch)
                loss = float(loss)  # blocks until the step is done
                t2 = time.perf_counter()
                codec_times.append(tb.codec_seconds)
                wait_times.append(t_wait)
                jax_times.append(t2 - t1)
                row = {"step": step + 1, "phase": phase, "loss": loss, "codec_s": tb.codec_seconds,
                       "data_s": t_data, "wait_s": t_wait, "jax_s": t2 - t1}
                log.write(json.dumps(row) + "\n")
                log.flush()
                bar.update(1)
                bar.set_postfix(phase=phase, loss=f"{loss:.4g}")
                if (step + 1) % config.checkpoint_every == 0 or step + 1 == end:
                    manager.save(step + 1, args=ocp.args.StandardSave(state))
                    manager.wait_until_finished()
        finally:
            batches.close()
    bar.close()
    manager.close()
    timing = _timing_summary(codec_times, jax_times, wait_times, data_workers)

    if end < config.total_steps:
        return TrainResult(end, None, timing, None)

    final = nnx.merge(graphdef, state.transform, state.hyper)
    table = alignment_table(final, target, pool, gop=config.gop, frames=config.calibration_frames,
                            qps=tuple(range(config.qp_min, config.qp_max + 1, 5)))
    calibration = fit_calibration(table["bits_hyp"] / table["pixels"], table["bits_target"] / table["pixels"],
                                  table["intra"])
    _scatter_png(out_dir / "alignment.png", table, calibration, target_name)

    extra = {"target": target_name, "steps": config.total_steps, "train_config": dataclasses.asdict(config),
             "timing": timing}
    save_model(out_dir / "model", final, calibration, extra=extra)
    if export_to is not None:
        save_model(export_to, final, calibration, extra=extra)
    return TrainResult(end, out_dir / "model", timing, calibration)


def _timing_summary(codec_times, jax_times, wait_times, workers) -> dict:
    """Median per-step seconds: target codec per batch, JAX step, and the wait for data.

    ``codec_fraction`` is the codec's share of a serial step (codec + JAX); with prefetching
    workers the codec runs beside the JAX step and the step only pays ``median_wait_s``.
    """
    if not jax_times:
        return {}
    skip = 1 if len(jax_times) > 3 else 0  # first step compiles
    c, j, w = (float(np.median(v[skip:])) for v in (codec_times, jax_times, wait_times))
    return {"median_codec_s": c, "median_jax_s": j, "median_wait_s": w, "codec_fraction": c / (c + j),
            "data_workers": workers, "steps_timed": len(jax_times) - skip}


def default_data_workers() -> int:
    """Threads that run the target codec ahead of the JAX step (0 = inline): one core is left to XLA's dispatch."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def target_batches(pool, target, *, seed: int, start: int, end: int, batch: int, patch: int, gop: int,
                   qp_range: tuple[int, int], workers: int) -> Iterator[tuple[float, Any]]:
    """``(sampling seconds, TargetBatch)`` for steps ``start..end-1``, in step order.

    Every batch is a pure function of ``(seed, step)`` (`proxy.data.sample_batch`) and the
    target codec runs with one thread, so the stream of batches is the same for any
    ``workers``; ``workers`` threads only code up to ``2 * workers`` steps ahead (FFmpeg
    releases the GIL while it encodes), 0 codes each batch inline when it is needed. Close the
    generator to stop the workers.
    """
    from proxy.data import run_target, sample_batch

    def make(step):
        t0 = time.perf_counter()
        pb = sample_batch(pool, seed=seed, step=step, batch=batch, patch=patch, gop=gop, qp_range=qp_range)
        return time.perf_counter() - t0, run_target(target, pb, gop=gop)

    if workers <= 0:
        for step in range(start, end):
            yield make(step)
        return
    pool_ex = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="target")
    pending: collections.deque = collections.deque()
    nxt = start
    try:
        for _ in range(start, end):
            while nxt < end and len(pending) < 2 * workers:
                pending.append(pool_ex.submit(make, nxt))
                nxt += 1
            yield pending.popleft().result()
    finally:
        pool_ex.shutdown(wait=True, cancel_futures=True)


def alignment_table(model, target, clips, *, gop: int, frames: int, qps: tuple[int, ...]) -> dict:
    """Per-frame proxy vs target on whole training clips (eq. 3 fit and the scatter plot).

    Each clip's first ``frames`` frames are coded by the target and by the proxy
    (`proxy.ssf.estimate_clip`, same GOP); the first GOP is dropped because the target's
    first packet carries the stream headers. Returns arrays: bits_hyp, bits_target,
    psnr_proxy, psnr_target (luma, vs source), intra, qp, pixels.
    """
    from jaxcodec.metrics.psnr import psnr
    from proxy.ssf import estimate_clip

    rows = {k: [] for k in ("bits_hyp", "bits_target", "psnr_proxy", "psnr_target", "intra", "qp", "pixels")}
    for clip in clips:
        n = min(frames, clip.y.shape[0]) // gop * gop
        if n < 2 * gop:
            continue
        clip = clip[:n]
        src, peak = clip.y[gop:], float(clip.peak)
        for qp in qps:
            result = target.encode(clip, qp=qp)
            est = estimate_clip(model, clip, qp=qp, gop=gop)
            rows["bits_hyp"].append(est.bits_hyp[gop:])
            rows["bits_target"].append(np.asarray(result.bits_per_frame, np.float64)[gop:])
            rows["psnr_proxy"].append(np.asarray(psnr(est.recon.y[gop:], src, peak=peak), np.float64))
            rows["psnr_target"].append(np.asarray(psnr(result.recon.y[gop:], src, peak=peak), np.float64))
            rows["intra"].append(np.arange(gop, n) % gop == 0)
            rows["qp"].append(np.full(n - gop, qp))
            rows["pixels"].append(np.full(n - gop, clip.height * clip.width, np.float64))
    return {k: np.concatenate(v) for k, v in rows.items()}


def _scatter_png(path: Path, table: dict, calibration, target_name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from proxy.ssf import apply_calibration

    rm = np.asarray(apply_calibration(calibration, table["bits_hyp"], table["intra"], table["pixels"]))
    fig, ax = plt.subplots(1, 2, figsize=(10, 4.5))
    for sel, label in ((table["intra"], "intra"), (~table["intra"], "inter")):
        ax[0].scatter(table["bits_target"][sel], rm[sel], s=6, label=label)
        ax[1].scatter(table["psnr_target"][sel], table["psnr_proxy"][sel], s=6, label=label)
    pcc_r = np.corrcoef(table["bits_target"], rm)[0, 1]
    pcc_p = np.corrcoef(table["psnr_target"], table["psnr_proxy"])[0, 1]
    ax[0].set(xlabel=f"{target_name} bits/frame", ylabel="proxy R_M bits/frame", title=f"rate, PCC {pcc_r:.3f}")
    ax[1].set(xlabel=f"{target_name} Y-PSNR (dB)", ylabel="proxy Y-PSNR (dB)", title=f"PSNR, PCC {pcc_p:.3f}")
    for a in ax:
        a.legend()
        lo, hi = min(a.get_xlim()[0], a.get_ylim()[0]), max(a.get_xlim()[1], a.get_ylim()[1])
        a.plot([lo, hi], [lo, hi], "k--", lw=0.5)
    fig.tight_layout()
    from jaxcodec.io import atomic_open

    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=90)
    plt.close(fig)
