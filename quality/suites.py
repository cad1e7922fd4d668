"""Great Expectations suites built from what is declared, never written by hand per source or group.

Each partition gets two lists of expectations:
  schema   the column set (or ordered list) and each column's type: answered from the Spark DataFrame's
           schema alone, no data scanned;
  values   non-null columns, the event time inside the partition's day, a unique entity key, feature
           ranges and allowed values, the row count against the previous partition: scanned on pandas or
           Spark (quality.validation chooses), and only for columns present with their declared type, so
           a renamed or retyped column is reported once, by the schema part, not as a cascade of errors.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, timezone

import great_expectations.expectations as gxe

from assets.dtypes import DTYPES
from assets.specs import FeatureGroup, Source
from quality.schema_diff import ColumnSchema

# The Spark DataType class GE's type expectation compares with, per Spark SQL type name.
GE_SPARK_TYPES = {spec.spark: spec.spark_class for spec in DTYPES.values()}


def schema_expectations(declared: list[ColumnSchema], present: Iterable[str], ordered: bool) -> list:
    """The declared columns (exactly, in order if `ordered`) and the type of each one present."""
    names = [c.name for c in declared]
    table = (gxe.ExpectTableColumnsToMatchOrderedList(column_list=names) if ordered
             else gxe.ExpectTableColumnsToMatchSet(column_set=names, exact_match=True))
    present = set(present)
    return [table, *(gxe.ExpectColumnValuesToBeOfType(column=c.name, type_=GE_SPARK_TYPES[c.dtype])
                     for c in declared if c.name in present)]


def not_null_expectations(declared: list[ColumnSchema], usable: set[str]) -> list:
    """One not-null expectation per column declared non-null."""
    return [gxe.ExpectColumnValuesToNotBeNull(column=c.name) for c in declared
            if not c.nullable and c.name in usable]


def source_value_expectations(source: Source, declared: list[ColumnSchema], usable: set[str], ds: str) -> list:
    """A raw partition's data: required columns not null, every event time within the partition's day."""
    expectations = not_null_expectations(declared, usable)
    if source.event_time in usable:
        day = datetime.combine(date.fromisoformat(ds), time.min, tzinfo=timezone.utc)
        expectations.append(gxe.ExpectColumnValuesToBeBetween(
            column=source.event_time, min_value=day, max_value=day + timedelta(days=1), strict_max=True))
    return expectations


def feature_value_expectations(group: FeatureGroup, declared: list[ColumnSchema], usable: set[str],
                               previous_rows: int | None) -> list:
    """A feature partition's data: a non-null unique key, declared ranges and sets, the row-count window."""
    key = declared[0].name
    expectations = not_null_expectations(declared, usable)
    if key in usable:
        expectations.append(gxe.ExpectColumnValuesToBeUnique(column=key))
    for feature in group.features:
        if feature.name not in usable:
            continue
        if feature.min is not None or feature.max is not None:
            expectations.append(gxe.ExpectColumnValuesToBeBetween(column=feature.name, min_value=feature.min,
                                                                  max_value=feature.max))
        if feature.allowed_values is not None:
            expectations.append(gxe.ExpectColumnValuesToBeInSet(column=feature.name,
                                                                value_set=list(feature.allowed_values)))
    bounds = group.row_count_vs_previous
    if bounds is not None and previous_rows:
        expectations.append(gxe.ExpectTableRowCountToBeBetween(
            min_value=math.ceil(previous_rows * bounds.min_ratio),
            max_value=None if bounds.max_ratio is None else math.floor(previous_rows * bounds.max_ratio)))
    return expectations
