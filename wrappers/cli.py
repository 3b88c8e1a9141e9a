"""``jaxcodec wrap encode|decode`` and ``jaxcodec train wrappers`` (paper 004 neural wrappers).

    jaxcodec wrap encode IN --codec x264 --qp 32 -o OUT.mp4     # P, then the real encoder
    jaxcodec wrap decode OUT.mp4 -o REC.y4m                     # the real decoder, then O
    jaxcodec wrap soup MODEL_A MODEL_B -o SOUP                  # average fine-tunes' weights
    jaxcodec wrap strength MODEL -o OUT --clips carphone bikes  # pick O's residual scaling
    jaxcodec train wrappers --target x264 --proxy models/proxy_x264_small \\
        --config configs/wrappers_post_align_p128.toml --out runs/wrap_p128 \\
        --export models/wrapper_x264_crop128

Every shipped wrapper is a chain of such runs, each starting from the last (``init_from``); its
model card (``models/wrapper_*.md``) lists the exact commands, in order.

Re-running the same training command resumes from the last checkpoint in ``--out``. The
module top level does not import JAX (see `runtime.cli`).
"""

from __future__ import annotations

import argparse
import json


ENSEMBLE_CHOICES = (1, 2, 4, 8, 16)
"""`wrappers.deploy.ENSEMBLE_SIZES` (a test holds them equal), written out so that building the
parser imports no JAX."""


def _ensemble_option(p, net: str) -> None:
    p.add_argument("--ensemble", type=int, default=8, choices=ENSEMBLE_CHOICES,
                   help=f"run {net} on this many symmetries of each frame (transposes, flips) and average "
                        "(jaxcodec.nn.ensemble; default 8); 16: each also with the neighbour frames in reverse "
                        "time order, for a temporal O (wrappers.deploy.ensemble_members)")


def register_encode(subparsers) -> None:
    p = subparsers.add_parser("encode", help="preprocess with P, then encode with a real codec into a standard container",
                              description="P, then the real encoder; the output plays in any player.")
    p.add_argument("input", help="Y4M/YUV/container file or clip name")
    p.add_argument("--codec", default="x264", help="registered codec (x264, x265, svtav1, ours:ra, ...)")
    p.add_argument("--qp", type=int, required=True, help="the codec's QP")
    p.add_argument("-o", "--output", required=True,
                   help="output container (.mp4/.mkv/.mov; .ivf for AV1; .jxc for our codec)")
    p.add_argument("--model", default=None, help="wrapper model directory (default: the one trained behind the codec: "
                                                        "models/wrapper_x265_terms_dlm for x265, else models/wrapper_x264_terms_dlm)")
    p.add_argument("--no-wrapper", action="store_true", help="bypass P (bit-identical to the bare codec)")
    p.add_argument("--frames", type=int, default=None, help="encode at most this many frames")
    p.add_argument("--stream-strength", default=None, metavar="GRID",
                   help="comma-separated factors: run O on the encoder's reconstruction at each, record the one "
                        "that adds most DLM without costing SSIM or MS-SSIM in the container for `wrap decode` "
                        "(wrappers.strength.encoder_pick; 1 is always added)")
    _ensemble_option(p, "P")
    p.set_defaults(func=_encode)


def register_decode(subparsers) -> None:
    p = subparsers.add_parser("decode", help="decode with the real decoder, then postprocess with O",
                              description="The real decoder (FFmpeg), then O; writes Y4M or raw YUV.")
    p.add_argument("input", help="stream written by `jaxcodec wrap encode` (any container FFmpeg reads)")
    p.add_argument("-o", "--output", required=True, help="output .y4m or .yuv")
    p.add_argument("--model", default=None, help="wrapper model directory (default: the one trained behind the codec: "
                                                        "models/wrapper_x265_terms_dlm for x265, else models/wrapper_x264_terms_dlm)")
    p.add_argument("--no-wrapper", action="store_true", help="bypass O (plain decode)")
    p.add_argument("--qp", type=int, default=None,
                   help="the encoder's QP, for a QP-aware postprocessor when the stream does not record it "
                        "(one reading each frame's QP needs none for H.264: the decoder reports them)")
    p.add_argument("--strength", type=float, default=None,
                   help="scale O's correction by this factor instead of the one the stream records "
                        "(wrap encode --stream-strength) or the model's (wrappers.strength)")
    _ensemble_option(p, "O")
    p.set_defaults(func=_decode)


def register_soup(subparsers) -> None:
    p = subparsers.add_parser("soup", help="average the weights of fine-tuned wrappers of one architecture (model soup)",
                              description="One wrapper whose weights are the weighted mean of the given models' "
                                          "(wrappers.soup; Wortsman et al. 2022). The models must share one architecture.")
    p.add_argument("models", nargs="+", help="wrapper model directories (fine-tunes of one ancestor)")
    p.add_argument("-o", "--output", required=True, help="model directory to write")
    p.add_argument("--weights", default=None, help="comma-separated mixing weights (default: uniform)")
    p.set_defaults(func=_soup)


def register_strength(subparsers) -> None:
    from wrappers.strength import DEFAULT_GRID, DEFAULT_KEEP

    p = subparsers.add_parser("strength", help="pick the postprocessor's residual scaling on training clips",
                              description="Score O's correction scaled by each factor of --grid against the bare "
                                          "codec on --clips and write the model with the best one (wrappers.strength: "
                                          "lowest ALL BD-rate keeping --keep of the unscaled SSIM and MS-SSIM savings). "
                                          "Use training clips only.")
    p.add_argument("model", help="wrapper model directory")
    p.add_argument("-o", "--output", required=True, help="model directory to write")
    p.add_argument("--codec", default="x264", help="the codec the wrapper runs behind")
    p.add_argument("--clips", nargs="+", default=["carphone", "bikes"], help="clip names or Y4M paths (training clips)")
    p.add_argument("--grid", default=",".join(f"{s:g}" for s in DEFAULT_GRID), help="comma-separated factors (1 is always added)")
    p.add_argument("--qps", default="22,27,32,37")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--keep", type=float, default=DEFAULT_KEEP,
                   help=f"share of the unscaled SSIM and MS-SSIM savings a factor must keep (default {DEFAULT_KEEP:g})")
    _ensemble_option(p, "O")
    p.set_defaults(func=_strength)


def register_train(subparsers) -> None:
    p = subparsers.add_parser("wrappers", help="train pre/post wrappers end to end through the proxy (paper 004 Alg. 1)",
                              description="Algorithm 1 of paper 004: iterative refinement with stop-gradient.")
    p.add_argument("--target", required=True, help="target codec name (x264, x265, svtav1, ...)")
    p.add_argument("--proxy", required=True, help="pretrained proxy model directory (jaxcodec train proxy --export)")
    p.add_argument("--config", default="wrappers_small", help="training config name in configs/ or a .toml path")
    p.add_argument("--out", default=None, help="run directory (checkpoints/, metrics.jsonl, images/, model/)")
    p.add_argument("--export", default=None, help="also save the final wrapper to this directory")
    p.add_argument("--steps", type=int, default=None, help="override the config's step count")
    p.add_argument("--stop-at", type=int, default=None, help="stop after this step (resume later with the same command)")
    for flag, field in (("--pre-only", "post"), ("--post-only", "pre"), ("--no-stop-gradient", "stop_gradient"),
                        ("--no-iterative-update", "iterative_update"), ("--no-pretraining", "pretrained")):
        p.add_argument(flag, dest=field, action="store_const", const=False, default=None, help=f"ablation: {field} = false")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)


def _encode(args: argparse.Namespace) -> int:
    from wrappers.deploy import encode_file
    from wrappers.strength import parse_grid

    grid = None if args.stream_strength is None else parse_grid(args.stream_strength, "--stream-strength")
    print(json.dumps(encode_file(args.input, args.output, codec_name=args.codec, qp=args.qp, model=args.model,
                                 no_wrapper=args.no_wrapper, max_frames=args.frames, ensemble=args.ensemble,
                                 stream_strength=grid)))
    return 0


def _decode(args: argparse.Namespace) -> int:
    from wrappers.deploy import decode_file

    print(json.dumps(decode_file(args.input, args.output, model=args.model, no_wrapper=args.no_wrapper, qp=args.qp,
                                 ensemble=args.ensemble, strength=args.strength)))
    return 0


def _soup(args: argparse.Namespace) -> int:
    from jaxcodec.errors import ConfigError
    from wrappers.soup import soup_files

    try:
        weights = None if args.weights is None else [float(w) for w in args.weights.split(",")]
    except ValueError:
        raise ConfigError(f"--weights: not a comma-separated list of numbers: {args.weights!r}") from None
    print(json.dumps(soup_files(args.models, args.output, weights)))
    return 0


def _strength(args: argparse.Namespace) -> int:
    from jaxcodec.errors import ConfigError
    from wrappers.strength import parse_grid, strength_files

    try:
        qps = tuple(int(q) for q in args.qps.split(","))
    except ValueError:
        raise ConfigError(f"--qps: not a comma-separated list of integers: {args.qps!r}") from None
    print(json.dumps(strength_files(args.model, args.output, codec_name=args.codec, clips=args.clips,
                                    strengths=parse_grid(args.grid), qps=qps, frames=args.frames,
                                    ensemble=args.ensemble, keep=args.keep,
                                    log=lambda line: print(line, flush=True))))
    return 0


def _train(args: argparse.Namespace) -> int:
    from wrappers.deploy import get_codec
    from wrappers.train import load_train_config, train

    config = load_train_config(args.config, steps=args.steps, pre=args.pre, post=args.post,
                               stop_gradient=args.stop_gradient, iterative_update=args.iterative_update,
                               pretrained=args.pretrained)
    # Whole-frame targets are coded as `jaxcodec wrap encode` deploys the codec (its default
    # structure); patch streams follow the proxy's GOP (IDR every `gop` frames, low delay).
    target = get_codec(args.target) if config.codec_on_full_frames else get_codec(args.target, gop=config.gop)
    out = args.out or f"runs/wrappers_{args.target}"
    result = train(config, target=target, target_name=args.target, proxy_path=args.proxy, out_dir=out,
                   stop_at=args.stop_at, progress=not args.no_progress, export_to=args.export)
    print(json.dumps({"step": result.step, "model": str(result.model_dir) if result.model_dir else None,
                      "last": result.last}))
    return 0
