"""The platform's dtypes and what each one is in every engine: the one table all type mappings read.

A feature or source column is declared with a platform dtype (`int32`, `int64`, `float64`, `string`,
`bool`, `timestamp`, `date`); Spark, Flink, Arrow and pandas each spell it their own way. Every mapping in the platform (query checks, DDL, UDF return types, reading a Flink
schema back, Arrow casts, nullable pandas columns, integer ranges) looks the dtype up here, so adding or
changing one is one row. How a JSON value of a stream record parses into a dtype is the contract's rule
(quality/contracts.py, with the ranges from here).

Arrow types are named, not built, so that loading the registry does not import pyarrow: `arrow_type`
builds them when a caller that already works with Arrow asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Dtype = Literal["int32", "int64", "float64", "string", "bool", "timestamp", "date"]

INT_RANGES: dict[str, tuple[int, int]] = {"int32": (-(2 ** 31), 2 ** 31 - 1), "int64": (-(2 ** 63), 2 ** 63 - 1)}


@dataclass(frozen=True)
class DtypeSpec:
    """One platform dtype as each engine spells it.

    spark: Spark SQL type (a DataFrame field's `simpleString()`, what DDL and CASTs write);
    spark_class: the Spark DataType class name (what Great Expectations' type expectation compares);
    flink: Flink SQL type (DDL, UDF result types); flink_names: every name Flink's `DESCRIBE` shows a
    column of this dtype as, without length or precision (VARCHAR(2147483647) is STRING);
    arrow: the pyarrow type constructor and its arguments (see `arrow_type`; timestamps in microseconds,
    UTC, as the platform writes them);
    pandas: the nullable pandas dtype a column takes in frames the platform returns, where Arrow's default
    conversion would lose nulls (None: the default keeps them); numeric: ranges (min/max) apply;
    allowed_value_type: the Python type of `allowed_values` entries (None: sets do not apply).
    """

    name: str
    spark: str
    spark_class: str
    flink: str
    flink_names: tuple[str, ...]
    arrow: tuple[str, tuple]
    pandas: str | None
    numeric: bool = False
    allowed_value_type: type | None = None


DTYPES: dict[str, DtypeSpec] = {spec.name: spec for spec in (
    DtypeSpec("int32", "int", "IntegerType", "INT", ("INT", "INTEGER"), ("int32", ()), "Int32",
              numeric=True, allowed_value_type=int),
    DtypeSpec("int64", "bigint", "LongType", "BIGINT", ("BIGINT",), ("int64", ()), "Int64",
              numeric=True, allowed_value_type=int),
    DtypeSpec("float64", "double", "DoubleType", "DOUBLE", ("DOUBLE",), ("float64", ()), None, numeric=True),
    DtypeSpec("string", "string", "StringType", "STRING", ("STRING", "VARCHAR", "CHAR"), ("string", ()), None,
              allowed_value_type=str),
    DtypeSpec("bool", "boolean", "BooleanType", "BOOLEAN", ("BOOLEAN",), ("bool_", ()), "boolean",
              allowed_value_type=bool),
    DtypeSpec("timestamp", "timestamp", "TimestampType", "TIMESTAMP(6)", ("TIMESTAMP", "TIMESTAMP_LTZ"),
              ("timestamp", ("us", "UTC")), None),
    DtypeSpec("date", "date", "DateType", "DATE", ("DATE",), ("date32", ()), None),
)}

SPARK_TYPES: dict[str, str] = {name: spec.spark for name, spec in DTYPES.items()}
FLINK_TYPES: dict[str, str] = {name: spec.flink for name, spec in DTYPES.items()}
DTYPE_OF_FLINK_TYPE: dict[str, str] = {flink: name for name, spec in DTYPES.items() for flink in spec.flink_names}


def dtype_of_flink_column(column) -> str:
    """The platform dtype of a column Flink described (infra/flink_sql.py: `type_name`, `type`), or its Flink
    type where no dtype matches, so a message can name what Flink said."""
    return DTYPE_OF_FLINK_TYPE.get(column.type_name, column.type)
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
