"""Float vs integer PSNR of an NN loop filter under integer conversion profiles (paper 001 IV-B).

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/nnlf_quant.py --clips carphone bikes --frames 5 \
        --model nnlf_small --act-bits 12 14 16 --cache /tmp/nnlf_openloop

Re-converts the model's float checkpoints (``ckpt_luma``/``ckpt_chroma`` beside the model file)
with each activation width (`runtime.nnint.convert`, static calibration on 8 batches of 16
patches of the captured pictures, as ``jaxcodec train nnlf`` does) and reports, per profile:
float-minus-integer PSNR of the luma and chroma outputs against the source over whole pictures,
the execution path of every conv (``f`` exact float32, ``s`` float32 on split 8-bit halves,
``i`` int32) and the weight bits each layer keeps. The pictures are captured from encodes with
the filter off (`benchmarks/nnlf_openloop.capture`): pick training clips to choose a profile
and keep held-out clips for reporting. Last stdout line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def profile_gap(fmodels: dict, pics: list, act_bits: int, min_weight_bits: int) -> dict:
    """Convert both float models at ``act_bits`` and measure the float-minus-integer PSNR per plane."""
    import numpy as np

    from jaxcodec.nn import loopfilter as lf
    from runtime import nnlf
    from runtime.nnint import convert, execute
    from runtime.train_nnlf import NNLFTrainConfig, _batch, float_minus_int_db, picture_errors

    cfg = NNLFTrainConfig(clips=(), batch=16, patch=64)
    rng = np.random.default_rng(0)
    graphs, layers = {}, {}
    for kind, model in fmodels.items():
        samples = [_batch(pics, rng, cfg, kind, 8)[0] for _ in range(8)]
        g = convert.convert(model, samples, [lf.INPUT_BOUND] * 5, act_bits=act_bits, min_weight_bits=min_weight_bits)
        graphs[kind] = g
        paths = execute.plan(g, allow_f64=False)
        layers[kind] = {"paths": "".join({"f32": "f", "f32split": "s"}.get(p, p[0]) for p in paths.values()),
                        "weight_bits": [int(math.ceil(math.log2(np.abs(g.nodes[i].params["w"]).max() + 1)))
                                        for i in paths]}
    imodel = nnlf.NNLFModel(graphs["luma"], graphs["chroma"], b"", {})
    gap = float_minus_int_db(picture_errors(fmodels, imodel, pics))
    return {"float_minus_int_psnr_db": gap, "layers": layers}


def main(argv=None) -> int:
    from nnlf_openloop import capture

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="+", default=["carphone", "bikes"])
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--qps", nargs="+", type=int, default=[22, 27, 32, 37])
    ap.add_argument("--config", default="ra")
    ap.add_argument("--model", default="nnlf_medium", help="model name in models/ or .jxnnlf path (float checkpoints beside it)")
    ap.add_argument("--act-bits", nargs="+", type=int, default=[12, 14, 16])
    ap.add_argument("--min-weight-bits", type=int, default=4)
    ap.add_argument("--cache", default=None, help="directory for the captured pictures (default: a temporary one)")
    args = ap.parse_args(argv)

    from jaxcodec.errors import JaxcodecError
    from runtime import nnlf
    from runtime.train_nnlf import float_models

    try:
        fmodels = float_models(nnlf.load_model(args.model))
    except (JaxcodecError, KeyError, FileNotFoundError) as e:
        print(f"error: {args.model}: cannot load the model and its float checkpoints ({e})", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or tmp
        os.makedirs(cache, exist_ok=True)
        pics = [p for clip in args.clips for qp in args.qps for p in capture(clip, qp, args.frames, cache, args.config)]
    result = {"model": args.model, "clips": args.clips, "pictures": len(pics), "profiles": {}}
    for bits in args.act_bits:
        r = profile_gap(fmodels, pics, bits, args.min_weight_bits)
        result["profiles"][str(bits)] = r
        g, lay = r["float_minus_int_psnr_db"], r["layers"]["luma"]
        print(f"act_bits {bits}: float - integer PSNR Y {g['y']:+.4f} U {g['u']:+.4f} V {g['v']:+.4f} dB; "
              f"luma paths {lay['paths']} weight bits {lay['weight_bits']}", flush=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
