"""RD points of our codec (LD, RA) vs x264 / x265 medium (PyAV), side by side in one run.

    .venv/bin/python benchmarks/rd_codec.py --clips carphone bikes --frames 30

Per clip and QP (22/27/32/37): kbps, PSNR-Y/U/V, PSNR-YUV (6Y+U+V)/8; BD-rate (pchip,
PSNR-Y and PSNR-YUV) of ours vs x264; encode fps (wall, after a warm-up encode that pays
JIT compilation), single-thread decode fps of ours (process pinned to one core) and of FFmpeg's
H.264 decoder (thread_count=1) on the x264 stream of the same QP, and their ratio. The last
stdout line is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from fractions import Fraction

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def psnr(a, b, peak=255.0):
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 100.0 if mse == 0 else 10 * np.log10(peak * peak / mse)


def quality(orig, rec):
    y, u, v = (psnr(getattr(orig, c), getattr(rec, c)) for c in "yuv")
    return {"psnr_y": y, "psnr_u": u, "psnr_v": v, "psnr_yuv": (6 * y + u + v) / 8}


def bd_rate(r_ref, q_ref, r_test, q_test):
    """Bjontegaard delta rate (%) with piecewise-cubic Hermite interpolation (VCEG-M33 / JVET)."""
    from scipy.interpolate import PchipInterpolator

    lr_ref, lr_test = np.log10(r_ref), np.log10(r_test)
    o1, o2 = np.argsort(q_ref), np.argsort(q_test)
    lo = max(min(q_ref), min(q_test))
    hi = min(max(q_ref), max(q_test))
    if hi <= lo:
        return float("nan")
    f1 = PchipInterpolator(np.asarray(q_ref)[o1], lr_ref[o1])
    f2 = PchipInterpolator(np.asarray(q_test)[o2], lr_test[o2])
    a1 = f1.integrate(lo, hi)
    a2 = f2.integrate(lo, hi)
    return float((10 ** ((a2 - a1) / (hi - lo)) - 1) * 100)


def ffmpeg_encode(frames, codec: str, qp: int, fps: Fraction):
    """Encode with libx264/libx265 preset medium at a fixed QP; returns (packets, recon, enc_s, dec_s)."""
    import av

    from jaxcodec.frame import Frame

    n, h, w = frames.y.shape
    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuv420p"
    ctx.time_base = Fraction(1, 1) / fps
    ctx.framerate = fps
    if codec == "libx264":
        ctx.options = {"preset": "medium", "qp": str(qp)}
    else:
        ctx.options = {"preset": "medium", "x265-params": f"qp={qp}:log-level=none"}
    packets = []
    t0 = time.perf_counter()
    for i in range(n):
        img = np.concatenate([frames.y[i], frames.u[i].reshape(-1, w), frames.v[i].reshape(-1, w)])
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="yuv420p")
        vf.pts = i
        packets += [bytes(p) for p in ctx.encode(vf)]
    packets += [bytes(p) for p in ctx.encode(None)]
    enc_s = time.perf_counter() - t0
    dec = av.CodecContext.create("h264" if codec == "libx264" else "hevc", "r")
    dec.thread_count = 1
    dec.extradata = ctx.extradata
    out = []
    t0 = time.perf_counter()
    for p in packets:
        out += dec.decode(av.Packet(p))
    out += dec.decode(None)
    dec_s = time.perf_counter() - t0
    ys, us, vs = [], [], []
    for f in out:
        a = f.to_ndarray(format="yuv420p")
        ys.append(a[:h])
        us.append(a[h:h + h // 4].reshape(h // 2, w // 2))
        vs.append(a[h + h // 4:].reshape(h // 2, w // 2))
    rec = Frame(y=np.stack(ys), u=np.stack(us), v=np.stack(vs))
    return packets, rec, enc_s, dec_s


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="+", default=["carphone", "bikes"])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--qps", nargs="+", type=int, default=[22, 27, 32, 37])
    ap.add_argument("--configs", nargs="+", default=["ld", "ra"])
    ap.add_argument("--threads", type=int, default=2, help="encoder frame threads")
    args = ap.parse_args(argv)

    from jaxcodec.config import load_coding_config
    from jaxcodec.io import read_video
    from runtime.decoder import decode
    from runtime.encoder import encode

    cpus = sorted(os.sched_getaffinity(0))
    headline = {}
    for clip in args.clips:
        video = read_video(clip, max_frames=args.frames)
        frames, fps = video.frames, video.fps
        n = frames.y.shape[0]
        rows = {}
        for codec in ("libx264", "libx265"):
            for qp in args.qps:
                packets, rec, enc_s, dec_s = ffmpeg_encode(frames, codec, qp, fps)
                kbps = sum(map(len, packets)) * 8 / (n / float(fps)) / 1000
                rows.setdefault(codec, []).append({"qp": qp, "kbps": kbps, **quality(frames, rec),
                                                   "enc_fps": n / enc_s, "dec_fps": n / dec_s})
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
                rows.setdefault(f"ours:{name}", []).append({"qp": qp, "kbps": kbps, **quality(frames, rec),
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
            bd_y = bd_rate([r["kbps"] for r in ref], [r["psnr_y"] for r in ref], [r["kbps"] for r in rs], [r["psnr_y"] for r in rs])
            bd_yuv = bd_rate([r["kbps"] for r in ref], [r["psnr_yuv"] for r in ref], [r["kbps"] for r in rs],
                             [r["psnr_yuv"] for r in rs])
            dec_fps = float(np.median([r["dec_fps"] for r in rs]))
            enc_fps = float(np.median([r["enc_fps"] for r in rs]))
            print(f"{codec:12s} BD-rate vs x264 medium: Y {bd_y:+.1f}%  YUV {bd_yuv:+.1f}%  enc {enc_fps:.2f} fps  "
                  f"dec {dec_fps:.1f} fps (x {dec_fps / h264_dec:.3f} of FFmpeg H.264 at {h264_dec:.0f} fps)")
            headline[f"{clip}/{codec}"] = {"bd_rate_y_vs_x264": round(bd_y, 2), "bd_rate_yuv_vs_x264": round(bd_yuv, 2),
                                           "enc_fps": round(enc_fps, 2), "dec_fps_1t": round(dec_fps, 1),
                                           "dec_speed_ratio_vs_h264": round(dec_fps / h264_dec, 4)}
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
