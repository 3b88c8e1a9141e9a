"""BD-rate of our codec with the NN in-loop filter on vs off, on a held-out clip, in one run.

    JAX_PLATFORMS=cpu nice -n 19 .venv/bin/python benchmarks/nnlf.py --clips bigbuckbunny --frames 9

RA config, QP 22/27/32/37, anchor = nnlf off. Quality: per-frame PSNR averaged over frames
(JVET CTC), PSNR-Y and PSNR-YUV (6Y+U+V)/8; pchip BD-rate (jaxcodec.metrics.bdrate). Also
the encoder and decoder time ratios (on / off; EncT, DecT) and how often the encoder switched
the filter on (frames and CTUs, from the streams' NNLF flags). Every stream is decoded and
checked against the encoder's reconstruction. ``--nnlf-scaling off`` measures the filter
without residual scaling (paper 001 III-C; on by default, as in the codec's default config);
with it, ``usage`` lists the scales sent per component (units of 1/64). ``--nnlf-params``
sets the QP-input candidates of parameter selection (paper 001 III-B; default 0,-5,5 as in the
codec's default config, ``off`` for none); ``usage.params`` counts the candidate chosen by
luma and by chroma over the pictures where they are on (picture-level choices), and
``usage.block_params`` the candidates of the CTUs enabled by block-level choices (Cost_4,
``--nnlf-block-params on``; off by default as in the codec's default config).
``--nnlf-ensemble L[,C]`` sets the filter's self-ensemble sizes in the 'on' encodes (default:
the config's ``nnlf_ensemble``); the result's ``nnlf_ensemble`` says which ran.

Float vs integer model quality: every picture of the anchor encodes (filter off, every clip
and QP) is captured as the in-loop filter would see it, and both the float flax models (the
orbax checkpoints next to the model file) and the integer model are run on it; the figure is
float-model PSNR minus integer-model PSNR against the source, per plane, over all those
pictures (`runtime.train_nnlf.picture_errors`). The capture's time is left out of EncT.

Also, in the same run, the speed of the shipped filter's two inference paths on the same
input planes (one picture of the first clip, captured from the warm-up encode): the float
flax models (the orbax checkpoints next to the model file) jitted, against the integer
runtime the codec runs. Medians over ``--speed-reps`` interleaved runs after warm-up, luma
plus chroma model, plane conversion excluded, in a child process pinned to one CPU before
JAX starts (XLA sizes its thread pools from the affinity mask), so the figure does not
depend on how many cores the shared machine has free. ``int_vs_float_time`` = integer time
/ float time (issue 4 target: at most 1 / 0.7); GMAC/s and kMAC per luma pixel count
both models' dense MACs.

Last stdout line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _psnr_frames(a, b, peak=255.0):
    import numpy as np
    d = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2
    mse = d.reshape(d.shape[0], -1).mean(1)
    return 10 * np.log10(peak * peak / np.maximum(mse, 1e-10))


def _nhwc(a):
    import numpy as np
    a = np.asarray(a)
    return a[None, :, :, None] if a.ndim == 2 else a[None]


def _median_ms(ts) -> float:
    import numpy as np
    return round(float(np.median(ts)) * 1e3, 2)


def _speed(planes_npz: str, model_name: str, reps: int) -> dict:
    """Float flax vs integer runtime time of the NNLF model on one picture's planes (the
    child process: call before anything imports JAX)."""
    if hasattr(os, "sched_setaffinity"):
        # One core: XLA's CPU pools are sized from this mask when the client starts.
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from jaxcodec.nn import loopfilter as lf
    from runtime import nnlf
    from runtime.nnint import planes as nnplanes
    from runtime.nnint.sparse import count_macs
    from runtime.train_nnlf import float_checkpoint

    model = nnlf.load_model(model_name)
    z = np.load(planes_npz)
    x = nnlf.FilterInputs((z["y"], z["u"], z["v"]), (z["py"], z["pu"], z["pv"]), z["bs"], z["qp"], z["ipb"])
    bd = int(z["bit_depth"])
    c = model.meta.get("config", {})
    mcfg = lf.LoopFilterConfig(width=c["width"], features=c["features"], blocks=c["blocks"])
    ckpt_dir = os.path.dirname(os.path.abspath(model.path))
    runs, macs, diff, psnr_gap = [], 0, 0, {}
    for which, make, arrays in (("luma", lf.LumaFilter, nnlf.luma_arrays(x, bd)),
                                ("chroma", lf.ChromaFilter, nnlf.chroma_arrays(x, bd))):
        fmodel = lf.restore_checkpoint(float_checkpoint(ckpt_dir, which), make(mcfg, rngs=nnx.Rngs(0)))
        graph = getattr(model, which)
        xi = [jnp.asarray(nnplanes.to_input(_nhwc(a), s, graph.nodes[i])) for (a, s), i in zip(arrays, graph.inputs)]
        xf = [jnp.asarray(_nhwc(a).astype(np.float32) / np.float32(2.0**s)) for a, s in arrays]
        int_fn, float_fn = model.executor(which), jax.jit(lambda *a, m=fmodel: m(*a))
        runs.append((int_fn, xi, float_fn, xf))
        macs += count_macs(graph, {i: _nhwc(a).shape[1:3] for (a, _), i in zip(arrays, graph.inputs)})["dense"]
        # Sanity: the restored float model is the one the integer graph was converted from.
        q = graph.nodes[graph.outputs[0]].q
        fo = np.clip(np.floor(np.asarray(float_fn(*xf), np.float64) * 2.0**bd + 0.5), 0, 2**bd - 1)
        io = nnplanes.to_samples(np.asarray(int_fn(*xi)[0]), q, bd).astype(np.float64)
        diff = max(diff, float(np.abs(fo - io).max()))
        # Float vs integer model quality on this picture (against its source), per plane.
        for c, name in enumerate("y" if which == "luma" else "uv"):
            o = z["o" + name].astype(np.float64)
            mse_float, mse_int = (float(np.mean((r[0, ..., c] - o) ** 2)) for r in (fo, io))
            psnr_gap[name] = round(10 * np.log10(mse_int / mse_float), 4)

    def timed(k):
        t = time.perf_counter()
        for r in runs:
            jax.block_until_ready(r[k](*r[k + 1]))
        return time.perf_counter() - t

    for _ in range(2):  # compile and warm caches
        timed(0)
        timed(2)
    t_int, t_float = [], []
    for _ in range(reps):  # interleaved: the shared machine's load drifts
        t_int.append(timed(0))
        t_float.append(timed(2))
    int_ms, float_ms = _median_ms(t_int), _median_ms(t_float)
    h, w = x.rec[0].shape
    return {"picture": f"{w}x{h}", "reps": reps, "threads": 1, "int_ms": int_ms, "float_ms": float_ms,
            "int_vs_float_time": round(int_ms / float_ms, 3), "kmac_per_pixel": round(macs / (h * w) / 1e3, 2),
            "int_gmacs": round(macs / int_ms / 1e6, 2), "float_gmacs": round(macs / float_ms / 1e6, 2),
            "int_paths": sorted(set(model.executor("luma").paths.values()) | set(model.executor("chroma").paths.values())),
            "float_vs_int_max_sample_diff": diff, "float_minus_int_psnr_db": psnr_gap}


def _speed_in_child(planes: dict, model_path: str, reps: int) -> dict:
    import numpy as np
    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "planes.npz")
        np.savez(npz, **{k: np.asarray(v) for k, v in planes.items()})
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--speed-planes", npz,
                            "--nnlf-model", model_path, "--speed-reps", str(reps)],
                           env={**os.environ, "JAX_PLATFORMS": "cpu"}, capture_output=True, text=True)
    if r.returncode:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    from runtime.cli import parse_ensemble, parse_param_offsets

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="+", default=["bigbuckbunny"])
    ap.add_argument("--frames", type=int, default=9)
    ap.add_argument("--qps", nargs="+", type=int, default=[22, 27, 32, 37])
    ap.add_argument("--config", default="ra")
    ap.add_argument("--nnlf-model", default="", help="model name/path (default: the shipped nnlf_medium)")
    ap.add_argument("--nnlf-scaling", choices=("on", "off"), default="on",
                    help="residual scaling of the NN output (paper 001 III-C) in the 'on' encodes")
    ap.add_argument("--nnlf-params", type=parse_param_offsets, default=(0, -5, 5),
                    help="QP-input candidates of parameter selection (paper 001 III-B) in the 'on' encodes, "
                         "comma-separated offsets, or 'off'")
    ap.add_argument("--nnlf-block-params", choices=("on", "off"), default="off",
                    help="per-CTU parameter choice (paper 001 III-B Cost_4) in the 'on' encodes")
    ap.add_argument("--nnlf-ensemble", type=parse_ensemble, default=None, metavar="L[,C]",
                    help="self-ensemble sizes (luma[,chroma]) in the 'on' encodes (default: the codec's config)")
    ap.add_argument("--speed-reps", type=int, default=11, help="timed runs of the float vs integer comparison")
    ap.add_argument("--speed-planes", help=argparse.SUPPRESS)  # the one-CPU child of the speed comparison
    args = ap.parse_args(argv)
    params = args.nnlf_params
    if args.speed_planes:
        print(json.dumps(_speed(args.speed_planes, args.nnlf_model, args.speed_reps)))
        return 0

    import numpy as np

    from jaxcodec.config import load_coding_config
    from jaxcodec.io import read_video
    from jaxcodec.metrics.bdrate import bd_rate
    from runtime import bitstream as bs
    from runtime import nnlf
    from runtime.decoder import decode
    from runtime.encoder import encode, seq_params
    from runtime.train_nnlf import float_minus_int_db, float_models, picture_errors, picture_record

    model = nnlf.load_model(args.nnlf_model)
    result = {"config": args.config, "frames": args.frames, "qps": args.qps, "nnlf_scaling": args.nnlf_scaling,
              "nnlf_params": list(params), "nnlf_block_params": args.nnlf_block_params,
              "nnlf_ensemble": list(load_coding_config(args.config, nnlf_ensemble=args.nnlf_ensemble).nnlf_ensemble),
              "model": model.path,
              "model_id": model.digest.hex(), "clips": {}}
    speed_planes: dict = {}
    anchor_pics: list[dict] = []  # every picture of the filter-off encodes, for the float-integer gap
    for clip in args.clips:
        video = read_video(clip, max_frames=args.frames)
        f = video.frames
        n = f.y.shape[0]
        rows = {"off": [], "on": []}
        times = {"off": [0.0, 0.0], "on": [0.0, 0.0]}
        usage = {"frames_on": 0, "frames": 0, "components_on": [0, 0, 0], "ctu_flags_on": 0, "ctu_flags": 0,
                 "scales": [[], [], []], "params": [[0] * len(params), [0] * len(params)],
                 "block_params": [[0] * len(params), [0] * len(params)], "modes": [[0] * 4 for _ in range(3)]}
        # Warm-up (jit compilation) outside the timings, for both modes.
        for mode in ("off", "on"):
            cfg = load_coding_config(args.config, qp=args.qps[0], nnlf=mode == "on", nnlf_model=args.nnlf_model,
                                     nnlf_scaling=args.nnlf_scaling == "on", nnlf_params=params,
                                     nnlf_block_params=args.nnlf_block_params == "on",
                                     nnlf_ensemble=args.nnlf_ensemble)
            small = type(f)(y=f.y[:2], u=f.u[:2], v=f.v[:2], bit_depth=f.bit_depth)
            cfg = cfg.replace(intra_period=-1, gop_size=2) if args.config == "ra" else cfg
            seq = seq_params(cfg, f.bit_depth)

            def grab(poc, state, orig, seq=seq):
                # The last picture (inter in RA): the planes the speed comparison filters.
                x = nnlf.filter_inputs(state, seq)
                speed_planes.update(y=x.rec[0], u=x.rec[1], v=x.rec[2], py=x.pred[0], pu=x.pred[1],
                                    pv=x.pred[2], bs=x.bs, qp=x.qp, ipb=x.ipb, bit_depth=seq.bit_depth,
                                    oy=orig[0], ou=orig[1], ov=orig[2])

            capture = mode == "on" and clip == args.clips[0]
            d, _ = encode(small, cfg, on_picture=grab if capture else None)
            decode(d, nnlf_model=model)
        for qp in args.qps:
            for mode in ("off", "on"):
                cfg = load_coding_config(args.config, qp=qp, nnlf=mode == "on", nnlf_model=args.nnlf_model,
                                         nnlf_scaling=args.nnlf_scaling == "on", nnlf_params=params,
                                     nnlf_block_params=args.nnlf_block_params == "on",
                                     nnlf_ensemble=args.nnlf_ensemble)
                seq = seq_params(cfg, f.bit_depth)
                capture_s = [0.0]

                def keep(poc, state, orig, seq=seq, capture_s=capture_s):
                    tc = time.perf_counter()
                    anchor_pics.append(picture_record(state, orig, seq))
                    capture_s[0] += time.perf_counter() - tc

                t0 = time.perf_counter()
                data, recon = encode(f, cfg, fps=video.fps, on_picture=keep if mode == "off" else None)
                t1 = time.perf_counter() - capture_s[0]
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
                            fl = nnlf.unpack_flags(fh.nnlf, grid, scaling=bool(seq.tool_flags & bs.TOOL_NNLF_SCALE),
                                                   params=len(seq.nnlf_params))
                            for g, planes in ((0, (0,)), (1, (1, 2))):
                                ms = [fl.modes[c] for c in planes]
                                if nnlf.MODE_BLOCK in ms:
                                    on = np.any([fl.ctu[c] for c in planes], 0)
                                    for k in fl.block_index(planes[0])[on]:
                                        usage["block_params"][g][int(k)] += 1
                                elif any(m != nnlf.MODE_OFF for m in ms):
                                    usage["params"][g][fl.param[g]] += 1
                            for c, m in enumerate(fl.modes):
                                usage["components_on"][c] += m != nnlf.MODE_OFF
                                usage["modes"][c][m] += 1
                                if m != nnlf.MODE_OFF:
                                    usage["scales"][c].append(fl.scale[c])
                                if m in (nnlf.MODE_CTU, nnlf.MODE_BLOCK):
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
    try:
        gap = float_minus_int_db(picture_errors(float_models(model), model, anchor_pics, bd=8))
    except (OSError, KeyError, ValueError) as e:  # no float checkpoints beside the model file
        gap = f"unavailable: {type(e).__name__}: {e}"
    print(f"PSNR float - integer model over {len(anchor_pics)} pictures (every anchor picture): {gap} dB", flush=True)
    speed = _speed_in_child(speed_planes, model.path, args.speed_reps)
    result.update(int_vs_float_time=speed.get("int_vs_float_time"), int_ms=speed.get("int_ms"),
                  float_minus_int_psnr_db=gap, float_minus_int_pictures=len(anchor_pics),
                  float_ms=speed.get("float_ms"), nn_speed=speed)
    if "error" in speed:
        print(f"NN speed comparison failed: {speed['error']}", flush=True)
    else:
        print(f"NN filter on {speed['picture']}, one thread: integer {speed['int_ms']:.1f} ms, float "
              f"{speed['float_ms']:.1f} ms (int/float time {speed['int_vs_float_time']:.2f}x; "
              f"{speed['int_gmacs']:.1f} vs {speed['float_gmacs']:.1f} GMAC/s); PSNR float - integer "
              f"on that picture {speed['float_minus_int_psnr_db']} dB", flush=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
