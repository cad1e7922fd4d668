"""The offline history of a feature group version: every value it ever had, with the event time it held from.

Two tables hold it, with the same columns (entity key, features, `feature_ts`) and a `ds` partition:
`features.<group>_v<n>`, written by the daily batch job (values as of the end of each day), and
`features.<group>_v<n>_streamed`, where the stream injector appends the rows it sends to Redis, so
training sets see the values models saw between batch runs. The streamed table is optional: a group
without a stream, or whose stream has not run yet, has only batch history.

Training sets (serving/training_set.py) read history only through `offline_history`, which also settles
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
