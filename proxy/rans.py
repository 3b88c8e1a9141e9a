"""rANS entropy coder over integer CDF tables (the proxy's real bitstream).

Byte-wise rANS with a 32-bit state (Duda 2013; F. Giesen's ``rans_byte.h`` layout), 16-bit
probability precision. Everything here is integer: a table is a row of an int32 CDF array
``cdf[table, 0..length]`` with ``cdf[0] == 0`` and ``cdf[length] == 1 << PRECISION``; the
last symbol of every table is the *escape* symbol. A value outside the table's support is
coded as the escape symbol followed by its overflow in 4-bit bypass chunks (CompressAI's
scheme), so any int32 latent is codable.

One stream per frame holds all its latent segments in decode order. rANS is last-in
first-out, so the encoder first turns every segment into a list of coding *events*
``(start, freq)`` in decode order (`segment_events`) and then pushes all events of the frame
in reverse (`encode_events`). The decoder mirrors this with a `Decoder` that pops segment by
segment, so it can run the hyper-synthesis between the hyper latents and the latents.

Why our own coder rather than ``constriction``: its categorical models take float
probabilities and re-quantize them internally; ours consume exactly the integer tables the
rate estimate is computed from, so estimate and coded size differ only by the 4-byte flush.
"""

from __future__ import annotations

import numba
import numpy as np

from jaxcodec.errors import BitstreamError

PRECISION = 16  # probability bits of every table
BYPASS_BITS = 4  # overflow chunk size of the escape code
_RANS_L = 1 << 23  # lower bound of the normalized state


@numba.njit(cache=True)
def _segment_events(symbols, indexes, cdf, cdf_length, offset, starts, freqs, n):
    """Append the events of one segment (decode order) to ``starts/freqs`` from position n."""
    bypass_freq = 1 << (PRECISION - BYPASS_BITS)
    max_chunk = (1 << BYPASS_BITS) - 1
    for i in range(symbols.shape[0]):
        t = indexes[i]
        length = cdf_length[t]
        escape = length - 2  # symbols 0..length-3 are values, length-2 is the escape
        v = symbols[i] - offset[t]
        if v < 0 or v >= escape:
            if v < 0:
                over = -2 * v - 1
            else:
                over = 2 * (v - escape)
            s = escape
        else:
            over = -1
            s = v
        starts[n] = cdf[t, s]
        freqs[n] = cdf[t, s + 1] - cdf[t, s]
        n += 1
        if over >= 0:
            nchunks = 0
            while (over >> (nchunks * BYPASS_BITS)) > 0:
                nchunks += 1
            # chunk count in unary-like 4-bit groups (15 = "more"), then the chunks
            c = nchunks
            while c >= max_chunk:
                starts[n] = max_chunk * bypass_freq
                freqs[n] = bypass_freq
                n += 1
                c -= max_chunk
            starts[n] = c * bypass_freq
            freqs[n] = bypass_freq
            n += 1
            for j in range(nchunks):
                chunk = (over >> (j * BYPASS_BITS)) & max_chunk
                starts[n] = chunk * bypass_freq
                freqs[n] = bypass_freq
                n += 1
    return n


def segment_events(symbols: np.ndarray, indexes: np.ndarray, tables) -> tuple[np.ndarray, np.ndarray]:
    """Coding events ``(start, freq)`` (int64) of one segment, in decode order.

    Args:
      symbols: int32 latent values, flattened in decode order.
      indexes: int32 table index of each symbol (same shape).
      tables: `CdfTables` (cdf, cdf_length, offset).
    """
    symbols = np.ascontiguousarray(symbols, dtype=np.int64).ravel()
    indexes = np.ascontiguousarray(indexes, dtype=np.int64).ravel()
    if symbols.shape != indexes.shape:
        raise ValueError("symbols and indexes must have the same number of elements")
    # worst case: escape + count chunks + 8 chunks of a 32-bit overflow
    cap = symbols.size * 12 + 16
    starts = np.empty(cap, np.int64)
    freqs = np.empty(cap, np.int64)
    n = _segment_events(symbols, indexes, np.asarray(tables.cdf, np.int64), np.asarray(tables.cdf_length, np.int64),
                        np.asarray(tables.offset, np.int64), starts, freqs, 0)
    return starts[:n], freqs[:n]


@numba.njit(cache=True)
def _encode(starts, freqs, out):
    x = np.uint64(_RANS_L)
    pos = out.shape[0]
    for i in range(starts.shape[0] - 1, -1, -1):
        freq = np.uint64(freqs[i])
        x_max = np.uint64(((_RANS_L >> PRECISION) << 8)) * freq
        while x >= x_max:
            pos -= 1
            out[pos] = np.uint8(x & np.uint64(0xFF))
            x >>= np.uint64(8)
        x = ((x // freq) << np.uint64(PRECISION)) + (x % freq) + np.uint64(starts[i])
    for _ in range(4):
        pos -= 1
        out[pos] = np.uint8(x & np.uint64(0xFF))
        x >>= np.uint64(8)
    return pos


def encode_events(starts: np.ndarray, freqs: np.ndarray) -> bytes:
    """rANS-encode events given in decode order; returns the stream bytes."""
    out = np.empty(starts.size * 3 + 8, np.uint8)
    pos = _encode(np.asarray(starts, np.int64), np.asarray(freqs, np.int64), out)
    return out[pos:].tobytes()


def event_bits(freqs: np.ndarray) -> float:
    """Ideal code length of events in bits: sum of ``PRECISION - log2(freq)``."""
    freqs = np.asarray(freqs, np.float64)
    return float(np.sum(PRECISION - np.log2(freqs)))


@numba.njit(cache=True)
def _decode(buf, state, pos, indexes, cdf, cdf_length, offset, out):
    mask = np.uint64((1 << PRECISION) - 1)
    bypass_freq = np.uint64(1 << (PRECISION - BYPASS_BITS))
    max_chunk = (1 << BYPASS_BITS) - 1
    x = np.uint64(state)
    nbuf = buf.shape[0]
    for i in range(indexes.shape[0]):
        t = indexes[i]
        length = cdf_length[t]
        escape = length - 2
        # pop one table symbol
        get = x & mask
        lo = 0
        hi = length - 1  # cdf[t, lo] <= get < cdf[t, hi]
        while hi - lo > 1:
            mid = (lo + hi) >> 1
            if np.uint64(cdf[t, mid]) <= get:
                lo = mid
            else:
                hi = mid
        s = lo
        start = np.uint64(cdf[t, s])
        freq = np.uint64(cdf[t, s + 1]) - start
        x = freq * (x >> np.uint64(PRECISION)) + get - start
        while x < np.uint64(_RANS_L):
            if pos >= nbuf:
                return -1, x, pos
            x = (x << np.uint64(8)) | np.uint64(buf[pos])
            pos += 1
        if s < escape:
            out[i] = s + offset[t]
            continue
        # escape: chunk count, then chunks (uniform, freq = 2^(P-4))
        nchunks = 0
        while True:
            get = x & mask
            c = np.int64(get >> np.uint64(PRECISION - BYPASS_BITS))
            x = bypass_freq * (x >> np.uint64(PRECISION)) + get - np.uint64(c) * bypass_freq
            while x < np.uint64(_RANS_L):
                if pos >= nbuf:
                    return -1, x, pos
                x = (x << np.uint64(8)) | np.uint64(buf[pos])
                pos += 1
            nchunks += c
            if c < max_chunk:
                break
        if nchunks > 16:
            return -1, x, pos
        over = 0
        for j in range(nchunks):
            get = x & mask
            c = np.int64(get >> np.uint64(PRECISION - BYPASS_BITS))
            x = bypass_freq * (x >> np.uint64(PRECISION)) + get - np.uint64(c) * bypass_freq
            while x < np.uint64(_RANS_L):
                if pos >= nbuf:
                    return -1, x, pos
                x = (x << np.uint64(8)) | np.uint64(buf[pos])
                pos += 1
            over |= c << (j * BYPASS_BITS)
        if over & 1:
            v = -((over + 1) >> 1)
        else:
            v = escape + (over >> 1)
        out[i] = v + offset[t]
    return 0, x, pos


class Decoder:
    """Pops segments from one frame's rANS stream, in the order the encoder listed them."""

    def __init__(self, data: bytes):
        if len(data) < 4:
            raise BitstreamError(f"rANS stream of {len(data)} bytes is shorter than its 4-byte state")
        self._buf = np.frombuffer(data, np.uint8)
        self._state = int.from_bytes(data[:4], "big")
        self._pos = 4

    def decode(self, indexes: np.ndarray, tables) -> np.ndarray:
        """Decode ``indexes.size`` symbols with their table indexes; int32, shape of ``indexes``."""
        idx = np.ascontiguousarray(indexes, dtype=np.int64).ravel()
        out = np.empty(idx.size, np.int64)
        err, state, pos = _decode(self._buf, np.uint64(self._state), self._pos, idx, np.asarray(tables.cdf, np.int64),
                                  np.asarray(tables.cdf_length, np.int64), np.asarray(tables.offset, np.int64), out)
        if err:
            raise BitstreamError("rANS stream is truncated or corrupt")
        self._state, self._pos = int(state), int(pos)
        return out.astype(np.int32).reshape(np.shape(indexes))

    def finish(self) -> None:
        """Check the stream ends exactly where the encoder's initial state says it must."""
        if self._pos != self._buf.size or self._state != _RANS_L:
            raise BitstreamError("rANS stream has trailing data or a bad final state")
