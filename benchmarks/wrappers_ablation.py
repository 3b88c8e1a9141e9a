"""Component and training ablations of the wrappers (paper 004 Tables 3 and 4), from our own runs.

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/wrappers_ablation.py --clips bigbuckbunny --codec x264 \\
        --proxy models/proxy_x264_refined --config configs/wrappers_prepost_refined.toml --steps 200 \\
        --out runs/wrappers_ablation

Trains one wrapper per variant of the base config with Algorithm 1 (`wrappers.train.train`,
the same code as ``jaxcodec train wrappers``; each variant in its own run directory under
``--out``, so an interrupted benchmark resumes), then measures all of them against the bare
codec in one pass (`wrappers.evaluate.compare`: the bare stream is coded once per clip and QP).

- Table 3 (components): pre + post, pre only, post only.
- Table 4 (training): pre + post with everything on, without a pretrained proxy (random init,
  alpha = 1, beta = 0), without the iterative proxy update (frozen proxy), without the
  stop-gradient input of eq. 8 (O receives the proxy output I_M).

Every variant trains on the base config's clips (never the held-out bigbuckbunny) with the
same seed, so their batches and QPs are the same step by step. The last stdout line is one
JSON object: BD-rates (%) per variant and metric, ``all`` over the perceptual scores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# name -> (table, overrides of the base config)
VARIANTS = {
    "pre+post": ("3,4", {}),
    "pre only": ("3", {"post": False}),
    "post only": ("3", {"pre": False}),
    "no pretraining": ("4", {"pretrained": False}),
    "no iterative update": ("4", {"iterative_update": False}),
    "no stop-gradient": ("4", {"stop_gradient": False}),
}


def _slug(name: str) -> str:
    return name.replace("+", "_").replace(" ", "_").replace("-", "_")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", default=["bigbuckbunny"], help="held-out evaluation clips")
    parser.add_argument("--codec", default="x264")
    parser.add_argument("--proxy", default="models/proxy_x264_refined", help="pretrained proxy directory")
    parser.add_argument("--config", default="configs/wrappers_prepost_refined.toml", help="base training config")
    parser.add_argument("--steps", type=int, default=None, help="training steps per variant (default: the config's)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="NAME",
                        help=f"subset of: {', '.join(VARIANTS)}")
    parser.add_argument("--qps", default="22,27,32,37")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--ensemble", type=int, default=None, choices=(1, 2, 4, 8),
                        help="self-ensemble size of P and O in the comparison (default 8; the tables in "
                             "models/wrapper_x264_small.md were measured with 1, before it existed)")
    parser.add_argument("--out", default="runs/wrappers_ablation", help="one run directory per variant under it")
    args = parser.parse_args(argv)

    from jaxcodec.errors import JaxcodecError
    from proxy.data import load_pool
    from wrappers.deploy import get_codec
    from wrappers.evaluate import METRICS, compare
    from wrappers.train import load_train_config, load_wrapper, train

    try:
        base = load_train_config(args.config, steps=args.steps)
        if base.codec_on_full_frames:
            raise JaxcodecError("the ablations need the patch-stream recipe of Algorithm 1 (codec_on_full_frames = false)")
        qps = [int(q) for q in args.qps.split(",")]
        t0 = time.perf_counter()
        pool = load_pool(base.clips, max_frames=base.max_clip_frames)
        target = get_codec(args.codec, gop=base.gop)
        models, train_s = {}, {}
        for name in args.variants:
            cfg = load_train_config(args.config, steps=args.steps, **VARIANTS[name][1])
            t1 = time.perf_counter()
            result = train(cfg, target=target, target_name=args.codec, proxy_path=args.proxy,
                           out_dir=Path(args.out) / _slug(name), progress=False, pool=pool)
            train_s[name] = time.perf_counter() - t1
            models[name] = load_wrapper(result.model_dir)[0]
            print(json.dumps({"variant": name, "trained_steps": result.step, "seconds": train_s[name],
                              "last": result.last}), flush=True)
        res = compare(models, get_codec(args.codec), args.clips, qps=qps, frames=args.frames,
                      log=lambda line: print(line, flush=True), ensemble=args.ensemble)
    except JaxcodecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    for table in ("3", "4"):
        print(f"\nTable {table} ({args.codec}, BD-rate % vs bare, {', '.join(args.clips)}, {args.frames} frames, "
              f"{base.steps} steps)")
        print("| variant | " + " | ".join(METRICS) + " | ALL |")
        print("|---" * (len(METRICS) + 2) + "|")
        for name in args.variants:
            if table in VARIANTS[name][0]:
                bd = res["bd_rate"][name]
                print(f"| {name} | " + " | ".join(f"{bd[m]:+.1f}" for m in METRICS)
                      + f" | {res['bd_rate_all'][name]:+.1f} |")
    print(json.dumps({
        "codec": args.codec, "clips": args.clips, "qps": qps, "frames": args.frames, "steps": base.steps,
        "config": args.config, "proxy": args.proxy,
        "bd_rate": res["bd_rate"], "bd_rate_all": res["bd_rate_all"], "train_seconds": train_s,
        "seconds": time.perf_counter() - t0,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
