"""The ``jaxcodec`` command line.

Sub-commands are plugins registered under the ``jaxcodec.commands`` entry-point group
(see pyproject.toml), so `runtime` never imports `proxy` or `wrappers`. An entry named
``encode`` adds ``jaxcodec encode``; a dotted name such as ``train.proxy`` adds
``jaxcodec train proxy``. Each entry point is a function ``register(subparsers)`` that adds
its parser and sets ``func=handler(args) -> int``.

Register functions and module top levels must not import JAX: ``jaxcodec decode`` pins
itself to one CPU core before JAX (and XLA's thread pools) start.

User mistakes raise `jaxcodec.errors.JaxcodecError`; they are printed as one line and the
process exits non-zero. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

from jaxcodec.errors import JaxcodecError

# What `jaxcodec encode` and `make demo` use where the coding config is silent: the shipped NN
# loop filter (models/nnlf_medium) is on, as issue 4 asks once a model ships. Library callers
# (`CodingConfig()`, `load_coding_config`) keep the dataclass defaults: the bare codec.
ENCODER_DEFAULTS = {"nnlf": True}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other user error
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jaxcodec", description="JAX video coding toolkit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    groups: dict[str, argparse._SubParsersAction] = {}
    eps = sorted(entry_points(group="jaxcodec.commands"), key=lambda e: e.name)
    for ep in eps:
        target = sub
        if "." in ep.name:
            group, _ = ep.name.split(".", 1)
            if group not in groups:
                gp = sub.add_parser(group, help=f"{group} sub-commands")
                groups[group] = gp.add_subparsers(dest=f"{group}_command", metavar="WHAT", parser_class=_Parser)
                groups[group].required = True
            target = groups[group]
        ep.load()(target)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except JaxcodecError as e:
        print(f"jaxcodec: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("jaxcodec: interrupted", file=sys.stderr)
        return 130



# ---------------------------------------------------------------------------------------------
# jaxcodec encode / jaxcodec decode (our hybrid codec). Heavy imports happen inside handlers.
# ---------------------------------------------------------------------------------------------

def pin_single_core() -> None:
    """Pin this process to one CPU core and one numba thread, before JAX/XLA start their pools
    (measured: affinity works where XLA_FLAGS thread options did not)."""
    import os

    os.environ["NUMBA_NUM_THREADS"] = "1"
    try:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[0]})
    except (AttributeError, OSError):  # not Linux: best effort
        pass


def _psnr(a, b, peak):
    import numpy as np

    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak * peak / mse)


def summary_line(orig, recon, nbytes: int, fps, seconds: float) -> str:
    """frames, kbps, PSNR-Y/U/V/YUV (6Y+U+V)/8, seconds, fps."""
    n = orig.y.shape[0]
    peak = (1 << orig.bit_depth) - 1
    py, pu, pv = (_psnr(getattr(orig, c), getattr(recon, c), peak) for c in "yuv")
    kbps = nbytes * 8 / (n / float(fps)) / 1000
    return (f"frames {n}  kbps {kbps:.1f}  PSNR-Y {py:.2f}  PSNR-U {pu:.2f}  PSNR-V {pv:.2f}  "
            f"PSNR-YUV {(6 * py + pu + pv) / 8:.2f}  seconds {seconds:.2f}  fps {n / max(seconds, 1e-9):.2f}")


def parse_param_offsets(text: str) -> tuple[int, ...]:
    """``--nnlf-params``: 'off' or comma-separated integers (range checks: `CodingConfig`)."""
    import argparse
    if text.strip().lower() == "off":
        return (0,)
    try:
        return tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'off' or comma-separated integers, got {text!r}") from None


def parse_ensemble(text: str) -> tuple[int, int]:
    """``--nnlf-ensemble``: 'L' or 'L,C' self-ensemble sizes (chroma 1 when omitted; range
    checks: `CodingConfig`)."""
    import argparse
    try:
        sizes = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LUMA or LUMA,CHROMA sizes, got {text!r}") from None
    if len(sizes) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected LUMA or LUMA,CHROMA sizes, got {text!r}")
    return (sizes[0], sizes[1] if len(sizes) == 2 else 1)


def encode_config(args):
    """The `CodingConfig` ``jaxcodec encode`` codes with: the named config or TOML, the encoder's
    defaults (`ENCODER_DEFAULTS`) where it is silent, and the command line's options over both."""
    from jaxcodec.config import load_coding_config

    on_off = lambda v: None if v is None else v == "on"  # noqa: E731
    return load_coding_config(args.config, defaults=ENCODER_DEFAULTS, qp=args.qp, frame_threads=args.threads,
                              nnlf=on_off(args.nnlf), nnlf_model=args.nnlf_model, nnlf_scaling=on_off(args.nnlf_scaling),
                              nnlf_params=args.nnlf_params, nnlf_block_params=on_off(args.nnlf_block_params),
                              nnlf_ensemble=args.nnlf_ensemble)


def _encode(args) -> int:
    import time
    from pathlib import Path

    from jaxcodec.io import atomic_write_bytes, read_video
    from runtime.encoder import encode

    cfg = encode_config(args)
    video = read_video(args.input, max_frames=args.frames, size=args.size)
    t0 = time.perf_counter()
    data, recon = encode(video.frames, cfg, fps=video.fps, progress=not args.quiet)
    seconds = time.perf_counter() - t0
    atomic_write_bytes(Path(args.output), data)
    if args.recon:
        from jaxcodec.io import write_y4m

        write_y4m(args.recon, recon, video.fps)
    print(f"encode {args.input} -> {args.output}: " + summary_line(video.frames, recon, len(data), video.fps, seconds))
    return 0


def _decode(args) -> int:
    if args.threads == 1:
        pin_single_core()
    import time
    from pathlib import Path

    from jaxcodec.errors import InputError

    path = Path(args.input)
    if not path.is_file():
        raise InputError(f"input stream not found: {path}")
    data = path.read_bytes()
    from jaxcodec.io import write_y4m
    from runtime.decoder import decode

    t0 = time.perf_counter()
    frames, fps = decode(data, progress=not args.quiet, return_fps=True, nnlf_model=args.nnlf_model)
    seconds = time.perf_counter() - t0
    write_y4m(args.output, frames, fps)
    n = frames.y.shape[0]
    print(f"decode {args.input} -> {args.output}: frames {n}  kbps {len(data) * 8 / (n / float(fps)) / 1000:.1f}  "
          f"seconds {seconds:.2f}  fps {n / max(seconds, 1e-9):.2f}  md5 ok")
    return 0


def register_encode(sub) -> None:
    p = sub.add_parser("encode", help="encode a video with the jaxcodec hybrid codec")
    p.add_argument("input", help="clip name (carphone, bikes), .y4m, .yuv (with --size) or any FFmpeg container")
    p.add_argument("-o", "--output", required=True, help="output stream (.jxc)")
    p.add_argument("--config", default="ra", help="coding config name in configs/ or a .toml path (default: ra)")
    p.add_argument("--qp", type=int, default=None, help="base QP 0..51 (default: the config's)")
    p.add_argument("--frames", type=int, default=None, help="encode at most N frames")
    p.add_argument("--size", default=None, help="WIDTHxHEIGHT of raw .yuv input")
    p.add_argument("--threads", type=int, default=None, help="frame threads (default: the config's)")
    p.add_argument("--recon", default=None, help="also write the reconstruction (.y4m)")
    p.add_argument("--nnlf", choices=("on", "off"), default=None,
                   help="NN in-loop filter (runtime.nnlf; default: the config's nnlf key, on where the config "
                        "does not set it)")
    p.add_argument("--nnlf-model", default=None,
                   help="NN loop-filter model name in models/ or .jxnnlf path (default: nnlf_medium)")
    p.add_argument("--nnlf-scaling", choices=("on", "off"), default=None,
                   help="residual scaling of the NN filter output (paper 001 III-C; default: the config's "
                        "nnlf_scaling key, on)")
    p.add_argument("--nnlf-params", type=parse_param_offsets, default=None, metavar="OFFSETS",
                   help="NN filter parameter selection (paper 001 III-B): comma-separated QP-input offsets, "
                        "e.g. 0,-5,5, or 'off' (default: the config's nnlf_params key, 0,-5,5)")
    p.add_argument("--nnlf-block-params", choices=("on", "off"), default=None,
                   help="let the encoder choose the parameter per CTU too (paper 001 III-B Cost_4; default: "
                        "the config's nnlf_block_params key, off)")
    p.add_argument("--nnlf-ensemble", type=parse_ensemble, default=None, metavar="L[,C]",
                   help="NN filter self-ensemble sizes, luma[,chroma], each 1, 2, 4 or 8 (runs on that many "
                        "symmetries of the picture, averaged; default: the config's nnlf_ensemble key)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_encode)


def register_decode(sub) -> None:
    p = sub.add_parser("decode", help="decode a .jxc stream (single core, checks every frame's MD5)")
    p.add_argument("input", help="input stream (.jxc)")
    p.add_argument("-o", "--output", required=True, help="output .y4m")
    p.add_argument("--threads", type=int, default=1, help="1 (default) pins the decoder to one CPU core")
    p.add_argument("--nnlf-model", default=None,
                   help="NN loop-filter model for streams that use it (default: the shipped model the stream names)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_decode)

if __name__ == "__main__":
    sys.exit(main())
