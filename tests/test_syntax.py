"""Frame syntax: random valid I/P/B frames round-trip exactly (every BlockDecisions field,
levels, final contexts), counting equals writing, inconsistent decisions are refused, and
corrupt payloads give BitstreamError (never a crash or hang)."""

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxcodec.codec.blocks import CoeffPlanes
from jaxcodec.codec.entropy import syntax as S
from jaxcodec.errors import BitstreamError


def _info(slice_type="B", **kw):
    refs = {"I": ((), ()), "P": ((8, 4, 0), ()), "B": ((8, 0), (16, 24))}[slice_type]
    base = dict(width=176, height=144, slice_type=slice_type, qp=27, poc=12, refs_l0=refs[0], refs_l1=refs[1])
    base.update(kw)
    return S.FrameSyntaxInfo(**base)


def _assert_same(d, d2, c, c2):
    for f in dataclasses.fields(d):
        np.testing.assert_array_equal(getattr(d2, f.name), getattr(d, f.name), err_msg=f.name)
    for p in "yuv":
        np.testing.assert_array_equal(getattr(c2, p), getattr(c, p), err_msg=p)


CASES = [
    dict(),
    dict(cu_qp_delta=True),
    dict(ctu_size=32, cu_qp_delta=True),
    dict(ctu_size=16, width=200, height=120),
    dict(max_merge_cand=1),
    dict(max_merge_cand=3, intra_tu_split=False),
    dict(min_cu_size=16, width=96, height=80),
    dict(width=64, height=8),
    dict(bit_depth=10, cu_qp_delta=True, qp=2),
    dict(inter_tu_split=True),
    dict(inter_tu_split=True, intra_tu_split=False, ctu_size=32, cu_qp_delta=True),
]


@pytest.mark.parametrize("slice_type", ["I", "P", "B"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_random_frames_round_trip(slice_type, case):
    info = _info(slice_type, **CASES[case])
    for seed in range(3):
        d, c = S.random_frame(info, seed + 10 * case)
        payload, ctx = S.write_frame(d, c, info)
        d2, c2, ctx2 = S.parse_frame(payload, info)
        _assert_same(d, d2, c, c2)
        np.testing.assert_array_equal(ctx2, ctx)


def test_generator_covers_the_syntax():
    info = _info("B", cu_qp_delta=True)
    frames = [S.random_frame(info, seed) for seed in range(3)]
    cat = lambda f: np.concatenate([getattr(d, f).ravel() for d, _ in frames])  # noqa: E731
    assert set(np.unique(cat("cu_log2"))) == {3, 4, 5, 6}
    assert set(np.unique(cat("tu_log2"))) == {2, 3, 4, 5}
    assert cat("skip").any() and (cat("merge_flag") & (1 - cat("skip"))).any() and (cat("pred_mode") == 0).any()
    assert set(np.unique(cat("inter_dir"))) == {0, 1, 2, 3}
    assert (cat("intra_mode_c") == 34).any() and (cat("merge_idx") == 4).any()
    assert len(np.unique(cat("qp"))) > 3 and max(np.abs(c.y).max() for _, c in frames) > 1000


def test_contexts_carry_over_between_frames():
    """A frame may start from another frame's final contexts (same contexts on both sides)."""
    info_i, info_b = _info("I"), _info("B")
    d, c = S.random_frame(info_i, 3)
    _, ctx_i = S.write_frame(d, c, info_i)
    d, c = S.random_frame(info_b, 4)
    payload, ctx_b = S.write_frame(d, c, info_b, contexts=ctx_i)
    d2, c2, ctx_b2 = S.parse_frame(payload, info_b, contexts=ctx_i)
    _assert_same(d, d2, c, c2)
    np.testing.assert_array_equal(ctx_b2, ctx_b)
    with pytest.raises(BitstreamError):  # other initial contexts: the parse goes astray and is caught
        S.parse_frame(payload, info_b)


def test_counting_matches_writing_ctu_by_ctu():
    info = _info("B", width=192, height=128)
    d, c = S.random_frame(info, 5)
    payload, ctx_w = S.write_frame(d, c, info)
    ctx = S.init_contexts("B", info.qp)
    total = 0.0
    for y in range(0, info.height, 64):
        for x in range(0, info.width, 64):
            bits, ctx = S.count_quadtree_bits(d, c, info, x, y, 6, ctx)
            total += bits
    np.testing.assert_array_equal(ctx, ctx_w)  # counting adapts the contexts exactly like writing
    assert abs(total - 8 * len(payload)) < 0.015 * 8 * len(payload) + 32


def test_count_single_cu_for_rdo():
    info = _info("P")
    d, c = S.random_frame(info, 6, split_prob=0.0)  # 64x64 CUs
    ctx0 = S.init_contexts("P", info.qp)
    bits, ctx1 = S.count_quadtree_bits(d, c, info, 0, 0, 6, ctx0)
    assert bits > 0 and not np.array_equal(ctx0, ctx1)
    assert np.array_equal(ctx0, S.init_contexts("P", info.qp))  # input untouched
    zero = CoeffPlanes(y=np.zeros_like(c.y), u=np.zeros_like(c.u), v=np.zeros_like(c.v))
    skip = dataclasses.replace(d, skip=np.ones_like(d.skip), merge_flag=np.ones_like(d.skip),
                               merge_idx=np.zeros_like(d.skip), pred_mode=np.ones_like(d.skip),
                               inter_dir=np.ones_like(d.skip), ref_idx=np.stack([np.zeros_like(d.skip),
                                                                                  -np.ones_like(d.skip)], -1),
                               mv=np.zeros_like(d.mv), qp=np.full_like(d.qp, info.qp), cbf=np.zeros_like(d.cbf))
    skip_bits, _ = S.count_quadtree_bits(skip, zero, info, 0, 0, 6, ctx0)
    assert skip_bits < 4  # split flag + skip flag + merge_idx 0


def test_inconsistent_decisions_are_refused():
    info = _info("B")
    d, c = S.random_frame(info, 7)
    merge = np.argwhere((d.merge_flag == 1) & (d.skip == 0))
    y4, x4 = merge[0]
    bad_mv = d.mv.copy()
    bad_mv[y4, x4, :, 0] += 1
    with pytest.raises(ValueError, match="merge"):
        S.write_frame(dataclasses.replace(d, mv=bad_mv), c, info)
    y4, x4 = np.argwhere(d.skip == 1)[0]
    y = c.y.copy()
    y[4 * y4, 4 * x4] = 5
    with pytest.raises(ValueError, match="skip"):
        S.write_frame(d, dataclasses.replace(c, y=y), info)
    qp = d.qp.copy()
    qp[y4, x4] += 1
    with pytest.raises(ValueError):
        S.write_frame(dataclasses.replace(d, qp=qp), c, info)
    y4, x4 = np.argwhere(d.pred_mode == 0)[0]
    mc = d.intra_mode_c.copy()
    mc[d.cu_log2 > 0] = 7
    im = d.intra_mode.copy()
    im[d.pred_mode == 0] = 8
    with pytest.raises(ValueError, match="intra_mode_c"):
        S.write_frame(dataclasses.replace(d, intra_mode_c=mc, intra_mode=im), c, info)
    big = c.y.copy()
    big[0, 0] = 40000
    with pytest.raises(ValueError):
        S.write_frame(d, dataclasses.replace(c, y=big), _info("I"))


def test_truncated_and_extended_payloads_raise():
    info = _info("B")
    d, c = S.random_frame(info, 8)
    payload, _ = S.write_frame(d, c, info)
    rng = np.random.default_rng(0)
    for cut in [0, 1, 2, len(payload) - 1] + list(rng.integers(0, len(payload), 16)):
        with pytest.raises(BitstreamError, match="CTU"):
            S.parse_frame(payload[:cut], info)
    with pytest.raises(BitstreamError):
        S.parse_frame(payload + b"\x00", info)


_PAYLOADS = {}


def _payload(kind):
    if kind not in _PAYLOADS:
        info = _info(kind, cu_qp_delta=True)
        d, c = S.random_frame(info, 9)
        _PAYLOADS[kind] = (S.write_frame(d, c, info)[0], info)
    return _PAYLOADS[kind]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["I", "P", "B"]), data=st.data())
def test_mutated_payloads_never_crash(kind, data):
    payload, info = _payload(kind)
    buf = bytearray(payload)
    n = data.draw(st.integers(1, 8))
    for _ in range(n):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        buf = buf[: data.draw(st.integers(0, len(buf)))]
    try:
        d, c, _ = S.parse_frame(bytes(buf), info)
    except BitstreamError as e:
        assert "CTU" in str(e)
        return
    # a mutation that still parses must give in-range decisions
    assert d.cu_log2.min() >= 3 and d.cu_log2.max() <= 6
    assert d.intra_mode.min() >= 0 and d.intra_mode.max() <= 34
    assert d.qp.min() >= 0 and d.qp.max() <= 51
    assert d.ref_idx[..., 0].max() < info.num_ref_l0 and d.ref_idx[..., 1].max() < max(info.num_ref_l1, 1)
    assert np.abs(c.y).max() <= S.MAX_LEVEL


def test_info_validation():
    with pytest.raises(ValueError, match="max_tu_size"):
        S.write_frame(*S.random_frame(_info("I"), 0), _info("I", max_tu_size=16))
    with pytest.raises(ValueError, match="multiple"):
        S.parse_frame(b"", _info("I", width=100))
    with pytest.raises(ValueError, match="P slice"):
        S.parse_frame(b"", _info("P", refs_l0=()))


def test_bit_counter_sees_in_place_candidates():
    info = _info("B")
    d, c = S.random_frame(info, 11)
    ctx = S.init_contexts("B", info.qp)
    counter = S.BitCounter(d, c, info)
    assert counter.count(64, 0, 6, ctx)[0] == S.count_quadtree_bits(d, c, info, 64, 0, 6, ctx)[0]
    before = counter.count(0, 0, 6, ctx)[0]
    c.y[:64, :64] = 0  # the encoder tries "no luma residual" in place (views, not copies)
    c.y[0, 0] = 1
    d.cbf[:16, :16, 0] = 0
    after = counter.count(0, 0, 6, ctx)
    assert after[0] != before
    assert after[0] == S.count_quadtree_bits(d, c, info, 0, 0, 6, ctx)[0]


@pytest.mark.parametrize("mv, max_bits", [((0, 0), 4.0), ((4, -4), 12.0)])
def test_explicit_mv_costs_what_its_mvd_costs(mv, max_bits):
    # Round trips cannot see a wrong MVD as long as writer and parser agree (a mis-wrapped
    # difference once cost 60 bits per zero MVD): bound the bits of 64 uniform inter CUs.
    from jaxcodec.codec.blocks import MODE_INTER, empty_decisions, zero_coeffs

    info = S.FrameSyntaxInfo(width=64, height=64, slice_type="P", qp=32, poc=2, refs_l0=(1,), refs_l1=(),
                             intra_tu_split=False)
    d = empty_decisions(64, 64)
    ones = np.ones_like(d.pred_mode)
    mvs = np.zeros(d.mv.shape, np.int16)
    mvs[..., 0, :] = mv
    d = d.replace(pred_mode=ones * MODE_INTER, inter_dir=ones, ref_idx=np.stack([0 * ones, -ones], -1).astype(np.int8),
                  mv=mvs)
    payload, _ = S.write_frame(d, zero_coeffs(64, 64), info)
    assert 8 * len(payload) / 64 < max_bits
    assert S._wrap16(0) == 0 and S._wrap16(-1) == -1 and S._wrap16(32768) == -32768 and S._wrap16(-32769) == 32767
