"""Per-frame alignment of the proxy with its target codec (paper 004 section 4, "Two-phase pretraining").

For every clip and QP the target codec and the proxy code the same frames with the same
GOP (intra, then inter frames). Per frame we compare the target's bits R_C with the proxy's
calibrated rate R_M (eq. 3) and the target's luma PSNR with the proxy's, both against the
source, and report Pearson correlations pooled over all frames of all clips and QPs (the
paper's figure) and the mean within-QP correlation (harder: content only). The "before"
row is the same architecture without pretraining (initialised weights, eq. 3 map fitted on
the same frames so only the pretraining differs), the paper's ablation.

    .venv/bin/python benchmarks/proxy_alignment.py --clips bigbuckbunny --target x264

Last stdout line: JSON with pcc_rate, pcc_psnr (after pretraining), the "before" figures,
and per-QP figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _psnr_y(dist, ref) -> list[float]:
    """Per-frame luma PSNR of Frames ``dist`` vs ``ref`` (`jaxcodec.metrics.psnr`, peak of ``ref``'s bit depth)."""
    from jaxcodec.metrics.psnr import psnr

    return np.asarray(psnr(dist.y, ref.y, peak=float(ref.peak)), np.float64).tolist()


def _pcc(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="+", required=True, help="clip names (carphone, bikes, bigbuckbunny) or Y4M paths")
    ap.add_argument("--target", default="x264")
    ap.add_argument("--model", default=str(ROOT / "models" / "proxy_x264_refined"))
    ap.add_argument("--qps", default="22,27,32,37,42")
    ap.add_argument("--frames", type=int, default=16, help="frames per clip (a multiple of the GOP)")
    ap.add_argument("--gop", type=int, default=4)
    args = ap.parse_args(argv)

    from flax import nnx

    from jaxcodec.errors import JaxcodecError
    from jaxcodec.io import read_video
    from proxy.ssf import SSFModel, estimate_clip, fit_calibration, load_model
    from proxy.train import resolve_target

    try:
        model, _, calibration, meta = load_model(args.model)
        target = resolve_target(args.target, gop=args.gop)
        untrained = SSFModel(model.config, rngs=nnx.Rngs(0))
        qps = [int(q) for q in args.qps.split(",")]
        rows = {k: [] for k in ("clip", "qp", "intra", "bits_target", "bits_hyp", "bits", "bits_hyp0", "psnr_target",
                                "psnr_proxy", "psnr_proxy0", "pixels")}
        t0 = time.perf_counter()
        for clip in args.clips:
            video = read_video(clip, max_frames=args.frames)
            frames = video.frames
            n = frames.y.shape[0] // args.gop * args.gop
            frames = frames[:n]
            for qp in qps:
                result = target.encode(frames, qp=qp)
                est = estimate_clip(model, frames, qp=qp, gop=args.gop, calibration=calibration)
                est0 = estimate_clip(untrained, frames, qp=qp, gop=args.gop)
                rows["clip"] += [video.name] * n
                rows["qp"] += [qp] * n
                rows["intra"] += list(np.arange(n) % args.gop == 0)
                rows["bits_target"] += list(np.asarray(result.bits_per_frame, np.float64))
                rows["bits_hyp"] += list(est.bits_hyp)
                rows["bits"] += list(est.bits)
                rows["bits_hyp0"] += list(est0.bits_hyp)
                rows["psnr_target"] += list(_psnr_y(result.recon, frames))
                rows["psnr_proxy"] += list(_psnr_y(est.recon, frames))
                rows["psnr_proxy0"] += list(_psnr_y(est0.recon, frames))
                rows["pixels"] += [frames.height * frames.width] * n
                print(f"{video.name} qp {qp}: target {np.sum(result.bits_per_frame) / n:.0f} bits/frame "
                      f"{np.mean(rows['psnr_target'][-n:]):.2f} dB | proxy {np.sum(est.bits) / n:.0f} bits/frame "
                      f"{np.mean(rows['psnr_proxy'][-n:]):.2f} dB", flush=True)
    except JaxcodecError as e:
        print(f"proxy_alignment: error: {e}", file=sys.stderr)
        return 2
    r = {k: np.asarray(v) for k, v in rows.items()}
    intra = r["intra"].astype(bool)
    # "before": the untrained proxy with its own eq. 3 map fitted on these frames (favours it)
    cal0 = fit_calibration(r["bits_hyp0"] / r["pixels"], r["bits_target"] / r["pixels"], intra)
    bits0 = np.where(intra, cal0.alpha_intra * r["bits_hyp0"] + cal0.beta_intra * r["pixels"],
                     cal0.alpha_inter * r["bits_hyp0"] + cal0.beta_inter * r["pixels"])
    within_rate = [_pcc(r["bits_target"][r["qp"] == q], r["bits"][r["qp"] == q]) for q in qps]
    within_psnr = [_pcc(r["psnr_target"][r["qp"] == q], r["psnr_proxy"][r["qp"] == q]) for q in qps]
    out = {
        "clips": args.clips, "target": args.target, "qps": qps, "frames_per_clip": int(args.frames), "gop": args.gop,
        "model": str(args.model), "num_frames": int(r["qp"].size),
        "pcc_rate": _pcc(r["bits_target"], r["bits"]),
        "pcc_psnr": _pcc(r["psnr_target"], r["psnr_proxy"]),
        "pcc_rate_hyp": _pcc(r["bits_target"], r["bits_hyp"]),
        "pcc_rate_before": _pcc(r["bits_target"], bits0),
        "pcc_rate_hyp_before": _pcc(r["bits_target"], r["bits_hyp0"]),
        "pcc_psnr_before": _pcc(r["psnr_target"], r["psnr_proxy0"]),
        "pcc_rate_within_qp_mean": float(np.nanmean(within_rate)),
        "pcc_psnr_within_qp_mean": float(np.nanmean(within_psnr)),
        "rate_ratio_proxy_over_target": float(np.sum(r["bits"]) / np.sum(r["bits_target"])),
        "psnr_mean_abs_error_db": float(np.mean(np.abs(r["psnr_proxy"] - r["psnr_target"]))),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
