"""Dagster definitions built from the registry: nothing is written per feature group.

Per source: `raw/<source>` (a daily partition of the event log, verified present). Per group:
`features/<group>` (HiveQL on Spark into the offline table) and `online/<group>` (the guarded publish to
Redis), all daily-partitioned, with lineage, owners, column schemas, the SQL and a code version from
the folder's contents as metadata. One job and schedule cover every group's daily partition.
"""


import hashlib
import warnings
from pathlib import Path

import dagster as dg
from dagster_pyspark import PySparkResource

from assets.registry import Registry
from assets.specs import FeatureGroup, Source
from batch.feature_job import feature_table_columns, materialize_partition
from batch.publish import publish_partition
from eventlog.hive import PARTITION_COLUMN
from infra.settings import Settings
from infra.spark import prepare_spark_environment, spark_config
from orchestration.checks import quality_checks
from orchestration.resources import OnlineStoreResource
from orchestration.streaming_defs import stream_asset, stream_sensor

DAILY_JOB = "daily_features"


def folder_version(paths: list[Path]) -> str:
    """A code version that changes exactly when one of the files defining the asset changes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in paths if p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _code_references(*paths: Path) -> dict:
    """Links from the asset to its files in the UI (a beta Dagster API we accept; its warning is silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        refs = [dg.LocalFileCodeReference(file_path=str(p.resolve()), line_number=1, label=p.name)
                for p in paths if p.exists()]
        return {"dagster/code_references": dg.CodeReferencesMetadataValue(code_references=refs)}


def _schema(columns) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name=name, type=dtype, description=description)
                                   for name, dtype, description in columns])


def raw_asset(source: Source, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """`raw/<source>`: one day of the event log, materialized once the partition has landed."""

    @dg.asset(
        key=["raw", source.name],
        partitions_def=partitions,
        group_name="sources",
        kinds={"hive"},
        owners=[source.owner],
        description=source.description,
        code_version=folder_version([source.file]),
        metadata={
            "dagster/table_name": source.table,
            "dagster/column_schema": _schema((c.name, c.dtype, c.description) for c in source.columns),
            "event_time": source.event_time,
            **_code_references(source.file),
        },
    )
    def raw(context: dg.AssetExecutionContext, spark: PySparkResource) -> dg.MaterializeResult:
        rows = (spark.spark_session.table(source.table)
                .where(f"{PARTITION_COLUMN} = '{context.partition_key}'").count())
        if rows == 0:
            raise dg.Failure(f"{source.table} has no events for ds={context.partition_key}",
                             metadata={"fix": "load the event log first: featctl events generate"})
        return dg.MaterializeResult(metadata={"dagster/row_count": rows})

    return raw


def _source_mapping(window_days) -> dg.PartitionMapping:
    if window_days == "all":
        return dg.AllPartitionMapping()
    return dg.TimeWindowPartitionMapping(start_offset=-(window_days - 1), end_offset=0)


def feature_assets(registry: Registry, group: FeatureGroup, partitions: dg.PartitionsDefinition
                   ) -> list[dg.AssetsDefinition]:
    """`features/<group>` (Spark) and `online/<group>` (Redis) for one feature group."""
    entity = registry.entity_of(group)
    files = [group.folder / "feature.yaml", group.batch_sql_path, group.udf_path,
             *sorted((group.folder / "stream").glob("*.sql"))]
    version = folder_version(files)
    descriptions = {entity.key: entity.description, **{f.name: f.description for f in group.features}}
    columns = [(name, dtype, descriptions.get(name, "event time the values hold as of"))
               for name, dtype in feature_table_columns(registry, group)]
    tags = {"entity": group.entity, **group.tags}
    common = dict(partitions_def=partitions, group_name=group.name, owners=[group.owner], tags=tags,
                  code_version=version)

    @dg.asset(
        key=["features", group.name],
        deps=[dg.AssetDep(["raw", name], partition_mapping=_source_mapping(spec.window_days))
              for name, spec in group.sources.items()],
        kinds={"spark", "hive"},
        description=group.description,
        metadata={
            "dagster/table_name": group.table,
            "dagster/column_schema": _schema(columns),
            "version": group.version,
            "ttl": str(group.ttl or "none"),
            "sql": dg.MetadataValue.md(f"```sql\n{group.batch_sql.strip()}\n```"),
            **_code_references(*files),
        },
        **common,
    )
    def features(context: dg.AssetExecutionContext, spark: PySparkResource) -> dg.MaterializeResult:
        rows = materialize_partition(spark.spark_session, registry, group, context.partition_key)
        return dg.MaterializeResult(metadata={"dagster/row_count": rows})

    @dg.asset(
        key=["online", group.name],
        deps=[features],
        kinds={"redis"},
        description=f"Latest values of {group.name} v{group.version} in Redis, one hash per {group.entity}.",
        metadata={"dagster/column_schema": _schema(columns[:-1]), "fields": f"{group.name}:v{group.version}:*"},
        **common,
    )
    def online(context: dg.AssetExecutionContext, spark: PySparkResource,
               online_store: OnlineStoreResource) -> dg.MaterializeResult:
        with online_store.redis_url() as url:
            result = publish_partition(spark.spark_session, registry, group, context.partition_key, url,
                                       online_store.prefix, online_store.chunk_rows, online_store.cluster)
        return dg.MaterializeResult(metadata={
            "dagster/row_count": result.rows,
            "rows_landed": result.applied,
            "rows_skipped_as_older": result.skipped_as_older,
        })

    return [features, online]


def build_definitions(registry: Registry, settings: Settings) -> dg.Definitions:
    """Every asset, job, schedule and resource of the platform, from the registry and settings."""
    prepare_spark_environment(settings)
    partitions = dg.DailyPartitionsDefinition(start_date=settings.partitions_start.isoformat(), timezone="UTC")
    assets = [raw_asset(source, partitions) for source in registry.sources.values()]
    sensors = []
    for group in registry.groups.values():
        assets += feature_assets(registry, group, partitions)
        if group.stream is not None:
            assets.append(stream_asset(registry, settings, group))
            sensors.append(stream_sensor(registry, settings, group))
    daily = dg.define_asset_job(DAILY_JOB, selection=dg.AssetSelection.all() - dg.AssetSelection.key_prefixes("stream"),
                                description="Every source check, feature table and online publish for one day.")
    return dg.Definitions(
        assets=assets,
        asset_checks=quality_checks(registry, settings, partitions),
        jobs=[daily],
        schedules=[dg.build_schedule_from_partitioned_job(daily, hour_of_day=2, minute_of_hour=0)],
        sensors=sensors,
        resources={
            "spark": PySparkResource(spark_config=spark_config(settings)),
            "online_store": OnlineStoreResource(url=settings.redis_url, local_dir=str(settings.data_dir / "redis"),
                                                prefix=settings.redis_prefix, chunk_rows=settings.redis_batch_rows),
        },
    )
