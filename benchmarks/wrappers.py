"""BD-rate of a wrapped codec (P -> codec -> O) against the bare codec (paper 004 Tables 1-2).

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/wrappers.py --clips bigbuckbunny --codec x264 \\
        --model models/wrapper_x264_small

Both pipelines run side by side on the same frames and QPs (22, 27, 32, 37; 30 frames).
Scores against the source: SSIM, MS-SSIM, DLM (perceptual, the loss's own
`jaxcodec.metrics.differentiable` scores over Y, Cb, Cr weighted 4:1:1) and PSNR-YUV (6:1:1,
mean of per-frame PSNRs, `jaxcodec.metrics.psnr`); VMAF only where libvmaf exists (not in this
PyAV build: reported "unavailable"). ``ALL`` is the mean BD-rate over the perceptual scores, as
in paper 004 Tables 1-2. BD-rate: `jaxcodec.metrics.bdrate` (pchip, JVET CTC) of log-rate over
the score (negative = the wrapper saves rate; NaN, reason on stderr, where the curves allow none).
The last stdout line is one JSON object. bigbuckbunny is held out from wrapper training.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PERCEPTUAL = ("ssim", "ms_ssim", "dlm")


def _scores(source, decoded) -> dict:
    """Per-clip mean scores: the wrapper loss's metrics (`wrappers.loss.metric_functions`) and PSNR-YUV."""
    import jax
    import jax.numpy as jnp

    from runtime.bench import psnr_means
    from wrappers.loss import PLANE_WEIGHTS, metric_functions

    ssim_fn, ms_ssim_fn, dlm_fn = (jax.jit(f) for f in metric_functions())
    out = {"ssim": 0.0, "ms_ssim": 0.0, "dlm": 0.0}
    total = sum(PLANE_WEIGHTS)
    for w, a, b in zip(PLANE_WEIGHTS, source.planes, decoded.planes):
        a = jnp.asarray(a, jnp.float32) / 255.0
        b = jnp.asarray(b, jnp.float32) / 255.0
        out["ssim"] += w / total * float(jnp.mean(ssim_fn(a, b)))
        out["ms_ssim"] += w / total * float(jnp.mean(ms_ssim_fn(a, b)))
        out["dlm"] += w / total * float(jnp.mean(dlm_fn(a, b)))
    out["psnr_yuv"] = psnr_means(source, decoded)["psnr_yuv"]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", default=["bigbuckbunny"])
    parser.add_argument("--codec", default="x264")
    parser.add_argument("--model", default=None, help="wrapper model dir (default models/wrapper_x264_small)")
    parser.add_argument("--qps", default="22,27,32,37")
    parser.add_argument("--frames", type=int, default=30)
    args = parser.parse_args(argv)

    from jaxcodec.io import read_video
    from runtime.bench import bd_rate_or_nan
    from wrappers.deploy import DEFAULT_MODEL, get_codec, postprocess, preprocess
    from wrappers.train import load_wrapper

    qps = [int(q) for q in args.qps.split(",")]
    model = args.model or str(DEFAULT_MODEL)
    wrapper, meta = load_wrapper(model)
    codec = get_codec(args.codec)
    metrics = (*PERCEPTUAL, "psnr_yuv")
    per_clip = {}
    t0 = time.perf_counter()
    for clip in args.clips:
        video = read_video(clip, max_frames=args.frames)
        src = video.frames
        rows = {"bare": [], "wrapped": []}
        for qp in qps:
            bare = codec.encode(src, qp=qp, fps=video.fps)
            # Without P the codec input is the source itself (bit-identical, tests/test_wrappers_deploy.py).
            wrapped = bare if wrapper.pre is None else codec.encode(preprocess(wrapper, src), qp=qp, fps=video.fps)
            out = postprocess(wrapper, wrapped.recon)
            seconds = src.y.shape[0] / float(video.fps)
            for name, result, decoded in (("bare", bare, bare.recon), ("wrapped", wrapped, out)):
                row = {"qp": qp, "kbps": float(result.bits_per_frame.sum()) / seconds / 1000, **_scores(src, decoded)}
                rows[name].append(row)
                print(json.dumps({"clip": clip, "pipeline": name, **row}), flush=True)
        bd = {}
        for m in metrics:
            bd[m] = bd_rate_or_nan(rows["bare"], rows["wrapped"], m)
        per_clip[clip] = {"bd_rate": bd, "rd": rows}
        print(json.dumps({"clip": clip, "bd_rate": bd}), flush=True)

    summary = {m: float(np.mean([per_clip[c]["bd_rate"][m] for c in args.clips])) for m in metrics}
    result = {
        "codec": args.codec, "model": model, "clips": args.clips, "qps": qps, "frames": args.frames,
        "bd_rate": {**summary, "vmaf": "unavailable (no libvmaf in this FFmpeg build)"},
        "bd_rate_all": float(np.mean([summary[m] for m in PERCEPTUAL])),
        "all_over": list(PERCEPTUAL),
        "seconds": time.perf_counter() - t0,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
