"""Model soups: one wrapper whose weights are the weighted mean of several fine-tunes' weights.

Wortsman et al., "Model soups: averaging weights of multiple fine-tuned models improves accuracy
without increasing inference time" (ICML 2022), eq. 1 (uniform soup) and Recipe 1 (greedy soup,
here left to the user: ``benchmarks/wrappers.py`` on the training clips picks the ingredients).
Averaging is meaningful only for fine-tunes of one common ancestor (their weights lie in one basin);
every shipped wrapper chain starts from an ``init_from`` ancestor that its card names, so
``jaxcodec wrap soup`` takes models of one architecture and refuses any other. The soup costs no
more at decode time than one model, unlike averaging the models' outputs.

    jaxcodec wrap soup models/wrapper_x264_neighbour_qp_norm models/wrapper_x265_neighbour_qp_norm \\
        -o models/wrapper_soup --weights 0.5,0.5
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxcodec.errors import ConfigError, ModelError

# meta keys that describe one training run; a soup records its ingredients instead
_RUN_KEYS = ("steps", "train_config", "train_seconds", "last")
_FILE_KEYS = ("format", "version", "chroma_format", "size_factor")


def soup_weights(n: int, weights: Sequence[float] | None) -> np.ndarray:
    """Normalised non-negative mixing weights (uniform when ``weights`` is None)."""
    if n < 1:
        raise ConfigError("a soup needs at least one model")
    if weights is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(weights, np.float64)
    if w.shape != (n,):
        raise ConfigError(f"{len(w)} soup weights for {n} models")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ConfigError(f"soup weights must be non-negative with a positive sum, got {list(weights)}")
    return w / w.sum()


def _architecture(meta: dict) -> tuple:
    return meta["pre"], meta["post"]


def soup(models: Sequence[tuple[object, dict]], weights: Sequence[float] | None = None, *,
         names: Sequence[str] | None = None):
    """(wrapper, meta) of the weighted mean of ``models`` ((wrapper, meta) pairs, as `load_wrapper`).

    Every parameter is averaged in float32: sum_i w_i * theta_i (Wortsman et al. eq. 1 with
    weights). Models whose pre/post network configs differ raise `ModelError`, because their
    parameter trees do not line up. The returned meta is the first model's, with its run-specific
    fields replaced by ``soup``: the ingredients and their weights.
    """
    import jax
    import jax.numpy as jnp
    from flax import nnx

    w = soup_weights(len(models), weights)
    names = list(names) if names is not None else [f"model {i}" for i in range(len(models))]
    first_wrapper, first_meta = models[0]
    for name, (_, meta) in zip(names[1:], models[1:]):
        if _architecture(meta) != _architecture(first_meta):
            raise ModelError(f"{name}: another network than {names[0]} (pre/post configs differ); "
                             "only fine-tunes of one architecture can be averaged")
        if meta.get("qp_range") != first_meta.get("qp_range"):
            raise ModelError(f"{name}: trained for QPs {meta.get('qp_range')}, {names[0]} for {first_meta.get('qp_range')}")
    states = [nnx.state(wrapper, nnx.Param) for wrapper, _ in models]
    mixed = jax.tree.map(lambda *xs: sum(jnp.float32(wi) * x.astype(jnp.float32) for wi, x in zip(w, xs)).astype(xs[0].dtype),
                         *states)
    out = nnx.clone(first_wrapper)
    nnx.update(out, mixed)
    meta = {k: v for k, v in first_meta.items() if k not in _RUN_KEYS + _FILE_KEYS}
    targets = sorted({m.get("target") for _, m in models if m.get("target")})
    if len(targets) > 1:  # behind which codec a mixed soup runs by default is the user's call
        meta["target"] = "+".join(targets)
    meta["soup"] = [{"model": n, "weight": float(wi), "target": m.get("target")} for n, wi, (_, m) in zip(names, w, models)]
    return out, meta


def soup_files(paths: Sequence[str | Path], out: str | Path, weights: Sequence[float] | None = None) -> dict:
    """Load ``paths``, average them (`soup`) and save the soup to ``out`` (written beside, then renamed)."""
    from wrappers.train import load_wrapper, replace_wrapper

    models = [load_wrapper(p) for p in paths]
    wrapper, meta = soup(models, weights, names=[str(p) for p in paths])
    replace_wrapper(out, wrapper, meta=meta)
    return {"model": str(out), "soup": meta["soup"]}
