import numpy as np
import pytest

from jaxcodec.errors import InputError
from jaxcodec.frame import crop_frame, make_frame, pad_frame, stack_frames
from jaxcodec.io import read_video, read_y4m, read_yuv, write_y4m, write_yuv


def _random_frames(t, h, w, bit_depth=8, seed=0):
    rng = np.random.default_rng(seed)
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    hi = 1 << bit_depth
    return stack_frames([
        make_frame(
            rng.integers(0, hi, (h, w)).astype(dtype),
            rng.integers(0, hi, (h // 2, w // 2)).astype(dtype),
            rng.integers(0, hi, (h // 2, w // 2)).astype(dtype),
            bit_depth=bit_depth,
        )
        for _ in range(t)
    ])


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_y4m_roundtrip(tmp_path, bit_depth):
    f = _random_frames(3, 18, 22, bit_depth)
    write_y4m(tmp_path / "a.y4m", f, 30)
    g, fps = read_y4m(tmp_path / "a.y4m")
    assert g.bit_depth == bit_depth and fps == 30
    for a, b in zip(f.planes, g.planes):
        np.testing.assert_array_equal(a, b)


def test_yuv_roundtrip_and_size_check(tmp_path):
    f = _random_frames(2, 16, 24)
    write_yuv(tmp_path / "a.yuv", f)
    g = read_yuv(tmp_path / "a.yuv", "24x16")
    np.testing.assert_array_equal(f.y, g.y)
    with pytest.raises(InputError, match="not a whole number"):
        read_yuv(tmp_path / "a.yuv", "26x16")


@pytest.mark.parametrize(
    "header, message",
    [
        (b"YUV4MPEG2 W16 H16 F25:1 C444\n", "unsupported Y4M chroma"),
        (b"YUV4MPEG2 W16 F25:1\n", "width/height"),
        (b"YUV4MPEG W16 H16\n", "not a Y4M"),
        (b"YUV4MPEG2 W15 H16 F25:1\n", "even"),
        (b"YUV4MPEG2 Wxx H16 F25:1\n", "bad Y4M header"),
    ],
)
def test_bad_y4m_headers(tmp_path, header, message):
    p = tmp_path / "bad.y4m"
    p.write_bytes(header + b"FRAME\n" + bytes(16 * 16 * 3 // 2))
    with pytest.raises(InputError, match=message):
        read_y4m(p)


def test_truncated_y4m(tmp_path):
    p = tmp_path / "t.y4m"
    p.write_bytes(b"YUV4MPEG2 W16 H16 F25:1\nFRAME\n" + bytes(100))
    with pytest.raises(InputError, match="truncated"):
        read_y4m(p)


def test_missing_file_and_unknown_clip():
    with pytest.raises(InputError, match="no such clip"):
        read_video("no_such_clip_name")


def test_shipped_clip_reads():
    v = read_video("carphone", max_frames=3)
    assert v.frames.y.shape == (3, 144, 176) and v.frames.u.shape == (3, 72, 88)
    assert abs(float(v.fps) - 29.97) < 0.01


def test_pad_and_crop_inverse():
    f = _random_frames(2, 18, 22)
    p = pad_frame(f, 16)
    assert p.y.shape[-2:] == (32, 32) and p.u.shape[-2:] == (16, 16)
    c = crop_frame(p, 18, 22)
    for a, b in zip(f.planes, c.planes):
        np.testing.assert_array_equal(a, b)
