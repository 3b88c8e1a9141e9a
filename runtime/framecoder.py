"""Per-picture coding shared by `runtime.encoder` and `runtime.decoder`.

`code_picture` (encoder) and `decode_picture` (decoder) run the same reconstruction functions
(`jaxcodec.codec.recon`) with ``encode=True`` / ``False`` and the same loop filter; the frame
state they exchange is explicit (rav1e's FrameInvariants -> `FrameHeader`, the decisions and
levels -> CABAC payload). Everything that reaches the reconstruction is integer.
"""

from __future__ import annotations

import functools
import hashlib
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcodec.codec import analysis, dpb as dpb_lib, inter, intra_partition, partition, quant, recon
from jaxcodec.codec.blocks import CoeffPlanes
from jaxcodec.codec.blocks import MODE_INTRA, BlockDecisions
from jaxcodec.codec.deblock import deblock_frame
from jaxcodec.codec.entropy import syntax
from jaxcodec.frame import Frame


@functools.partial(jax.jit, static_argnames=("bit_depth", "chroma_qp_offset", "enabled"))
def _loop_filter(y, u, v, decisions, ref_ids, *, bit_depth: int, chroma_qp_offset: int, enabled: bool):
    frame = Frame(y=y, u=u, v=v, bit_depth=bit_depth)
    if not enabled:
        return y, u, v
    out, _ = deblock_frame(frame, decisions, bit_depth=bit_depth, ref_ids=ref_ids, chroma_qp_offset=chroma_qp_offset)
    return out.y, out.u, out.v


def frame_md5(planes, height: int, width: int, bit_depth: int) -> bytes:
    """MD5 over the cropped Y, U, V planes (uint8, or little-endian uint16 above 8 bits)."""
    dt = np.uint8 if bit_depth == 8 else np.dtype("<u2")
    m = hashlib.md5()
    for c, p in enumerate(planes):
        hh, ww = (height, width) if c == 0 else ((height + 1) // 2, (width + 1) // 2)
        m.update(np.ascontiguousarray(np.asarray(p)[:hh, :ww]).astype(dt).tobytes())
    return m.digest()


def qps(qp: int, chroma_qp_offset: int, bit_depth: int):
    qpc = quant.chroma_qp(qp + chroma_qp_offset, bit_depth=bit_depth)
    return jnp.int32(quant.qp_prime(qp, bit_depth=bit_depth)), jnp.int32(quant.qp_prime(qpc, bit_depth=bit_depth))


class PictureState(NamedTuple):
    """Everything one coded picture leaves behind, identical in encoder and decoder: what the
    in-loop filters after deblocking (the NN loop filter of paper 001 section III-A) read.

    Attributes:
      output: the picture's final planes (y, u, v) int32 (what the DPB holds and the MD5 covers).
      deblocked: planes after deblocking (y, u, v).
      unfiltered: reconstruction before any loop filter (y, u, v).
      pred: prediction (y, u, v); for intra pictures ``clip(unfiltered - residual)``.
      decisions: the picture's `BlockDecisions` (modes, motion, cbf, qp per 4x4 unit).
      ref_ids: ``(2, num_refs)`` POC of each reference list entry (picture identity for the
        boundary strength, `jaxcodec.codec.deblock.boundary_strength`).
      qp: picture QP; frame_type: ``"I"`` or ``"B"``.
    """

    output: tuple
    deblocked: tuple
    unfiltered: tuple
    pred: tuple
    decisions: BlockDecisions
    ref_ids: np.ndarray
    qp: int
    frame_type: str


def _finish(rec, pred, decisions, ref_ids, seq, qp: int, frame_type: str) -> PictureState:
    y, u, v = _loop_filter(rec[0], rec[1], rec[2], decisions, jnp.asarray(ref_ids),
                           bit_depth=seq.bit_depth, chroma_qp_offset=seq.chroma_qp_offset, enabled=seq.deblocking)
    deblocked = (np.asarray(y), np.asarray(u), np.asarray(v))
    unfiltered = tuple(np.asarray(p) for p in rec)
    return PictureState(output=deblocked, deblocked=deblocked, unfiltered=unfiltered,
                        pred=tuple(np.asarray(p) for p in pred), decisions=decisions, ref_ids=np.asarray(ref_ids), qp=int(qp),
                        frame_type=frame_type)


def _intra_cus(orig, rec, pred, decisions: BlockDecisions, coeffs: CoeffPlanes, qp, qpc, sqrt_lambda, seq, *,
               encode: bool):
    """Code (encoder) or reconstruct (decoder) the intra CUs of a picture with
    `recon.intra_cus`: all CUs of an I picture, or the intra CUs of an inter picture after its
    inter CUs (which they may use as reference samples). ``rec`` / ``pred`` hold the picture
    so far (zeros for an I picture). The encoder re-decides modes closed loop and returns the
    updated decisions and levels; the decoder follows the parsed ones.

    Returns ``(rec, pred, decisions, coeffs)``; unchanged when there is no intra CU.
    """
    is_intra = np.asarray(decisions.pred_mode) == MODE_INTRA
    if not is_intra.any():
        return rec, pred, decisions, coeffs
    h, w = rec[0].shape
    ys, xs, kinds, count = recon.intra_cu_list(decisions, seq.ctu_size)
    modes4 = np.where(is_intra, decisions.intra_mode, 1).astype(np.int32)
    modes_c4 = np.where(is_intra, decisions.intra_mode_c, 1).astype(np.int32)
    src = orig if encode else _zeros(h, w)
    i32 = lambda planes: tuple(np.asarray(p, np.int32) for p in planes)  # noqa: E731  (one trace per shape)
    new_rec, levels, m4, mc4, ipred = recon.intra_cus(
        i32(src), i32(rec), ys, xs, kinds, np.int32(count), modes4, modes_c4, i32((coeffs.y, coeffs.u, coeffs.v)),
        jnp.int32(qp), jnp.int32(qpc), jnp.float32(sqrt_lambda), ~is_intra, bit_depth=seq.bit_depth, encode=encode,
        ctu_size=seq.ctu_size)
    up = lambda a, f: np.repeat(np.repeat(a, f, 0), f, 1)  # noqa: E731
    pred = tuple(np.where(up(is_intra, 4 if c == 0 else 2), np.asarray(ip), np.asarray(p))
                 for c, (ip, p) in enumerate(zip(ipred, pred)))
    if not encode:
        return new_rec, pred, decisions, coeffs
    new = CoeffPlanes(*(np.asarray(x) for x in levels))
    cbf = np.where(is_intra[..., None], recon.cbf_map(new, decisions.tu_log2), np.asarray(decisions.cbf))
    decisions = decisions.replace(intra_mode=np.where(is_intra, np.asarray(m4), decisions.intra_mode).astype(np.int8),
                                  intra_mode_c=np.where(is_intra, np.asarray(mc4), decisions.intra_mode_c).astype(np.int8),
                                  cbf=cbf.astype(np.int8))
    return new_rec, pred, decisions, new


def _zeros(h: int, w: int):
    return (np.zeros((h, w), np.int32),) + (np.zeros((h // 2, w // 2), np.int32),) * 2


def syntax_info(frame_type: str, qp: int, poc: int, refs_l0, refs_l1, seq, shape) -> syntax.FrameSyntaxInfo:
    """What the entropy coder of both sides knows about a picture before its payload."""
    h, w = shape
    return syntax.FrameSyntaxInfo(width=w, height=h, slice_type="I" if frame_type == "I" else "B", qp=int(qp),
                                  poc=int(poc), refs_l0=tuple(refs_l0), refs_l1=tuple(refs_l1),
                                  ctu_size=seq.ctu_size, min_cu_size=8, chroma_qp_offset=seq.chroma_qp_offset,
                                  intra_tu_split=seq.intra_4x4,
                                  inter_tu_split=seq.inter_tu_split, bit_depth=seq.bit_depth)


def code_picture(orig, spec, dpb: dict, seq):
    """Encode one picture. ``orig`` = padded (y, u, v) numpy planes; ``seq`` a `SeqParams`.

    Returns ``(state, payload)``: the `PictureState` (``state.output`` is what the decoder will
    output) and the CABAC-coded picture payload (`jaxcodec.codec.entropy.syntax.write_frame`).
    """
    h, w = orig[0].shape
    qp, qpc = qps(spec.qp, seq.chroma_qp_offset, seq.bit_depth)
    ftype = "I" if spec.frame_type == "I" else "B"
    info = syntax_info(spec.frame_type, spec.qp, spec.poc, spec.refs_l0, spec.refs_l1, seq, (h, w))
    lam = quant.lambda_from_qp(int(qp), frame_type=ftype, temporal_layer=spec.temporal_layer,
                               low_delay=seq.gop_structure == "ld") * seq.lambda_scale
    sqrt_lambda = jnp.float32(math.sqrt(lam))
    if spec.frame_type == "I":
        ctu_log2 = seq.ctu_size.bit_length() - 1
        kinds = [k for k in intra_partition.KINDS if (k or seq.intra_4x4) and intra_partition.cu_log2(k) <= ctu_log2
                 and (1 << intra_partition.cu_log2(k)) <= min(h, w)]
        cands = {k: jax.tree_util.tree_map(np.asarray, intra_partition.level_candidates(
            tuple(orig), qp, qpc, jnp.float32(lam), kind=k, ctu_size=seq.ctu_size, bit_depth=seq.bit_depth))
            for k in kinds}
        decisions, coeffs = intra_partition.decide_quadtree(cands, info, lam, spec.qp)
        ref_ids = np.zeros((2, seq.num_refs), np.int32)
        rec, pred, decisions, coeffs = _intra_cus(tuple(orig), _zeros(h, w), _zeros(h, w), decisions, coeffs, qp, qpc,
                                                  sqrt_lambda, seq, encode=True)
    else:
        stacks, ref_list, ref_ids = dpb_lib.reference_slots(dpb, spec.refs_l0, spec.refs_l1, seq.num_refs)
        inter_dir, mv, ref_idx = analysis.analyse_inter(orig[0], stacks[0], jnp.asarray(ref_list), sqrt_lambda,
                                                        search_range=seq.search_range, bit_depth=seq.bit_depth,
                                                        subpel=seq.subpel, coarse_range=seq.coarse_range)
        inter_dir, mv, ref_idx = analysis.merge_smooth(orig[0], stacks[0], jnp.asarray(ref_list), inter_dir, mv,
                                                       ref_idx, sqrt_lambda, bit_depth=seq.bit_depth)
        fields = partition.motion_pyramid(orig[0], stacks[0], jnp.asarray(ref_list), inter_dir, mv, ref_idx,
                                          sqrt_lambda, bit_depth=seq.bit_depth)
        ctu_log2 = seq.ctu_size.bit_length() - 1
        cands = []
        for log2 in range(3, ctu_log2 + 1):
            split = log2 - 1 if seq.inter_tu_split and log2 <= 5 else None
            c = partition.level_candidates(tuple(orig), stacks, jnp.asarray(ref_list), fields[log2 - 3], qp, qpc,
                                           jnp.float32(lam), log2_luma=min(log2, 5), log2_split=split,
                                           bit_depth=seq.bit_depth)
            cands.append(jax.tree_util.tree_map(np.asarray, c))
        fields = jax.tree_util.tree_map(np.asarray, fields)
        intra_opt = None
        if seq.intra_in_inter:
            intra_opt = jax.tree_util.tree_map(np.asarray, intra_partition.level_candidates(
                tuple(orig), qp, qpc, jnp.float32(lam), cands[0][4], kind=1, ordered=False, ctu_size=seq.ctu_size,
                bit_depth=seq.bit_depth))
        decisions, coeffs = partition.decide_quadtree(fields, cands, info, lam, spec.qp, orig_y=orig[0],
                                                      refs_y=stacks[0], ref_list=ref_list, bit_depth=seq.bit_depth,
                                                      intra=intra_opt)
        pred = inter.motion_compensate_jit(*stacks, decisions, ref_list=ref_list, bit_depth=seq.bit_depth)
        rec = recon.inter_reconstruct(pred, (coeffs.y, coeffs.u, coeffs.v), decisions.tu_log2, qp, qpc,
                                      bit_depth=seq.bit_depth)
        rec, pred, decisions, coeffs = _intra_cus(tuple(orig), rec, pred, decisions, coeffs, qp, qpc, sqrt_lambda,
                                                  seq, encode=True)
    payload, _ = syntax.write_frame(decisions, coeffs, info)
    return _finish(rec, pred, decisions, ref_ids, seq, spec.qp, spec.frame_type), payload


def decode_picture(fh, payload: bytes, dpb: dict, seq, shape):
    """Parse and reconstruct one picture from its header and payload (the decoder); returns
    its `PictureState`."""
    h, w = shape
    qp, qpc = qps(fh.qp, seq.chroma_qp_offset, seq.bit_depth)
    info = syntax_info(fh.frame_type, fh.qp, fh.poc, fh.refs_l0, fh.refs_l1, seq, shape)
    decisions, coeffs, _ = syntax.parse_frame(payload, info)
    levels = (coeffs.y, coeffs.u, coeffs.v)
    recon.check_layout(decisions, fh.frame_type == "I")
    if fh.frame_type == "I":
        rec, pred, _, _ = _intra_cus(None, _zeros(h, w), _zeros(h, w), decisions, coeffs, qp, qpc, jnp.float32(0), seq,
                                     encode=False)
        return _finish(rec, pred, decisions, np.zeros((2, seq.num_refs), np.int32), seq, fh.qp, "I")
    stacks, ref_list, ref_ids = dpb_lib.reference_slots(dpb, fh.refs_l0, fh.refs_l1, seq.num_refs)
    pred = inter.motion_compensate_jit(*stacks, decisions, ref_list=ref_list, bit_depth=seq.bit_depth)
    rec = recon.inter_reconstruct(pred, levels, decisions.tu_log2, qp, qpc, bit_depth=seq.bit_depth)
    rec, pred, _, _ = _intra_cus(None, rec, pred, decisions, coeffs, qp, qpc, jnp.float32(0), seq, encode=False)
    return _finish(rec, pred, decisions, ref_ids, seq, fh.qp, "B")


class SeqParams:
    """Sequence-level parameters both sides read (from the config or the sequence header)."""

    def __init__(self, *, bit_depth: int, chroma_qp_offset: int, deblocking: bool, num_refs: int, ctu_size: int,
                 gop_structure: str, search_range: int = 16, subpel: bool = True, coarse_range: int = 0,
                 lambda_scale: float = 1.0, intra_in_inter: bool = True, intra_4x4: bool = True,
                 inter_tu_split: bool = True, nnlf_scaling: bool = False, nnlf_params: tuple[int, ...] = (),
                 nnlf_ensemble: tuple[int, int] = (1, 1)):
        self.bit_depth = bit_depth
        self.chroma_qp_offset = chroma_qp_offset
        self.deblocking = deblocking
        self.num_refs = num_refs
        self.ctu_size = ctu_size
        self.gop_structure = gop_structure
        self.search_range = search_range
        self.subpel = subpel
        self.coarse_range = coarse_range
        self.lambda_scale = lambda_scale
        self.intra_in_inter = intra_in_inter
        self.intra_4x4 = intra_4x4
        self.inter_tu_split = inter_tu_split
        self.nnlf_scaling = nnlf_scaling
        # QP-input offsets of the NN filter's parameter candidates; () = no parameter selection.
        self.nnlf_params = tuple(nnlf_params)
        # (luma, chroma) self-ensemble sizes of the NN filter (runtime.nnlf.filter_planes).
        self.nnlf_ensemble = tuple(nnlf_ensemble)
