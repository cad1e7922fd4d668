"""The dtype table (assets/dtypes.py) against the engines it speaks for: each spelling is the engine's own."""

from __future__ import annotations

import typing
from datetime import date, datetime, timezone

import pyarrow as pa
import pyspark.sql.types as spark_types
import pytest

from assets.dtypes import DTYPE_OF_FLINK_TYPE, DTYPES, INT_RANGES, Dtype, arrow_type, nullable_pandas_types
from serving.codec import DECODERS

VALUES = {"int32": [INT_RANGES["int32"][1], None], "int64": [INT_RANGES["int64"][0], None], "float64": [0.5, None],
          "string": ["a", None], "bool": [True, None],
          "timestamp": [datetime(2026, 1, 1, 12, 0, 0, 7, tzinfo=timezone.utc), None], "date": [date(2026, 1, 1), None]}


def test_every_declarable_dtype_has_a_row_and_a_redis_codec():
    assert list(typing.get_args(Dtype)) == list(DTYPES) == list(VALUES)
    assert set(DECODERS) == set(DTYPES)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_each_engine_spelling_is_the_engines_own(dtype):
    spec = DTYPES[dtype]
    assert getattr(spark_types, spec.spark_class)().simpleString() == spec.spark
    assert DTYPE_OF_FLINK_TYPE[spec.flink.split("(")[0]] == dtype
    column = pa.array(VALUES[dtype], arrow_type(dtype))
    assert column.to_pylist() == VALUES[dtype]
    frame = pa.table({"c": column}).to_pandas(types_mapper=nullable_pandas_types().get)
    assert frame["c"].isna().tolist() == [False, True]
    if spec.pandas is not None:
        assert str(frame["c"].dtype) == spec.pandas and frame["c"][0] == VALUES[dtype][0]


def test_the_int_ranges_are_the_two_complement_ranges():
    assert INT_RANGES == {"int32": (-2 ** 31, 2 ** 31 - 1), "int64": (-2 ** 63, 2 ** 63 - 1)}
