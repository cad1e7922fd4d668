"""The quality gate in Dagster: blocking asset checks on `raw/<source>` and `features/<group>` partitions.

A failed check stops everything downstream of its asset in the same run, so a bad raw partition never
becomes a feature partition and a bad feature partition never reaches `online/<group>`: Redis keeps
its previous values. Each result carries the failed expectations (declared vs observed, up to 10
offending rows each), the schema diff and a sample of the partition as written. A schema change also
goes out as one alert (quality.alerts) naming the partition and the assets it blocked.

A run may cover a range of days (a backfill with a single-run policy): the check then validates every
day of the range and records one evaluation per partition, and one bad day fails the step, so the
range's publish is blocked.
"""

import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict

import dagster as dg
from dagster_pyspark import PySparkResource

from assets.registry import Registry
from assets.specs import FeatureGroup, Source
from infra.settings import Settings
from orchestration.dagster_internals import check_target
from orchestration.upstream import CONTRACT_CHECK
from quality.alerts import AlertSinks, SchemaChangeAlert
from quality.report import PartitionReport, json_value


def _markdown_table(rows: tuple[dict, ...]) -> str:
    if not rows:
        return "none"
    columns = list(dict.fromkeys(name for row in rows for name in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(json_value(row.get(c))) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def check_metadata(report: PartitionReport) -> dict:
    """What the UI shows for a check: failed expectations, schema diff, sample rows, cost."""
    samples = report.rows_as_read or next((f.sample_rows for f in report.failures if f.sample_rows), ())
    metadata = {
        "dagster/row_count": report.rows or 0,
        "expectations": report.expectations,
        "failed": len(report.failures),
        "engine": report.engine,
        "seconds": round(report.seconds, 3),
        "schema_changes": dg.MetadataValue.md("\n".join(f"- {line}" for line in report.schema_diff.lines()) or "none"),
        "schema_diff": dg.MetadataValue.json(report.schema_diff.as_dict()),
        "failed_expectations": dg.MetadataValue.json([asdict(f) for f in report.failures]),
        "sample_rows": dg.MetadataValue.md(_markdown_table(samples)),
    }
    if report.problem:
        metadata["problem"] = report.problem
    return metadata


def partitioned_check(**kwargs):
    """`dg.asset_check` for a partitioned check: a preview Dagster API we accept (its warning is silenced)."""
    def decorate(fn):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.PreviewWarning)
            return dg.asset_check(**kwargs)(fn)

    return decorate


def evaluate_partitions(context: dg.AssetCheckExecutionContext, asset_key: dg.AssetKey, name: str,
                        check_day: Callable[[str], tuple[PartitionReport, SchemaChangeAlert]],
                        sinks: AlertSinks) -> Iterator:
    """One blocking evaluation per partition of the run (one day, or every day of a backfill's range).

    Dagster's own AssetCheckResult records a single, unpartitioned result in a ranged run; yielding an
    evaluation per day keeps each partition's status, and any failed one still fails the step.
    """
    for ds in context.partition_keys:
        report, alert = check_day(ds)
        if report.schema_diff:
            sinks.send(alert, context.log)
        yield dg.AssetCheckEvaluation(
            asset_key=asset_key, check_name=name, passed=report.passed, metadata=check_metadata(report),
            target_materialization_data=check_target(context.instance, asset_key, ds),
            severity=dg.AssetCheckSeverity.ERROR, description=report.summary(),
            blocking=True, partition=ds)
    yield dg.Output(None)  # the check's own output: downstream steps wait on it


def source_contract_check(registry: Registry, source: Source, partitions: dg.PartitionsDefinition,
                          sinks: AlertSinks) -> dg.AssetChecksDefinition:
    """`raw/<source>` partition against its contract; blocks every group that reads the source."""
    blocked = tuple(f"{kind}/{group.name}" for group in registry.groups.values() if source.name in group.sources
                    for kind in ("features", "online"))

    key = dg.AssetKey(["raw", source.name])

    @partitioned_check(asset=key, name=CONTRACT_CHECK, blocking=True, partitions_def=partitions,
                        description=f"The partition's files match {source.file.name}: columns, types, non-null "
                                    "columns, event times within the day.")
    def contract(context: dg.AssetCheckExecutionContext, spark: PySparkResource):
        from quality.gate import check_source_partition  # Great Expectations loads in the step, not with the defs

        def check_day(ds: str):
            report = check_source_partition(spark.spark_session, source, ds)
            return report, SchemaChangeAlert("source", source.name, source.table, ds, report.schema_diff, blocked)

        yield from evaluate_partitions(context, key, CONTRACT_CHECK, check_day, sinks)

    return contract


def feature_expectations_check(registry: Registry, group: FeatureGroup, partitions: dg.PartitionsDefinition,
                               sinks: AlertSinks) -> dg.AssetChecksDefinition:
    """`features/<group>` partition against feature.yaml; blocks the group's online publish."""

    key = dg.AssetKey(["features", group.name])

    @partitioned_check(asset=key, name="expectations", blocking=True, partitions_def=partitions,
                        description="The partition matches feature.yaml: columns and types, a non-null unique "
                                    "entity key, declared ranges, allowed values and row-count bounds.")
    def expectations(context: dg.AssetCheckExecutionContext, spark: PySparkResource):
        from quality.gate import check_feature_partition

        def check_day(ds: str):
            report = check_feature_partition(spark.spark_session, registry, group, ds)
            return report, SchemaChangeAlert("feature_group", group.name, group.table, ds, report.schema_diff,
                                             (f"online/{group.name}",))

        yield from evaluate_partitions(context, key, "expectations", check_day, sinks)

    return expectations


def quality_checks(registry: Registry, settings: Settings, partitions: dg.PartitionsDefinition
                   ) -> list[dg.AssetChecksDefinition]:
    """Every source's contract check and every group's expectations check, alerting to the configured sinks."""
    sinks = AlertSinks.for_settings(settings)
    return [*(source_contract_check(registry, source, partitions, sinks) for source in registry.sources.values()),
            *(feature_expectations_check(registry, group, partitions, sinks) for group in registry.groups.values())]
