"""Does the proxy's input gradient point where the real codec goes? (wrappers train on it, paper 004 eq. 8)

For random GOP-long patch sequences of the clips, and random QPs in the target's range, the
proxy's calibrated rate R_M (eq. 3, wrappers' surrogate: straight-through rounding) is
differentiated with respect to the input frames. The kept GOP is then stepped by ``--eps``
code values against the gradient's sign, a step the proxy predicts lowers the rate, and both
the proxy and the real target codec code the stepped frames. Reported:
- ``rate_sign_agreement``: the fraction of sequences where the target's rate change has the
  sign the proxy predicted;
- ``rate_change_pcc``: the correlation of the two relative rate changes;
- the median relative changes;
- the same target changes for a random-sign step of the same size (``*_random``): any ±eps
  pattern costs a real codec rate and quality, so the gradient is useful only where it does
  better than that.
The same is done for the distortion: MSE of the proxy's reconstruction against the source, with
the target's own reconstruction error as the real counterpart.

A wrapper pre-processor follows exactly these gradients. When the sign agreement is near 0.5,
the proxy gives it no usable direction.

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/proxy_gradients.py --clips bigbuckbunny --target x264 \
        --model models/proxy_x264_medium

Last stdout line: one JSON object.
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="+", required=True, help="clip names or Y4M paths")
    ap.add_argument("--target", default="x264")
    ap.add_argument("--model", default=str(ROOT / "models" / "proxy_x264_refined"))
    ap.add_argument("--sequences", type=int, default=32, help="patch sequences (batch 1 each)")
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--eps", type=float, default=2.0, help="step in 8-bit code values")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import jax
    import jax.numpy as jnp

    from jaxcodec.errors import JaxcodecError
    from jaxcodec.frame import make_frame
    from jaxcodec.io import read_video
    from proxy.coders import ForwardCoder
    from proxy.data import PatchBatch, run_target, sample_batch
    from proxy.entropy_models import ste_round
    from proxy.ssf import apply_calibration, code_gop, load_model
    from proxy.train import _to_tensor, resolve_target
    from wrappers.nets import tensor_to_frames  # the rounding a pre-processor's output gets

    try:
        model, _, cal, meta = load_model(args.model)
        gop = int(meta.get("train_config", {}).get("gop", 4))
        target = resolve_target(args.target, gop=gop)
        pool = []
        for clip in args.clips:
            frames = read_video(clip, max_frames=4 * gop).frames
            if frames.bit_depth != 8:
                raise JaxcodecError(f"{clip}: 8-bit clips only")
            pool.append(frames)
    except JaxcodecError as e:
        print(f"proxy_gradients: error: {e}", file=sys.stderr)
        return 2
    cfg = model.config
    p2 = args.patch // 2

    def rate_and_mse(x, qp_index):
        coder = ForwardCoder(rate_surrogate=ste_round, synthesis_surrogate=ste_round, key=jax.random.key(0))
        recon, bits = code_gop(model, x, qp_index, coder)
        intra = (jnp.arange(x.shape[0]) == 0)[:, None]
        r_m = apply_calibration(cal, bits, intra, 4 * p2 * p2)
        return jnp.sum(r_m), jnp.mean((recon - x) ** 2)

    @jax.jit
    def gradients(x, q):
        """Both input gradients from one forward pass (one compile, not one per quantity)."""
        _, vjp = jax.vjp(lambda x: rate_and_mse(x, q), x)
        one, zero = jnp.ones((), x.dtype), jnp.zeros((), x.dtype)
        return {"rate": vjp((one, zero))[0], "mse": vjp((zero, one))[0]}

    evaluate = jax.jit(rate_and_mse)

    def target_on(pb, kept_tensor):
        """Target bits and reconstruction MSE for ``pb`` with its kept GOP replaced (rounded)."""
        kept = tensor_to_frames(jnp.moveaxis(kept_tensor, 0, 1))  # (B, T, ...), rounded to uint8
        fr = pb.frames
        frames = make_frame(*(np.concatenate([np.asarray(a[:, :gop]), np.asarray(b)], 1)
                              for a, b in zip(fr.planes, kept.planes)))
        tb = run_target(target, PatchBatch(frames, pb.qp), gop=gop)
        src, rec = _to_tensor(tb.source), _to_tensor(tb.recon)
        return float(tb.bits.sum()), float(jnp.mean((rec - src) ** 2)), src

    t0 = time.perf_counter()
    rows = []
    for i in range(args.sequences):
        pb = sample_batch(pool, seed=args.seed, step=i, batch=1, patch=args.patch, gop=gop,
                          qp_range=(cfg.qp_min, cfg.qp_max))
        qp_index = jnp.asarray(pb.qp - cfg.qp_min, jnp.int32)
        x = _to_tensor(pb.frames)[gop:]  # the kept GOP, (T, 1, P/2, P/2, 6)
        bits0, mse0, x0 = target_on(pb, x)
        r0, m0 = (float(v) for v in evaluate(x0, qp_index))
        row = {"qp": int(pb.qp[0])}
        grads = gradients(x0, qp_index)
        for name in ("rate", "mse"):
            step = -args.eps / 255.0 * jnp.sign(grads[name])
            bits1, mse1, x1 = target_on(pb, x0 + step)
            r1, m1 = (float(v) for v in evaluate(x1, qp_index))
            if name == "rate":
                row["proxy_rate"], row["target_rate"] = (r1 - r0) / r0, (bits1 - bits0) / bits0
            else:
                row["proxy_mse"], row["target_mse"] = (m1 - m0) / m0, (mse1 - mse0) / mse0
        rnd = np.random.default_rng([args.seed, i]).choice([-1.0, 1.0], size=x0.shape)
        bits_r, mse_r, _ = target_on(pb, x0 + args.eps / 255.0 * jnp.asarray(rnd, jnp.float32))
        row["target_rate_random"], row["target_mse_random"] = (bits_r - bits0) / bits0, (mse_r - mse0) / mse0
        rows.append(row)
        print(json.dumps(row), flush=True)

    def agree(k):
        p, t = np.array([r["proxy_" + k] for r in rows]), np.array([r["target_" + k] for r in rows])
        pcc = float(np.corrcoef(p, t)[0, 1]) if np.ptp(p) > 0 and np.ptp(t) > 0 else float("nan")
        return float(np.mean(np.sign(p) == np.sign(t))), pcc, float(np.median(p)), float(np.median(t))

    ra, rp, rpm, rtm = agree("rate")
    ma, mp, mpm, mtm = agree("mse")
    better = {k: float(np.mean([r["target_" + k] < r[f"target_{k}_random"] for r in rows])) for k in ("rate", "mse")}
    result = {"clips": args.clips, "target": args.target, "model": args.model, "sequences": len(rows),
              "eps": args.eps, "rate_sign_agreement": ra, "rate_change_pcc": rp,
              "median_proxy_rate_change": rpm, "median_target_rate_change": rtm,
              "mse_sign_agreement": ma, "mse_change_pcc": mp,
              "median_proxy_mse_change": mpm, "median_target_mse_change": mtm,
              "median_target_rate_change_random": float(np.median([r["target_rate_random"] for r in rows])),
              "median_target_mse_change_random": float(np.median([r["target_mse_random"] for r in rows])),
              "gradient_beats_random_rate": better["rate"], "gradient_beats_random_mse": better["mse"],
              "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
