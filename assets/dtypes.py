"""The platform's dtypes and what each one is in every engine: the one table all type mappings read.

A feature or source column is declared with a platform dtype (`int32`, `int64`, `float64`, `string`,
`bool`, `timestamp`, `date`); Spark, Flink, Arrow, pandas and the JSON lines of a stream each spell it
their own way. Every mapping in the platform (query checks, DDL, UDF return types, stream contracts,
Arrow casts, nullable pandas columns) looks the dtype up here, so adding or changing one is one row.

Arrow types are named, not built, so that loading the registry does not import pyarrow: `arrow_type`
builds them when a caller that already works with Arrow asks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Literal

Dtype = Literal["int32", "int64", "float64", "string", "bool", "timestamp", "date"]

INT_RANGES: dict[str, tuple[int, int]] = {"int32": (-(2 ** 31), 2 ** 31 - 1), "int64": (-(2 ** 63), 2 ** 63 - 1)}
TIMESTAMP_TEXT = re.compile(r"^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?$")
DATE_TEXT = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def _calendar(match: re.Match | None, time_part: bool) -> bool:
    if match is None:
        return False
    year, month, day = (int(match.group(i)) for i in (1, 2, 3))
    try:
        date(year, month, day)
    except ValueError:
        return False
    return not time_part or (int(match.group(4)) < 24 and int(match.group(5)) < 60 and int(match.group(6)) < 60)


def _integer(kind: str) -> Callable[[object], bool]:
    low, high = INT_RANGES[kind]
    return lambda v: type(v) is int and low <= v <= high


@dataclass(frozen=True)
class DtypeSpec:
    """One platform dtype as each engine spells it.

    spark: Spark SQL type (a DataFrame field's `simpleString()`, what DDL and CASTs write);
    spark_class: the Spark DataType class name (what Great Expectations' type expectation compares);
    flink: Flink SQL type (DDL, UDF result types); flink_roots: the `LogicalTypeRoot` names of a resolved
    Flink schema that read back as this dtype; arrow: the pyarrow type constructor and its arguments
    (see `arrow_type`; timestamps in microseconds, UTC, as the platform writes them);
    pandas: the nullable pandas dtype a column takes in frames the platform returns, where Arrow's default
    conversion would lose nulls (None: the default keeps them); json_valid: whether a parsed JSON value
    (a stream record's field) is a value of this dtype (int32/int64 JSON integers in range, not bools or
    numeric strings; timestamps `YYYY-MM-DD HH:MM:SS[.fraction]`, Flink's SQL text; dates `YYYY-MM-DD`);
    allowed_value_type: the Python type of `allowed_values` entries (None: sets do not apply).
    """

    name: str
    spark: str
    spark_class: str
    flink: str
    flink_roots: tuple[str, ...]
    arrow: tuple[str, tuple]
    pandas: str | None
    json_valid: Callable[[object], bool]
    numeric: bool = False
    allowed_value_type: type | None = None


DTYPES: dict[str, DtypeSpec] = {spec.name: spec for spec in (
    DtypeSpec("int32", "int", "IntegerType", "INT", ("INTEGER",), ("int32", ()), "Int32", _integer("int32"),
              numeric=True, allowed_value_type=int),
    DtypeSpec("int64", "bigint", "LongType", "BIGINT", ("BIGINT",), ("int64", ()), "Int64", _integer("int64"),
              numeric=True, allowed_value_type=int),
    DtypeSpec("float64", "double", "DoubleType", "DOUBLE", ("DOUBLE",), ("float64", ()), None,
              lambda v: type(v) in (int, float), numeric=True),
    DtypeSpec("string", "string", "StringType", "STRING", ("VARCHAR", "CHAR"), ("string", ()), None,
              lambda v: type(v) is str, allowed_value_type=str),
    DtypeSpec("bool", "boolean", "BooleanType", "BOOLEAN", ("BOOLEAN",), ("bool_", ()), "boolean",
              lambda v: type(v) is bool, allowed_value_type=bool),
    DtypeSpec("timestamp", "timestamp", "TimestampType", "TIMESTAMP(6)",
              ("TIMESTAMP_WITHOUT_TIME_ZONE", "TIMESTAMP_WITH_LOCAL_TIME_ZONE"), ("timestamp", ("us", "UTC")), None,
              lambda v: type(v) is str and _calendar(TIMESTAMP_TEXT.match(v), time_part=True)),
    DtypeSpec("date", "date", "DateType", "DATE", ("DATE",), ("date32", ()), None,
              lambda v: type(v) is str and _calendar(DATE_TEXT.match(v), time_part=False)),
)}

SPARK_TYPES: dict[str, str] = {name: spec.spark for name, spec in DTYPES.items()}
FLINK_TYPES: dict[str, str] = {name: spec.flink for name, spec in DTYPES.items()}
FLINK_TYPE_ROOTS: dict[str, str] = {root: name for name, spec in DTYPES.items() for root in spec.flink_roots}
NUMERIC_DTYPES: tuple[str, ...] = tuple(name for name, spec in DTYPES.items() if spec.numeric)


def arrow_type(dtype: str):
    """The pyarrow type of a dtype's columns (imported here: only Arrow users pay for pyarrow)."""
    import pyarrow as pa

    constructor, args = DTYPES[dtype].arrow
    return getattr(pa, constructor)(*args)


def nullable_pandas_types() -> dict:
    """Arrow type -> pandas dtype for the dtypes whose pandas column must be nullable (a `types_mapper`)."""
    import pandas as pd

    return {arrow_type(name): pd.api.types.pandas_dtype(spec.pandas)
            for name, spec in DTYPES.items() if spec.pandas is not None}
