"""CABAC engine: exact round trips (regular / bypass / terminating bins, skewed contexts),
counting backend equal to the encoder's context adaptation and close to the real size,
carry propagation, overrun on truncated data, initial states from HEVC init values."""

import numpy as np
import pytest

from jaxcodec.codec.entropy import engine as E


def _random_sequence(seed: int, n: int, *, skew: float = 1.0, bypass_share: float = 0.2, term_share: float = 0.05):
    rng = np.random.default_rng(seed)
    nctx = int(rng.integers(1, 48))
    probs = rng.uniform(0, 1, nctx) ** skew
    if skew > 1:  # push some contexts to both extremes
        probs = np.where(rng.uniform(size=nctx) < 0.5, probs, 1 - probs)
    u = rng.uniform(size=n)
    kinds = np.where(u < term_share, E.KIND_TERMINATE, np.where(u < term_share + bypass_share, E.KIND_BYPASS,
                                                                   E.KIND_REGULAR)).astype(np.int8)
    ids = rng.integers(0, nctx, n).astype(np.int32)
    bins = (rng.uniform(size=n) < probs[ids]).astype(np.int8)
    bins[kinds == E.KIND_TERMINATE] = 0  # a terminating 1 ends the codeword (end of slice)
    ctx0 = E.init_states(rng.integers(0, 256, nctx), int(rng.integers(0, 52)))
    return kinds, ids, bins, ctx0


@pytest.mark.parametrize("skew", [1.0, 8.0, 40.0])
@pytest.mark.parametrize("seed", range(12))
def test_round_trip_random_bins(seed, skew):
    n = int(np.random.default_rng(seed + 100).integers(0, 30000))
    kinds, ids, bins, ctx0 = _random_sequence(seed, n, skew=skew)
    payload, ctx_enc, _ = E.encode_bins(kinds, ids, bins, ctx0)
    out, ctx_dec, ok = E.decode_bins(payload, kinds, ids, ctx0)
    assert ok
    np.testing.assert_array_equal(out, bins)
    np.testing.assert_array_equal(ctx_dec, ctx_enc)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1000, 100003])
def test_round_trip_all_bypass(n):
    rng = np.random.default_rng(n)
    bins = rng.integers(0, 2, n).astype(np.int8)
    kinds = np.full(n, E.KIND_BYPASS, np.int8)
    ids = np.zeros(n, np.int32)
    ctx0 = E.init_states(np.array([154]), 30)
    payload, _, _ = E.encode_bins(kinds, ids, bins, ctx0)
    out, _, ok = E.decode_bins(payload, kinds, ids, ctx0)
    assert ok and (out == bins).all()
    assert abs(len(payload) * 8 - n) <= 24  # bypass bins cost exactly one bit each, plus the flush


def test_all_ones_and_all_zeros_runs_exercise_carry():
    # long runs of the MPS drive `low` towards 0xff... patterns: carries through buffered 0xff bytes
    for b in (0, 1):
        for init in (1, 254, 154):
            n = 200000
            kinds = np.zeros(n, np.int8)
            kinds[::97] = E.KIND_BYPASS
            ids = np.zeros(n, np.int32)
            bins = np.full(n, b, np.int8)
            bins[::1013] = 1 - b
            ctx0 = E.init_states(np.array([init]), 51)
            payload, _, _ = E.encode_bins(kinds, ids, bins, ctx0)
            out, _, ok = E.decode_bins(payload, kinds, ids, ctx0)
            assert ok and (out == bins).all()


def test_multi_bin_bypass_equals_single_bins():
    rng = np.random.default_rng(5)
    values = rng.integers(0, 2**32, 500)
    widths = rng.integers(0, 33, 500)
    w1, b1 = E.new_writer()
    w2, b2 = E.new_writer()
    for v, n in zip(values, widths):
        E.put_bypass_bins(w1, b1, int(v), int(n))
        for k in range(n - 1, -1, -1):
            E.put_bypass(w2, b2, int((v >> k) & 1))
    for w, b in ((w1, b1), (w2, b2)):
        E.put_terminate(w, b, 1)
        E.finish(w, b)
    assert bytes(b1[: w1[E.W_POS]]) == bytes(b2[: w2[E.W_POS]])
    r, data = E.new_reader(bytes(b1[: w1[E.W_POS]]))
    for v, n in zip(values, widths):
        assert E.get_bypass_bins(r, data, int(n)) == int(v) & ((1 << int(n)) - 1)
    assert E.get_terminate(r, data) == 1 and E.reader_end_ok(r, data)


@pytest.mark.parametrize("seed", range(4))
def test_counting_mode_adapts_like_encoder_and_counts_within_one_percent(seed):
    kinds, ids, bins, ctx0 = _random_sequence(seed, 200000, skew=float(seed * 3 + 1))
    payload, ctx_enc, _ = E.encode_bins(kinds, ids, bins, ctx0)
    empty, ctx_cnt, frac = E.encode_bins(kinds, ids, bins, ctx0, mode=E.MODE_COUNT)
    assert empty == b""
    np.testing.assert_array_equal(ctx_cnt, ctx_enc)
    counted = frac / E.FRAC_ONE
    assert abs(counted - 8 * len(payload)) < 0.01 * 8 * len(payload)


def test_bin_cost_matches_counted_increment():
    ctx = E.init_states(np.array([20, 154, 230]), 32)
    w, buf = E.new_writer(E.MODE_COUNT)
    for c in range(3):
        for b in (0, 1):
            before = int(w[E.W_FRAC])
            cost = int(E.bin_cost(ctx, c, b))
            E.put_bin(w, ctx.copy(), buf, c, b)
            assert int(w[E.W_FRAC]) - before == cost


def test_truncated_payload_flags_overrun_and_never_crashes():
    kinds, ids, bins, ctx0 = _random_sequence(3, 20000)
    payload, _, _ = E.encode_bins(kinds, ids, bins, ctx0)
    for cut in (0, 1, 2, len(payload) // 2, len(payload) - 1):
        out, _, ok = E.decode_bins(payload[:cut], kinds, ids, ctx0)
        assert not ok
    r, data = E.new_reader(payload[:3])
    for _ in range(100):
        E.get_bypass(r, data)
    assert r[E.R_OVERRUN] > 0


def test_extra_trailing_bytes_are_detected():
    kinds, ids, bins, ctx0 = _random_sequence(4, 5000)
    payload, _, _ = E.encode_bins(kinds, ids, bins, ctx0)
    _, _, ok = E.decode_bins(payload + b"\x00", kinds, ids, ctx0)
    assert not ok


def test_init_states_follow_hevc_rule():
    # initValue 154 is the 'equiprobable at every QP' value (m = 0, n = 64 -> preCtxState 64)
    s = E.init_states(np.array([154, 154]), 37)
    assert (s == 32767 - 16384).all()
    # slope > 0: P(1) rises with QP; both estimators start equal
    lo, hi = E.init_states(np.array([200]), 0), E.init_states(np.array([200]), 51)
    assert hi[0, 0] > lo[0, 0] and (lo[:, 0] == lo[:, 1]).all()
    assert s.dtype == np.int32 and s.shape == (2, 2)


def test_capacity_grows():
    w, buf = E.new_writer(capacity=16)
    big = E.ensure_capacity(w, buf, 1000)
    assert big.shape[0] >= 1000
    assert E.ensure_capacity(w, big, 10) is big
