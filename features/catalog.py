"""Deterministic synthetic TMDB movie catalog, generated column-wise with numpy.

``generate_catalog_table(n, seed)`` returns a pyarrow Table with the TMDB fields the feature pipeline
reads (``movie_id`` int64, ``title``/``release_date``/``original_language``/``overview`` string,
``vote_average``/``popularity`` float64, ``vote_count`` int64, ``genre_ids`` list<int64>, ``adult``
bool); ``generate_catalog`` returns the same rows as a list of dicts. The same (n, seed,
messy_fraction) always gives identical output.

Distributions (chosen to look like TMDB's discover/export data):

* movie_id: unique, sparse (random gaps of 1-5 between consecutive ids), rows in shuffled order.
* popularity: Zipf-like, ``0.6 + 2000 * rank**-0.85`` for a random popularity rank, times log-normal
  noise. vote_count: log-normal correlated with popularity (median 4, mean ~18, ~28% zeros, max
  ~35k), like the long tail of TMDB's catalog.
* vote_average: normal(6.3, 1.0) clipped to [0, 10], rounded to 0.001; 0.0 when vote_count is 0.
* release_date: year = 2025 - Exponential(mean 18 years), wrapped into 1920-2025; uniform month/day.
* genre_ids: 1-4 draws (35/35/20/10%) from the 19 genres with TMDB-like weights, duplicates dropped.
* original_language: ~56% en, then fr/es/ja/de/it/ko/zh/ru/pt/hi and a tail of 20 other codes.
* title: 1-8 capitalised words (mostly 2-3); overview: Gamma-distributed word count (mean ~54,
  min 5), ~300 characters on average; words come from a Zipf-weighted vocabulary.
* adult: 1%.
* ``messy_fraction`` of the rows (exactly ``round(n * messy_fraction)``) get one defect each:
  a null field, empty title/overview, partial or malformed release_date, empty genre list, unknown
  genre ids, non-ASCII title or overview, missing vote data, or a blank/upper-case language.
  In ``generate_catalog`` null fields of those rows are dropped from the dicts (missing keys).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.engineering.tmdb_processor import TMDB_GENRE_IDS

__all__ = ["generate_catalog", "generate_catalog_table", "seed_movies", "zipf_ids"]

SEED_TITLE = "Test Movie {n}"
SEED_OVERVIEW = "Test movie description for performance testing. Movie {n}."


def seed_movies(count: int, title: str = SEED_TITLE, overview: str = SEED_OVERVIEW) -> list[dict[str, object]]:
    """The seed's own synthetic movies (seed 000, script 1.1): cyclic dates, votes, genres and languages.
    ``title`` and ``overview`` are format strings of ``n``, the movie's 1-based number."""
    return [
        {
            "movie_id": i + 1,
            "title": title.format(n=i + 1),
            "release_date": f"202{(i % 4) + 1}-{(i % 12) + 1:02d}-{(i % 28) + 1:02d}",
            "vote_average": 4.0 + (i % 60) * 0.1,
            "vote_count": 100 + i * 10,
            "popularity": 10.0 + (i % 90),
            "genre_ids": [28 + (i % 5)],
            "adult": i % 10 == 0,
            "original_language": ["en", "ko", "ja", "fr", "es"][i % 5],
            "overview": overview.format(n=i + 1),
        }
        for i in range(count)
    ]


# Rough share of each genre among TMDB genre assignments (same order as TMDB_GENRE_IDS).
_GENRE_WEIGHTS = {
    28: 7, 12: 4, 16: 3, 35: 14, 80: 5, 99: 6, 18: 20, 10751: 3.5, 14: 3, 36: 2,
    27: 6, 10402: 2.5, 9648: 3, 10749: 6, 878: 3.5, 10770: 2, 53: 8, 10752: 1.5, 37: 1,
}  # fmt: skip
_LANGUAGES = {
    "en": 56, "fr": 7, "es": 6, "ja": 5.5, "de": 4, "it": 3.5, "ko": 2.5, "zh": 2.5, "ru": 2,
    "pt": 2, "hi": 2, "sv": 0.7, "da": 0.5, "nl": 0.5, "tr": 0.5, "pl": 0.5, "cn": 0.5, "tl": 0.4,
    "th": 0.4, "id": 0.4, "ar": 0.4, "fa": 0.3, "xx": 0.3, "fi": 0.3, "no": 0.3, "cs": 0.3,
    "el": 0.2, "hu": 0.2, "he": 0.2, "ta": 0.2, "te": 0.2,
}  # fmt: skip
_COMMON_WORDS = (  # split in _vocabulary
    "the a of and to in his her their when after must who with an is for on young man woman family "
    "life love world new finds one two years old city town secret war lost home father mother son "
    "daughter friends story journey discovers true dark night death past team group help save against "
    "small mysterious strange dangerous last first together forced begins while becomes"
)
_SYLLABLES = ("ka", "lo", "mi", "ra", "ne", "to", "shi", "va", "den", "mor",
              "bel", "tin", "gar", "ro", "su", "lan", "fe", "dri", "ko", "pa")  # fmt: skip
_UNICODE_TITLES = (
    "Amélie", "千と千尋の神隠し", "Москва слезам не верит", "La Haine 🎬", "Der Himmel über Berlin",
    "臥虎藏龍", "Ðôn Juan", "Łódź Story", "Çocuklar", "기생충", "Z — ζ", "Niño\u00a0Pez",
)  # fmt: skip
_UNICODE_OVERVIEWS = (  # each starts with a non-ASCII character: short slots keep only the start
    "Éloïse, une jeune femme, découvre un secret à Paris… et tout change.",
    "東京の若い女性が、失われた家族を探す旅に出る。",
    "Молодой человек возвращается домой после войны.",
    "Über den Dächern von Berlin verliebt sich ein Engel in eine Zirkusartistin. 🎭",
    "¿Y si una familia pobre se infiltra en la vida de una familia rica? — con consecuencias.",
)
_BAD_DATES = ("", "not a date", "2020-13-45", "0000-00-00", "12/31/1999", "2021-02-30", "19xx")
_TITLE_WORDS_P = (0.15, 0.30, 0.25, 0.13, 0.08, 0.05, 0.03, 0.01)
_GENRES_PER_MOVIE_P = (0.35, 0.35, 0.20, 0.10)
_N_MESS_KINDS = 10
_FIELDS_THAT_CAN_BE_NULL = (
    "title", "release_date", "vote_average", "vote_count", "popularity",
    "genre_ids", "adult", "original_language", "overview",
)  # fmt: skip


def _vocabulary() -> list[str]:
    """Common English overview words plus 400 two/three-syllable pseudo-words (fixed, seed-independent)."""
    s = _SYLLABLES
    pseudo = [s[i % 20] + s[(i * 7 + 3) % 20] + (s[(i * 13) % 20] if i % 3 else "") for i in range(400)]
    return _COMMON_WORDS.split() + pseudo


def _check_args(n: int, messy_fraction: float) -> None:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    if not (0.0 <= messy_fraction <= 1.0):
        raise ValueError(f"messy_fraction must be in [0, 1], got {messy_fraction!r}")


def _text_column(
    rng: np.random.Generator,
    words: list[str],
    counts: np.ndarray,
    edits: tuple[list[int], list[str | None]] = ([], []),
) -> pa.Array:
    """Strings of ``counts[i]`` space-separated words each, cut from one endless random text.

    A block of Zipf-weighted random words is generated once and repeated; string i takes the next
    ``counts[i]`` words and the separator space after them is dropped. This writes ~300 MB of
    overview text for 1M movies with a few numpy passes instead of 50M Python string operations.
    ``edits`` (rows, values) are applied without copying the column: None -> null, "" -> empty,
    other text overwrites the row's bytes (repeated/truncated to the same UTF-8 byte length).
    """
    n = counts.size
    rows, values = np.array(edits[0], np.int64), edits[1]
    blank = rows[[v is None or v == "" for v in values]]
    counts = counts.copy()
    counts[blank] = 0
    vocab = np.array(words, dtype=object)
    weights = 1.0 / np.arange(1, len(words) + 1) ** 0.9
    block_words = int(min(max(counts.sum(), 1), 1 << 20))
    sample = rng.choice(len(words), size=block_words, p=weights / weights.sum())
    block = np.frombuffer((" ".join(vocab[sample]) + " ").encode(), np.uint8)
    word_starts = np.concatenate([[0], np.flatnonzero(block == ord(" "))[:-1] + 1])

    def position(word_index: np.ndarray) -> np.ndarray:  # byte offset of a word in the endless text
        return (word_index // block_words) * block.size + word_starts[word_index % block_words]

    ends = np.cumsum(counts)
    cut = position(ends[counts > 0]) - 1  # the space after each string's last word
    total = int(position(ends[-1:])[0]) if n else 0
    data = np.empty(total - cut.size, np.uint8)
    written = 0
    for base in range(0, total, block.size):  # one repetition of the block at a time
        piece = block[: min(block.size, total - base)]
        lo, hi = np.searchsorted(cut, [base, base + piece.size])
        keep = np.ones(piece.size, bool)
        keep[cut[lo:hi] - base] = False
        size = piece.size - (hi - lo)
        np.compress(keep, piece, out=data[written : written + size])
        written += size
    removed_before = np.concatenate([[0], np.cumsum(counts > 0)[:-1]])
    starts = position(np.concatenate([[0], ends[:-1]])) - removed_before
    if data.size >= 2**31:
        raise ValueError("catalog too large for 32-bit string offsets; generate it in parts")
    offsets = np.append(starts, data.size).astype(np.int32)
    for row, value in zip(rows.tolist(), values, strict=True):
        if value:
            begin, stop = int(offsets[row]), int(offsets[row + 1])
            _overwrite(data[begin:stop], value)
    valid = np.ones(n, bool)
    valid[rows[[v is None for v in values]]] = False
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if not valid.all() else None
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data), bitmap)


def _overwrite(slot: np.ndarray, text: str) -> None:
    """Fill ``slot`` with ``text`` repeated, cut at a character boundary and padded with '.'."""
    encoded = (text + " ").encode()
    fill = np.frombuffer(encoded * (slot.size // len(encoded) + 1), np.uint8)[: slot.size + 1].copy()
    end = slot.size
    while end and (fill[end] & 0xC0) == 0x80:  # don't split a multi-byte character
        end -= 1
    fill[end:] = ord(".")
    slot[:] = fill[: slot.size]


def _date_column(rng: np.random.Generator, n: int) -> pa.StringArray:
    """'YYYY-MM-DD' strings written straight into a fixed-width byte buffer."""
    year = 2025 - (rng.exponential(18.0, n).astype(np.int64) % 106)
    month = rng.integers(1, 13, n)
    first = ((year - 1970) * 12 + month - 1).astype("datetime64[M]")
    dim = ((first + 1).astype("datetime64[D]") - first.astype("datetime64[D]")).astype(np.int64)
    day = (rng.random(n) * dim).astype(np.int64) + 1
    buf = np.full((n, 10), ord("-"), np.uint8)
    for col, (value, div) in enumerate([(year, 1000), (year, 100), (year, 10), (year, 1)]):
        buf[:, col] = ord("0") + (value // div) % 10
    for col, value in ((5, month), (8, day)):
        buf[:, col] = ord("0") + value // 10
        buf[:, col + 1] = ord("0") + value % 10
    offsets = np.arange(0, 10 * n + 1, 10, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(buf))


def _genre_column(rng: np.random.Generator, n: int) -> pa.ListArray:
    ids = np.array(list(TMDB_GENRE_IDS), np.int64)
    w = np.array([_GENRE_WEIGHTS[g] for g in ids], float)
    draws = rng.choice(ids, size=(n, 4), p=w / w.sum())
    k = rng.choice(4, size=n, p=_GENRES_PER_MOVIE_P) + 1
    keep = np.arange(4) < k[:, None]
    for j in range(1, 4):  # drop repeats of an earlier draw, keeping the original order
        keep[:, j] &= (draws[:, j : j + 1] != draws[:, :j]).all(axis=1)
    offsets = np.concatenate([[0], np.cumsum(keep.sum(axis=1))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(draws[keep]))


def _replace(arr: pa.Array, rows: np.ndarray, values: list[object]) -> pa.Array:
    if pa.types.is_list(arr.type):  # replace_with_mask has no list kernel: append and gather
        index = np.arange(len(arr))
        index[rows] = len(arr) + np.arange(rows.size)
        return pa.concat_arrays([arr, pa.array(values, type=arr.type)]).take(pa.array(index))
    mask = np.zeros(len(arr), bool)
    mask[rows] = True
    in_row_order = [values[i] for i in np.argsort(rows)]  # replace_with_mask consumes them in order
    return pc.replace_with_mask(arr, pa.array(mask), pa.array(in_row_order, type=arr.type))


def _plan_mess(
    rng: np.random.Generator, n: int, fraction: float, dates: pa.Array
) -> dict[str, tuple[list[int], list[object]]]:
    """Pick ``round(n * fraction)`` distinct rows and one realistic defect for each: field -> (rows, values)."""
    rows = rng.choice(n, size=round(n * fraction), replace=False)
    kinds = rng.integers(0, _N_MESS_KINDS, rows.size)
    picks = rng.integers(0, 1 << 30, rows.size)  # one random number per row picks the variant
    edits: dict[str, tuple[list[int], list[object]]] = {}

    def put(field: str, row: int, value: object) -> None:
        where, values = edits.setdefault(field, ([], []))
        where.append(row)
        values.append(value)

    messy_dates = dates.take(pa.array(rows)).to_pylist()
    for row, kind, pick, date in zip(rows.tolist(), kinds.tolist(), picks.tolist(), messy_dates, strict=True):
        if kind == 0:
            put(_FIELDS_THAT_CAN_BE_NULL[pick % len(_FIELDS_THAT_CAN_BE_NULL)], row, None)
        elif kind == 1:
            put("title" if pick % 2 else "overview", row, "")
        elif kind == 2:  # partial date: 'YYYY' or 'YYYY-MM'
            put("release_date", row, date[: 4 if pick % 2 else 7])
        elif kind == 3:
            put("release_date", row, _BAD_DATES[pick % len(_BAD_DATES)])
        elif kind == 4:
            put("genre_ids", row, [])
        elif kind == 5:
            put("genre_ids", row, [[99999], [0, 18], [28, -1], [10769]][pick % 4])
        elif kind == 6:
            put("title", row, _UNICODE_TITLES[pick % len(_UNICODE_TITLES)])
        elif kind == 7:
            put("overview", row, _UNICODE_OVERVIEWS[pick % len(_UNICODE_OVERVIEWS)])
        elif kind == 8:
            put("vote_average", row, None)
            put("vote_count", row, None)
        else:
            put("original_language", row, ["", " ", "EN", "Fr "][pick % 4])
    return edits


def generate_catalog_table(n: int, seed: int = 42, messy_fraction: float = 0.03) -> pa.Table:
    """Return ``n`` synthetic TMDB movies as a pyarrow Table (see the module docstring).

    ``seed`` fixes every random choice; ``messy_fraction`` in [0, 1] is the share of rows with one
    defect. For n = 1M: ~390 MB table, ~700 MB peak RSS, 1.5-3 s on the 2-core dev machine.
    Raises ValueError naming the parameter when n < 0 (or not an int) or messy_fraction is outside
    [0, 1].
    """
    _check_args(n, messy_fraction)
    rng = np.random.default_rng(seed)
    ids = np.cumsum(rng.integers(1, 6, n))
    rank = rng.permutation(n) + 1
    popularity = (0.6 + 2000.0 * rank**-0.85) * rng.lognormal(0.0, 0.25, n)
    votes = np.floor(np.expm1(np.clip(rng.normal(0.9 * np.log(popularity) + 2.0, 1.6), 0, None)))
    votes = votes.astype(np.int64)
    average = np.where(votes > 0, np.round(np.clip(rng.normal(6.3, 1.0, n), 0, 10), 3), 0.0)
    vocab = _vocabulary()
    title_words = rng.choice(8, size=n, p=_TITLE_WORDS_P) + 1
    overview_words = np.maximum(rng.gamma(4.0, 13.75, n).astype(np.int64), 5)
    langs = list(_LANGUAGES)
    lw = np.array(list(_LANGUAGES.values()))
    dates = _date_column(rng, n)
    edits = _plan_mess(rng, n, messy_fraction, dates) if n else {}
    cols: dict[str, pa.Array] = {
        "movie_id": pa.array(rng.permutation(ids)),
        "title": _text_column(rng, [w.capitalize() for w in vocab], title_words),
        "release_date": dates,
        "vote_average": pa.array(average),
        "vote_count": pa.array(votes),
        "popularity": pa.array(np.round(popularity, 3)),
        "genre_ids": _genre_column(rng, n),
        "adult": pa.array(rng.random(n) < 0.01),
        "original_language": pa.DictionaryArray.from_arrays(
            rng.choice(len(langs), size=n, p=lw / lw.sum()).astype(np.int32), langs
        ).cast(pa.string()),
        # The overview (~300 MB at 1M rows) takes its defects while it is built, not as a copy.
        "overview": _text_column(rng, vocab, overview_words, edits.pop("overview", ([], []))),
    }
    for name, (rows, values) in edits.items():
        cols[name] = _replace(cols[name], np.array(rows), values)
    return pa.table(cols)


def generate_catalog(n: int, seed: int = 42, messy_fraction: float = 0.03) -> list[dict[str, object]]:
    """Return the rows of ``generate_catalog_table(n, seed, messy_fraction)`` as a list of dicts.

    Fields that are null in the table are left out of their dict (missing keys), as in real TMDB
    dumps. Raises ValueError like :func:`generate_catalog_table`.
    """
    table = generate_catalog_table(n, seed, messy_fraction)
    rows = table.to_pylist()
    has_null = np.zeros(n, bool)
    for col in table.columns:
        if col.null_count:
            has_null |= col.is_null().to_numpy()
    for i in np.flatnonzero(has_null).tolist():
        rows[i] = {k: v for k, v in rows[i].items() if v is not None}
    return rows


def zipf_ids(
    catalog_ids: np.ndarray | list[int],
    size: int,
    s: float = 1.1,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Sample ``size`` ids from ``catalog_ids`` with Zipf-like skew (with replacement), as int64.

    The id at position i (0-based) of ``catalog_ids`` is drawn with probability proportional to
    ``(i + 1) ** -s``, so pass the ids ordered from most to least popular (or shuffled, for a skew
    that is independent of the id values). With s = 1.1 and 1M ids the top 1% of ids gets ~70% of
    the draws. ``rng`` is a numpy Generator or a seed (None: fresh entropy). O(len(catalog_ids) +
    size * log(len(catalog_ids))).

    Raises ValueError when size < 0, s <= 0, or catalog_ids is empty while size > 0.
    """
    ids = np.asarray(catalog_ids, dtype=np.int64)
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size!r}")
    if not s > 0:
        raise ValueError(f"s must be > 0, got {s!r}")
    if ids.size == 0:
        if size:
            raise ValueError("catalog_ids must not be empty when size > 0")
        return np.zeros(0, np.int64)
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    cdf = np.cumsum(np.arange(1, ids.size + 1, dtype=np.float64) ** -s)
    picks = np.searchsorted(cdf, gen.random(size) * cdf[-1], side="right")
    return ids[np.minimum(picks, ids.size - 1)]
