"""Run a partition's suites with Great Expectations (ephemeral context) and report the outcome as plain data.

Engine choice, measured at 1M rows on 2 cores (benchmarks/quality.py prints the current figures): the
schema expectations always run on the Spark DataFrame (its schema answers them, no data is read); the
value expectations run on pandas up to PANDAS_MAX_ROWS rows and on GE's Spark engine above it, so a
large partition is never collected into the driver. Expectations on string columns stay on Spark
(split_by_engine): GE fingerprints every pandas batch by hashing it, 1.6 s per million strings. A feature
partition's check takes 1.1 s this way against 4.7 s all on Spark, where every expectation costs a Spark
job and uniqueness a slow window; a raw partition's 1.0 s against 1.5 s. GE's Spark batches are not
persisted: nothing reads the cache, and filling it cost the next action 0.8 s. Types are judged on
Spark's schema, never on pandas'.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import great_expectations as gx
import pandas as pd
import pyarrow as pa
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from quality.partitions import PartitionRead
from quality.report import FailedExpectation, PartitionReport, json_value
from quality.schema_diff import ColumnSchema, SchemaDiff, diff_schemas
from quality.suites import schema_expectations

PANDAS_MAX_ROWS = 2_000_000
SAMPLE_ROWS = 10
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_ROWS, "include_unexpected_rows": True}
NOT_NULL = "expect_column_values_to_not_be_null"
# Strings stay in Arrow memory (no Python objects). Integers stay numpy: GE's pandas range checks are 4x
# slower on nullable Int64 arrays; an integer column with nulls turns float, which value checks accept.
ARROW_TO_PANDAS = {pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")}


def _records(rows) -> tuple[dict, ...]:
    """Up to SAMPLE_ROWS rows (a pandas frame, Spark Rows or dicts) as JSON-ready dicts."""
    if rows is None:
        return ()
    if hasattr(rows, "to_dict"):
        rows = rows.head(SAMPLE_ROWS).to_dict(orient="records")
    return tuple({str(k): json_value(v) for k, v in (r.asDict() if hasattr(r, "asDict") else dict(r)).items()}
                 for r in list(rows)[:SAMPLE_ROWS])


def _failure(result) -> FailedExpectation:
    config = result.expectation_config
    outcome = result.result or {}
    if result.exception_info and result.exception_info.get("raised_exception"):
        observed = f"error: {result.exception_info.get('exception_message')}"
    elif "observed_value" in outcome:
        observed = json_value(outcome["observed_value"])
    else:
        observed = json_value(outcome.get("partial_unexpected_list", []))
    declared = {k: json_value(v) for k, v in config.kwargs.items() if k not in ("column", "batch_id")}
    return FailedExpectation(expectation=config.type, column=config.kwargs.get("column"), declared=declared,
                             observed=observed, unexpected_count=outcome.get("unexpected_count"),
                             sample_rows=_records(outcome.get("unexpected_rows")))


class Validator:
    """An ephemeral GE context with a Spark and a pandas whole-DataFrame batch definition."""

    def __init__(self):
        config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(), analytics_enabled=False,
                                   progress_bars=ProgressBarsConfig(globally=False))
        self.context = gx.get_context(mode="ephemeral", project_config=config)
        self.batches = {
            # persist=False: GE would cache the partition in Spark memory and the next action pays for it
            "spark": self.context.data_sources.add_spark("spark", persist=False).add_dataframe_asset("partition")
            .add_batch_definition_whole_dataframe("whole"),
            "pandas": self.context.data_sources.add_pandas("pandas").add_dataframe_asset("partition")
            .add_batch_definition_whole_dataframe("whole"),
        }

    def run(self, engine: str, data, expectations: list, name: str) -> list:
        """Validate `data` (a Spark or pandas DataFrame) against `expectations`; GE's per-expectation results.

        Through a ValidationDefinition, which builds the batch once (GE fingerprints a pandas batch each
        time it builds one, which costs about a second per million rows with a string column).
        """
        if not expectations:
            return []
        suite = self.context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=self.batches[engine], suite=suite))
        return list(definition.run(batch_parameters={"dataframe": data}, result_format=RESULT_FORMAT).results)


def to_pandas(frame):
    """A Spark DataFrame in pandas through Arrow: the cheapest form GE's pandas engine checks quickly."""
    return frame.toArrow().to_pandas(types_mapper=ARROW_TO_PANDAS.get)


def split_by_engine(expectations: list, declared: list[ColumnSchema], usable: set[str]
                    ) -> tuple[list, list, list[str]]:
    """Expectations to run on Spark and on pandas, and the columns pandas needs, for a partition small enough
    for pandas.

    String columns stay on Spark: GE fingerprints every pandas batch by hashing it, which costs 1.6 s per
    million strings (more than the rest of the check). Without string columns the pandas frame only holds
    numbers and times (0.04 s to hash); if no such column is usable, everything runs on Spark.
    """
    numeric = [c.name for c in declared if c.name in usable and c.dtype != "string"]
    if not numeric:
        return expectations, [], []
    strings = {c.name for c in declared if c.dtype == "string"}
    on_spark = [e for e in expectations if getattr(e, "column", None) in strings]
    return on_spark, [e for e in expectations if e not in on_spark], numeric


def validate_partition(read: PartitionRead, table: str, ds: str, declared: list[ColumnSchema],
                       value_expectations: Callable[[set[str]], list], ordered: bool = False) -> PartitionReport:
    """Check a partition as read against its declared columns and the value expectations of its usable columns.

    `value_expectations(usable)` builds the value suite for the columns present with their declared type.
    """
    started = time.monotonic()
    if read.frame is None:
        diff = diff_schemas(declared, read.columns, ordered=ordered) if read.columns else SchemaDiff()
        return PartitionReport(table, ds, None, "none", 0, (), diff, (), time.monotonic() - started, read.problem)
    actual = {c.name: c.dtype for c in read.columns}
    usable = {c.name for c in declared if actual.get(c.name) == c.dtype}
    validator = Validator()
    schema_suite = schema_expectations(declared, actual, ordered)
    results = validator.run("spark", read.frame, schema_suite, "schema")
    rows = read.frame.count()
    engine = "pandas" if rows <= PANDAS_MAX_ROWS else "spark"
    values_suite = value_expectations(usable)
    if engine == "pandas":
        on_spark, on_pandas, columns = split_by_engine(values_suite, declared, usable)
        results += validator.run("spark", read.frame, on_spark, "values on spark")
        if on_pandas:
            results += validator.run("pandas", to_pandas(read.frame.select(*columns)), on_pandas, "values")
    else:
        results += validator.run("spark", read.frame, values_suite, "values")
    failures = tuple(_failure(r) for r in results if not r.success)
    null_counts = {f.column: f.unexpected_count or 0 for f in failures if f.expectation == NOT_NULL}
    diff = diff_schemas(declared, read.columns, null_counts, ordered)
    structural = diff.added or diff.removed or diff.retyped or diff.reordered
    rows_as_read = _records(read.frame.limit(SAMPLE_ROWS).collect()) if structural else ()
    return PartitionReport(table, ds, rows, engine, len(schema_suite) + len(values_suite), failures, diff,
                           rows_as_read, time.monotonic() - started)
