"""Same streams, same pictures on every device: encode/decode fingerprints to compare across machines.

    JAX_PLATFORMS=cpu  .venv/bin/python benchmarks/cross_device.py --clips carphone --streams runs/xdev > cpu.json
    JAX_PLATFORMS=cuda python3 benchmarks/cross_device.py --clips carphone --streams runs/xdev --compare cpu.json

For each clip and each coding config (``--configs``, default RA and AI), the clip is encoded
with the NN loop filter on the current JAX backend. ``--nnlf force`` (the default) switches
the filter on in every frame and component, so every CTU goes through the integer runtime.
The stream is decoded, and every per-frame MD5 is checked inside the decoder. The result gives
each stream's MD5 and the decoded output's MD5.

With ``--streams DIR``, streams already in DIR (``<clip>_<config>_qp<N>.jxc``) are decoded
instead of re-encoded, and new streams are written there. Streams made on one machine can be
carried to another and decoded there. ``--compare FILE`` reads an earlier run's last JSON line
and says whether every stream and output MD5 matches it (``match``).

Used for issue 4's device check (2026-11-30, an H200 against this CPU; see
models/nnlf_small.md). Not a speed benchmark: the seconds are for orientation only.

Last stdout line: one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _output_md5(frames) -> str:
    h = hashlib.md5()
    for plane in frames.planes:
        h.update(plane.tobytes())
    return h.hexdigest()


def run_one(clip: str, config: str, *, qp: int, frames: int, nnlf: str, streams: Path | None) -> dict:
    from jaxcodec.config import config_tag, load_coding_config
    from jaxcodec.io import atomic_write_bytes, read_video
    from runtime.decoder import decode
    from runtime.encoder import encode

    # The stream's name and the fingerprint's key: clip and config paths differ between machines.
    key = f"{Path(clip).stem}_{config_tag(config)}_qp{qp}"
    name = f"{key}.jxc"
    path = streams / name if streams else None
    row: dict = {"clip": clip, "config": config, "qp": qp, "key": key}
    if path is not None and path.is_file():
        data = path.read_bytes()
        row["encoded_here"] = False
    else:
        cfg = load_coding_config(config, qp=qp, nnlf=nnlf != "off")
        video = read_video(clip, max_frames=frames)
        t0 = time.perf_counter()
        data, recon = encode(video.frames, cfg, fps=video.fps, nnlf_force=True if nnlf == "force" else None)
        row["encode_s"] = round(time.perf_counter() - t0, 2)
        row["encoded_here"] = True
        row["recon_md5"] = _output_md5(recon)
        if path is not None:
            atomic_write_bytes(path, data)
    t0 = time.perf_counter()
    out = decode(data)  # raises BitstreamError on any per-frame MD5 mismatch
    row["decode_s"] = round(time.perf_counter() - t0, 2)
    row["stream_md5"] = hashlib.md5(data).hexdigest()
    row["output_md5"] = _output_md5(out)
    if row.get("recon_md5") not in (None, row["output_md5"]):
        raise AssertionError(f"{name}: encoder reconstruction != decoder output")
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="+", default=["carphone"])
    ap.add_argument("--configs", nargs="+", default=["ra", "ai"])
    ap.add_argument("--qp", type=int, default=32)
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--nnlf", choices=("force", "auto", "off"), default="force",
                    help="force: the filter on everywhere; auto: the encoder's flags; off: no filter")
    ap.add_argument("--streams", default=None, help="folder to decode streams from / write them to")
    ap.add_argument("--compare", default=None, help="JSON output of an earlier run to compare with")
    args = ap.parse_args(argv)

    import jax

    from jaxcodec.errors import InputError, JaxcodecError

    other = None
    try:
        if args.compare:
            try:
                lines = [ln for ln in Path(args.compare).read_text().splitlines() if ln.strip()]
                other = json.loads(lines[-1])["streams"]
            except (OSError, IndexError, KeyError, TypeError, ValueError) as e:
                raise InputError(f"--compare {args.compare}: not the output of this script ({type(e).__name__})") from None
        streams = Path(args.streams) if args.streams else None
        if streams is not None:
            streams.mkdir(parents=True, exist_ok=True)
        rows = [run_one(c, cfg, qp=args.qp, frames=args.frames, nnlf=args.nnlf, streams=streams)
                for c in args.clips for cfg in args.configs]
    except JaxcodecError as e:
        print(f"cross_device: error: {e}", file=sys.stderr)
        return 2
    for r in rows:
        print(json.dumps(r))
    result = {"backend": jax.default_backend(), "device": str(jax.devices()[0]), "jax": jax.__version__,
              "streams": {r["key"]: {"stream_md5": r["stream_md5"], "output_md5": r["output_md5"]} for r in rows}}
    if other is not None:
        common = sorted(set(other) & set(result["streams"]))
        result["compared"] = len(common)
        result["match"] = bool(common) and all(other[k] == result["streams"][k] for k in common)
    print(json.dumps(result))
    return 0 if result.get("match", True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
