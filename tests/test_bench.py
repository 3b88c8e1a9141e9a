"""`jaxcodec bench` end to end on a tiny run of real FFmpeg codecs, and its user errors."""

from __future__ import annotations

import json

import pytest

from runtime.bench import bd_table, run_bench
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
    assert (tmp_path / "rd_carphone.png").read_bytes()[:4] == b"\x89PNG"
    assert "BD-rate (PSNR-YUV)" in capsys.readouterr().out


def test_bd_with_fewer_than_four_points_is_reported_not_invented():
    pts = [{"codec": c, "clip": "k", "qp": q, "kbps": 100.0 / q, "psnr_yuv": 50 - q, "psnr_y": 50 - q, "ssim": 1 - q / 100,
            "ms_ssim": 1 - q / 100} for c in ("a", "b") for q in (22, 27, 32)]
    row = bd_table(pts, ["a", "b"], ["k"])["k"]["b"]
    assert row["psnr_yuv"].startswith("n/a") and "at least 4" in row["psnr_yuv"]


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
