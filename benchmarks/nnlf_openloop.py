"""Open-loop gain of NN loop-filter models on held-out pictures, without re-encoding per model.

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/nnlf_openloop.py --clips bigbuckbunny --frames 5 \
        --models nnlf_small path/to/other.jxnnlf --cache /tmp/nnlf_openloop

Encodes each clip once per QP with the filter off (``ra``), captures every picture's filter
inputs and its deblocked output (`runtime.encoder.encode(on_picture=)`), then runs each model
through the integer runtime on those pictures. Per QP and model: the PSNR gain of the NN output
over deblocking on whole frames (the filter on everywhere) and with a per-CTU oracle (the better
of the two per CTU, without flag bits: the most CTU flags can give). Useful to compare training
recipes in minutes; the in-loop BD-rate (`benchmarks/nnlf.py`) is the figure that counts,
since the encoder's flags are RD-decided and filtered references change later pictures.

Last stdout line: one JSON object ``{"models": {model: {clip: {qp: {...}}}}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

def capture(clip: str, qp: int, frames: int, cache: str, config: str) -> list[dict]:
    """The pictures of one encode (filter off), cached as npz under ``cache``."""
    from jaxcodec.config import load_coding_config
    from jaxcodec.errors import InputError
    from jaxcodec.io import read_video
    from runtime.train_nnlf import capture_pictures, load_pictures, save_pictures

    safe = "".join(ch if ch.isalnum() else "_" for ch in clip)
    path = os.path.join(cache, f"{safe}_{frames}_{config}_qp{qp}.npz")
    if not os.path.isfile(path):
        video = read_video(clip, max_frames=frames)
        if video.frames.bit_depth != 8:
            raise InputError(f"{clip}: the NN loop-filter models are 8-bit, this clip is {video.frames.bit_depth}-bit")
        save_pictures(path, capture_pictures(video.frames, load_coding_config(config, qp=qp, nnlf=False), fps=video.fps))
    return load_pictures(path)


def gains(model, pics, ctu_size: int) -> dict:
    """Mean over pictures of the frame-level and CTU-oracle PSNR gains (dB) per plane."""
    import numpy as np

    from runtime import nnlf
    from runtime.train_nnlf import inputs_from_picture

    out = {"frame": [[], [], []], "ctu_oracle": [[], [], []]}
    for pic in pics:
        nn = nnlf.filter_planes(model, inputs_from_picture(pic), bit_depth=8)
        for c, k in enumerate("yuv"):
            o = pic["o" + k].astype(np.float64)
            e_d, e_n = (pic["d" + k] - o) ** 2, (nn[c] - o) ** 2
            cs = ctu_size >> (c > 0)
            h, w = o.shape
            hh, ww = -(-h // cs) * cs, -(-w // cs) * cs

            def per_ctu(e):
                return np.pad(e, ((0, hh - h), (0, ww - w))).reshape(hh // cs, cs, ww // cs, cs).sum((1, 3))

            best = np.minimum(per_ctu(e_d), per_ctu(e_n)).sum() / o.size
            out["frame"][c].append(10 * np.log10(e_d.mean() / e_n.mean()))
            out["ctu_oracle"][c].append(10 * np.log10(e_d.mean() / best))
    return {kind: {k: round(float(np.mean(v[c])), 4) for c, k in enumerate("yuv")} for kind, v in out.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="+", default=["bigbuckbunny"])
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--qps", nargs="+", type=int, default=[22, 27, 32, 37])
    ap.add_argument("--config", default="ra")
    ap.add_argument("--models", nargs="+", default=["nnlf_medium"], help="model names in models/ or .jxnnlf paths")
    ap.add_argument("--cache", default=None, help="directory for the captured pictures (default: a temporary one)")
    args = ap.parse_args(argv)

    from jaxcodec.config import load_coding_config
    from runtime import nnlf

    ctu = load_coding_config(args.config).ctu_size
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or tmp
        os.makedirs(cache, exist_ok=True)
        result = {"frames": args.frames, "config": args.config, "models": {}}
        models = {m: nnlf.load_model(m) for m in args.models}
        for clip in args.clips:
            for qp in args.qps:
                pics = capture(clip, qp, args.frames, cache, args.config)
                for name, model in models.items():
                    g = gains(model, pics, ctu)
                    result["models"].setdefault(name, {}).setdefault(clip, {})[str(qp)] = g
                    print(f"{clip} qp {qp} {name}: frame dY {g['frame']['y']:+.3f} dU {g['frame']['u']:+.3f} "
                          f"dV {g['frame']['v']:+.3f}; CTU oracle dY {g['ctu_oracle']['y']:+.3f} dB", flush=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
