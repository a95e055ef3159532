"""Property tests: messy TMDB records never break the processor, and the outputs stay self-consistent."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.engineering.tmdb_processor import OUTPUT_SCHEMA, TMDB_GENRE_IDS, TOP_LANGUAGES, AdvancedTMDBPreProcessor

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GENRE_COLUMNS = [c for c in OUTPUT_SCHEMA.names if c.startswith("genre_") and not c.endswith(("_count", "_missing"))]
LANG_COLUMNS = [c for c in OUTPUT_SCHEMA.names if c.startswith("lang_")]
INT64 = st.integers(-(2**63), 2**63 - 1)

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=12),
    st.binary(max_size=8),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dates(),
    st.just({"nested": "dict"}),
)
texts = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=" \t\n\r\x00\x1fab\u00a0é漢🎬", max_size=40),
    st.just(""),
    junk,
)
dates = st.one_of(
    st.dates(dt.date(1700, 1, 1), dt.date(2300, 12, 31)).map(str),
    st.from_regex(r"\A\d{4}(-\d{1,2}(-\d{1,2})?)?\Z"),
    st.sampled_from(["", "not a date", "2020-13-45", "0000-00-00", " 2020-05-01 ", "2020-05-01T10:00"]),
    st.dates(),
    junk,
)
numbers = st.one_of(st.floats(), st.integers(-10, 10**7), st.floats(-5, 1e6).map(str), junk)
genre_lists = st.one_of(
    st.none(),
    st.lists(
        st.one_of(st.sampled_from(list(TMDB_GENRE_IDS)), st.integers(-5, 20_000), st.none(), st.text(max_size=3)),
        max_size=6,
    ),
    st.text(max_size=12),
    junk,
)
languages = st.one_of(st.sampled_from([*TOP_LANGUAGES, "sv", "xx", "", " EN ", "Fr"]), junk)
adults = st.one_of(st.booleans(), st.sampled_from(["true", "False", "1", "0", "yes", "maybe"]), junk)

records = st.fixed_dictionaries(
    {"movie_id": INT64},
    optional={
        "title": texts,
        "overview": texts,
        "release_date": dates,
        "vote_average": numbers,
        "vote_count": numbers,
        "popularity": numbers,
        "genre_ids": genre_lists,
        "adult": adults,
        "original_language": languages,
    },
)


def expected_text(value: object) -> str | None:
    """The documented text rule: str as is (lone surrogates -> '?'), bytes decoded, ints via str()."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def word_count(text: str) -> int:
    return len(re.findall(r"[^\x00-\x20]+", text))


@SETTINGS
@given(st.lists(records, max_size=15))
def test_messy_records_give_consistent_features(movies: list[dict[str, object]]) -> None:
    table = AdvancedTMDBPreProcessor(movies).extract_all_features_table()
    assert table.schema == OUTPUT_SCHEMA
    assert table.num_rows == len(movies)
    assert all(col.null_count == 0 for col in table.columns)
    df = table.to_pandas()
    assert df.movie_id.tolist() == [m["movie_id"] for m in movies]
    floats = df.select_dtypes("float64")
    assert np.isfinite(floats.to_numpy()).all()

    # dates
    known = df.release_year > 0
    assert (df.release_date_missing == (~known).astype(int)).all()
    assert df.release_year[known].between(1800, 2200).all()
    assert df.release_month.between(0, 12).all() and df.release_dayofweek.between(0, 7).all()
    assert (df.release_month[~known] == 0).all() and (df.age_years[~known] == 0).all()
    assert (df.release_date_partial == (known & (df.release_dayofweek == 0)).astype(int)).all()
    assert (df.release_month[df.release_dayofweek > 0] > 0).all()

    # ratings
    assert df.vote_average.between(0, 10).all() and df.weighted_rating.between(0, 10).all()
    assert (df.log_vote_count[df.vote_count_missing == 1] == 0).all()
    assert (df.log_popularity[df.popularity_missing == 1] == 0).all()
    assert (df.log_vote_count >= 0).all() and (df.log_popularity >= 0).all()

    # one-hot / multi-hot groups
    assert (df[LANG_COLUMNS].sum(axis=1) + df.language_missing == 1).all()
    assert (df[GENRE_COLUMNS].sum(axis=1) == df.genre_count).all()
    assert (df.genre_unknown_count >= 0).all()
    assert ((df.genres_missing == 1) <= ((df.genre_count == 0) & (df.genre_unknown_count == 0))).all()
    assert (df.is_adult[df.adult_missing == 1] == 0).all()

    # per-record checks against the inputs
    for movie, row in zip(movies, df.itertuples(index=False), strict=True):
        for field in ("title", "overview"):
            text = expected_text(movie.get(field))
            length, words = getattr(row, f"{field}_length"), getattr(row, f"{field}_word_count")
            assert 0 <= words <= length
            assert length == (len(text) if text is not None else 0)
            assert words == (word_count(text) if text is not None else 0)
            assert getattr(row, f"{field}_missing") == int(words == 0)
        genres = movie.get("genre_ids")
        if isinstance(genres, list) and all(type(g) is int for g in genres):
            assert row.genre_count == len(set(genres) & set(TMDB_GENRE_IDS))
            assert row.genre_unknown_count == sum(g not in TMDB_GENRE_IDS for g in genres)
            assert row.genres_missing == int(not genres)
        if "genre_ids" not in movie or movie["genre_ids"] is None:
            assert row.genres_missing == 1
        if isinstance(movie.get("adult"), bool):
            assert (row.is_adult, row.adult_missing) == (int(movie["adult"]), 0)
        if "vote_count" not in movie:
            assert row.vote_count_missing == 1
        date = movie.get("release_date")
        if isinstance(date, dt.date) and 1800 <= date.year <= 2200:
            assert (row.release_year, row.release_month) == (date.year, date.month)
            assert row.release_dayofweek == date.isoweekday()


@SETTINGS
@given(
    st.lists(records, min_size=1, max_size=8), st.integers(0, 7), st.sampled_from([None, True, 1.5, "x1", float("nan")])
)
def test_only_a_bad_movie_id_raises(movies: list[dict[str, object]], where: int, bad: object) -> None:
    position = where % len(movies)
    movies[position] = {**movies[position], "movie_id": bad}
    with pytest.raises(ValueError, match=rf"^record {position} has no usable movie_id"):
        AdvancedTMDBPreProcessor(movies)


CLEAN_FIELDS = {
    "title": st.one_of(st.none(), st.text(max_size=40)),
    "overview": st.one_of(st.none(), st.text(max_size=200)),
    "release_date": st.one_of(st.none(), st.dates(dt.date(1850, 1, 1)).map(str), st.just("2020")),
    "vote_average": st.one_of(st.none(), st.floats(0, 10)),
    "vote_count": st.one_of(st.none(), st.integers(0, 10**6)),
    "popularity": st.one_of(st.none(), st.floats(0, 1e4)),
    "genre_ids": st.one_of(st.none(), st.lists(st.sampled_from([*TMDB_GENRE_IDS, 1, 99999]), max_size=4)),
    "adult": st.one_of(st.none(), st.booleans()),
    "original_language": st.one_of(st.none(), st.sampled_from([*TOP_LANGUAGES, "sv", ""])),
}
clean_records = st.fixed_dictionaries({"movie_id": st.integers(1, 10**9)}, optional=CLEAN_FIELDS)


@SETTINGS
@given(st.lists(clean_records, min_size=1, max_size=20))
def test_input_kinds_agree(movies: list[dict[str, object]]) -> None:
    """Well-typed records with None/missing fields: list, Arrow table and DataFrame give equal tables."""
    expected = AdvancedTMDBPreProcessor(movies).extract_all_features_table()
    table = pa.Table.from_pylist([{name: m.get(name) for name in ("movie_id", *CLEAN_FIELDS)} for m in movies])
    assert AdvancedTMDBPreProcessor(table).extract_all_features_table().equals(expected)
    assert AdvancedTMDBPreProcessor(pd.DataFrame(movies)).extract_all_features_table().equals(expected)
