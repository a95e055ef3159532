"""Vectorized scans of Arrow utf8 string arrays with numpy: character/word counts and ISO date parsing.

Everything here reads the raw offsets and data buffers of ``string``/``large_string`` arrays (zero-copy)
and works on whole buffers, never on one Python string at a time.

Definitions used by the counts:

* length = number of Unicode code points = number of UTF-8 bytes that are not continuation bytes
  (``0b10xxxxxx``); Arrow guarantees valid UTF-8, so this equals Python's ``len(s)``.
* whitespace = the code points U+0000..U+0020 (ASCII space and the ASCII control characters, which
  include ``\\t \\n \\v \\f \\r``). A word is a maximal run of other code points, i.e. the count
  equals ``len(re.findall(r"[^\\x00-\\x20]+", s))``. Unicode spaces such as U+00A0 or U+3000 are
  part of words: a byte-level scan cannot see them cheaply and they are rare in TMDB text.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.lib.stride_tricks import as_strided

__all__ = ["DateParts", "char_and_word_counts", "parse_iso_dates"]

# Bytes per scan block: big enough to amortise the per-block Python overhead, small enough that the
# temporaries (1 byte/byte, then 1 bit/byte) stay in cache between the passes over the block.
_BLOCK = 1 << 20
_MIN_CHUNK_ROWS = 16_384
_SPACE_MAX = 0x20  # bytes <= this are whitespace (see the module docstring)
_CONT_MAX_I8 = -65  # continuation bytes 0x80..0xBF are -128..-65 as int8
_DASH, _T, _BLANK, _ZERO = ord("-"), ord("T"), ord(" "), ord("0")
_DATE_WIDTH = 11  # 'YYYY-MM-DD' plus the byte after it ('T' or ' ' starts an ignored time part)
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int16)


def _chunks(col: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    """The arrays to scan; many small chunks are merged first because per-chunk overhead would dominate."""
    if isinstance(col, pa.Array):
        return [col]
    if col.num_chunks > 1 and len(col) < _MIN_CHUNK_ROWS * col.num_chunks:
        # large_string offsets cannot overflow however big the merged data gets.
        return [col.cast(pa.large_string()).combine_chunks()]
    return col.chunks


def _string_parts(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (offsets int64 [n+1], utf8 data uint8, valid bool [n]) of a string or large_string array.

    Offsets and data are zero-copy views (offsets are widened to int64 for string arrays).
    """
    n = len(arr)
    _, off_buf, data_buf = arr.buffers()
    if n == 0 or off_buf is None:
        return np.zeros(n + 1, np.int64), np.zeros(0, np.uint8), np.zeros(n, bool)
    off_type = np.int32 if pa.types.is_string(arr.type) else np.int64
    offsets = np.frombuffer(off_buf, dtype=off_type)[arr.offset : arr.offset + n + 1].astype(np.int64)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    valid = arr.is_valid().to_numpy(zero_copy_only=False) if arr.null_count else np.ones(n, bool)
    return offsets, data, valid


def _as_words(packed: np.ndarray) -> np.ndarray:
    """View little-endian packed bits (uint8) as uint64 words, zero-padding the tail."""
    if packed.size % 8:
        packed = np.concatenate([packed, np.zeros(8 - packed.size % 8, np.uint8)])
    return packed.view(np.uint64)


def _cumulative_counts(data: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sorted byte ``positions`` in [0, data.size], count word starts and continuation bytes before each.

    A word start here is a non-space byte whose previous byte in ``data`` is a space (or that is
    byte 0); string boundaries are the caller's business. Both flags are packed to 64-bit words per
    block and summed with ``bitwise_count`` + ``cumsum``, so the cost is a few SIMD passes over the
    data plus one popcount per position. Returns two int64 arrays aligned with ``positions``.
    """
    out = np.empty((2, positions.size), np.int64)  # row 0: word starts, row 1: continuation bytes
    base = np.zeros(2, np.int64)
    carry = np.uint8(0)  # 1 when the last byte of the previous block was a non-space
    j = 0
    for b0 in range(0, data.size, _BLOCK):
        blk = data[b0 : b0 + _BLOCK]
        nonspace = np.packbits(blk > _SPACE_MAX, bitorder="little")
        prev = nonspace << 1
        prev[1:] |= nonspace[:-1] >> 7
        prev[0] |= carry
        carry = np.uint8(blk[-1] > _SPACE_MAX)
        starts = nonspace & ~prev
        cont = np.packbits(blk.view(np.int8) <= _CONT_MAX_I8, bitorder="little")
        j1 = int(np.searchsorted(positions, b0 + blk.size, "left"))
        local = positions[j:j1] - b0
        word, below = local >> 6, np.left_shift(np.uint64(1), (local & 63).astype(np.uint64)) - np.uint64(1)
        for k, packed in enumerate((starts, cont)):
            bits = _as_words(packed)
            csum = np.zeros(bits.size + 1, np.int64)
            np.cumsum(np.bitwise_count(bits), out=csum[1:])
            out[k, j:j1] = base[k] + csum[word] + np.bitwise_count(bits[word] & below)
            base[k] += csum[-1]
        j = j1
    out[:, j:] = base[:, None]
    return out[0], out[1]


def _chunk_counts(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    offsets, data, valid = _string_parts(arr)
    lo = int(offsets[0])
    data = data[lo : int(offsets[-1])]
    local = offsets - lo
    words_cum, conts_cum = _cumulative_counts(data, local)
    nbytes = np.diff(local)
    words = np.diff(words_cum)
    if data.size:
        # A string that starts right after a non-space byte of the previous string lost its first
        # word start in the buffer-wide scan; add it back.
        first = np.minimum(local[:-1], data.size - 1)
        joined = (data[first] > _SPACE_MAX) & (data[np.maximum(first - 1, 0)] > _SPACE_MAX)
        words += joined & (nbytes > 0) & (first > 0)
    chars = nbytes - np.diff(conts_cum)
    if not valid.all():  # a null slot may still span bytes
        chars[~valid] = 0
        words[~valid] = 0
    return chars.astype(np.int32), words.astype(np.int32)


def char_and_word_counts(col: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Return (length in code points, word count) per string as int32 arrays; nulls give 0 and 0.

    ``col`` must be string or large_string; see the module docstring for what counts as a word.
    """
    chunks = _chunks(col)
    if not chunks:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    parts = [_chunk_counts(c) for c in chunks]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class DateParts:
    """Parsed dates as int16 arrays; 0 means unknown. ``day`` is set only for a valid calendar date."""

    __slots__ = ("day", "month", "year")

    def __init__(self, year: np.ndarray, month: np.ndarray, day: np.ndarray) -> None:
        self.year, self.month, self.day = year, month, day


def _needs_trim(offsets: np.ndarray, data: np.ndarray, valid: np.ndarray) -> bool:
    nonempty = valid & (offsets[1:] > offsets[:-1])
    if not nonempty.any():
        return False
    first = data[offsets[:-1][nonempty]]
    last = data[offsets[1:][nonempty] - 1]
    return bool((first <= _SPACE_MAX).any() or (last <= _SPACE_MAX).any())


def _chunk_dates(arr: pa.Array, year_min: int, year_max: int) -> DateParts:
    offsets, data, valid = _string_parts(arr)
    if _needs_trim(offsets, data, valid):
        arr = pc.utf8_trim_whitespace(arr)
        offsets, data, valid = _string_parts(arr)
    length = np.where(valid, np.diff(offsets), 0)
    # Gather the first _DATE_WIDTH bytes of every string through a sliding-window view (one index
    # per string, not per byte), then transpose so every byte position is a contiguous row.
    padded = np.concatenate([data, np.zeros(_DATE_WIDTH, np.uint8)])
    window = as_strided(padded, shape=(padded.size - _DATE_WIDTH + 1, _DATE_WIDTH), strides=(1, 1))
    b = np.ascontiguousarray(window[offsets[:-1]].T)
    # Bytes past the end of a string are never read unguarded: every test below checks `length`
    # before it trusts a byte position.
    d = b - np.uint8(_ZERO)  # uint8 wrap-around makes every non-digit > 9
    digit = d <= 9
    d = d.astype(np.int16)
    dash4, dash7 = b[4] == _DASH, b[7] == _DASH

    year = d[0] * 1000 + d[1] * 100 + d[2] * 10 + d[3]
    year_ok = (length >= 4) & digit[0] & digit[1] & digit[2] & digit[3] & ((length == 4) | dash4)
    year_ok &= (year >= year_min) & (year <= year_max)
    month = d[5] * 10 + d[6]
    month_ok = year_ok & (length >= 7) & dash4 & digit[5] & digit[6] & ((length == 7) | dash7)
    month_ok &= (month >= 1) & (month <= 12)
    day = d[8] * 10 + d[9]
    day_ok = month_ok & (length >= 10) & dash7 & digit[8] & digit[9]
    day_ok &= (length == 10) | (b[10] == _T) | (b[10] == _BLANK)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    days_in_month = _DAYS_IN_MONTH[np.where(month_ok, month, 0)] + (leap & (month == 2))
    day_ok &= (day >= 1) & (day <= days_in_month)

    zero = np.zeros(len(arr), np.int16)
    return DateParts(np.where(year_ok, year, zero), np.where(month_ok, month, zero), np.where(day_ok, day, zero))


def parse_iso_dates(col: pa.Array | pa.ChunkedArray, year_min: int, year_max: int) -> DateParts:
    """Parse ``YYYY``, ``YYYY-MM`` and ``YYYY-MM-DD`` strings (a trailing ``T...``/`` ...`` time is ignored).

    Leading/trailing whitespace is ignored. A year outside [year_min, year_max] makes the whole
    value unknown; a bad month keeps the year; a bad day (e.g. 2021-02-30) keeps year and month.
    Anything else (nulls, '', 'not a date', '12/31/1999', '20200101') is unknown. Never raises.
    """
    parts = [_chunk_dates(c, year_min, year_max) for c in _chunks(col)]
    if not parts:
        empty = np.zeros(0, np.int16)
        return DateParts(empty, empty, empty)
    return DateParts(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("year", "month", "day")))
