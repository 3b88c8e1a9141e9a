"""BD-rate of our codec with the NN in-loop filter on vs off, on a held-out clip, in one run.

    JAX_PLATFORMS=cpu nice -n 19 .venv/bin/python benchmarks/nnlf.py --clips bigbuckbunny --frames 9

RA config, QP 22/27/32/37, anchor = nnlf off. Quality: per-frame PSNR averaged over frames
(JVET CTC), PSNR-Y and PSNR-YUV (6Y+U+V)/8; pchip BD-rate (jaxcodec.metrics.bdrate). Also
the encoder and decoder time ratios (on / off; EncT, DecT) and how often the encoder switched
the filter on (frames and CTUs, from the streams' NNLF flags). Every stream is decoded and
checked against the encoder's reconstruction. Last stdout line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _psnr_frames(a, b, peak=255.0):
    import numpy as np
    d = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2
    mse = d.reshape(d.shape[0], -1).mean(1)
    return 10 * np.log10(peak * peak / np.maximum(mse, 1e-10))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="+", default=["bigbuckbunny"])
    ap.add_argument("--frames", type=int, default=9)
    ap.add_argument("--qps", nargs="+", type=int, default=[22, 27, 32, 37])
    ap.add_argument("--config", default="ra")
    ap.add_argument("--nnlf-model", default="", help="model name/path (default: the shipped nnlf_small)")
    args = ap.parse_args(argv)

    import numpy as np

    from jaxcodec.config import load_coding_config
    from jaxcodec.io import read_video
    from jaxcodec.metrics.bdrate import bd_rate
    from runtime import bitstream as bs
    from runtime import nnlf
    from runtime.decoder import decode
    from runtime.encoder import encode

    model = nnlf.load_model(args.nnlf_model)
    result = {"config": args.config, "frames": args.frames, "qps": args.qps, "model": model.path,
              "model_id": model.digest.hex(), "clips": {}}
    for clip in args.clips:
        video = read_video(clip, max_frames=args.frames)
        f = video.frames
        n = f.y.shape[0]
        rows = {"off": [], "on": []}
        times = {"off": [0.0, 0.0], "on": [0.0, 0.0]}
        usage = {"frames_on": 0, "frames": 0, "components_on": [0, 0, 0], "ctu_flags_on": 0, "ctu_flags": 0}
        # Warm-up (jit compilation) outside the timings, for both modes.
        for mode in ("off", "on"):
            cfg = load_coding_config(args.config, qp=args.qps[0], nnlf=mode == "on", nnlf_model=args.nnlf_model)
            small = type(f)(y=f.y[:2], u=f.u[:2], v=f.v[:2], bit_depth=f.bit_depth)
            d, _ = encode(small, cfg.replace(intra_period=-1, gop_size=2) if args.config == "ra" else cfg)
            decode(d, nnlf_model=model)
        for qp in args.qps:
            for mode in ("off", "on"):
                cfg = load_coding_config(args.config, qp=qp, nnlf=mode == "on", nnlf_model=args.nnlf_model)
                t0 = time.perf_counter()
                data, recon = encode(f, cfg, fps=video.fps)
                t1 = time.perf_counter()
                dec = decode(data, nnlf_model=model)
                t2 = time.perf_counter()
                for c in "yuv":
                    if not np.array_equal(getattr(dec, c), getattr(recon, c)):
                        raise SystemExit(f"{clip} qp {qp} {mode}: decoder output != encoder reconstruction")
                times[mode][0] += t1 - t0
                times[mode][1] += t2 - t1
                py, pu, pv = (_psnr_frames(getattr(recon, c), getattr(f, c)) for c in "yuv")
                kbps = len(data) * 8 / (n / float(video.fps)) / 1000
                row = {"qp": qp, "kbps": kbps, "psnr_y": float(py.mean()), "psnr_u": float(pu.mean()),
                       "psnr_v": float(pv.mean()), "psnr_yuv": float(((6 * py + pu + pv) / 8).mean()),
                       "enc_s": t1 - t0, "dec_s": t2 - t1}
                rows[mode].append(row)
                if mode == "on":
                    seq, frames = bs.parse_stream(data)
                    ph, pw = -(-seq.height // 8) * 8, -(-seq.width // 8) * 8
                    grid = nnlf.ctu_grid((ph, pw), seq.ctu_size)
                    for fh, _ in frames:
                        usage["frames"] += 1
                        if fh.tool_flags & bs.TOOL_NNLF:
                            usage["frames_on"] += 1
                            fl = nnlf.unpack_flags(fh.nnlf, grid)
                            for c, m in enumerate(fl.modes):
                                usage["components_on"][c] += m != nnlf.MODE_OFF
                                if m == nnlf.MODE_CTU:
                                    usage["ctu_flags_on"] += int(fl.ctu[c].sum())
                                    usage["ctu_flags"] += fl.ctu[c].size
                print(f"{clip} qp {qp} nnlf {mode}: {row['kbps']:.1f} kbps  PSNR-Y {row['psnr_y']:.3f}  "
                      f"PSNR-YUV {row['psnr_yuv']:.3f}  enc {row['enc_s']:.1f}s  dec {row['dec_s']:.1f}s", flush=True)
        bd = {}
        for metric in ("psnr_y", "psnr_yuv"):
            try:
                bd[metric] = bd_rate([r["kbps"] for r in rows["off"]], [r[metric] for r in rows["off"]],
                                     [r["kbps"] for r in rows["on"]], [r[metric] for r in rows["on"]])
            except Exception as e:  # noqa: BLE001 (reported, not fatal)
                bd[metric] = f"unavailable: {e}"
        result["clips"][clip] = {
            "bd_rate_pct": bd, "enc_time_ratio": times["on"][0] / times["off"][0],
            "dec_time_ratio": times["on"][1] / times["off"][1], "usage": usage, "rows": rows}
        print(f"{clip}: BD-rate nnlf on vs off: " + ", ".join(
            f"{k} {v:+.2f}%" if isinstance(v, float) else f"{k} {v}" for k, v in bd.items())
            + f"; EncT {times['on'][0] / times['off'][0]:.2f}x DecT {times['on'][1] / times['off'][1]:.2f}x", flush=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
