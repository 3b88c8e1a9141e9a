"""``jaxcodec bench``: rate-quality points of any registered codecs, BD-rates, tables and RD plots.

    jaxcodec bench --codecs ours:ra,x264:medium,x265:medium --clips carphone,bikes \\
        --qps 22,27,32,37 --frames 30 -o results/

For every codec x clip x QP: kbps (per-frame bits in display order, summed), mean per-frame
PSNR-Y/U/V and PSNR-YUV (weights 6:1:1 by default), SSIM and MS-SSIM of luma, encode and
decode fps (wall time of the codec's encoder / decoder), VMAF where a user's FFmpeg has
libvmaf (else "unavailable"). BD-rates (pchip) of every codec vs the first, per clip, for
PSNR-YUV, PSNR-Y, SSIM and MS-SSIM. Outputs (all written atomically): ``results.json``
(``points``, ``bd_rate``, ``settings``), ``results.md`` and ``rd_<clip>.png``.

Before the timed encodes each codec encodes the first two frames of each clip once, so
JIT compilation (our codec) is not billed to its fps. The module top level imports no JAX.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

BD_METRICS = ("psnr_yuv", "psnr_y", "ssim", "ms_ssim")


def _csv(text: str, what: str, cast=str) -> list:
    from jaxcodec.errors import ConfigError

    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise ConfigError(f"--{what} is empty")
    try:
        return [cast(t) for t in items]
    except ValueError:
        raise ConfigError(f"--{what}: cannot read {text!r} as a comma-separated list of {cast.__name__}") from None


def psnr_means(ref, dist, *, weights=(6.0, 1.0, 1.0)) -> dict:
    """``psnr_y/u/v/yuv``: means over frames of the per-frame PSNRs (JVET reporting), as floats."""
    import numpy as np

    from jaxcodec.metrics.psnr import psnr_frame

    p = psnr_frame(ref, dist, weights=weights)
    return {"psnr_y": float(np.mean(p.y)), "psnr_u": float(np.mean(p.u)), "psnr_v": float(np.mean(p.v)),
            "psnr_yuv": float(np.mean(p.yuv))}


def bd_value(anchor: list[dict], test: list[dict], metric: str, *, method: str = "pchip") -> tuple:
    """(BD-rate % of ``test`` vs ``anchor`` on ``metric`` or ``"n/a: why"``, overlap warning or None).

    ``anchor`` and ``test`` are RD points (dicts with ``kbps`` and ``metric``).
    """
    from jaxcodec.errors import InputError
    from jaxcodec.metrics.bdrate import bd_rate

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = bd_rate([p["kbps"] for p in anchor], [p[metric] for p in anchor],
                            [p["kbps"] for p in test], [p[metric] for p in test], method=method)
    except InputError as e:
        return f"n/a: {e}", None
    return value, (str(caught[0].message) if caught else None)


def bd_rate_or_nan(anchor: list[dict], test: list[dict], metric: str, *, method: str = "pchip") -> float:
    """`bd_value` for scripts that want a number: NaN where there is none, the reason or overlap warning on stderr."""
    import sys

    value, warning = bd_value(anchor, test, metric, method=method)
    if warning or not isinstance(value, float):
        print(f"BD-rate {metric}: {warning or value}", file=sys.stderr)
    return value if isinstance(value, float) else float("nan")


def measure_point(codec, frames, fps, qp: int, *, weights=(6.0, 1.0, 1.0)) -> dict:
    """One RD point: encode + decode through ``codec`` and score the decoder's output."""
    import numpy as np

    from jaxcodec.metrics import vmaf as vmaf_mod
    from jaxcodec.metrics.ssim import ms_ssim, ssim

    res = codec.encode(frames, qp=qp, fps=fps)
    n = frames.y.shape[0]
    if tuple(res.recon.y.shape) != tuple(frames.y.shape):
        from jaxcodec.errors import InputError

        raise InputError(f"{codec.name} returned frames of {tuple(res.recon.y.shape)} for input {tuple(frames.y.shape)}")
    peak = float(frames.peak)
    v = vmaf_mod.vmaf(frames, res.recon, fps=fps)
    return {
        "qp": int(qp),
        "frames": int(n),
        "bits": int(np.sum(res.bits_per_frame)),
        "kbps": float(np.sum(res.bits_per_frame)) / (n / float(fps)) / 1000.0,
        **psnr_means(frames, res.recon, weights=weights),
        "ssim": float(np.mean(ssim(frames.y, res.recon.y, peak=peak))),
        "ms_ssim": float(np.mean(ms_ssim(frames.y, res.recon.y, peak=peak))),
        "vmaf": vmaf_mod.UNAVAILABLE if v is None else v,
        "enc_fps": n / max(res.encode_seconds, 1e-9),
        "dec_fps": n / max(res.decode_seconds, 1e-9),
    }


def bd_table(points: list[dict], codecs: list[str], clips: list[str], *, method: str = "pchip") -> dict:
    """{clip: {codec: {metric: BD-rate % or "n/a: why"}}} of every codec vs ``codecs[0]``."""
    out: dict = {}
    for clip in clips:
        anchor = [p for p in points if p["clip"] == clip and p["codec"] == codecs[0]]
        for name in codecs[1:]:
            test = [p for p in points if p["clip"] == clip and p["codec"] == name]
            row = {}
            for m in BD_METRICS:
                value, warning = bd_value(anchor, test, m, method=method)
                row[m] = round(value, 3) if isinstance(value, float) else value
                if warning:
                    row[f"{m}_warning"] = warning
            out.setdefault(clip, {})[name] = row
    return out


def markdown(points: list[dict], bd: dict, codecs: list[str], clips: list[str]) -> str:
    lines = ["# jaxcodec bench", ""]
    for clip in clips:
        lines += [f"## {clip}", "",
                  "| codec | QP | kbps | PSNR-Y | PSNR-U | PSNR-V | PSNR-YUV | SSIM | MS-SSIM | VMAF | enc fps | dec fps |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for p in (p for c in codecs for p in points if p["clip"] == clip and p["codec"] == c):
            vm = p["vmaf"] if isinstance(p["vmaf"], str) else f"{p['vmaf']:.2f}"
            lines.append(f"| {p['codec']} | {p['qp']} | {p['kbps']:.1f} | {p['psnr_y']:.2f} | {p['psnr_u']:.2f} | "
                         f"{p['psnr_v']:.2f} | {p['psnr_yuv']:.2f} | {p['ssim']:.4f} | {p['ms_ssim']:.4f} | {vm} | "
                         f"{p['enc_fps']:.1f} | {p['dec_fps']:.1f} |")
        if len(codecs) > 1:
            from jaxcodec.metrics.complexity import time_ratio

            def seconds(name, key):  # total encode / decode time of the codec's points on this clip
                return sum(p["frames"] / p[key] for p in points if p["clip"] == clip and p["codec"] == name)

            lines += ["", f"BD-rate (pchip, %) vs {codecs[0]}, and EncT / DecT (total time vs {codecs[0]}):", "",
                      "| codec | PSNR-YUV | PSNR-Y | SSIM | MS-SSIM | EncT | DecT |",
                      "|---|---:|---:|---:|---:|---:|---:|"]
            for name in codecs[1:]:
                row = bd[clip][name]
                cells = [f"{row[m]:+.2f}" if isinstance(row[m], float) else "n/a" for m in BD_METRICS]
                cells += [time_ratio(seconds(name, k), seconds(codecs[0], k)) for k in ("enc_fps", "dec_fps")]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
            notes = [f"- {name} {m}: {row[m]}" for name in codecs[1:] for m, row in [(m, bd[clip][name]) for m in BD_METRICS]
                     if isinstance(row[m], str)]
            lines += [""] + notes if notes else []
        lines.append("")
    return "\n".join(lines)


def rd_plot(points: list[dict], codecs: list[str], clip: str, path: Path) -> None:
    """PSNR-YUV and MS-SSIM vs kbps for one clip, written atomically as PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxcodec.io import atomic_write_bytes

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name in codecs:
        pts = sorted((p for p in points if p["clip"] == clip and p["codec"] == name), key=lambda p: p["kbps"])
        for ax, m in zip(axes, ("psnr_yuv", "ms_ssim")):
            ax.plot([p["kbps"] for p in pts], [p[m] for p in pts], "o-", label=name)
    for ax, label in zip(axes, ("PSNR-YUV (dB)", "MS-SSIM (Y)")):
        ax.set_xscale("log")
        ax.set_xlabel("kbps")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(clip)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def run_bench(codec_names: list[str], clip_names: list[str], qps: list[int], *, frames: int | None, out_dir,
              weights="611", progress: bool = True, warmup: bool = True) -> dict:
    """Measure every point, write results.json / results.md / rd_<clip>.png under ``out_dir``."""
    from tqdm import tqdm

    from jaxcodec.codecs.registry import get_codec
    from jaxcodec.errors import ConfigError
    from jaxcodec.io import atomic_open, read_video
    from jaxcodec.metrics import vmaf as vmaf_mod
    from jaxcodec.metrics.psnr import yuv_weights

    w = yuv_weights(weights)
    if frames is not None and frames < 1:
        raise ConfigError(f"--frames must be >= 1, got {frames}")
    if len(set(codec_names)) != len(codec_names) or len(set(clip_names)) != len(clip_names):
        raise ConfigError("--codecs and --clips must not repeat a name")
    codecs = [get_codec(name) for name in codec_names]  # unknown names fail before any work
    videos = [read_video(clip, max_frames=frames) for clip in clip_names]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    points = []
    bar = tqdm(total=len(codecs) * len(videos) * len(qps), disable=not progress, desc="bench", unit="point")
    for name, codec in zip(codec_names, codecs):
        for clip, video in zip(clip_names, videos):
            if warmup:
                codec.encode(video.frames[: min(2, len(video.frames))], qp=qps[0], fps=video.fps)
            for qp in qps:
                bar.set_postfix_str(f"{name} {clip} QP{qp}")
                point = {"codec": name, "clip": clip, **measure_point(codec, video.frames, video.fps, qp, weights=w)}
                points.append(point)
                bar.update()
    bar.close()
    bd = bd_table(points, codec_names, clip_names)
    result = {
        "points": points,
        "bd_rate": bd,
        "settings": {"codecs": codec_names, "clips": clip_names, "qps": qps, "frames": frames,
                     "psnr_yuv_weights": list(w), "bd_method": "pchip", "bd_anchor": codec_names[0],
                     "ssim_plane": "Y", "vmaf": "libvmaf" if vmaf_mod.vmaf_available() else vmaf_mod.UNAVAILABLE},
    }
    with atomic_open(out_dir / "results.json", "w") as f:
        json.dump(result, f, indent=1)
    with atomic_open(out_dir / "results.md", "w") as f:
        f.write(markdown(points, bd, codec_names, clip_names))
    for clip in clip_names:
        rd_plot(points, codec_names, clip, out_dir / f"rd_{Path(clip).stem}.png")
    return result


def _bench(args) -> int:
    result = run_bench(_csv(args.codecs, "codecs"), _csv(args.clips, "clips"), _csv(args.qps, "qps", int),
                       frames=args.frames, out_dir=args.output, weights=args.weights, progress=not args.quiet,
                       warmup=not args.no_warmup)
    settings = result["settings"]
    for clip, rows in result["bd_rate"].items():
        for name, row in rows.items():
            value = row["psnr_yuv"]
            shown = f"{value:+.2f}%" if isinstance(value, float) else value
            print(f"{clip}: {name} vs {settings['bd_anchor']} BD-rate (PSNR-YUV) {shown}")
    print(f"wrote {Path(args.output) / 'results.json'}, results.md and {len(settings['clips'])} RD plot(s)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("bench", help="RD points, BD-rates, tables and RD plots of registered codecs")
    p.add_argument("--codecs", required=True, help="comma-separated codec names; the first is the BD anchor "
                   "(x264:medium, x265:medium, svtav1:8, ours:ra, ...)")
    p.add_argument("--clips", required=True, help="comma-separated clip names (carphone, bikes) or video paths")
    p.add_argument("--qps", default="22,27,32,37", help="comma-separated QPs (default 22,27,32,37)")
    p.add_argument("--frames", type=int, default=None, help="frames per clip (default: all)")
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.add_argument("--weights", default="611", help="PSNR-YUV weights: 611 (default), 411, 1011")
    p.add_argument("--no-warmup", action="store_true", help="skip the untimed 2-frame warm-up encode")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_bench)
