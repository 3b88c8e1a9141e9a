"""Binary arithmetic coding engine (CABAC core) in numba, with a bit-counting twin for RDO.

Why numba: the coder is a strictly sequential state machine. Measured here on one core, a
branchless ``jax.lax.scan`` coder reaches ~23 Mbins/s encode, pure Python ~5, and this numba
engine well over 100 (see ``benchmarks/cabac_speed.py``). Every function is
``@numba.njit(cache=True, nogil=True)`` and keeps *all* state in arrays passed in and out,
so several threads can code different frames at the same time.

Arithmetic coder (the range/low/renormalisation/carry machinery of H.265 9.3.4.3 and
H.266 9.3.4.3, both identical at this level):

* 9-bit range in [256, 510], ``low`` register with 23 free bits and delayed byte output with
  carry propagation (the ``bufferedByte`` / ``numBufferedBytes`` scheme of the HM/VTM
  reference encoders: a run of 0xff bytes is held back until a carry is resolved).
* Regular bins: multiplication-based LPS range of H.266 eq. 9.3.4.3.2
  ``ivlLpsRange = ((ivlCurrRange >> 5) * (q >> 9) >> 1) + 4`` with ``q`` the 15-bit LPS
  probability. Bypass bins (one or many at a time), terminating bin (H.265 9.3.4.3.5) and the
  flush at the end of the slice (9.3.2.5 / 9.3.4.3.5: ``end_of_slice_segment_flag`` = 1, then
  the rbsp stop bit and alignment).
* Probability estimation: H.266 9.3.4.3.2.2 two-rate estimator. Each context holds two
  15-bit estimates of P(bin = 1) adapting with windows 2^4 and 2^7; the coding probability
  is their mean. (VVC keeps the fast one in 10 bits; we keep both in 15 bits, same update
  rule ``p -= p >> r; p += (32767 * bin) >> r``.)

State layout (explicit, see the ``W_*`` / ``R_*`` indices):

* contexts: ``int32 (N, 2)``; row ``c`` = (fast, slow) estimate of context ``c``. The
  syntax module defines which row belongs to which syntax element and its initial value.
* writer: ``int64 (W_SIZE,)`` registers + a ``uint8`` output buffer. ``w[W_MODE]`` selects
  MODE_ENCODE (bytes) or MODE_COUNT (fractional bits in 1/2^15 units, contexts still adapt
  exactly as when encoding: rav1e's Writer trait / x264 rdo.c). The syntax writer calls only
  `put_bin` / `put_bypass` / `put_bypass_bins` / `put_terminate`.
* reader: ``int64 (R_SIZE,)`` registers over a ``uint8`` payload. Reading past the end
  yields zero bytes and counts the overrun in ``r[R_OVERRUN]``; nothing ever indexes out of
  bounds.
"""

from __future__ import annotations

import numba
import numpy as np

PROB_BITS = 15
PROB_ONE = 1 << PROB_BITS
RATE_FAST = 4
RATE_SLOW = 7
FRAC_BITS = 15  # counted bits are in units of 1 / 2**FRAC_BITS bit
FRAC_ONE = 1 << FRAC_BITS

MODE_ENCODE = 0
MODE_COUNT = 1

# writer registers
W_MODE, W_LOW, W_RANGE, W_BITS_LEFT, W_BUFFERED, W_NUM_BUFFERED, W_POS, W_FRAC = range(8)
W_SIZE = 8
# reader registers
R_VALUE, R_RANGE, R_BITS_NEEDED, R_POS, R_OVERRUN = range(5)
R_SIZE = 5

# H.265 Table 9-53 (renormTable indexed by ivlLpsRange >> 3): bits to bring the range >= 256.
_RENORM = np.array([6, 5, 4, 4, 3, 3, 3, 3] + [2] * 8 + [1] * 16, np.int64)

# Expected cost (1/2^15 bit) of coding an LPS / MPS whose quantised LPS probability index is
# q5 = q >> 9 (0..31), averaged over the range (weighted 1/range, the stationary range
# distribution of an arithmetic coder). Generated once by
#   mean_r -log2(lps(r, q5) / r) and mean_r -log2(1 - lps(r, q5) / r), r in [256, 510],
# and frozen as integers so that RDO decisions are identical on every machine.
_COST_LPS = np.array([
    212876, 173423, 150812, 136691, 124971, 116296, 108365, 102099, 96102, 91196, 86374, 82343,
    78311, 74890, 71425, 68453, 65415, 62789, 60084, 57731, 55294, 53163, 50945, 48997, 46963,
    45169, 43290, 41628, 39882, 38334, 36703, 35254], np.int64)
_COST_MPS = np.array([
    537, 1227, 1990, 2702, 3490, 4225, 5038, 5798, 6639, 7425, 8296, 9110, 10013, 10858, 11796,
    12673, 13648, 14561, 15575, 16527, 17585, 18578, 19684, 20723, 21881, 22970, 24186, 25330,
    26608, 27813, 29162, 30435], np.int64)

# LPS probability of the HEVC state machine, 0.5 * alpha^s with alpha = (0.01875 / 0.5)^(1/63)
# (H.265 9.3.4.3.2 design rule), in 1/2^15, frozen as integers.
_HEVC_STATE_PLPS = np.array([
    16384, 15552, 14762, 14013, 13301, 12625, 11984, 11376, 10798, 10250, 9729, 9235, 8766, 8321,
    7898, 7497, 7117, 6755, 6412, 6086, 5777, 5484, 5206, 4941, 4690, 4452, 4226, 4011, 3808,
    3614, 3431, 3257, 3091, 2934, 2785, 2644, 2509, 2382, 2261, 2146, 2037, 1934, 1836, 1742,
    1654, 1570, 1490, 1414, 1343, 1274, 1210, 1148, 1090, 1035, 982, 932, 885, 840, 797, 757,
    718, 682, 647, 614], np.int32)


def init_states(init_values: np.ndarray, qp: int) -> np.ndarray:
    """Initial context states ``int32 (N, 2)`` from 8-bit HEVC ``initValue`` entries.

    H.265 9.3.2.2 eqs. 9-4..9-6: ``m = 5 * (initValue >> 4) - 45``,
    ``n = ((initValue & 15) << 3) - 16``, ``preCtxState = Clip3(1, 126, ((m * Clip3(0, 51, qp)) >> 4) + n)``;
    the resulting (valMps, pStateIdx) is mapped to its probability (``_HEVC_STATE_PLPS``) and
    loaded into both estimators of the two-rate model (as H.266 9.3.2.2 loads ``preCtxState``
    into ``pStateIdx0/1``). Integer only.
    """
    v = np.asarray(init_values, np.int64)
    m = (v >> 4) * 5 - 45
    n = ((v & 15) << 3) - 16
    pre = np.clip(((m * int(np.clip(qp, 0, 51))) >> 4) + n, 1, 126)
    mps = pre > 63
    state = np.where(mps, pre - 64, 63 - pre)
    plps = _HEVC_STATE_PLPS[state].astype(np.int32)
    p1 = np.where(mps, (PROB_ONE - 1) - plps, plps).astype(np.int32)
    return np.ascontiguousarray(np.stack([p1, p1], -1).astype(np.int32))


# ---------------------------------------------------------------------------------------------
# writer


def new_writer(mode: int = MODE_ENCODE, capacity: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """A fresh writer ``(w, buf)`` (H.265 9.3.2.5 initialisation: low 0, range 510)."""
    w = np.zeros(W_SIZE, np.int64)
    w[W_MODE] = mode
    w[W_RANGE] = 510
    w[W_BITS_LEFT] = 23
    w[W_BUFFERED] = 0xFF
    return w, np.zeros(max(int(capacity), 16) if mode == MODE_ENCODE else 0, np.uint8)


@numba.njit(cache=True, nogil=True)
def reset_writer(w, mode):
    """Re-initialise the registers of ``w`` in place (keeps the caller's buffer)."""
    w[:] = 0
    w[W_MODE] = mode
    w[W_RANGE] = 510
    w[W_BITS_LEFT] = 23
    w[W_BUFFERED] = 0xFF


@numba.njit(cache=True, nogil=True, inline="always")
def _emit(w, buf, byte):
    pos = w[W_POS]
    if pos < buf.shape[0]:
        buf[pos] = byte
    w[W_POS] = pos + 1  # past capacity the byte is dropped; `ensure_capacity` prevents it


@numba.njit(cache=True, nogil=True)
def _write_out(w, buf):
    """Move the settled top byte of ``low`` to the output, resolving carries (HM writeOut)."""
    bits_left = w[W_BITS_LEFT]
    lead = w[W_LOW] >> (24 - bits_left)
    bits_left += 8
    w[W_BITS_LEFT] = bits_left
    w[W_LOW] &= 0xFFFFFFFF >> bits_left
    if lead == 0xFF:
        w[W_NUM_BUFFERED] += 1
    elif w[W_NUM_BUFFERED] > 0:
        carry = lead >> 8
        _emit(w, buf, (w[W_BUFFERED] + carry) & 0xFF)
        w[W_BUFFERED] = lead & 0xFF
        fill = (0xFF + carry) & 0xFF
        while w[W_NUM_BUFFERED] > 1:
            _emit(w, buf, fill)
            w[W_NUM_BUFFERED] -= 1
    else:
        w[W_NUM_BUFFERED] = 1
        w[W_BUFFERED] = lead


@numba.njit(cache=True, nogil=True)
def bin_cost(ctx, c, b):
    """Cost of coding bin ``b`` with context ``c`` now, in 1/2^15 bit (no adaptation)."""
    p = (ctx[c, 0] + ctx[c, 1]) >> 1
    mps = p >> 14
    q5 = ((32767 - p) if mps else p) >> 9
    return _COST_MPS[q5] if b == mps else _COST_LPS[q5]


@numba.njit(cache=True, nogil=True)
def put_bin(w, ctx, buf, c, b):
    """Code regular bin ``b`` (0/1) with context ``c`` (H.265 9.3.4.3.2 / H.266 9.3.4.3.2)."""
    p0 = ctx[c, 0]
    p1 = ctx[c, 1]
    p = (p0 + p1) >> 1
    mps = p >> 14
    q = (32767 - p) if mps else p
    ctx[c, 0] = p0 - (p0 >> RATE_FAST) + ((32767 * b) >> RATE_FAST)  # H.266 9.3.4.3.2.2
    ctx[c, 1] = p1 - (p1 >> RATE_SLOW) + ((32767 * b) >> RATE_SLOW)
    if w[W_MODE] != MODE_ENCODE:
        w[W_FRAC] += _COST_MPS[q >> 9] if b == mps else _COST_LPS[q >> 9]
        return
    rng = w[W_RANGE]
    lps = (((rng >> 5) * (q >> 9)) >> 1) + 4
    rng -= lps
    if b != mps:
        nbits = _RENORM[lps >> 3]
        w[W_LOW] = (w[W_LOW] + rng) << nbits
        w[W_RANGE] = lps << nbits
        bits_left = w[W_BITS_LEFT] - nbits
        w[W_BITS_LEFT] = bits_left
        if bits_left < 12:
            _write_out(w, buf)
    elif rng >= 256:
        w[W_RANGE] = rng
    else:
        w[W_LOW] <<= 1
        w[W_RANGE] = rng << 1
        bits_left = w[W_BITS_LEFT] - 1
        w[W_BITS_LEFT] = bits_left
        if bits_left < 12:
            _write_out(w, buf)


put_bin_inline = numba.njit(cache=True, nogil=True, inline="always")(put_bin.py_func)


@numba.njit(cache=True, nogil=True)
def put_bypass(w, buf, b):
    """Code one equiprobable bin (H.265 9.3.4.3.4)."""
    if w[W_MODE] != MODE_ENCODE:
        w[W_FRAC] += FRAC_ONE
        return
    w[W_LOW] <<= 1
    if b:
        w[W_LOW] += w[W_RANGE]
    w[W_BITS_LEFT] -= 1
    if w[W_BITS_LEFT] < 12:
        _write_out(w, buf)


@numba.njit(cache=True, nogil=True)
def put_bypass_bins(w, buf, value, n):
    """Code the ``n`` (0..32) low bits of ``value`` as bypass bins, most significant first."""
    if w[W_MODE] != MODE_ENCODE:
        w[W_FRAC] += n * FRAC_ONE
        return
    value &= (np.int64(1) << n) - 1
    while n > 8:
        n -= 8
        pattern = value >> n
        w[W_LOW] = (w[W_LOW] << 8) + w[W_RANGE] * pattern
        value -= pattern << n
        w[W_BITS_LEFT] -= 8
        if w[W_BITS_LEFT] < 12:
            _write_out(w, buf)
    w[W_LOW] = (w[W_LOW] << n) + w[W_RANGE] * value
    w[W_BITS_LEFT] -= n
    if w[W_BITS_LEFT] < 12:
        _write_out(w, buf)


@numba.njit(cache=True, nogil=True)
def put_terminate(w, buf, b):
    """Code a terminating bin (H.265 9.3.4.3.5: LPS range fixed at 2)."""
    if w[W_MODE] != MODE_ENCODE:
        w[W_FRAC] += 7 * FRAC_ONE if b else 0
        return
    w[W_RANGE] -= 2
    if b:
        w[W_LOW] = (w[W_LOW] + w[W_RANGE]) << 7
        w[W_RANGE] = 2 << 7
        w[W_BITS_LEFT] -= 7
    elif w[W_RANGE] >= 256:
        return
    else:
        w[W_LOW] <<= 1
        w[W_RANGE] <<= 1
        w[W_BITS_LEFT] -= 1
    if w[W_BITS_LEFT] < 12:
        _write_out(w, buf)


@numba.njit(cache=True, nogil=True)
def finish(w, buf):
    """Flush after a terminating bin equal to 1: resolve the pending bytes and carry, write
    the remaining bits of ``low``, the rbsp stop bit and zero alignment (H.265 9.3.4.3.5,
    7.3.2.11). Returns the payload length in bytes (``w[W_POS]``)."""
    if w[W_MODE] != MODE_ENCODE:
        return w[W_POS]
    bits_left = w[W_BITS_LEFT]
    low = w[W_LOW]
    if low >> (32 - bits_left):
        _emit(w, buf, (w[W_BUFFERED] + 1) & 0xFF)
        while w[W_NUM_BUFFERED] > 1:
            _emit(w, buf, 0x00)
            w[W_NUM_BUFFERED] -= 1
        low -= np.int64(1) << (32 - bits_left)
    else:
        if w[W_NUM_BUFFERED] > 0:
            _emit(w, buf, w[W_BUFFERED])
        while w[W_NUM_BUFFERED] > 1:
            _emit(w, buf, 0xFF)
            w[W_NUM_BUFFERED] -= 1
    w[W_NUM_BUFFERED] = 0
    nbits = 24 - bits_left  # the remaining bits of low >> 8, then the stop bit
    acc = ((low >> 8) << 1) | 1
    nbits += 1
    pad = (8 - nbits % 8) % 8
    acc <<= pad
    nbits += pad
    while nbits > 0:
        nbits -= 8
        _emit(w, buf, (acc >> nbits) & 0xFF)
    return w[W_POS]


@numba.njit(cache=True, nogil=True)
def ensure_capacity(w, buf, extra):
    """Return ``buf`` or a copy at least twice as large when fewer than ``extra`` bytes (plus
    the held-back 0xff run) remain; the caller keeps using the returned array."""
    need = w[W_POS] + w[W_NUM_BUFFERED] + extra
    if need <= buf.shape[0] or w[W_MODE] != MODE_ENCODE:
        return buf
    cap = max(need, 2 * buf.shape[0])
    out = np.zeros(cap, np.uint8)
    out[: buf.shape[0]] = buf
    return out


# ---------------------------------------------------------------------------------------------
# reader


@numba.njit(cache=True, nogil=True, inline="always")
def _read_byte(r, data):
    pos = r[R_POS]
    r[R_POS] = pos + 1
    if pos < data.shape[0]:
        return np.int64(data[pos])
    r[R_OVERRUN] += 1
    return np.int64(0)


@numba.njit(cache=True, nogil=True)
def start_reader(r, data):
    """Initialise the decoder registers on ``data`` (H.265 9.3.2.5: range 510, 9 bits of value
    plus 7 bits of look-ahead)."""
    r[:] = 0
    r[R_RANGE] = 510
    r[R_BITS_NEEDED] = -8
    hi = _read_byte(r, data)
    r[R_VALUE] = (hi << 8) | _read_byte(r, data)


def new_reader(data: bytes | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A reader ``(r, data_u8)`` positioned at the start of ``data``."""
    arr = np.frombuffer(bytes(data), np.uint8) if not isinstance(data, np.ndarray) else data.astype(np.uint8)
    r = np.zeros(R_SIZE, np.int64)
    start_reader(r, arr)
    return r, arr


@numba.njit(cache=True, nogil=True)
def get_bin(r, ctx, data, c):
    """Decode one regular bin with context ``c`` (mirror of `put_bin`)."""
    p0 = ctx[c, 0]
    p1 = ctx[c, 1]
    p = (p0 + p1) >> 1
    mps = p >> 14
    q = (32767 - p) if mps else p
    rng = r[R_RANGE]
    lps = (((rng >> 5) * (q >> 9)) >> 1) + 4
    rng -= lps
    scaled = rng << 7
    value = r[R_VALUE]
    if value < scaled:
        b = mps
        if rng < 256:
            r[R_RANGE] = rng << 1
            value <<= 1
            bits_needed = r[R_BITS_NEEDED] + 1
            if bits_needed == 0:
                bits_needed = -8
                value += _read_byte(r, data)
            r[R_BITS_NEEDED] = bits_needed
        else:
            r[R_RANGE] = rng
        r[R_VALUE] = value
    else:
        b = 1 - mps
        nbits = _RENORM[lps >> 3]
        value = (value - scaled) << nbits
        r[R_RANGE] = lps << nbits
        bits_needed = r[R_BITS_NEEDED] + nbits
        if bits_needed >= 0:
            value += _read_byte(r, data) << bits_needed
            bits_needed -= 8
        r[R_BITS_NEEDED] = bits_needed
        r[R_VALUE] = value
    ctx[c, 0] = p0 - (p0 >> RATE_FAST) + ((32767 * b) >> RATE_FAST)
    ctx[c, 1] = p1 - (p1 >> RATE_SLOW) + ((32767 * b) >> RATE_SLOW)
    return b


@numba.njit(cache=True, nogil=True)
def get_bypass(r, data):
    """Decode one bypass bin (mirror of `put_bypass`)."""
    value = r[R_VALUE] << 1
    bits_needed = r[R_BITS_NEEDED] + 1
    if bits_needed >= 0:
        bits_needed = -8
        value += _read_byte(r, data)
    r[R_BITS_NEEDED] = bits_needed
    scaled = r[R_RANGE] << 7
    if value >= scaled:
        r[R_VALUE] = value - scaled
        return 1
    r[R_VALUE] = value
    return 0


@numba.njit(cache=True, nogil=True)
def get_bypass_bins(r, data, n):
    """Decode ``n`` (0..32) bypass bins, most significant first (mirror of `put_bypass_bins`;
    8 bins per byte read as in HM's ``decodeBinsEP``)."""
    v = np.int64(0)
    value = r[R_VALUE]
    rng = r[R_RANGE]
    bits_needed = r[R_BITS_NEEDED]
    while n > 8:
        value = (value << 8) + (_read_byte(r, data) << (8 + bits_needed))
        scaled = rng << 15
        for _ in range(8):
            v <<= 1
            scaled >>= 1
            if value >= scaled:
                v += 1
                value -= scaled
        n -= 8
    bits_needed += n
    value <<= n
    if bits_needed >= 0:
        value += _read_byte(r, data) << bits_needed
        bits_needed -= 8
    scaled = rng << (n + 7)
    for _ in range(n):
        v <<= 1
        scaled >>= 1
        if value >= scaled:
            v += 1
            value -= scaled
    r[R_VALUE] = value
    r[R_BITS_NEEDED] = bits_needed
    return v


# Variants inlined at numba-IR level into the residual loops only (the hottest call sites):
# avoids the call overhead of passing three arrays per bin without inlining everywhere
# (which would multiply compile time).
get_bin_inline = numba.njit(cache=True, nogil=True, inline="always")(get_bin.py_func)


@numba.njit(cache=True, nogil=True)
def get_terminate(r, data):
    """Decode a terminating bin (mirror of `put_terminate`)."""
    r[R_RANGE] -= 2
    scaled = r[R_RANGE] << 7
    if r[R_VALUE] >= scaled:
        return 1
    if scaled < (256 << 7):
        r[R_RANGE] = scaled >> 6
        r[R_VALUE] <<= 1
        r[R_BITS_NEEDED] += 1
        if r[R_BITS_NEEDED] == 0:
            r[R_BITS_NEEDED] = -8
            r[R_VALUE] += _read_byte(r, data)
    return 0


@numba.njit(cache=True, nogil=True)
def reader_end_ok(r, data):
    """After a terminating bin equal to 1: True when exactly the whole payload was consumed,
    nothing was read past its end, and the last byte ends with the stop bit and zero
    alignment (the check of the HM decoder's ``finish``)."""
    if r[R_OVERRUN] != 0 or r[R_POS] != data.shape[0] or data.shape[0] == 0:
        return False
    last = np.int64(data[data.shape[0] - 1])
    return ((last << (8 + r[R_BITS_NEEDED])) & 0xFF) == 0x80


# ---------------------------------------------------------------------------------------------
# whole-sequence helpers (tests, benchmark)

KIND_REGULAR, KIND_BYPASS, KIND_TERMINATE = 0, 1, 2


@numba.njit(cache=True, nogil=True)
def _code_sequence(w, ctx, buf, kinds, ctx_ids, bins):
    for i in range(bins.shape[0]):
        if (i & 1023) == 0:
            buf = ensure_capacity(w, buf, 1024)  # at most 1024 bins (<= 1024 bytes) before the next check
        k = kinds[i]
        if k == KIND_REGULAR:
            put_bin(w, ctx, buf, ctx_ids[i], bins[i])
        elif k == KIND_BYPASS:
            put_bypass(w, buf, bins[i])
        else:
            put_terminate(w, buf, bins[i])
    put_terminate(w, buf, 1)
    buf = ensure_capacity(w, buf, 64)
    finish(w, buf)
    return buf


@numba.njit(cache=True, nogil=True)
def _decode_sequence(r, ctx, data, kinds, ctx_ids, out):
    for i in range(out.shape[0]):
        k = kinds[i]
        if k == KIND_REGULAR:
            out[i] = get_bin(r, ctx, data, ctx_ids[i])
        elif k == KIND_BYPASS:
            out[i] = get_bypass(r, data)
        else:
            out[i] = get_terminate(r, data)
    return get_terminate(r, data) == 1 and reader_end_ok(r, data)


def encode_bins(kinds, ctx_ids, bins, contexts, *, mode: int = MODE_ENCODE):
    """Code a bin sequence; returns ``(payload bytes, final contexts, counted 1/2^15 bits)``.

    ``kinds``: KIND_REGULAR / KIND_BYPASS / KIND_TERMINATE per bin; ``ctx_ids``: context row
    per regular bin. The sequence ends with a terminating 1 and the flush.
    """
    ctx = np.array(contexts, np.int32, copy=True)
    w, buf = new_writer(mode, capacity=len(bins) // 4 + 64)
    buf = _code_sequence(w, ctx, buf, np.asarray(kinds, np.int8), np.asarray(ctx_ids, np.int32),
                         np.asarray(bins, np.int8))
    return bytes(buf[: w[W_POS]]), ctx, int(w[W_FRAC])


def decode_bins(payload, kinds, ctx_ids, contexts):
    """Inverse of `encode_bins`: ``(bins int8, final contexts, ok)``; ``ok`` is False when the
    payload was too short or did not end where the terminating bin says."""
    ctx = np.array(contexts, np.int32, copy=True)
    r, data = new_reader(payload)
    out = np.zeros(len(kinds), np.int8)
    ok = _decode_sequence(r, ctx, data, np.asarray(kinds, np.int8), np.asarray(ctx_ids, np.int32), out)
    return out, ctx, bool(ok)
