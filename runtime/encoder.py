"""`encode(frames, config) -> (bytes, recon)`: the jaxcodec encoder driver.

Pictures are coded in the GOP's coding order (`jaxcodec.codec.gop.plan_gop`). With
``config.frame_threads > 1`` pictures whose references are already reconstructed are coded
concurrently on a thread pool (jitted XLA calls and the numba CABAC writer release the GIL); the stream is
assembled in coding order afterwards, so the bytes do not depend on the thread count.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import threading
import time
from fractions import Fraction

import numpy as np

from jaxcodec.codec.gop import plan_gop
from jaxcodec.config import CodingConfig
from jaxcodec.errors import InputError
from jaxcodec.frame import Frame, crop_frame, pad_frame
from runtime import bitstream as bs
from runtime.framecoder import SeqParams, code_picture, frame_md5

PAD = 8  # padding to the smallest CU (not the CTU) keeps the coded area small


@dataclasses.dataclass
class EncodeStats:
    bits_per_frame: np.ndarray  # display order
    seconds: float


def seq_params(config: CodingConfig, bit_depth: int) -> SeqParams:
    return SeqParams(bit_depth=bit_depth, chroma_qp_offset=config.chroma_qp_offset, deblocking=config.deblocking,
                     num_refs=config.num_refs, ctu_size=config.ctu_size, gop_structure=config.gop_structure,
                     search_range=config.search_range, subpel=config.subpel_refine,
                     coarse_range=config.coarse_search_range, lambda_scale=config.lambda_scale,
                     intra_in_inter=config.intra_in_inter, intra_4x4=config.intra_4x4,
                     inter_tu_split=config.inter_tu_split, nnlf_scaling=config.nnlf and config.nnlf_scaling,
                     nnlf_params=config.nnlf_params if config.nnlf and len(config.nnlf_params) > 1 else (),
                     nnlf_ensemble=tuple(config.nnlf_ensemble) if config.nnlf else (1, 1))


def _lambda(spec, config: CodingConfig, bit_depth: int) -> float:
    """The picture's SSE-domain Lagrangian, as `runtime.framecoder.code_picture` computes it."""
    from jaxcodec.codec import quant
    qp = quant.qp_prime(spec.qp, bit_depth=bit_depth)
    return float(quant.lambda_from_qp(int(qp), frame_type="I" if spec.frame_type == "I" else "B",
                                      temporal_layer=spec.temporal_layer,
                                      low_delay=config.gop_structure == "ld")) * config.lambda_scale


def encode(frames: Frame, config: CodingConfig, *, fps: Fraction = Fraction(25), progress: bool = False,
           stats: dict | None = None, on_picture=None, nnlf_force: bool | None = None) -> tuple[bytes, Frame]:
    """Encode stacked frames ``(T, H, W)`` (uint8/uint16) with ``config``.

    Returns the stream bytes and the reconstruction (display order, the input's size and dtype),
    which equals what `runtime.decoder.decode` returns for those bytes.

    ``on_picture(poc, state, orig)``, if given, is called with each picture's final
    `PictureState` and its padded source planes (training data for in-loop filters).
    With ``config.nnlf`` the NN loop filter (`runtime.nnlf`) runs after deblocking;
    ``nnlf_force`` True / False overrides the encoder's flag decision with all on / all off.
    """
    if frames.chroma_format != "420":
        raise InputError(f"only 4:2:0 input is supported, got {frames.chroma_format}")
    if frames.y.ndim != 3:
        raise InputError("encode expects stacked frames (T, H, W)")
    nn_model = None
    if config.nnlf:
        from runtime import nnlf as nnlf_lib
        nn_model = nnlf_lib.load_model(config.nnlf_model)
    t0 = time.perf_counter()
    n, height, width = frames.y.shape
    bd = frames.bit_depth
    padded = pad_frame(frames, PAD)
    planes = [tuple(np.asarray(p[i]) for p in (padded.y, padded.u, padded.v)) for i in range(n)]
    seq = seq_params(config, bd)
    plan = plan_gop(n, config)
    tools = (bs.TOOL_DEBLOCKING if config.deblocking else 0) | (bs.TOOL_SUBPEL if config.subpel_refine else 0)
    tools |= bs.TOOL_NNLF if nn_model is not None else 0
    tools |= bs.TOOL_NNLF_SCALE if nn_model is not None and seq.nnlf_scaling else 0
    tools |= bs.TOOL_NNLF_PARAM if nn_model is not None and seq.nnlf_params else 0
    tools |= bs.TOOL_NNLF_ENSEMBLE if nn_model is not None and seq.nnlf_ensemble != (1, 1) else 0
    tools |= bs.TOOL_INTRA_4X4 if config.intra_4x4 else 0
    tools |= bs.TOOL_INTER_TU_SPLIT if config.inter_tu_split else 0
    header = bs.SequenceHeader(width, height, bd, "420", Fraction(fps), config.gop_structure, config.gop_size,
                               config.intra_period, config.num_refs, config.ctu_size, config.min_cu_size, tools,
                               config.chroma_qp_offset, config.qp, n, nn_model.digest if nn_model else b"",
                               seq.nnlf_params if nn_model is not None else (),
                               seq.nnlf_ensemble if nn_model is not None else (1, 1))

    dpb: dict[int, tuple] = {}
    done = {s.poc: threading.Event() for s in plan}
    results: dict[int, bytes] = {}
    lock = threading.Lock()

    def job(spec):
        for r in spec.refs_l0 + spec.refs_l1:
            done[r].wait()
        with lock:
            refs = {r: dpb[r] for r in set(spec.refs_l0 + spec.refs_l1)}
        state, payload = code_picture(planes[spec.poc], spec, refs, seq)
        frame_tools, flags = tools & ~(bs.TOOL_NNLF | bs.SEQ_ONLY_TOOLS), b""
        if nn_model is not None:
            state, nn_flags = nnlf_lib.encode_step(nn_model, state, seq, planes[spec.poc],
                                                   lambda_=_lambda(spec, config, bd), force=nnlf_force,
                                                   block=config.nnlf_block_params)
            if nn_flags.any_on:
                frame_tools, flags = frame_tools | bs.TOOL_NNLF, nnlf_lib.pack_flags(nn_flags, scaling=seq.nnlf_scaling,
                                                                                    params=len(seq.nnlf_params))
        if on_picture is not None:
            on_picture(spec.poc, state, planes[spec.poc])
        rec = state.output
        fh = bs.FrameHeader(spec.poc, spec.frame_type, spec.qp, spec.temporal_layer, frame_tools, spec.refs_l0,
                            spec.refs_l1, spec.release, frame_md5(rec, height, width, bd), flags)
        with lock:
            dpb[spec.poc] = rec
        done[spec.poc].set()
        return bs.write_frame(fh, payload)

    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=n, unit="frame", desc="encode", leave=False)
    threads = max(1, config.frame_threads)
    if threads == 1:
        for spec in plan:
            results[spec.poc] = job(spec)
            if bar:
                bar.update(1)
    else:
        # Submission in coding order and waiting on references keeps it deadlock-free as long
        # as the pool can hold every in-flight dependency chain: a picture only waits on ones
        # submitted before it, which are running or done.
        with cf.ThreadPoolExecutor(threads) as pool:
            futs = {spec.poc: pool.submit(job, spec) for spec in plan}
            for spec in plan:
                results[spec.poc] = futs[spec.poc].result()
                if bar:
                    bar.update(1)
    if bar:
        bar.close()
    chunks = [results[s.poc] for s in plan]
    stream = bs.write_sequence_header(header) + b"".join(chunks)
    recon_planes = [dpb[p] for p in range(n)]
    dt = frames.y.dtype
    recon = Frame(y=np.stack([r[0] for r in recon_planes]).astype(dt), u=np.stack([r[1] for r in recon_planes]).astype(dt),
                  v=np.stack([r[2] for r in recon_planes]).astype(dt), bit_depth=bd)
    recon = crop_frame(recon, height, width)
    if stats is not None:
        bits = np.zeros(n, np.int64)
        for s, c in zip(plan, chunks):
            bits[s.poc] = 8 * len(c)
        bits[plan[0].poc] += 8 * (len(stream) - sum(len(c) for c in chunks))
        stats["bits_per_frame"] = bits
        stats["seconds"] = time.perf_counter() - t0
    return stream, recon
