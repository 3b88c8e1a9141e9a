"""Wrapped against bare codec on held-out clips: the BD-rates of paper 004 Tables 1-4.

One pass per clip and QP codes the source with the bare codec once; every wrapper in the
comparison then codes its own P output (a post-only wrapper reuses the bare stream, which is
bit-identical to what it would produce, tests/test_wrappers_deploy.py) and runs O on the
decode. Scores against the source:

- SSIM, MS-SSIM and DLM: the loss's own `jaxcodec.metrics.differentiable` scores
  (`wrappers.loss.metric_functions`) over Y, Cb, Cr weighted 4:1:1 (`wrappers.loss.PLANE_WEIGHTS`);
- DLM-NEG: the same DLM with the enhancement gain limit at 1 (VMAF NEG's ``adm_enhn_gain_limit``):
  detail beyond the source's earns nothing. Reported beside DLM, not in ``ALL``: where DLM gains
  much more than DLM-NEG, the wrapper's gain is enhancement (sharpening), not restoration;
- PSNR-YUV (6:1:1, mean of per-frame PSNRs, `runtime.bench.psnr_means`); the RD rows also
  carry PSNR-Y, -U and -V.

``ALL`` is the mean BD-rate over the perceptual scores, as in paper 004 Tables 1-2 (VMAF and
AVQT are not available here). BD-rate: `runtime.bench.bd_rate_or_nan` (pchip, JVET CTC) of
log-rate over the score; negative = the wrapper saves rate; NaN (reason on stderr) where the
curves allow none.
"""

from __future__ import annotations

import functools
import json
from typing import Callable, Mapping, Sequence

PERCEPTUAL = ("ssim", "ms_ssim", "dlm")
METRICS = (*PERCEPTUAL, "dlm_neg", "psnr_yuv")


def make_scorer() -> Callable:
    """``scores(source, decoded) -> dict`` of the clip means of `METRICS` and of PSNR-Y/U/V (jitted once per frame size)."""
    import jax
    import jax.numpy as jnp

    from runtime.bench import psnr_means
    from wrappers.loss import PLANE_WEIGHTS, metric_functions

    ssim, ms_ssim, dlm = metric_functions()
    names = (*PERCEPTUAL, "dlm_neg")
    fns = [jax.jit(f) for f in (ssim, ms_ssim, dlm, functools.partial(dlm, enhancement_gain_limit=1.0))]
    total = sum(PLANE_WEIGHTS)

    def scores(source, decoded) -> dict:
        out = dict.fromkeys(names, 0.0)
        peak = float(source.peak)
        for w, a, b in zip(PLANE_WEIGHTS, source.planes, decoded.planes):
            a = jnp.asarray(a, jnp.float32) / peak
            b = jnp.asarray(b, jnp.float32) / peak
            for name, fn in zip(names, fns):
                out[name] += w / total * float(jnp.mean(fn(a, b)))
        # Per plane too (rows only, no BD-rate): a post filter that helps luma can still wreck
        # chroma on colours its training content lacked, and only these columns show it.
        out.update(psnr_means(source, decoded))
        return out

    return scores


def compare(wrappers: Mapping[str, object], codec, clips, *, qps=(22, 27, 32, 37), frames: int = 30,
            log: Callable[[str], None] = print, ensemble: int | None = None,
            strengths: Sequence[float] | None = None, stream_strengths: Sequence[float] | None = None) -> dict:
    """BD-rates of every wrapper in ``wrappers`` (name -> `wrappers.nets.Wrapper`) against ``codec`` bare.
    ``ensemble``: the wrappers' self-ensemble size (default: `wrappers.deploy.DEFAULT_ENSEMBLE`).
    ``strengths``: score each wrapper's O at every one of these residual scalings (pipelines
    named `strength_name`), from one run of O per clip and QP, instead of at its own strength.
    ``stream_strengths``: instead, score each of these factors and keep, per clip and QP, the one
    an encoder that sees the source picks (`wrappers.strength.pick_stream_strength`); each row
    carries its ``strength``.

    Returns ``{"rd": {clip: {"bare": rows, name: rows}}, "bd_rate": {name: {metric: mean over clips}},
    "bd_rate_per_clip": {name: {clip: {metric: value}}}, "bd_rate_all": {name: mean over PERCEPTUAL}}``.
    Every RD point is also logged as one JSON line.
    """
    from jaxcodec.errors import ConfigError
    from jaxcodec.io import read_video
    from wrappers.deploy import DEFAULT_ENSEMBLE, postprocess, postprocess_float, preprocess, scale_correction

    if strengths is not None and stream_strengths is not None:
        raise ConfigError("score either every factor (strengths) or the encoder's pick (stream_strengths), not both")
    n = DEFAULT_ENSEMBLE if ensemble is None else ensemble
    names = list(wrappers) if strengths is None else [strength_name(w, s) for w in wrappers for s in strengths]

    scores = make_scorer()
    rd: dict = {}
    for clip in clips:
        video = read_video(clip, max_frames=frames)
        src = video.frames
        seconds = src.y.shape[0] / float(video.fps)
        rows: dict = {"bare": [], **{name: [] for name in names}}

        def add(name, qp, result, decoded, row_scores=None, **extra):
            row = {"qp": qp, "kbps": float(result.bits_per_frame.sum()) / seconds / 1000,
                   **(scores(src, decoded) if row_scores is None else row_scores), **extra}
            rows[name].append(row)
            log(json.dumps({"clip": clip, "pipeline": name, **row}))

        for qp in qps:
            bare = codec.encode(src, qp=qp, fps=video.fps)
            add("bare", qp, bare, bare.recon)
            for name, wrapper in wrappers.items():
                coded = bare if wrapper.pre is None else codec.encode(preprocess(wrapper, src, qp, ensemble=n), qp=qp,
                                                                      fps=video.fps)
                if strengths is None and stream_strengths is None:
                    add(name, qp, coded, postprocess(wrapper, coded.recon, qp, ensemble=n, frame_qp=coded.frame_qp))
                    continue
                if stream_strengths is not None:
                    from wrappers.strength import encoder_pick

                    s, by_s = encoder_pick(wrapper, src, coded, qp, stream_strengths, ensemble=n, scores=scores)
                    add(name, qp, coded, None, by_s[s], strength=s)
                    continue
                planes = postprocess_float(wrapper, coded.recon, qp, ensemble=n, frame_qp=coded.frame_qp)
                for s in strengths:
                    add(strength_name(name, s), qp, coded, scale_correction(coded.recon, planes, s))
        rd[clip] = rows
    return {"rd": rd, **summarise(rd, names, clips)}


def strength_name(name: str, strength: float) -> str:
    """Pipeline name of wrapper ``name`` at residual scaling ``strength`` in `compare`."""
    return f"{name} x{strength:g}"


def summarise(rd: Mapping, names, clips) -> dict:
    """BD-rates against ``"bare"`` of the pipelines ``names`` in ``rd`` ({clip: {name: RD rows}}):
    ``bd_rate`` (mean over clips), ``bd_rate_per_clip`` and ``bd_rate_all`` (mean over `PERCEPTUAL`)."""
    import numpy as np

    from runtime.bench import bd_rate_or_nan

    per_clip = {name: {clip: {m: bd_rate_or_nan(rd[clip]["bare"], rd[clip][name], m) for m in METRICS}
                       for clip in clips} for name in names}
    bd = {name: {m: float(np.mean([per_clip[name][c][m] for c in clips])) for m in METRICS} for name in names}
    return {"bd_rate": bd, "bd_rate_per_clip": per_clip,
            "bd_rate_all": {name: float(np.mean([bd[name][m] for m in PERCEPTUAL])) for name in names}}
