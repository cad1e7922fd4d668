"""What a partition check found, as plain data: no Great Expectations, Spark or Dagster types in it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime

from quality.schema_diff import SchemaDiff


@dataclass(frozen=True)
class FailedExpectation:
    """One expectation that did not hold: what was declared, what was seen, and up to 10 offending rows."""

    expectation: str
    column: str | None
    declared: dict
    observed: object
    unexpected_count: int | None
    sample_rows: tuple[dict, ...]


@dataclass(frozen=True)
class PartitionReport:
    """The outcome of checking one partition of one table."""

    table: str
    partition: str
    rows: int | None
    engine: str
    expectations: int
    failures: tuple[FailedExpectation, ...]
    schema_diff: SchemaDiff
    rows_as_read: tuple[dict, ...]  # a sample of the partition as written, when its schema differs
    seconds: float
    problem: str | None = None  # the partition could not be read as one table

    @property
    def passed(self) -> bool:
        return not self.failures and self.problem is None

    def summary(self) -> str:
        """One line for the UI and the command line: the problem, the schema changes and the failed expectations."""
        if self.passed:
            return f"{self.expectations} expectations passed"
        failed = [f"{f.expectation}" + (f" on {f.column}" if f.column else "")
                  + (f" ({f.unexpected_count} rows)" if f.unexpected_count else "") for f in self.failures]
        parts = [self.problem, self.schema_diff.summary() if self.schema_diff else None,
                 "failed: " + ", ".join(failed) if failed else None]
        return "; ".join(p for p in parts if p)


def json_value(value):
    """A JSON-ready form of a value GE or Spark hands back (timestamps as ISO text, NaN and NaT as null)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if type(value).__name__ in ("NaTType", "NAType"):
        return None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return json_value(value.item())
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return value if isinstance(value, (str, int, float, bool)) else str(value)
