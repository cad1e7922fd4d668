"""The one offline (Hive) table layout, used by every writer (event log, batch job, stream injector) and reader.

Raw events live in `raw.<source>` (the table a source contract names), feature values in
`features.<group>_v<n>`, one table per group version so versions coexist, and the values a group's stream
injector sent to Redis in `features.<group>_v<n>_streamed` (same columns). Every table is Parquet,
partitioned by day in the string column `ds`. A feature table's columns are the entity key, the features
in declared order, then `feature_ts`, the event time the values hold as of.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from assets.dtypes import SPARK_TYPES

if TYPE_CHECKING:
    from assets.registry import Registry
    from assets.specs import FeatureGroup, Source

PARTITION_COLUMN = "ds"
EVENT_TIME_COLUMN = "feature_ts"
FEATURE_DATABASE = "features"
STREAMED_SUFFIX = "_streamed"


def feature_table(group: str, version: int) -> str:
    """The offline feature table of one group version."""
    return f"{FEATURE_DATABASE}.{group}_v{version}"


def streamed_table(group: FeatureGroup) -> str:
    """The table the stream injector appends a group version's streamed rows to (same columns as the batch table)."""
    return f"{group.table}{STREAMED_SUFFIX}"


SERVED_DATABASE = "served"
# The logged responses of a feature service, one row per (response, id, feature); `value` is the JSON the
# caller received, so any dtype fits one column (batch/served_log.py writes it, quality/skew.py reads it).
SERVED_COLUMNS = (("served_at", "timestamp"), ("request_time", "timestamp"), ("entity_id", "string"),
                  ("feature", "string"), ("dtype", "string"), ("value", "string"), ("event_time", "timestamp"),
                  ("stale", "bool"))


def served_table(service: str) -> str:
    """The Hive table of a feature service's logged responses, partitioned by the UTC day they were served."""
    return f"{SERVED_DATABASE}.{service}"


def feature_table_columns(registry: Registry, group: FeatureGroup) -> list[tuple[str, str]]:
    """(name, dtype) of a group version's tables: entity key, features, then the event time."""
    entity = registry.entity_of(group)
    return [(entity.key, entity.dtype), *((f.name, f.dtype) for f in group.features),
            (EVENT_TIME_COLUMN, "timestamp")]


def table_ddl(table: str, columns: Iterable[tuple[str, str]]) -> str:
    """CREATE TABLE for a daily-partitioned Parquet Hive table with (name, dtype) columns."""
    body = ",\n  ".join(f"`{name}` {SPARK_TYPES[dtype]}" for name, dtype in columns)
    return (f"CREATE TABLE IF NOT EXISTS {table} (\n  {body}\n) "
            f"PARTITIONED BY ({PARTITION_COLUMN} STRING) STORED AS PARQUET")


def table_partitions(spark, table: str) -> list[str]:
    """The `ds` partitions of a Hive table, oldest first; none when the table does not exist."""
    if not spark.catalog.tableExists(table):
        return []
    return sorted(row[0].split("=", 1)[1] for row in spark.sql(f"SHOW PARTITIONS {table}").collect())


def ensure_database(spark, table: str) -> None:
    """Create the database of `db.table` if it does not exist."""
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {table.split('.')[0]}")


def ensure_table(spark, table: str, columns: Iterable[tuple[str, str]]) -> None:
    """Create `table` (and its database) with (name, dtype) columns if it does not exist."""
    ensure_database(spark, table)
    spark.sql(table_ddl(table, columns))


def ensure_raw_table(spark, source: Source) -> None:
    """Create the source's event-log table from its contract if it does not exist yet."""
    ensure_table(spark, source.table, [(c.name, c.dtype) for c in source.columns])


def ensure_feature_table(spark, registry: Registry, group: FeatureGroup) -> None:
    """Create the group version's offline table if it does not exist."""
    ensure_table(spark, group.table, feature_table_columns(registry, group))
