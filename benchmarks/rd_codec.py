"""RD points of our codec (LD, RA) vs x264 / x265 medium (PyAV), side by side in one run.

    .venv/bin/python benchmarks/rd_codec.py --clips carphone bikes --frames 30

Per clip and QP (22/27/32/37): kbps, PSNR-Y/U/V and PSNR-YUV (6Y+U+V)/8 as means of per-frame
PSNRs (`jaxcodec.metrics.psnr`, JVET reporting); BD-rate (pchip, `jaxcodec.metrics.bdrate`,
PSNR-Y and PSNR-YUV) of ours and x265 vs x264 (and of our LD also vs x264 without B-frames,
``x264:medium:ld``, its like-for-like low-delay anchor); encode fps (wall, after a warm-up encode that pays
JIT compilation), single-thread decode fps of ours (process pinned to one core) and of FFmpeg's
H.264 decoder (thread_count=1, timed by `jaxcodec.codecs.ffmpeg` including the conversion to
arrays) on the x264 stream of the same QP, and their ratio. x264/x265 are the registry's
``x264:medium`` / ``x265:medium`` adapters with one encoder thread by default (``--anchor-threads``):
x264's frame threading costs it compression (carphone RA: our BD-rate -3.3 % against 2-thread x264,
+1.6 % against 1-thread x264), so the anchor runs the way that compresses best, as `jaxcodec bench`
does. ``--threads`` sets our frame threads (our bytes do not depend on it). The last stdout line is
one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# row label -> registry name. x264:medium:ld (no B-frames) is the like-for-like anchor of our LD
# configuration: comparing a low-delay coder only with a reordering one mixes the structure's
# cost into the BD-rate.
FFMPEG = {"libx264": "x264:medium", "libx265": "x265:medium", "libx264:ld": "x264:medium:ld"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="+", default=["carphone", "bikes"])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--qps", nargs="+", type=int, default=[22, 27, 32, 37])
    ap.add_argument("--configs", nargs="+", default=["ld", "ra"])
    ap.add_argument("--threads", type=int, default=2, help="our encoder's frame threads")
    ap.add_argument("--anchor-threads", type=int, default=1, help="x264/x265 encoder threads (1: best compression)")
    args = ap.parse_args(argv)

    from jaxcodec.codecs.registry import get_codec
    from jaxcodec.config import load_coding_config
    from jaxcodec.io import read_video
    from runtime.bench import bd_rate_or_nan, psnr_means
    from runtime.decoder import decode
    from runtime.encoder import encode

    ffmpeg = {label: get_codec(name, threads=args.anchor_threads) for label, name in FFMPEG.items()}

    cpus = sorted(os.sched_getaffinity(0))
    headline = {}
    for clip in args.clips:
        video = read_video(clip, max_frames=args.frames)
        frames, fps = video.frames, video.fps
        n = frames.y.shape[0]
        rows = {}
        for label, codec in ffmpeg.items():
            for qp in args.qps:
                res = codec.encode(frames, qp=qp, fps=fps)
                kbps = float(res.bits_per_frame.sum()) / (n / float(fps)) / 1000
                rows.setdefault(label, []).append({"qp": qp, "kbps": kbps, **psnr_means(frames, res.recon),
                                                   "enc_fps": n / res.encode_seconds, "dec_fps": n / res.decode_seconds})
        for name in args.configs:
            cfg = load_coding_config(name, frame_threads=args.threads)
            encode(frames, cfg.replace(qp=args.qps[0]))  # warm-up: JIT compilation is per shape, paid once
            for qp in args.qps:
                t0 = time.perf_counter()
                data, rec = encode(frames, cfg.replace(qp=qp))
                enc_s = time.perf_counter() - t0
                os.sched_setaffinity(0, {cpus[0]})  # single-thread decode
                decode(data)  # warm
                t0 = time.perf_counter()
                dec = decode(data)
                dec_s = time.perf_counter() - t0
                os.sched_setaffinity(0, set(cpus))
                assert all(np.array_equal(getattr(dec, c), getattr(rec, c)) for c in "yuv")
                kbps = len(data) * 8 / (n / float(fps)) / 1000
                rows.setdefault(f"ours:{name}", []).append({"qp": qp, "kbps": kbps, **psnr_means(frames, rec),
                                                            "enc_fps": n / enc_s, "dec_fps": n / dec_s})
        print(f"\n== {clip} ({frames.y.shape[2]}x{frames.y.shape[1]}, {n} frames) ==")
        print(f"{'codec':12s} {'qp':>3s} {'kbps':>9s} {'Y':>6s} {'U':>6s} {'V':>6s} {'YUV':>6s} {'enc fps':>8s} {'dec fps':>8s}")
        for codec, rs in rows.items():
            for r in rs:
                print(f"{codec:12s} {r['qp']:3d} {r['kbps']:9.1f} {r['psnr_y']:6.2f} {r['psnr_u']:6.2f} {r['psnr_v']:6.2f} "
                      f"{r['psnr_yuv']:6.2f} {r['enc_fps']:8.2f} {r['dec_fps']:8.1f}")
        ref = rows["libx264"]
        h264_dec = float(np.median([r["dec_fps"] for r in ref]))
        for codec, rs in rows.items():
            if codec == "libx264":
                continue
            bd_y, bd_yuv = bd_rate_or_nan(ref, rs, "psnr_y"), bd_rate_or_nan(ref, rs, "psnr_yuv")
            dec_fps = float(np.median([r["dec_fps"] for r in rs]))
            enc_fps = float(np.median([r["enc_fps"] for r in rs]))
            print(f"{codec:12s} BD-rate vs x264 medium: Y {bd_y:+.1f}%  YUV {bd_yuv:+.1f}%  enc {enc_fps:.2f} fps  "
                  f"dec {dec_fps:.1f} fps (x {dec_fps / h264_dec:.3f} of FFmpeg H.264 at {h264_dec:.0f} fps)")
            headline[f"{clip}/{codec}"] = {"bd_rate_y_vs_x264": round(bd_y, 2), "bd_rate_yuv_vs_x264": round(bd_yuv, 2),
                                           "enc_fps": round(enc_fps, 2), "dec_fps_1t": round(dec_fps, 1),
                                           "dec_speed_ratio_vs_h264": round(dec_fps / h264_dec, 4)}
            if codec.endswith(":ld") and codec != "libx264:ld" and "libx264:ld" in rows:
                ld_ref = rows["libx264:ld"]
                ld_y, ld_yuv = bd_rate_or_nan(ld_ref, rs, "psnr_y"), bd_rate_or_nan(ld_ref, rs, "psnr_yuv")
                print(f"{codec:12s} BD-rate vs x264 medium low delay (no B-frames): Y {ld_y:+.1f}%  YUV {ld_yuv:+.1f}%")
                headline[f"{clip}/{codec}"].update(bd_rate_y_vs_x264_ld=round(ld_y, 2), bd_rate_yuv_vs_x264_ld=round(ld_yuv, 2))
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
