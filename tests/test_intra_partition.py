"""Intra CU quadtree: the looped reconstruction against a plain per-CU reference and the
helpers it relies on (decoding order, availability, SATD). The encoder's use of it is checked
in test_codec_roundtrip (block structures of the round-trip clip, the intra_4x4 switch)."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxcodec.codec import intra, quant, recon, transform
from jaxcodec.codec.blocks import MODE_INTRA
from jaxcodec.codec.entropy import syntax
from jaxcodec.errors import BitstreamError


def test_satd_matches_explicit_hadamard():
    rng = np.random.default_rng(0)
    for n in (4, 8, 16):
        d = rng.integers(-255, 256, (3, n, n))
        k = 4 if n == 4 else 8
        h = np.array([[1]])
        while h.shape[0] < k:
            h = np.block([[h, h], [h, -h]])
        want = []
        for b in d:
            s = sum(np.abs(h @ b[y:y + k, x:x + k] @ h.T).sum() for y in range(0, n, k) for x in range(0, n, k))
            want.append(s / (2 if k == 4 else 4))
        np.testing.assert_allclose(np.asarray(transform.satd(jnp.asarray(d))), want)


def test_decoding_order_is_z_scan_inside_raster_ctus():
    order = recon.decoding_order4(4, 8, 16)  # two 16x16 CTUs side by side, 4x4 units
    assert order[0, :4].tolist() == [0, 1, 4, 5] and order[1, :4].tolist() == [2, 3, 6, 7]
    assert order[0, 4] == 16 and sorted(order.ravel().tolist()) == list(range(32))


@pytest.mark.parametrize("chroma", [False, True])
def test_availability_in_order_equals_done_map(chroma):
    order = recon.decoding_order4(16, 16, 32)
    rng = np.random.default_rng(1)
    for _ in range(20):
        log2n = int(rng.integers(2, 5))
        n = 1 << log2n
        size = 64 // (2 if chroma else 1)
        y0, x0 = (int(v) * n for v in rng.integers(0, size // n, 2))
        sub = 2 if chroma else 1
        done = order < order[y0 * sub // 4, x0 * sub // 4]
        want = intra.neighbour_availability(done, y0, x0, log2n, chroma=chroma)
        got = intra.availability_in_order(order, y0, x0, log2n, chroma=chroma)
        for a, b in zip(want[:3], got[:3]):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _reference_intra(decisions, levels, qp, qpc, ctu_size, h, w):
    """Per-CU, per-TU reconstruction in plain Python with the single-block kernels."""
    rec = [np.zeros((h, w), np.int32), np.zeros((h // 2, w // 2), np.int32), np.zeros((h // 2, w // 2), np.int32)]
    done = np.zeros((h // 4, w // 4), bool)
    cu, tu = np.asarray(decisions.cu_log2), np.asarray(decisions.tu_log2)
    q_of = {0: qp, 1: qpc, 2: qpc}

    def tu_block(c, y0, x0, log2n, mode, dst):
        avail = intra.neighbour_availability(done, y0, x0, log2n, chroma=c > 0)
        top, left = intra.reference_samples(jnp.asarray(rec[c]), y0, x0, log2n, *avail[:3], bit_depth=8, unit=avail[3])
        pred = np.asarray(intra.intra_predict(top, left, mode, log2n, is_luma=c == 0))
        n = 1 << log2n
        lev = jnp.asarray(levels[c][y0:y0 + n, x0:x0 + n])
        res = transform.inverse_transform(quant.dequantize(lev, q_of[c], log2n), log2n, dst=dst)
        rec[c][y0:y0 + n, x0:x0 + n] = np.clip(pred + np.asarray(res), 0, 255)

    def walk(y4, x4, log2):
        if y4 >= h // 4 or x4 >= w // 4:
            return
        if cu[y4, x4] < log2:
            half = 1 << (log2 - 3)
            for dy, dx in ((0, 0), (0, half), (half, 0), (half, half)):
                walk(y4 + dy, x4 + dx, log2 - 1)
            return
        n4 = 1 << (log2 - 2)
        mode, mode_c = int(decisions.intra_mode[y4, x4]), int(decisions.intra_mode_c[y4, x4])
        if tu[y4, x4] == 2:
            for k in range(4):
                ty, tx = y4 + k // 2, x4 + k % 2
                tu_block(0, 4 * ty, 4 * tx, 2, mode, True)
                done[ty, tx] = True
        else:
            tu_block(0, 4 * y4, 4 * x4, log2, mode, False)
            done[y4:y4 + n4, x4:x4 + n4] = True
        for c in (1, 2):
            tu_block(c, 2 * y4, 2 * x4, max(log2 - 1, 2), mode_c, False)

    ctu_log2 = ctu_size.bit_length() - 1
    for y in range(0, h, ctu_size):
        for x in range(0, w, ctu_size):
            walk(y // 4, x // 4, ctu_log2)
    return rec


@pytest.mark.parametrize("seed", [1, 3])
def test_looped_intra_reconstruction_equals_per_cu_reference(seed):
    h, w, ctu = 24, 40, 32  # tests/test_nnlf.py's padded picture and CTU size: the decoder compiles this variant once
    info = syntax.FrameSyntaxInfo(width=w, height=h, slice_type="I", qp=30, poc=0, ctu_size=ctu, min_cu_size=8)
    decisions, coeffs = syntax.random_frame(info, seed, big_level_prob=0.0)
    tu = np.asarray(decisions.tu_log2)
    assert (tu == 2).any() and (np.asarray(decisions.cu_log2) >= 4).any()  # the case mix under test
    ys, xs, kinds, count = recon.intra_cu_list(decisions, ctu)
    zero = (np.zeros((h, w), np.int32), np.zeros((h // 2, w // 2), np.int32), np.zeros((h // 2, w // 2), np.int32))
    qp, qpc = jnp.int32(30), jnp.int32(quant.chroma_qp(30))
    levels = (coeffs.y, coeffs.u, coeffs.v)
    rec, lev, m4, mc4, pred = recon.intra_cus(
        zero, zero, ys, xs, kinds, np.int32(count), np.asarray(decisions.intra_mode, np.int32),
        np.asarray(decisions.intra_mode_c, np.int32), levels, qp, qpc, jnp.float32(0), np.zeros((h // 4, w // 4), bool),
        bit_depth=8, encode=False, ctu_size=ctu)
    want = _reference_intra(decisions, [np.asarray(x) for x in levels], qp, qpc, ctu, h, w)
    for a, b in zip(rec, want):
        np.testing.assert_array_equal(np.asarray(a), b)


def test_layout_check_refuses_a_64x64_intra_cu():
    info = syntax.FrameSyntaxInfo(width=64, height=64, slice_type="I", qp=30, poc=0)
    decisions, _ = syntax.random_frame(info, 0, split_prob=0.0)
    assert (np.asarray(decisions.cu_log2) == 6).all() and (np.asarray(decisions.pred_mode) == MODE_INTRA).all()
    with pytest.raises(BitstreamError, match="64x64"):
        recon.check_layout(decisions, True)
