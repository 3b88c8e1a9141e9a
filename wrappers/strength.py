"""Residual scaling of a trained postprocessor, picked on training clips (paper 001 section III-C, eq. 3).

    jaxcodec wrap strength models/wrapper_x264_align -o models/wrapper_x264_align_scaled \\
        --codec x264 --clips carphone bikes

NNVC's loop filter scales its correction, ``y = x + s * (NN(x) - x)``, with a factor the
encoder fits per picture and signals. A wrapped stream must stay standard, so the coded pictures
have no room for one. Two places remain: the model (`wrappers.nets.NetConfig.strength`, one
factor for all content, a deployment setting like the self-ensemble size, picked by `sweep`
below), and the container's tag, where `wrap encode --stream-strength` records the factor its
encoder picked for that stream (`encoder_pick`, one per stream, not per picture). O is trained with eq. 4's fixed weights; the
scores the wrapper is judged by (`wrappers.evaluate`) weigh detail (DLM) against structure
(SSIM, MS-SSIM) differently, and the factor moves along that trade-off without retraining.

`sweep` codes every clip bare once per QP, runs O once, applies every candidate factor to O's
float output (`wrappers.deploy.scale_correction`: what the deployed decoder does) and scores
each as `benchmarks/wrappers.py` does. `select_strength` takes the factor with the lowest ALL
BD-rate among those that keep most (`DEFAULT_KEEP`) of the unscaled network's SSIM and MS-SSIM
savings (paper 004's claim, and the project's target, is a saving in every score); 1 (the
network as trained) is always a candidate. Pick it on training clips only: a factor chosen on
the clips it is reported on is tuned on the test set.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Callable

from jaxcodec.errors import ConfigError, ModelError

DEFAULT_GRID = tuple(round(1.0 + 0.1 * i, 1) for i in range(11))  # 1.0, 1.1, ..., 2.0
MUST_SAVE = ("ssim", "ms_ssim")
DEFAULT_KEEP = 0.8
"""Share of the unscaled network's SSIM and MS-SSIM savings a factor must keep on the sweep's
clips. Scaling trades structure for detail, and structure savings are the part that shrinks on
unseen content: each temporal wrapper shipped so far, behind x264 or x265, kept 38-47 % of its
training clips' SSIM saving and 18-34 % of their MS-SSIM saving on held-out bigbuckbunny
(models/wrapper_x26*_temporal.md onwards), so a factor that spends most of the margin on the
training clips leaves none on new ones."""


def parse_grid(text: str, option: str = "--grid") -> tuple[float, ...]:
    """``"1,1.2,1.4"`` -> sorted unique factors, with 1 added; each in (0, 4] (`NetConfig.strength`).
    ``option``: the command-line option named in errors."""
    from wrappers.nets import check_strength

    try:
        values = {float(v) for v in text.split(",") if v.strip()}
    except ValueError:
        raise ConfigError(f"{option}: not a comma-separated list of numbers: {text!r}") from None
    return tuple(sorted({check_strength(v, f"{option}: each strength") for v in values} | {1.0}))


def select_strength(bd_rate: dict[float, dict[str, float]], bd_all: dict[float, float], *,
                    keep: float = DEFAULT_KEEP) -> float:
    """The factor with the lowest ALL among those that keep at least ``keep`` of the unscaled
    network's SSIM and MS-SSIM savings (``bd_rate[1.0]``, which must be savings: negative); 1
    when nothing else qualifies. NaN BD-rates never qualify."""
    if not 0.0 < keep <= 1.0:
        raise ConfigError(f"keep must be in (0, 1], got {keep}")
    base = bd_rate[1.0]

    def ok(s):
        return math.isfinite(bd_all[s]) and all(
            math.isfinite(bd_rate[s][m]) and base[m] < 0 and bd_rate[s][m] <= keep * base[m] for m in MUST_SAVE)

    candidates = [s for s in bd_all if s == 1.0 or ok(s)]
    return min(candidates, key=lambda s: (bd_all[s] if math.isfinite(bd_all[s]) else math.inf, abs(s - 1.0)))


def pick_stream_strength(scores: Mapping[float, Mapping[str, float]]) -> float:
    """The factor an encoder that sees the source picks for one stream (one clip at one QP): the
    one with the highest DLM among those whose SSIM and MS-SSIM are at least factor 1's (``scores``:
    factor -> that stream's clip-mean scores, `wrappers.evaluate.make_scorer`; 1 must be there).

    Paper 001 (section III-C) lets the encoder fit the factor per picture because it alone sees
    the source. A fixed factor picked on other clips walks the trained network's DLM/structure
    frontier the same way on every clip, and spends structure where the content gains none (the
    held-out clip, models/wrapper_x264_cartoon_hd.md); this rule never gives back structure
    against the network as trained, so every move it makes is a gain on DLM at no cost elsewhere.
    Ties go to the factor nearest 1."""
    if 1.0 not in scores:
        raise ConfigError("the strength candidates must hold 1 (the network as trained): the rule compares with it")
    one = scores[1.0]

    def ok(s):
        return all(math.isfinite(scores[s][m]) and scores[s][m] >= one[m] for m in (*MUST_SAVE, "dlm"))

    return max((s for s in scores if s == 1.0 or ok(s)), key=lambda s: (scores[s]["dlm"], -abs(s - 1.0)))


def encoder_pick(wrapper, source, coded, qp: int, grid: Sequence[float], *, ensemble: int | None = None,
                 scores: Callable | None = None) -> tuple[float, dict]:
    """What an encoder that sees ``source`` picks for its stream ``coded`` (a codec's
    `EncodeResult`: recon and per-frame QPs): O's output at every factor of ``grid``, scored
    against the source (``scores``: `wrappers.evaluate.make_scorer`'s), through
    `pick_stream_strength`. Returns ``(factor, {factor: scores})``."""
    from wrappers.deploy import DEFAULT_ENSEMBLE, postprocess_float, scale_correction
    from wrappers.evaluate import make_scorer

    if wrapper is None or wrapper.post is None:
        raise ModelError("this wrapper has no postprocessor: there is no correction to scale")
    scores = make_scorer() if scores is None else scores
    n = DEFAULT_ENSEMBLE if ensemble is None else ensemble
    planes = postprocess_float(wrapper, coded.recon, qp, ensemble=n, frame_qp=coded.frame_qp)
    by_s = {s: scores(source, scale_correction(coded.recon, planes, s)) for s in grid}
    return pick_stream_strength(by_s), by_s


def sweep(wrapper, codec, clips: Sequence[str], strengths: Sequence[float], *, qps=(22, 27, 32, 37),
          frames: int = 30, ensemble: int | None = None, keep: float = DEFAULT_KEEP,
          log: Callable[[str], None] = print) -> dict:
    """BD-rates of ``wrapper``'s O at every factor of ``strengths`` against ``codec`` bare on
    ``clips`` (`wrappers.evaluate.compare` with ``strengths``). Returns ``{"bd_rate": {s: {metric:
    value}}, "bd_rate_all": {s: value}, "strength": the selected factor}``."""
    from wrappers.evaluate import compare, strength_name

    if wrapper.post is None:
        raise ModelError("this wrapper has no postprocessor: there is no correction to scale")
    res = compare({"O": wrapper}, codec, clips, qps=qps, frames=frames, log=log, ensemble=ensemble,
                  strengths=strengths)
    bd = {s: res["bd_rate"][strength_name("O", s)] for s in strengths}
    bd_all = {s: res["bd_rate_all"][strength_name("O", s)] for s in strengths}
    return {"bd_rate": bd, "bd_rate_all": bd_all, "strength": select_strength(bd, bd_all, keep=keep)}


def strength_files(model: str | Path, out: str | Path, *, codec_name: str, clips: Sequence[str],
                   strengths: Sequence[float] = DEFAULT_GRID, qps=(22, 27, 32, 37), frames: int = 30,
                   ensemble: int | None = None, keep: float = DEFAULT_KEEP,
                   log: Callable[[str], None] = print) -> dict:
    """Sweep ``model``'s strength behind ``codec_name`` on ``clips`` and write it to ``out`` with
    the selected factor (the network's weights unchanged; meta.json records the sweep)."""
    from wrappers.deploy import get_codec
    from wrappers.train import check_output_model, load_wrapper, replace_wrapper

    check_output_model(out)  # before the sweep, not after minutes of it
    wrapper, meta = load_wrapper(model)
    # The sweep scales the network as trained: a factor already set is replaced, not compounded.
    if wrapper.post is not None:
        wrapper.post.strength = 1.0
    if 1.0 not in strengths:
        raise ConfigError("the strength grid must hold 1 (the network as trained): the rule compares with it")
    res = sweep(wrapper, get_codec(codec_name), clips, strengths, qps=qps, frames=frames, ensemble=ensemble,
                keep=keep, log=log)
    chosen = res["strength"]
    wrapper.post.strength = chosen
    meta = {**meta, "post": {**meta["post"], "strength": chosen}}
    meta["strength_sweep"] = {
        "model": str(model), "codec": codec_name, "clips": list(clips), "qps": list(qps), "frames": frames,
        "rule": f"lowest ALL keeping >= {keep:g} of strength 1's SSIM and MS-SSIM savings",
        "bd_rate": {f"{s:g}": {**res["bd_rate"][s], "all": res["bd_rate_all"][s]} for s in strengths},
    }
    for k in ("format", "version", "chroma_format", "size_factor"):
        meta.pop(k, None)
    replace_wrapper(out, wrapper, meta=meta)
    return {"model": str(out), "strength": chosen,
            "bd_rate_all": {f"{s:g}": res["bd_rate_all"][s] for s in strengths}}
