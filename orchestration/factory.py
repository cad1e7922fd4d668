"""Dagster definitions built from the registry: nothing is written per feature group.

Per source: `raw/<source>` (a daily partition of the event log: the days its ingest landed are loaded, the
others verified present) and, for a streamed source, `ingest/<source>` with its `<source>_event_log` sensor
(orchestration/ingest_defs.py). Per group:
`features/<group>` (HiveQL on Spark into the offline table) and `online/<group>` (the guarded publish to
Redis), all daily-partitioned, with lineage, owners, team and entity tags, column schemas, the SQL,
links to the folder's files, the freshness target and a code version from the folder's contents as
metadata. One job covers every group's daily partition; one schedule runs it for yesterday; a
backfill of a date range is one run per range (single-run backfill policy), Spark doing every day of
it in one session. Each online asset carries a freshness check, run after each publish and by a sensor.
Per feature service: `service/<name>`, downstream of the online assets of every group it reads (its
features and its on-demand inputs), so the graph shows which models read which features, and the daily
`served/<name>` (its response log in Hive) with the `skew` check (orchestration/served_defs.py).
"""

import hashlib
import re
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
from dagster_pyspark import PySparkResource

from assets.offline_layout import PARTITION_COLUMN, feature_table_columns
from assets.registry import Registry, render_batch_sql
from assets.specs import FeatureGroup, FeatureServiceSpec, Source, format_duration
from batch.feature_job import materialize_partitions
from eventlog.landing import load_landed_day
from batch.publish import publish_range
from infra.settings import Settings
from infra.spark import prepare_spark_environment, spark_config
from orchestration.checks import quality_checks
from orchestration.freshness import freshness_check, freshness_sensor
from orchestration.ingest_defs import event_log_sensor, ingest_asset, ingested_sources, readers_of
from orchestration.resources import OnlineStoreResource
from orchestration.served_defs import served_asset, skew_check
from orchestration.stages import stage_asset
from orchestration.upstream import failed_source_partitions
from orchestration.streaming_defs import (stream_asset, stream_consistency_check, stream_history_asset,
                                          stream_repair_job, stream_sensor)
from serving import layout
from serving.on_demand import select_service

DAILY_JOB = "daily_features"
DAILY_SCHEDULE = f"{DAILY_JOB}_schedule"
BACKFILL_POLICY = dg.BackfillPolicy.single_run()  # a backfill's range is one run: one Spark session for it


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


def _asset(**kwargs):
    """`dg.asset` with a backfill policy: a beta Dagster parameter we accept (its warning is silenced)."""
    def decorate(fn):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.BetaWarning)
            return dg.asset(**kwargs)(fn)

    return decorate


def _rows_metadata(rows: dict[str, int]) -> dict:
    """Row counts of a run: the partition's own for one day; per day (and the total) for a range."""
    if len(rows) == 1:
        return {"dagster/row_count": next(iter(rows.values()))}
    return {"rows": sum(rows.values()), "rows_by_partition": dg.MetadataValue.json(rows)}


def _schema(columns) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name=name, type=dtype, description=description)
                                   for name, dtype, description in columns])


def raw_asset(settings: Settings, source: Source, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """`raw/<source>`: the days of the event log a run covers, materialized once every one has landed. The
    days the source's ingest landed are loaded into the table first (eventlog/landing.py)."""

    @_asset(
        **stage_asset("raw", source.name, "hive"),
        deps=[dg.AssetKey(["ingest", source.name])] if source.stream else [],
        partitions_def=partitions,
        backfill_policy=BACKFILL_POLICY,
        group_name="sources",
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
        days = context.partition_keys
        landed = (load_landed_day(spark.spark_session, settings, source, ds) if source.stream else 0 for ds in days)
        loaded = {ds: rows for ds, rows in zip(days, landed) if rows}  # a day without landed files loads nothing
        counts = dict(spark.spark_session.table(source.table)
                      .where(f"{PARTITION_COLUMN} BETWEEN '{days[0]}' AND '{days[-1]}'")
                      .groupBy(PARTITION_COLUMN).count().collect())
        missing = [ds for ds in days if not counts.get(ds)]
        if missing:
            raise dg.Failure(f"{source.table} has no events for ds={', '.join(missing)}",
                             metadata={"fix": "load the event log first: featctl events generate"})
        return dg.MaterializeResult(metadata={**_rows_metadata({ds: counts[ds] for ds in days}),
                                              "landed_events_loaded": dg.MetadataValue.json(loaded)})

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
    team = group.owner.removeprefix("team:") if group.owner.startswith("team:") else None
    tags = {"entity": group.entity, **({"team": team} if team else {}), **group.tags}
    catalog = {"freshness_target": format_duration(group.freshness),
               "folder": dg.MetadataValue.path(str(group.folder.resolve()))}
    common = dict(partitions_def=partitions, backfill_policy=BACKFILL_POLICY, group_name=group.name,
                  owners=[group.owner], tags=tags, code_version=version)

    @_asset(
        **stage_asset("features", group.name, "spark", "hive"),
        deps=[dg.AssetDep(["raw", name], partition_mapping=_source_mapping(spec.window_days))
              for name, spec in group.sources.items()],
        description=group.description,
        metadata={
            "dagster/table_name": group.table,
            "dagster/column_schema": _schema(columns),
            "version": group.version,
            "ttl": str(group.ttl or "none"),
            "sql": dg.MetadataValue.md(f"```sql\n{group.batch_sql.strip()}\n```"),
            **catalog,
            **_code_references(*files),
        },
        **common,
    )
    def features(context: dg.AssetExecutionContext, spark: PySparkResource) -> dg.MaterializeResult:
        blocked = failed_source_partitions(context.instance, group, context.partition_keys)
        if blocked:
            raise dg.Failure(
                f"features/{group.name} not computed: its window reads source partitions that failed their "
                "contract check: " + "; ".join(f"ds={ds} reads {', '.join(f)}" for ds, f in blocked.items()),
                metadata={"fix": "repair the source partition and re-materialize it (its check must pass), "
                                 "then this one"})
        rows = materialize_partitions(spark.spark_session, registry, group, context.partition_keys)
        last = max(rows)
        return dg.MaterializeResult(metadata={
            **_rows_metadata(rows),
            f"sql (ds={last})": dg.MetadataValue.md(f"```sql\n{render_batch_sql(group, last).strip()}\n```"),
        })

    @_asset(
        **stage_asset("online", group.name, "redis"),
        deps=[features],
        description=f"Latest values of {group.name} v{group.version} in Redis, one hash per {group.entity}.",
        metadata={"dagster/column_schema": _schema(columns[:-1]),
                  "fields": f"{layout.field_prefix(group.name, group.version)}*", **catalog, **_code_references(group.folder / "feature.yaml")},
        **common,
    )
    def online(context: dg.AssetExecutionContext, spark: PySparkResource,
               online_store: OnlineStoreResource) -> dg.MaterializeResult:
        days = context.partition_key_range
        with online_store.redis_url() as url:
            result = publish_range(spark.spark_session, registry, group, days.start, days.end, url,
                                   online_store.prefix, online_store.chunk_rows)
        return dg.MaterializeResult(metadata={
            "dagster/row_count" if days.start == days.end else "rows": result.rows,
            "rows_landed": result.applied,
            "rows_skipped_as_older": result.skipped_as_older,
        })

    return [features, online]


def service_asset(registry: Registry, service: FeatureServiceSpec) -> dg.AssetSpec:
    """`service/<name>`: a model's inputs, downstream of the online assets it reads; not computed by a run
    (the feature service answers it from Redis), so it is an asset spec the catalog and lineage show."""
    _, selection = select_service(registry, service.name)
    groups = dict.fromkeys(name.split(".")[0].split("@")[0] for name in (*selection.reads, *selection.outputs)
                           if not name.startswith(f"{service.name}."))
    descriptions = {**{f"{g.name}.{f.name}": f.description for g in registry.groups.values()
                       for f in (*g.features, *g.on_demand)},
                    **{f"{service.name}.{f.name}": f.description for f in service.on_demand}}
    columns = [(name, dtype, descriptions.get(re.sub(r"@v[0-9]+", "", name), ""))
               for name, dtype in zip(selection.outputs, selection.dtypes)]
    team = service.owner.removeprefix("team:") if service.owner.startswith("team:") else None
    return dg.AssetSpec(
        **stage_asset("service", service.name, "python", "redis"),
        deps=[dg.AssetKey(["online", group]) for group in groups],
        group_name="services",
        owners=[service.owner],
        tags={"entity": service.entity, **({"team": team} if team else {})},
        description=service.description.strip(),
        code_version=folder_version([service.file, service.on_demand_path]),
        metadata={
            "dagster/column_schema": _schema(columns),
            "features": dg.MetadataValue.md("\n".join(f"{i}. `{name}` ({dtype})" for i, (name, dtype, _)
                                                      in enumerate(columns, 1))),
            "version": service.version,
            "request_fields": ", ".join(["time", *selection.request_fields]),
            **_code_references(service.file, service.on_demand_path),
        },
    )


def previous_utc_day(moment: datetime) -> str:
    """The last whole UTC day before `moment`: the partition a run at that moment computes."""
    return (moment.astimezone(timezone.utc).date() - timedelta(days=1)).isoformat()


def daily_schedule(registry: Registry, job, partitions: dg.PartitionsDefinition,
                   settings: Settings) -> dg.ScheduleDefinition:
    """Every day at `schedule_hour` of `schedule_timezone`: yesterday's (UTC) partition of every group.

    The job selects every raw, features and online asset, so a new group folder is scheduled as it lands.
    The schedule does not guess when a day is complete: the days of a source whose ingest runs are run by
    its `<source>_event_log` sensor once the ingest completes them, so the schedule leaves out that source's
    raw table and the groups reading it.
    """

    @dg.schedule(name=DAILY_SCHEDULE, job=job, cron_schedule=f"0 {settings.schedule_hour} * * *",
                 execution_timezone=settings.schedule_timezone, default_status=dg.DefaultScheduleStatus.RUNNING,
                 description="Yesterday's partition (UTC day) of every source, feature table and online publish.")
    def schedule(context: dg.ScheduleEvaluationContext):
        ds = previous_utc_day(context.scheduled_execution_time or datetime.now(timezone.utc))
        if not partitions.has_partition_key(ds):
            return dg.SkipReason(f"ds={ds} is before the first partition ({partitions.get_first_partition_key()})")
        ingested = ingested_sources(registry, settings)
        if not ingested:
            return dg.RunRequest(run_key=ds, partition_key=ds)
        owned = {key for source in ingested for key in readers_of(registry, source)}
        every = context.repository_def.get_job(job.name).asset_layer.executable_asset_keys
        rest = sorted(set(every) - owned)
        if not rest:
            return dg.SkipReason(f"ds={ds}: the event-log sensors of {', '.join(s.name for s in ingested)} run it "
                                 "once their ingests complete it")
        return dg.RunRequest(run_key=ds, partition_key=ds, asset_selection=rest)

    return schedule


def build_definitions(registry: Registry, settings: Settings) -> dg.Definitions:
    """Every asset, check, job, schedule, sensor and resource of the platform, from the registry and settings."""
    prepare_spark_environment(settings)
    partitions = dg.DailyPartitionsDefinition(start_date=settings.partitions_start.isoformat(), timezone="UTC")
    assets = [raw_asset(settings, source, partitions) for source in registry.sources.values()]
    streamed = [source for source in registry.sources.values() if source.stream]
    assets += [ingest_asset(settings, source) for source in streamed]
    sensors, repairs = [freshness_sensor(registry)], []
    for group in registry.groups.values():
        assets += feature_assets(registry, group, partitions)
        if group.stream is not None:
            assets += [stream_asset(registry, settings, group), stream_history_asset(registry, group)]
            sensors.append(stream_sensor(registry, settings, group))
            repairs.append(stream_repair_job(registry, settings, group))
    for service in registry.services.values():
        assets += [service_asset(registry, service), served_asset(service, settings, partitions, BACKFILL_POLICY)]
    unpartitioned = dg.AssetSelection.key_prefixes("stream", "history", "ingest")  # the jobs and what they landed
    daily = dg.define_asset_job(DAILY_JOB, selection=dg.AssetSelection.all() - unpartitioned,
                                description="Every source check, feature table and online publish for one day.")
    sensors += [event_log_sensor(registry, settings, source, daily, partitions) for source in streamed]
    return dg.Definitions(
        # A run is one process: one Spark session for all its steps (the local Derby metastore admits one JVM).
        executor=dg.in_process_executor,
        assets=assets,
        asset_checks=[*quality_checks(registry, settings, partitions),
                      *(freshness_check(registry, group) for group in registry.groups.values()),
                      *(skew_check(registry, service, partitions) for service in registry.services.values()),
                      *(stream_consistency_check(registry, settings, g) for g in registry.groups.values() if g.stream)],
        jobs=[daily, *repairs],
        schedules=[daily_schedule(registry, daily, partitions, settings)],
        sensors=sensors,
        resources={
            "spark": PySparkResource(spark_config=spark_config(settings)),
            "online_store": OnlineStoreResource(url=settings.redis_url, local_dir=str(settings.data_dir / "redis"),
                                                prefix=settings.redis_prefix, chunk_rows=settings.redis_batch_rows),
        },
    )
