"""benchmarks/cross_device.py: stream and output fingerprints, re-decoding carried streams, --compare."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from codec_clips import generated_clip
from jaxcodec.io import write_y4m

_SPEC = importlib.util.spec_from_file_location("cross_device", Path(__file__).parents[1] / "benchmarks" / "cross_device.py")
cross_device = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(cross_device)


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_fingerprints_redecode_and_compare(tmp_path, capsys):
    clip = tmp_path / "tex.y4m"
    # tests/test_codec_roundtrip.py's picture size: the encoder files share one worker (conftest)
    # and so the codec's compiles
    write_y4m(clip, generated_clip(n=1, seed=3), 25)
    argv = ["--clips", str(clip), "--configs", "ai", "--frames", "1", "--streams", str(tmp_path / "s")]
    assert cross_device.main(argv) == 0
    first = capsys.readouterr().out
    row, result = json.loads(first.splitlines()[0]), _last_json(first)
    assert row["encoded_here"] and row["recon_md5"] == row["output_md5"]  # filter forced on, decoder agrees
    (tmp_path / "first.json").write_text(first)

    # the carried stream is decoded, not re-encoded, and matches the first run
    assert cross_device.main(argv + ["--compare", str(tmp_path / "first.json")]) == 0
    again = capsys.readouterr().out
    assert not json.loads(again.splitlines()[0])["encoded_here"]
    assert _last_json(again)["match"] and _last_json(again)["compared"] == 1

    # a different fingerprint is a mismatch and a non-zero exit
    key = next(iter(result["streams"]))
    result["streams"][key]["output_md5"] = "0" * 32
    (tmp_path / "other.json").write_text(json.dumps(result) + "\n")
    assert cross_device.main(argv + ["--compare", str(tmp_path / "other.json")]) == 1
    assert _last_json(capsys.readouterr().out)["match"] is False


def test_user_errors_are_one_line(tmp_path, capsys):
    """A missing clip, a file that is no earlier run's output, a corrupt carried stream."""
    assert cross_device.main(["--clips", str(tmp_path / "none.y4m")]) == 2
    assert "cross_device: error:" in capsys.readouterr().err
    assert cross_device.main(["--clips", "carphone", "--configs", str(tmp_path / "none.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    (tmp_path / "junk.json").write_text("not json\n")
    assert cross_device.main(["--clips", "carphone", "--compare", str(tmp_path / "junk.json")]) == 2
    assert "not the output of this script" in capsys.readouterr().err
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "x_ai_qp32.jxc").write_bytes(b"JXC0 truncated")
    (tmp_path / "x.y4m").write_bytes(b"")
    assert cross_device.main(["--clips", str(tmp_path / "x.y4m"), "--configs", "ai", "--streams", str(tmp_path / "s")]) == 2
    assert "cross_device: error:" in capsys.readouterr().err
