"""Training data for the proxy: GOP-long patch sequences and the target codec's output on them.

Clips: the shipped ``carphone`` and ``bikes``, plus ``generated`` (synthetic moving
textures), ``cartoon`` (rendered animation-like scenes) and ``stills`` (panned natural
photographs) from `jaxcodec.io.synthetic`. ``bigbuckbunny`` is held out for evaluation and is
refused here. Every batch is a pure function of ``(seed, step)``, so a resumed run sees
exactly the batches the killed run would have seen.

The target codec codes each patch sequence on its own (the proxy's GOP follows the
target's: one intra frame, then inter frames). The sequence handed to the codec is two
GOPs long and only the second GOP is kept: the first packet of a stream carries the
stream headers (x264 writes SPS/PPS and a ~600-byte options SEI), which are not a
property of the frame and would bias the fitted rate map of every intra frame.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from jaxcodec.errors import ConfigError, InputError
from jaxcodec.frame import Frame, make_frame
from jaxcodec.io.synthetic import synthetic_clips

HELD_OUT = ("bigbuckbunny",)


def load_pool(clips: tuple[str, ...], *, max_frames: int = 120) -> list[Frame]:
    """Load the training clips (stacked uint8 Frames). Refuses held-out clips."""
    from jaxcodec.io import read_video

    pool = []
    for name in clips:
        if name in HELD_OUT:
            raise ConfigError(f"clip {name!r} is held out for evaluation and must not be used for training")
        generated = synthetic_clips(name, frames=24)
        if generated is not None:
            pool += generated
        else:
            video = read_video(name, max_frames=max_frames)
            if video.frames.bit_depth != 8:
                raise InputError(f"{name}: the proxy trains on 8-bit clips")
            pool.append(video.frames)
    if not pool:
        raise ConfigError("no training clips given")
    return pool


class PatchBatch(NamedTuple):
    """One batch: ``B`` patch sequences of ``2 * gop`` frames (the codec needs the lead-in GOP).

    Attributes:
      frames: stacked uint8 Frame ``(B, 2*gop, P, P)`` (chroma P/2).
      qp: int32 ``(B,)`` QP of each sequence.
    """

    frames: Frame
    qp: np.ndarray


def sample_batch(pool: list[Frame], *, seed: int, step: int, batch: int, patch: int, gop: int, qp_range: tuple[int, int]) -> PatchBatch:
    """Batch of step ``step``: random clip, start frame, 2-aligned crop and QP per sequence."""
    rng = np.random.default_rng([seed, step])
    length = 2 * gop
    ys, us, vs, qps = [], [], [], []
    for _ in range(batch):
        clip = pool[int(rng.integers(len(pool)))]
        t_len, h, w = clip.y.shape
        if t_len < length or h < patch or w < patch:
            raise InputError(f"training clip of {t_len} frames {w}x{h} is too small for {length} frames of {patch}x{patch}")
        t0 = int(rng.integers(0, t_len - length + 1))
        y0 = int(rng.integers(0, (h - patch) // 2 + 1)) * 2
        x0 = int(rng.integers(0, (w - patch) // 2 + 1)) * 2
        ys.append(np.asarray(clip.y[t0:t0 + length, y0:y0 + patch, x0:x0 + patch]))
        us.append(np.asarray(clip.u[t0:t0 + length, y0 // 2:(y0 + patch) // 2, x0 // 2:(x0 + patch) // 2]))
        vs.append(np.asarray(clip.v[t0:t0 + length, y0 // 2:(y0 + patch) // 2, x0 // 2:(x0 + patch) // 2]))
        qps.append(int(rng.integers(qp_range[0], qp_range[1] + 1)))
    return PatchBatch(make_frame(np.stack(ys), np.stack(us), np.stack(vs)), np.asarray(qps, np.int32))


class TargetBatch(NamedTuple):
    """Source and target-codec output for the kept GOP of every sequence.

    Attributes:
      source: uint8 Frame ``(B, gop, P, P)``.
      recon: the target's decoded frames I_C, same shape.
      bits: int64 ``(B, gop)`` target bits per frame R_C.
      qp: int32 ``(B,)``.
      codec_seconds: wall time spent in the target codec for this batch.
    """

    source: Frame
    recon: Frame
    bits: np.ndarray
    qp: np.ndarray
    codec_seconds: float


def run_target(codec, batch: PatchBatch, *, gop: int) -> TargetBatch:
    """Encode every sequence with the target codec (outside jit) and keep its second GOP."""
    t0 = time.perf_counter()
    recons, bits = [], []
    for i in range(batch.qp.shape[0]):
        result = codec.encode(batch.frames[i], qp=int(batch.qp[i]))
        recons.append(result.recon[gop:2 * gop])
        bits.append(np.asarray(result.bits_per_frame)[gop:2 * gop])
    seconds = time.perf_counter() - t0
    src = batch.frames.replace(y=batch.frames.y[:, gop:], u=batch.frames.u[:, gop:], v=batch.frames.v[:, gop:])
    rec = make_frame(np.stack([r.y for r in recons]), np.stack([r.u for r in recons]), np.stack([r.v for r in recons]))
    return TargetBatch(src, rec, np.stack(bits).astype(np.int64), batch.qp, seconds)
