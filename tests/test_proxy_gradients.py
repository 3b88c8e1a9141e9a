"""benchmarks/proxy_gradients.py on a tiny generated clip: one row per sequence and the summary JSON."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from jaxcodec.io import write_y4m
from jaxcodec.io.synthetic import moving_textures

_SPEC = importlib.util.spec_from_file_location("proxy_gradients",
                                               Path(__file__).parents[1] / "benchmarks" / "proxy_gradients.py")
proxy_gradients = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(proxy_gradients)


def test_rows_and_summary(tmp_path, capsys):
    clip = tmp_path / "tex.y4m"
    write_y4m(clip, moving_textures(count=1, frames=16, size=64, seed=2)[0])
    assert proxy_gradients.main(["--clips", str(clip), "--sequences", "2", "--eps", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    rows, result = [json.loads(x) for x in lines[:-1]], json.loads(lines[-1])
    assert len(rows) == result["sequences"] == 2
    for r in rows:
        # a +-3 step always changes what x264 codes; the proxy's step is a descent step for its own rate
        assert r["target_rate"] != 0 and r["target_mse_random"] > 0 and r["proxy_rate"] < 0
    assert 0 <= result["rate_sign_agreement"] <= 1 and 0 <= result["gradient_beats_random_mse"] <= 1


def test_missing_clip_is_one_error(capsys):
    assert proxy_gradients.main(["--clips", "no_such_clip.y4m"]) == 2
    assert "proxy_gradients: error:" in capsys.readouterr().err
