"""Tests for the synthetic TMDB catalog: determinism, distributions, mess, validation, pipeline fit."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from features.catalog import generate_catalog, generate_catalog_table, zipf_ids
from features.engineering.tmdb_processor import OUTPUT_SCHEMA, TMDB_GENRE_IDS, AdvancedTMDBPreProcessor

N = 20_000
INDICATORS = [c for c in OUTPUT_SCHEMA.names if c.endswith(("_missing", "_partial"))]


@pytest.fixture(scope="module")
def clean() -> pa.Table:
    return generate_catalog_table(N, seed=3, messy_fraction=0.0)


@pytest.fixture(scope="module")
def messy() -> pa.Table:
    return generate_catalog_table(N, seed=3, messy_fraction=0.05)


def messy_rows(table: pa.Table) -> np.ndarray:
    """Rows with any visible defect: a null, a missing/partial indicator, unknown genres, odd text."""
    f = AdvancedTMDBPreProcessor(table).extract_all_features()
    bad = (f[INDICATORS].to_numpy() != 0).any(axis=1) | (f.genre_unknown_count > 0).to_numpy()
    for col in table.columns:
        bad |= col.is_null().to_numpy()
    for name in ("title", "overview"):
        bad |= ~pc.fill_null(pc.string_is_ascii(table[name]), True).to_numpy()
    lang = table["original_language"]
    bad |= ~pc.fill_null(pc.equal(lang, pc.utf8_lower(pc.utf8_trim_whitespace(lang))), True).to_numpy()
    return bad


def test_schema_and_ids(clean: pa.Table) -> None:
    assert clean.column_names == [
        "movie_id", "title", "release_date", "vote_average", "vote_count", "popularity",
        "genre_ids", "adult", "original_language", "overview",
    ]  # fmt: skip
    assert clean.schema.field("movie_id").type == pa.int64()
    ids = clean["movie_id"].to_numpy()
    assert len(np.unique(ids)) == N and ids.min() >= 1
    assert not (np.diff(ids) > 0).all()  # shuffled, not sorted
    clean.validate(full=True)


def test_deterministic() -> None:
    assert generate_catalog_table(3000, seed=9).equals(generate_catalog_table(3000, seed=9))
    assert not generate_catalog_table(3000, seed=9).equals(generate_catalog_table(3000, seed=10))
    assert generate_catalog(500, seed=9) == generate_catalog(500, seed=9)


def test_distributions(clean: pa.Table) -> None:
    votes = clean["vote_count"].to_numpy()
    assert votes.min() >= 0 and votes.mean() > 3 * np.median(votes)  # heavy right tail
    popularity = clean["popularity"].to_numpy()
    assert popularity.min() > 0 and popularity.max() > 100 * np.median(popularity)  # Zipf-like
    rated = clean["vote_average"].to_numpy()[votes > 0]
    assert 6.1 < rated.mean() < 6.5 and rated.min() >= 0 and rated.max() <= 10
    years = pc.cast(pc.utf8_slice_codeunits(clean["release_date"], 0, 4), pa.int32()).to_numpy()
    assert years.min() >= 1920 and years.max() <= 2025
    assert np.median(years) > 2005  # skewed to recent
    genres = clean["genre_ids"]
    lengths = pc.list_value_length(genres).to_numpy()
    assert lengths.min() == 1 and lengths.max() == 4
    assert set(pc.unique(pc.list_flatten(genres)).to_pylist()) == set(TMDB_GENRE_IDS)
    counts = dict(zip(*np.unique(pc.list_flatten(genres).to_numpy(), return_counts=True), strict=True))
    assert counts[18] > counts[35] > counts[37]  # drama > comedy > western
    langs = clean["original_language"].to_numpy(zero_copy_only=False)
    assert 0.5 < np.mean(langs == "en") < 0.62
    assert 0.005 < np.mean(clean["adult"].to_numpy(zero_copy_only=False)) < 0.02
    title_words = pc.list_value_length(pc.utf8_split_whitespace(clean["title"])).to_numpy()
    assert title_words.min() == 1 and title_words.max() == 8
    overview_words = pc.list_value_length(pc.utf8_split_whitespace(clean["overview"])).to_numpy()
    assert 45 < overview_words.mean() < 65
    assert 250 < pc.mean(pc.utf8_length(clean["overview"])).as_py() < 350


def test_messy_fraction_is_respected(clean: pa.Table, messy: pa.Table) -> None:
    assert messy_rows(clean).sum() == 0
    assert messy_rows(messy).sum() == round(N * 0.05)
    assert messy_rows(generate_catalog_table(1000, seed=1, messy_fraction=1.0)).all()
    messy.validate(full=True)


def test_list_of_dicts_drops_null_keys() -> None:
    rows = generate_catalog(2000, seed=5, messy_fraction=0.2)
    table = generate_catalog_table(2000, seed=5, messy_fraction=0.2)
    assert len(rows) == 2000
    assert all(None not in r.values() for r in rows)
    assert sum(len(r) < 10 for r in rows) == sum(1 for r in table.to_pylist() if any(v is None for v in r.values()))
    assert [r["movie_id"] for r in rows] == table["movie_id"].to_pylist()


def test_pipeline_processes_the_catalog(messy: pa.Table) -> None:
    rows = generate_catalog(3000, seed=4, messy_fraction=0.1)
    from_rows = AdvancedTMDBPreProcessor(rows).extract_all_features_table()
    from_table = AdvancedTMDBPreProcessor(generate_catalog_table(3000, seed=4, messy_fraction=0.1))
    assert from_rows.equals(from_table.extract_all_features_table())
    df = AdvancedTMDBPreProcessor(messy).extract_all_features()
    assert len(df) == N and not df.isna().any().any()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n": -1}, "n"),
        ({"n": 2.5}, "n"),
        ({"n": True}, "n"),
        ({"n": 10, "messy_fraction": -0.1}, "messy_fraction"),
        ({"n": 10, "messy_fraction": 1.5}, "messy_fraction"),
        ({"n": 10, "messy_fraction": float("nan")}, "messy_fraction"),
    ],
)
def test_argument_validation(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must"):
        generate_catalog_table(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=rf"^{name} must"):
        generate_catalog(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [0, 1, 2, 7])
def test_tiny_catalogs(n: int) -> None:
    for fraction in (0.0, 0.5, 1.0):
        table = generate_catalog_table(n, messy_fraction=fraction)
        assert table.num_rows == n
        table.validate(full=True)
        assert len(AdvancedTMDBPreProcessor(table).extract_all_features()) == n


def test_zipf_ids_skew_and_determinism() -> None:
    ids = np.arange(1000, 11000)
    draws = zipf_ids(ids, 200_000, s=1.1, rng=7)
    assert draws.dtype == np.int64 and set(np.unique(draws)) <= set(ids)
    counts = np.bincount(draws - 1000, minlength=ids.size)
    assert counts[0] > counts[9] > counts[99] > counts[999]
    assert counts[:100].sum() > 0.5 * draws.size  # the top 1% of ids gets most of the traffic
    assert np.array_equal(draws, zipf_ids(ids, 200_000, s=1.1, rng=np.random.default_rng(7)))
    flatter = np.bincount(zipf_ids(ids, 200_000, s=0.5, rng=7) - 1000, minlength=ids.size)
    assert flatter[:100].sum() < counts[:100].sum()
    assert zipf_ids([], 0).size == 0


@pytest.mark.parametrize(
    ("args", "message"), [(([1, 2], -1), "size"), (([1, 2], 5, 0.0), "s must"), (([], 3), "catalog_ids")]
)
def test_zipf_ids_validation(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        zipf_ids(*args)  # type: ignore[arg-type]
