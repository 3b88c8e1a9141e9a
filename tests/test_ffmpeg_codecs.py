"""FFmpeg adapters and the codec registry: real encodes of a real clip, in memory."""

from __future__ import annotations

import io

import numpy as np
import pytest

from jaxcodec.codecs import Codec
from jaxcodec.codecs import ffmpeg
from jaxcodec.codecs.registry import available_codecs, codec_families, get_codec
from jaxcodec.errors import CodecUnavailableError, ConfigError, InputError
from jaxcodec.io import read_video

FAMILIES = [f for f in ("x264", "x265", "svtav1") if ffmpeg.family_available(f)]


@pytest.fixture(scope="module")
def clip():
    return read_video("carphone", max_frames=6)


def _psnr(a, b):
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("structure", ["ra", "ld"])
def test_round_trip_bits_sum_to_stream(clip, family, structure):
    codec = get_codec(f"{family}:{ffmpeg.FAMILIES[family].default_preset}:{structure}")
    assert isinstance(codec, Codec)
    res = codec.encode(clip.frames, qp=32, fps=clip.fps)
    assert res.recon.y.shape == clip.frames.y.shape and res.recon.y.dtype == np.uint8
    assert res.recon.u.shape == clip.frames.u.shape
    assert res.bits_per_frame.shape == (6,) and np.all(res.bits_per_frame > 0)
    assert int(res.bits_per_frame.sum()) == 8 * len(res.bitstream)
    assert 28 < _psnr(clip.frames.y, res.recon.y) < 50
    # The elementary stream decodes on its own through FFmpeg's raw demuxer, to the same pictures.
    import av

    with av.open(io.BytesIO(res.bitstream), format=ffmpeg.FAMILIES[family].raw_format) as container:
        ys = [f.to_ndarray(format="yuv420p")[: clip.frames.height] for f in container.decode(video=0)]
    assert len(ys) == 6
    np.testing.assert_array_equal(np.stack(ys), res.recon.y)


def test_first_frame_is_the_intra_frame_in_display_order(clip):
    res = get_codec("x264:medium").encode(clip.frames, qp=32, fps=clip.fps)
    assert res.bits_per_frame[0] == res.bits_per_frame.max()  # IDR + parameter sets, not a B-frame


def _picture_types(res, family):
    import av

    with av.open(io.BytesIO(res.bitstream), format=ffmpeg.FAMILIES[family].raw_format) as container:
        return [ffmpeg._PICTURE_TYPES[int(f.pict_type)] for f in container.decode(video=0)]


@pytest.mark.parametrize("family", ["x264", "x265"])
def test_frame_qp_is_each_pictures_coded_qp(clip, family):
    """x264's and x265's CQP mode code I pictures 6 log2(ipratio 1.4) = 3 QP finer and B pictures
    6 log2(pbratio 1.3) = 2 coarser than the stream QP (x264's referenced B-frames 1 coarser).
    H.264's QPs come from the macroblocks FFmpeg exports (base + per-block delta), independently
    of the picture type; HEVC's are the picture-type estimate."""
    plain = get_codec(f"{family}:medium").encode(clip.frames, qp=30, fps=clip.fps)
    assert plain.frame_qp is None
    res = get_codec(f"{family}:medium", frame_qp=True).encode(clip.frames, qp=30, fps=clip.fps)
    np.testing.assert_array_equal(res.recon.y, plain.recon.y)  # the export changes no sample
    assert res.frame_qp.shape == (6,) and res.frame_qp.dtype == np.float32
    types = _picture_types(res, family)
    assert types[0] == "I" and "B" in types
    for kind, qp in zip(types, res.frame_qp):
        allowed = {"I": {27}, "P": {30}, "B": {31, 32} if family == "x264" else {32}}[kind]
        assert qp in allowed, (types, res.frame_qp)


def test_lower_qp_costs_more_bits_and_gives_higher_psnr(clip):
    codec = get_codec("x265:medium")
    hi, lo = codec.encode(clip.frames, qp=22, fps=clip.fps), codec.encode(clip.frames, qp=37, fps=clip.fps)
    assert hi.bits_per_frame.sum() > 2 * lo.bits_per_frame.sum()
    assert _psnr(clip.frames.y, hi.recon.y) > _psnr(clip.frames.y, lo.recon.y) + 3


def test_intra_period(clip):
    res = get_codec("x264:medium", gop=3).encode(clip.frames, qp=30, fps=clip.fps)
    bits = res.bits_per_frame
    assert bits[3] > 2 * max(bits[1], bits[2], bits[4])  # IDR at 0 and 3


def test_registry_names_and_errors():
    assert "x264:medium" in available_codecs()
    assert {"x264", "x265", "svtav1", "aom"} <= set(codec_families())
    with pytest.raises(ConfigError, match="unknown codec 'h266:fast'.*x264"):
        get_codec("h266:fast")
    with pytest.raises(ConfigError, match="preset"):
        get_codec("x264:superslow")
    with pytest.raises(ConfigError, match="structure"):
        get_codec("x264:medium:zigzag")
    with pytest.raises(ConfigError, match="QP 99"):
        get_codec("x264:medium").options(99)


def test_missing_encoder_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(ffmpeg, "_have", lambda name, mode: name != "libx265")
    with pytest.raises(CodecUnavailableError, match="libx265"):
        get_codec("x265:medium")


def test_unstacked_input_is_rejected(clip):
    with pytest.raises(InputError, match="stacked"):
        get_codec("x264:medium").encode(clip.frames[0], qp=30)


def test_plugin_codecs_come_through_the_entry_point_group():
    from importlib.metadata import entry_points

    if "ours" not in {ep.name for ep in entry_points(group="jaxcodec.codecs")}:
        pytest.skip("no plugin codec installed")
    codec = get_codec("ours:ld")  # the factory receives the part after the colon
    assert isinstance(codec, Codec) and codec.name == "ours:ld"
    assert "ours" in available_codecs()
