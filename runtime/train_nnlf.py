"""``jaxcodec train nnlf``: train the NN in-loop filter (paper 001 III-A, stage 1 of Fig. 7).

    jaxcodec train nnlf --config nnlf_small --out runs/nnlf_small --export models/nnlf_small

1. Data: encode the training clips (never bigbuckbunny, the held-out clip) with our codec,
   NN filter off, at each QP; every picture's `PictureState` (unfiltered rec, prediction,
   decisions) and its source are captured through ``runtime.encoder.encode(on_picture=)``
   and turned into the integer model inputs exactly as the codec does (`runtime.nnlf.filter_inputs`).
2. Train the float luma and chroma filters (`jaxcodec.nn.loopfilter`) on random patches,
   optax Adam with cosine decay, MSE against the source.
3. Convert both to integer graphs (`runtime.nnint.convert`, static calibration on patches),
   measure float / integer / deblocked PSNR on whole training pictures, write the NNLF model
   file (`runtime.nnlf.save_model`) and orbax float checkpoints.

Re-running with the same ``--out`` reuses the encoded data (``data.npz``) and finished
stages (orbax checkpoints). Metrics go to ``metrics.jsonl``. Module top level imports no JAX.
"""
from __future__ import annotations

import argparse
import dataclasses

from jaxcodec.config import load_config


@dataclasses.dataclass(frozen=True)
class NNLFTrainConfig:
    """Training settings (``configs/nnlf_*.toml``).

    Attributes:
      clips: training clip names (bigbuckbunny is refused: it is held out).
      frames: frames per clip encoded for data.
      qps: base QPs of the data encodes.
      codec_config: coding config of the data encodes (``ra``: intra and inter pictures).
      width, features, blocks: `LoopFilterConfig` of both models.
      act_bits, min_weight_bits: integer conversion profile (12-bit activations put every conv
        on one exact float32 conv).
      patch: luma patch size (multiple of 8); batch: patches per step.
      luma_steps, chroma_steps: Adam steps per model; lr: peak learning rate (cosine decay).
      seed: data sampling and init seed.
    """

    clips: tuple[str, ...] = ("carphone", "bikes")
    frames: int = 5
    qps: tuple[int, ...] = (22, 27, 32, 37)
    codec_config: str = "ra"
    width: int = 16
    features: int = 4
    blocks: int = 4
    act_bits: int = 12
    min_weight_bits: int = 4
    patch: int = 64
    batch: int = 16
    luma_steps: int = 1500
    chroma_steps: int = 1000
    lr: float = 2e-3
    seed: int = 0


def register_train(subparsers) -> None:
    p = subparsers.add_parser("nnlf", help="train the NN in-loop filter and export its integer model",
                              description=__doc__.splitlines()[0])
    p.add_argument("--config", default="nnlf_small", help="training config name in configs/ or a .toml path")
    p.add_argument("--out", default="runs/nnlf_small", help="run directory (data.npz, checkpoints, metrics.jsonl)")
    p.add_argument("--export", default=None, help="also write the model to this directory (model.jxnnlf + ckpt)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)


def _train(args) -> int:
    import json

    cfg = load_config(NNLFTrainConfig, args.config)
    result = train(cfg, out_dir=args.out, export_to=args.export, progress=not args.no_progress)
    print(json.dumps(result))
    return 0


# ---------------------------------------------------------------------------------------------

def make_data(cfg: NNLFTrainConfig, out_dir, *, log=print):
    """Encode the clips and return a list of pictures: dict of integer planes (numpy)."""
    from pathlib import Path

    import numpy as np

    from jaxcodec.config import load_coding_config
    from jaxcodec.errors import ConfigError
    from jaxcodec.io import read_video
    from runtime import nnlf
    from runtime.encoder import encode, seq_params

    keys = ("y", "u", "v", "py", "pu", "pv", "bs", "qp", "ipb", "oy", "ou", "ov", "dy", "du", "dv")
    pics = []
    for clip in cfg.clips:
        if "bigbuckbunny" in clip:
            raise ConfigError("bigbuckbunny is the held-out evaluation clip: never train on it")
        video = None
        for qp in cfg.qps:
            # One cache file per encode, so an interrupted run keeps what it encoded.
            path = Path(out_dir) / f"data_{clip}_{cfg.frames}_{cfg.codec_config}_qp{qp}.npz"
            if path.is_file():
                z = np.load(path)
                pics += [{k: z[f"{i}_{k}"] for k in keys} for i in range(int(z["n"]))]
                continue
            video = video or read_video(clip, max_frames=cfg.frames)
            ccfg = load_coding_config(cfg.codec_config, qp=qp, nnlf=False)
            seq = seq_params(ccfg, video.frames.bit_depth)
            new = []

            def grab(poc, state, orig):
                x = nnlf.filter_inputs(state, seq)
                new.append({"y": x.rec[0], "u": x.rec[1], "v": x.rec[2], "py": x.pred[0], "pu": x.pred[1],
                            "pv": x.pred[2], "bs": x.bs, "qp": x.qp, "ipb": x.ipb, "oy": orig[0], "ou": orig[1],
                            "ov": orig[2], "dy": state.deblocked[0], "du": state.deblocked[1], "dv": state.deblocked[2]})
            encode(video.frames, ccfg, fps=video.fps, on_picture=grab)
            new = [{k: np.asarray(v).astype(np.uint16) for k, v in p.items()} for p in new]
            np.savez(path, n=len(new), **{f"{i}_{k}": v for i, p in enumerate(new) for k, v in p.items()})
            pics += new
            log(f"data: {clip} qp {qp}: {len(new)} pictures")
    return pics


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


def _batch(pics, rng, cfg, kind, bd):
    import numpy as np
    xs, ts = [], []
    for _ in range(cfg.batch):
        pic = pics[rng.integers(len(pics))]
        h, w = pic["y"].shape
        p = min(cfg.patch, h - h % 8, w - w % 8)
        y0 = 8 * rng.integers(0, (h - p) // 8 + 1)
        x0 = 8 * rng.integers(0, (w - p) // 8 + 1)
        sl = (slice(y0, y0 + p), slice(x0, x0 + p))
        x, t = (_luma_inputs if kind == "luma" else _chroma_inputs)(pic, sl, bd)
        if rng.integers(2):  # horizontal flip augmentation
            x, t = tuple(a[:, ::-1] for a in x), t[:, ::-1]
        xs.append(x)
        ts.append(t)
    return tuple(np.stack([x[i] for x in xs]) for i in range(5)), np.stack(ts)


def _psnr(mse, bd=8):
    import math
    return float("inf") if mse <= 0 else 10 * math.log10(((1 << bd) - 1) ** 2 / mse)


def train(cfg: NNLFTrainConfig, *, out_dir, export_to=None, progress: bool = True) -> dict:
    import json
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

    t0 = time.perf_counter()
    pics = make_data(cfg, out, log=log)
    bd = 8
    log("data ready", pictures=len(pics), seconds=time.perf_counter() - t0)
    mcfg = lf.LoopFilterConfig(width=cfg.width, features=cfg.features, blocks=cfg.blocks)
    models, timing = {}, {"data_s": time.perf_counter() - t0}
    for kind, make, steps in (("luma", lf.LumaFilter, cfg.luma_steps), ("chroma", lf.ChromaFilter, cfg.chroma_steps)):
        ckpt = out / f"ckpt_{kind}"
        model = make(mcfg, rngs=nnx.Rngs(cfg.seed))
        if ckpt.exists():
            models[kind] = lf.restore_checkpoint(ckpt, model)
            log(f"{kind}: restored {ckpt}")
            continue
        t1 = time.perf_counter()
        sched = optax.warmup_cosine_decay_schedule(0.0, cfg.lr, min(100, steps // 10 + 1), steps, cfg.lr * 0.05)
        tx = optax.adam(sched)
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        opt_state = tx.init(params)
        step = lf.make_train_step(tx, graphdef)
        rng = np.random.default_rng(cfg.seed + (kind == "chroma"))
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=steps, desc=f"train {kind}", leave=False)
        run = 0.0
        for i in range(steps):
            x, t = _batch(pics, rng, cfg, kind, bd)
            params, opt_state, loss = step(params, rest, opt_state, tuple(jnp.asarray(a) for a in x), jnp.asarray(t))
            run = 0.98 * run + 0.02 * float(loss) if i else float(loss)
            if bar:
                bar.update(1)
                bar.set_postfix(loss=f"{run:.3g}")
            if i % 100 == 0 or i == steps - 1:
                # baseline: the unfiltered rec itself
                base = float(np.mean((x[0] - t) ** 2))
                log(f"{kind} step {i}", step=i, loss=float(loss), loss_avg=run, base=base,
                    psnr_gain=_psnr(run * 255**2) - _psnr(base * 255**2))
        if bar:
            bar.close()
        model = nnx.merge(graphdef, params, rest)
        lf.save_checkpoint(ckpt, model)
        timing[f"{kind}_train_s"] = time.perf_counter() - t1
        models[kind] = model

    # Integer conversion, calibrated on training patches.
    rng = np.random.default_rng(cfg.seed + 7)
    graphs = {}
    for kind in ("luma", "chroma"):
        samples = [_batch(pics, rng, cfg, kind, bd)[0] for _ in range(8)]
        graphs[kind] = convert.convert(models[kind], samples, [lf.INPUT_BOUND] * 5, act_bits=cfg.act_bits,
                                       min_weight_bits=cfg.min_weight_bits)
    meta = {"name": Path(export_to).name if export_to else out.name, "config": dataclasses.asdict(cfg)}
    model_path = out / nnlf.MODEL_FILE
    digest = nnlf.save_model(model_path, graphs["luma"], graphs["chroma"], meta)
    log("converted", digest=digest.hex(), bytes=model_path.stat().st_size)

    # Evaluation on whole pictures (every 4th): deblocked vs float NN vs integer NN.
    imodel = nnlf.load_model(model_path)
    fwd_l = jax.jit(lambda *a: models["luma"](*a))
    fwd_c = jax.jit(lambda *a: models["chroma"](*a))
    sse = {k: np.zeros(3) for k in ("deblocked", "float", "int", "unfiltered")}
    npx = np.zeros(3)

    for pic in pics[::4]:
        full = (slice(0, None), slice(0, None))
        xl, tl = _luma_inputs(pic, full, bd)
        xc, _ = _chroma_inputs(pic, full, bd)
        fl = np.asarray(fwd_l(*(a[None] for a in xl)))[0, ..., 0]
        fc = np.asarray(fwd_c(*(a[None] for a in xc)))[0]
        float_planes = [np.clip(np.floor(p * 256 + 0.5), 0, 255) for p in (fl, fc[..., 0], fc[..., 1])]
        int_planes = nnlf.filter_planes(imodel, _inputs_from_pic(pic), bit_depth=bd)
        for c, key in enumerate("yuv"):
            o = pic["o" + key].astype(np.float64)
            sse["deblocked"][c] += np.sum((pic["d" + key] - o) ** 2)
            sse["unfiltered"][c] += np.sum((pic[key] - o) ** 2)
            sse["float"][c] += np.sum((float_planes[c] - o) ** 2)
            sse["int"][c] += np.sum((int_planes[c] - o) ** 2)
            npx[c] += o.size
    psnr = {k: [round(_psnr(v[c] / npx[c]), 4) for c in range(3)] for k, v in sse.items()}
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
            shutil.copytree(out / f"ckpt_{kind}", dst / f"ckpt_{kind}")
        (dst / "train_result.json").write_text(json.dumps(result, indent=1))
    log("done", **result)
    return result


def _inputs_from_pic(pic):
    import numpy as np

    from runtime import nnlf
    i32 = lambda a: np.asarray(a, np.int32)  # noqa: E731
    return nnlf.FilterInputs((i32(pic["y"]), i32(pic["u"]), i32(pic["v"])), (i32(pic["py"]), i32(pic["pu"]), i32(pic["pv"])),
                             i32(pic["bs"]), i32(pic["qp"]), i32(pic["ipb"]))
