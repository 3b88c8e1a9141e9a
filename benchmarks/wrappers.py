"""BD-rate of a wrapped codec (P -> codec -> O) against the bare codec (paper 004 Tables 1-2).

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/wrappers.py --clips bigbuckbunny --codec x264 \\
        --model models/wrapper_x264_terms_dlm

Both pipelines run side by side on the same frames and QPs (22, 27, 32, 37; 30 frames) through
`wrappers.evaluate.compare`, which says what is scored: SSIM, MS-SSIM, DLM (the loss's own
scores, Y, Cb, Cr weighted 4:1:1) and PSNR-YUV; VMAF only where libvmaf exists (not in this
PyAV build: reported "unavailable"). ``ALL`` is the mean BD-rate over the perceptual scores, as
in paper 004 Tables 1-2; negative = the wrapper saves rate. ``--ensemble`` sets how many
symmetries of each frame P and O run on (default 8; 1 = one plain pass). ``--stream-strength
GRID`` scores O at each factor of GRID and keeps, per clip and QP, the one an encoder that sees the
source would pick (`wrappers.strength.pick_stream_strength`).
The last stdout line is one JSON object. bigbuckbunny is held out from wrapper training.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    from wrappers.cli import ENSEMBLE_CHOICES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", default=["bigbuckbunny"])
    parser.add_argument("--codec", default="x264")
    parser.add_argument("--model", default=None, help="wrapper model dir (default: the shipped one for --codec, "
                        "wrappers.deploy.default_model: models/wrapper_x265_terms_dlm behind x265, else models/wrapper_x264_terms_dlm)")
    parser.add_argument("--qps", default="22,27,32,37")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--ensemble", type=int, default=None, choices=ENSEMBLE_CHOICES,
                        help="self-ensemble size of P and O (default: wrappers.deploy.DEFAULT_ENSEMBLE, 8; "
                        "16 also reverses a temporal O's neighbours in time)")
    parser.add_argument("--strength", type=float, default=None,
                        help="scale O's correction by this factor instead of the model's (wrappers.strength)")
    parser.add_argument("--stream-strength", default=None, metavar="GRID",
                        help="comma-separated factors: per clip and QP, keep the one an encoder that sees the "
                        "source picks (wrappers.strength.pick_stream_strength; 1 is always added)")
    args = parser.parse_args(argv)

    from jaxcodec.errors import JaxcodecError
    from wrappers.deploy import DEFAULT_ENSEMBLE, default_model, get_codec, set_strength
    from wrappers.evaluate import METRICS, PERCEPTUAL, compare
    from wrappers.strength import parse_grid
    from wrappers.train import load_wrapper

    qps = [int(q) for q in args.qps.split(",")]
    model = args.model or str(default_model(args.codec))
    t0 = time.perf_counter()
    try:  # a missing model, codec or clip is the user's: one line, no traceback
        wrapper, meta = load_wrapper(model)
        set_strength(wrapper, args.strength)
        grid = None if args.stream_strength is None else parse_grid(args.stream_strength, "--stream-strength")
        res = compare({"wrapped": wrapper}, get_codec(args.codec), args.clips, qps=qps, frames=args.frames,
                      log=lambda line: print(line, flush=True), ensemble=args.ensemble, stream_strengths=grid)
    except JaxcodecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for clip in args.clips:
        print(json.dumps({"clip": clip, "bd_rate": res["bd_rate_per_clip"]["wrapped"][clip]}), flush=True)
    summary = res["bd_rate"]["wrapped"]
    result = {
        "codec": args.codec, "model": model, "clips": args.clips, "qps": qps, "frames": args.frames,
        "ensemble": DEFAULT_ENSEMBLE if args.ensemble is None else args.ensemble,
        "strength": None if wrapper.post is None else wrapper.post.strength,
        **({} if grid is None else {"stream_strength": {
            "grid": list(grid), "picked": {c: [r["strength"] for r in res["rd"][c]["wrapped"]] for c in args.clips}}}),
        "bd_rate": {**{m: summary[m] for m in METRICS}, "vmaf": "unavailable (no libvmaf in this FFmpeg build)"},
        "bd_rate_all": res["bd_rate_all"]["wrapped"],
        "all_over": list(PERCEPTUAL),
        "seconds": time.perf_counter() - t0,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
