"""Model soups (`wrappers.soup`): the weighted mean of fine-tunes, checked leaf by leaf."""

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

from jaxcodec.errors import ConfigError, ModelError
from jaxcodec.io.synthetic import moving_textures
from wrappers.deploy import postprocess
from wrappers.nets import NetConfig, Wrapper
from wrappers.soup import soup, soup_files, soup_weights
from wrappers.train import load_wrapper, save_wrapper

PRE, POST = NetConfig(8, 1, enabled=False), NetConfig(8, 1, qp_input=True)


def _model(path, seed: int, post: NetConfig = POST, target: str = "x264"):
    """A saved wrapper whose parameters all differ from another seed's (a stand-in fine-tune)."""
    w = Wrapper(PRE, post, rngs=nnx.Rngs(seed))
    state = nnx.state(w, nnx.Param)
    key = jax.random.key(seed)
    leaves, tree = jax.tree.flatten(state)
    keys = jax.random.split(key, len(leaves))
    nnx.update(w, jax.tree.unflatten(tree, [x + 0.05 * jax.random.normal(k, x.shape, x.dtype)
                                            for x, k in zip(leaves, keys)]))
    save_wrapper(path, w, meta={"pre": dataclasses.asdict(PRE), "post": dataclasses.asdict(post), "target": target,
                                "qp_range": [22, 37], "steps": 10 + seed})
    return path


def _params(wrapper) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(wrapper, nnx.Param))]


def test_soup_is_the_weighted_mean_of_every_parameter(tmp_path):
    a, b = _model(tmp_path / "a", 1), _model(tmp_path / "b", 2, target="x265")
    (wa, ma), (wb, mb) = load_wrapper(a), load_wrapper(b)
    s, meta = soup([(wa, ma), (wb, mb)], [1, 3], names=["a", "b"])
    for got, pa, pb in zip(_params(s), _params(wa), _params(wb), strict=True):
        np.testing.assert_allclose(got, 0.25 * pa + 0.75 * pb, rtol=1e-6, atol=1e-7)
    assert meta["soup"] == [{"model": "a", "weight": 0.25, "target": "x264"},
                            {"model": "b", "weight": 0.75, "target": "x265"}]
    assert meta["target"] == "x264+x265" and "steps" not in meta and meta["post"] == ma["post"]
    # the ingredients are untouched (the soup is a new module)
    assert not np.allclose(_params(wa)[0], _params(s)[0])


def test_soup_of_one_model_runs_exactly_like_it(tmp_path):
    a = _model(tmp_path / "a", 1)
    out = soup_files([a, a, a], tmp_path / "soup")
    assert out["soup"][0]["weight"] == pytest.approx(1 / 3)
    clip = moving_textures(count=1, frames=2, size=32)[0]
    (w, _), (s, _) = load_wrapper(a), load_wrapper(tmp_path / "soup")
    want, got = postprocess(w, clip, qp=30, ensemble=1), postprocess(s, clip, qp=30, ensemble=1)
    for p in ("y", "u", "v"):
        np.testing.assert_array_equal(np.asarray(getattr(got, p)), np.asarray(getattr(want, p)))


def test_soup_refuses_other_architectures_and_bad_weights(tmp_path):
    a = _model(tmp_path / "a", 1)
    wider = _model(tmp_path / "wide", 2, post=NetConfig(16, 1, qp_input=True))
    with pytest.raises(ModelError, match="architecture"):
        soup_files([a, wider], tmp_path / "soup")
    for weights, match in (([1.0], "1 soup weights for 2"), ([1.0, -1.0], "non-negative"), ([0.0, 0.0], "positive sum")):
        with pytest.raises(ConfigError, match=match):
            soup_weights(2, weights)
    assert not (tmp_path / "soup").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_soup_writes_a_loadable_model_and_errors_in_one_line(tmp_path, capsys):
    from runtime.cli import main

    a, b = _model(tmp_path / "a", 1), _model(tmp_path / "b", 2)
    assert main(["wrap", "soup", str(a), str(b), "-o", str(tmp_path / "s"), "--weights", "1,1"]) == 0
    _, meta = load_wrapper(tmp_path / "s")
    assert [i["weight"] for i in meta["soup"]] == [0.5, 0.5]
    capsys.readouterr()
    assert main(["wrap", "soup", str(a), str(b), "-o", str(tmp_path / "t"), "--weights", "1,x"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("jaxcodec: error:") and "--weights" in err and "\n" not in err
    assert main(["wrap", "soup", str(a), str(tmp_path / "missing"), "-o", str(tmp_path / "t")]) != 0
    assert "meta.json" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
