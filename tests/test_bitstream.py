"""Container robustness: every corruption gives a BitstreamError (or, for a byte that does not
change the decoded pictures, the same output) -- never another exception, never a hang."""

import struct
import zlib
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from codec_clips import generated_clip
from jaxcodec.config import load_coding_config
from jaxcodec.errors import BitstreamError
from runtime import bitstream as bs
from runtime.decoder import decode
from runtime.encoder import encode


@pytest.fixture(scope="module")
def stream():
    # tests/test_codec_roundtrip.py's picture size: the encoder files run in one worker (conftest),
    # so the codec compiles once for both
    clip = generated_clip(n=3, seed=1)
    data, recon = encode(clip, load_coding_config("ld", qp=32))
    return data, recon


def _same(a, b):
    return all(np.array_equal(np.asarray(getattr(a, c)), np.asarray(getattr(b, c))) for c in "yuv")


def _decode_or_error(data, recon):
    try:
        out = decode(data)
    except BitstreamError as e:
        assert str(e)
        return False
    assert _same(out, recon)
    return True


def test_headers_roundtrip(stream):
    data, _ = stream
    seq, frames = bs.parse_stream(data)
    assert (seq.width, seq.height, seq.bit_depth, seq.num_frames, seq.gop_structure) == (36, 20, 8, 3, "ld")
    assert [f.poc for f, _ in frames] == [0, 1, 2]
    assert frames[0][0].frame_type == "I" and frames[2][0].refs_l0 == (1, 0)
    rebuilt = bs.write_sequence_header(seq) + b"".join(bs.write_frame(f, p) for f, p in frames)
    assert rebuilt == data
    np.testing.assert_array_equal(bs.frame_qps(data), [f.qp for f, _ in frames])  # POC order here


def _nnlf_header(tools, params, ensemble=(1, 1)):
    seq = bs.SequenceHeader(64, 32, 8, "420", Fraction(25), "ra", 8, 32, 2, 64, 8, tools, 0, 32,
                            1, bytes(range(16)), params, ensemble)
    return bs.write_sequence_header(seq)


def _recrc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def test_nnlf_ensemble_sizes_in_the_sequence_header():
    """The self-ensemble sizes travel as one byte after the parameter list; reserved bits, the
    tool without the NN filter, or sizes other than 1/2/4/8 are refused."""
    tools = bs.TOOL_NNLF | bs.TOOL_NNLF_PARAM | bs.TOOL_NNLF_ENSEMBLE
    for ens in ((8, 1), (1, 2), (4, 8), (2, 4)):
        seq = bs.parse_sequence_header(bs._Reader(_nnlf_header(tools, (0, -5, 5), ens)))
        assert seq.nnlf_ensemble == ens and seq.nnlf_params == (0, -5, 5)
    seq = bs.parse_sequence_header(bs._Reader(_nnlf_header(bs.TOOL_NNLF | bs.TOOL_NNLF_ENSEMBLE, (), (8, 1))))
    assert seq.nnlf_ensemble == (8, 1) and seq.nnlf_params == ()
    assert bs.parse_sequence_header(bs._Reader(_nnlf_header(bs.TOOL_NNLF, ()))).nnlf_ensemble == (1, 1)
    for bad in ((3, 1), (8,), (16, 1)):
        with pytest.raises(ValueError, match="nnlf_ensemble"):
            _nnlf_header(tools, (0, 5), bad)
    body = bytearray(_nnlf_header(tools, (0, 5), (8, 1))[:-4])
    body[-1] |= 0x40
    with pytest.raises(BitstreamError, match="reserved bits"):
        bs.parse_sequence_header(bs._Reader(_recrc(bytes(body))))
    # The tool without the NN filter: no model identity, the byte still there.
    seq = bs.SequenceHeader(64, 32, 8, "420", Fraction(25), "ra", 8, 32, 2, 64, 8, bs.TOOL_NNLF_ENSEMBLE, 0, 32,
                            1, b"", (), (8, 1))
    with pytest.raises(BitstreamError, match="self-ensemble flagged without"):
        bs.parse_sequence_header(bs._Reader(bs.write_sequence_header(seq)))


def test_nnlf_parameter_candidates_in_the_sequence_header():
    """Parameter selection's QP-input offsets (paper 001 III-B) travel in the sequence header,
    range-checked on both sides."""
    tools = bs.TOOL_NNLF | bs.TOOL_NNLF_PARAM
    data = _nnlf_header(tools, (0, -5, 5))
    seq = bs.parse_sequence_header(bs._Reader(data))
    assert seq.nnlf_params == (0, -5, 5) and seq.nnlf_model == bytes(range(16))
    assert bs.parse_sequence_header(bs._Reader(_nnlf_header(bs.TOOL_NNLF, ()))).nnlf_params == ()
    for bad in ((0,), (0, 1, 2, 3, 4), (0, 17)):
        with pytest.raises(ValueError, match="nnlf_params"):
            _nnlf_header(tools, bad)
    # A count outside 2..4 or an offset outside +-16 in a stream (crc fixed up): one clear error.
    body = bytearray(data[:-4])
    for pos, value, msg in ((-4, 9, "parameter count 9"), (-1, 100, "offset out of range")):
        b = bytearray(body)
        b[pos] = value
        b += struct.pack("<I", zlib.crc32(bytes(b)))
        with pytest.raises(BitstreamError, match=msg):
            bs.parse_sequence_header(bs._Reader(bytes(b)))


def test_wrong_magic_and_version(stream):
    data, _ = stream
    with pytest.raises(BitstreamError, match="magic"):
        decode(b"RIFF" + data[4:])
    with pytest.raises(BitstreamError, match="version 9"):
        decode(data[:4] + bytes([9]) + data[5:])
    with pytest.raises(BitstreamError):
        decode(b"")


def test_truncated_at_20_positions(stream):
    data, _ = stream
    rng = np.random.default_rng(0)
    for cut in sorted(rng.choice(len(data), 20, replace=False)):
        with pytest.raises(BitstreamError):
            decode(data[:cut])
    with pytest.raises(BitstreamError, match="trailing"):
        decode(data + b"\0")


def test_random_byte_flips(stream):
    data, recon = stream
    rng = np.random.default_rng(1)
    errors = 0
    for _ in range(40):
        b = bytearray(data)
        i = int(rng.integers(len(b)))
        b[i] ^= int(rng.integers(1, 256))
        errors += not _decode_or_error(bytes(b), recon)
    assert errors >= 35  # almost every flip is detected (the rest decode to the same pictures)


def test_md5_mismatch_is_loud(stream):
    data, _ = stream
    seq, frames = bs.parse_stream(data)
    fh, payload = frames[1]
    bad = fh.__class__(**{**fh.__dict__, "md5": bytes(16)})
    forged = bs.write_sequence_header(seq) + b"".join(bs.write_frame(f if k != 1 else bad, p)
                                                      for k, (f, p) in enumerate(frames))
    with pytest.raises(BitstreamError, match="MD5 mismatch in frame POC 1"):
        decode(forged)


def test_missing_reference(stream):
    data, _ = stream
    seq, frames = bs.parse_stream(data)
    fh, payload = frames[1]
    bad = fh.__class__(**{**fh.__dict__, "refs_l0": (2,), "refs_l1": (2,)})
    forged = bs.write_sequence_header(seq) + b"".join(bs.write_frame(f if k != 1 else bad, p)
                                                      for k, (f, p) in enumerate(frames))
    with pytest.raises(BitstreamError, match="not in the DPB"):
        decode(forged)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_streams_never_crash(stream, data_strategy):
    data, recon = stream
    b = bytearray(data)
    kind = data_strategy.draw(st.sampled_from(["flip", "insert", "delete", "splice"]))
    i = data_strategy.draw(st.integers(0, len(b) - 1))
    if kind == "flip":
        b[i] ^= data_strategy.draw(st.integers(1, 255))
    elif kind == "insert":
        b[i:i] = data_strategy.draw(st.binary(min_size=1, max_size=8))
    elif kind == "delete":
        del b[i:i + data_strategy.draw(st.integers(1, 8))]
    else:
        b[i:] = data_strategy.draw(st.binary(max_size=64))
    _decode_or_error(bytes(b), recon)


def test_payload_length_bomb(stream):
    data, _ = stream
    seq, frames = bs.parse_stream(data)
    fh, payload = frames[0]
    huge = bs.write_frame(fh, payload)
    # claim a 4 GB payload: refused (header crc, else truncation) without allocating it
    off = len(huge) - len(payload) - 8
    huge = huge[:off] + struct.pack("<I", 0xFFFFFFFF) + huge[off + 4:]
    with pytest.raises(BitstreamError):
        decode(bs.write_sequence_header(seq) + huge)
