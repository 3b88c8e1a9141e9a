"""GOP structure: coding order, frame types, temporal layers, reference lists and QP per frame.

JVET common test conditions (JVET-J1010 section 2.1) shapes, simplified:

* AI: every picture intra.
* LD (low-delay B): picture 0 intra, then B pictures in display order whose two lists both hold
  ``num_refs`` *past* pictures: the previous one, then the most recent GOP anchors (HM's LD
  reference structure, JVET-J1010). Temporal layer: 1 for POC % gop_size == 0 (the "anchor"
  of each group of 4, lowest QP offset), else 2/3 by position (HM LD QP pattern).
* RA: hierarchical dyadic B (gop_size 2..16). Each GOP codes its anchor (the last picture of
  the GOP, layer 0, intra at random-access points) and then the mid-points recursively (layer =
  depth). List 0 holds the closest past decoded pictures, list 1 the closest future ones
  (falling back to past ones). ``intra_period == -1``: only picture 0 is intra.

The result is a plain list of `FrameSpec` in coding order: the encoder and the bitstream read
it; the decoder never needs it (the frame headers carry POC, references and the DPB release
list, so a stream is decodable without knowing the GOP rules).
"""

from __future__ import annotations

import dataclasses

from jaxcodec.config import CodingConfig


@dataclasses.dataclass(frozen=True)
class FrameSpec:
    """One picture to code.

    Attributes:
      poc: display index.
      frame_type: ``"I"`` or ``"B"``.
      temporal_layer: 0..4.
      qp: luma QP of the picture (base QP + layer offset, clipped to 0..51).
      refs_l0, refs_l1: POCs of RefPicList0/1 (empty for I).
      release: POCs that no later picture references: dropped from the DPB after this one.
    """

    poc: int
    frame_type: str
    temporal_layer: int
    qp: int
    refs_l0: tuple[int, ...] = ()
    refs_l1: tuple[int, ...] = ()
    release: tuple[int, ...] = ()


def _is_intra_point(poc: int, cfg: CodingConfig) -> bool:
    if cfg.gop_structure == "ai" or cfg.intra_period == 1:
        return True
    if cfg.intra_period == -1:
        return poc == 0
    return poc % cfg.intra_period == 0


def _ra_order(n: int, gop: int, cfg: CodingConfig) -> list[tuple[int, int]]:
    """(poc, layer) in coding order for a random-access hierarchy over ``n`` pictures."""
    order = [(0, 0)]
    start = 0
    while start < n - 1:
        anchor = min(start + gop, n - 1)
        # An intra period inside the GOP ends it there (the intra picture is the new anchor).
        for p in range(start + 1, anchor + 1):
            if _is_intra_point(p, cfg):
                anchor = p
                break
        order.append((anchor, 0))

        def split(lo: int, hi: int, depth: int):
            if hi - lo < 2:
                return
            mid = (lo + hi) // 2
            order.append((mid, min(depth, 4)))
            split(lo, mid, depth + 1)
            split(mid, hi, depth + 1)

        split(start, anchor, 1)
        start = anchor
    return order


def _ld_layer(poc: int, gop: int) -> int:
    if poc % gop == 0:
        return 1
    return 2 if poc % 2 == 0 else 3


def plan_gop(num_frames: int, cfg: CodingConfig) -> list[FrameSpec]:
    """Coding-order plan of ``num_frames`` pictures under ``cfg`` (see module doc)."""
    if num_frames < 1:
        return []
    if cfg.gop_structure == "ai":
        order = [(p, 0) for p in range(num_frames)]
    elif cfg.gop_structure == "ld":
        order = [(0, 0)] + [(p, _ld_layer(p, cfg.gop_size)) for p in range(1, num_frames)]
    else:
        order = _ra_order(num_frames, cfg.gop_size, cfg)
    decoded: list[int] = []
    specs = []
    for poc, layer in order:
        intra = _is_intra_point(poc, cfg)
        if intra:
            l0, l1, ftype, qp = (), (), "I", min(max(cfg.qp + cfg.intra_qp_offset, 0), 51)
            layer = 0
        else:
            past = sorted((d for d in decoded if d < poc), reverse=True)
            if cfg.gop_structure == "ld":
                # JVET CTC LD (HM encoder_lowdelay_*.cfg): the previous picture, then the
                # previous GOP anchors (layer 1, coded at the lowest QP offset) rather than
                # the other high-QP pictures of the group
                anchors = [d for d in past[1:] if d % cfg.gop_size == 0 or _is_intra_point(d, cfg)]
                past = past[:1] + anchors
            past = past[: cfg.num_refs]
            future = sorted(d for d in decoded if d > poc)[: cfg.num_refs]
            l0 = tuple(past) if past else tuple(future)
            l1 = tuple(future) if (future and cfg.gop_structure == "ra") else l0
            ftype = "B"
            qp = min(max(cfg.qp + cfg.qp_offsets[layer], 0), 51)
        specs.append(FrameSpec(poc, ftype, layer, qp, l0, l1))
        decoded.append(poc)
    # DPB release: a picture leaves after the last picture that references it; for LD/RA the
    # closest pictures keep being candidates, so "last use" is computed from the plan itself.
    last_use = {s.poc: i for i, s in enumerate(specs)}
    for i, s in enumerate(specs):
        for r in s.refs_l0 + s.refs_l1:
            last_use[r] = max(last_use[r], i)
    release: dict[int, list[int]] = {}
    for poc, i in last_use.items():
        release.setdefault(i, []).append(poc)
    return [dataclasses.replace(s, release=tuple(sorted(release.get(i, [])))) for i, s in enumerate(specs)]
