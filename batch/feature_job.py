"""Compute daily partitions of a feature group with its HiveQL on Spark, into `features.<group>_v<n>`.

The query's output is checked against feature.yaml before anything is written (missing, extra or
mistyped columns are errors naming the SQL file and the feature), then the partition is replaced with
INSERT OVERWRITE, so re-running a day is idempotent. Each row gets `feature_ts`, the end of the
partition's day: batch values hold as of midnight after `ds`, which is what the online guard and
point-in-time joins compare. A range of days (a backfill) runs in one Spark session, day after day,
because batch.sql is written for one `{{ ds }}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from assets.dtypes import SPARK_TYPES
from assets.offline_layout import EVENT_TIME_COLUMN, PARTITION_COLUMN, ensure_feature_table, feature_table_columns
from assets.registry import Registry, RegistryError, relative_path, render_batch_sql
from assets.specs import FeatureGroup
from assets.udfs import load_udf_module


def partition_end(ds: str) -> str:
    """The instant a daily partition's values hold from: midnight (UTC) after `ds`."""
    return f"{date.fromisoformat(ds) + timedelta(days=1)} 00:00:00"


def register_udfs(spark, group: FeatureGroup) -> None:
    """Register the group's udf.py functions in the session under their declared names."""
    if not group.udfs:
        return
    module = load_udf_module(group.udf_path, group.name)
    from pyspark import cloudpickle

    cloudpickle.register_pickle_by_value(module)  # executors get the code, not an import they cannot do
    for udf in group.udfs:
        spark.udf.register(udf.name, getattr(module, udf.name), SPARK_TYPES[udf.returns])


def feature_query(spark, registry: Registry, group: FeatureGroup, ds: str):
    """The group's batch query for `ds` as a DataFrame whose schema matches feature.yaml, or an error."""
    from pyspark.errors import AnalysisException

    register_udfs(spark, group)
    sql_file = relative_path(group.batch_sql_path)
    try:
        frame = spark.sql(render_batch_sql(group, ds))
    except AnalysisException as exc:  # ParseException too: the SQL's fault, in Spark's own words (a JVM crash is not)
        message = str(exc).splitlines()[0]
        raise RegistryError(f"{sql_file}: (query): Spark cannot analyse it: {message}",
                            "fix the SQL; try it with `featctl materialize`") from None
    actual = {field.name: field.dataType.simpleString() for field in frame.schema.fields}
    expected = feature_table_columns(registry, group)[:-1]
    for index, (name, dtype) in enumerate(expected):
        where = "entity key" if index == 0 else f"features[{index - 1}].{name}"
        if name not in actual:
            raise RegistryError(f"{sql_file}: {where}: the query has no output column {name!r} "
                                f"(it outputs {', '.join(actual)})",
                                "add the column to the SELECT or remove the feature from feature.yaml")
        if actual[name] != SPARK_TYPES[dtype]:
            raise RegistryError(f"{sql_file}: {where}: output column {name!r} is {actual[name]}, "
                                f"feature.yaml declares {dtype} ({SPARK_TYPES[dtype]})",
                                f"CAST it to {SPARK_TYPES[dtype].upper()} or change the dtype")
    extra = [name for name in actual if name not in dict(expected)]
    if extra:
        raise RegistryError(f"{sql_file}: (output): columns {extra} are not declared in feature.yaml",
                            "declare them as features or drop them from the SELECT")
    return frame.select(*[name for name, _ in expected])


def _literal(dtype: str, value) -> str:
    """A feature's empty value as a Spark SQL literal of its type."""
    if value is None:
        return f"CAST(NULL AS {SPARK_TYPES[dtype]})"
    if dtype == "string":
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return f"CAST({str(value).upper() if dtype == 'bool' else value!r} AS {SPARK_TYPES[dtype]})"


def previous_population(spark, registry: Registry, group: FeatureGroup, ds: str):
    """The entities (key and features) with events in the window ending the day before `ds`: that
    partition's rows that are not themselves empty, or, where it was never computed, its query's rows."""
    previous = (date.fromisoformat(ds) - timedelta(days=1)).isoformat()
    columns = [name for name, _ in feature_table_columns(registry, group)[:-1]]
    if spark.table(group.table).where(f"{PARTITION_COLUMN} = '{previous}'").limit(1).count():
        still_full = " OR ".join(f"NOT (`{f.name}` <=> {_literal(f.dtype, f.empty_value)})"
                                 for f in group.features if f.declares_empty_value)
        return spark.table(group.table).where(f"{PARTITION_COLUMN} = '{previous}' AND ({still_full})").select(*columns)
    return feature_query(spark, registry, group, previous)


def with_absent_entities(spark, registry: Registry, group: FeatureGroup, ds: str, frame):
    """Partition `ds`'s rows plus one row per entity that had events in the previous day's window but has
    none in this one, holding each feature's declared empty value (the last value where none is declared),
    so a windowed value leaves its window online and in training sets instead of staying as it was."""
    key = registry.entity_of(group).key
    left = previous_population(spark, registry, group, ds).join(frame.select(key), on=key, how="left_anti")
    carried = left.selectExpr(f"`{key}`", *(f"{_literal(f.dtype, f.empty_value)} AS `{f.name}`"
                                            if f.declares_empty_value else f"`{f.name}`" for f in group.features))
    return frame.unionByName(carried.localCheckpoint())  # read before the table's partition is overwritten


def materialize_partition(spark, registry: Registry, group: FeatureGroup, ds: str) -> int:
    """Compute partition `ds` of `group` and replace it in the offline table; returns its row count."""
    frame = feature_query(spark, registry, group, ds)
    ensure_feature_table(spark, registry, group)
    if group.expires_absent_entities:
        frame = with_absent_entities(spark, registry, group, ds, frame)
    view = f"computed_{group.name}"
    frame.createOrReplaceTempView(view)
    columns = ", ".join(f"`{name}`" for name, _ in feature_table_columns(registry, group)[:-1])
    spark.sql(f"INSERT OVERWRITE TABLE {group.table} PARTITION ({PARTITION_COLUMN}='{ds}') "
              f"SELECT {columns}, TIMESTAMP '{partition_end(ds)}' AS {EVENT_TIME_COLUMN} FROM {view}")
    spark.catalog.dropTempView(view)
    return spark.table(group.table).where(f"{PARTITION_COLUMN} = '{ds}'").count()


def materialize_partitions(spark, registry: Registry, group: FeatureGroup, days: Sequence[str]) -> dict[str, int]:
    """Compute and replace each partition in `days`, oldest first, in one session; row count per day.

    Oldest first, the order daily runs would have written them: the quality gate compares each day's
    row count with the day before's, which is then already recomputed.
    """
    return {ds: materialize_partition(spark, registry, group, ds) for ds in sorted(days)}
