"""Round trips that compile shapes of their own: decoding without jit, 10-bit, real clips.

Split from test_codec_roundtrip.py so that xdist (``--dist loadfile``) runs the two files on
different workers; the JAX compile cache (tests/conftest.py) shares what they have in common.
"""

import jax
import numpy as np
import pytest

from codec_clips import generated_clip, same_frames as _same
from jaxcodec.config import load_coding_config
from runtime.decoder import decode
from runtime.encoder import encode


def test_decode_without_jit_equals_jit():
    clip = generated_clip(n=2, height=16, width=16, seed=3)
    data, recon = encode(clip, load_coding_config("ld", qp=30))
    with jax.disable_jit():
        dec = decode(data)
    assert _same(dec, recon)


def test_ten_bit_roundtrip():
    clip = generated_clip(n=2, height=16, width=24, bit_depth=10)
    data, recon = encode(clip, load_coding_config("ld", qp=32))
    dec = decode(data)
    assert dec.y.dtype == np.uint16 and _same(dec, recon)


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
