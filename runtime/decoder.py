"""`decode(bytes) -> frames`: the jaxcodec decoder.

Parses the container (`runtime.bitstream`), parses each CABAC payload
(`jaxcodec.codec.entropy.syntax.parse_frame`),
reconstructs with the encoder's own functions (`runtime.framecoder.decode_picture`), checks
the MD5 of every reconstructed picture and raises `BitstreamError` on any mismatch, missing
reference or corrupt field. The DPB drops pictures as the frame headers' release lists say
(output pictures are kept apart for display).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from jaxcodec.errors import BitstreamError, ModelError
from jaxcodec.frame import Frame
from runtime import bitstream as bs
from runtime.encoder import PAD
from runtime.framecoder import SeqParams, decode_picture, frame_md5


def _nnlf_model(seq, nnlf_model):
    """The NN loop-filter model the stream names, or a `ModelError` saying which one it needs."""
    from runtime import nnlf as nnlf_lib

    need = seq.nnlf_model.hex()
    if isinstance(nnlf_model, nnlf_lib.NNLFModel):
        model = nnlf_model
    else:
        if not nnlf_model:  # none given: the shipped model the stream names, else the default
            nnlf_model = nnlf_lib.shipped_model_path(seq.nnlf_model) or ""
        try:
            model = nnlf_lib.load_model(nnlf_model)
        except ModelError as e:
            raise ModelError(f"the stream uses the NN loop filter with model {need}, which could not be loaded "
                             f"({e}); pass it with --nnlf-model") from None
    if model.digest != seq.nnlf_model:
        raise ModelError(f"the stream needs NN loop-filter model {need}, but {model.path or 'the given model'} is "
                         f"{model.digest.hex()}; pass the right one with --nnlf-model")
    return model


def decode(data: bytes, *, progress: bool = False, return_fps: bool = False, nnlf_model=None):
    """Decode a whole stream to stacked frames ``(T, H, W)`` in display order
    (``(frames, fps)`` with ``return_fps``).

    ``nnlf_model``: path/name or loaded `runtime.nnlf.NNLFModel` for streams that use the NN
    loop filter (default: the shipped model); its identity must match the sequence header's.
    """
    seq, frames = bs.parse_stream(bytes(data))
    nn_model = _nnlf_model(seq, nnlf_model) if seq.tool_flags & bs.TOOL_NNLF else None
    params = SeqParams(bit_depth=seq.bit_depth, chroma_qp_offset=seq.chroma_qp_offset,
                       deblocking=bool(seq.tool_flags & bs.TOOL_DEBLOCKING), num_refs=seq.num_refs,
                       ctu_size=seq.ctu_size, gop_structure=seq.gop_structure,
                       intra_4x4=bool(seq.tool_flags & bs.TOOL_INTRA_4X4),
                       inter_tu_split=bool(seq.tool_flags & bs.TOOL_INTER_TU_SPLIT),
                       nnlf_scaling=bool(seq.tool_flags & bs.TOOL_NNLF_SCALE), nnlf_params=seq.nnlf_params,
                       nnlf_ensemble=seq.nnlf_ensemble)
    ph, pw = -(-seq.height // PAD) * PAD, -(-seq.width // PAD) * PAD
    dpb: dict[int, tuple] = {}
    out: dict[int, tuple] = {}
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(frames), unit="frame", desc="decode", leave=False)
    for fh, payload in frames:
        refs = fh.refs_l0 + fh.refs_l1
        if len(fh.refs_l0) > seq.num_refs or len(fh.refs_l1) > seq.num_refs:
            raise BitstreamError(f"frame POC {fh.poc}: more references than num_refs={seq.num_refs}")
        missing = [r for r in refs if r not in dpb]
        if missing:
            raise BitstreamError(f"frame POC {fh.poc} references POC {missing[0]}, which is not in the DPB")
        state = decode_picture(fh, payload, dpb, params, (ph, pw))
        if fh.tool_flags & bs.TOOL_NNLF:
            from runtime import nnlf as nnlf_lib
            flags = nnlf_lib.unpack_flags(fh.nnlf, nnlf_lib.ctu_grid((ph, pw), params.ctu_size),
                                          scaling=params.nnlf_scaling, params=len(params.nnlf_params))
            state = nnlf_lib.decode_step(nn_model, state, params, flags)
        rec = state.output
        if frame_md5(rec, seq.height, seq.width, seq.bit_depth) != fh.md5:
            raise BitstreamError(f"MD5 mismatch in frame POC {fh.poc}: the stream is corrupt")
        dpb[fh.poc] = rec
        out[fh.poc] = rec
        for r in fh.release:
            dpb.pop(r, None)
        if bar:
            bar.update(1)
    if bar:
        bar.close()
    dt = np.uint8 if seq.bit_depth == 8 else np.uint16
    h, w = seq.height, seq.width
    order = [out[p] for p in range(seq.num_frames)]
    frames_out = Frame(y=np.stack([r[0][:h, :w] for r in order]).astype(dt),
                       u=np.stack([r[1][:(h + 1) // 2, :(w + 1) // 2] for r in order]).astype(dt),
                       v=np.stack([r[2][:(h + 1) // 2, :(w + 1) // 2] for r in order]).astype(dt),
                       bit_depth=seq.bit_depth)
    return (frames_out, Fraction(seq.fps)) if return_fps else frames_out
