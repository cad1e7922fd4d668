"""Redis commands in Redis's wire protocol (RESP), built a column at a time by Arrow.

Why: a publish sends millions of arguments. Packing each one in Python (what redis-py does per argument)
costs more than Redis spends running the commands, so the batched writer encodes whole columns with
Arrow's kernels into bulk strings (`$<length>\\r\\n<bytes>\\r\\n`), joins each row's arguments into one
value, and hands Redis contiguous slices of those buffers without copying them value by value.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def bulk(value: bytes | str | int) -> bytes:
    """One argument as a bulk string."""
    data = value if isinstance(value, bytes) else str(value).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def header(arguments: int) -> bytes:
    """The array header of a command of `arguments` bulk strings (the command's name included)."""
    return b"*%d\r\n" % arguments


def bulk_strings(values: pa.BinaryArray) -> pa.BinaryArray:
    """Each value (no nulls) as a bulk string."""
    lengths = pc.binary_length(values).cast(pa.string()).cast(pa.binary())
    return pc.binary_join_element_wise(b"$", lengths, b"\r\n", values, b"\r\n", b"")


def concatenated(columns: list[pa.BinaryArray]) -> pa.BinaryArray:
    """Row by row, the columns' values one after the other: one value per row holding all its arguments."""
    return pc.binary_join_element_wise(*columns, b"")


def contiguous(values: pa.BinaryArray) -> memoryview:
    """All of `values` (a slice of an array included) as one run of bytes, without copying them."""
    if len(values) == 0:
        return memoryview(b"")
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32, count=values.offset + len(values) + 1)
    return memoryview(values.buffers()[2])[offsets[values.offset]:offsets[-1]]
