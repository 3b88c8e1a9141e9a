"""The ``.jxc`` container: sequence header, then per frame a header, the MD5 of the
reconstructed frame and the entropy-coded payload (little-endian throughout).

Sequence header (version 4)::

    magic "JXCD" | version u8 | width u16 | height u16 | bit_depth u8 | chroma_format u8 (1 = 4:2:0)
    | fps_num u32 | fps_den u32 | gop_structure u8 (0 ai, 1 ld, 2 ra) | gop_size u8
    | intra_period i16 | num_refs u8 | ctu_size u8 | min_cu_size u8 | tool_flags u16
    | chroma_qp_offset i8 | qp u8 | num_frames u32
    | [nnlf_model 16 bytes: identity of the NN loop-filter model, only if tool_flags & TOOL_NNLF]
    | [n_params u8 (2..4) | QP-input offsets i8 x n_params, only if tool_flags & TOOL_NNLF_PARAM]
    | [ensemble u8: bits 0-1 log2 of the luma, bits 2-3 of the chroma self-ensemble size, other
       bits 0; only if tool_flags & TOOL_NNLF_ENSEMBLE]
    | crc32 u32 (of everything before it)

Frame (coding order)::

    sync "FR" | poc u32 | frame_type u8 (0 I, 1 B) | qp u8 | temporal_layer u8 | tool_flags u8
    | n_l0 u8 | l0 POCs u32 x n_l0 | n_l1 u8 | l1 POCs | n_release u8 | release POCs
    | md5 16 bytes | payload_len u32
    | [nnlf_len u16 | NNLF flags nnlf_len bytes (runtime.nnlf.pack_flags, with a residual scale byte
       per enabled component when the sequence has TOOL_NNLF_SCALE and a parameter byte when it
       has TOOL_NNLF_PARAM), only if tool_flags & TOOL_NNLF]
    | crc32 u32 (of the frame header) | payload

Every field is range-checked on parsing; anything inconsistent raises `BitstreamError` with
the byte offset. Corruption inside a payload that still parses is caught by the MD5 check.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from fractions import Fraction

import numpy as np

from jaxcodec.errors import BitstreamError

MAGIC = b"JXCD"
VERSION = 4  # 4: intra CU quadtree, 4x4 TUs, inter TU split, intra CUs in z-scan order; 3: NN loop filter; 2: CABAC payload
FRAME_SYNC = b"FR"
GOP_CODES = {"ai": 0, "ld": 1, "ra": 2}
TOOL_DEBLOCKING = 1
TOOL_SUBPEL = 2
TOOL_NNLF = 4
TOOL_INTRA_4X4 = 8  # split_transform_flag of intra 8x8 CUs (four 4x4 luma TUs, DST-VII)
TOOL_INTER_TU_SPLIT = 16  # split_transform_flag of inter CUs up to 32x32 (one level)
TOOL_NNLF_SCALE = 32  # NN loop-filter residual scaling (a scale byte per enabled component; needs TOOL_NNLF)
TOOL_NNLF_PARAM = 64  # NN loop-filter parameter selection (QP-input candidates; needs TOOL_NNLF)
TOOL_NNLF_ENSEMBLE = 128  # NN loop-filter self-ensemble over symmetries of the picture (needs TOOL_NNLF)
KNOWN_TOOLS = (TOOL_DEBLOCKING | TOOL_SUBPEL | TOOL_NNLF | TOOL_INTRA_4X4 | TOOL_INTER_TU_SPLIT | TOOL_NNLF_SCALE
               | TOOL_NNLF_PARAM | TOOL_NNLF_ENSEMBLE)
#: Sequence tools that describe how to run or read the NNLF and never appear in a frame's flags.
SEQ_ONLY_TOOLS = TOOL_NNLF_SCALE | TOOL_NNLF_PARAM | TOOL_NNLF_ENSEMBLE
NNLF_ID_BYTES = 16
NNLF_MAX_PARAMS = 4
NNLF_MAX_PARAM_OFFSET = 16
MAX_REFS = 4

_SEQ = struct.Struct("<BHHBBIIBBhBBBHbBI")
_FRAME_FIXED = struct.Struct("<IBBBB")


@dataclasses.dataclass(frozen=True)
class SequenceHeader:
    width: int
    height: int
    bit_depth: int
    chroma_format: str
    fps: Fraction
    gop_structure: str
    gop_size: int
    intra_period: int
    num_refs: int
    ctu_size: int
    min_cu_size: int
    tool_flags: int
    chroma_qp_offset: int
    qp: int
    num_frames: int
    nnlf_model: bytes = b""  # model identity (runtime.nnlf digest) when tool_flags & TOOL_NNLF
    nnlf_params: tuple[int, ...] = ()  # QP-input offsets of the NNLF parameter candidates (TOOL_NNLF_PARAM)
    nnlf_ensemble: tuple[int, int] = (1, 1)  # (luma, chroma) NNLF self-ensemble sizes (TOOL_NNLF_ENSEMBLE)


@dataclasses.dataclass(frozen=True)
class FrameHeader:
    poc: int
    frame_type: str
    qp: int
    temporal_layer: int
    tool_flags: int
    refs_l0: tuple[int, ...]
    refs_l1: tuple[int, ...]
    release: tuple[int, ...]
    md5: bytes
    nnlf: bytes = b""  # packed NNLF flags (runtime.nnlf.pack_flags) when tool_flags & TOOL_NNLF


def write_sequence_header(h: SequenceHeader) -> bytes:
    body = MAGIC + _SEQ.pack(
        VERSION, h.width, h.height, h.bit_depth, 1, h.fps.numerator, h.fps.denominator,
        GOP_CODES[h.gop_structure], h.gop_size, h.intra_period, h.num_refs, h.ctu_size, h.min_cu_size,
        h.tool_flags, h.chroma_qp_offset, h.qp, h.num_frames)
    if h.tool_flags & TOOL_NNLF:
        if len(h.nnlf_model) != NNLF_ID_BYTES:
            raise ValueError(f"nnlf_model identity must be {NNLF_ID_BYTES} bytes")
        body += h.nnlf_model
    if h.tool_flags & TOOL_NNLF_PARAM:
        p = tuple(h.nnlf_params)
        if not 2 <= len(p) <= NNLF_MAX_PARAMS or any(abs(o) > NNLF_MAX_PARAM_OFFSET for o in p):
            raise ValueError(f"nnlf_params needs 2..{NNLF_MAX_PARAMS} offsets in +-{NNLF_MAX_PARAM_OFFSET}, got {p}")
        body += struct.pack(f"<B{len(p)}b", len(p), *p)
    if h.tool_flags & TOOL_NNLF_ENSEMBLE:
        if any(n not in (1, 2, 4, 8) for n in h.nnlf_ensemble) or len(h.nnlf_ensemble) != 2:
            raise ValueError(f"nnlf_ensemble needs two sizes of 1, 2, 4 or 8, got {h.nnlf_ensemble}")
        ly, lc = (n.bit_length() - 1 for n in h.nnlf_ensemble)
        body += struct.pack("<B", ly | lc << 2)
    return body + struct.pack("<I", zlib.crc32(body))


def write_frame(h: FrameHeader, payload: bytes) -> bytes:
    def pocs(p):
        return struct.pack(f"<B{len(p)}I", len(p), *p)

    head = (FRAME_SYNC + _FRAME_FIXED.pack(h.poc, 0 if h.frame_type == "I" else 1, h.qp, h.temporal_layer, h.tool_flags)
            + pocs(h.refs_l0) + pocs(h.refs_l1) + pocs(h.release) + h.md5 + struct.pack("<I", len(payload)))
    if h.tool_flags & TOOL_NNLF:
        head += struct.pack("<H", len(h.nnlf)) + h.nnlf
    return head + struct.pack("<I", zlib.crc32(head)) + payload


class _Reader:
    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise BitstreamError(f"truncated stream: {what} needs {n} bytes at offset {self.pos}, "
                                 f"{len(self.data) - self.pos} left")
        out = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return out

    def unpack(self, fmt: struct.Struct | str, what: str):
        s = fmt if isinstance(fmt, struct.Struct) else struct.Struct(fmt)
        return s.unpack(self.take(s.size, what))


def _need(ok: bool, msg: str) -> None:
    if not ok:
        raise BitstreamError(msg)


def parse_sequence_header(r: _Reader) -> SequenceHeader:
    if len(r.data) < 4 or bytes(r.data[:4]) != MAGIC:
        raise BitstreamError("not a jaxcodec stream (wrong magic; expected 'JXCD')")
    r.take(4, "magic")
    start = 0
    if len(r.data) >= 5 and r.data[4] != VERSION:
        raise BitstreamError(f"unsupported stream version {r.data[4]} (this decoder reads version {VERSION})")
    f = r.unpack(_SEQ, "sequence header")
    nnlf_model = r.take(NNLF_ID_BYTES, "NNLF model identity") if f[13] & TOOL_NNLF else b""
    nnlf_params: tuple[int, ...] = ()
    if f[13] & TOOL_NNLF_PARAM:
        (n,) = r.unpack("<B", "NNLF parameter count")
        _need(2 <= n <= NNLF_MAX_PARAMS, f"bad NNLF parameter count {n} (2..{NNLF_MAX_PARAMS})")
        nnlf_params = r.unpack(f"<{n}b", "NNLF parameter offsets")
    nnlf_ensemble = (1, 1)
    if f[13] & TOOL_NNLF_ENSEMBLE:
        (e,) = r.unpack("<B", "NNLF ensemble sizes")
        _need(e < 16, f"bad NNLF ensemble byte 0x{e:02x} (reserved bits set)")
        nnlf_ensemble = (1 << (e & 3), 1 << (e >> 2))
    (crc,) = r.unpack("<I", "sequence header crc")
    _need(zlib.crc32(bytes(r.data[start:r.pos - 4])) == crc, "sequence header is corrupt (crc mismatch)")
    (_, w, h, bd, cf, fn, fd, gop, gsz, ip, nref, ctu, mincu, tools, cqp, qp, nf) = f
    _need(cf == 1, f"unsupported chroma format code {cf} (only 4:2:0)")
    _need(1 <= w <= 16384 and 1 <= h <= 16384, f"bad frame size {w}x{h}")
    _need(bd in (8, 10), f"unsupported bit depth {bd}")
    _need(fn > 0 and fd > 0, "bad frame rate")
    _need(gop in GOP_CODES.values(), f"bad GOP structure code {gop}")
    _need(1 <= nref <= MAX_REFS and ctu in (16, 32, 64) and mincu in (8, 16, 32), "bad coding parameters")
    _need(0 <= qp <= 51 and nf >= 1, "bad qp or frame count")
    _need(not tools & ~KNOWN_TOOLS, f"unknown tool flags 0x{tools & ~KNOWN_TOOLS:x}")
    _need(not tools & TOOL_NNLF_SCALE or bool(tools & TOOL_NNLF), "NN residual scaling flagged without the NN loop filter")
    _need(not tools & TOOL_NNLF_PARAM or bool(tools & TOOL_NNLF),
          "NN parameter selection flagged without the NN loop filter")
    _need(not tools & TOOL_NNLF_ENSEMBLE or bool(tools & TOOL_NNLF),
          "NN self-ensemble flagged without the NN loop filter")
    _need(all(abs(o) <= NNLF_MAX_PARAM_OFFSET for o in nnlf_params),
          f"NNLF parameter offset out of range (+-{NNLF_MAX_PARAM_OFFSET}): {nnlf_params}")
    name = {v: k for k, v in GOP_CODES.items()}[gop]
    return SequenceHeader(w, h, bd, "420", Fraction(fn, fd), name, gsz, ip, nref, ctu, mincu, tools, cqp, qp, nf,
                          nnlf_model, tuple(nnlf_params), nnlf_ensemble)


def parse_frame(r: _Reader, seq: SequenceHeader) -> tuple[FrameHeader, bytes]:
    start = r.pos
    _need(r.take(2, "frame sync") == FRAME_SYNC, f"bad frame sync at offset {start}")
    poc, ftype, qp, layer, tools = r.unpack(_FRAME_FIXED, "frame header")
    _need(poc < seq.num_frames, f"frame POC {poc} out of range at offset {start}")
    _need(ftype in (0, 1) and 0 <= qp <= 51 and layer <= 4, f"bad frame header at offset {start}")
    lists = []
    for what, cap in (("list 0", MAX_REFS), ("list 1", MAX_REFS), ("release list", 255)):
        (n,) = r.unpack("<B", what)
        _need(n <= cap, f"{what} too long ({n}) at offset {start}")
        p = r.unpack(f"<{n}I", what) if n else ()
        _need(all(x < seq.num_frames for x in p), f"{what} POC out of range at offset {start}")
        lists.append(tuple(p))
    md5 = r.take(16, "frame md5")
    (plen,) = r.unpack("<I", "payload length")
    nnlf = b""
    if tools & TOOL_NNLF:
        _need(bool(seq.tool_flags & TOOL_NNLF), f"frame POC {poc} carries NNLF flags but the sequence has no NN loop filter")
        (nlen,) = r.unpack("<H", "NNLF flag length")
        nnlf = r.take(nlen, "NNLF flags")
    (crc,) = r.unpack("<I", "frame header crc")
    _need(zlib.crc32(bytes(r.data[start:r.pos - 4])) == crc, f"frame header at offset {start} is corrupt (crc mismatch)")
    if ftype == 0:
        _need(not lists[0] and not lists[1], f"intra frame with references at offset {start}")
    else:
        _need(bool(lists[0]) and bool(lists[1]), f"B frame without references at offset {start}")
    payload = r.take(plen, f"payload of frame POC {poc}")
    return FrameHeader(poc, "I" if ftype == 0 else "B", qp, layer, tools, lists[0], lists[1], lists[2], md5, nnlf), payload


def parse_stream(data: bytes) -> tuple[SequenceHeader, list[tuple[FrameHeader, bytes]]]:
    """Split a whole stream into its headers and payloads (no decoding)."""
    r = _Reader(data)
    seq = parse_sequence_header(r)
    frames = []
    seen = set()
    for _ in range(seq.num_frames):
        fh, payload = parse_frame(r, seq)
        _need(fh.poc not in seen, f"duplicate frame POC {fh.poc}")
        seen.add(fh.poc)
        frames.append((fh, payload))
    _need(r.pos == len(r.data), f"{len(r.data) - r.pos} trailing bytes after the last frame")
    return seq, frames


def frame_qps(data: bytes) -> np.ndarray:
    """Each frame's QP from its header, in display (POC) order: float32 ``(T,)``."""
    _, frames = parse_stream(data)
    return np.asarray([fh.qp for fh, _ in sorted(frames, key=lambda f: f[0].poc)], np.float32)
