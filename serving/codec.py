"""Typed values to Redis strings and back, exactly, for every declared dtype.

Writers hand over Arrow arrays (what Spark's mapInArrow, pandas and Flink's vectorized UDFs all produce),
encoded a column at a time; readers decode bytes by the feature's declared dtype. int and float travel
as Python's own text forms (`repr` of a float round-trips exactly), bools as 1/0, timestamps as integer
microseconds since the epoch (UTC), dates as ISO text. A null is sent as a byte that is never valid
UTF-8, so the write script deletes the field instead of storing a value.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.compute as pc

NULL = b"\xff"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _timestamp_micros(array: pa.Array) -> pa.Array:
    if pa.types.is_timestamp(array.type):
        return array.cast(pa.timestamp("us", tz=array.type.tz)).cast(pa.int64())
    return array.cast(pa.int64())  # already integer microseconds


def encode_column(dtype: str, array: pa.Array) -> list:
    """Encode one Arrow column of a declared dtype into values Redis stores (NULL for nulls)."""
    if dtype == "bool":
        array = pc.if_else(array, "1", "0")
    elif dtype == "timestamp":
        array = _timestamp_micros(array)
    elif dtype == "date":
        array = array.cast(pa.string())
    elif dtype == "float64":
        array = array.cast(pa.float64())
    values = array.to_pylist()
    if array.null_count:
        values = [NULL if v is None else v for v in values]
    return values


def micros_to_datetime(micros: int) -> datetime:
    """Exact conversion (no float rounding) of epoch microseconds to an aware UTC datetime."""
    return EPOCH + timedelta(microseconds=micros)


def datetime_to_micros(value: datetime) -> int:
    """Epoch microseconds of a datetime; a naive one is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


DECODERS = {  # dtype -> bytes-to-value, shared by every reader
    "int32": int,
    "int64": int,
    "float64": float,
    "string": lambda raw: raw.decode(),
    "bool": lambda raw: raw == b"1",
    "timestamp": lambda raw: micros_to_datetime(int(raw)),
    "date": lambda raw: date.fromisoformat(raw.decode()),
}


def decode_value(dtype: str, raw: bytes | None):
    """The typed value of a stored field, or None when the field is absent."""
    return None if raw is None else DECODERS[dtype](raw)
