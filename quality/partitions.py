"""Read one `ds` partition of a Hive table the way its files were written, not through the table's schema.

Reading through the table hides an upstream schema change: a renamed column comes back as nulls under
the old name, a retyped one fails deep inside a Spark task. Reading the partition's Parquet files
directly (schemas merged across files) shows the columns and types the producer actually wrote, which
is what the quality checks compare with the contract.
"""

from __future__ import annotations

from dataclasses import dataclass

from py4j.protocol import Py4JJavaError
from pyspark.errors import AnalysisException

from assets.offline_layout import PARTITION_COLUMN
from quality.declared import spark_columns
from quality.schema_diff import ColumnSchema

MERGE_FAILURE = "[CANNOT_MERGE_SCHEMAS]"  # Spark's error class when the files of one read disagree on a type


@dataclass(frozen=True)
class PartitionRead:
    """A partition as written: its DataFrame and columns, or why it cannot be read as one table."""

    frame: object | None  # pyspark DataFrame; None when the partition is missing or its files disagree
    columns: tuple[ColumnSchema, ...]
    problem: str | None = None


def partition_location(spark, table: str, ds: str) -> str | None:
    """Where the metastore says partition `ds` of `table` lives, or None if it has no such partition."""
    try:
        rows = spark.sql(f"DESCRIBE FORMATTED {table} PARTITION ({PARTITION_COLUMN}='{ds}')").collect()
    except AnalysisException:
        return None
    return next(r.data_type for r in rows if r.col_name.strip() == "Location")


def partition_row_count(spark, table: str, ds: str) -> int | None:
    """Rows in partition `ds` (answered from Parquet footers), or None if the partition does not exist."""
    if partition_location(spark, table, ds) is None:
        return None
    return spark.table(table).where(f"{PARTITION_COLUMN} = '{ds}'").count()


def _columns_across_files(spark, location: str) -> tuple[ColumnSchema, ...]:
    """Every column of every file; a column written with different types reads `type1|type2`."""
    types: dict[str, set[str]] = {}
    for path in spark.read.parquet(location).inputFiles():
        for column in spark_columns(spark.read.parquet(path).schema):
            types.setdefault(column.name, set()).add(column.dtype)
    return tuple(ColumnSchema(name, "|".join(sorted(found))) for name, found in types.items())


def read_partition(spark, table: str, ds: str) -> PartitionRead:
    """Partition `ds` of `table` with the schema of its own files."""
    location = partition_location(spark, table, ds)
    if location is None:
        return PartitionRead(None, (), f"{table} has no partition {PARTITION_COLUMN}={ds}")
    spark.catalog.refreshByPath(location)  # a rewritten partition must not be read from a stale file listing
    try:
        frame = spark.read.option("mergeSchema", "true").parquet(location)
    except Py4JJavaError as exc:
        if MERGE_FAILURE not in str(exc):  # unreadable files, a dead JVM: not a disagreement of the files
            raise
        return PartitionRead(None, _columns_across_files(spark, location),
                             f"the files of {table} {PARTITION_COLUMN}={ds} disagree on column types")
    return PartitionRead(frame, tuple(spark_columns(frame.schema)))
