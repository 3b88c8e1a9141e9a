"""CABAC engine throughput (Mbins/s) on one core: encode, count (RDO backend) and decode.

The bins are synthetic (content does not change the engine's work per bin): 75 % regular bins
over 64 contexts with skewed probabilities, 25 % bypass, as in residual-dominated slices. The
frame syntax is timed on 176x144 frames: a random valid B frame (`syntax.random_frame`) and a
dense intra frame (Laplacian levels at every position, ~12 KB, heavier than a QP 22 I frame).
No ``--clips``: real clips need the encoder (runtime), which this engine-level benchmark does not
depend on. Medians of ``--repeats`` runs; the last stdout line is one JSON object.

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/cabac_speed.py --bins 5000000
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from jaxcodec.codec.entropy import engine as E


def _bins(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    probs = rng.uniform(0, 1, 64) ** 3
    probs = np.where(rng.uniform(size=64) < 0.5, probs, 1 - probs)
    kinds = np.where(rng.uniform(size=n) < 0.25, E.KIND_BYPASS, E.KIND_REGULAR).astype(np.int8)
    ids = rng.integers(0, 64, n).astype(np.int32)
    bins = (rng.uniform(size=n) < probs[ids]).astype(np.int8)
    return kinds, ids, bins, E.init_states(rng.integers(0, 256, 64), 32)


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _syntax_timings(repeats: int) -> dict:
    from jaxcodec.codec.blocks import CoeffPlanes
    from jaxcodec.codec.entropy import syntax as S

    out = {}
    info_b = S.FrameSyntaxInfo(width=176, height=144, slice_type="B", qp=22, poc=4, refs_l0=(0,), refs_l1=(8,))
    info_i = S.FrameSyntaxInfo(width=176, height=144, slice_type="I", qp=22)
    d_b, c_b = S.random_frame(info_b, 0)
    d_i, c_i = S.random_frame(info_i, 0, cbf_prob=0.0)
    rng = np.random.default_rng(0)
    dense = CoeffPlanes(*(np.round(rng.laplace(0, sc, p.shape)).astype(np.int32)
                          for p, sc in ((c_i.y, 1.2), (c_i.u, 0.6), (c_i.v, 0.6))))
    d_i = S.parse_frame(S.write_frame(d_i, dense, info_i)[0], info_i)[0]  # cbfs of the dense levels
    for name, d, c, info in (("random_b", d_b, c_b, info_b), ("dense_i", d_i, dense, info_i)):
        payload, _ = S.write_frame(d, c, info)
        S.parse_frame(payload, info)
        out[f"{name}_bytes"] = len(payload)
        out[f"{name}_write_ms"] = round(1e3 * _median_time(lambda: S.write_frame(d, c, info), repeats), 3)
        out[f"{name}_parse_ms"] = round(1e3 * _median_time(lambda: S.parse_frame(payload, info), repeats), 3)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bins", type=int, default=5_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    kinds, ids, bins, ctx0 = _bins(args.bins)
    payload, _, _ = E.encode_bins(kinds[:1000], ids[:1000], bins[:1000], ctx0)  # compile
    E.decode_bins(payload, kinds[:1000], ids[:1000], ctx0)
    E.encode_bins(kinds[:1000], ids[:1000], bins[:1000], ctx0, mode=E.MODE_COUNT)
    payload, _, frac = E.encode_bins(kinds, ids, bins, ctx0)
    t_enc = _median_time(lambda: E.encode_bins(kinds, ids, bins, ctx0), args.repeats)
    t_cnt = _median_time(lambda: E.encode_bins(kinds, ids, bins, ctx0, mode=E.MODE_COUNT), args.repeats)
    t_dec = _median_time(lambda: E.decode_bins(payload, kinds, ids, ctx0), args.repeats)
    _, _, counted = E.encode_bins(kinds, ids, bins, ctx0, mode=E.MODE_COUNT)
    frames = _syntax_timings(args.repeats * 4)
    res = {
        "bins": args.bins,
        "encode_mbins_s": round(args.bins / t_enc / 1e6, 1),
        "count_mbins_s": round(args.bins / t_cnt / 1e6, 1),
        "decode_mbins_s": round(args.bins / t_dec / 1e6, 1),
        "bits_per_bin": round(8 * len(payload) / args.bins, 4),
        "count_vs_actual": round(counted / E.FRAC_ONE / (8 * len(payload)), 5),
        **frames,
    }
    print(f"encode {res['encode_mbins_s']} Mbins/s, count {res['count_mbins_s']} Mbins/s, "
          f"decode {res['decode_mbins_s']} Mbins/s (median of {args.repeats}, {args.bins} bins)")
    print(f"176x144 frames: {frames}")
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
