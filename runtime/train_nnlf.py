"""``jaxcodec train nnlf``: train the NN in-loop filter (paper 001 III-A and Fig. 7).

    jaxcodec train nnlf --config nnlf_small --out runs/nnlf_small --export models/nnlf_small [--jobs 2]

1. Data: encode the training clips (never bigbuckbunny, the held-out clip) with our codec,
   NN filter off, at each QP; every picture's `PictureState` (unfiltered rec, prediction,
   decisions) and its source are captured through ``runtime.encoder.encode(on_picture=)``
   and turned into the integer model inputs exactly as the codec does (`runtime.nnlf.filter_inputs`).
2. Train the float luma and chroma filters (`jaxcodec.nn.loopfilter`) on random patches,
   optax Adam with cosine decay, MSE against the source.
3. Convert both to integer graphs (`runtime.nnint.convert`, static calibration on patches),
   measure float / integer / deblocked PSNR on whole training pictures, write the NNLF model
   file (`runtime.nnlf.save_model`) and orbax float checkpoints.
4. Optional stages 2 and 3 (Fig. 7's stage 2, then once more): re-encode with the previous
   stage's integer model in the loop and fine-tune on the new inter pictures plus all earlier data.

Re-running with the same ``--out`` reuses the encoded data (one ``data_*.npz`` per encode) and
resumes from the latest finished stage (orbax checkpoints). Metrics go to ``metrics.jsonl``.
Module top level imports no JAX.
"""
from __future__ import annotations

import argparse
import dataclasses

from jaxcodec.config import load_config
from jaxcodec.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class NNLFTrainConfig:
    """Training settings (``configs/nnlf_*.toml``).

    Attributes:
      clips: training clip names (bigbuckbunny is refused: it is held out); ``generated``,
        ``cartoon`` and ``stills`` expand to the clips of `jaxcodec.io.synthetic`. ``NAME@N``
        takes ``frames`` frames from frame ``N`` of a clip (``bikes@120``), so a long clip can
        give several segments with their own motion.
      frames: frames per clip encoded for data.
      qps: base QPs of the data encodes.
      codec_config: coding config of the data encodes (``ra``: intra and inter pictures), a name
        from ``configs/`` or a TOML path.
      width, features, blocks: `LoopFilterConfig` of both models.
      act_bits, min_weight_bits: integer conversion profile. Every conv of the small model
        stays on one exact float32 conv up to 16-bit activations, its weights losing a bit for
        each activation bit; 14 bits gave the smallest float-integer gap
        (`benchmarks/nnlf_quant.py`, models/nnlf_small.md).
      patch: luma patch size (multiple of 8); batch: patches per step.
      luma_steps, chroma_steps: Adam steps per model; lr: peak learning rate (cosine decay).
      seed: data sampling and init seed.
      augment: random rotations and flips of the patches (the 8 symmetries of the square).
      stage2_steps, stage2_lr: stage 2 of paper 001 Fig. 7 (0: off): re-encode the clips with the
        stage-1 models in the loop and fine-tune on the new inter pictures plus the stage-1 data,
        ``stage2_steps`` luma steps (half for chroma) from ``stage2_lr``.
      stage2_data_model: a model file (path or name in models/) whose loop makes the stage-2
        pictures instead of this run's stage-1 model ("": Fig. 7 as it is). Another run's
        stage-2 pictures, already in the run directory, are then reused without new encodes:
        a larger model can be trained on the inter pictures of a smaller one's loop.
      stage3_steps, stage3_lr: stage 2 once more (0: off; needs stage 2): re-encode with the
        stage-2 models in the loop and fine-tune on every earlier picture plus the new inter ones.
      stage3_reencode: False skips stage 3's encodes: it only fine-tunes further, on the stage-1
        and stage-2 pictures (a stage-2 fine-tune continued from a lower learning rate).
      loss: ``mse`` (batch MSE) or ``relative`` (each patch's MSE over its unfiltered MSE, so
        that low-QP and clean patches weigh as much as coarse ones); `jaxcodec.nn.loopfilter.loss_fn`.
      sampling: how a batch draws its pictures: ``picture`` (each picture equally likely) or
        ``pixel`` (likelihood in proportion to the picture's area, so every pixel is equally
        likely: a 640x272 clip weighs 4.7 times a 256x144 pan).
    """

    clips: tuple[str, ...] = ("carphone", "bikes")
    frames: int = 5
    qps: tuple[int, ...] = (22, 27, 32, 37)
    codec_config: str = "ra"
    width: int = 16
    features: int = 4
    blocks: int = 4
    act_bits: int = 14
    min_weight_bits: int = 4
    patch: int = 64
    batch: int = 16
    luma_steps: int = 1500
    chroma_steps: int = 1000
    lr: float = 2e-3
    seed: int = 0
    augment: bool = True
    stage2_steps: int = 0
    stage2_lr: float = 5e-4
    stage2_data_model: str = ""
    stage3_steps: int = 0
    stage3_lr: float = 3e-4
    stage3_reencode: bool = True
    loss: str = "mse"
    sampling: str = "picture"

    def __post_init__(self):
        if self.sampling not in ("picture", "pixel"):
            raise ConfigError(f"sampling must be 'picture' or 'pixel', got {self.sampling!r}")


def register_train(subparsers) -> None:
    p = subparsers.add_parser("nnlf", help="train the NN in-loop filter and export its integer model",
                              description=__doc__.splitlines()[0])
    p.add_argument("--config", default="nnlf_small", help="training config name in configs/ or a .toml path")
    p.add_argument("--out", default="runs/nnlf_small", help="run directory (data.npz, checkpoints, metrics.jsonl)")
    p.add_argument("--export", default=None, help="also write the model to this directory (model.jxnnlf + ckpt)")
    p.add_argument("--jobs", type=int, default=1,
                   help="encode the training data in this many processes (each encode runs on about one core)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)


def _train(args) -> int:
    import json

    cfg = load_config(NNLFTrainConfig, args.config)
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {args.jobs}")
    result = train(cfg, out_dir=args.out, export_to=args.export, progress=not args.no_progress, jobs=args.jobs)
    print(json.dumps(result))
    return 0


# ---------------------------------------------------------------------------------------------

PICTURE_KEYS = ("y", "u", "v", "py", "pu", "pv", "bs", "qp", "ipb", "oy", "ou", "ov", "dy", "du", "dv")
"""One captured picture: the filter inputs (rec, pred, bS, QP, type), its source and its deblocked planes."""


def capture_pictures(frames, config, *, fps) -> list[dict]:
    """Encode ``frames`` with ``config`` and capture every picture as a dict of uint16 planes
    (`PICTURE_KEYS`), through ``runtime.encoder.encode(on_picture=)`` and the codec's own
    `runtime.nnlf.filter_inputs`, so the planes are exactly what the in-loop filter sees."""
    from runtime.encoder import encode, seq_params

    seq = seq_params(config, frames.bit_depth)
    pics = []
    encode(frames, config, fps=fps, on_picture=lambda poc, state, orig: pics.append(picture_record(state, orig, seq)))
    return pics


def picture_record(state, orig, seq) -> dict:
    """One picture as `capture_pictures` keeps it (``encode(on_picture=)`` gives ``state`` and
    ``orig``; ``seq`` is the encoder's `runtime.encoder.seq_params`)."""
    import numpy as np

    from runtime import nnlf

    x = nnlf.filter_inputs(state, seq)
    planes = (*x.rec, *x.pred, x.bs, x.qp, x.ipb, *orig, *state.deblocked)
    return {k: np.asarray(v).astype(np.uint16) for k, v in zip(PICTURE_KEYS, planes)}


def save_pictures(path, pics: list[dict]) -> None:
    """Write captured pictures to ``path`` (.npz) under a temporary name, then rename, so an
    interrupted run never leaves a half-written cache file behind."""
    import os

    import numpy as np

    tmp = f"{path}.tmp.npz"
    np.savez(tmp, n=len(pics), **{f"{i}_{k}": v for i, p in enumerate(pics) for k, v in p.items()})
    os.replace(tmp, path)


def load_pictures(path) -> list[dict]:
    """Pictures written by `save_pictures`."""
    import numpy as np

    z = np.load(path)
    return [{k: z[f"{i}_{k}"] for k in PICTURE_KEYS} for i in range(int(z["n"]))]


def inputs_from_picture(pic: dict):
    """`runtime.nnlf.FilterInputs` (int32) of a captured picture."""
    import numpy as np

    from runtime import nnlf
    i32 = lambda a: np.asarray(a, np.int32)  # noqa: E731
    return nnlf.FilterInputs((i32(pic["y"]), i32(pic["u"]), i32(pic["v"])), (i32(pic["py"]), i32(pic["pu"]), i32(pic["pv"])),
                             i32(pic["bs"]), i32(pic["qp"]), i32(pic["ipb"]))


def float_checkpoint(model_dir, kind: str) -> str:
    """The float checkpoint of ``kind`` (luma/chroma) that the model file in ``model_dir`` was
    converted from: in a run directory with later stages, the last stage's ``ckpt3_<kind>`` or
    ``ckpt2_<kind>`` (``ckpt_<kind>`` holds stage 1 there); else ``ckpt_<kind>`` (an exported
    model directory keeps only the final one)."""
    import os

    for prefix in ("ckpt3", "ckpt2"):
        path = os.path.join(model_dir, f"{prefix}_{kind}")
        if os.path.isdir(path):
            return path
    return os.path.join(model_dir, f"ckpt_{kind}")


def float_models(model) -> dict:
    """The float flax models a `runtime.nnlf.NNLFModel` was converted from: the orbax
    checkpoints beside its file (`float_checkpoint`)."""
    import os

    from flax import nnx

    from jaxcodec.nn import loopfilter as lf

    c = model.meta.get("config", {})
    mcfg = lf.LoopFilterConfig(width=c["width"], features=c["features"], blocks=c["blocks"])
    ckpt = os.path.dirname(os.path.abspath(model.path))
    return {kind: lf.restore_checkpoint(float_checkpoint(ckpt, kind), make(mcfg, rngs=nnx.Rngs(0)))
            for kind, make in (("luma", lf.LumaFilter), ("chroma", lf.ChromaFilter))}


def picture_errors(fmodels: dict, imodel, pics, *, bd: int = 8) -> dict:
    """Squared error against the source, summed over whole pictures, per plane (Y, U, V): the
    unfiltered and deblocked reconstructions, the float models (``fmodels``, rounded to samples)
    and the integer model ``imodel`` the codec runs. ``{"unfiltered"|"deblocked"|"float"|"int":
    array(3), "pixels": array(3)}``; PSNR or the float-minus-integer gap follow from the sums."""
    import jax
    import numpy as np

    from runtime import nnlf

    fwd = {k: jax.jit(lambda *a, m=m: m(*a)) for k, m in fmodels.items()}
    sse = {k: np.zeros(3) for k in ("unfiltered", "deblocked", "float", "int")}
    npx = np.zeros(3)
    peak = (1 << bd) - 1
    for pic in pics:
        full = (slice(0, None), slice(0, None))
        fl = np.asarray(fwd["luma"](*(a[None] for a in _luma_inputs(pic, full, bd)[0])))[0, ..., 0]
        fc = np.asarray(fwd["chroma"](*(a[None] for a in _chroma_inputs(pic, full, bd)[0])))[0]
        float_planes = [np.clip(np.floor(p * 2.0**bd + 0.5), 0, peak) for p in (fl, fc[..., 0], fc[..., 1])]
        int_planes = nnlf.filter_planes(imodel, inputs_from_picture(pic), bit_depth=bd)
        for c, key in enumerate("yuv"):
            o = pic["o" + key].astype(np.float64)
            sse["unfiltered"][c] += np.sum((pic[key] - o) ** 2)
            sse["deblocked"][c] += np.sum((pic["d" + key] - o) ** 2)
            sse["float"][c] += np.sum((float_planes[c] - o) ** 2)
            sse["int"][c] += np.sum((int_planes[c] - o) ** 2)
            npx[c] += o.size
    return {**sse, "pixels": npx}


def float_minus_int_db(errors: dict) -> dict:
    """Float-model PSNR minus integer-model PSNR per plane, from `picture_errors`."""
    import numpy as np

    return {k: round(float(10 * np.log10(errors["int"][c] / errors["float"][c])), 4) for c, k in enumerate("yuv")}


def _frames_digest(frames) -> str:
    import hashlib

    import numpy as np
    h = hashlib.sha1()
    for p in (frames.y, frames.u, frames.v):
        h.update(np.ascontiguousarray(p).tobytes())
    return h.hexdigest()[:8]


def split_segment(clip: str) -> tuple[str, int]:
    """``"bikes@120"`` -> ``("bikes", 120)``; a plain name or path starts at frame 0 (a path
    may hold an ``@`` that is not followed by digits only)."""
    name, at, start = clip.rpartition("@")
    if not at or not start.isdigit():
        return clip, 0
    return name, int(start)


def read_segment(clip: str, nframes: int):
    """(frames, fps) of ``nframes`` frames of ``clip`` (``NAME@N`` starts at frame ``N``)."""
    from jaxcodec.errors import InputError
    from jaxcodec.io import read_video

    name, start = split_segment(clip)
    video = read_video(name, max_frames=start + nframes)
    if len(video.frames) < start + nframes:
        raise InputError(f"{clip}: needs frames {start}..{start + nframes - 1}, the clip has {len(video.frames)}")
    return video.frames[start:start + nframes], video.fps


def _encode_job(path, clip, frames, fps, nframes: int, codec_config: str, qp: int, nnlf_model: str) -> int:
    """One data encode (``frames`` None: read ``clip``), written to ``path``; the number of
    pictures. A module-level function so that `make_data` can run it in worker processes."""
    from jaxcodec.config import load_coding_config
    from jaxcodec.errors import InputError

    if frames is None:
        frames, fps = read_segment(clip, nframes)
        if frames.bit_depth != 8:
            raise InputError(f"{clip}: the NN loop filter trains on 8-bit clips, this one is {frames.bit_depth}-bit")
    ccfg = load_coding_config(codec_config, qp=qp, nnlf=bool(nnlf_model), nnlf_model=nnlf_model)
    pics = capture_pictures(frames, ccfg, fps=fps)
    save_pictures(path, pics)
    return len(pics)


def make_data(cfg: NNLFTrainConfig, out_dir, *, log=print, nnlf_model: str = "", tag: str = "", jobs: int = 1):
    """Encode the clips and return a list of pictures: dict of integer planes (numpy).

    With ``nnlf_model`` the encodes run that NN filter in the loop (stage 2 of paper 001
    Fig. 7: the references the inter pictures predict from are NN-filtered); ``tag`` names
    the cache files of such data apart. ``jobs`` > 1 runs the missing encodes in that many
    worker processes (one encode keeps about one core busy); the pictures come back in the
    same order either way, since each encode is deterministic and cached in its own file."""
    import hashlib
    from fractions import Fraction
    from pathlib import Path

    from jaxcodec.config import config_tag
    from jaxcodec.errors import ConfigError
    from jaxcodec.io import CLIP_NAMES
    from jaxcodec.io.synthetic import synthetic_clips

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    codec_tag = config_tag(cfg.codec_config)
    todo, paths = [], []
    for clip in cfg.clips:
        if "bigbuckbunny" in clip:
            raise ConfigError("bigbuckbunny is the held-out evaluation clip: never train on it")
        generated = synthetic_clips(clip, frames=cfg.frames)
        if generated:
            # Named by content too: a changed generator must not pick up another clip's encodes.
            sources = [(f"{clip}{i}-{_frames_digest(g)}", g, Fraction(25)) for i, g in enumerate(generated)]
        else:  # a shipped clip name or a file path: cache files named by the stem and a path hash
            name, start = split_segment(clip)
            tag_ = name if name in CLIP_NAMES else f"{Path(name).stem}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
            tag_ += f"-f{start}" if start else ""
            sources = [(tag_, None, None)]
        for name, frames, fps in sources:
            for qp in cfg.qps:
                # One cache file per encode, so an interrupted run keeps what it encoded.
                path = Path(out_dir) / f"data_{name}_{cfg.frames}_{codec_tag}_qp{qp}{tag}.npz"
                paths.append(path)
                if not path.is_file():
                    todo.append((f"{name} qp {qp}", (path, clip, frames, fps, cfg.frames, cfg.codec_config, qp, nnlf_model)))
    if jobs > 1 and len(todo) > 1:
        import concurrent.futures as cf
        import multiprocessing as mp

        # spawn: JAX's thread pools do not survive fork
        with cf.ProcessPoolExecutor(min(jobs, len(todo)), mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(_encode_job, *args): label for label, args in todo}
            for fut in cf.as_completed(futures):
                log(f"data{tag}: {futures[fut]}: {fut.result()} pictures")
    else:
        for label, args in todo:
            log(f"data{tag}: {label}: {_encode_job(*args)} pictures")
    return [pic for path in paths for pic in load_pictures(path)]


def _luma_inputs(pic, sl, bd):
    import numpy as np
    f = lambda k, s: (np.asarray(pic[k][sl], np.float32) / 2.0**s)[..., None]  # noqa: E731
    return (f("y", bd), f("py", bd), f("bs", 1), f("qp", 6), f("ipb", 1)), f("oy", bd)


def _chroma_inputs(pic, sl, bd):
    import numpy as np
    ys, xs = sl
    csl = (slice(ys.start // 2, ys.stop // 2 if ys.stop else None), slice(xs.start // 2, xs.stop // 2 if xs.stop else None))
    f = lambda k, s, c=csl: np.asarray(pic[k][c], np.float32) / 2.0**s  # noqa: E731
    uv = np.stack([f("u", bd), f("v", bd)], -1)
    puv = np.stack([f("pu", bd), f("pv", bd)], -1)
    bs = np.asarray(pic["bs"][sl][::2, ::2], np.float32)[..., None] / 2
    qp = np.asarray(pic["qp"][sl][::2, ::2], np.float32)[..., None] / 64
    luma = (np.asarray(pic["y"][sl], np.float32) / 2.0**bd)[..., None]
    return (uv, puv, bs, qp, luma), np.stack([f("ou", bd), f("ov", bd)], -1)


def _dihedral(a, k: int):
    """Symmetry ``k`` (0..7) of the square on the two leading (H, W) axes."""
    import numpy as np
    a = np.rot90(a, k % 4, axes=(0, 1))
    return np.ascontiguousarray(a[:, ::-1] if k >= 4 else a)


def _batch(pics, rng, cfg, kind, bd, weights=None):
    """One batch of patches; ``weights`` (the pictures' sampling probabilities, `_sampling_weights`)
    None draws every picture equally likely."""
    import numpy as np
    xs, ts = [], []
    for _ in range(cfg.batch):
        pic = pics[rng.integers(len(pics)) if weights is None else rng.choice(len(pics), p=weights)]
        h, w = pic["y"].shape
        p = min(cfg.patch, h - h % 8, w - w % 8)
        y0 = 8 * rng.integers(0, (h - p) // 8 + 1)
        x0 = 8 * rng.integers(0, (w - p) // 8 + 1)
        sl = (slice(y0, y0 + p), slice(x0, x0 + p))
        x, t = (_luma_inputs if kind == "luma" else _chroma_inputs)(pic, sl, bd)
        if cfg.augment:
            # The 8 symmetries of the square. The block grid stays aligned (patches start and end
            # on multiples of 8) and the bS plane is symmetric (max of both edge directions).
            k = int(rng.integers(8))
            x, t = tuple(_dihedral(a, k) for a in x), _dihedral(t, k)
        xs.append(x)
        ts.append(t)
    return tuple(np.stack([x[i] for x in xs]) for i in range(5)), np.stack(ts)


def _sampling_weights(pics, sampling: str):
    """Per-picture probabilities of `_batch` (None: uniform over pictures)."""
    import numpy as np
    if sampling == "picture":
        return None
    area = np.array([p["y"].size for p in pics], np.float64)
    return area / area.sum()


def _psnr(mse, bd=8):
    import math
    return float("inf") if mse <= 0 else 10 * math.log10(((1 << bd) - 1) ** 2 / mse)


def train(cfg: NNLFTrainConfig, *, out_dir, export_to=None, progress: bool = True, jobs: int = 1) -> dict:
    import json
    import math
    import shutil
    import time
    from pathlib import Path

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from flax import nnx

    from jaxcodec.nn import loopfilter as lf
    from runtime import nnlf
    from runtime.nnint import convert

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = open(out / "metrics.jsonl", "a")

    def log(msg, **kw):
        rec = {"time": time.time(), "msg": msg, **kw}
        metrics.write(json.dumps(rec) + "\n")
        metrics.flush()
        print(msg, {k: v for k, v in kw.items()}, flush=True)

    if cfg.loss not in lf.LOSSES:
        raise ConfigError(f"loss = {cfg.loss!r} is not one of {lf.LOSSES}")
    if cfg.stage2_data_model:  # a bad path fails now, not after stage 1's training
        nnlf.load_model(cfg.stage2_data_model)
    t0 = time.perf_counter()
    pics = make_data(cfg, out, log=log, jobs=jobs)
    bd = 8
    log("data ready", pictures=len(pics), seconds=time.perf_counter() - t0)
    mcfg = lf.LoopFilterConfig(width=cfg.width, features=cfg.features, blocks=cfg.blocks)
    timing = {"data_s": time.perf_counter() - t0}

    def fit(kind, model, data, steps, lr, ckpt, seed):
        """Adam with warm-up + cosine decay on random patches of ``data``; resumes from ``ckpt``."""
        if ckpt.exists():
            log(f"{kind}: restored {ckpt}")
            return lf.restore_checkpoint(ckpt, model)
        t1 = time.perf_counter()
        sched = optax.warmup_cosine_decay_schedule(0.0, lr, min(100, steps // 10 + 1), steps, lr * 0.05)
        tx = optax.adam(sched)
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        opt_state = tx.init(params)
        step = lf.make_train_step(tx, graphdef, cfg.loss)
        rng = np.random.default_rng(seed)
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=steps, desc=f"train {ckpt.name}", leave=False)
        run = base = 0.0
        weights = _sampling_weights(data, cfg.sampling)
        for i in range(steps):
            x, t = _batch(data, rng, cfg, kind, bd, weights)
            params, opt_state, loss = step(params, rest, opt_state, tuple(jnp.asarray(a) for a in x), jnp.asarray(t))
            # running means of the loss and of the unfiltered reconstruction's MSE on the same batches
            unfiltered = float(np.mean((x[0] - t) ** 2))
            run = 0.98 * run + 0.02 * float(loss) if i else float(loss)
            base = 0.98 * base + 0.02 * unfiltered if i else unfiltered
            if bar:
                bar.update(1)
                bar.set_postfix(loss=f"{run:.3g}")
            if i % 100 == 0 or i == steps - 1:
                # relative loss: the running mean is the patches' mean MSE ratio, filtered / unfiltered
                gain = -10 * math.log10(run) if cfg.loss == "relative" else _psnr(run * 255**2) - _psnr(base * 255**2)
                log(f"{ckpt.name} step {i}", step=i, loss=float(loss), loss_avg=run, unfiltered_avg=base, psnr_gain=gain)
        if bar:
            bar.close()
        model = nnx.merge(graphdef, params, rest)
        lf.save_checkpoint(ckpt, model)
        timing[f"{ckpt.name}_s"] = time.perf_counter() - t1
        return model

    def export(models, path, name):
        """Integer conversion (static calibration on training patches) and the model file."""
        rng = np.random.default_rng(cfg.seed + 7)
        graphs = {}
        for kind in ("luma", "chroma"):
            samples = [_batch(pics, rng, cfg, kind, bd)[0] for _ in range(8)]
            graphs[kind] = convert.convert(models[kind], samples, [lf.INPUT_BOUND] * 5, act_bits=cfg.act_bits,
                                           min_weight_bits=cfg.min_weight_bits)
        meta = {"name": name, "config": dataclasses.asdict(cfg)}
        digest = nnlf.save_model(path, graphs["luma"], graphs["chroma"], meta)
        log("converted", path=str(path), digest=digest.hex(), bytes=path.stat().st_size)
        return digest

    # Stage k > 1 (paper 001 Fig. 7, stage 2, repeated for stage 3): re-encode with the stage
    # k-1 models in the loop, fine-tune on every earlier picture plus the new inter pictures.
    stages = [(1, cfg.luma_steps, cfg.chroma_steps, cfg.lr, "ckpt")]
    if cfg.stage2_steps > 0:
        stages.append((2, cfg.stage2_steps, max(1, cfg.stage2_steps // 2), cfg.stage2_lr, "ckpt2"))
        if cfg.stage3_steps > 0:
            stages.append((3, cfg.stage3_steps, max(1, cfg.stage3_steps // 2), cfg.stage3_lr, "ckpt3"))
    elif cfg.stage3_steps > 0:
        raise ConfigError("stage3_steps needs stage2_steps > 0")
    done = lambda k: all((out / f"{stages[k - 1][4]}_{kind}").exists() for kind in ("luma", "chroma"))  # noqa: E731
    # Resume from the latest finished stage: earlier stages' checkpoints are not needed again,
    # only their model files (stage<k>.jxnnlf), which name the later stages' cache files.
    start = max([k for k, *_ in stages if done(k)], default=1)
    models = {kind: make(mcfg, rngs=nnx.Rngs(cfg.seed)) for kind, make in (("luma", lf.LumaFilter), ("chroma", lf.ChromaFilter))}
    for k, luma_steps, chroma_steps, lr, prefix in stages:
        if k > 1 and (k == 2 or cfg.stage3_reencode):
            prev = out / f"stage{k - 1}.jxnnlf"
            if k == 2 and cfg.stage2_data_model:
                prev = nnlf.resolve_model_path(cfg.stage2_data_model)
                digest_prev = nnlf.load_model(prev).digest
            elif k - 1 < start and prev.is_file():
                digest_prev = nnlf.load_model(prev).digest
            elif k - 1 < start:
                raise ConfigError(f"{out} holds stage-{start} checkpoints but not {prev.name}, which the stage-{k} "
                                  f"data encodes need")
            else:
                # Named after the run, not the export: the stage-k cache files carry this file's
                # digest, and adding --export to a finished run must not re-encode them.
                digest_prev = export(models, prev, out.name)
            t2 = time.perf_counter()
            new = make_data(cfg, out, log=log, nnlf_model=str(prev), tag=f"_s{k}_{digest_prev.hex()[:8]}", jobs=jobs)
            inter = [p for p in new if p["ipb"].max() > 0]
            timing[f"stage{k}_data_s"] = time.perf_counter() - t2
            log(f"stage {k} data", inter_pictures=len(inter))
            pics = pics + inter
        if k < start:
            continue
        for kind, steps in (("luma", luma_steps), ("chroma", chroma_steps)):
            models[kind] = fit(kind, models[kind], pics, steps, lr, out / f"{prefix}_{kind}",
                               cfg.seed + {1: 0, 2: 11, 3: 23}[k] + (kind == "chroma"))
    final = {kind: f"{stages[-1][4]}_{kind}" for kind in models}

    model_path = out / nnlf.MODEL_FILE
    digest = export(models, model_path, Path(export_to).name if export_to else out.name)

    # Evaluation on whole pictures (every 4th): deblocked vs float NN vs integer NN.
    errors = picture_errors(models, nnlf.load_model(model_path), pics[::4], bd=bd)
    npx = errors.pop("pixels")
    psnr = {k: [round(_psnr(v[c] / npx[c]), 4) for c in range(3)] for k, v in errors.items()}
    log("evaluation (training pictures, every 4th)", psnr_yuv=psnr)
    result = {"model": str(model_path), "digest": digest.hex(), "psnr_train_yuv": psnr,
              "params": {k: lf.param_count(m) for k, m in models.items()},
              "kmac_per_pixel": {k: lf.macs_per_pixel(m) / 1e3 for k, m in models.items()},
              "timing": {**timing, "total_s": time.perf_counter() - t0}, "pictures": len(pics)}
    if export_to:
        dst = Path(export_to)
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copy(model_path, dst / nnlf.MODEL_FILE)
        for kind in ("luma", "chroma"):
            shutil.rmtree(dst / f"ckpt_{kind}", ignore_errors=True)
            shutil.copytree(out / final[kind], dst / f"ckpt_{kind}")
        (dst / "train_result.json").write_text(json.dumps(result, indent=1))
    log("done", **result)
    return result
