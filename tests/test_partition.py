"""Inter CU quadtree decision: the SSE estimate of merge candidates against the exact motion
compensation, static content coded as the biggest skip CUs, hierarchical motion search."""

import numpy as np
import pytest

import jax.numpy as jnp
from jaxcodec.codec import inter, motion, partition
from jaxcodec.codec.blocks import PRED_BI, PRED_L0
from jaxcodec.codec.entropy import syntax


def _texture(seed, h=64, w=64):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    return np.clip(128 + 60 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + rng.normal(0, 4, (h, w)), 0, 255).astype(np.int32)


def test_luma_block_sse_estimate_tracks_exact_prediction():
    refs = np.stack([_texture(1), _texture(2)])
    cur = _texture(3).astype(np.float32)
    ref_list = np.array([[0], [1]], np.int32)
    rng = np.random.default_rng(0)
    for _ in range(6):
        idir = int(rng.choice([PRED_L0, PRED_BI]))
        mv = rng.integers(-20, 20, (2, 2)).astype(np.int16)
        ref = np.array([0, 0 if idir == PRED_BI else -1], np.int8)
        if idir == PRED_L0:
            mv[1] = 0
        d = partition.field_decisions(jnp.full((8, 8), idir), jnp.broadcast_to(jnp.asarray(mv), (8, 8, 2, 2)),
                                      jnp.broadcast_to(jnp.asarray(ref), (8, 8, 2)))
        zeros = jnp.zeros((2, 32, 32), jnp.int32)
        pred = np.asarray(inter.motion_compensate(jnp.asarray(refs), zeros, zeros, d, ref_list=jnp.asarray(ref_list),
                                                  bit_depth=8)[0])
        for x0, y0, n in [(0, 0, 16), (16, 32, 32), (0, 0, 64)]:
            exact = float(((cur[y0:y0 + n, x0:x0 + n] - pred[y0:y0 + n, x0:x0 + n]) ** 2).sum())
            est = partition._luma_block_sse(cur, refs, ref_list, x0, y0, n, idir, mv, ref, 8)
            # float rounding vs the integer filter chain: off by at most about one level per sample
            assert abs(est - exact) <= 0.02 * exact + 2 * n * n * (1 + np.sqrt(exact / (n * n)))


def test_static_picture_is_one_skip_cu_per_ctu():
    h, w = 64, 128
    pic = _texture(4, h, w)
    refs_y = jnp.asarray(pic[None])
    planes = (jnp.asarray(pic), jnp.full((h // 2, w // 2), 128), jnp.full((h // 2, w // 2), 128))
    stacks = (refs_y, planes[1][None], planes[2][None])
    ref_list = jnp.asarray([[0], [0]], jnp.int32)
    field = (jnp.full((h // 8, w // 8), PRED_L0), jnp.zeros((h // 8, w // 8, 2, 2), jnp.int32),
             jnp.stack([jnp.zeros((h // 8, w // 8), jnp.int32), jnp.full((h // 8, w // 8), -1)], -1))
    fields = partition.motion_pyramid(planes[0], refs_y, ref_list, *field, jnp.float32(5.0), bit_depth=8)
    cands = [partition.level_candidates(planes, stacks, ref_list, fields[k], jnp.int32(32), jnp.int32(32),
                                        jnp.float32(25.0), log2_luma=min(k + 3, 5), bit_depth=8) for k in range(4)]
    info = syntax.FrameSyntaxInfo(width=w, height=h, slice_type="B", qp=32, poc=1, refs_l0=(0,), refs_l1=(0,),
                                  intra_tu_split=False)
    np_ = lambda t: tuple(np.asarray(x) if not isinstance(x, tuple) else tuple(np.asarray(y) for y in x) for x in t)  # noqa: E731
    d, c = partition.decide_quadtree([np_(f) for f in fields], [np_(x) for x in cands], info, 25.0, 32,
                                     orig_y=planes[0], refs_y=refs_y, ref_list=ref_list)
    assert (d.cu_log2 == 6).all() and d.skip.all()
    assert not any(np.asarray(p).any() for p in (c.y, c.u, c.v))
    payload, _ = syntax.write_frame(d, c, info)
    assert len(payload) <= 4


def test_hierarchical_search_finds_motion_beyond_the_window():
    big = _texture(5, 128, 160)
    ref = big[32:96, 48:112]
    cur = big[32 + 20:96 + 20, 48 - 24:112 - 24]  # cur[y, x] = ref[y + 20, x - 24]: outside +-8
    mv0, _, _ = motion.search_ref(jnp.asarray(cur), jnp.asarray(ref), jnp.float32(2.0), search_range=8, bit_depth=8,
                                  subpel=False)
    mv1, _, _ = motion.search_ref(jnp.asarray(cur), jnp.asarray(ref), jnp.float32(2.0), search_range=8, bit_depth=8,
                                  subpel=False, coarse_range=8)
    inner = (slice(1, 4), slice(4, 7))  # blocks whose true match lies inside the reference
    assert (np.asarray(mv1)[inner] == [-96, 80]).all()
    assert not (np.asarray(mv0)[inner] == [-96, 80]).all()


@pytest.mark.slow  # ~40 s; the round-trip tests already decode intra CUs of inter pictures
def test_new_content_in_an_inter_picture_is_coded_intra_and_decodes_exactly():
    from jaxcodec.config import load_coding_config
    from jaxcodec.frame import make_frame
    from runtime import bitstream as bs
    from runtime.decoder import decode
    from runtime.encoder import encode, seq_params
    from runtime.framecoder import syntax_info

    rng = np.random.default_rng(9)
    # the round-trip clip's size (tests/codec_clips.py), so the codec is compiled already
    y = np.stack([_texture(6, 24, 40)] * 2).astype(np.uint8)
    yy, xx = np.mgrid[0:16, 0:16]
    y[1, 8:24, 16:32] = np.clip(40 + 12 * xx + 3 * yy + rng.normal(0, 1, (16, 16)), 0, 255)  # appears from nowhere
    uv = np.full((2, 12, 20), 128, np.uint8)
    frames = make_frame(y, uv, uv.copy())
    cfg = load_coding_config("ld", qp=27)
    data, rec = encode(frames, cfg)
    out = decode(data)
    assert all(np.array_equal(np.asarray(getattr(out, c)), np.asarray(getattr(rec, c))) for c in "yuv")
    seq, pics = bs.parse_stream(data)
    fh, payload = pics[1]
    info = syntax_info(fh.frame_type, fh.qp, fh.poc, fh.refs_l0, fh.refs_l1, seq_params(cfg, 8), (24, 40))
    d, _, _ = syntax.parse_frame(payload, info)
    assert fh.frame_type == "B" and (np.asarray(d.pred_mode) == 0).any()
    data_off, _ = encode(frames, cfg.replace(intra_in_inter=False))
    assert len(data) < len(data_off)


def test_residual_planes_equal_per_tu_reference_with_split_inter_tus():
    from jaxcodec.codec import quant, recon, transform
    from jaxcodec.codec.blocks import MODE_INTER

    h, w = 64, 96
    info = syntax.FrameSyntaxInfo(width=w, height=h, slice_type="B", qp=30, poc=2, refs_l0=(0,), refs_l1=(4,),
                                  ctu_size=32, inter_tu_split=True)
    d, c = syntax.random_frame(info, 3, big_level_prob=0.0, intra_prob=0.0)
    tu, cu = np.asarray(d.tu_log2), np.asarray(d.cu_log2)
    assert ((tu == cu - 1) & (cu <= 5)).any() and (tu == 2).any()  # split inter TUs, down to 4x4
    qp, qpc = 30, quant.chroma_qp(30)
    got = recon.residual_planes((c.y, c.u, c.v), tu, jnp.int32(qp), jnp.int32(qpc), bit_depth=8)
    inter_units = np.asarray(d.pred_mode) == MODE_INTER
    for comp, (lev, q) in enumerate(((c.y, qp), (c.u, qpc), (c.v, qpc))):
        f = 4 if comp == 0 else 2
        want = np.zeros_like(np.asarray(lev))
        for y4, x4 in zip(*np.nonzero(inter_units)):
            log2n = int(tu[y4, x4]) if comp == 0 else max(int(tu[y4, x4]) - 1, 2)
            n = 1 << log2n
            y0, x0 = (y4 * f) // n * n, (x4 * f) // n * n  # the TU covering this unit
            blk = jnp.asarray(np.asarray(lev)[y0:y0 + n, x0:x0 + n])
            want[y0:y0 + n, x0:x0 + n] = np.asarray(transform.inverse_transform(quant.dequantize(blk, q, log2n), log2n))
        mask = np.repeat(np.repeat(inter_units, f, 0), f, 1)
        np.testing.assert_array_equal(np.asarray(got[comp])[mask], want[mask])
