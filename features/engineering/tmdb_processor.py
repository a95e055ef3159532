"""Vectorized feature extraction for TMDB-like movie records (Arrow + numpy, no per-row Python).

Usage (the legacy call is kept)::

    AdvancedTMDBPreProcessor(list_of_dicts).extract_all_features()        # -> pandas.DataFrame
    AdvancedTMDBPreProcessor(arrow_table).extract_all_features_table()    # -> pyarrow.Table (fast path)

Input: a list of dicts, a pandas DataFrame or a pyarrow Table/RecordBatch with the TMDB fields
``movie_id, title, release_date, vote_average, vote_count, popularity, genre_ids, adult,
original_language, overview``. Missing fields, None, wrong-ish types and malformed values all give
defined outputs (see ``_coerce`` for the per-value rules); only a record without a usable
``movie_id`` raises ValueError.

Output: one row per input record, in input order, with the columns and dtypes of
:data:`OUTPUT_SCHEMA` (no nulls, no NaN):

* ``movie_id`` int64, always first.
* ``release_year`` int16, ``release_month`` int8 (1-12), ``release_dayofweek`` int8 (ISO: 1 = Monday
  ... 7 = Sunday); 0 means unknown. Dates are parsed by ``_arrow_text.parse_iso_dates``; years
  outside [:data:`YEAR_MIN`, :data:`YEAR_MAX`] count as missing.
* ``age_years`` float64: (reference_date - release date) in days / 365.25; negative for releases
  after the reference date. A year-only date counts as July 1, a year-month date as the 15th.
  0.0 when release_date_missing.
* ``vote_average`` float64 (valid range 0-10, else missing; missing -> C below),
  ``log_vote_count`` = log1p(vote_count) and ``log_popularity`` = log1p(popularity) float64 (valid
  when >= 0, else missing; missing -> 0.0).
* ``weighted_rating`` float64, the IMDB formula WR = v/(v+m)*R + m/(v+m)*C per movie, where v is
  the vote count (missing -> 0) and R the vote average (missing -> C). By default the prior comes
  from the batch: m = 90th percentile (numpy's linear interpolation) of the valid vote counts and
  C = mean of the valid vote averages; with no valid counts m = 0, with no valid averages
  C = :data:`FALLBACK_MEAN_VOTE`. A batch of one movie therefore gets WR = R. When v + m == 0
  (no evidence at all) WR = C. Pass ``rating_prior=(m, C)`` to pin the prior (e.g. to the values
  of the whole catalog) so that results do not depend on the batch.
* ``is_adult`` int8 (missing -> 0).
* ``genre_<name>`` int8 multi-hot for the 19 :data:`TMDB_GENRE_IDS` (duplicates count once),
  ``genre_count`` int8 = number of distinct known genres, ``genre_unknown_count`` int32 = number of
  list elements that are not one of the 19 ids (including null or non-integer elements).
* ``lang_<code>`` int8 one-hot over :data:`TOP_LANGUAGES` plus ``lang_other``; the code is trimmed and
  lower-cased first. A missing or blank language sets none of them (see ``language_missing``).
* ``title_length``, ``title_word_count``, ``overview_length``, ``overview_word_count`` int32:
  Unicode code points and words, where whitespace is U+0000..U+0020 (details in ``_arrow_text``).
* int8 indicators (1 = yes): ``release_date_missing`` (no usable year), ``release_date_partial``
  (a year but no valid full date), ``vote_average_missing``, ``vote_count_missing``,
  ``popularity_missing``, ``genres_missing`` (null, unparsable or empty list), ``language_missing``,
  ``adult_missing``, ``title_missing`` and ``overview_missing`` (null, empty or whitespace only).
"""

from __future__ import annotations

import datetime as dt
import functools
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.engineering._arrow_text import char_and_word_counts, parse_iso_dates
from features.engineering._coerce import to_canonical_table

__all__ = [
    "DEFAULT_REFERENCE_DATE",
    "FALLBACK_MEAN_VOTE",
    "FEATURE_COLUMNS",
    "OUTPUT_SCHEMA",
    "TMDB_GENRE_IDS",
    "TOP_LANGUAGES",
    "VOTE_COUNT_QUANTILE",
    "YEAR_MAX",
    "YEAR_MIN",
    "AdvancedTMDBPreProcessor",
]

#: The 19 official TMDB movie genres (id -> name), in the order of the ``genre_<name>`` columns.
TMDB_GENRE_IDS: dict[int, str] = {
    28: "Action",
    12: "Adventure",
    16: "Animation",
    35: "Comedy",
    80: "Crime",
    99: "Documentary",
    18: "Drama",
    10751: "Family",
    14: "Fantasy",
    36: "History",
    27: "Horror",
    10402: "Music",
    9648: "Mystery",
    10749: "Romance",
    878: "Science Fiction",
    10770: "TV Movie",
    53: "Thriller",
    10752: "War",
    37: "Western",
}
#: ISO 639-1 codes that get their own ``lang_<code>`` column; every other code goes to ``lang_other``.
TOP_LANGUAGES: tuple[str, ...] = ("en", "fr", "es", "ja", "de", "it", "ko", "zh", "ru", "pt", "hi")
#: Default date that ``age_years`` is measured against (fixed, so results are reproducible).
DEFAULT_REFERENCE_DATE = dt.date(2025, 1, 1)
#: Quantile of the batch's vote counts used as ``m`` in the weighted rating.
VOTE_COUNT_QUANTILE = 0.90
#: ``C`` of the weighted rating when no record of the batch has a valid vote_average (middle of 0-10).
FALLBACK_MEAN_VOTE = 5.0
#: Release years outside [YEAR_MIN, YEAR_MAX] are treated as missing (TMDB's oldest film is from 1874).
YEAR_MIN, YEAR_MAX = 1800, 2200
_DAYS_PER_YEAR = 365.25
_EPOCH = dt.date(1970, 1, 1)

_GENRE_COLUMNS = ["genre_" + re.sub(r"\W+", "_", name.lower()) for name in TMDB_GENRE_IDS.values()]
_LANG_COLUMNS = [f"lang_{code}" for code in (*TOP_LANGUAGES, "other")]
_INDICATORS = [
    "release_date_missing",
    "release_date_partial",
    "vote_average_missing",
    "vote_count_missing",
    "popularity_missing",
    "genres_missing",
    "language_missing",
    "adult_missing",
    "title_missing",
    "overview_missing",
]
#: Output columns and their dtypes, in order (``movie_id`` first).
OUTPUT_SCHEMA = pa.schema(
    [
        ("movie_id", pa.int64()),
        ("release_year", pa.int16()),
        ("release_month", pa.int8()),
        ("release_dayofweek", pa.int8()),
        ("age_years", pa.float64()),
        ("vote_average", pa.float64()),
        ("log_vote_count", pa.float64()),
        ("log_popularity", pa.float64()),
        ("weighted_rating", pa.float64()),
        ("is_adult", pa.int8()),
        *((name, pa.int8()) for name in _GENRE_COLUMNS),
        ("genre_count", pa.int8()),
        ("genre_unknown_count", pa.int32()),
        *((name, pa.int8()) for name in _LANG_COLUMNS),
        ("title_length", pa.int32()),
        ("title_word_count", pa.int32()),
        ("overview_length", pa.int32()),
        ("overview_word_count", pa.int32()),
        *((name, pa.int8()) for name in _INDICATORS),
    ]
)
#: The feature columns (every output column except ``movie_id``).
FEATURE_COLUMNS: tuple[str, ...] = tuple(OUTPUT_SCHEMA.names[1:])

# Genre id -> column index (0..18); every other id maps to _UNKNOWN.
_UNKNOWN = len(TMDB_GENRE_IDS)
_GENRE_LUT = np.full(max(TMDB_GENRE_IDS) + 1, _UNKNOWN, np.int8)
_GENRE_LUT[list(TMDB_GENRE_IDS)] = np.arange(len(TMDB_GENRE_IDS), dtype=np.int8)
_LANG_OTHER, _LANG_MISSING = len(TOP_LANGUAGES), len(TOP_LANGUAGES) + 1


def _as_date(value: dt.date | str | None) -> dt.date:
    if value is None:
        return DEFAULT_REFERENCE_DATE
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"reference_date must be 'YYYY-MM-DD', got {value!r}") from None
    raise TypeError(f"reference_date must be a date, an ISO string or None, got {type(value).__name__}")


def _combined(col: pa.ChunkedArray) -> pa.Array:
    return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)


def _numbers(col: pa.ChunkedArray, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """Return (values float64, valid bool); nulls, NaN/inf and values outside [low, high] are invalid."""
    x = col.to_numpy().astype(np.float64, copy=False)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(x) & (x >= low) & (x <= high)
    return x, valid


def _days_since_epoch(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days from 1970-01-01 of proleptic Gregorian dates (H. Hinnant's days_from_civil, vectorized)."""
    y = year - (month <= 2)
    era = y // 400
    year_of_era = y - era * 400
    day_of_year = (153 * np.where(month > 2, month - 3, month + 9) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _date_features(col: pa.ChunkedArray, reference: dt.date) -> dict[str, np.ndarray]:
    parts = parse_iso_dates(col, YEAR_MIN, YEAR_MAX)
    year, month, day = (x.astype(np.int64) for x in (parts.year, parts.month, parts.day))
    known = year > 0
    # Partial dates are placed mid-period: July 1 for a bare year, the 15th for a year-month.
    eff_month = np.where(month > 0, month, 7)
    eff_day = np.where(day > 0, day, np.where(month > 0, 15, 1))
    days = _days_since_epoch(year, eff_month, eff_day)
    ref_days = (reference - _EPOCH).days
    return {
        "release_year": year.astype(np.int16),
        "release_month": month.astype(np.int8),
        # 1970-01-01 was a Thursday (ISO 4).
        "release_dayofweek": np.where(day > 0, (days + 3) % 7 + 1, 0).astype(np.int8),
        "age_years": np.where(known, (ref_days - days) / _DAYS_PER_YEAR, 0.0),
        "release_date_missing": (~known).astype(np.int8),
        "release_date_partial": (known & (day == 0)).astype(np.int8),
    }


def _genre_features(col: pa.ChunkedArray, n: int) -> dict[str, np.ndarray]:
    arr = _combined(col)
    offsets = arr.offsets.to_numpy()
    lengths = np.diff(offsets)
    flat = arr.values.slice(offsets[0], offsets[-1] - offsets[0])
    # Null elements become -1, which is not a genre id, so they count as unknown.
    ids = pc.fill_null(flat, -1).to_numpy()
    rows = np.repeat(np.arange(n), lengths)
    listed = arr.is_valid().to_numpy(zero_copy_only=False) if arr.null_count else np.ones(n, bool)
    if arr.null_count:  # a null list may still own child values; ignore them
        keep = listed[rows]
        ids, rows = ids[keep], rows[keep]
        lengths = np.where(listed, lengths, 0)
    in_lut = (ids >= 0) & (ids < _GENRE_LUT.size)
    codes = np.where(in_lut, _GENRE_LUT[np.where(in_lut, ids, 0)], _UNKNOWN)
    # One row per genre (+1 sink row for unknown ids) so that every output column is contiguous.
    hot = np.zeros((_UNKNOWN + 1, n), np.int8)
    hot[codes, rows] = 1
    out = dict(zip(_GENRE_COLUMNS, hot[:_UNKNOWN], strict=True))
    out["genre_count"] = hot[:_UNKNOWN].sum(axis=0, dtype=np.int8)
    out["genre_unknown_count"] = np.bincount(rows[codes == _UNKNOWN], minlength=n).astype(np.int32)
    out["genres_missing"] = (lengths == 0).astype(np.int8)
    return out


def _language_features(col: pa.ChunkedArray) -> dict[str, np.ndarray]:
    encoded = _combined(col).dictionary_encode()
    # Normalise and look up only the distinct values, then broadcast through the indices.
    words = pc.utf8_lower(pc.utf8_trim_whitespace(encoded.dictionary))
    lut = pc.fill_null(pc.index_in(words, value_set=pa.array(TOP_LANGUAGES)), _LANG_OTHER).to_numpy()
    lut = np.where(pc.utf8_length(words).to_numpy() == 0, _LANG_MISSING, lut)
    lut = np.append(lut, _LANG_MISSING).astype(np.int8)  # last slot: null language
    indices = pc.fill_null(encoded.indices, len(lut) - 1).to_numpy()
    codes = lut[indices]
    out = {name: (codes == k).astype(np.int8) for k, name in enumerate(_LANG_COLUMNS)}
    out["language_missing"] = (codes == _LANG_MISSING).astype(np.int8)
    return out


def _text_features(col: pa.ChunkedArray, name: str) -> dict[str, np.ndarray]:
    length, words = char_and_word_counts(col)
    return {
        f"{name}_length": length,
        f"{name}_word_count": words,
        f"{name}_missing": (words == 0).astype(np.int8),
    }


class AdvancedTMDBPreProcessor:
    """Feature extractor for a batch of TMDB-like movies; see the module docstring for the output.

    The input is converted once, in the constructor, to a canonical Arrow table; the extract methods
    can then be called any number of times.
    """

    def __init__(
        self,
        movies: list[dict[str, object]] | pd.DataFrame | pa.Table,
        reference_date: dt.date | str | None = None,
        *,
        rating_prior: tuple[float, float] | None = None,
    ) -> None:
        """Convert ``movies`` to the canonical table.

        ``reference_date`` (date, datetime or 'YYYY-MM-DD'; default :data:`DEFAULT_REFERENCE_DATE`)
        is what ``age_years`` is measured against. ``rating_prior`` pins (m, C) of the weighted
        rating (m >= 0 votes, 0 <= C <= 10) instead of deriving them from the batch.

        Raises ValueError for a record without a usable movie_id (message names its 0-based
        position), a malformed reference_date string or an invalid rating_prior; TypeError for an
        unsupported ``movies`` or ``reference_date`` type.
        """
        self.reference_date = _as_date(reference_date)
        if rating_prior is not None:
            try:
                m, c = (float(v) for v in rating_prior)
            except (TypeError, ValueError):
                m = c = float("nan")
            if not (np.isfinite(m) and m >= 0 and np.isfinite(c) and 0 <= c <= 10):
                raise ValueError(f"rating_prior must be (m >= 0, 0 <= C <= 10), got {rating_prior!r}")
            rating_prior = (m, c)
        self._pinned_prior = rating_prior
        self._table = to_canonical_table(movies)

    @functools.cached_property
    def _ratings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        vote_average, average_ok = _numbers(self._table.column("vote_average"), 0.0, 10.0)
        vote_count, count_ok = _numbers(self._table.column("vote_count"), 0.0, np.inf)
        return vote_average, average_ok, vote_count, count_ok

    @property
    def rating_prior(self) -> tuple[float, float]:
        """(m, C) used by ``weighted_rating``: pinned in the constructor or derived from this batch."""
        if self._pinned_prior is not None:
            return self._pinned_prior
        vote_average, average_ok, vote_count, count_ok = self._ratings
        m = float(np.quantile(vote_count[count_ok], VOTE_COUNT_QUANTILE)) if count_ok.any() else 0.0
        c = float(vote_average[average_ok].mean()) if average_ok.any() else FALLBACK_MEAN_VOTE
        return m, c

    def _rating_features(self) -> dict[str, np.ndarray]:
        vote_average, average_ok, vote_count, count_ok = self._ratings
        popularity, popularity_ok = _numbers(self._table.column("popularity"), 0.0, np.inf)
        m, c = self.rating_prior
        r = np.where(average_ok, vote_average, c)
        v = np.where(count_ok, vote_count, 0.0)
        denominator = v + m
        with np.errstate(invalid="ignore", divide="ignore"):
            weighted = np.where(denominator > 0, (v * r + m * c) / denominator, c)
        return {
            "vote_average": r,
            "log_vote_count": np.log1p(v),
            "log_popularity": np.log1p(np.where(popularity_ok, popularity, 0.0)),
            "weighted_rating": weighted,
            "vote_average_missing": (~average_ok).astype(np.int8),
            "vote_count_missing": (~count_ok).astype(np.int8),
            "popularity_missing": (~popularity_ok).astype(np.int8),
        }

    def extract_all_features_table(self) -> pa.Table:
        """Return the features as a pyarrow Table with :data:`OUTPUT_SCHEMA` (fast path, no nulls)."""
        t, n = self._table, self._table.num_rows
        adult = pc.fill_null(t.column("adult"), False).to_numpy()
        columns: dict[str, np.ndarray] = {
            "movie_id": t.column("movie_id").to_numpy(),
            "is_adult": adult.astype(np.int8),
            "adult_missing": t.column("adult").is_null().to_numpy().astype(np.int8),
        }
        columns.update(_date_features(t.column("release_date"), self.reference_date))
        columns.update(self._rating_features())
        columns.update(_genre_features(t.column("genre_ids"), n))
        columns.update(_language_features(t.column("original_language")))
        columns.update(_text_features(t.column("title"), "title"))
        columns.update(_text_features(t.column("overview"), "overview"))
        arrays = [pa.array(columns[f.name], type=f.type) for f in OUTPUT_SCHEMA]
        return pa.Table.from_arrays(arrays, schema=OUTPUT_SCHEMA)

    def extract_all_features(self) -> pd.DataFrame:
        """Return the features as a pandas DataFrame (numpy dtypes of :data:`OUTPUT_SCHEMA`, RangeIndex)."""
        return self.extract_all_features_table().to_pandas(split_blocks=True)
