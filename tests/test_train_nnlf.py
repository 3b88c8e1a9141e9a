"""``jaxcodec train nnlf`` end to end on a tiny generated clip: stage 1, stage 2 (re-encode with
the stage-1 model in the loop), export, and a codec that loads the exported model (about a
minute: it compiles the codec and the integer runtime for its own picture size)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from jaxcodec.io.synthetic import cartoon_clips
from jaxcodec.io.y4m import write_y4m
from runtime import train_nnlf
from runtime.train_nnlf import NNLFTrainConfig


def test_dihedral_covers_the_eight_symmetries():
    a = np.arange(12).reshape(2, 2, 3)
    outs = {train_nnlf._dihedral(a, k).tobytes() for k in range(8)}
    assert len(outs) == 8
    # every symmetry keeps the channel axis and the set of pixels
    for k in range(8):
        b = train_nnlf._dihedral(a, k)
        assert b.shape == a.shape and sorted(b.ravel()) == sorted(a.ravel())


def test_bigbuckbunny_is_refused(tmp_path):
    from jaxcodec.errors import ConfigError
    with pytest.raises(ConfigError, match="held-out"):
        train_nnlf.make_data(NNLFTrainConfig(clips=("bigbuckbunny",)), tmp_path)


def test_picture_cache_round_trip_leaves_no_temporary(tmp_path):
    rng = np.random.default_rng(0)
    pics = [{k: rng.integers(0, 1024, (8, 8)).astype(np.uint16) for k in train_nnlf.PICTURE_KEYS} for _ in range(2)]
    path = tmp_path / "cache.npz"
    train_nnlf.save_pictures(path, pics)
    assert [p.name for p in tmp_path.iterdir()] == ["cache.npz"]
    back = train_nnlf.load_pictures(path)
    assert len(back) == 2
    for a, b in zip(pics, back):
        for k in train_nnlf.PICTURE_KEYS:
            np.testing.assert_array_equal(a[k], b[k])


def test_ten_bit_training_clip_is_refused(tmp_path):
    from jaxcodec.errors import InputError
    from jaxcodec.frame import make_frame
    f = make_frame(np.full((2, 16, 16), 512, np.uint16), np.full((2, 8, 8), 512, np.uint16),
                   np.full((2, 8, 8), 512, np.uint16), bit_depth=10)
    path = tmp_path / "ten.y4m"
    write_y4m(path, f)
    with pytest.raises(InputError, match="8-bit"):
        train_nnlf.make_data(NNLFTrainConfig(clips=(str(path),), frames=2, qps=(37,)), tmp_path / "run")


def test_two_stage_training_exports_a_model_the_codec_runs(tmp_path):
    from jaxcodec.config import load_coding_config
    from runtime.decoder import decode
    from runtime.encoder import encode

    clip = cartoon_clips(count=1, frames=3, size=(64, 64), seed=0)[0]
    path = tmp_path / "clip.y4m"
    write_y4m(path, clip)
    cfg = NNLFTrainConfig(clips=(str(path),), frames=3, qps=(37,), codec_config="ld", width=8, features=2, blocks=1,
                          patch=32, batch=2, luma_steps=20, chroma_steps=10, stage2_steps=10)
    out = tmp_path / "run"
    result = train_nnlf.train(cfg, out_dir=out, export_to=tmp_path / "model", progress=False)
    names = {p.name for p in out.iterdir()}
    assert {"ckpt_luma", "ckpt2_luma", "ckpt_chroma", "ckpt2_chroma", "stage1.jxnnlf", "model.jxnnlf"} <= names
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(r["msg"] == "stage 2 data" and r["inter_pictures"] == 2 for r in records)
    # stage-2 encodes ran the stage-1 filter in the loop: their cache files carry its digest
    assert any("_s2_" in n for n in names)
    # the fine-tuned model differs from stage 1 and the codec runs it bit-exactly
    converted = [r["digest"] for r in records if r["msg"] == "converted"]
    assert len(converted) == 2 and converted[0] != converted[1] == result["digest"]
    # the float models behind a model file: stage 2's in the run directory, the final ones exported
    assert train_nnlf.float_checkpoint(out, "luma").endswith("ckpt2_luma")
    assert train_nnlf.float_checkpoint(tmp_path / "model", "chroma").endswith("ckpt_chroma")
    ccfg = load_coding_config("ld", qp=37, nnlf=True, nnlf_model=str(tmp_path / "model" / "model.jxnnlf"))
    data, rec = encode(clip, ccfg, nnlf_force=True)
    frames = decode(data, nnlf_model=str(tmp_path / "model" / "model.jxnnlf"))
    np.testing.assert_array_equal(np.asarray(frames.y), np.asarray(rec.y))


def test_generated_clip_cache_is_named_by_content(tmp_path, monkeypatch):
    """Encodes of generated clips are cached per clip content: a changed generator re-encodes."""
    import jaxcodec.io.synthetic as synthetic

    # the shapes and coding config of the two-stage test above: its compiled encoder is reused
    cfg = NNLFTrainConfig(clips=("cartoon",), frames=3, qps=(37,), codec_config="ld")
    small = lambda frames, seed=0: cartoon_clips(count=1, frames=frames, size=(64, 64), seed=seed)  # noqa: E731
    monkeypatch.setattr(synthetic, "cartoon_clips", lambda frames: small(frames))
    train_nnlf.make_data(cfg, tmp_path)
    first = sorted(p.name for p in tmp_path.glob("data_*.npz"))
    assert len(first) == 1 and first[0].startswith("data_cartoon0-")
    train_nnlf.make_data(cfg, tmp_path)  # same content: the cache is reused
    assert sorted(p.name for p in tmp_path.glob("data_*.npz")) == first
    monkeypatch.setattr(synthetic, "cartoon_clips", lambda frames: small(frames, seed=1))
    train_nnlf.make_data(cfg, tmp_path)
    assert len(list(tmp_path.glob("data_*.npz"))) == 2
