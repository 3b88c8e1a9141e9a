"""End-to-end round trips: decoder output == encoder reconstruction (MD5 in the stream),
deterministic bytes, thread-count and jit independence."""

import hashlib
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from codec_clips import generated_clip
from jaxcodec.codec.blocks import MODE_INTER
from jaxcodec.config import load_coding_config
from runtime.decoder import decode
from runtime.encoder import encode


def _same(a, b):
    return all(np.array_equal(np.asarray(getattr(a, c)), np.asarray(getattr(b, c))) for c in "yuv")


def _psnr(a, b):
    mse = np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2)
    return 10 * np.log10(255 ** 2 / max(mse, 1e-9))


@pytest.fixture(scope="module")
def clip():
    return generated_clip(n=5)


@pytest.mark.parametrize("name", ["ai", "ld", "ra", "ra_single_intra"])
def test_generated_roundtrip_and_determinism(clip, name):
    cfg = load_coding_config(name, qp=27, gop_size=4 if name.startswith("ra") else load_coding_config(name).gop_size,
                             intra_period=4 if name == "ra" else load_coding_config(name).intra_period)
    seen = {}
    data, recon = encode(clip, cfg, on_picture=lambda poc, state, orig: seen.setdefault(poc, state.decisions))
    dec = decode(data)
    assert _same(recon, dec)
    assert dec.y.shape == clip.y.shape and dec.u.shape == clip.u.shape
    assert _psnr(dec.y, clip.y) > 30  # it really codes the content
    data2, _ = encode(clip, cfg)
    assert data2 == data
    # the round trip covers the block structures, not only 8x8 CUs
    cu = np.stack([np.asarray(d.cu_log2) for d in seen.values()])
    tu = np.stack([np.asarray(d.tu_log2) for d in seen.values()])
    inter = np.stack([np.asarray(d.pred_mode) == MODE_INTER for d in seen.values()])
    assert (cu[~inter] == 4).any() and (tu[~inter] == 2).any()  # intra quadtree, 4x4 DST TUs
    if name != "ai":
        assert ((tu == cu - 1) & inter).any() and inter.any()  # split inter TUs


def test_intra_4x4_off_is_flagged_and_never_splits():
    from runtime import bitstream as bs

    seen = {}
    clip = generated_clip(n=2)  # the module clip's size: compiled already
    data, recon = encode(clip, load_coding_config("ai", qp=27, intra_4x4=False),
                         on_picture=lambda poc, state, orig: seen.setdefault(poc, state.decisions))
    assert not any((np.asarray(d.tu_log2) == 2).any() for d in seen.values())
    assert not bs.parse_stream(data)[0].tool_flags & bs.TOOL_INTRA_4X4
    assert _same(recon, decode(data))


def test_qp_range_and_rate_order(clip):
    sizes = []
    for qp in (22, 37):
        data, recon = encode(clip, load_coding_config("ld", qp=qp))
        assert _same(recon, decode(data))
        sizes.append(len(data))
    assert sizes[0] > sizes[1]


def test_two_frame_threads_same_bytes(clip):
    cfg = load_coding_config("ra", qp=32, gop_size=2, intra_period=-1)
    one, _ = encode(clip, cfg)
    two, recon2 = encode(clip, cfg.replace(frame_threads=2))
    assert one == two
    assert _same(recon2, decode(two))


@pytest.mark.slow  # about 100 s: every decode op runs eagerly
def test_decode_without_jit_equals_jit():
    clip = generated_clip(n=2, height=16, width=16, seed=3)
    data, recon = encode(clip, load_coding_config("ld", qp=30))
    with jax.disable_jit():
        dec = decode(data)
    assert _same(dec, recon)


def test_decode_in_fresh_process_same_output(clip, tmp_path):
    data, recon = encode(clip, load_coding_config("ld", qp=32))
    (tmp_path / "s.jxc").write_bytes(data)
    code = ("import sys, hashlib, numpy as np; from runtime.decoder import decode;"
            "f = decode(open(sys.argv[1], 'rb').read());"
            "print(hashlib.md5(b''.join(np.ascontiguousarray(p).tobytes() for p in (f.y, f.u, f.v))).hexdigest())")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s.jxc")], capture_output=True, text=True,
                         check=True, env=env)
    want = hashlib.md5(b"".join(np.ascontiguousarray(p).tobytes() for p in (recon.y, recon.u, recon.v))).hexdigest()
    assert out.stdout.strip() == want


@pytest.mark.slow  # about 85 s on CI: every codec stage compiles again for 10-bit samples
def test_ten_bit_roundtrip():
    clip = generated_clip(n=2, height=16, width=24, bit_depth=10)
    data, recon = encode(clip, load_coding_config("ld", qp=32))
    dec = decode(data)
    assert dec.y.dtype == np.uint16 and _same(dec, recon)


# Slow (about 110 s on CI for the first config: every codec stage compiles at carphone's size).
# The default run covers these configs on generated clips (above).
@pytest.mark.slow
@pytest.mark.parametrize("name", ["ai", "ld", "ra"])
def test_carphone_roundtrip_short(name):
    from jaxcodec.io import read_video

    frames = read_video("carphone", max_frames=3).frames
    data, recon = encode(frames, load_coding_config(name, qp=32))
    assert _same(recon, decode(data))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ai", "ld", "ra"])
@pytest.mark.parametrize("qp", [22, 27, 32, 37])
def test_carphone_roundtrip_all_qps(name, qp):
    from jaxcodec.io import read_video

    frames = read_video("carphone", max_frames=17).frames
    data, recon = encode(frames, load_coding_config(name, qp=qp))
    assert _same(recon, decode(data))


def test_compiles_once_per_shape_not_per_frame_or_qp():
    from jaxcodec.codec import analysis, partition, recon

    # The module clip's shape: the earlier tests compiled it, so this one costs encodes, not
    # compiles, and still sees any retrace a new QP, new content or GOP structure would cause.
    clip = generated_clip(n=4, seed=7)
    fns = (recon.intra_cus, recon.inter_reconstruct, recon.residual_levels, analysis.analyse_inter,
           analysis.merge_smooth, partition.motion_pyramid, partition.level_candidates)
    encode(clip, load_coding_config("ld", qp=30))
    before = [f._cache_size() for f in fns]
    data, recon_frames = encode(clip, load_coding_config("ld", qp=35))
    decode(data)  # decode variants are compiled on first use, once
    mid = [f._cache_size() for f in fns]
    data, _ = encode(generated_clip(n=4, seed=8), load_coding_config("ra", qp=24, gop_size=2))
    decode(data)
    after = [f._cache_size() for f in fns]
    assert mid[2:] == before[2:]  # analysis and decisions: no retrace for a new QP or new frames
    # nothing retraces for new content, QPs or GOP structure at the same shape; intra_cus has
    # one encode and one decode variant per shape, the decoder's compiled on first use
    assert after[1:] == mid[1:] and after[0] - before[0] <= 1
