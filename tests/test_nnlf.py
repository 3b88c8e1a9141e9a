"""NN in-loop filter in the codec loop (runtime.nnlf): round trip with the filter on (decoder
output == encoder reconstruction, MD5 in the stream), flags that really switch, the model
identity in the stream, clear errors for missing / wrong / corrupt models."""

from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from codec_clips import generated_clip
from jaxcodec.config import load_coding_config
from jaxcodec.errors import BitstreamError, ModelError
from jaxcodec.nn import loopfilter as lf
from ref_kernels import ref_symmetry
from runtime import bitstream as bs
from runtime import nnlf
from runtime.decoder import decode
from runtime.encoder import encode

TINY = lf.LoopFilterConfig(width=8, features=2, blocks=1)


def _same(a, b):
    return all(np.array_equal(np.asarray(getattr(a, c)), np.asarray(getattr(b, c))) for c in "yuv")


def _tiny_model(path, seed):
    """A small random filter whose residual is not zero (the reconstruction layer starts at 0)."""
    from runtime.nnint import convert

    rng = np.random.default_rng(seed)
    graphs = []
    for make, shapes in ((lf.LumaFilter, [(1,)] * 5), (lf.ChromaFilter, [(2,), (2,), (1,), (1,), (1,)])):
        model = make(TINY, rngs=nnx.Rngs(seed))
        k = model.trunk.up.kernel
        k[...] = jax.random.normal(jax.random.key(seed), k.shape) * 0.02
        h = 32 if make is lf.LumaFilter else 16
        samples = [tuple(rng.random((2, 32 if i == 4 and make is lf.ChromaFilter else h,
                                     32 if i == 4 and make is lf.ChromaFilter else h, c)).astype(np.float32)
                         for i, (c,) in enumerate(shapes))]
        graphs.append(convert.convert(model, samples, [lf.INPUT_BOUND] * 5, act_bits=12, min_weight_bits=4))
    nnlf.save_model(path, *graphs, {"name": f"tiny{seed}"})
    return path


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return _tiny_model(tmp_path_factory.mktemp("nnlf") / "tiny.jxnnlf", 0)


@pytest.fixture(scope="module")
def clip():
    # tests/test_codec_roundtrip.py's picture size (the encoder files share one worker, conftest.py):
    # the codec's motion and inter stages are compiled there already; with 32x32 CTUs, two of them
    return generated_clip(n=3)


@pytest.fixture(scope="module")
def cfg():
    return load_coding_config("ra", qp=32, gop_size=2, intra_period=-1, ctu_size=32)


@pytest.fixture(scope="module")
def coded(clip, cfg, model_path):
    """(off stream, off recon, {force: (stream, recon)}) with the tiny model; the key
    "noscale" is the encoder's own choice without residual scaling."""
    off = encode(clip, cfg)
    on = {f: encode(clip, cfg.replace(nnlf=True, nnlf_model=str(model_path)), nnlf_force=f)
          for f in (None, True, False)}
    on["noscale"] = encode(clip, cfg.replace(nnlf=True, nnlf_model=str(model_path), nnlf_scaling=False))
    on["noparam"] = encode(clip, cfg.replace(nnlf=True, nnlf_model=str(model_path), nnlf_params=(0,)))
    # No zero candidate: whatever the encoder picks, the decoder must apply a shifted QP input.
    on["shifted"] = encode(clip, cfg.replace(nnlf=True, nnlf_model=str(model_path), nnlf_params=(-9, 9)))
    on["block"] = encode(clip, cfg.replace(nnlf=True, nnlf_model=str(model_path), nnlf_block_params=True))
    on["ensemble"] = encode(clip, cfg.replace(nnlf=True, nnlf_model=str(model_path), nnlf_ensemble=(4, 2)))
    on["single"] = encode(clip, cfg.replace(nnlf=True, nnlf_model=str(model_path), nnlf_ensemble=(1, 1)))
    return off, on


def test_roundtrip_with_nnlf_on(coded, model_path):
    _, on = coded
    for force, (data, recon) in on.items():
        seq, frames = bs.parse_stream(data)
        assert seq.tool_flags & bs.TOOL_NNLF
        assert bool(seq.tool_flags & bs.TOOL_NNLF_SCALE) == (force != "noscale")
        assert seq.nnlf_params == {"noparam": (), "shifted": (-9, 9)}.get(force, nnlf.DEFAULT_PARAM_OFFSETS)
        assert bool(seq.tool_flags & bs.TOOL_NNLF_PARAM) == (force != "noparam")
        assert seq.nnlf_model == nnlf.load_model(model_path).digest
        assert seq.nnlf_ensemble == {"ensemble": (4, 2), "single": (1, 1)}.get(force, (8, 1))  # default (8, 1)
        assert bool(seq.tool_flags & bs.TOOL_NNLF_ENSEMBLE) == (force != "single")
        assert _same(recon, decode(data, nnlf_model=str(model_path))), force  # MD5 checked per frame too


def test_flags_really_switch(coded):
    (off_data, off_recon), on = coded
    # All off: the same pictures as without the tool, and no frame carries flags.
    assert _same(on[False][1], off_recon)
    assert not any(fh.tool_flags & bs.TOOL_NNLF for fh, _ in bs.parse_stream(on[False][0])[1])
    # All on: the NN output everywhere, which the random filter changes.
    assert not _same(on[True][1], off_recon)
    assert all(fh.tool_flags & bs.TOOL_NNLF for fh, _ in bs.parse_stream(on[True][0])[1])
    # The encoder's own choice is never worse than deblocking alone in SSE against the source.
    # (its choice adds flag bits, so it compares SSE at a tiny cost)


def test_encoder_choice_does_not_hurt(clip, coded):
    (_, off_recon), on = coded
    sse = lambda r: sum(float(np.sum((np.asarray(getattr(r, c), float) - getattr(clip, c)) ** 2)) for c in "yuv")  # noqa: E731
    assert sse(on[None][1]) <= sse(off_recon)
    assert sse(on["noscale"][1]) <= sse(off_recon)
    assert sse(on["noparam"][1]) <= sse(off_recon)
    assert sse(on["single"][1]) <= sse(off_recon)


def _reference_scale(nn, db, s, bd):
    """Eq. 3 sample by sample in float64 (exact at these magnitudes): round half up, clip."""
    n, d = np.asarray(nn, np.float64), np.asarray(db, np.float64)
    return np.clip(np.floor(d + s * (n - d) / nnlf.SCALE_ONE + 0.5), 0, 2 ** bd - 1)


@pytest.mark.parametrize("bd", [8, 10])
def test_scale_residual_matches_reference(bd):
    rng = np.random.default_rng(bd)
    nn, db = (rng.integers(0, 2 ** bd, (17, 23)).astype(np.int32) for _ in range(2))
    np.testing.assert_array_equal(nnlf.scale_residual(nn, db, nnlf.SCALE_ONE, bit_depth=bd), nn)
    for s in (0, 1, 31, 32, 63, 65, 100, nnlf.SCALE_MAX):
        got = nnlf.scale_residual(nn, db, s, bit_depth=bd)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, _reference_scale(nn, db, s, bd), err_msg=f"s={s}")


def test_ls_scale_recovers_a_known_scale():
    rng = np.random.default_rng(1)
    db = rng.integers(50, 200, (32, 32)).astype(np.int64)
    nn = db + 2 * rng.integers(-20, 21, (32, 32))
    for s in (0, 24, 64, 96):
        orig = db + s * (nn - db) // nnlf.SCALE_ONE  # floored: within one sample of the line, so s +- 1
        got = nnlf.ls_scale(nn, db, orig)
        assert abs(got - s) <= 1, (s, got)
    # Clipped to the byte range, and no residual -> 1.
    assert nnlf.ls_scale(nn, db, db + 10 * (nn - db)) == nnlf.SCALE_MAX
    assert nnlf.ls_scale(nn, db, db - (nn - db)) == 0
    assert nnlf.ls_scale(db, db, nn) == nnlf.SCALE_ONE
    # Over a mask: only the masked samples count.
    mask = np.zeros(db.shape, bool)
    mask[:16] = True
    orig = np.where(mask, db + (nn - db) // 2, nn)
    assert nnlf.ls_scale(nn, db, orig, mask) == 32


def test_scaling_decision_never_costs_more():
    """With scaling the encoder's SSE + lambda * bits (scale bytes included) is never above the
    unscaled choice's, and a filter that overshoots by 2x gets a scale near 1/2."""
    rng = np.random.default_rng(2)
    h, w, ctu, lam = 64, 96, 32, 50.0
    shapes = ((h, w), (h // 2, w // 2), (h // 2, w // 2))
    orig = tuple(rng.integers(40, 200, s) for s in shapes)
    db = tuple(o + rng.integers(-6, 7, o.shape) for o in orig)
    nn = tuple(np.clip(d + 2 * (o - d) + rng.integers(-1, 2, o.shape), 0, 255) for o, d in zip(orig, db))

    def cost(flags, scaling):
        out = nnlf.apply_flags(flags, nn, db, ctu_size=ctu, bit_depth=8)
        bits = 0
        for c, m in enumerate(flags.modes):
            bits += (m != nnlf.MODE_OFF) * (8 if scaling else 0) + (m == nnlf.MODE_CTU) * flags.ctu[c].size
        return sum(float(np.sum((o.astype(float) - x) ** 2)) for o, x in zip(orig, out)) + lam * bits

    plain = nnlf.decide_flags(nn, db, orig, ctu_size=ctu, lambda_=lam, bit_depth=8)
    scaled = nnlf.decide_flags(nn, db, orig, ctu_size=ctu, lambda_=lam, scaling=True, bit_depth=8)
    assert plain.scale == (nnlf.SCALE_ONE,) * 3
    assert cost(scaled, True) <= cost(plain, False)
    assert scaled.modes[0] != nnlf.MODE_OFF and abs(scaled.scale[0] - 32) <= 2


def test_jit_and_no_jit_filter_identical(clip, model_path):
    m = nnlf.load_model(model_path)
    rng = np.random.default_rng(3)
    h, w = 24, 40
    x = nnlf.FilterInputs(tuple(rng.integers(0, 256, s).astype(np.int32) for s in ((h, w), (h // 2, w // 2), (h // 2, w // 2))),
                          tuple(rng.integers(0, 256, s).astype(np.int32) for s in ((h, w), (h // 2, w // 2), (h // 2, w // 2))),
                          rng.integers(0, 3, (h, w)).astype(np.int32), np.full((h, w), 30, np.int32),
                          rng.integers(0, 3, (h, w)).astype(np.int32))
    a = nnlf.filter_planes(m, x, bit_depth=8, jit=True)
    b = nnlf.filter_planes(m, x, bit_depth=8, jit=False)
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p, q)


def _random_inputs(rng, h, w, qp=30):
    planes = lambda: tuple(rng.integers(0, 256, s).astype(np.int32) for s in ((h, w), (h // 2, w // 2), (h // 2, w // 2)))  # noqa: E731
    return nnlf.FilterInputs(planes(), planes(), rng.integers(0, 3, (h, w)).astype(np.int32),
                             np.full((h, w), qp, np.int32), rng.integers(0, 3, (h, w)).astype(np.int32))


def test_qp_offset_is_the_qp_input_shifted(model_path):
    """Parameter selection (paper 001 III-B) changes nothing but the QP input: filtering with
    ``qp_offset`` equals filtering inputs whose QP plane was shifted (and clipped), per model."""
    m = nnlf.load_model(model_path)
    x = _random_inputs(np.random.default_rng(4), 24, 40, qp=30)
    base = nnlf.filter_planes(m, x, bit_depth=8)
    for off in (-9, 9, 40):
        shifted = x._replace(qp=np.clip(x.qp + off, 0, nnlf.QP_INPUT_MAX).astype(np.int32))
        want = nnlf.filter_planes(m, shifted, bit_depth=8)
        got = nnlf.filter_planes(m, x, bit_depth=8, qp_offset=(off, off))
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
        assert not np.array_equal(got[0], base[0])  # the random model reads its QP input
        mixed = nnlf.filter_planes(m, x, bit_depth=8, qp_offset=(off, 0))
        np.testing.assert_array_equal(mixed[0], want[0])
        np.testing.assert_array_equal(mixed[1], base[1])


def _pairwise_inputs(rng, h, w):
    """Random inputs whose bS, QP and type planes are constant on 2x2 blocks, as the codec's are
    (4x4 units; bs_plane gives samples 2i and 2i+1 the same edge), so the chroma model's
    half-resolution copies of them commute with the symmetries."""
    x = _random_inputs(rng, h, w)
    up = lambda a: np.repeat(np.repeat(a, 2, 0), 2, 1).astype(np.int32)  # noqa: E731
    return x._replace(bs=up(rng.integers(0, 3, (h // 2, w // 2))), qp=up(rng.integers(22, 38, (h // 2, w // 2))),
                      ipb=up(rng.integers(0, 3, (h // 2, w // 2))))


def _transformed(x, k):
    g = lambda a: ref_symmetry(a, k)  # noqa: E731
    return nnlf.FilterInputs(tuple(map(g, x.rec)), tuple(map(g, x.pred)), g(x.bs), g(x.qp), g(x.ipb))


@pytest.mark.parametrize("n", [2, 4, 8])
def test_self_ensemble_matches_reference(model_path, n):
    """checkasm habit: the jitted ensemble equals the plain filter run (no jit) on each
    transformed picture, transformed back and averaged with round-half-up in float64."""
    m = nnlf.load_model(model_path)
    x = _pairwise_inputs(np.random.default_rng(11), 24, 40)
    got = nnlf.filter_planes(m, x, bit_depth=8, sizes=(n, n), qp_offset=(-5, -5))
    members = [[ref_symmetry(p, k, inverse=True).astype(np.float64)
                for p in nnlf.filter_planes(m, _transformed(x, k), bit_depth=8, jit=False, qp_offset=(-5, -5))]
               for k in nnlf.ENSEMBLE_ORDER[:n]]
    for c in range(3):
        want = np.floor((sum(mb[c] for mb in members) + n // 2) / n)
        np.testing.assert_array_equal(got[c], want)
        assert got[c].shape == x.rec[c].shape
    assert not np.array_equal(got[0], nnlf.filter_planes(m, x, bit_depth=8, qp_offset=(-5, -5))[0])
    assert sorted(nnlf.ENSEMBLE_ORDER) == list(range(8))


def test_full_self_ensemble_is_equivariant(model_path):
    """Averaged over all 8 symmetries, the filter commutes with each of them, exactly (the sum
    over a group does not depend on where it starts), chroma planes included."""
    m = nnlf.load_model(model_path)
    x = _pairwise_inputs(np.random.default_rng(12), 24, 40)
    base = nnlf.filter_planes(m, x, bit_depth=8, sizes=(8, 8))
    for k in range(1, 8):
        moved = nnlf.filter_planes(m, _transformed(x, k), bit_depth=8, sizes=(8, 8))
        for a, b in zip(moved, base):
            np.testing.assert_array_equal(a, ref_symmetry(b, k))
    with pytest.raises(ValueError, match="ensemble size"):
        nnlf.filter_planes(m, x, bit_depth=8, sizes=(3, 1))


def test_parameter_selection_picks_the_cheapest_candidate():
    """Luma takes its best candidate, the chroma planes the one best for both together; one
    candidate in a list decides like the plain call."""
    rng = np.random.default_rng(5)
    h, w, ctu, lam = 64, 96, 32, 20.0
    shapes = ((h, w), (h // 2, w // 2), (h // 2, w // 2))
    orig = tuple(rng.integers(40, 200, s).astype(np.int32) for s in shapes)
    db = tuple(o + rng.integers(-8, 9, o.shape) for o in orig)
    good = tuple(o + rng.integers(-1, 2, o.shape) for o in orig)
    bad = tuple(o + rng.integers(-12, 13, o.shape) for o in orig)
    cands = [bad, (good[0], bad[1], bad[2]), (bad[0], good[1], good[2])]
    f = nnlf.decide_flags(cands, db, orig, ctu_size=ctu, lambda_=lam, scaling=True, bit_depth=8)
    assert f.param == (1, 2) and all(m != nnlf.MODE_OFF for m in f.modes)
    one = nnlf.decide_flags([good], db, orig, ctu_size=ctu, lambda_=lam, scaling=True, bit_depth=8)
    plain = nnlf.decide_flags(good, db, orig, ctu_size=ctu, lambda_=lam, scaling=True, bit_depth=8)
    assert one.modes == plain.modes and one.scale == plain.scale and one.param == plain.param == (0, 0)


def test_flag_packing_round_trip_and_refusal():
    rng = np.random.default_rng(0)
    grid = (3, 5)
    for modes in ((0, 0, 0), (2, 1, 2), (2, 2, 2), (1, 0, 2)):
        ctu = tuple(rng.random(grid) < 0.5 if m == nnlf.MODE_CTU else np.zeros(grid, bool) for m in modes)
        f = nnlf.NNLFFlags(modes, ctu)
        data = nnlf.pack_flags(f)
        assert len(data) == 1 + (sum(m == 2 for m in modes) * 15 + 7) // 8
        g = nnlf.unpack_flags(data, grid)
        assert g.modes == modes and all(np.array_equal(a, b) for a, b in zip(g.ctu, f.ctu))
    with pytest.raises(BitstreamError, match="bytes, expected"):
        nnlf.unpack_flags(bytes([2]), grid)
    # With residual scaling: one scale byte per enabled component, before the CTU flags.
    for modes in ((1, 0, 0), (2, 1, 2), (0, 2, 0)):
        ctu = tuple(rng.random(grid) < 0.5 if m == nnlf.MODE_CTU else np.zeros(grid, bool) for m in modes)
        scale = tuple(int(s) if m else nnlf.SCALE_ONE for s, m in zip(rng.integers(0, 256, 3), modes))
        f = nnlf.NNLFFlags(modes, ctu, scale)
        data = nnlf.pack_flags(f, scaling=True)
        assert len(data) == 1 + sum(m != 0 for m in modes) + (sum(m == 2 for m in modes) * 15 + 7) // 8
        g = nnlf.unpack_flags(data, grid, scaling=True)
        assert g.modes == modes and g.scale == scale and all(np.array_equal(a, b) for a, b in zip(g.ctu, f.ctu))
        with pytest.raises(BitstreamError, match="bytes, expected"):
            nnlf.unpack_flags(data, grid)  # read as a stream without scaling
    with pytest.raises(BitstreamError, match="modes byte"):
        nnlf.unpack_flags(bytes([3]), grid)
    # With parameter selection: one byte (luma index low nibble, chroma high) after the modes.
    f = nnlf.NNLFFlags((2, 1, 0), (rng.random(grid) < 0.5, np.zeros(grid, bool), np.zeros(grid, bool)), (70, 50, 64), (2, 1))
    data = nnlf.pack_flags(f, scaling=True, params=3)
    assert data[1] == 2 | 1 << 4 and len(data) == 1 + 1 + 2 + 2
    g = nnlf.unpack_flags(data, grid, scaling=True, params=3)
    assert g.param == (2, 1) and g.scale == f.scale and np.array_equal(g.ctu[0], f.ctu[0])
    with pytest.raises(BitstreamError, match="parameter index 2 out of range"):
        nnlf.unpack_flags(data, grid, scaling=True, params=2)
    with pytest.raises(BitstreamError, match="bytes, expected"):
        nnlf.unpack_flags(data, grid, scaling=True)  # read as a stream without parameter selection


def test_missing_model_file_is_one_clear_error(clip, cfg, tmp_path):
    with pytest.raises(ModelError, match="model file not found"):
        encode(clip, cfg.replace(nnlf=True, nnlf_model=str(tmp_path / "nope.jxnnlf")))


def test_corrupt_model_file_rejected(model_path, tmp_path):
    data = bytearray(model_path.read_bytes())
    data[40] ^= 1
    bad = tmp_path / "bad.jxnnlf"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="checksum"):
        nnlf.load_model(bad)
    bad.write_bytes(b"JXNNLF\0\0" + (7).to_bytes(4, "little") + bytes(60))
    with pytest.raises(ModelError, match="version 7"):
        nnlf.load_model(bad)


def test_stream_needing_the_model_without_it(coded, tmp_path):
    data = coded[1][True][0]
    with pytest.raises(ModelError, match="uses the NN loop filter with model [0-9a-f]{32}.*not found"):
        decode(data, nnlf_model=str(tmp_path / "missing.jxnnlf"))
    other = _tiny_model(tmp_path / "other.jxnnlf", 1)
    with pytest.raises(ModelError, match="needs NN loop-filter model"):
        decode(data, nnlf_model=str(other))


def test_decoder_finds_the_shipped_model_the_stream_names(coded, model_path, tmp_path, monkeypatch):
    """With no --nnlf-model the decoder looks the stream's model identity up among the shipped
    models, so streams made with any of them decode whichever is the encoder's default."""
    import shutil

    default = nnlf.load_model("")
    assert nnlf.shipped_model_path(default.digest).resolve() == Path(default.path).resolve()
    assert nnlf.shipped_model_path(bytes(nnlf.DIGEST_BYTES)) is None
    data, recon = coded[1][True]
    (tmp_path / "tiny").mkdir()
    shutil.copy(model_path, tmp_path / "tiny" / nnlf.MODEL_FILE)
    monkeypatch.setattr(nnlf, "MODELS_DIR", tmp_path)
    assert _same(recon, decode(data))
    # Retrained: the directory's model.jxnnlf is another model; the earlier file kept beside it
    # still decodes the old stream.
    (tmp_path / "tiny" / nnlf.MODEL_FILE).rename(tmp_path / "tiny" / "earlier.jxnnlf")
    _tiny_model(tmp_path / "tiny" / nnlf.MODEL_FILE, 1)
    assert nnlf.shipped_model_path(nnlf.load_model(model_path).digest).name == "earlier.jxnnlf"
    assert _same(recon, decode(data))


def test_scaling_without_the_filter_refused(coded):
    import dataclasses
    data = coded[1][None][0]
    seq, _ = bs.parse_stream(data)
    hdr = bs.write_sequence_header(dataclasses.replace(seq, tool_flags=seq.tool_flags & ~bs.TOOL_NNLF, nnlf_model=b""))
    with pytest.raises(BitstreamError, match="residual scaling flagged without"):
        bs.parse_stream(hdr + data[len(bs.write_sequence_header(seq)):])


def test_frame_flags_without_sequence_tool_refused(coded):
    data = coded[1][True][0]
    seq, frames = bs.parse_stream(data)
    # Rewrite the sequence header without TOOL_NNLF: the frames' flag sections are then refused.
    import dataclasses
    hdr = bs.write_sequence_header(dataclasses.replace(seq, tool_flags=seq.tool_flags & ~(bs.TOOL_NNLF | bs.SEQ_ONLY_TOOLS),
                                                       nnlf_model=b""))
    old = len(bs.write_sequence_header(seq))
    with pytest.raises(BitstreamError, match="no NN loop filter"):
        bs.parse_stream(hdr + data[old:])


def _block_flags(rng, grid, modes, params):
    """Random flags with MODE_BLOCK groups: on flags, and candidate indices where on."""
    ctu = tuple(rng.random(grid) < 0.6 if m in (nnlf.MODE_CTU, nnlf.MODE_BLOCK) else np.zeros(grid, bool) for m in modes)
    idx_l = np.where(ctu[0], rng.integers(0, params, grid), 0) if modes[0] == nnlf.MODE_BLOCK else None
    chroma_on = ctu[1] | ctu[2]
    idx_c = np.where(chroma_on, rng.integers(0, params, grid), 0) if nnlf.MODE_BLOCK in modes[1:] else None
    scale = tuple(int(s) if m else nnlf.SCALE_ONE for s, m in zip(rng.integers(0, 256, 3), modes))
    param = (0 if modes[0] in (0, 3) else int(rng.integers(params)), 0 if set(modes[1:]) <= {0, 3} else int(rng.integers(params)))
    return nnlf.NNLFFlags(tuple(modes), ctu, scale, param, (idx_l, idx_c))


def test_block_parameter_flags_round_trip_and_refusal():
    """Cost_4 syntax (paper 001 III-B): per CTU the on flags of the group's planes, then the
    candidate index (2 bits for 3 candidates) where some plane is on; chroma shares it."""
    rng = np.random.default_rng(7)
    grid, params = (3, 5), 3
    for modes in ((3, 3, 3), (3, 0, 3), (3, 2, 0), (1, 3, 0), (2, 3, 3), (0, 0, 3)):
        f = _block_flags(rng, grid, modes, params)
        data = nnlf.pack_flags(f, scaling=True, params=params)
        nbits = 15 * sum(m == 2 for m in modes)
        if modes[0] == 3:
            nbits += 15 + 2 * int(f.ctu[0].sum())
        chroma = [c for c in (1, 2) if modes[c] == 3]
        if chroma:
            nbits += 15 * len(chroma) + 2 * int(np.any([f.ctu[c] for c in chroma], 0).sum())
        assert len(data) == 2 + sum(m != 0 for m in modes) + (nbits + 7) // 8, modes
        g = nnlf.unpack_flags(data, grid, scaling=True, params=params)
        assert g.modes == modes and g.scale == f.scale and g.param == f.param
        for c in range(3):
            np.testing.assert_array_equal(g.ctu[c], f.ctu[c])
            if modes[c] == 3:
                np.testing.assert_array_equal(g.block_index(c), f.block_index(c))
                assert g.used_params(c) == {int(k) for k in f.block_index(c)[f.ctu[c]]}
        with pytest.raises(BitstreamError, match="truncated|bytes, expected"):
            nnlf.unpack_flags(data[:-1], grid, scaling=True, params=params)
        with pytest.raises(BitstreamError, match="bytes, expected"):
            nnlf.unpack_flags(data + b"\0", grid, scaling=True, params=params)
    with pytest.raises(BitstreamError, match="without parameter selection"):
        nnlf.unpack_flags(bytes([3, 0xff]), grid)
    with pytest.raises(BitstreamError, match="mix block-level"):
        nnlf.unpack_flags(bytes([3 << 2 | 1 << 4, 0, 0]), grid, params=params)
    # Index 3 of 3 candidates: one CTU on with index 0b11, the other 14 off.
    bits = np.zeros(24, np.uint8)
    bits[:3] = 1
    with pytest.raises(BitstreamError, match="block parameter index 3 out of range"):
        nnlf.unpack_flags(bytes([3, 0]) + np.packbits(bits).tobytes(), grid, params=params)


def test_block_choice_takes_each_ctus_best_candidate():
    """Where each candidate is the good one in its own CTU columns, Cost_4 wins, with the
    right index per CTU, for luma and for the chroma pair; with ``block=False`` the choice is
    picture-level, and its SSE is higher."""
    rng = np.random.default_rng(8)
    h, w, ctu, lam = 64, 96, 32, 4.0
    shapes = ((h, w), (h // 2, w // 2), (h // 2, w // 2))
    orig = tuple(rng.integers(40, 200, s).astype(np.int32) for s in shapes)
    db = tuple(o + rng.integers(-8, 9, o.shape) for o in orig)
    cands = []
    for k in range(3):
        cand = []
        for c, o in enumerate(orig):
            size = ctu if c == 0 else ctu // 2
            col = np.arange(o.shape[1])[None, :] // size
            cand.append(np.where(col == k, o + rng.integers(-1, 2, o.shape), o + rng.integers(-14, 15, o.shape)))
        cands.append(tuple(cand))
    f = nnlf.decide_flags(cands, db, orig, ctu_size=ctu, lambda_=lam, scaling=True, bit_depth=8)
    assert f.modes == (nnlf.MODE_BLOCK,) * 3
    want = np.broadcast_to(np.arange(3)[None], (2, 3))
    for c in range(3):
        assert f.ctu[c].all()
        np.testing.assert_array_equal(f.block_index(c), want)
    assert f.used_params(0) == f.used_params(1) == {0, 1, 2}
    g = nnlf.decide_flags(cands, db, orig, ctu_size=ctu, lambda_=lam, scaling=True, bit_depth=8, block=False)
    assert nnlf.MODE_BLOCK not in g.modes
    sse = lambda fl: sum(float(np.sum((o - x) ** 2.0)) for o, x in zip(orig, nnlf.apply_flags(  # noqa: E731
        fl, cands, db, ctu_size=ctu, bit_depth=8)))
    assert sse(f) < sse(g)
    # One candidate good everywhere: block-level indices would only add bits.
    good = tuple(o + rng.integers(-1, 2, o.shape) for o in orig)
    f1 = nnlf.decide_flags([cands[0], good, cands[2]], db, orig, ctu_size=ctu, lambda_=lam, scaling=True, bit_depth=8)
    assert nnlf.MODE_BLOCK not in f1.modes and f1.param == (1, 1)


def test_block_parameters_decode_like_the_encoder(clip, cfg, model_path):
    """On a real picture of the codec, flags with block-level candidates give the encoder's
    output (:func:`apply_flags` on every candidate) in the decoder (:func:`decode_step`, which
    filters only the candidates the flags use), after the flags' pack/unpack round trip."""
    from runtime.encoder import seq_params

    c = cfg.replace(nnlf=True, nnlf_model=str(model_path))
    seq = seq_params(c, clip.bit_depth)
    states = []
    encode(clip, c, on_picture=lambda poc, state, orig: states.append(state))
    m = nnlf.load_model(model_path)
    offsets = seq.nnlf_params
    rng = np.random.default_rng(9)
    for state in states[:2]:
        x = nnlf.filter_inputs(state, seq)
        cands = [nnlf.filter_planes(m, x, bit_depth=8, qp_offset=(o, o), sizes=seq.nnlf_ensemble)
                 for o in offsets]
        grid = nnlf.ctu_grid(np.shape(state.deblocked[0]), seq.ctu_size)
        for modes in ((3, 3, 3), (3, 1, 0), (2, 0, 3)):
            f = _block_flags(rng, grid, modes, len(offsets))
            f = nnlf.unpack_flags(nnlf.pack_flags(f, scaling=True, params=len(offsets)), grid, scaling=True,
                                  params=len(offsets))
            want = nnlf.apply_flags(f, cands, state.deblocked, ctu_size=seq.ctu_size, bit_depth=8)
            got = nnlf.decode_step(m, state, seq, f).output
            for a, b in zip(want, got):
                np.testing.assert_array_equal(a, b)
