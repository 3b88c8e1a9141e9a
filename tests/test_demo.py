"""`make demo`'s entry point runs end to end on a short clip (table, BD-rate line, RD plot)."""

import pytest

from runtime import demo


@pytest.mark.slow  # about 100 s on CI: the codec with the shipped NN filter compiles at carphone's size
def test_demo_runs_and_writes_the_plot(tmp_path, capsys):
    assert demo.main(["--frames", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "BD-rate (psnr_yuv) vs x264 medium" in out and out.count(" ok (2 frames)") == 4
    assert (tmp_path / "rd_carphone.png").stat().st_size > 1000
    assert len(list(tmp_path.glob("*.jxc"))) == 4
