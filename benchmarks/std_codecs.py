"""x265 vs x264 (and optionally SVT-AV1) BD-rates through `jaxcodec bench`'s own code path.

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/std_codecs.py --clips carphone bikes --frames 30

Preset medium, fixed QP 22/27/32/37, PSNR-YUV (6Y+U+V)/8, pchip BD-rate vs x264:medium; one
encoder thread (deterministic). Writes the bench outputs to --out. Last stdout line: one JSON
object with the BD-rates per clip and metric.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="+", default=["carphone", "bikes"])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--qps", nargs="+", type=int, default=[22, 27, 32, 37])
    ap.add_argument("--codecs", nargs="+", default=["x264:medium", "x265:medium"], help="first = anchor")
    ap.add_argument("--out", default="results/std_codecs")
    args = ap.parse_args(argv)

    from runtime.bench import run_bench

    result = run_bench(args.codecs, args.clips, args.qps, frames=args.frames, out_dir=args.out, progress=False)
    headline = {"anchor": args.codecs[0], "frames": args.frames, "qps": args.qps, "bd_rate_pct": result["bd_rate"]}
    for clip, rows in result["bd_rate"].items():
        for name, row in rows.items():
            print(f"{clip}: {name} vs {args.codecs[0]}: " +
                  ", ".join(f"{m} {v:+.2f}%" if isinstance(v, float) else f"{m} {v}" for m, v in row.items()
                            if not m.endswith("_warning")), flush=True)
    print(json.dumps(headline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
