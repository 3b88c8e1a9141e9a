"""`jaxcodec bench` end to end on a tiny run of real FFmpeg codecs, and its user errors."""

from __future__ import annotations

import json

import pytest

from runtime.bench import bd_rate_or_nan, bd_table, bd_value, psnr_means, run_bench
from runtime.cli import main


def test_bench_writes_points_tables_and_plots(tmp_path, capsys):
    rc = main(["bench", "--codecs", "x264:veryfast,x265:ultrafast", "--clips", "carphone", "--qps", "24,30,36,42",
               "--frames", "3", "-o", str(tmp_path), "-q"])
    assert rc == 0
    result = json.loads((tmp_path / "results.json").read_text())
    points = result["points"]
    assert len(points) == 2 * 4
    keys = {"codec", "clip", "qp", "kbps", "psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "ssim", "ms_ssim", "enc_fps",
            "dec_fps", "vmaf"}
    assert all(keys <= set(p) for p in points)
    x264 = sorted((p for p in points if p["codec"] == "x264:veryfast"), key=lambda p: p["qp"])
    assert [p["qp"] for p in x264] == [24, 30, 36, 42]
    assert all(a["kbps"] > b["kbps"] and a["psnr_yuv"] > b["psnr_yuv"] for a, b in zip(x264, x264[1:]))
    assert all(0.5 < p["ssim"] <= 1 and 0.5 < p["ms_ssim"] <= 1 and p["enc_fps"] > 0 for p in points)
    assert all(abs(p["psnr_yuv"] - (6 * p["psnr_y"] + p["psnr_u"] + p["psnr_v"]) / 8) < 1e-4 for p in points)
    bd = result["bd_rate"]["carphone"]["x265:ultrafast"]["psnr_yuv"]
    assert isinstance(bd, float)
    md = (tmp_path / "results.md").read_text()
    assert "BD-rate" in md and "x265:ultrafast" in md and "| 42 |" in md
    row = next(line for line in md.splitlines() if line.startswith("| x265:ultrafast |") and "%" in line)
    enct, dect = row.strip("|").split("|")[-2:]  # EncT / DecT columns: x265 time over x264's
    x265 = [p for p in points if p["codec"] == "x265:ultrafast"]
    want = sum(p["frames"] / p["enc_fps"] for p in x265) / sum(p["frames"] / p["enc_fps"] for p in x264)
    assert enct.strip() == f"{100 * want:.0f}%" and dect.strip().endswith("%")
    assert (tmp_path / "rd_carphone.png").read_bytes()[:4] == b"\x89PNG"
    assert "BD-rate (PSNR-YUV)" in capsys.readouterr().out


def test_bd_with_fewer_than_four_points_is_reported_not_invented():
    pts = [{"codec": c, "clip": "k", "qp": q, "kbps": 100.0 / q, "psnr_yuv": 50 - q, "psnr_y": 50 - q, "ssim": 1 - q / 100,
            "ms_ssim": 1 - q / 100} for c in ("a", "b") for q in (22, 27, 32)]
    row = bd_table(pts, ["a", "b"], ["k"])["k"]["b"]
    assert row["psnr_yuv"].startswith("n/a") and "at least 4" in row["psnr_yuv"]


def test_bd_helpers_for_scripts_warn_and_give_nan(capsys):
    """bd_value / bd_rate_or_nan (benchmarks/rd_codec.py, benchmarks/wrappers.py): the library value,
    the overlap warning returned rather than raised, NaN with the reason on stderr where there is none."""
    import math

    from jaxcodec.metrics.bdrate import bd_rate

    anchor = [{"kbps": r, "m": q} for r, q in ((100, 30), (200, 33), (400, 36), (800, 39))]
    test = [{"kbps": r, "m": q} for r, q in ((90, 31), (180, 34), (360, 37), (720, 40))]  # 3/9 of the range apart
    value, warning = bd_value(anchor, test, "m")
    assert value == bd_rate([100, 200, 400, 800], [30, 33, 36, 39], [90, 180, 360, 720], [31, 34, 37, 40])
    assert warning is None
    far = [{"kbps": p["kbps"], "m": p["m"] + 6} for p in anchor]  # overlap 3 of 15 dB
    value, warning = bd_value(anchor, far, "m")
    assert isinstance(value, float) and "overlap" in warning
    assert math.isnan(bd_rate_or_nan(anchor[:3], test[:3], "m"))
    assert "at least 4" in capsys.readouterr().err


def test_psnr_means_is_the_mean_of_per_frame_psnrs():
    import numpy as np

    from jaxcodec.frame import make_frame

    rng = np.random.default_rng(0)
    planes = [rng.integers(0, 256, (2, h, w), dtype=np.uint8) for h, w in ((16, 16), (8, 8), (8, 8))]
    ref = make_frame(*planes)
    dist = make_frame(*(np.clip(p.astype(int) + rng.integers(-3, 4, p.shape), 0, 255).astype(np.uint8) for p in planes))
    got = psnr_means(ref, dist)
    for c, p, q in zip("yuv", planes, dist.planes):
        mse = ((p.astype(float) - np.asarray(q, float)) ** 2).mean(axis=(1, 2))
        assert got[f"psnr_{c}"] == pytest.approx(float(np.mean(10 * np.log10(255.0**2 / mse))), abs=1e-4)
    assert got["psnr_yuv"] == pytest.approx((6 * got["psnr_y"] + got["psnr_u"] + got["psnr_v"]) / 8, abs=1e-4)


@pytest.mark.parametrize("argv, message", [
    (["--codecs", "x264:medium,h266:fast", "--clips", "carphone"], "unknown codec 'h266:fast'"),
    (["--codecs", "x264:medium", "--clips", "carphone,nosuchclip"], "nosuchclip"),
    (["--codecs", "x264:medium", "--clips", "carphone", "--qps", "22,a"], "--qps"),
    (["--codecs", "x264:medium", "--clips", "carphone", "--weights", "99"], "weights"),
])
def test_user_errors_are_one_line(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert main(["bench", *argv, "--frames", "2", "-o", str(out), "-q"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("jaxcodec: error:") and message in err and "\n" not in err
    assert not (out / "results.json").exists()


def test_run_bench_rejects_repeated_codecs(tmp_path):
    from jaxcodec.errors import ConfigError

    with pytest.raises(ConfigError, match="repeat"):
        run_bench(["x264:medium", "x264:medium"], ["carphone"], [22, 27, 32, 37], frames=2, out_dir=tmp_path)
