"""CABAC engine throughput (Mbins/s) on one core: encode, count (RDO backend) and decode.

The bins are synthetic (content does not change the engine's work per bin): 75 % regular bins
over 64 contexts with skewed probabilities, 25 % bypass, as in residual-dominated slices. A
``--syntax`` run also times `syntax.write_frame` / `parse_frame` on random valid frames when
the syntax module is available. Medians of ``--repeats`` runs; the last stdout line is one
JSON object.

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
    res = {
        "bins": args.bins,
        "encode_mbins_s": round(args.bins / t_enc / 1e6, 1),
        "count_mbins_s": round(args.bins / t_cnt / 1e6, 1),
        "decode_mbins_s": round(args.bins / t_dec / 1e6, 1),
        "bits_per_bin": round(8 * len(payload) / args.bins, 4),
        "count_vs_actual": round(counted / E.FRAC_ONE / (8 * len(payload)), 5),
    }
    print(f"encode {res['encode_mbins_s']} Mbins/s, count {res['count_mbins_s']} Mbins/s, "
          f"decode {res['decode_mbins_s']} Mbins/s (median of {args.repeats}, {args.bins} bins)")
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
