"""Residual scaling of the postprocessor (`wrappers.strength`, `NetConfig.strength`, paper 001 eq. 3)."""

import dataclasses
import math

import jax
import numpy as np
import pytest
from flax import nnx

from jaxcodec.errors import ConfigError, InputError, ModelError
from jaxcodec.io.synthetic import moving_textures
from wrappers.deploy import postprocess, postprocess_float, scale_correction, set_strength
from wrappers.nets import NetConfig, Wrapper
from wrappers.strength import parse_grid, pick_stream_strength, select_strength, strength_files
from wrappers.train import load_wrapper, save_wrapper

PRE, POST = NetConfig(8, 1, enabled=False), NetConfig(8, 1, qp_input=True)


@pytest.fixture(scope="module")
def clip():
    return moving_textures(count=1, frames=4, size=64)[0]


def _model(path, seed: int = 1, post: NetConfig = POST):
    """A saved post-only wrapper whose correction is not zero (the tail starts at zero)."""
    w = Wrapper(PRE, post, rngs=nnx.Rngs(seed))
    leaves, tree = jax.tree.flatten(nnx.state(w, nnx.Param))
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    nnx.update(w, jax.tree.unflatten(tree, [x + 0.05 * jax.random.normal(k, x.shape, x.dtype)
                                            for x, k in zip(leaves, keys)]))
    save_wrapper(path, w, meta={"pre": dataclasses.asdict(PRE), "post": dataclasses.asdict(post), "target": "x264",
                                "qp_range": [22, 37]})
    return path


def test_scaled_output_matches_a_sample_loop_reference(clip):
    """checkasm habit: the vectorised scaling equals x + s (o - x), clipped and rounded, sample by sample."""
    rng = np.random.default_rng(0)
    planes = [np.clip(np.asarray(p, np.float32) + rng.normal(0, 6, np.shape(p)).astype(np.float32), 0, 255)
              for p in clip.planes]
    for s in (0.5, 1.0, 1.7):
        got = scale_correction(clip, planes, s)
        for g, x, o in zip(got.planes, clip.planes, planes):
            x = np.asarray(x)
            want = np.empty_like(x)
            for idx in np.ndindex(x.shape):
                v = float(x[idx]) + float(np.float32(s)) * (float(o[idx]) - float(x[idx]))
                want[idx] = round(min(max(v, 0.0), 255.0))
            # float32 arithmetic against float64: a .5 tie may round either way
            assert np.abs(np.asarray(g, np.int32) - want.astype(np.int32)).max() <= 1
            assert np.mean(np.asarray(g) != want) < 1e-3
        assert got.y.dtype == np.uint8
    # strength 1 is the rounded network output itself, exactly
    same = scale_correction(clip, planes, 1.0)
    for g, o in zip(same.planes, planes):
        np.testing.assert_array_equal(np.asarray(g), np.round(o).astype(np.uint8))


def test_deployed_strength_scales_the_ensembles_mean_correction(tmp_path, clip):
    path = _model(tmp_path / "m")
    w, meta = load_wrapper(path)
    plain = postprocess(w, clip, qp=30, ensemble=2)
    floats = postprocess_float(w, clip, qp=30, ensemble=2)
    np.testing.assert_array_equal(np.asarray(plain.y), np.round(floats[0]).astype(np.uint8))
    # the same weights saved with a strength: what the decoder runs
    w.post.strength = 1.5
    save_wrapper(tmp_path / "s", w, meta={**meta, "post": {**meta["post"], "strength": 1.5}})
    scaled_model, _ = load_wrapper(tmp_path / "s")
    assert scaled_model.post.strength == 1.5
    got = postprocess(scaled_model, clip, qp=30, ensemble=2)
    want = scale_correction(clip, floats, 1.5)
    for g, x in zip(got.planes, want.planes):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(x))
    # scaling up moves samples further from the decode than the network does
    dist = [np.abs(np.asarray(f.y, np.int32) - np.asarray(clip.y, np.int32)).sum() for f in (plain, got)]
    assert dist[1] > dist[0] > 0
    with pytest.raises(ConfigError, match="strength"):
        NetConfig(8, 1, strength=0.0)
    # --strength of `jaxcodec wrap decode` and benchmarks/wrappers.py: the same as a saved factor
    w2, _ = load_wrapper(path)
    got2 = postprocess(set_strength(w2, 1.5), clip, qp=30, ensemble=2)
    np.testing.assert_array_equal(np.asarray(got2.y), np.asarray(got.y))
    assert set_strength(w2, None).post.strength == 1.5
    with pytest.raises(InputError, match=r"\(0, 4\]"):
        set_strength(w2, 5.0)
    with pytest.raises(InputError, match="has none"):
        set_strength(Wrapper(NetConfig(8, 1), NetConfig(8, 1, enabled=False), rngs=nnx.Rngs(0)), 1.2)


def test_selection_keeps_most_of_the_structure_savings():
    bd = {1.0: {"ssim": -6.0, "ms_ssim": -5.0}, 1.2: {"ssim": -5.5, "ms_ssim": -4.5},
          1.4: {"ssim": -4.0, "ms_ssim": -4.5}, 1.6: {"ssim": -2.0, "ms_ssim": -1.0}}
    bd_all = {1.0: -12.0, 1.2: -13.0, 1.4: -14.0, 1.6: -15.0}
    # 1.4 keeps 67 % of the SSIM saving, 1.6 a third: 1.2 is the best that keeps 80 %
    assert select_strength(bd, bd_all) == 1.2
    assert select_strength(bd, bd_all, keep=0.6) == 1.4
    assert select_strength(bd, bd_all, keep=0.1) == 1.6
    # nothing better than the network as trained, or no saving to keep: 1
    assert select_strength(bd, {1.0: -16.0, 1.2: -13.0, 1.4: -14.0, 1.6: -15.0}) == 1.0
    lost = {**bd, 1.0: {"ssim": 0.5, "ms_ssim": -5.0}}
    assert select_strength(lost, bd_all) == 1.0
    assert select_strength({**bd, 1.2: {"ssim": math.nan, "ms_ssim": -4.5}}, bd_all) == 1.0
    with pytest.raises(ConfigError, match="keep"):
        select_strength(bd, bd_all, keep=0.0)


def test_stream_pick_takes_the_most_dlm_that_gives_back_no_structure():
    one = {"ssim": 0.95, "ms_ssim": 0.98, "dlm": 0.90}
    scores = {1.0: one, 0.9: {"ssim": 0.951, "ms_ssim": 0.981, "dlm": 0.89},
              1.2: {"ssim": 0.951, "ms_ssim": 0.980, "dlm": 0.92},  # more DLM, no structure lost
              1.4: {"ssim": 0.949, "ms_ssim": 0.981, "dlm": 0.94}}  # more DLM, SSIM lost
    assert pick_stream_strength(scores) == 1.2
    assert pick_stream_strength({**scores, 1.2: {**scores[1.2], "ms_ssim": 0.9799}}) == 1.0
    assert pick_stream_strength({**scores, 1.2: {**scores[1.2], "dlm": math.nan}}) == 1.0
    # equal scores: the factor nearest the network as trained
    assert pick_stream_strength({1.0: one, 1.1: dict(one), 0.95: dict(one)}) == 1.0
    with pytest.raises(ConfigError, match="must hold 1"):
        pick_stream_strength({1.2: one})


def test_stream_pick_rows_are_the_picked_factors_rows_behind_real_x264(tmp_path, clip):
    """`compare` with ``stream_strengths`` keeps, per QP, the row the full sweep scores at the factor
    `pick_stream_strength` takes from the sweep's own rows."""
    from jaxcodec.io import write_y4m
    from wrappers.deploy import get_codec
    from wrappers.evaluate import compare, strength_name

    src = tmp_path / "src.y4m"
    write_y4m(src, clip)
    w, _ = load_wrapper(_model(tmp_path / "m"))
    grid, qps, codec = (1.0, 1.3, 2.0), (27, 37), get_codec("x264")
    full = compare({"O": w}, codec, [str(src)], qps=qps, frames=4, log=lambda _: None, ensemble=2, strengths=grid)
    picked = compare({"O": w}, codec, [str(src)], qps=qps, frames=4, log=lambda _: None, ensemble=2,
                     stream_strengths=grid)
    rows = full["rd"][str(src)]
    for i, row in enumerate(picked["rd"][str(src)]["O"]):
        s = pick_stream_strength({f: rows[strength_name("O", f)][i] for f in grid})
        assert row == {**rows[strength_name("O", s)][i], "strength": s}
    with pytest.raises(ConfigError, match="not both"):
        compare({"O": w}, codec, [str(src)], qps=qps, frames=4, strengths=grid, stream_strengths=grid)


def test_grid_parsing():
    assert parse_grid("1.5, 1.2,1.2") == (1.0, 1.2, 1.5)
    with pytest.raises(ConfigError, match="^--stream-strength: not a comma"):
        parse_grid("1,a", "--stream-strength")
    for text, match in (("1,x", "comma-separated"), ("0,1", r"\(0, 4\]"), ("5", r"\(0, 4\]")):
        with pytest.raises(ConfigError, match=match):
            parse_grid(text)


def test_strength_sweep_writes_the_chosen_factor_behind_real_x264(tmp_path, clip):
    """End to end behind the real x264: every factor is scored from one run of O and the written
    model decodes exactly as `scale_correction` of the unscaled output at the chosen factor."""
    from jaxcodec.io import write_y4m

    src = tmp_path / "src.y4m"
    write_y4m(src, clip)
    path = _model(tmp_path / "m")
    lines = []
    out = strength_files(path, tmp_path / "out", codec_name="x264", clips=[str(src)], strengths=(1.0, 1.3, 2.0),
                         frames=4, log=lines.append)
    assert len(lines) == 4 * (1 + 3)  # bare + three factors per QP
    w, meta = load_wrapper(tmp_path / "out")
    assert meta["post"]["strength"] == out["strength"] == w.post.strength
    table = meta["strength_sweep"]["bd_rate"]
    assert set(table) == {"1", "1.3", "2"} and all("all" in row and "ssim" in row for row in table.values())
    assert out["strength"] in (1.0, 1.3, 2.0)
    # the weights are the input model's
    (w0, _), = [load_wrapper(path)]
    for a, b in zip(jax.tree.leaves(nnx.state(w0, nnx.Param)), jax.tree.leaves(nnx.state(w, nnx.Param))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # sweeping a scaled model scales the network as trained, not the factor already set
    again = strength_files(tmp_path / "out", tmp_path / "out2", codec_name="x264", clips=[str(src)],
                           strengths=(1.0, 1.3, 2.0), frames=4, log=lambda _: None)
    np.testing.assert_equal(again["bd_rate_all"], out["bd_rate_all"])  # NaN where curves do not overlap
    with pytest.raises(ConfigError, match="must hold 1"):
        strength_files(path, tmp_path / "o3", codec_name="x264", clips=[str(src)], strengths=(1.3,), frames=4)


def test_strength_refuses_a_model_without_o_and_a_directory_that_is_not_a_model(tmp_path, capsys):
    from runtime.cli import main

    pre_only = Wrapper(NetConfig(8, 1), NetConfig(8, 1, enabled=False), rngs=nnx.Rngs(0))
    save_wrapper(tmp_path / "p", pre_only, meta={"pre": dataclasses.asdict(NetConfig(8, 1)),
                                                 "post": dataclasses.asdict(NetConfig(8, 1, enabled=False))})
    with pytest.raises(ModelError, match="no postprocessor"):
        strength_files(tmp_path / "p", tmp_path / "o", codec_name="x264", clips=["carphone"], strengths=(1.0,))
    (tmp_path / "notmodel").mkdir()
    (tmp_path / "notmodel" / "keep.txt").write_text("x")
    assert main(["wrap", "strength", str(_model(tmp_path / "m")), "-o", str(tmp_path / "notmodel"),
                 "--grid", "1,1.2", "--clips", "carphone", "--frames", "2"]) != 0
    err = capsys.readouterr().err
    assert "not a wrapper model directory" in err and "Traceback" not in err
    assert (tmp_path / "notmodel" / "keep.txt").read_text() == "x"
    assert main(["wrap", "strength", str(tmp_path / "m"), "-o", str(tmp_path / "o"), "--grid", "1,abc"]) != 0
    assert "comma-separated" in capsys.readouterr().err
    # `wrap decode --strength` out of range: one line, no output file
    from jaxcodec.io import write_y4m

    write_y4m(tmp_path / "src.y4m", moving_textures(count=1, frames=2, size=32)[0])
    assert main(["wrap", "encode", str(tmp_path / "src.y4m"), "--codec", "x264", "--qp", "30", "--no-wrapper",
                 "-o", str(tmp_path / "s.mp4")]) == 0
    capsys.readouterr()
    assert main(["wrap", "decode", str(tmp_path / "s.mp4"), "-o", str(tmp_path / "rec.y4m"), "--model",
                 str(tmp_path / "m"), "--qp", "30", "--strength", "9"]) != 0
    err = capsys.readouterr().err
    assert "--strength must be in (0, 4]" in err and "Traceback" not in err
    assert not (tmp_path / "rec.y4m").exists()
