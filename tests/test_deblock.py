"""Deblocking (H.265 8.7.2) against the literal per-segment numpy reference."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcodec.codec import blocks, deblock
from jaxcodec.frame import make_frame
import ref_kernels as ref


def _random_decisions(rng, h, w, *, intra_share=0.3):
    """Quadtree CUs (8..32) with TU splits, random modes, cbf, QP, and near-threshold motion."""
    d = blocks.empty_decisions(h, w)
    f = {k: np.array(getattr(d, k)) for k in ("cu_log2", "tu_log2", "pred_mode", "inter_dir", "mv", "ref_idx", "qp", "cbf")}

    def leaf(y, x, s):
        sl = np.s_[y // 4:(y + s) // 4, x // 4:(x + s) // 4]
        f["cu_log2"][sl] = s.bit_length() - 1
        f["qp"][sl] = rng.integers(18, 48)
        intra = rng.random() < intra_share
        f["pred_mode"][sl] = blocks.MODE_INTRA if intra else blocks.MODE_INTER
        tu = s if rng.random() < 0.5 else max(4, s // 2)
        for ty in range(y, y + s, tu):
            for tx in range(x, x + s, tu):
                tsl = np.s_[ty // 4:(ty + tu) // 4, tx // 4:(tx + tu) // 4]
                f["tu_log2"][tsl] = tu.bit_length() - 1
                f["cbf"][tsl + (0,)] = rng.random() < 0.3
        if intra:
            f["inter_dir"][sl] = 0
            f["ref_idx"][sl] = -1
            f["mv"][sl] = 0
            return
        idir = int(rng.integers(1, 4))
        f["inter_dir"][sl] = idir
        for lst in (0, 1):
            used = idir & (1 << lst)
            f["ref_idx"][sl + (lst,)] = rng.integers(0, 2) if used else -1
            f["mv"][sl + (lst,)] = rng.integers(-5, 6, 2) if used else 0

    def split(y, x, s):
        if s > 8 and rng.random() < 0.6:
            for dy in (0, s // 2):
                for dx in (0, s // 2):
                    split(y + dy, x + dx, s // 2)
        else:
            leaf(y, x, s)

    for y in range(0, h, 32):
        for x in range(0, w, 32):
            split(y, x, 32)
    return d.replace(**f)


def _blocky_planes(rng, h, w, bit_depth):
    """Piecewise-flat content, noisy in some 16x16 areas and clean in others, with small steps
    at block edges: strong, normal and no filtering all happen."""
    peak = (1 << bit_depth) - 1
    sc = 1 << (bit_depth - 8)
    out = []
    for ph, pw in ((h, w), (h // 2, w // 2), (h // 2, w // 2)):
        base = np.kron(rng.integers(100, 140, (ph // 4, pw // 4)), np.ones((4, 4), np.int64))
        base += np.kron(rng.integers(0, 60, (ph // 16 + 1, pw // 16 + 1)), np.ones((16, 16), np.int64))[:ph, :pw]
        noisy = np.kron(rng.random((ph // 16 + 1, pw // 16 + 1)) < 0.5, np.ones((16, 16), bool))[:ph, :pw]
        noise = rng.integers(-2, 3, (ph, pw)) * noisy
        out.append(np.clip((base + noise) * sc, 0, peak).astype(np.int32))
    return out


@pytest.mark.parametrize("ids", [False, True])
def test_boundary_strength_matches_reference(ids):
    rng = np.random.default_rng(1 + ids)
    for _ in range(4):
        d = _random_decisions(rng, 64, 96)
        ref_ids = np.array([[7, 3], [3, 9]]) if ids else None  # L0[1] and L1[0] are one picture
        info = deblock.boundary_strength(d, ref_ids=ref_ids)
        want_v, want_h = ref.ref_boundary_strength(d, ref_ids=[list(r) for r in ref_ids] if ids else None)
        assert info.bs_ver.dtype == jnp.int8
        np.testing.assert_array_equal(np.asarray(info.bs_ver), want_v)
        np.testing.assert_array_equal(np.asarray(info.bs_hor), want_h)
        assert {0, 1, 2} <= set(np.unique(want_v)) | set(np.unique(want_h))


class Deblocking(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_frame_matches_reference(self):
        for trial, (bit_depth, offset) in enumerate(((8, 0), (10, -3), (8, 5))):
            rng = np.random.default_rng(10 * bit_depth + trial)
            h, w = 64, 96
            d = _random_decisions(rng, h, w)
            y, u, v = _blocky_planes(rng, h, w, bit_depth)
            frame = make_frame(y, u, v, bit_depth=bit_depth)
            stage = deblock.deblocking_filter()
            apply = self.variant(lambda fr, dd: stage.apply(fr, dd, bit_depth, chroma_qp_offset=offset))
            out, info = apply(frame, d)
            want = ref.ref_deblock(y, u, v, d.qp, np.asarray(info.bs_ver), np.asarray(info.bs_hor),
                                   bit_depth, chroma_qp_offset=offset)
            for got, wnt, src in zip(out.planes, want, (y, u, v)):
                np.testing.assert_array_equal(np.asarray(got), wnt)
                assert np.asarray(got).dtype == src.dtype
                assert (np.asarray(got) != src).mean() > 0.01  # the filter did real work


def test_strong_and_normal_filters_both_fire():
    """A flat step gets the strong filter (p2..q2 change), a ramp step the normal one (only
    p0/q0 may move much; p2/q2 never)."""
    h, w = 16, 16
    d = blocks.empty_decisions(h, w, qp=37)
    y = np.zeros((h, w), np.int32)
    y[:8, :8], y[:8, 8:] = 100, 110  # flat step, rows 0..7
    y[8:, :8] = 92 + 2 * np.arange(8)  # ramps either side of the edge, rows 8..15
    y[8:, 8:] = 110 + 2 * np.arange(8)
    fr = make_frame(y, np.full((8, 8), 128, np.int32), np.full((8, 8), 128, np.int32))
    out, info = jax.jit(deblock.deblock_frame)(fr, d)
    got = np.asarray(out.y)
    assert np.all(np.asarray(info.bs_ver)[:, 2] == 2)
    assert got[0, 5] != 100 and got[0, 10] != 110 and got[0, 4] == 100  # strong
    assert got[12, 7] != y[12, 7] and got[12, 8] != y[12, 8]  # normal: p0, q0 move
    assert got[12, 5] == y[12, 5] and got[12, 10] == y[12, 10]  # ... p2, q2 do not
    want = ref.ref_deblock(y, fr.u, fr.v, d.qp, np.asarray(info.bs_ver), np.asarray(info.bs_hor), 8)
    np.testing.assert_array_equal(got, want[0])


def test_disabled_stage_passes_frame_and_keeps_bs():
    rng = np.random.default_rng(3)
    d = _random_decisions(rng, 32, 32)
    y, u, v = _blocky_planes(rng, 32, 32, 8)
    fr = make_frame(y, u, v)
    out, info = deblock.deblocking_filter(enabled=False).apply(fr, d, 8)
    np.testing.assert_array_equal(np.asarray(out.y), y)
    on_info = deblock.boundary_strength(d)
    np.testing.assert_array_equal(np.asarray(info.bs_ver), np.asarray(on_info.bs_ver))
    assert deblock.deblocking_filter().init(fr) == ()


def test_deblock_compiles_once():
    rng = np.random.default_rng(4)
    stage = deblock.deblocking_filter()
    f = jax.jit(chex.assert_max_traces(lambda fr, dd: stage.apply(fr, dd, 8), n=1))
    for _ in range(3):
        d = jax.tree.map(jnp.asarray, _random_decisions(rng, 32, 48))
        y, u, v = _blocky_planes(rng, 32, 48, 8)
        f(make_frame(y, u, v), d)


def test_deblocking_improves_real_content():
    """Independent of the reference: on carphone coded with 8x8 DCT + QP 37 (blocky), the
    filter must raise PSNR against the source for luma and chroma."""
    from jaxcodec.codec import quant, transform as tr
    from jaxcodec.io import read_video

    video = read_video("carphone", max_frames=1)
    src = [np.asarray(p[0], np.int32) for p in video.frames.planes]
    qp = 37

    @jax.jit
    def code(p, q):
        t = tr.plane_to_tiles(tr.forward_transform_tiles(p - 128, 3), 3)
        rec = tr.inverse_transform(quant.dequantize(quant.quantize(t, q, 3, intra=True), q, 3), 3)
        return jnp.clip(tr.tiles_to_plane(rec, 3) + 128, 0, 255)

    rec = [np.asarray(code(src[0], qp))] + [np.asarray(code(p, quant.chroma_qp(qp))) for p in src[1:]]
    d = blocks.empty_decisions(*src[0].shape, qp=qp)
    out, _ = jax.jit(deblock.deblock_frame)(make_frame(*rec), d)
    psnr = lambda a, b: 10 * np.log10(255.0 ** 2 / np.mean((np.asarray(a, float) - b) ** 2))  # noqa: E731
    for before, after, s in zip(rec, out.planes, src):
        assert psnr(after, s) > psnr(before, s) + 0.2
