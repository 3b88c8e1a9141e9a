"""`jaxcodec encode` / `jaxcodec decode` as a user runs them: outputs, one-line errors,
non-zero exits, no output left behind on failure."""

import os
import subprocess
import sys

import numpy as np
import pytest

from codec_clips import generated_clip
from jaxcodec.io import read_y4m, write_y4m
from runtime.bitstream import TOOL_NNLF, TOOL_NNLF_ENSEMBLE, TOOL_NNLF_PARAM, TOOL_NNLF_SCALE, parse_stream

CLI = [sys.executable, "-m", "runtime.cli"]


def run(*args, cwd):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})


@pytest.fixture(scope="module")
def y4m(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    clip = generated_clip(n=3, seed=2)  # the other encoder test files' size: the CLI reads their compiles from JAX's cache
    write_y4m(d / "in.y4m", clip, 25)
    return d, clip


def _one_line_error(p):
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in p.stderr, p.stderr


def test_encode_decode_roundtrip(y4m):
    d, clip = y4m
    p = run("encode", d / "in.y4m", "-o", d / "a.jxc", "--config", "ld", "--qp", "30", "--recon", d / "rec.y4m", "-q",
            cwd=d)
    assert p.returncode == 0, p.stderr
    assert "PSNR-YUV" in p.stdout and "kbps" in p.stdout and "fps" in p.stdout
    p = run("decode", d / "a.jxc", "-o", d / "dec.y4m", "-q", cwd=d)
    assert p.returncode == 0, p.stderr
    dec, _ = read_y4m(d / "dec.y4m")
    rec, _ = read_y4m(d / "rec.y4m")
    assert all(np.array_equal(getattr(dec, c), getattr(rec, c)) for c in "yuv")
    assert dec.y.shape == clip.y.shape
    # The shipped NN loop filter is on by default, with residual scaling and parameter selection.
    seq, _ = parse_stream((d / "a.jxc").read_bytes())
    assert seq.tool_flags & TOOL_NNLF and seq.tool_flags & TOOL_NNLF_SCALE and seq.nnlf_model
    assert seq.tool_flags & TOOL_NNLF_PARAM and seq.nnlf_params == (0, -5, 5)
    assert seq.tool_flags & TOOL_NNLF_ENSEMBLE and seq.nnlf_ensemble == (8, 1)


def test_options_reach_the_coding_config():
    """What `jaxcodec encode` codes with, from its options (the streams' flags follow the config:
    tests/test_nnlf.py): --nnlf off is the bare codec, the others land where they say."""
    from runtime.cli import build_parser, encode_config

    def cfg(*opts):
        return encode_config(build_parser().parse_args(["encode", "in.y4m", "-o", "a.jxc", "--config", "ld", *opts]))

    default = cfg()
    assert default.nnlf and default.nnlf_scaling and not default.nnlf_block_params
    assert not cfg("--nnlf", "off").nnlf and cfg("--nnlf", "off").replace(nnlf=True) == default
    got = cfg("--qp", "30", "--nnlf-scaling", "off", "--nnlf-params", "0,-3,3", "--nnlf-block-params", "on",
              "--nnlf-ensemble", "4,2", "--threads", "2")
    assert (got.qp, got.nnlf_scaling, got.nnlf_params, got.nnlf_block_params, got.nnlf_ensemble, got.frame_threads) == (
        30, False, (0, -3, 3), True, (4, 2), 2)


@pytest.mark.slow  # two more encoder/decoder processes, each compiling from scratch; tests/test_nnlf.py covers the tools
def test_nnlf_block_params_and_ensemble_flags_reach_the_stream(y4m):
    """Block-level parameters (an encoder choice, off by default) and a self-ensemble the
    sequence header carries: the decoder follows the stream."""
    d, _ = y4m
    p = run("encode", d / "in.y4m", "-o", d / "blk.jxc", "--config", "ld", "--qp", "30", "--nnlf-block-params", "on",
            "--nnlf-ensemble", "4,2", "--recon", d / "blk.y4m", "-q", cwd=d)
    assert p.returncode == 0, p.stderr
    seq, _ = parse_stream((d / "blk.jxc").read_bytes())
    assert seq.tool_flags & TOOL_NNLF_ENSEMBLE and seq.nnlf_ensemble == (4, 2)
    p = run("decode", d / "blk.jxc", "-o", d / "blkdec.y4m", "-q", cwd=d)
    assert p.returncode == 0, p.stderr
    dec, _ = read_y4m(d / "blkdec.y4m")
    rec, _ = read_y4m(d / "blk.y4m")
    assert all(np.array_equal(getattr(dec, c), getattr(rec, c)) for c in "yuv")


def test_bad_streams(y4m):
    d, _ = y4m
    if not (d / "a.jxc").exists():
        assert run("encode", d / "in.y4m", "-o", d / "a.jxc", "--config", "ld", "-q", cwd=d).returncode == 0
    data = (d / "a.jxc").read_bytes()
    cases = {"trunc.jxc": data[: len(data) // 2], "magic.jxc": b"XXXX" + data[4:],
             "version.jxc": data[:4] + b"\x07" + data[5:], "flip.jxc": data[:60] + bytes([data[60] ^ 0x55]) + data[61:]}
    for name, content in cases.items():
        (d / name).write_bytes(content)
        out = d / f"{name}.y4m"
        p = run("decode", d / name, "-o", out, "-q", cwd=d)
        _one_line_error(p)
        assert not out.exists()
    p = run("decode", d / "missing.jxc", "-o", d / "m.y4m", cwd=d)
    _one_line_error(p)
    assert "not found" in p.stderr


def test_bad_inputs(y4m):
    d, _ = y4m
    good = (d / "in.y4m").read_bytes()
    (d / "broken.y4m").write_bytes(b"YUV4MPEG2 Wabc H16\n" + good[good.index(b"\n") + 1:])
    (d / "c444.y4m").write_bytes(good.replace(b"C420jpeg", b"C444", 1))
    for name in ("broken.y4m", "c444.y4m", "nothere.y4m"):
        p = run("encode", d / name, "-o", d / "x.jxc", "-q", cwd=d)
        _one_line_error(p)
        assert not (d / "x.jxc").exists()
    p = run("encode", d / "in.y4m", "-o", d / "x.jxc", "--config", "nosuchconfig", cwd=d)
    _one_line_error(p)
    assert "unknown config" in p.stderr and not (d / "x.jxc").exists()
    p = run("encode", d / "in.y4m", "-o", d / "x.jxc", "--qp", "60", cwd=d)
    _one_line_error(p)
    for opt, bad, msg in (("--nnlf-params", "0,x", "comma-separated integers"),
                          ("--nnlf-params", "0,0", "nnlf_params needs"),
                          ("--nnlf-ensemble", "8,x", "LUMA or LUMA,CHROMA"),
                          ("--nnlf-ensemble", "3", "nnlf_ensemble needs")):
        p = run("encode", d / "in.y4m", "-o", d / "x.jxc", opt, bad, cwd=d)
        _one_line_error(p)
        assert msg in p.stderr and not (d / "x.jxc").exists()
