"""`make demo`: encode + decode carphone with the default config (RA, QP 22/27/32/37, the shipped
NN loop filter `models/nnlf_medium` on, as `jaxcodec encode` does by default), verify
every frame's MD5 (the decoder does, and the output is compared with the encoder's
reconstruction), print a summary table and write an RD plot (ours vs x264 medium).

    python -m runtime.demo [--frames 30] [--out demo_out]
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="jaxcodec demo")
    ap.add_argument("--clip", default="carphone")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--config", default="ra")
    ap.add_argument("--out", default="demo_out")
    args = ap.parse_args(argv)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")

    import numpy as np

    from jaxcodec.codecs.registry import get_codec
    from jaxcodec.config import load_coding_config
    from jaxcodec.io import atomic_write_bytes, read_video, write_y4m
    from runtime.bench import bd_rate_or_nan, psnr_means
    from runtime.cli import ENCODER_DEFAULTS
    from runtime.decoder import decode
    from runtime.encoder import encode

    os.makedirs(args.out, exist_ok=True)
    video = read_video(args.clip, max_frames=args.frames)
    frames, fps = video.frames, video.fps
    n = frames.y.shape[0]
    cfg = load_coding_config(args.config, defaults=ENCODER_DEFAULTS, frame_threads=2)
    rows = []
    print(f"jaxcodec demo: {args.clip} {frames.y.shape[2]}x{frames.y.shape[1]}, {n} frames, config {args.config}, "
          f"NN loop filter {'on (' + (cfg.nnlf_model or 'nnlf_medium') + ')' if cfg.nnlf else 'off'}")
    print(f"{'qp':>3s} {'kbps':>8s} {'PSNR-Y':>7s} {'PSNR-U':>7s} {'PSNR-V':>7s} {'YUV':>7s} {'enc s':>7s} {'dec s':>7s}  md5")
    for qp in (22, 27, 32, 37):
        t0 = time.perf_counter()
        data, recon = encode(frames, cfg.replace(qp=qp))
        t1 = time.perf_counter()
        dec = decode(data)  # raises on any MD5 mismatch
        t2 = time.perf_counter()
        same = all(np.array_equal(getattr(dec, c), getattr(recon, c)) for c in "yuv")
        if not same:
            print("decoder output differs from the encoder reconstruction", file=sys.stderr)
            return 1
        atomic_write_bytes(os.path.join(args.out, f"{args.clip}_{args.config}_qp{qp}.jxc"), data)
        if qp == 32:
            write_y4m(os.path.join(args.out, f"{args.clip}_{args.config}_qp{qp}.y4m"), dec, fps)
        q = psnr_means(frames, dec)
        kbps = len(data) * 8 / (n / float(fps)) / 1000
        rows.append({"qp": qp, "kbps": kbps, **q})
        print(f"{qp:3d} {kbps:8.1f} {q['psnr_y']:7.2f} {q['psnr_u']:7.2f} {q['psnr_v']:7.2f} {q['psnr_yuv']:7.2f} "
              f"{t1 - t0:7.1f} {t2 - t1:7.1f}  ok ({n} frames)")
    x264, anchor = [], get_codec("x264:medium")
    for qp in (22, 27, 32, 37):
        res = anchor.encode(frames, qp=qp, fps=fps)
        x264.append({"kbps": float(res.bits_per_frame.sum()) / (n / float(fps)) / 1000, **psnr_means(frames, res.recon)})
    for metric in ("psnr_y", "psnr_yuv"):
        print(f"BD-rate ({metric}) vs x264 medium: {bd_rate_or_nan(x264, rows, metric):+.1f}%")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["kbps"] for r in rows], [r["psnr_y"] for r in rows], "o-", label=f"jaxcodec {args.config}")
    ax.plot([r["kbps"] for r in x264], [r["psnr_y"] for r in x264], "s--", label="x264 medium")
    ax.set_xlabel("kbps")
    ax.set_ylabel("PSNR-Y (dB)")
    ax.set_title(f"{args.clip}, {n} frames")
    ax.grid(True, alpha=0.3)
    ax.legend()
    png = os.path.join(args.out, f"rd_{args.clip}.png")
    fig.savefig(png, dpi=100, bbox_inches="tight")
    print(f"RD plot: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
