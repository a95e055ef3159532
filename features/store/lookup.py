"""Online lookup: feature rows of one version, addressed by entity id.

An ``EntityIndex`` is built once per cached version (a hash index of the entity column plus one numpy array per
feature column) so a lookup costs a hash probe and one element read per column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["EntityIndex", "LookupResult"]


@dataclass(frozen=True)
class LookupResult:
    """Feature rows for requested entity ids.

    ``rows`` has one item per requested id, in request order: the values in ``columns`` order, or None where
    the id is unknown. ``missing`` lists the unknown ids. ``version`` is the feature version read.
    """

    columns: list[str]
    rows: list[list[Any] | None]
    missing: list[Any]
    version: int


def _identity(value: Any) -> Any:
    return value


def _to_python(value: Any) -> Any:
    """Convert numpy scalars and nested arrays (Arrow list columns) to JSON-friendly Python objects."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is pd.NA or value is pd.NaT:
        return None
    return value


class EntityIndex:
    """Positions of entity ids in one frame, and the frame's feature columns as arrays.

    Raises ValueError when the entity column is missing or holds duplicate ids.
    """

    def __init__(self, frame: pd.DataFrame, entity_column: str) -> None:
        if entity_column not in frame.columns:
            raise ValueError(f"entity column {entity_column!r} is not in the frame")
        ids = pd.Index(frame[entity_column])
        if not ids.is_unique:
            raise ValueError(f"entity column {entity_column!r} holds duplicate ids; online lookup needs unique ids")
        self.entity_column = entity_column
        self.columns = [str(c) for c in frame.columns if c != entity_column]
        self._ids = ids
        self._arrays: list[np.ndarray] = []
        self._converters: list[Callable[[Any], Any]] = []
        for name in self.columns:
            array, converter = _column_array(frame[name])
            self._arrays.append(array)
            self._converters.append(converter)
        self.nbytes = int(ids.memory_usage(deep=False)) + sum(a.nbytes for a in self._arrays)

    def lookup(self, entity_ids: Sequence[Any], version: int) -> LookupResult:
        """Rows for ``entity_ids`` in request order (None for unknown ids)."""
        if len(entity_ids) == 1:
            # The hot path: one hash probe and one scalar read per column, no temporary arrays.
            position = self._position(entity_ids[0])
            if position < 0:
                return LookupResult(columns=self.columns, rows=[None], missing=list(entity_ids), version=version)
            row = [
                convert(array[position].item() if array.dtype.kind != "O" else array[position])
                for array, convert in zip(self._arrays, self._converters, strict=True)
            ]
            return LookupResult(columns=self.columns, rows=[row], missing=[], version=version)
        positions = self._ids.get_indexer(pd.Index(list(entity_ids), dtype=object))
        found = positions >= 0
        taken = [
            [convert(v) for v in array.take(positions[found]).tolist()]
            if convert is not _identity
            else array.take(positions[found]).tolist()
            for array, convert in zip(self._arrays, self._converters, strict=True)
        ]
        found_rows = iter(map(list, zip(*taken, strict=True))) if taken else iter([] for _ in range(found.sum()))
        rows: list[list[Any] | None] = [next(found_rows) if hit else None for hit in found.tolist()]
        missing = [entity_id for entity_id, hit in zip(entity_ids, found.tolist(), strict=True) if not hit]
        return LookupResult(columns=self.columns, rows=rows, missing=missing, version=version)

    def _position(self, entity_id: Any) -> int:
        try:
            position = self._ids.get_loc(entity_id)
        except (KeyError, TypeError, pd.errors.InvalidIndexError):
            return -1
        return position if isinstance(position, int) else -1


def _column_array(column: pd.Series) -> tuple[np.ndarray, Callable[[Any], Any]]:
    """A numpy array for one feature column and the converter its elements need after ``tolist()``."""
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        # ISO strings once per version: tolist() on datetime64[ns] would give bare integers.
        text = column.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").to_numpy(dtype=object, na_value=None)
        return text, _identity
    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "biuf":
        return column.to_numpy(), _identity
    return column.to_numpy(dtype=object, na_value=None), _to_python
