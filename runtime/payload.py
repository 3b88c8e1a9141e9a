"""Frame payload v1: the frame's syntax elements serialised, then entropy coded with a
standard lossless coder (raw DEFLATE or raw LZMA2, whichever is smaller; one method byte).

This is the *stop-gap* entropy stage until the CABAC syntax (`jaxcodec.codec.entropy`) lands:
it is exact and robust (sizes are known in advance, every value is range-checked), but it is
not context-adaptive binary arithmetic coding and not shared with RDO. Layout before
compression, per 8x8 CU in raster order:

* I pictures: luma intra mode (u8).
* B pictures: inter_dir (u8), ref_idx + 1 per list (u8 x 2), MV differences (i16 x 4) to the
  component-wise median of the left, above and above-right CUs' MVs (H.264 8.4.1.3 style;
  missing neighbours count as zero).
* then levels of Y (8x8 TUs), U and V (4x4 TUs), each TU in H.265 diagonal scan order, as int8
  or int16 (one flag byte per plane, stored uncompressed in front).
"""

from __future__ import annotations

import lzma
import zlib

import numba
import numpy as np

from jaxcodec.codec.quant import diagonal_scan
from jaxcodec.errors import BitstreamError

_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
_METHOD_DEFLATE, _METHOD_LZMA = 0, 1


def _to_scan(plane: np.ndarray, n: int) -> np.ndarray:
    h, w = plane.shape
    t = plane.reshape(h // n, n, w // n, n).swapaxes(1, 2).reshape(-1, n * n)
    return t[:, diagonal_scan(n.bit_length() - 1)]


def _from_scan(flat: np.ndarray, h: int, w: int, n: int) -> np.ndarray:
    t = np.empty((flat.shape[0], n * n), np.int32)
    t[:, diagonal_scan(n.bit_length() - 1)] = flat
    return t.reshape(h // n, w // n, n, n).swapaxes(1, 2).reshape(h, w)


def median_predictor(mv: np.ndarray) -> np.ndarray:
    """Component-wise median of left / above / above-right MVs for every CU (vectorised)."""
    h8, w8 = mv.shape[:2]
    p = np.pad(mv, ((1, 0), (1, 1), (0, 0), (0, 0)))
    a = p[1:, :-2]
    b = p[:-1, 1:-1]
    c = p[:-1, 2:].copy()
    # above-right missing at the right edge: use above-left (H.264 rule)
    c[:, -1] = p[:-1, -3] if w8 > 1 else c[:, -1]
    return np.median(np.stack([a, b, c]), axis=0).astype(np.int32)


@numba.njit(cache=True, nogil=True)
def _reconstruct_mvs(mvd, mv):
    h8, w8 = mvd.shape[:2]
    for by in range(h8):
        for bx in range(w8):
            for lst in range(2):
                for k in range(2):
                    a = mv[by, bx - 1, lst, k] if bx > 0 else 0
                    b = mv[by - 1, bx, lst, k] if by > 0 else 0
                    if by > 0 and bx + 1 < w8:
                        c = mv[by - 1, bx + 1, lst, k]
                    elif by > 0 and bx > 0:
                        c = mv[by - 1, bx - 1, lst, k]
                    else:
                        c = 0
                    med = max(min(a, b), min(max(a, b), c))
                    mv[by, bx, lst, k] = mvd[by, bx, lst, k] + med
    return mv


def reconstruct_mvs(mvd: np.ndarray) -> np.ndarray:
    """Inverse of ``mvd = mv - median_predictor(mv)`` in raster order (the decoder side)."""
    mvd = np.ascontiguousarray(mvd, np.int32)
    return _reconstruct_mvs(mvd, np.zeros_like(mvd))


def _level_sizes(h: int, w: int):
    return ((h, w, 8), (h // 2, w // 2, 4), (h // 2, w // 2, 4))


def encode_payload(levels, *, modes=None, inter_dir=None, mv=None, ref_idx=None) -> bytes:
    """Serialise and compress one frame (numpy inputs; ``levels`` = (y, u, v) int planes)."""
    parts = []
    if modes is not None:
        parts.append(np.asarray(modes, np.uint8).ravel().tobytes())
    else:
        parts.append(np.asarray(inter_dir, np.uint8).ravel().tobytes())
        parts.append((np.asarray(ref_idx, np.int16) + 1).astype(np.uint8).ravel().tobytes())
        mv = np.asarray(mv, np.int32)
        mvd = (mv - median_predictor(mv)).reshape(-1, 4)
        parts.append(mvd.astype("<i2").tobytes())
    flags = bytearray()
    for plane, (h, w, n) in zip(levels, _level_sizes(*np.asarray(levels[0]).shape)):
        s = _to_scan(np.asarray(plane, np.int32), n)
        small = bool(np.abs(s).max(initial=0) <= 127)
        flags.append(1 if small else 2)
        parts.append(s.astype(np.int8 if small else "<i2").tobytes())
    raw = b"".join(parts)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    cand = [bytes([_METHOD_DEFLATE]) + deflate.compress(raw) + deflate.flush(),
            bytes([_METHOD_LZMA]) + lzma.compress(raw, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)]
    best = min(cand, key=len)
    return bytes(flags) + best


def decode_payload(payload: bytes, *, height: int, width: int, intra: bool, n_l0: int, n_l1: int):
    """Inverse of `encode_payload`; raises `BitstreamError` on anything inconsistent.

    Returns ``(levels, modes, inter_dir, mv, ref_idx)`` (the unused ones None), arrays per 8x8 CU.
    """
    h8, w8 = height // 8, width // 8
    ncu = h8 * w8
    if len(payload) < 4:
        raise BitstreamError("frame payload truncated")
    flags, method, body = payload[:3], payload[3], payload[4:]
    if any(f not in (1, 2) for f in flags) or method not in (_METHOD_DEFLATE, _METHOD_LZMA):
        raise BitstreamError("frame payload header is corrupt")
    head = ncu if intra else ncu * 3 + ncu * 8
    sizes = _level_sizes(height, width)
    expected = head + sum(h * w * f for (h, w, _), f in zip(sizes, flags))
    try:
        if method == _METHOD_DEFLATE:
            d = zlib.decompressobj(-15)
            raw = d.decompress(body, expected + 1)
            complete = d.eof and not d.unused_data and not d.unconsumed_tail
        else:
            d = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
            raw = d.decompress(body, expected + 1)
            complete = d.eof and not d.unused_data
    except (zlib.error, lzma.LZMAError) as e:
        raise BitstreamError(f"frame payload is corrupt ({e})") from None
    if len(raw) != expected or not complete:
        raise BitstreamError("frame payload is corrupt (wrong decoded size)")
    pos = 0
    modes = inter_dir = mv = ref_idx = None
    if intra:
        modes = np.frombuffer(raw, np.uint8, ncu, 0).reshape(h8, w8).astype(np.int32)
        if modes.max() > 34:
            raise BitstreamError("intra mode out of range")
        pos = ncu
    else:
        inter_dir = np.frombuffer(raw, np.uint8, ncu, 0).reshape(h8, w8).astype(np.int32)
        ref_idx = np.frombuffer(raw, np.uint8, 2 * ncu, ncu).reshape(h8, w8, 2).astype(np.int32) - 1
        mvd = np.frombuffer(raw, "<i2", 4 * ncu, 3 * ncu).reshape(h8, w8, 2, 2).astype(np.int32)
        mv = reconstruct_mvs(mvd)
        pos = 11 * ncu
        used = np.stack([(inter_dir & 1) != 0, (inter_dir & 2) != 0], -1)
        lim = np.array([n_l0, n_l1])
        ok = ((inter_dir >= 1) & (inter_dir <= 3)).all()
        ok &= bool(np.where(used, (ref_idx >= 0) & (ref_idx < lim), ref_idx == -1).all())
        ok &= bool((np.abs(mv) <= 4096).all())
        if not ok:
            raise BitstreamError("inter decisions out of range")
    levels = []
    for (h, w, n), f in zip(sizes, flags):
        cnt = h * w
        arr = np.frombuffer(raw, np.int8 if f == 1 else "<i2", cnt, pos).astype(np.int32)
        pos += cnt * f
        levels.append(_from_scan(arr.reshape(-1, n * n), h, w, n))
    return tuple(levels), modes, inter_dir, mv, ref_idx
