"""The offline history of a feature group version: every value it ever had, with the event time it held from.

Two tables hold it, with the same columns (entity key, features, `feature_ts`) and a `ds` partition:
`features.<group>_v<n>`, written by the daily batch job (values as of the end of each day), and
`features.<group>_v<n>_streamed`, where the stream injector appends the rows it sends to Redis, so
training sets see the values models saw between batch runs. The streamed table is optional: a group
without a stream, or whose stream has not run yet, has only batch history.

Training sets (offline/training_set.py) read history only through this module: `offline_history` (a Spark
DataFrame), or `batch_history_files` + `read_history_files` for the pandas engine when the batch table is
all there is (Spark's catalog lists the table's Parquet files, Arrow reads them: no Spark job, the way
DuckDB or Feast's file store read Parquet). `offline_history` also settles
ties: at most one row per entity and event time, a batch row winning over streamed rows of the same
instant (batch recomputes from the whole event log), and among streamed rows the latest `ds`, then the
largest values (for counters, the last update of that instant).
"""

from __future__ import annotations

from assets.offline_layout import EVENT_TIME_COLUMN, PARTITION_COLUMN, feature_table_columns, streamed_table
from assets.registry import Registry
from assets.specs import FeatureGroup
from infra.errors import PlatformError


def history_columns(registry: Registry, group: FeatureGroup) -> list[str]:
    """Columns of the history: the entity key, the features in declared order, then `feature_ts`."""
    return [name for name, _ in feature_table_columns(registry, group)]


def offline_history(spark, registry: Registry, group: FeatureGroup):
    """A DataFrame of every (entity, event time) value of `group`: batch partitions UNION streamed rows."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    columns = history_columns(registry, group)
    present = [t for t in (group.table, streamed_table(group)) if spark.catalog.tableExists(t)]
    if not present:
        raise PlatformError(f"no offline history for {group.name} v{group.version}: neither {group.table} nor "
                            f"{streamed_table(group)} exists",
                            f"materialize partitions first: featctl materialize --group {group.name} --partition <day>")
    if present == [group.table]:
        return spark.table(group.table).select(*columns)
    parts = [spark.table(table).select(*columns, PARTITION_COLUMN).withColumn("_origin", F.lit(origin))
             for origin, table in enumerate((group.table, streamed_table(group))) if table in present]
    rows = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
    key, features = columns[0], columns[1:-1]
    preference = Window.partitionBy(key, EVENT_TIME_COLUMN).orderBy(
        "_origin", F.col(PARTITION_COLUMN).desc(), *(F.col(f).desc() for f in features))
    return rows.withColumn("_rank", F.row_number().over(preference)).where("_rank = 1").select(*columns)


def batch_history_files(spark, registry: Registry, group: FeatureGroup) -> list[str] | None:
    """The Parquet files (assets/offline_layout.py stores feature tables as Parquet) holding `group`'s whole
    history, as the catalog lists them, when that history is its batch table alone (no streamed table to
    settle ties with); None otherwise."""
    from pyspark.errors import AnalysisException

    if spark.catalog.tableExists(streamed_table(group)):
        return None
    try:  # one metastore look-up, not tableExists and then the table (each ~40 ms on an embedded metastore)
        return spark.table(group.table).inputFiles()
    except AnalysisException as exc:
        if exc.getCondition() != "TABLE_OR_VIEW_NOT_FOUND":
            raise
        return None  # offline_history says what to materialize


def read_history_files(registry: Registry, group: FeatureGroup, files: list[str], keys, until):
    """The history rows in `files` for the entity `keys` (an Arrow array) with event times up to `until` (an
    aware datetime), as Arrow with the types `offline_history(...).toArrow()` gives (UTC microseconds)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    from pyarrow import fs

    from assets.dtypes import arrow_type

    schema = pa.schema([(name, arrow_type(dtype)) for name, dtype in feature_table_columns(registry, group)])
    if not files or until is None:
        return schema.empty_table()
    filesystem, _ = fs.FileSystem.from_uri(files[0])
    paths = [fs.FileSystem.from_uri(file)[1] for file in files]
    key = schema.names[0]
    # The key filter runs on the whole read table, not inside the scan: the scanner's per-batch filter cost
    # more than the read itself (1M history rows, 632k kept: 0.36 s -> 0.25 s; the same at 95k kept).
    table = ds.dataset(paths, format="parquet", filesystem=filesystem).to_table(columns=schema.names)
    table = table.filter(pc.is_in(table[key], value_set=keys.cast(schema.field(key).type)))
    table = table.cast(schema)  # Spark's INT96 timestamps read as naive nanoseconds of UTC
    return table.filter(pc.less_equal(table[EVENT_TIME_COLUMN], pa.scalar(until, schema.field(EVENT_TIME_COLUMN).type)))
