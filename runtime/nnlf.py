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
filter through the integer runtime (`runtime.nnint.execute`), whose float paths are
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
from runtime.nnint import serialize
from runtime.nnint.graph import Graph

MODEL_MAGIC = b"JXNNLF\0\0"
MODEL_VERSION = 1
REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models"
DEFAULT_MODEL = "nnlf_medium"
MODEL_FILE = "model.jxnnlf"
DIGEST_BYTES = 16

#: Frame modes per component (2 bits each in the frame's NNLF section).
MODE_OFF, MODE_ALL, MODE_CTU = 0, 1, 2

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
                  qp_offset: tuple[int, int] = (0, 0)) -> tuple:
    """NN-filtered planes (y, u, v), int32, from integer inputs, through the integer runtime only
    (the kernel of :func:`filter_picture`; identical samples with ``jit`` True or False).
    ``qp_offset``: (luma, chroma) offsets of the QP input (:func:`with_qp_offset`)."""
    from runtime.nnint import planes as nnplanes

    outs = []
    for which, arrays in (("luma", luma_arrays(with_qp_offset(x, qp_offset[0]), bit_depth)),
                          ("chroma", chroma_arrays(with_qp_offset(x, qp_offset[1]), bit_depth))):
        graph: Graph = getattr(model, which)
        ins = [nnplanes.to_input(_nhwc(a), s, graph.nodes[i]) for (a, s), i in zip(arrays, graph.inputs)]
        (out,) = model.executor(which, jit=jit)(*ins)
        q = graph.nodes[graph.outputs[0]].q
        outs.append(nnplanes.to_samples(np.asarray(out)[0], q, bit_depth).astype(np.int32))
    y, uv = outs
    return y[..., 0], uv[..., 0], uv[..., 1]


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
    """Per component (Y, U, V): frame mode (MODE_OFF / MODE_ALL / MODE_CTU), the CTU flags
    (bool ``(ceil(H/ctu), ceil(W/ctu))``, luma CTU grid) used when the mode is MODE_CTU, and the
    residual scale (``SCALE_ONE`` = the NN output as it is; :func:`scale_residual`); then the
    (luma, chroma) index into the sequence's QP-input candidates (parameter selection)."""

    modes: tuple[int, int, int]
    ctu: tuple[np.ndarray, np.ndarray, np.ndarray]
    scale: tuple[int, int, int] = (SCALE_ONE,) * 3
    param: tuple[int, int] = (0, 0)

    @property
    def any_on(self) -> bool:
        return any(m != MODE_OFF for m in self.modes)


def ctu_grid(shape, ctu_size: int) -> tuple[int, int]:
    """CTU grid of a padded luma picture ``(H, W)``."""
    return -(-shape[0] // ctu_size), -(-shape[1] // ctu_size)


def all_off(grid) -> NNLFFlags:
    z = np.zeros(grid, bool)
    return NNLFFlags((MODE_OFF,) * 3, (z, z, z))


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


def _decide_component(nn_c, db_c, orig_c, *, size: int, grid, lambda_: float, scaling: bool, bit_depth: int):
    """Best ``(cost, cost off, mode, ctu flags, scale)`` of one component. With ``scaling`` the
    scale candidates are 1 (the plain NN output), the least-squares scale over the whole picture,
    and the least-squares scale over the CTUs the better of those two enables."""
    kw = dict(size=size, grid=grid, lambda_=lambda_, scale_bits=SCALE_FIELD_BITS if scaling else 0)
    s_db = _ctu_sse(db_c, orig_c, size, grid)

    def trial(s):
        return _component_choice(scale_residual(nn_c, db_c, s, bit_depth=bit_depth), s_db, orig_c, **kw) + (s,)

    best = trial(SCALE_ONE)
    if scaling:
        s = ls_scale(nn_c, db_c, orig_c)
        if s != SCALE_ONE:
            best = min(best, trial(s), key=lambda t: t[0])
        if best[2] != MODE_OFF:
            mask = _ctu_mask(best[3], size, np.shape(nn_c)) if best[2] == MODE_CTU else None
            s = ls_scale(nn_c, db_c, orig_c, mask)
            if s != best[4]:
                best = min(best, trial(s), key=lambda t: t[0])
    return best


def decide_flags(nn, deblocked, orig, *, ctu_size: int, lambda_: float, force: bool | None = None,
                 scaling: bool = False, bit_depth: int) -> NNLFFlags:
    """Encoder choice (paper 002 II-C) per component: off, all CTUs on, or per-CTU flags, by
    ``SSE + lambda_ * bits``; a CTU is on where the NN output has the lower SSE.

    With ``scaling`` (paper 001 III-C) each enabled component also carries a residual scale
    (8 bits; :func:`_decide_component`).

    ``nn`` is one tuple of filtered planes (y, u, v), or with parameter selection (paper 001
    III-B) a list of them, one per QP-input candidate: luma takes its cheapest candidate, and
    both chroma planes the candidate cheapest for the two together (they share one parameter).

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
    gain = sum(b[1] - b[0] for b in best)
    modes = tuple(b[2] for b in best)
    # The section itself (length u16 + modes byte, + the parameter byte) costs 24 (32) bits.
    overhead = 24 + (8 if len(cands) > 1 else 0)
    if not any(m != MODE_OFF for m in modes) or gain <= overhead * lambda_:
        return all_off(grid)
    return NNLFFlags(modes, tuple(b[3] for b in best), tuple(b[4] if b[2] != MODE_OFF else SCALE_ONE for b in best),
                     (il if modes[0] != MODE_OFF else 0, ic if modes[1] != MODE_OFF or modes[2] != MODE_OFF else 0))


def apply_flags(flags: NNLFFlags, nn, deblocked, *, ctu_size: int, bit_depth: int) -> tuple:
    """Output planes: the (residual-scaled) NN samples where enabled, deblocked elsewhere (int32)."""
    out = []
    for c in range(3):
        db = np.asarray(deblocked[c], np.int32)
        m = flags.modes[c]
        if m == MODE_OFF:
            out.append(db)
            continue
        f = scale_residual(nn[c], db, flags.scale[c], bit_depth=bit_depth)
        if m == MODE_ALL:
            out.append(f)
        else:
            size = ctu_size if c == 0 else ctu_size // 2
            out.append(np.where(_ctu_mask(flags.ctu[c], size, db.shape), f, db))
    return tuple(out)


def pack_flags(flags: NNLFFlags, *, scaling: bool = False, params: int = 0) -> bytes:
    """modes byte (2 bits per component, Y in the low bits) | with ``params`` (the sequence's
    candidate count, parameter selection on), the parameter byte (luma index in the low nibble,
    chroma index in the high one) | with ``scaling``, one scale byte per enabled component in
    Y, U, V order | CTU flags of the MODE_CTU components in raster order, concatenated,
    bit-packed (MSB first)."""
    head = flags.modes[0] | flags.modes[1] << 2 | flags.modes[2] << 4
    param = bytes([flags.param[0] | flags.param[1] << 4]) if params > 1 else b""
    scales = bytes(flags.scale[c] for c in range(3) if flags.modes[c] != MODE_OFF) if scaling else b""
    bits = [flags.ctu[c].reshape(-1) for c in range(3) if flags.modes[c] == MODE_CTU]
    body = np.packbits(np.concatenate(bits).astype(np.uint8)).tobytes() if bits else b""
    return bytes([head]) + param + scales + body


def unpack_flags(data: bytes, grid, *, scaling: bool = False, params: int = 0) -> NNLFFlags:
    """Inverse of :func:`pack_flags` for a picture with CTU grid ``grid``; raises
    `BitstreamError` on a bad mode, a parameter index outside the ``params`` candidates or a
    section of the wrong length."""
    if len(data) < 1:
        raise BitstreamError("empty NNLF flag section")
    head = data[0]
    modes = tuple((head >> (2 * c)) & 3 for c in range(3))
    if head >> 6 or any(m > MODE_CTU for m in modes):
        raise BitstreamError(f"bad NNLF modes byte 0x{head:02x}")
    n = grid[0] * grid[1]
    k = sum(m == MODE_CTU for m in modes)
    ns = sum(m != MODE_OFF for m in modes) if scaling else 0
    npb = 1 if params > 1 else 0
    if len(data) != 1 + npb + ns + (k * n + 7) // 8:
        raise BitstreamError(f"NNLF flag section has {len(data)} bytes, expected {1 + npb + ns + (k * n + 7) // 8}")
    param = (data[1] & 15, data[1] >> 4) if npb else (0, 0)
    if max(param) >= max(params, 1):
        raise BitstreamError(f"NNLF parameter index {max(param)} out of range ({params} candidates)")
    it = iter(data[1 + npb:1 + npb + ns])
    scale = tuple(next(it) if scaling and m != MODE_OFF else SCALE_ONE for m in modes)
    bits = np.unpackbits(np.frombuffer(data[1 + npb + ns:], np.uint8))[:k * n].astype(bool)
    ctus, j = [], 0
    for m in modes:
        if m == MODE_CTU:
            ctus.append(bits[j * n:(j + 1) * n].reshape(grid))
            j += 1
        else:
            ctus.append(np.zeros(grid, bool))
    return NNLFFlags(modes, tuple(ctus), scale, param)


def _offsets(seq) -> tuple[int, ...]:
    return tuple(seq.nnlf_params) or (0,)


def encode_step(model: NNLFModel, state, seq, orig, *, lambda_: float, force: bool | None = None):
    """Encoder side: filter (once per QP-input candidate of ``seq.nnlf_params``, paper 001
    III-B), decide, apply. Returns ``(state with the final output, flags)``.
    ``seq.nnlf_scaling`` switches residual scaling (paper 001 III-C)."""
    offsets = _offsets(seq) if force is None else (0,)
    x = filter_inputs(state, seq)
    cands = [filter_planes(model, x, bit_depth=seq.bit_depth, qp_offset=(o, o)) for o in offsets]
    flags = decide_flags(cands, state.deblocked, orig, ctu_size=seq.ctu_size, lambda_=lambda_, force=force,
                         scaling=seq.nnlf_scaling, bit_depth=seq.bit_depth)
    il, ic = flags.param
    nn = (cands[il][0], cands[ic][1], cands[ic][2])
    out = apply_flags(flags, nn, state.deblocked, ctu_size=seq.ctu_size, bit_depth=seq.bit_depth)
    return state._replace(output=out), flags


def decode_step(model: NNLFModel, state, seq, flags: NNLFFlags):
    """Decoder side: follow the flags (the NN runs only when some component is on, once, with
    the chosen QP-input candidates)."""
    if not flags.any_on:
        return state
    offsets = _offsets(seq)
    nn = filter_picture(model, state, seq, qp_offset=(offsets[flags.param[0]], offsets[flags.param[1]]))
    return state._replace(output=apply_flags(flags, nn, state.deblocked, ctu_size=seq.ctu_size,
                                             bit_depth=seq.bit_depth))
