"""``jaxcodec train nnlf`` end to end on a tiny generated clip: stage 1, stages 2 and 3 (re-encode
with the previous stage's model in the loop), export, resume, and a codec that loads the exported
model (at tests/test_nnlf.py's picture size and coding config, whose compiles it reuses)."""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from jaxcodec.errors import ConfigError
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


def test_clip_segment_reads_the_frames_from_its_start(tmp_path):
    from jaxcodec.errors import InputError
    clip = cartoon_clips(count=1, frames=6, size=(16, 32))[0]
    path = tmp_path / "c.y4m"
    write_y4m(path, clip)
    frames, _ = train_nnlf.read_segment(f"{path}@3", 2)
    for got, want in zip((frames.y, frames.u, frames.v), (clip.y, clip.u, clip.v)):
        np.testing.assert_array_equal(got, want[3:5])
    assert train_nnlf.split_segment("bikes") == ("bikes", 0)
    assert train_nnlf.split_segment("bikes@120") == ("bikes", 120)
    with pytest.raises(InputError, match="needs frames 5..6"):
        train_nnlf.read_segment(f"{path}@5", 2)
    assert train_nnlf.split_segment("clips/a@b.y4m") == ("clips/a@b.y4m", 0)
    with pytest.raises(ConfigError, match="held-out"):
        train_nnlf.make_data(NNLFTrainConfig(clips=("bigbuckbunny@30",)), tmp_path)


def test_pixel_sampling_draws_pictures_in_proportion_to_area():
    pics = [{"y": np.zeros((8, 8))}, {"y": np.zeros((16, 24))}]
    assert train_nnlf._sampling_weights(pics, "picture") is None
    np.testing.assert_allclose(train_nnlf._sampling_weights(pics, "pixel"), [64 / 448, 384 / 448])
    with pytest.raises(ConfigError, match="sampling"):
        NNLFTrainConfig(sampling="area")


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


# The picture size and coding config of tests/test_nnlf.py, which runs first in the same worker
# (`tests/conftest.py` keeps the encoder files together): the codec's stages, with and without the
# filter in the loop, are compiled there once, and this run reuses them.
_CODEC = 'gop_structure = "ra"\ngop_size = 2\nintra_period = -1\nnum_refs = 2\nctu_size = 32\n'


def _codec_toml(directory) -> str:
    path = directory / "codec.toml"
    path.write_text(_CODEC)
    return str(path)


def _three_stage_run(tmp_path):
    """The tiny three-stage run both tests below start from: (clip, config, run directory, result)."""
    clip = cartoon_clips(count=1, frames=3, size=(20, 36), seed=0)[0]
    path = tmp_path / "clip.y4m"
    write_y4m(path, clip)
    # patch 32 is cut to the 16 rows a 20-row picture holds (train_nnlf's batch sampler)
    cfg = NNLFTrainConfig(clips=(str(path),), frames=3, qps=(32,), codec_config=_codec_toml(tmp_path), width=8, features=2,
                          blocks=1, patch=32, batch=2, luma_steps=20, chroma_steps=10, stage2_steps=10, stage3_steps=10)
    out = tmp_path / "run"
    return clip, cfg, out, train_nnlf.train(cfg, out_dir=out, export_to=tmp_path / "model", progress=False)


def test_three_stage_training_exports_a_model_the_codec_runs(tmp_path):
    from jaxcodec.config import load_coding_config
    from runtime.decoder import decode
    from runtime.encoder import encode

    clip, cfg, out, result = _three_stage_run(tmp_path)
    names = {p.name for p in out.iterdir()}
    assert {"ckpt_luma", "ckpt2_luma", "ckpt3_luma", "ckpt_chroma", "ckpt2_chroma", "ckpt3_chroma", "stage1.jxnnlf",
            "stage2.jxnnlf", "model.jxnnlf"} <= names
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(r["msg"] == "stage 2 data" and r["inter_pictures"] == 2 for r in records)
    assert any(r["msg"] == "stage 3 data" and r["inter_pictures"] == 2 for r in records)
    # stage-k encodes ran the stage k-1 filter in the loop: their cache files carry its digest
    converted = [r["digest"] for r in records if r["msg"] == "converted"]
    assert len(converted) == 3 and len(set(converted)) == 3 and converted[-1] == result["digest"]
    assert any(n.endswith(f"_s2_{converted[0][:8]}.npz") for n in names)
    assert any(n.endswith(f"_s3_{converted[1][:8]}.npz") for n in names)
    # the float models behind a model file: the last stage's in the run directory, the final ones exported
    assert train_nnlf.float_checkpoint(out, "luma").endswith("ckpt3_luma")
    assert train_nnlf.float_checkpoint(tmp_path / "model", "chroma").endswith("ckpt_chroma")
    ccfg = load_coding_config(tmp_path / "codec.toml", qp=32, nnlf=True, nnlf_model=str(tmp_path / "model" / "model.jxnnlf"))
    data, rec = encode(clip, ccfg, nnlf_force=True)
    frames = decode(data, nnlf_model=str(tmp_path / "model" / "model.jxnnlf"))
    np.testing.assert_array_equal(np.asarray(frames.y), np.asarray(rec.y))

    # A run resumes from its latest finished stage: earlier checkpoints are not needed, only the
    # earlier model files that name the cache files; the same model comes out.
    for kind in ("luma", "chroma"):
        shutil.rmtree(out / f"ckpt_{kind}")
        shutil.rmtree(out / f"ckpt2_{kind}")
    assert train_nnlf.train(cfg, out_dir=out, export_to=tmp_path / "model", progress=False)["digest"] == result["digest"]
    (out / "stage2.jxnnlf").unlink()
    with pytest.raises(ConfigError, match="stage2.jxnnlf"):
        train_nnlf.train(cfg, out_dir=out, progress=False)


@pytest.mark.slow  # two more training runs after the three-stage one; the default suite is near its 15 min budget
def test_stage3_without_reencode_and_stage2_on_another_models_pictures(tmp_path):
    _, cfg, out, result = _three_stage_run(tmp_path)
    names = {p.name for p in out.iterdir()}

    # stage3_reencode = false: stage 3 only fine-tunes further, on the stage-1 and stage-2 pictures
    out_b = tmp_path / "run_b"
    shutil.copytree(out, out_b, ignore=shutil.ignore_patterns("ckpt3_*", "*_s3_*", "stage2.jxnnlf", "model.jxnnlf"))
    res_b = train_nnlf.train(dataclasses.replace(cfg, stage3_reencode=False), out_dir=out_b, progress=False)
    names_b = {p.name for p in out_b.iterdir()}
    assert "ckpt3_luma" in names_b and "stage2.jxnnlf" not in names_b and not any("_s3_" in n for n in names_b)
    assert res_b["pictures"] == result["pictures"] - 2 and res_b["digest"] != result["digest"]

    # stage2_data_model: stage 2 trains on the pictures of another model's loop (here the first
    # run's stage-1 model), found in the cache: no stage-1 export, no encode with a new digest.
    out_c = tmp_path / "run_c"
    shutil.copytree(out, out_c, ignore=shutil.ignore_patterns("ckpt*", "*_s3_*", "*.jxnnlf", "metrics.jsonl"))
    cfg_c = dataclasses.replace(cfg, stage3_steps=0, stage2_data_model=str(out / "stage1.jxnnlf"))
    res_c = train_nnlf.train(cfg_c, out_dir=out_c, progress=False)
    names_c = {p.name for p in out_c.iterdir()}
    records_c = [json.loads(line) for line in (out_c / "metrics.jsonl").read_text().splitlines()]
    assert "stage1.jxnnlf" not in names_c and "ckpt2_luma" in names_c
    assert [r["digest"] for r in records_c if r["msg"] == "converted"] == [res_c["digest"]]
    assert {n for n in names_c if "_s2_" in n} == {n for n in names if "_s2_" in n}
    assert res_c["pictures"] == res_b["pictures"]


@pytest.mark.slow  # about 45 s on 2 cores: two spawned workers start JAX; the default suite is near its 15 min budget
def test_parallel_data_encodes_equal_serial_ones(tmp_path, monkeypatch):
    """``jobs`` > 1 encodes in worker processes; the pictures are those of the serial encodes.
    (The clips' shapes and coding config are the test above's: the workers load its compiled
    encoder from the persistent compilation cache.)"""
    import jaxcodec.io.synthetic as synthetic

    cfg = NNLFTrainConfig(clips=("cartoon",), frames=3, qps=(37,), codec_config="ld")
    monkeypatch.setattr(synthetic, "cartoon_clips", lambda frames: cartoon_clips(count=2, frames=frames, size=(64, 64)))
    serial = train_nnlf.make_data(cfg, tmp_path / "serial")
    parallel = train_nnlf.make_data(cfg, tmp_path / "parallel", jobs=2)
    assert len(serial) == len(parallel) == 6
    for a, b in zip(serial, parallel):
        for k in train_nnlf.PICTURE_KEYS:
            np.testing.assert_array_equal(a[k], b[k])


def test_generated_clip_cache_is_named_by_content(tmp_path, tmp_path_factory, monkeypatch):
    """Encodes of generated clips are cached per clip content: a changed generator re-encodes."""
    import jaxcodec.io.synthetic as synthetic

    # the shapes and coding config of the three-stage test above: its compiled encoder is reused
    cfg = NNLFTrainConfig(clips=("cartoon",), frames=3, qps=(32,), codec_config=_codec_toml(tmp_path_factory.mktemp("codec")))
    small = lambda frames, seed=0: cartoon_clips(count=1, frames=frames, size=(20, 36), seed=seed)  # noqa: E731
    monkeypatch.setattr(synthetic, "cartoon_clips", lambda frames: small(frames))
    train_nnlf.make_data(cfg, tmp_path)
    first = sorted(p.name for p in tmp_path.glob("data_*.npz"))
    assert len(first) == 1 and first[0].startswith("data_cartoon0-")
    train_nnlf.make_data(cfg, tmp_path)  # same content: the cache is reused
    assert sorted(p.name for p in tmp_path.glob("data_*.npz")) == first
    monkeypatch.setattr(synthetic, "cartoon_clips", lambda frames: small(frames, seed=1))
    train_nnlf.make_data(cfg, tmp_path)
    assert len(list(tmp_path.glob("data_*.npz"))) == 2


def test_codec_config_path_names_cache_files_by_its_text(tmp_path):
    from jaxcodec.config import config_tag

    assert config_tag("ra") == "ra"
    a = _codec_toml(tmp_path)
    tag = config_tag(a)
    assert tag.startswith("codec-") and "/" not in tag
    (tmp_path / "codec.toml").write_text(_CODEC + "qp = 30\n")
    assert config_tag(a) != tag  # an edited config does not reuse the old encodes
    with pytest.raises(ConfigError, match="not found"):
        config_tag(str(tmp_path / "missing.toml"))


def test_missing_stage2_data_model_fails_before_training(tmp_path):
    from jaxcodec.errors import ModelError
    cfg = NNLFTrainConfig(clips=("carphone",), stage2_steps=10, stage2_data_model=str(tmp_path / "nope.jxnnlf"))
    with pytest.raises(ModelError, match="not found"):
        train_nnlf.train(cfg, out_dir=tmp_path / "run", progress=False)
    assert not any((tmp_path / "run").glob("data_*"))
