"""The event log in Hive: one table per source contract, `raw.<source>`, partitioned by day (`ds`).

Tables are created from the contract (assets.offline_layout), partitions are written with INSERT
OVERWRITE so re-loading a day replaces it rather than duplicating it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from assets.dtypes import SPARK_TYPES
from assets.offline_layout import PARTITION_COLUMN, ensure_raw_table
from assets.registry import Registry
from assets.specs import Source


def write_raw_partitions(spark, source: Source, partitions: Iterable[tuple[str, pd.DataFrame]]) -> int:
    """Replace the given `ds` partitions of the source's table with their events, in one Spark job.

    Each day is staged as its own Parquet file (so memory holds one day at a time), then one dynamic-
    partition INSERT OVERWRITE moves them all into the table.
    """
    ensure_raw_table(spark, source)
    names = [c.name for c in source.columns]
    rows = 0
    with tempfile.TemporaryDirectory(prefix="fp-raw-") as tmp:
        for ds, events in partitions:
            table = pa.Table.from_pandas(events[names], preserve_index=False)
            table = table.append_column(PARTITION_COLUMN, pa.array([ds] * len(events), pa.string()))
            # Spark rejects nanosecond timestamps in Parquet; the event log keeps microseconds.
            pq.write_table(table, Path(tmp) / f"{ds}.parquet", coerce_timestamps="us")
            rows += len(events)
        if rows == 0:
            return 0
        view = f"staged_{source.name}"
        spark.read.parquet(tmp).createOrReplaceTempView(view)
        select = ", ".join(f"CAST(`{c.name}` AS {SPARK_TYPES[c.dtype]}) AS `{c.name}`" for c in source.columns)
        spark.sql(f"INSERT OVERWRITE TABLE {source.table} PARTITION ({PARTITION_COLUMN}) "
                  f"SELECT {select}, {PARTITION_COLUMN} FROM {view}")
        spark.catalog.dropTempView(view)
    return rows


def write_event_log(spark, registry: Registry, sample, days: list[date],
                    progress: Callable[[str, date], None] | None = None) -> dict[str, int]:
    """Write every source's events for `days` from `sample` into the raw tables; rows per source."""
    counts = {}
    for name, source in registry.sources.items():
        def frames(name=name):
            for day in days:
                yield day.isoformat(), sample.events(name, day)
                if progress:
                    progress(name, day)
        counts[name] = write_raw_partitions(spark, source, frames())
    return counts
