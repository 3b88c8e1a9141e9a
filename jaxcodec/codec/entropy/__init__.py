"""Entropy coding: CABAC engine (`engine`), MV prediction (`mvpred`) and the frame syntax (`syntax`).

    from jaxcodec.codec.entropy import FrameSyntaxInfo, write_frame, parse_frame
    payload, ctx = write_frame(decisions, coeffs, FrameSyntaxInfo(width=176, height=144, slice_type="I", qp=32))
    decisions2, coeffs2, ctx2 = parse_frame(payload, info)
"""

from jaxcodec.codec.entropy.syntax import (
    NUM_CONTEXTS,
    BitCounter,
    FrameSyntaxInfo,
    count_quadtree_bits,
    init_contexts,
    parse_frame,
    random_frame,
    write_frame,
)

__all__ = ["NUM_CONTEXTS", "BitCounter", "FrameSyntaxInfo", "count_quadtree_bits", "init_contexts", "parse_frame",
           "random_frame", "write_frame"]
