"""Online lookup: feature rows of one version, addressed by entity id.

An ``EntityIndex`` is built once per cached version (a hash index of the entity column plus one numpy array per
feature column) so a lookup costs a hash probe and one element read per column. ``encoded_values`` also keeps
the encoded values of the rows asked for (a version never changes, so neither do they), up to a byte budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ENCODED_ROWS_MAX_BYTES", "ENCODED_ROWS_MIN_BYTES", "EntityIndex", "LookupResult"]

# The encoded rows a version keeps: as many bytes as its index, at least the first and at most the second (the room
# counts in the cache's byte budget: a large feature must not be pushed out of the cache by its own answers).
ENCODED_ROWS_MIN_BYTES = 1 << 20
ENCODED_ROWS_MAX_BYTES = 64 << 20


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
        # Columns of one dtype share a row-major block, so a row is one tolist() per block instead of one
        # scalar conversion per column; _reorder puts the concatenated blocks back in column order.
        grouped: dict[Any, list[tuple[int, np.ndarray]]] = {}
        for position, name in enumerate(self.columns):
            array, converter = _column_array(frame[name])
            grouped.setdefault((array.dtype.str, converter), []).append((position, array))
        self._blocks: list[tuple[np.ndarray, Callable[[Any], Any]]] = []
        order: list[int] = []
        for (_, converter), members in grouped.items():
            self._blocks.append((np.column_stack([a for _, a in members]), converter))
            order.extend(position for position, _ in members)
        concatenated_at = {column: index for index, column in enumerate(order)}
        self._reorder = [concatenated_at[position] for position in range(len(self.columns))]
        self.nbytes = int(ids.memory_usage(deep=False)) + sum(block.nbytes for block, _ in self._blocks)
        self.encoded_budget = min(max(self.nbytes, ENCODED_ROWS_MIN_BYTES), ENCODED_ROWS_MAX_BYTES)
        self._encoded: dict[Any, bytes] = {}
        self._encoded_bytes = 0

    def encoded_values(self, entity_id: Any, encode: Callable[[dict[str, Any]], bytes]) -> bytes | None:
        """``encode({column: value})`` of the row of ``entity_id``, None when the id is unknown.

        Kept once encoded while the kept bytes stay within ``encoded_budget`` (then later rows are encoded on
        each call): the version's hot rows answer with one dict probe. ``encode`` must be the same function for
        every call on one index (the service's JSON encoder).
        """
        kept = self._encoded.get(entity_id)
        if kept is not None:
            return kept
        position = self._position(entity_id)
        if position < 0:
            return None
        data = encode(dict(zip(self.columns, self._row(position), strict=True)))
        if self._encoded_bytes + len(data) <= self.encoded_budget:
            self._encoded[entity_id] = data
            self._encoded_bytes += len(data)  # a race between threads may add a row twice: the bound still holds
        return data

    def lookup(self, entity_ids: Sequence[Any], version: int) -> LookupResult:
        """Rows for ``entity_ids`` in request order (None for unknown ids)."""
        if len(entity_ids) == 1:
            # The hot path: one hash probe, one tolist() per dtype block.
            position = self._position(entity_ids[0])
            if position < 0:
                return LookupResult(columns=self.columns, rows=[None], missing=list(entity_ids), version=version)
            return LookupResult(columns=self.columns, rows=[self._row(position)], missing=[], version=version)
        try:
            wanted = pd.Index(list(entity_ids))  # int64 when every id is an int: a fast typed hash probe
            positions = self._ids.get_indexer(wanted)
        except (TypeError, ValueError):
            positions = self._ids.get_indexer(pd.Index(list(entity_ids), dtype=object))
        found = positions >= 0
        taken = [
            [[convert(v) for v in row] for row in block[positions[found]].tolist()]
            if convert is not _identity
            else block[positions[found]].tolist()
            for block, convert in self._blocks
        ]
        reorder = self._reorder
        found_rows: Iterator[list[Any]] = (
            [concatenated[i] for i in reorder]
            for concatenated in (list(chain.from_iterable(parts)) for parts in zip(*taken, strict=True))
        )
        if not taken:
            found_rows = iter([] for _ in range(int(found.sum())))
        rows: list[list[Any] | None] = [next(found_rows) if hit else None for hit in found.tolist()]
        missing = [entity_id for entity_id, hit in zip(entity_ids, found.tolist(), strict=True) if not hit]
        return LookupResult(columns=self.columns, rows=rows, missing=missing, version=version)

    def _row(self, position: int) -> list[Any]:
        concatenated: list[Any] = []
        for block, convert in self._blocks:
            values = block[position].tolist()
            concatenated.extend(values if convert is _identity else [convert(v) for v in values])
        return [concatenated[i] for i in self._reorder]

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
