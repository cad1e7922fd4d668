"""The aggregation operations of declared windowed features: one row per operation, read by both engines.

A row says everything about one operation: its words in the rendered files' comments, its HiveQL over a
window (batch.sql), which inputs it takes and the dtype of its value, what it is over a window without events,
and how the stream's window operator (streaming/windows.py) keeps it: a tile's partial, an event merged into
it, and a window's value from the partials of the tiles it covers. The specs, the registry's checks, the SQL
renderer (assets/aggregations.py) and the window operator read this table and nothing else, so adding an
operation is adding a row (and its test), as Chronon adds an aggregator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from assets.dtypes import NUMERIC_DTYPES


@dataclass(frozen=True)
class Operation:
    """One aggregation: how batch and stream compute it."""

    name: str
    described: str        # the rendered files' words for it; {x} is the input column
    batch: str            # HiveQL aggregate over one window; {} is the per-row value (NULL outside the window)
    add: Callable[[Any, Any, int], Any] | None  # (a tile's partial or None, input value, event time µs) -> partial
    finalize: Callable[[list], Any]  # the partials of a window's tiles (none when it is empty) -> the value
    empty: Any = None     # the value over a window without events (None: null); batch and stream alike
    batch_input: str = "{x}"  # the per-row value `batch` aggregates; {x} the input column, {t} the event time
    numeric: bool = False  # takes numeric inputs only
    dtype: str | None = None  # the value's dtype; None: the input's
    all_rows: str | None = None  # its HiveQL without an input over the longest window (counts events): None
                                 # when it needs an input
    distinct: bool = False  # COUNT DISTINCT: the window operator keeps each item's latest tile (EntityWindows)

    @property
    def needs_input(self) -> bool:
        return self.all_rows is None

    def value_dtype(self, input_dtype: str | None) -> str:
        """The dtype of the value over an input of `input_dtype` (None: no input)."""
        return self.dtype or input_dtype

    def refuses(self, input_dtype: str) -> str | None:
        """Why an input of `input_dtype` cannot be aggregated this way, or None when it can."""
        if self.numeric and input_dtype not in NUMERIC_DTYPES:
            return f"{self.name} needs a numeric column"
        return None


def _count(partial, _value, _time_us):
    return (partial or 0) + 1


def _sum(partial, value, _time_us):
    return value if partial is None else partial + value


def _min(partial, value, _time_us):
    return value if partial is None else min(partial, value)


def _max(partial, value, _time_us):
    return value if partial is None else max(partial, value)


def _last(partial, value, time_us):
    """The value of the latest event; a tie goes to the larger value (as batch's MAX of (time, value))."""
    candidate = (time_us, value)
    return candidate if partial is None else max(partial, candidate)


def _avg(partial, value, _time_us):
    """(sum, count) of the tile's inputs."""
    return (value, 1) if partial is None else (partial[0] + value, partial[1] + 1)


def _smallest(partials: list):
    return min(partials, default=None)


def _largest(partials: list):
    return max(partials, default=None)


def _latest(partials: list):
    return max(partials)[1] if partials else None


def _mean(partials: list) -> float | None:
    count = sum(c for _, c in partials)
    return sum(s for s, _ in partials) / count if count else None


OPERATIONS: dict[str, Operation] = {op.name: op for op in (
    Operation("count", "COUNT({x})", "COUNT({})", _count, sum, empty=0, dtype="int64", all_rows="COUNT(*)"),
    Operation("count_distinct", "COUNT(DISTINCT {x})", "COUNT(DISTINCT {})", None, sum, empty=0, dtype="int64",
              distinct=True),
    Operation("sum", "SUM({x})", "COALESCE(SUM({}), 0)", _sum, sum, empty=0, numeric=True),
    Operation("min", "MIN({x})", "MIN({})", _min, _smallest),
    Operation("max", "MAX({x})", "MAX({})", _max, _largest),
    Operation("last", "the {x} of the latest event", "MAX({}).v", _last, _latest,
              batch_input="NAMED_STRUCT('t', {t}, 'v', {x})"),
    Operation("avg", "AVG({x})", "AVG({})", _avg, _mean, numeric=True, dtype="float64"),
)}
OPERATION_NAMES = tuple(OPERATIONS)
