"""``table_from_frame`` makes exactly ``pa.Table.from_pandas``'s table (values, schema, pandas metadata), whichever
way it takes, for the frames it speeds up and for the ones it hands to ``from_pandas``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from features.store import _frames
from features.store._frames import table_from_frame


def assert_same_as_from_pandas(frame: pd.DataFrame) -> None:
    expected = pa.Table.from_pandas(frame)
    for _ in range(2):  # the first frame of a signature, then the template's way
        table = table_from_frame(frame)
        assert table.equals(expected, check_metadata=True), (table.schema, expected.schema)
        assert table.to_pandas().equals(frame)


def numeric_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "entity_id": np.arange(rows, dtype=np.int64),
            "score": rng.random(rows),
            "small": rng.random(rows).astype(np.float32),
            "count": rng.integers(0, 255, rows, dtype=np.uint8),
            "flag": rng.random(rows) > 0.5,
            "delta": rng.integers(-5, 5, rows, dtype=np.int32),
        }
    )


@pytest.mark.parametrize("rows", [0, 1, 1000])
def test_plain_numeric_frames_take_the_template_and_match(rows: int) -> None:
    assert_same_as_from_pandas(numeric_frame(rows))
    assert _frames._templates.get(_signature(numeric_frame(rows))) is not None


def test_a_later_frame_with_nan_has_the_same_nulls_as_from_pandas() -> None:
    first = numeric_frame(50)
    table_from_frame(first)  # the signature's template is made from a frame without NaN
    later = numeric_frame(70, seed=1)
    later.loc[[3, 9], "score"] = np.nan
    later.loc[5, "small"] = np.nan
    table = table_from_frame(later)
    assert table.equals(pa.Table.from_pandas(later), check_metadata=True)
    assert table.column("score").null_count == 2 and table.column("small").null_count == 1


def test_another_range_reaches_the_metadata() -> None:
    frame = numeric_frame(40)
    table_from_frame(frame)
    stepped = numeric_frame(40, seed=2).set_axis(pd.RangeIndex(10, 90, 2))
    assert_same_as_from_pandas(stepped)
    assert table_from_frame(stepped).to_pandas().index.equals(pd.RangeIndex(10, 90, 2))


WIDE = pd.DataFrame(np.random.default_rng(3).random((100, 4)), columns=list("abcd"))


@pytest.mark.parametrize(
    "frame",
    [
        WIDE.iloc[::3],
        WIDE.iloc[10:50],
        WIDE[["c", "a"]],
        WIDE.astype(np.float16),
        pd.DataFrame({"x": [1.0, np.inf, -np.inf, np.nan]}),
    ],
    ids=["strided", "sliced-range", "reordered", "float16", "infinities"],
)
def test_views_of_a_two_dimensional_block_and_odd_floats_match(frame: pd.DataFrame) -> None:
    assert _frames._plain_columns(frame) is not None
    assert_same_as_from_pandas(frame)


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"id": [1, 2], "title": ["a", "b"]}),
        pd.DataFrame({"id": [1, 2], "kind": pd.Categorical(["x", "y"])}),
        pd.DataFrame({"id": [1, 2], "at": pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True)}),
        pd.DataFrame({"id": pd.array([1, None], dtype="Int64")}),
        pd.DataFrame({"v": [1.0, 2.0]}, index=pd.Index([7, 9], name="movie_id")),
        pd.DataFrame({"v": [1.0, 2.0]}, index=pd.RangeIndex(2, name="row")),
        pd.DataFrame({"v": [1.0, 2.0]}, index=[0, 1]),
    ],
    ids=["strings", "categorical", "datetime-tz", "nullable-int", "named-index", "named-range", "int-index"],
)
def test_other_frames_take_from_pandas_and_match(frame: pd.DataFrame) -> None:
    assert _frames._plain_columns(frame) is None
    assert table_from_frame(frame).equals(pa.Table.from_pandas(frame), check_metadata=True)


def test_a_complex_column_gets_from_pandas_own_error() -> None:
    frame = pd.DataFrame({"v": [1 + 2j, 3j]})
    assert _frames._plain_columns(frame) is None
    with pytest.raises(pa.ArrowNotImplementedError, match="complex128"):
        table_from_frame(frame)


def test_attrs_take_from_pandas() -> None:
    frame = numeric_frame(3)
    frame.attrs["source"] = "tmdb"
    assert _frames._plain_columns(frame) is None
    assert table_from_frame(frame).equals(pa.Table.from_pandas(frame), check_metadata=True)


def test_a_template_that_would_differ_is_never_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # A pyarrow that wrote other metadata: the first frame's comparison must catch it and send the signature to
    # from_pandas for good.
    frame = pd.DataFrame({"only_here": np.arange(5, dtype=np.int16)})
    real_build = _frames._build

    def other_build(*args: object) -> pa.Table:
        table = real_build(*args)  # type: ignore[arg-type]
        return table.replace_schema_metadata({b"pandas": b"{}"})

    monkeypatch.setattr(_frames, "_build", other_build)
    assert table_from_frame(frame).equals(pa.Table.from_pandas(frame), check_metadata=True)
    assert _frames._templates[_signature(frame)] is None
    assert table_from_frame(frame).equals(pa.Table.from_pandas(frame), check_metadata=True)


def test_the_templates_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_frames, "_SIGNATURES_MAX", 8)
    for width in range(1, 30):
        table_from_frame(pd.DataFrame({f"c{i}": np.zeros(2) for i in range(width)}))
        assert len(_frames._templates) <= 8


@settings(max_examples=60, deadline=None)
@given(
    columns=st.lists(
        st.tuples(
            st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
            hnp.arrays(
                dtype=st.sampled_from([np.int8, np.int64, np.uint16, np.float32, np.float64, np.bool_]),
                shape=st.just(6),
            ),
        ),
        min_size=1,
        max_size=5,
        unique_by=lambda column: column[0],
    )
)
def test_any_numeric_frame_matches_from_pandas(columns: list[tuple[str, np.ndarray]]) -> None:
    frame = pd.DataFrame(dict(columns))
    expected = pa.Table.from_pandas(frame)
    assert table_from_frame(frame).equals(expected, check_metadata=True)
    assert table_from_frame(frame).equals(expected, check_metadata=True)


def _signature(frame: pd.DataFrame) -> tuple[object, ...]:
    columns = _frames._plain_columns(frame)
    assert columns is not None
    return _frames._signature(frame, columns)
