"""SSIM / MS-SSIM / PSNR / DLM speed: ours (JAX, jitted) vs scikit-image, side by side in one run.

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/metrics_speed.py --clips bikes --size 1280x720

A luma frame pair (a clip's first frame, resized to --size by edge padding/tiling, and the same
frame with Gaussian noise) is scored repeatedly; medians after one compile call. scikit-image's
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`` is the
reference for SSIM (it has no MS-SSIM). Last stdout line: one JSON object with the medians and
the speed ratio (scikit-image time / ours) and the SSIM difference.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000.0 * float(np.median(times))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="+", default=["bikes"], help="clip names or paths (first frame of each)")
    ap.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT of the frame pair (default 1280x720)")
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args(argv)

    import jax
    from skimage.metrics import structural_similarity

    from jaxcodec.io import read_video
    from jaxcodec.metrics.dlm import dlm
    from jaxcodec.metrics.psnr import psnr
    from jaxcodec.metrics.ssim import ms_ssim, ssim

    w, h = (int(x) for x in args.size.lower().split("x"))
    rng = np.random.default_rng(0)
    result = {"size": f"{w}x{h}", "device": jax.devices()[0].platform, "clips": {}}
    for clip in args.clips:
        y = np.asarray(read_video(clip, max_frames=1).frames.y[0], np.float32)
        ref = np.tile(y, (-(-h // y.shape[0]), -(-w // y.shape[1])))[:h, :w]
        dist = np.clip(np.round(ref + rng.normal(0, 6, ref.shape)), 0, 255).astype(np.float32)
        ja, jb = jax.device_put(ref), jax.device_put(dist)
        ours = {}
        for name, fn in (("ssim", ssim), ("ms_ssim", ms_ssim), ("psnr", psnr), ("dlm", dlm)):
            fn(ja, jb).block_until_ready()  # compile
            ours[name] = _median_ms(lambda fn=fn: fn(ja, jb).block_until_ready(), args.repeats)
        sk_kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
        sk_ms = _median_ms(lambda: structural_similarity(ref.astype(np.float64), dist.astype(np.float64), **sk_kw),
                           max(3, args.repeats // 3))
        diff = abs(float(ssim(ja, jb)) - structural_similarity(ref.astype(np.float64), dist.astype(np.float64), **sk_kw))
        row = {"ours_ms": {k: round(v, 2) for k, v in ours.items()}, "skimage_ssim_ms": round(sk_ms, 2),
               "ssim_speedup_vs_skimage": round(sk_ms / ours["ssim"], 2),
               "ms_ssim_vs_skimage_ssim_time": round(sk_ms / ours["ms_ssim"], 2), "ssim_abs_diff": diff}
        print(f"{clip} {w}x{h}: ours SSIM {ours['ssim']:.1f} ms, MS-SSIM {ours['ms_ssim']:.1f} ms, "
              f"PSNR {ours['psnr']:.1f} ms, DLM {ours['dlm']:.1f} ms; scikit-image SSIM {sk_ms:.1f} ms "
              f"(x{sk_ms / ours['ssim']:.2f}); |dSSIM| {diff:.2e}", flush=True)
        result["clips"][clip] = row
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
