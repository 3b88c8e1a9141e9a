"""MV prediction (H.265 8.5.3.2): z-scan availability, merge list order/pruning/combined/zero
candidates, AMVP same-picture preference and POC scaling."""

import numpy as np
import pytest

from jaxcodec.codec.entropy import mvpred as M


def _field(h4=16, w4=16, ctu_log2=6):
    mv = np.zeros((h4, w4, 2, 2), np.int16)
    ref = np.full((h4, w4, 2), -1, np.int8)
    d = np.zeros((h4, w4), np.int8)
    mode = np.zeros((h4, w4), np.int8)
    return mv, ref, d, mode, M.zscan_order(h4, w4, ctu_log2)


def _set(f, y4, x4, n4, lst_mv, refs, mode=1):
    mv, ref, d, pm, _ = f
    pm[y4:y4 + n4, x4:x4 + n4] = mode
    d[y4:y4 + n4, x4:x4 + n4] = (refs[0] >= 0) | ((refs[1] >= 0) << 1)
    ref[y4:y4 + n4, x4:x4 + n4] = refs
    mv[y4:y4 + n4, x4:x4 + n4] = np.where(np.array(refs)[:, None] >= 0, np.array(lst_mv), 0)


def _merge(f, x4, y4, n4, *, is_b=True, nref=(2, 2), ref_poc=None):
    mv, ref, d, pm, z = f
    ref_poc = np.array([[-1, -2], [1, 2]], np.int32) if ref_poc is None else ref_poc
    cmv, cref, cdir = np.zeros((5, 2, 2), np.int32), np.zeros((5, 2), np.int32), np.zeros(5, np.int32)
    k = M.merge_candidates(x4, y4, n4, mv, ref, d, pm, z, ref_poc, nref[0], nref[1], is_b, 5, cmv, cref, cdir)
    return k, cmv, cref, cdir


def _recursive_z(x, y, n, out, counter):
    if n == 1:
        out[y, x] = counter[0]
        counter[0] += 1
        return
    h = n // 2
    for dy, dx in ((0, 0), (0, h), (h, 0), (h, h)):
        _recursive_z(x + dx, y + dy, h, out, counter)


@pytest.mark.parametrize("ctu_log2", [4, 5, 6])
def test_zscan_matches_recursive_quadtree_order(ctu_log2):
    h4, w4 = 36, 44  # not a multiple of the CTU: partial CTUs at the edges
    z = M.zscan_order(h4, w4, ctu_log2)
    n = 1 << (ctu_log2 - 2)
    ctus = -(-w4 // n)
    big = np.zeros((-(-h4 // n) * n, ctus * n), np.int64)
    counter = [0]
    for cy in range(-(-h4 // n)):
        for cx in range(ctus):
            _recursive_z(cx * n, cy * n, n, big, counter)
    np.testing.assert_array_equal(z, big[:h4, :w4])


def test_no_neighbours_gives_zero_candidates_with_increasing_ref_idx():
    f = _field()
    k, cmv, cref, cdir = _merge(f, 0, 0, 2, is_b=True, nref=(2, 3))
    assert k == 5 and (cmv == 0).all() and (cdir == 3).all()
    assert cref[:, 0].tolist() == [0, 1, 0, 0, 0] and cref[:, 1].tolist() == [0, 1, 0, 0, 0]
    k, cmv, cref, cdir = _merge(f, 0, 0, 2, is_b=False, nref=(3, 0))
    assert (cdir == 1).all() and cref[:, 0].tolist() == [0, 1, 2, 0, 0] and (cref[:, 1] == -1).all()


def test_spatial_order_pruning_and_availability():
    f = _field()
    # current CU: 8x8 at 4x4 position (4, 4) (luma 16, 16); first in its 16x16 quadrant
    _set(f, 5, 3, 1, [[4, 0], [0, 0]], [0, -1])     # A1 (x4-1, y4+n4-1)
    _set(f, 3, 5, 1, [[4, 0], [0, 0]], [0, -1])     # B1 same motion as A1 -> pruned
    _set(f, 3, 6, 1, [[8, 8], [0, 0]], [1, -1])     # B0
    _set(f, 6, 3, 1, [[-4, 0], [0, 0]], [0, -1])    # A0 (below-left): coded before? z-order decides
    _set(f, 3, 3, 1, [[12, 0], [0, 0]], [0, -1])    # B2
    k, cmv, cref, cdir = _merge(f, 4, 4, 2, is_b=False, nref=(2, 0))
    z = f[4]
    assert z[6, 3] < z[4, 4]  # A0 lies in the already coded left 16x16 quadrant
    assert cmv[0, 0].tolist() == [4, 0]    # A1
    assert cmv[1, 0].tolist() == [8, 8]    # B0 (B1 pruned)
    assert cmv[2, 0].tolist() == [-4, 0]   # A0
    assert cmv[3, 0].tolist() == [12, 0]   # B2 (only 3 spatial before it)
    assert cdir[4] == 1 and (cmv[4] == 0).all()  # zero fill, P slice


def test_not_yet_coded_and_intra_neighbours_are_unavailable():
    f = _field()
    # CU (4,0) size 2: its below-left A0 (3, 2) belongs to the left CU's lower part, coded before;
    # CU (2,2) size 2 (lower-left of first 16x16): its above-right B0 (4, 1) is in the next quadrant -> later
    _set(f, 1, 4, 1, [[40, 0], [0, 0]], [0, -1])
    k, cmv, _, _ = _merge(f, 2, 2, 2, is_b=False, nref=(1, 0))
    assert (cmv[:, 0] == 0).all()
    _set(f, 2, 1, 1, [[16, 4], [0, 0]], [0, -1], mode=0)  # intra at A1
    k, cmv, _, _ = _merge(f, 2, 2, 2, is_b=False, nref=(1, 0))
    assert (cmv[:, 0] == 0).all()


def test_combined_bi_predictive_candidate():
    f = _field()
    _set(f, 5, 3, 1, [[4, 0], [0, 0]], [0, -1])   # A1: L0 only
    _set(f, 3, 5, 1, [[0, 0], [-8, 4]], [-1, 1])  # B1: L1 only
    k, cmv, cref, cdir = _merge(f, 4, 4, 2, is_b=True)
    assert cdir[:3].tolist() == [1, 2, 3]
    assert cmv[2].tolist() == [[4, 0], [-8, 4]] and cref[2].tolist() == [0, 1]


def _c_scale(v, td, tb):
    td = max(-128, min(127, td))
    tb = max(-128, min(127, tb))
    tx = int((16384 + abs(td) // 2) / td)  # C division truncates toward zero
    dsf = max(-4096, min(4095, (tb * tx + 32) >> 6))
    p = dsf * v
    return max(-32768, min(32767, (1 if p >= 0 else -1) * ((abs(p) + 127) >> 8)))


def test_scale_mv_matches_c_semantics():
    rng = np.random.default_rng(0)
    for _ in range(3000):
        v, td, tb = int(rng.integers(-32768, 32768)), int(rng.integers(-200, 200)), int(rng.integers(-200, 200))
        if td == 0:
            continue
        assert M.scale_mv(v, td, tb) == _c_scale(v, td, tb), (v, td, tb)


def test_amvp_prefers_same_picture_then_scales():
    f = _field()
    mv, ref, d, pm, z = f
    ref_poc = np.array([[8, 4], [16, 8]], np.int32)  # POC 8 is in both lists
    cur = 12
    _set(f, 6, 3, 1, [[0, 0], [20, -4]], [-1, 1])   # A0: L1 ref 1 = POC 8
    _set(f, 5, 3, 1, [[7, 7], [0, 0]], [1, -1])     # A1: POC 4
    out = np.zeros((2, 2), np.int32)
    M.amvp_candidates(4, 4, 2, 0, 0, mv, ref, pm, z, ref_poc, cur, out)  # target L0 ref 0 = POC 8
    assert out[0].tolist() == [20, -4]  # same picture through the other list
    assert out[1].tolist() == [0, 0]    # no above neighbour
    # target POC 16 (L1 ref 0): nobody refers to it -> A0's MV scaled from POC 8 (td 4) to 16 (tb -4)
    M.amvp_candidates(4, 4, 2, 1, 0, mv, ref, pm, z, ref_poc, cur, out)
    assert out[0].tolist() == [M.scale_mv(20, 4, -4), M.scale_mv(-4, 4, -4)] == [-20, 4]


def test_amvp_uses_above_for_a_when_no_left_neighbour():
    f = _field()
    mv, ref, d, pm, z = f
    ref_poc = np.array([[8, 4], [16, 8]], np.int32)
    _set(f, 3, 6, 1, [[5, 1], [0, 0]], [1, -1])  # B0, refers to POC 4
    out = np.zeros((2, 2), np.int32)
    M.amvp_candidates(4, 4, 2, 0, 1, mv, ref, pm, z, ref_poc, 12, out)  # target POC 4: same picture
    assert out.tolist() == [[5, 1], [0, 0]]  # B copied into A, then B == A pruned
    M.amvp_candidates(4, 4, 2, 0, 0, mv, ref, pm, z, ref_poc, 12, out)  # target POC 8: scaled B
    assert out[0].tolist() == [M.scale_mv(5, 8, 4), M.scale_mv(1, 8, 4)]
