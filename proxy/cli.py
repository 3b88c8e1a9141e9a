"""``jaxcodec train proxy``: two-phase pretraining of the proxy to a target codec.

    jaxcodec train proxy --target x264 --config configs/proxy_small.toml \\
        --out runs/proxy_x264 --export models/proxy_x264_small

Re-running the same command resumes from the last checkpoint in ``--out``. The module top
level does not import JAX (see `runtime.cli`).
"""

from __future__ import annotations

import argparse


def register_train(subparsers) -> None:
    p = subparsers.add_parser("proxy", help="pretrain the SSF codec proxy to a target codec (paper 004, eq. 1-3)",
                              description=__doc__.splitlines()[0])
    p.add_argument("--target", required=True, help="target codec name (x264, x265, svtav1, ...)")
    p.add_argument("--config", default="proxy_small", help="training config name in configs/ or a .toml path")
    p.add_argument("--out", default=None, help="run directory (checkpoints, metrics.jsonl, alignment.png, model/)")
    p.add_argument("--export", default=None, help="also save the final model to this directory")
    p.add_argument("--stop-at", type=int, default=None, help="stop after this step (resume later with the same command)")
    p.add_argument("--data-workers", type=int, default=None,
                   help="threads running the target codec ahead of the JAX step, 0 = inline (default: cores - 1, at most 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    import json

    from proxy.train import load_train_config, resolve_target, train

    config = load_train_config(args.config)
    target = resolve_target(args.target, gop=config.gop)
    out = args.out or f"runs/proxy_{args.target}"
    result = train(config, target=target, target_name=args.target, out_dir=out, stop_at=args.stop_at,
                   progress=not args.no_progress, export_to=args.export,
                   data_workers=args.data_workers)
    print(json.dumps({"step": result.step, "model": str(result.model_dir) if result.model_dir else None,
                      "timing": result.timing,
                      "calibration": result.calibration._asdict() if result.calibration else None}))
    return 0
