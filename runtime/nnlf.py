"""NN in-loop filter in the codec loop (paper 001 section III-A and Fig. 8; paper 002 II-C).

Harmonisation with deblocking (paper 001 Fig. 8): both filters read the same picture.
Deblocking runs on the unfiltered reconstruction as before; the NN reads the *unfiltered*
reconstruction, the prediction, the boundary strength, QP and the prediction type and
outputs ``rec + residual``. Per component the picture then takes the NN output where it is
enabled and the deblocked samples elsewhere::

    unfiltered ─┬─ deblock ───────────────┐
                └─ NN (integer runtime) ──┴─ per CTU: flag ? NN : deblocked ─> output (DPB, MD5)

The encoder chooses, per component, a frame mode (off / all CTUs / CTU flags) and the CTU
flags by distortion against the source plus lambda times the flag bits
(:func:`decide_flags`); the choice travels bit-packed in the frame (:func:`pack_flags`,
`runtime.bitstream` frame ``nnlf`` section) and the decoder follows it. With residual scaling
(paper 001 III-C, sequence tool ``TOOL_NNLF_SCALE``) an enabled component takes
``D + s (N - D)`` instead of ``N`` (:func:`scale_residual`), ``s`` a least-squares byte the
encoder sends per picture. With parameter selection (paper 001 III-B, sequence tool
``TOOL_NNLF_PARAM``) the encoder runs the filter once per QP-input candidate (the block QP plus
each offset of the sequence's list) and picks one candidate for luma and one shared by both
chroma planes (:func:`decide_flags`); the decoder runs only the chosen ones. Both sides run the
filter through the integer runtime (`runtime.nnint.execute`; with the sequence tool
``TOOL_NNLF_ENSEMBLE`` as the rounded mean over 2, 4 or 8 symmetries of the picture,
:func:`filter_planes`), whose float paths are
provably exact, so the output does not depend on jit, thread count or summation order.

Model file (``.jxnnlf``, little endian)::

    magic b"JXNNLF\\0\\0" | version u32 | hlen u32 | JSON header {"luma_len", "chroma_len", ...}
    | luma graph (runtime.nnint.serialize bytes) | chroma graph | sha256 of everything above

The model identity written in the sequence header is the first 16 bytes of the file's
sha256 (:attr:`NNLFModel.digest`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import threading
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxcodec.errors import BitstreamError, ModelError
from jaxcodec.nn import ensemble
from runtime.nnint import serialize
from runtime.nnint.graph import Graph

MODEL_MAGIC = b"JXNNLF\0\0"
MODEL_VERSION = 1
REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models"
DEFAULT_MODEL = "nnlf_medium"
MODEL_FILE = "model.jxnnlf"
DIGEST_BYTES = 16

#: Frame modes per component (2 bits each in the frame's NNLF section). MODE_BLOCK (paper 001
#: III-B, Cost_4) is MODE_CTU with a QP-input candidate per CTU; it needs parameter selection,
#: and the two chroma planes share its per-CTU candidate (both MODE_BLOCK, or one of them off).
MODE_OFF, MODE_ALL, MODE_CTU, MODE_BLOCK = 0, 1, 2, 3

#: Residual scale (paper 001 III-C): one unsigned byte per enabled component, in units of
#: 2**-SCALE_BITS, so 0..~4 in steps of 1/64; SCALE_ONE keeps the NN output as it is.
SCALE_BITS = 6
SCALE_ONE = 1 << SCALE_BITS
SCALE_MAX = 255
SCALE_FIELD_BITS = 8

#: Parameter selection (paper 001 III-B): QP-input offsets a picture may choose from. The paper
#: lists {q, q-5, q-10} for low and {q, q-5, q+5} for high temporal layers; one list for every
#: picture keeps the syntax simple; on our training clips -5 (weaker) wins on many inter
#: pictures, whose references were filtered already, and +5 on some intra pictures.
DEFAULT_PARAM_OFFSETS = (0, -5, 5)
#: Largest QP input a model sees (the QP plane is normalised by 2**LOG2_QP).
QP_INPUT_MAX = 63

#: Self-ensemble (`jaxcodec.nn.ensemble`): symmetries in the order a size-n ensemble takes them.
ENSEMBLE_ORDER = ensemble.ORDER
ENSEMBLE_SIZES = ensemble.SIZES

# log2 of the divisor that normalises each input plane (jaxcodec.nn.loopfilter.normalise):
# samples / 2**bit_depth, bS / 2, QP / 64, prediction type / 2.
LOG2_BS, LOG2_QP, LOG2_IPB = 1, 6, 1


# ---------------------------------------------------------------------------------------------
# Model file
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(eq=False)
class NNLFModel:
    """Integer luma and chroma graphs of one NN loop filter and its identity."""

    luma: Graph
    chroma: Graph
    digest: bytes
    meta: dict
    path: str = ""
    _executors: dict = dataclasses.field(default_factory=dict, repr=False)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def executor(self, which: str, *, jit: bool = True):
        """Jitted (or not) `runtime.nnint.execute.Executor` of the ``luma``/``chroma`` graph."""
        from runtime.nnint import execute
        with self._lock:
            key = (which, jit)
            if key not in self._executors:
                self._executors[key] = execute.make_executor(getattr(self, which), jit=jit)
            return self._executors[key]


def model_to_bytes(luma: Graph, chroma: Graph, meta: dict | None = None) -> bytes:
    lb, cb = serialize.to_bytes(luma), serialize.to_bytes(chroma)
    return serialize.pack_file(MODEL_MAGIC, MODEL_VERSION, {**(meta or {}), "luma_len": len(lb), "chroma_len": len(cb)},
                               lb + cb)


def save_model(path: str | Path, luma: Graph, chroma: Graph, meta: dict | None = None) -> bytes:
    """Write the model file; returns its digest (the stream's model identity)."""
    from jaxcodec.io import atomic_write_bytes
    data = model_to_bytes(luma, chroma, meta)
    atomic_write_bytes(Path(path), data)
    return hashlib.sha256(data).digest()[:DIGEST_BYTES]


def model_from_bytes(data: bytes, *, name: str = "model") -> NNLFModel:
    meta, graphs = serialize.unpack_file(data, MODEL_MAGIC, MODEL_VERSION, name=name, what="NN loop-filter model")
    try:
        ll, cl = int(meta["luma_len"]), int(meta["chroma_len"])
    except (ValueError, KeyError, TypeError) as e:
        raise ModelError(f"{name}: malformed NN loop-filter model header ({e})") from None
    if ll < 0 or cl < 0 or ll + cl != len(graphs):
        raise ModelError(f"{name}: graph lengths {ll} + {cl} do not match the file")
    luma = serialize.from_bytes(graphs[:ll], name=f"{name} (luma)")
    chroma = serialize.from_bytes(graphs[ll:], name=f"{name} (chroma)")
    if len(luma.inputs) != 5 or len(chroma.inputs) != 5 or len(luma.outputs) != 1 or len(chroma.outputs) != 1:
        raise ModelError(f"{name}: an NNLF model needs 5 inputs and 1 output per graph")
    return NNLFModel(luma, chroma, hashlib.sha256(data).digest()[:DIGEST_BYTES], meta, name)


def resolve_model_path(name_or_path: str | Path = "") -> Path:
    """``""`` -> the shipped model; a name -> ``models/<name>/model.jxnnlf``; else a path (a
    directory holding ``model.jxnnlf`` or the file itself)."""
    s = str(name_or_path) or DEFAULT_MODEL
    p = Path(s)
    if not p.exists() and p.parent == Path(".") and not p.suffix:
        p = MODELS_DIR / s
    return p / MODEL_FILE if p.is_dir() else p


def shipped_model_path(digest: bytes) -> Path | None:
    """The shipped model file whose identity is ``digest``, or None.

    Lets the decoder follow the stream: a stream made with any shipped model decodes without
    ``--nnlf-model``, whichever model is the encoder's default. Searched: every
    ``models/<name>/model.jxnnlf``, then the earlier versions a model directory keeps beside it
    (``models/<name>/<anything>.jxnnlf``), so that retraining a shipped model does not orphan
    the streams its previous version made."""
    current = sorted(MODELS_DIR.glob(f"*/{MODEL_FILE}"))
    earlier = sorted(p for p in MODELS_DIR.glob("*/*.jxnnlf") if p.name != MODEL_FILE)
    for p in current + earlier:
        try:
            if hashlib.sha256(p.read_bytes()).digest()[:DIGEST_BYTES] == digest:
                return p
        except OSError:
            continue
    return None


_CACHE: dict[tuple, NNLFModel] = {}
_CACHE_LOCK = threading.Lock()


def load_model(name_or_path: str | Path = "") -> NNLFModel:
    """Load (cached by path, size and mtime, so jitted executors are reused) an NNLF model.

    Raises `ModelError` if the file is missing, of another version or corrupt.
    """
    p = resolve_model_path(name_or_path)
    if not p.is_file():
        raise ModelError(f"NN loop-filter model file not found: {p}")
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = model_from_bytes(p.read_bytes(), name=str(p))
            _CACHE[key].path = str(p)
        return _CACHE[key]


# ---------------------------------------------------------------------------------------------
# Inputs (integer planes) and filtering
# ---------------------------------------------------------------------------------------------

class FilterInputs(NamedTuple):
    """Integer model inputs of one picture (numpy): luma planes ``(H, W)``, chroma ``(H/2, W/2)``."""

    rec: tuple       # unfiltered y, u, v
    pred: tuple      # prediction y, u, v
    bs: np.ndarray   # bS 0..2 per luma sample
    qp: np.ndarray   # luma QP per luma sample
    ipb: np.ndarray  # 0 intra, 1 uni-, 2 bi-prediction per luma sample


def bs_plane(bs_ver: np.ndarray, bs_hor: np.ndarray) -> np.ndarray:
    """Per-sample bS: the strength of the nearest vertical / horizontal edge within two samples
    (max of both). ``bs_ver[i, j]`` is the edge left of 4x4 unit (i, j), ``bs_hor`` the one above."""
    bv, bh = np.asarray(bs_ver, np.int32), np.asarray(bs_hor, np.int32)
    h4, w4 = bv.shape

    def along(b, axis):
        n = b.shape[axis]
        nxt = np.concatenate([np.take(b, np.arange(1, n), axis), np.zeros_like(np.take(b, [0], axis))], axis)
        # offsets 0, 1 inside a unit: its own (left/top) edge; 2, 3: the next unit's edge
        parts = [b, b, nxt, nxt]
        stacked = np.stack(parts, axis + 1)
        shape = list(b.shape)
        shape[axis] *= 4
        return stacked.reshape(shape)

    v = np.repeat(along(bv, 1), 4, axis=0)
    h = np.repeat(along(bh, 0), 4, axis=1)
    assert v.shape == (4 * h4, 4 * w4)
    return np.maximum(v, h)


def filter_inputs(state, seq) -> FilterInputs:
    """Model inputs from a `runtime.framecoder.PictureState` (identical in encoder and decoder)."""
    import jax.numpy as jnp
    from jaxcodec.codec.blocks import MODE_INTRA, PRED_BI
    from jaxcodec.codec.deblock import boundary_strength

    d = state.decisions
    info = boundary_strength(d, ref_ids=jnp.asarray(state.ref_ids))
    bs = bs_plane(np.asarray(info.bs_ver), np.asarray(info.bs_hor))
    up = lambda a: np.repeat(np.repeat(np.asarray(a, np.int32), 4, 0), 4, 1)  # noqa: E731
    intra = np.asarray(d.pred_mode) == MODE_INTRA
    ipb = np.where(intra, 0, np.where(np.asarray(d.inter_dir) == PRED_BI, 2, 1))
    return FilterInputs(tuple(np.asarray(p, np.int32) for p in state.unfiltered),
                        tuple(np.asarray(p, np.int32) for p in state.pred), bs, up(d.qp), up(ipb))


def luma_arrays(x: FilterInputs, bit_depth: int):
    """(plane, log2 divisor) of each luma-model input, NHWC-ready order of LumaFilter."""
    return [(x.rec[0], bit_depth), (x.pred[0], bit_depth), (x.bs, LOG2_BS), (x.qp, LOG2_QP), (x.ipb, LOG2_IPB)]


def chroma_arrays(x: FilterInputs, bit_depth: int):
    """(plane, log2 divisor) of each chroma-model input (ChromaFilter order)."""
    uv = np.stack(x.rec[1:], -1)
    puv = np.stack(x.pred[1:], -1)
    return [(uv, bit_depth), (puv, bit_depth), (x.bs[::2, ::2], LOG2_BS), (x.qp[::2, ::2], LOG2_QP),
            (x.rec[0], bit_depth)]


def _nhwc(a):
    a = np.asarray(a)
    return a[None, :, :, None] if a.ndim == 2 else a[None]


def with_qp_offset(x: FilterInputs, offset: int) -> FilterInputs:
    """``x`` with ``offset`` added to its QP input plane, clipped to ``0..QP_INPUT_MAX`` (the
    filter-strength knob of paper 001 III-B; the coded QPs are untouched)."""
    if offset == 0:
        return x
    return x._replace(qp=np.clip(np.asarray(x.qp, np.int32) + offset, 0, QP_INPUT_MAX).astype(np.int32))


def filter_planes(model: NNLFModel, x: FilterInputs, *, bit_depth: int, jit: bool = True,
                  qp_offset: tuple[int, int] = (0, 0), run: tuple[bool, bool] = (True, True),
                  sizes: tuple[int, int] = (1, 1)) -> tuple:
    """NN-filtered planes (y, u, v), int32, from integer inputs, through the integer runtime only
    (the kernel of :func:`filter_picture`; identical samples with ``jit`` True or False).
    ``qp_offset``: (luma, chroma) offsets of the QP input (:func:`with_qp_offset`).
    ``run``: (luma, chroma) models to run; a model not run gives None planes.
    ``sizes``: (luma, chroma) self-ensemble sizes (`jaxcodec.nn.ensemble`: the filter runs
    on the first 1, 2, 4 or 8 symmetries of ``ENSEMBLE_ORDER``; the outputs' rounded mean)."""
    from runtime.nnint import planes as nnplanes

    outs = []
    for which, go, off, n in (("luma", run[0], qp_offset[0], sizes[0]),
                              ("chroma", run[1], qp_offset[1], sizes[1])):
        if not go:
            outs.append(None)
            continue
        ensemble.check_size(n)
        xo = with_qp_offset(x, off)
        arrays = luma_arrays(xo, bit_depth) if which == "luma" else chroma_arrays(xo, bit_depth)
        graph: Graph = getattr(model, which)
        q = graph.nodes[graph.outputs[0]].q
        run_model = model.executor(which, jit=jit)
        members = []
        for k in ENSEMBLE_ORDER[:n]:
            ins = [nnplanes.to_input(_nhwc(ensemble.symmetry(a, k)), s, graph.nodes[i])
                   for (a, s), i in zip(arrays, graph.inputs)]
            (out,) = run_model(*ins)
            members.append(ensemble.inverse_symmetry(nnplanes.to_samples(np.asarray(out)[0], q, bit_depth), k))
        outs.append(ensemble.rounded_mean(members).astype(np.int32))
    y, uv = outs
    return (None if y is None else y[..., 0],) + ((None, None) if uv is None else (uv[..., 0], uv[..., 1]))


def filter_picture(model: NNLFModel, state, seq, *, jit: bool = True, qp_offset: tuple[int, int] = (0, 0)) -> tuple:
    """NN-filtered planes (y, u, v), int32, of one picture (paper 001 Fig. 8: the NN reads the
    unfiltered reconstruction, not the deblocked one).

    Args:
      model: a loaded `NNLFModel`.
      state: the picture's `runtime.framecoder.PictureState` (unfiltered rec, pred, decisions).
      seq: `runtime.framecoder.SeqParams` (bit depth).
      jit: run the jitted executor (default) or the plain one; both give identical samples.
      qp_offset: (luma, chroma) offsets of the QP input (parameter selection, paper 001 III-B).
    """
    return filter_planes(model, filter_inputs(state, seq), bit_depth=seq.bit_depth, jit=jit, qp_offset=qp_offset)


# ---------------------------------------------------------------------------------------------
# Flags: encoder decision, packing, application
# ---------------------------------------------------------------------------------------------

class NNLFFlags(NamedTuple):
    """Per component (Y, U, V): frame mode (MODE_OFF / MODE_ALL / MODE_CTU / MODE_BLOCK), the CTU
    flags (bool ``(ceil(H/ctu), ceil(W/ctu))``, luma CTU grid) used when the mode is MODE_CTU or
    MODE_BLOCK, and the residual scale (``SCALE_ONE`` = the NN output as it is;
    :func:`scale_residual`); then the (luma, chroma) index into the sequence's QP-input
    candidates (parameter selection) of MODE_ALL / MODE_CTU components, and the (luma, chroma)
    per-CTU candidate indices (int ``grid`` arrays, or None = all 0) of MODE_BLOCK components."""

    modes: tuple[int, int, int]
    ctu: tuple[np.ndarray, np.ndarray, np.ndarray]
    scale: tuple[int, int, int] = (SCALE_ONE,) * 3
    param: tuple[int, int] = (0, 0)
    block_param: tuple[np.ndarray | None, np.ndarray | None] = (None, None)

    @property
    def any_on(self) -> bool:
        return any(m != MODE_OFF for m in self.modes)

    def block_index(self, c: int) -> np.ndarray:
        """Per-CTU candidate index of component ``c`` (0 where unused)."""
        b = self.block_param[min(c, 1)]
        return np.zeros(np.shape(self.ctu[0]), np.int64) if b is None else np.asarray(b, np.int64)

    def used_params(self, c: int) -> set[int]:
        """Candidate indices whose filtered planes component ``c`` of this picture reads."""
        m = self.modes[c]
        if m == MODE_OFF:
            return set()
        if m == MODE_BLOCK:
            return {int(k) for k in np.unique(self.block_index(c)[self.ctu[c]])}
        return {self.param[min(c, 1)]}


def ctu_grid(shape, ctu_size: int) -> tuple[int, int]:
    """CTU grid of a padded luma picture ``(H, W)``."""
    return -(-shape[0] // ctu_size), -(-shape[1] // ctu_size)


def all_off(grid) -> NNLFFlags:
    z = np.zeros(grid, bool)
    return NNLFFlags((MODE_OFF,) * 3, (z, z, z))


def param_bits(n: int) -> int:
    """Bits of one per-CTU candidate index among ``n`` candidates (fixed length)."""
    return max(n - 1, 0).bit_length()


def _ctu_sse(a, b, size: int, grid) -> np.ndarray:
    d = (np.asarray(a, np.int64) - np.asarray(b, np.int64)) ** 2
    gh, gw = grid
    pad = np.zeros((gh * size, gw * size), np.int64)
    pad[:d.shape[0], :d.shape[1]] = d
    return pad.reshape(gh, size, gw, size).sum((1, 3))


def _ctu_mask(on: np.ndarray, size: int, shape) -> np.ndarray:
    return np.repeat(np.repeat(on, size, 0), size, 1)[:shape[0], :shape[1]]


def scale_residual(nn, deblocked, scale: int, *, bit_depth: int) -> np.ndarray:
    """Residual scaling, paper 001 section III-C eq. 3: ``D + s (N - D)`` with ``D`` the
    deblocked and ``N`` the NN-filtered samples, ``s = scale / 2**SCALE_BITS``.

    Integer only (rounded by adding half and shifting right, then clipped to the sample range),
    so encoder and decoder agree exactly. ``scale == SCALE_ONE`` returns ``N`` unchanged.
    """
    f = np.asarray(nn, np.int32)
    if scale == SCALE_ONE:
        return f
    d = np.asarray(deblocked, np.int64)
    out = d + ((scale * (f - d) + (1 << (SCALE_BITS - 1))) >> SCALE_BITS)
    return np.clip(out, 0, (1 << bit_depth) - 1).astype(np.int32)


def ls_scale(nn, deblocked, orig, mask: np.ndarray | None = None) -> int:
    """Least-squares residual scale (paper 001 III-C): ``s = <O - D, N - D> / <N - D, N - D>``
    over ``mask`` (all samples if None), in units of ``2**-SCALE_BITS``, rounded and clipped
    to ``0..SCALE_MAX``. Exact integer sums: the encoder's choice is reproducible too."""
    d = np.asarray(deblocked, np.int64)
    r = np.asarray(nn, np.int64) - d
    e = np.asarray(orig, np.int64) - d
    if mask is not None:
        r, e = r[mask], e[mask]
    num, den = int((e * r).sum()), int((r * r).sum())
    if den == 0:
        return SCALE_ONE
    s = (2 * num * SCALE_ONE + den) // (2 * den)
    return int(min(max(s, 0), SCALE_MAX))


def select_blocks(planes, index: np.ndarray, on: np.ndarray, size: int, shape) -> np.ndarray:
    """One plane made of ``planes[index[ctu]]`` on each enabled CTU (0 elsewhere); ``planes``
    entries a picture does not use may be None (the decoder filters only what it reads)."""
    out = np.zeros(shape, np.int32)
    for k in np.unique(np.asarray(index)[on]):
        out = np.where(_ctu_mask(on & (index == k), size, shape), np.asarray(planes[int(k)], np.int32), out)
    return out


def _component_choice(nn_c, s_db, orig_c, *, size: int, grid, lambda_: float, scale_bits: int):
    """Best (cost, cost off, mode, ctu flags) of one component's filtered plane ``nn_c`` against
    the deblocked one, whose per-CTU SSE is ``s_db``. Costs are ``SSE + lambda_ * bits``; the 2
    mode bits are the same for every mode."""
    nbits = grid[0] * grid[1]
    s_nn = _ctu_sse(nn_c, orig_c, size, grid)
    on = s_nn < s_db
    cost = {MODE_OFF: float(s_db.sum()),
            MODE_ALL: float(s_nn.sum()) + scale_bits * lambda_,
            MODE_CTU: float(np.where(on, s_nn, s_db).sum()) + (scale_bits + nbits) * lambda_}
    m = min(cost, key=lambda k: (cost[k], k))
    return cost[m], cost[MODE_OFF], m, (on if m == MODE_CTU else np.zeros(grid, bool))


def _scale_candidates(trial, best, nn_of, db_c, orig_c, mask_of, *, scaling: bool):
    """Residual-scale search shared by the picture- and block-level choices: 1 (the plain NN
    output), the least-squares scale over the whole picture, and the least-squares scale over
    the CTUs the better of those two enables. ``trial(s)`` -> a choice tuple (cost first, scale
    last); ``nn_of(choice)`` the filtered plane it used, ``mask_of(choice)`` its enabled samples
    (None: all)."""
    if not scaling:
        return best
    s = ls_scale(nn_of(best), db_c, orig_c)
    if s != SCALE_ONE:
        best = min(best, trial(s), key=lambda t: t[0])
    mask = mask_of(best)
    if mask is not False:
        s = ls_scale(nn_of(best), db_c, orig_c, mask)
        if s != best[-1]:
            best = min(best, trial(s), key=lambda t: t[0])
    return best


def _decide_component(nn_c, db_c, orig_c, *, size: int, grid, lambda_: float, scaling: bool, bit_depth: int):
    """Best ``(cost, cost off, mode, ctu flags, scale)`` of one component (scales:
    :func:`_scale_candidates`)."""
    kw = dict(size=size, grid=grid, lambda_=lambda_, scale_bits=SCALE_FIELD_BITS if scaling else 0)
    s_db = _ctu_sse(db_c, orig_c, size, grid)

    def trial(s):
        return _component_choice(scale_residual(nn_c, db_c, s, bit_depth=bit_depth), s_db, orig_c, **kw) + (s,)

    def mask_of(t):
        return False if t[2] == MODE_OFF else _ctu_mask(t[3], size, np.shape(nn_c)) if t[2] == MODE_CTU else None

    return _scale_candidates(trial, trial(SCALE_ONE), lambda t: nn_c, db_c, orig_c, mask_of, scaling=scaling)


def _decide_block_luma(cands_y, db_y, orig_y, *, size: int, grid, lambda_: float, scaling: bool, bit_depth: int):
    """Cost_4 of paper 001 III-B for luma: each CTU off, or on with its cheapest candidate (an on
    flag per CTU, plus ``param_bits`` per enabled CTU). Returns ``(cost, mode, on, index, scale)``."""
    pb = param_bits(len(cands_y)) * lambda_
    s_db = _ctu_sse(db_y, orig_y, size, grid)
    fixed = (grid[0] * grid[1] + (SCALE_FIELD_BITS if scaling else 0)) * lambda_

    def trial(s):
        sse = np.stack([_ctu_sse(scale_residual(c, db_y, s, bit_depth=bit_depth), orig_y, size, grid) for c in cands_y])
        k = sse.argmin(0)
        best = sse.min(0) + pb
        on = best < s_db
        return float(np.where(on, best, s_db).sum()) + fixed, MODE_BLOCK, on, np.where(on, k, 0), s

    shape = np.shape(db_y)
    mix = lambda t: select_blocks(cands_y, t[3], np.ones(grid, bool), size, shape)  # noqa: E731
    mask = lambda t: _ctu_mask(t[2], size, shape) if t[2].any() else False  # noqa: E731
    return _scale_candidates(trial, trial(SCALE_ONE), mix, db_y, orig_y, mask, scaling=scaling)


def _decide_block_chroma(cands, db, orig, *, size: int, grid, lambda_: float, scaling: bool, bit_depth: int):
    """Cost_4 for chroma: U and V share each CTU's candidate (paper 001 III-B), each with its own
    on flag; one of them may be off for the whole picture. Returns ``(cost, modes (u, v), on
    (u, v), index, scales (u, v))``; scales: 1, then each plane's least-squares scale over the
    mixture of the CTUs' candidates (whole picture, then the enabled CTUs)."""
    pb = param_bits(len(cands)) * lambda_
    sb = SCALE_FIELD_BITS if scaling else 0
    nb = grid[0] * grid[1]
    s_db = [_ctu_sse(db[c], orig[c], size, grid) for c in (1, 2)]

    def trial(su, sv, use):
        """use: (u, v) in block mode."""
        sse = [np.stack([_ctu_sse(scale_residual(cd[c], db[c], s, bit_depth=bit_depth), orig[c], size, grid)
                         for cd in cands]) if u else None for c, s, u in ((1, su, use[0]), (2, sv, use[1]))]
        # per candidate: each plane's cheaper of on / off; a CTU with some plane on pays the index
        per = [np.minimum(e, d) if e is not None else np.broadcast_to(d, (len(cands),) + d.shape)
               for e, d in zip(sse, s_db)]
        k = (per[0] + per[1]).argmin(0)
        take = lambda a: np.take_along_axis(a, k[None], 0)[0]  # noqa: E731
        on = [take(e) < d if e is not None else np.zeros(grid, bool) for e, d in zip(sse, s_db)]
        on_cost = take(per[0]) + take(per[1]) + pb
        off_cost = s_db[0] + s_db[1]
        any_on = (on[0] | on[1]) & (on_cost < off_cost)
        on = [o & any_on for o in on]
        cost = float(np.where(any_on, on_cost, off_cost).sum()) + (nb + sb) * lambda_ * (use[0] + use[1])
        modes = tuple(MODE_BLOCK if u else MODE_OFF for u in use)
        return cost, modes, tuple(on), np.where(any_on, k, 0), (su if use[0] else SCALE_ONE, sv if use[1] else SCALE_ONE)

    best = None
    for use in ((True, True), (True, False), (False, True)):
        t = trial(SCALE_ONE, SCALE_ONE, use)
        if scaling:
            for masked in (False, True):
                s = []
                for j, c in enumerate((1, 2)):
                    if not use[j]:
                        s.append(SCALE_ONE)
                        continue
                    m = select_blocks([cd[c] for cd in cands], t[3], np.ones(grid, bool), size, np.shape(db[c]))
                    on = t[2][j]
                    if masked and not on.any():
                        s.append(t[4][j])
                        continue
                    s.append(ls_scale(m, db[c], orig[c], _ctu_mask(on, size, np.shape(db[c])) if masked else None))
                if tuple(s) != t[4]:
                    t = min(t, trial(*s, use), key=lambda x: x[0])
        best = t if best is None or t[0] < best[0] else best
    return best


def decide_flags(nn, deblocked, orig, *, ctu_size: int, lambda_: float, force: bool | None = None,
                 scaling: bool = False, bit_depth: int, block: bool = True) -> NNLFFlags:
    """Encoder choice (paper 002 II-C) per component: off, all CTUs on, or per-CTU flags, by
    ``SSE + lambda_ * bits``; a CTU is on where the NN output has the lower SSE.

    With ``scaling`` (paper 001 III-C) each enabled component also carries a residual scale
    (8 bits; :func:`_decide_component`).

    ``nn`` is one tuple of filtered planes (y, u, v), or with parameter selection (paper 001
    III-B) a list of them, one per QP-input candidate: Cost_0 .. Cost_3 of the paper are the
    picture-level choices (luma takes its cheapest candidate, both chroma planes the candidate
    cheapest for the two together: they share one parameter), Cost_4 the block level
    (MODE_BLOCK: each CTU off or on with its own candidate, :func:`_decide_block_luma`,
    :func:`_decide_block_chroma`); ``block`` False leaves Cost_4 out.

    ``force`` True / False: every component MODE_ALL / MODE_OFF (tests, benchmarks).
    """
    cands = list(nn) if isinstance(nn, list) else [nn]
    grid = ctu_grid(np.shape(cands[0][0]), ctu_size)
    if force is not None:
        on = np.ones(grid, bool)
        return NNLFFlags((MODE_ALL if force else MODE_OFF,) * 3, (on,) * 3)
    kw = dict(grid=grid, lambda_=lambda_, scaling=scaling, bit_depth=bit_depth)
    choice = [[_decide_component(cand[c], deblocked[c], orig[c], size=ctu_size if c == 0 else ctu_size // 2, **kw)
               for c in range(3)] for cand in cands]
    il = min(range(len(cands)), key=lambda i: (choice[i][0][0], i))
    ic = min(range(len(cands)), key=lambda i: (choice[i][1][0] + choice[i][2][0], i))
    best = [choice[il][0], choice[ic][1], choice[ic][2]]
    off = [b[1] for b in best]
    modes = [b[2] for b in best]
    ctu = [b[3] for b in best]
    scale = [b[4] if b[2] != MODE_OFF else SCALE_ONE for b in best]
    param = [il, ic]
    bparam: list = [None, None]
    cost = [best[0][0], best[1][0] + best[2][0]]
    if block and len(cands) > 1:
        bl = _decide_block_luma([c[0] for c in cands], deblocked[0], orig[0], size=ctu_size, **kw)
        if bl[0] < cost[0]:
            cost[0], modes[0], ctu[0], bparam[0], scale[0], param[0] = bl[0], bl[1], bl[2], bl[3], bl[4], 0
        bc = _decide_block_chroma(cands, deblocked, orig, size=ctu_size // 2, **kw)
        if bc[0] < cost[1]:
            cost[1], bparam[1], param[1] = bc[0], bc[3], 0
            modes[1:], ctu[1:], scale[1:] = bc[1], bc[2], bc[4]
    gain = off[0] + off[1] + off[2] - cost[0] - cost[1]
    # The section itself (length u16 + modes byte, + the parameter byte) costs 24 (32) bits.
    overhead = 24 + (8 if len(cands) > 1 else 0)
    if not any(m != MODE_OFF for m in modes) or gain <= overhead * lambda_:
        return all_off(grid)
    if modes[0] == MODE_OFF:
        param[0] = 0
    if modes[1] == MODE_OFF and modes[2] == MODE_OFF:
        param[1] = 0
    return NNLFFlags(tuple(modes), tuple(c if m in (MODE_CTU, MODE_BLOCK) else np.zeros(grid, bool)
                                         for c, m in zip(ctu, modes)),
                     tuple(s if m != MODE_OFF else SCALE_ONE for s, m in zip(scale, modes)), tuple(param), tuple(bparam))


def apply_flags(flags: NNLFFlags, nn, deblocked, *, ctu_size: int, bit_depth: int) -> tuple:
    """Output planes: the (residual-scaled) NN samples where enabled, deblocked elsewhere (int32).

    ``nn``: one tuple of filtered planes (y, u, v), or a list of them indexed by QP-input
    candidate (parameter selection), where candidates the flags do not use may be None."""
    cands = nn if isinstance(nn, list) else None
    out = []
    for c in range(3):
        db = np.asarray(deblocked[c], np.int32)
        m = flags.modes[c]
        if m == MODE_OFF:
            out.append(db)
            continue
        size = ctu_size if c == 0 else ctu_size // 2
        if m == MODE_BLOCK:
            plane = select_blocks([None if cd is None else cd[c] for cd in (cands or [nn])], flags.block_index(c),
                                  flags.ctu[c], size, db.shape)
        else:
            plane = cands[flags.param[min(c, 1)]][c] if cands is not None else nn[c]
        f = scale_residual(plane, db, flags.scale[c], bit_depth=bit_depth)
        if m == MODE_ALL:
            out.append(f)
        else:
            out.append(np.where(_ctu_mask(flags.ctu[c], size, db.shape), f, db))
    return tuple(out)


def _block_bits(flags: NNLFFlags, comps: tuple[int, ...], pbits: int) -> list[int]:
    """Block-level part of one MODE_BLOCK group (luma, or the chroma planes): per CTU in raster
    order, the on flag of each plane in ``comps``, then the candidate index (``pbits`` bits, MSB
    first) when some plane is on."""
    out: list[int] = []
    idx = flags.block_index(comps[0]).reshape(-1)
    ons = [flags.ctu[c].reshape(-1) for c in comps]
    for i in range(idx.size):
        on = [bool(o[i]) for o in ons]
        out += on
        if any(on):
            out += [(int(idx[i]) >> (pbits - 1 - b)) & 1 for b in range(pbits)]
    return out


def pack_flags(flags: NNLFFlags, *, scaling: bool = False, params: int = 0) -> bytes:
    """modes byte (2 bits per component, Y in the low bits) | with ``params`` (the sequence's
    candidate count, parameter selection on), the parameter byte (luma index in the low nibble,
    chroma index in the high one) | with ``scaling``, one scale byte per enabled component in
    Y, U, V order | bits, MSB first, padded with zeros to a byte: the CTU flags of the MODE_CTU
    components in raster order, concatenated, then the MODE_BLOCK groups (luma, then the
    chroma planes that are MODE_BLOCK; :func:`_block_bits`)."""
    head = flags.modes[0] | flags.modes[1] << 2 | flags.modes[2] << 4
    param = bytes([flags.param[0] | flags.param[1] << 4]) if params > 1 else b""
    scales = bytes(flags.scale[c] for c in range(3) if flags.modes[c] != MODE_OFF) if scaling else b""
    bits = [flags.ctu[c].reshape(-1).astype(np.uint8) for c in range(3) if flags.modes[c] == MODE_CTU]
    pb = param_bits(params)
    for comps in ((0,), tuple(c for c in (1, 2) if flags.modes[c] == MODE_BLOCK)):
        if comps and flags.modes[comps[0]] == MODE_BLOCK:
            bits.append(np.array(_block_bits(flags, comps, pb), np.uint8))
    body = np.packbits(np.concatenate(bits)).tobytes() if bits else b""
    return bytes([head]) + param + scales + body


def unpack_flags(data: bytes, grid, *, scaling: bool = False, params: int = 0) -> NNLFFlags:
    """Inverse of :func:`pack_flags` for a picture with CTU grid ``grid``; raises
    `BitstreamError` on a bad mode, MODE_BLOCK without parameter selection or beside a chroma
    plane in another enabled mode, a parameter index outside the ``params`` candidates or a
    section of the wrong length."""
    if len(data) < 1:
        raise BitstreamError("empty NNLF flag section")
    head = data[0]
    modes = tuple((head >> (2 * c)) & 3 for c in range(3))
    if head >> 6:
        raise BitstreamError(f"bad NNLF modes byte 0x{head:02x}")
    if MODE_BLOCK in modes and params < 2:
        raise BitstreamError(f"NNLF block-level parameters (modes byte 0x{head:02x}) without parameter selection")
    if MODE_BLOCK in modes[1:] and not all(m in (MODE_OFF, MODE_BLOCK) for m in modes[1:]):
        raise BitstreamError(f"NNLF chroma planes mix block-level parameters with another mode (0x{head:02x})")
    n = grid[0] * grid[1]
    k = sum(m == MODE_CTU for m in modes)
    ns = sum(m != MODE_OFF for m in modes) if scaling else 0
    npb = 1 if params > 1 else 0
    start = 1 + npb + ns
    if MODE_BLOCK not in modes and len(data) != start + (k * n + 7) // 8:
        raise BitstreamError(f"NNLF flag section has {len(data)} bytes, expected {start + (k * n + 7) // 8}")
    if len(data) < start + (k * n + 7) // 8:
        raise BitstreamError(f"NNLF flag section has {len(data)} bytes, expected at least {start + (k * n + 7) // 8}")
    param = (data[1] & 15, data[1] >> 4) if npb else (0, 0)
    if max(param) >= max(params, 1):
        raise BitstreamError(f"NNLF parameter index {max(param)} out of range ({params} candidates)")
    it = iter(data[1 + npb:start])
    scale = tuple(next(it) if scaling and m != MODE_OFF else SCALE_ONE for m in modes)
    bits = np.unpackbits(np.frombuffer(data[start:], np.uint8)).astype(bool)
    ctus, j = [], 0
    for m in modes:
        if m == MODE_CTU:
            ctus.append(bits[j * n:(j + 1) * n].reshape(grid))
            j += 1
        else:
            ctus.append(np.zeros(grid, bool))
    pos, block = k * n, [None, None]
    pb = param_bits(params)
    for g, comps in enumerate(((0,), tuple(c for c in (1, 2) if modes[c] == MODE_BLOCK))):
        if not comps or modes[comps[0]] != MODE_BLOCK:
            continue
        on = np.zeros((len(comps), n), bool)
        idx = np.zeros(n, np.int64)
        for i in range(n):
            if pos + len(comps) > bits.size:
                raise BitstreamError("NNLF flag section truncated in its block-level parameters")
            on[:, i] = bits[pos:pos + len(comps)]
            pos += len(comps)
            if on[:, i].any():
                if pos + pb > bits.size:
                    raise BitstreamError("NNLF flag section truncated in its block-level parameters")
                idx[i] = int(sum(int(b) << (pb - 1 - t) for t, b in enumerate(bits[pos:pos + pb])))
                pos += pb
                if idx[i] >= params:
                    raise BitstreamError(f"NNLF block parameter index {idx[i]} out of range ({params} candidates)")
        for j, c in enumerate(comps):
            ctus[c] = on[j].reshape(grid)
        block[g] = idx.reshape(grid)
    if MODE_BLOCK in modes and len(data) != start + (pos + 7) // 8:
        raise BitstreamError(f"NNLF flag section has {len(data)} bytes, expected {start + (pos + 7) // 8}")
    return NNLFFlags(modes, tuple(ctus), scale, param, tuple(block))


def _offsets(seq) -> tuple[int, ...]:
    return tuple(seq.nnlf_params) or (0,)


def encode_step(model: NNLFModel, state, seq, orig, *, lambda_: float, force: bool | None = None,
                block: bool = True):
    """Encoder side: filter (once per QP-input candidate of ``seq.nnlf_params``, paper 001
    III-B), decide, apply. Returns ``(state with the final output, flags)``.
    ``seq.nnlf_scaling`` switches residual scaling (paper 001 III-C); ``block`` the per-CTU
    candidate choice (Cost_4)."""
    offsets = _offsets(seq) if force is None else (0,)
    x = filter_inputs(state, seq)
    cands = [filter_planes(model, x, bit_depth=seq.bit_depth, qp_offset=(o, o), sizes=seq.nnlf_ensemble)
             for o in offsets]
    flags = decide_flags(cands, state.deblocked, orig, ctu_size=seq.ctu_size, lambda_=lambda_, force=force,
                         scaling=seq.nnlf_scaling, bit_depth=seq.bit_depth, block=block)
    out = apply_flags(flags, cands, state.deblocked, ctu_size=seq.ctu_size, bit_depth=seq.bit_depth)
    return state._replace(output=out), flags


def decode_step(model: NNLFModel, state, seq, flags: NNLFFlags):
    """Decoder side: follow the flags. The NN runs only for the candidates the picture reads:
    once with picture-level parameters, once per candidate some CTU chose with block-level
    ones (luma and chroma models separately)."""
    if not flags.any_on:
        return state
    offsets = _offsets(seq)
    luma, chroma = flags.used_params(0), flags.used_params(1) | flags.used_params(2)
    x = filter_inputs(state, seq)
    cands: list = [None] * len(offsets)
    for k in sorted(luma | chroma):
        cands[k] = filter_planes(model, x, bit_depth=seq.bit_depth, qp_offset=(offsets[k], offsets[k]),
                                 run=(k in luma, k in chroma), sizes=seq.nnlf_ensemble)
    return state._replace(output=apply_flags(flags, cands, state.deblocked, ctu_size=seq.ctu_size,
                                             bit_depth=seq.bit_depth))
