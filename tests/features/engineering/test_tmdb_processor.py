"""Unit tests for AdvancedTMDBPreProcessor: hand-computed values on small inputs, input kinds, errors, memory."""

from __future__ import annotations

import datetime as dt
import gc
import time

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pytest

from features.catalog import seed_movies
from features.engineering.tmdb_processor import (
    DEFAULT_REFERENCE_DATE,
    FALLBACK_MEAN_VOTE,
    FEATURE_COLUMNS,
    OUTPUT_SCHEMA,
    TMDB_GENRE_IDS,
    TOP_LANGUAGES,
    AdvancedTMDBPreProcessor,
)

INDICATORS = [c for c in OUTPUT_SCHEMA.names if c.endswith(("_missing", "_partial"))]


def features(movies: object, **kwargs: object) -> pd.DataFrame:
    return AdvancedTMDBPreProcessor(movies, **kwargs).extract_all_features()


def one(record: dict[str, object], **kwargs: object) -> pd.Series:
    return features([{"movie_id": 1, **record}], **kwargs).iloc[0]


def seed_records(n: int) -> list[dict[str, object]]:
    """The seed project's scenario records, with sequel titles and long overviews."""
    overview = "Movie {n} follows a hero through a long and winding adventure. " * 3
    return seed_movies(n, title="Movie {n}: The Sequel", overview=overview)


# -- constants and output shape -------------------------------------------------------------------


def test_constants() -> None:
    assert sorted(TMDB_GENRE_IDS) == sorted(
        [28, 12, 16, 35, 80, 99, 18, 10751, 14, 36, 27, 10402, 9648, 10749, 878, 10770, 53, 10752, 37]
    )
    assert TMDB_GENRE_IDS[878] == "Science Fiction"
    assert TOP_LANGUAGES == ("en", "fr", "es", "ja", "de", "it", "ko", "zh", "ru", "pt", "hi")
    assert OUTPUT_SCHEMA.names[0] == "movie_id"
    assert tuple(OUTPUT_SCHEMA.names[1:]) == FEATURE_COLUMNS
    assert len(set(OUTPUT_SCHEMA.names)) == len(OUTPUT_SCHEMA.names)
    assert dt.date(2025, 1, 1) == DEFAULT_REFERENCE_DATE


def test_output_columns_and_dtypes() -> None:
    df = features(seed_records(20))
    assert list(df.columns) == OUTPUT_SCHEMA.names
    for field in OUTPUT_SCHEMA:
        assert df[field.name].dtype == np.dtype(field.type.to_pandas_dtype()), field.name
    assert df["movie_id"].tolist() == list(range(1, 21))
    table = AdvancedTMDBPreProcessor(seed_records(20)).extract_all_features_table()
    assert table.schema == OUTPUT_SCHEMA
    assert all(col.null_count == 0 for col in table.columns)


@pytest.mark.parametrize("empty", [[], pd.DataFrame(), pa.table({}), pa.table({"movie_id": pa.array([], "int64")})])
def test_empty_input(empty: object) -> None:
    df = features(empty)
    assert len(df) == 0 and list(df.columns) == OUTPUT_SCHEMA.names


# -- dates ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("release_date", "year", "month", "dow", "days_before_reference"),
    [
        ("2019-01-01", 2019, 1, 2, 365),  # a Tuesday, one (non-leap) year before 2020-01-01
        ("2019-12-29", 2019, 12, 7, 3),  # a Sunday
        ("2024-02-29", 2024, 2, 4, -1520),  # leap day, a Thursday, after the reference date
        ("2019-07-01T12:30:00", 2019, 7, 1, 184),  # time part ignored; 2019-07-01 was a Monday
        (" 2019-12-30 ", 2019, 12, 1, 2),  # surrounding whitespace ignored
        (dt.date(2019, 12, 31), 2019, 12, 2, 1),  # a date object
    ],
)
def test_full_dates(release_date: object, year: int, month: int, dow: int, days_before_reference: int) -> None:
    row = one({"release_date": release_date}, reference_date="2020-01-01")
    assert (row.release_year, row.release_month, row.release_dayofweek) == (year, month, dow)
    assert row.age_years == pytest.approx(days_before_reference / 365.25)
    assert (row.release_date_missing, row.release_date_partial) == (0, 0)


@pytest.mark.parametrize(
    ("release_date", "year", "month", "days_before_reference"),
    [
        ("2019", 2019, 0, 184),  # year only -> July 1, 2019
        ("2019-05", 2019, 5, 231),  # year-month -> May 15, 2019
        ("2019-13-45", 2019, 0, 184),  # bad month keeps the year
        ("2019-02-29", 2019, 2, 320),  # not a leap year: keeps year and month (Feb 15)
        ("2019-05-", 2019, 5, 231),
    ],
)
def test_partial_dates(release_date: str, year: int, month: int, days_before_reference: int) -> None:
    row = one({"release_date": release_date}, reference_date=dt.date(2020, 1, 1))
    assert (row.release_year, row.release_month, row.release_dayofweek) == (year, month, 0)
    assert row.age_years == pytest.approx(days_before_reference / 365.25)
    assert (row.release_date_missing, row.release_date_partial) == (0, 1)


@pytest.mark.parametrize(
    "release_date", [None, "", "   ", "not a date", "12/31/1999", "20200101", "0000-00-00", "1799-12-31", 20200101, 3.5]
)
def test_missing_dates(release_date: object) -> None:
    row = one({"release_date": release_date})
    assert (row.release_year, row.release_month, row.release_dayofweek, row.age_years) == (0, 0, 0, 0.0)
    assert (row.release_date_missing, row.release_date_partial) == (1, 0)


def test_reference_date_default_and_validation() -> None:
    assert one({"release_date": "2024-01-01"}).age_years == pytest.approx(366 / 365.25)
    assert one({"release_date": "2024-01-01"}, reference_date=dt.datetime(2025, 1, 1, 23)).age_years == (
        pytest.approx(366 / 365.25)
    )
    with pytest.raises(ValueError, match="reference_date"):
        AdvancedTMDBPreProcessor([], reference_date="01/01/2025")
    with pytest.raises(TypeError, match="reference_date"):
        AdvancedTMDBPreProcessor([], reference_date=20250101)  # type: ignore[arg-type]


# -- genres and languages -------------------------------------------------------------------------


def test_genres_multi_hot_and_counts() -> None:
    df = features(
        [
            {"movie_id": 1, "genre_ids": [28, 878, 28, 99999]},  # duplicate counts once, 99999 unknown
            {"movie_id": 2, "genre_ids": []},
            {"movie_id": 3, "genre_ids": None},
            {"movie_id": 4},
            {"movie_id": 5, "genre_ids": "[18, 36]"},  # a JSON-ish string
            {"movie_id": 6, "genre_ids": [0, -1, None, "x", 1.5, True]},  # all unknown
            {"movie_id": 7, "genre_ids": 37},  # a single id
        ]
    )
    assert df.genre_action.tolist() == [1, 0, 0, 0, 0, 0, 0]
    assert df.genre_science_fiction.tolist() == [1, 0, 0, 0, 0, 0, 0]
    assert df.genre_drama.tolist() == [0, 0, 0, 0, 1, 0, 0]
    assert df.genre_history.tolist() == [0, 0, 0, 0, 1, 0, 0]
    assert df.genre_western.tolist() == [0, 0, 0, 0, 0, 0, 1]
    assert df.genre_count.tolist() == [2, 0, 0, 0, 2, 0, 1]
    assert df.genre_unknown_count.tolist() == [1, 0, 0, 0, 0, 6, 0]
    assert df.genres_missing.tolist() == [0, 1, 1, 1, 0, 0, 0]
    genre_cols = [c for c in df.columns if c.startswith("genre_") and c not in ("genre_count", "genre_unknown_count")]
    assert len(genre_cols) == 19
    assert (df[genre_cols].sum(axis=1) == df.genre_count).all()


def test_language_one_hot() -> None:
    langs = ["en", " KO ", "Fr", "sv", "xx", "", "  ", None, 7]
    df = features([{"movie_id": i, "original_language": v} for i, v in enumerate(langs)])
    lang_cols = [f"lang_{c}" for c in (*TOP_LANGUAGES, "other")]
    assert df.lang_en.tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert df.lang_ko.tolist() == [0, 1, 0, 0, 0, 0, 0, 0, 0]
    assert df.lang_fr.tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0]
    assert df.lang_other.tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 1]  # an int code is text "7"
    assert df.language_missing.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 0]
    assert (df[lang_cols].sum(axis=1) + df.language_missing == 1).all()


# -- text -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "length", "words"),
    [
        ("The Matrix", 10, 2),
        ("A hacker  learns\tthe truth.\n", 28, 5),
        ("千と千尋 🎬", 6, 2),  # code points, not bytes
        ("Amélie\u00a0Poulain", 14, 1),  # NBSP is not whitespace (documented)
        ("  leading and trailing  ", 24, 3),
        ("   ", 3, 0),
        ("", 0, 0),
        (None, 0, 0),
        (1917, 4, 1),  # an int title becomes "1917"
        (["not", "text"], 0, 0),
    ],
)
def test_text_lengths_and_words(text: object, length: int, words: int) -> None:
    row = one({"title": text, "overview": text})
    assert (row.title_length, row.title_word_count, row.title_missing) == (length, words, int(words == 0))
    assert (row.overview_length, row.overview_word_count) == (length, words)
    assert row.overview_missing == int(words == 0)


def test_very_long_text() -> None:
    text = ("ünïcödé word " * 10_000)[:100_000]
    row = one({"title": text, "overview": "x" * 100_000})
    assert row.title_length == 100_000
    assert row.title_word_count == len(text.split())
    assert (row.overview_length, row.overview_word_count) == (100_000, 1)


# -- ratings --------------------------------------------------------------------------------------


def test_weighted_rating_hand_computed() -> None:
    records = [
        {"movie_id": 1, "vote_count": 10, "vote_average": 6.0, "popularity": 0.0},
        {"movie_id": 2, "vote_count": 20, "vote_average": 7.0, "popularity": np.e - 1},
        {"movie_id": 3, "vote_count": 30, "vote_average": 8.0, "popularity": None},
    ]
    p = AdvancedTMDBPreProcessor(records)
    # m = 90th percentile of [10, 20, 30] with linear interpolation = 20 + 0.8 * 10 = 28; C = 7.
    assert p.rating_prior == pytest.approx((28.0, 7.0))
    df = p.extract_all_features()
    expected = [(v * r + 28 * 7) / (v + 28) for v, r in ((10, 6), (20, 7), (30, 8))]
    assert df.weighted_rating.tolist() == pytest.approx(expected)
    assert df.log_vote_count.tolist() == pytest.approx(np.log1p([10, 20, 30]).tolist())
    assert df.log_popularity.tolist() == pytest.approx([0.0, 1.0, 0.0])
    assert df.popularity_missing.tolist() == [0, 0, 1]


def test_weighted_rating_edge_cases() -> None:
    # One movie: m = its own count, C = its own average, so WR = R.
    assert one({"vote_count": 50, "vote_average": 7.3}).weighted_rating == pytest.approx(7.3)
    # Nothing valid: m = 0, C = FALLBACK_MEAN_VOTE, and WR = C for every movie.
    df = features([{"movie_id": 1}, {"movie_id": 2, "vote_count": "lots", "vote_average": 11}])
    assert df.weighted_rating.tolist() == [FALLBACK_MEAN_VOTE] * 2
    assert df.vote_average.tolist() == [FALLBACK_MEAN_VOTE] * 2
    assert df.vote_average_missing.tolist() == [1, 1]
    # Missing vote_average is replaced by C; missing vote_count counts as 0 votes (WR = C).
    df = features([{"movie_id": 1, "vote_count": 100, "vote_average": 8.0}, {"movie_id": 2, "vote_average": 6.0}])
    assert df.weighted_rating[1] == pytest.approx(7.0)
    assert df.vote_count_missing.tolist() == [0, 1]


def test_pinned_rating_prior() -> None:
    row = one({"vote_count": 10, "vote_average": 9.0}, rating_prior=(30, 6.0))
    assert row.weighted_rating == pytest.approx((10 * 9 + 30 * 6) / 40)
    with pytest.raises(ValueError, match="rating_prior"):
        AdvancedTMDBPreProcessor([], rating_prior=(-1, 5))


@pytest.mark.parametrize(
    ("value", "missing", "expected"),
    [("12", 0, 12.0), (" 7.5 ", 0, 7.5), (12.0, 0, 12.0), (True, 1, 0.0), ("n/a", 1, 0.0), (-3, 1, 0.0),
     (float("nan"), 1, 0.0), (float("inf"), 1, 0.0), (None, 1, 0.0), ([1], 1, 0.0)],
)  # fmt: skip
def test_wrong_typed_numbers(value: object, missing: int, expected: float) -> None:
    row = one({"vote_count": value, "popularity": value})
    assert (row.vote_count_missing, row.popularity_missing) == (missing, missing)
    assert row.log_vote_count == pytest.approx(np.log1p(expected))
    assert row.log_popularity == pytest.approx(np.log1p(expected))


@pytest.mark.parametrize(
    ("adult", "is_adult", "missing"),
    [(True, 1, 0), (False, 0, 0), ("true", 1, 0), ("False", 0, 0), (1, 1, 0), (0, 0, 0), (None, 0, 1), ("?", 0, 1)],
)
def test_adult(adult: object, is_adult: int, missing: int) -> None:
    row = one({"adult": adult})
    assert (row.is_adult, row.adult_missing) == (is_adult, missing)


def test_missing_indicators_for_bare_record() -> None:
    row = one({})
    expected = {name: 1 for name in INDICATORS} | {"release_date_partial": 0}
    assert row[INDICATORS].to_dict() == expected
    numeric = ["release_year", "age_years", "log_vote_count", "log_popularity", "is_adult", "genre_count"]
    assert (row[numeric] == 0).all()
    assert row.vote_average == FALLBACK_MEAN_VOTE


def test_clean_record_has_no_missing_indicator() -> None:
    df = features(seed_records(50))
    assert (df[INDICATORS] == 0).all().all()


# -- input kinds and errors -----------------------------------------------------------------------


MESSY = [
    {"movie_id": 1, "title": "The Matrix", "release_date": "1999-03-31", "vote_average": 8.2,
     "vote_count": 25000, "popularity": 80.5, "genre_ids": [28, 878], "adult": False,
     "original_language": "en", "overview": "A hacker learns the truth."},
    {"movie_id": "2", "title": None, "release_date": "2020", "vote_average": "7.5", "vote_count": "12",
     "genre_ids": None, "adult": "true", "original_language": " KO ", "overview": ""},
    {"movie_id": 3.0},
    {"movie_id": 4, "title": "千と千尋", "release_date": "2020-13-45", "vote_count": -5, "genre_ids": [99999]},
]  # fmt: skip


def test_same_result_for_list_dataframe_and_arrow() -> None:
    expected = AdvancedTMDBPreProcessor(MESSY).extract_all_features_table()
    assert AdvancedTMDBPreProcessor(pd.DataFrame(MESSY)).extract_all_features_table().equals(expected)
    clean = seed_records(300)
    expected = AdvancedTMDBPreProcessor(clean).extract_all_features_table()
    table = pa.Table.from_pylist(clean)
    chunked = pa.concat_tables([table.slice(0, 100), table.slice(100, 150), table.slice(250)])
    for other in (
        pd.DataFrame(clean),
        table,
        chunked,
        table.to_batches()[0],
        table.to_pandas(types_mapper=pd.ArrowDtype),
    ):
        assert AdvancedTMDBPreProcessor(other).extract_all_features_table().equals(expected)


def test_typed_arrow_and_pandas_columns() -> None:
    """Dates as date/timestamp, dictionary/categorical, string_view, large_list<int32>, nullable ints."""
    records = [
        {"movie_id": 1, "release_date": "2020-05-17", "original_language": "en", "genre_ids": [28],
         "title": "ab c", "vote_count": 3},
        {"movie_id": 2, "release_date": None, "original_language": "fr", "genre_ids": [12, 99999],
         "title": None, "vote_count": None},
    ]  # fmt: skip
    expected = AdvancedTMDBPreProcessor(records).extract_all_features_table()
    frame = pd.DataFrame(
        {
            "movie_id": [1, 2],
            "release_date": pd.to_datetime(["2020-05-17", None]),
            "original_language": pd.Categorical(["en", "fr"]),
            "genre_ids": [[28], [12, 99999]],
            "title": ["ab c", None],
            "vote_count": pd.array([3, None], dtype="Int64"),
        }
    )
    table = pa.table(
        {
            "movie_id": pa.array([1, 2], pa.int32()),
            "release_date": pa.array([dt.date(2020, 5, 17), None], pa.date32()),
            "original_language": pa.array(["en", "fr"]).dictionary_encode(),
            "genre_ids": pa.array([[28], [12, 99999]], pa.large_list(pa.int32())),
            "title": pa.array(["ab c", None], pa.string_view()),
            "vote_count": pa.array([3, None], pa.uint16()),
        }
    )
    stamped = table.set_column(
        1, "release_date", pa.array([dt.datetime(2020, 5, 17, 13), None], pa.timestamp("us", tz="UTC"))
    )
    for movies in (frame, table, stamped):
        assert AdvancedTMDBPreProcessor(movies).extract_all_features_table().equals(expected)


def test_wrong_typed_arrow_columns_follow_the_per_value_rules() -> None:
    table = pa.table(
        {
            "movie_id": pa.array(["1", "2"]),
            "vote_count": pa.array(["3", "x"]),
            "title": pa.array([1917, None]),
            "genre_ids": pa.array([[28.0], [1.5]]),
        }
    )
    df = features(table)
    assert df.movie_id.tolist() == [1, 2]
    assert df.vote_count_missing.tolist() == [0, 1]
    assert df.title_length.tolist() == [4, 0]
    assert (df.genre_action.tolist(), df.genre_unknown_count.tolist()) == ([1, 0], [0, 1])


def test_extra_and_reordered_columns_are_ignored() -> None:
    df = pd.DataFrame(seed_records(10))
    shuffled = df[df.columns[::-1]].assign(extra=1)
    pd.testing.assert_frame_equal(features(shuffled), features(df))


@pytest.mark.parametrize(
    ("bad", "got"),
    [(None, "None"), (True, "True"), (1.5, "1.5"), ("abc", "'abc'"), (2**64, str(2**64)), (float("nan"), "nan")],
)
def test_bad_movie_id_names_position(bad: object, got: str) -> None:
    records = seed_records(20)
    records[17]["movie_id"] = bad
    with pytest.raises(ValueError, match=rf"^record 17 has no usable movie_id: got {got}"):
        AdvancedTMDBPreProcessor(records)


def test_bad_movie_id_in_dataframe_arrow_and_missing_key() -> None:
    records = seed_records(5)
    del records[3]["movie_id"]
    with pytest.raises(ValueError, match="record 3 has no usable movie_id"):
        AdvancedTMDBPreProcessor(records)
    with pytest.raises(ValueError, match="record 1 has no usable movie_id"):
        AdvancedTMDBPreProcessor(pd.DataFrame({"movie_id": [1.0, np.nan]}))
    with pytest.raises(ValueError, match="record 2 has no usable movie_id"):
        AdvancedTMDBPreProcessor(pa.table({"movie_id": pa.array([1, 2, None])}))
    with pytest.raises(ValueError, match="record 0 has no usable movie_id"):
        AdvancedTMDBPreProcessor(pa.table({"title": ["no id"]}))
    with pytest.raises(ValueError, match="record 1 has no usable movie_id: it is a str"):
        AdvancedTMDBPreProcessor([{"movie_id": 1}, "not a record"])


def test_integer_like_movie_ids_are_accepted() -> None:
    df = features(
        [{"movie_id": 7}, {"movie_id": "8"}, {"movie_id": " 9 "}, {"movie_id": 10.0}, {"movie_id": np.int32(11)}]
    )
    assert df.movie_id.tolist() == [7, 8, 9, 10, 11]
    assert df.movie_id.dtype == np.int64


def test_unsupported_container() -> None:
    with pytest.raises(TypeError, match="movies must be"):
        AdvancedTMDBPreProcessor("not a list")  # type: ignore[arg-type]


# -- the seed project's scenario: sizes, throughput, memory ---------------------------------------


@pytest.mark.parametrize("n", [100, 500, 1000])
def test_seed_scenario(n: int) -> None:
    records = seed_records(n)
    start = time.perf_counter()
    df = AdvancedTMDBPreProcessor(records).extract_all_features()
    elapsed = time.perf_counter() - start
    assert len(df) == n
    assert df.movie_id.tolist() == list(range(1, n + 1))
    assert not df.isna().any().any()
    assert n / elapsed >= 10  # the seed's threshold (movies/s)
    i = np.arange(n)
    assert (df.release_year == 2021 + i % 4).all()
    assert (df.release_month == i % 12 + 1).all()
    assert (df.is_adult == (i % 10 == 0)).all()
    assert df.genre_action.sum() == len(range(0, n, 5))  # genre 28 for i % 5 == 0


def test_memory_for_1000_movies() -> None:
    gc.collect()
    process = psutil.Process()
    before = process.memory_info().rss
    df = AdvancedTMDBPreProcessor(seed_records(1000)).extract_all_features()
    grown = process.memory_info().rss - before
    assert len(df) == 1000
    assert grown < 300 * 2**20


def test_no_memory_leak() -> None:
    process = psutil.Process()
    records = seed_records(100)
    AdvancedTMDBPreProcessor(records).extract_all_features()  # warm up caches and pools
    gc.collect()
    before = process.memory_info().rss
    for _ in range(10):
        AdvancedTMDBPreProcessor(records).extract_all_features()
    gc.collect()
    assert process.memory_info().rss - before < 20 * 2**20
