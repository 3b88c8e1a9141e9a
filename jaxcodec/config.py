"""Frozen configuration dataclasses and their TOML loading.

Every config is a frozen dataclass with documented defaults. `load_config` reads a named
config from ``configs/NAME.toml`` (or any ``.toml`` path), applies keyword overrides, and
rejects a key the dataclass does not have with a message that names it and lists the
valid ones. Nested tables are not used: one flat table per config keeps the mapping to
bitstream flags and CLI options one-to-one.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from pathlib import Path
from typing import Any, Mapping, TypeVar

from jaxcodec.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class CodingConfig:
    """Coding configuration of the hybrid codec (sequence level, static under jit).

    Attributes:
      name: configuration name, informational (``ai``, ``ld``, ``ra``, ``ra_single_intra``).
      qp: base luma QP of the sequence, 0..51.
      gop_structure: ``"ai"`` all-intra, ``"ld"`` low-delay B, ``"ra"`` random access
        (hierarchical B, JVET CTC style).
      gop_size: frames per GOP; RA uses a dyadic hierarchy of 8 or 16, LD uses 4 (the QP
        offset pattern period), AI ignores it.
      intra_period: distance between intra (random-access point) frames; ``-1`` means only
        the first frame is intra (paper 000's single-intra-frame configuration); ``1`` is AI.
      num_refs: reference pictures per list for LD/RA.
      qp_offsets: QP offset per position-in-GOP temporal layer 0..4 (HM CTC style). Layer 0
        is the GOP anchor; intra frames use ``intra_qp_offset``.
      intra_qp_offset: QP offset of intra pictures (x264's ``ipratio`` 1.4 is about -3): a
        better intra picture is the reference every later picture predicts from.
      ctu_size: luma CTU size (64).
      min_cu_size: smallest luma CU of the quadtree (8).
      max_tu_size: largest luma transform (32); a 64x64 CU is coded as 32x32 TUs.
      search_range: integer motion search range in luma samples (+-).
      subpel_refine: quarter-pel motion refinement (half then quarter).
      coarse_search_range: range of the hierarchical search on 4x-subsampled planes
        (reaches ``+-4 x`` that many samples; 0 = full search only). Encoder only.
      intra_in_inter: let 8x8 CUs of inter pictures be intra when RDO prefers it (occlusions,
        new content). Encoder only: the syntax always allows it.
      intra_4x4: let intra 8x8 CUs split into four 4x4 luma TUs (DST-VII) when RDO prefers
        it (flagged in the sequence header: it adds ``split_transform_flag`` to the syntax).
      inter_tu_split: let inter CUs of 8..32 code their residual in four TUs of half the CU
        (one level of H.265's residual quadtree) when RDO prefers it (flagged in the sequence
        header).
      chroma_qp_offset: added to the luma QP for both chroma planes.
      lambda_scale: multiplier on the QP-derived Lagrangian (HM: 0.57 * 2^((QP-12)/3)).
      deblocking: in-loop deblocking filter on/off (flagged in the sequence header).
      nnlf: NN in-loop filter on/off (flagged in the sequence header; needs a model).
      nnlf_model: name or path of the NN loop-filter model when ``nnlf`` is on.
      nnlf_scaling: NN loop-filter residual scaling (paper 001 III-C eq. 3) when ``nnlf`` is
        on: a least-squares scale of the NN residual per enabled component and picture
        (flagged in the sequence header).
      nnlf_params: NN loop-filter parameter selection (paper 001 III-B) when ``nnlf`` is on:
        offsets added to the filter's QP input, one candidate each; the encoder runs the
        filter with every candidate and signals the best per picture for luma and for chroma
        (the list goes in the sequence header). One entry, ``(0,)``, switches it off.
      nnlf_block_params: with parameter selection, also let the encoder choose the candidate
        per CTU (paper 001 III-B Cost_4; a picture signals it with its own NNLF mode, so the
        decoder needs no switch). Off by default: on the training clips it gained nothing
        (carphone RA) or lost (bikes RA, -3.36 % against -3.91 % luma BD-rate); the per-CTU
        choice minimises this picture's SSE only, and took the strongest candidate (+5) in
        82 of 223 CTUs, which probably over-filters later pictures' references.
      nnlf_ensemble: (luma, chroma) geometric self-ensemble of the NN loop filter when ``nnlf``
        is on: the filter runs on 1, 2, 4 or 8 symmetries of the picture (transposes and
        flips) and the decoder averages the outputs with a rounding shift (flagged in the
        sequence header). Costs that many filter runs per picture in encoder and decoder.
        Default (8, 1): chosen on the training clips (RA luma BD-rate carphone -10.57 % vs
        -8.07 % with one pass, bikes -4.28 % vs -3.91 %); chroma gained nothing there.
      frame_threads: encoder threads that code frames whose references are ready.
    """

    name: str = "ra"
    qp: int = 32
    gop_structure: str = "ra"
    gop_size: int = 8
    intra_period: int = 32
    num_refs: int = 2
    qp_offsets: tuple[int, ...] = (1, 1, 4, 5, 6)
    intra_qp_offset: int = 0
    ctu_size: int = 64
    min_cu_size: int = 8
    max_tu_size: int = 32
    search_range: int = 16
    subpel_refine: bool = True
    coarse_search_range: int = 16
    intra_in_inter: bool = True
    intra_4x4: bool = True
    inter_tu_split: bool = True
    chroma_qp_offset: int = 0
    lambda_scale: float = 1.0
    deblocking: bool = True
    nnlf: bool = False
    nnlf_model: str = ""
    nnlf_scaling: bool = True
    nnlf_params: tuple[int, ...] = (0, -5, 5)
    nnlf_block_params: bool = False
    nnlf_ensemble: tuple[int, int] = (8, 1)
    frame_threads: int = 1

    def __post_init__(self):
        _check(0 <= self.qp <= 51, f"qp must be in 0..51, got {self.qp}")
        _check(self.gop_structure in ("ai", "ld", "ra"), f"gop_structure must be ai, ld or ra, got {self.gop_structure!r}")
        _check(self.gop_size >= 1, f"gop_size must be >= 1, got {self.gop_size}")
        if self.gop_structure == "ra":
            _check(self.gop_size in (2, 4, 8, 16), f"ra needs a dyadic gop_size (2, 4, 8 or 16), got {self.gop_size}")
        _check(self.intra_period == -1 or self.intra_period >= 1, f"intra_period must be -1 or >= 1, got {self.intra_period}")
        if self.gop_structure == "ra" and self.intra_period > 1:
            _check(self.intra_period % self.gop_size == 0, f"intra_period {self.intra_period} must be a multiple of gop_size {self.gop_size}")
        _check(self.ctu_size in (16, 32, 64), f"ctu_size must be 16, 32 or 64, got {self.ctu_size}")
        _check(self.min_cu_size in (8, 16, 32) and self.min_cu_size <= self.ctu_size, f"bad min_cu_size {self.min_cu_size}")
        _check(self.max_tu_size in (8, 16, 32), f"max_tu_size must be 8, 16 or 32, got {self.max_tu_size}")
        _check(1 <= self.num_refs <= 4, f"num_refs must be in 1..4, got {self.num_refs}")
        _check(1 <= self.search_range <= 128, f"search_range must be in 1..128, got {self.search_range}")
        _check(0 <= self.coarse_search_range <= 32, f"coarse_search_range must be in 0..32, got {self.coarse_search_range}")
        _check(-12 <= self.chroma_qp_offset <= 12, f"chroma_qp_offset must be in -12..12, got {self.chroma_qp_offset}")
        _check(-12 <= self.intra_qp_offset <= 12, f"intra_qp_offset must be in -12..12, got {self.intra_qp_offset}")
        _check(len(self.qp_offsets) == 5, f"qp_offsets needs 5 entries (layers 0..4), got {len(self.qp_offsets)}")
        _check(self.lambda_scale > 0, "lambda_scale must be positive")
        _check(1 <= len(self.nnlf_params) <= 4 and len(set(self.nnlf_params)) == len(self.nnlf_params)
               and all(-16 <= o <= 16 for o in self.nnlf_params),
               f"nnlf_params needs 1..4 distinct QP-input offsets in -16..16, got {self.nnlf_params}")
        _check(len(self.nnlf_params) > 1 or self.nnlf_params == (0,),
               f"a single nnlf_params entry must be 0 (parameter selection off), got {self.nnlf_params}")
        _check(len(self.nnlf_ensemble) == 2 and all(n in (1, 2, 4, 8) for n in self.nnlf_ensemble),
               f"nnlf_ensemble needs two sizes (luma, chroma), each 1, 2, 4 or 8, got {self.nnlf_ensemble}")
        _check(self.frame_threads >= 1, f"frame_threads must be >= 1, got {self.frame_threads}")

    def replace(self, **changes: Any) -> "CodingConfig":
        return replace_checked(self, changes)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _coerce(field: dataclasses.Field, value: Any, cls_name: str) -> Any:
    default = field.default if field.default is not dataclasses.MISSING else None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{cls_name}.{field.name} must be true or false, got {value!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{cls_name}.{field.name} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{cls_name}.{field.name} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{cls_name}.{field.name} must be a list, got {value!r}")
        return tuple(value)
    if isinstance(default, str) and not isinstance(value, str):
        raise ConfigError(f"{cls_name}.{field.name} must be a string, got {value!r}")
    return value


def replace_checked(config: T, changes: Mapping[str, Any]) -> T:
    """`dataclasses.replace` that names unknown keys and type-checks values."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    clean = {}
    for key, value in changes.items():
        if key not in fields:
            hint = difflib.get_close_matches(key, list(fields), n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(
                f"unknown key {key!r} for {type(config).__name__}{extra}; valid keys: {', '.join(sorted(fields))}"
            )
        clean[key] = _coerce(fields[key], value, type(config).__name__)
    return dataclasses.replace(config, **clean)


def config_path(name_or_path: str | Path, directory: Path = CONFIG_DIR) -> Path:
    """Resolve a config name (``ra``) to ``configs/ra.toml``, or accept a path."""
    p = Path(name_or_path)
    if p.suffix == ".toml":
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        return p
    candidate = directory / f"{name_or_path}.toml"
    if not candidate.is_file():
        known = sorted(q.stem for q in directory.glob("*.toml"))
        raise ConfigError(f"unknown config {str(name_or_path)!r}; available: {', '.join(known) or '(none)'}")
    return candidate


def config_tag(name_or_path: str | Path) -> str:
    """A config's part of a file name (cache files, carried streams): a name (``ra``) as it is; a
    TOML path as its stem and a hash of its text, so that the path's separators stay out of the
    name and an edited file is told apart from its old version (the same on every machine)."""
    import hashlib

    if Path(name_or_path).suffix != ".toml":
        return str(name_or_path)
    path = config_path(name_or_path)
    return f"{path.stem}-{hashlib.sha1(path.read_bytes()).hexdigest()[:8]}"


def load_config(cls: type[T], name_or_path: str | Path, *, defaults: Mapping[str, Any] | None = None,
                **overrides: Any) -> T:
    """Load a frozen-dataclass config from TOML and apply overrides.

    Precedence, lowest first: the dataclass defaults, ``defaults``, the file, ``overrides``.

    Args:
      cls: the config dataclass (e.g. `CodingConfig`).
      name_or_path: a name in ``configs/`` or a ``.toml`` path.
      defaults: keys used where the file does not set them (a tool's own defaults, e.g. the
        encoder CLI turning on the shipped NN loop filter while a config can still turn it off).
      **overrides: keys to replace after loading (``None`` values are ignored, so CLI
        options can be passed through unconditionally).

    Returns:
      The config instance. Raises `ConfigError` naming any unknown key or bad value.
    """
    path = config_path(name_or_path)
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    table = {**(defaults or {}), **table}
    table.update({k: v for k, v in overrides.items() if v is not None})
    return replace_checked(cls(), table)


def load_coding_config(name_or_path: str | Path, *, defaults: Mapping[str, Any] | None = None,
                       **overrides: Any) -> CodingConfig:
    return load_config(CodingConfig, name_or_path, defaults=defaults, **overrides)
