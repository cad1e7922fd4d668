"""Per feature service: `served/<service>`, the daily load of its response log into Hive, and its `skew` check.

`served/<service>` (daily partitions, downstream of `service/<service>`) loads the day's logged responses
(FP_SERVING_LOG_DIR, batch/served_log.py) into `served.<service>`; with logging off it records 0 rows.
The `skew` check (WARN, not blocking) recomputes each logged (id, request time) offline and reports per
feature the share of served values that differ, with examples (quality/skew.py).
"""

import warnings
from collections.abc import Iterator

import dagster as dg
from dagster_pyspark import PySparkResource

from assets.offline_layout import served_table
from assets.registry import Registry
from assets.specs import FeatureServiceSpec
from infra.settings import Settings
from orchestration.checks import partitioned_check
from orchestration.dagster_internals import check_target
from orchestration.stages import stage_asset

SKEW_CHECK = "skew"


def served_asset(service: FeatureServiceSpec, settings: Settings, partitions: dg.PartitionsDefinition,
                 backfill_policy: dg.BackfillPolicy) -> dg.AssetsDefinition:
    """`served/<service>`: one day of the service's response log as partition ds of `served.<service>`."""
    log_dir = settings.serving_log_dir

    def served(context: dg.AssetExecutionContext, spark: PySparkResource) -> dg.MaterializeResult:
        from batch.served_log import load_served

        if log_dir is None:
            return dg.MaterializeResult(metadata={"rows": 0, "logging": "off (FP_SERVING_LOG_DIR unset)"})
        rows = {ds: load_served(spark.spark_session, log_dir, service.name, ds) for ds in context.partition_keys}
        return dg.MaterializeResult(metadata={"rows": sum(rows.values()), "rows_by_partition": dg.MetadataValue.json(rows)})

    with warnings.catch_warnings():  # backfill_policy is a beta parameter we accept, as factory.py does
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.asset(**stage_asset("served", service.name, "spark", "hive"), deps=[dg.AssetKey(["service", service.name])],
                        partitions_def=partitions, backfill_policy=backfill_policy, group_name="services",
                        owners=[service.owner],
                        description=f"Responses the feature service served for {service.name}, one row per id "
                                    "and feature.",
                        metadata={"dagster/table_name": served_table(service.name),
                                  "log_dir": str(log_dir) if log_dir else "logging off (FP_SERVING_LOG_DIR unset)"},
                        )(served)


def skew_check(registry: Registry, service: FeatureServiceSpec, partitions: dg.PartitionsDefinition
               ) -> dg.AssetChecksDefinition:
    """`served/<service>:skew`: per feature, the served values that differ from the offline point-in-time ones."""
    key = dg.AssetKey(["served", service.name])

    @partitioned_check(asset=key, name=SKEW_CHECK, blocking=False, partitions_def=partitions,
                        description="Served values against the offline values at each logged request time.")
    def skew(context: dg.AssetCheckExecutionContext, spark: PySparkResource) -> Iterator:
        from quality.skew import skew_report

        for ds in context.partition_keys:
            report = skew_report(spark.spark_session, registry, service.name, ds)
            differing = {name: f"{f.differing}/{f.compared} ({f.share:.1%})" for name, f in report.features.items()}
            yield dg.AssetCheckEvaluation(
                asset_key=key, check_name=SKEW_CHECK, passed=report.differing == 0, partition=ds,
                severity=dg.AssetCheckSeverity.WARN, blocking=False,
                target_materialization_data=check_target(context.instance, key, ds),
                description=("no served value differs from its offline value" if report.differing == 0 else
                             "differing: " + ", ".join(f"{n} {d}" for n, d in differing.items()
                                                       if report.features[n].differing)),
                metadata={"differing": dg.MetadataValue.json(differing),
                          "examples": dg.MetadataValue.json({n: f.examples for n, f in report.features.items()
                                                             if f.examples})})
        yield dg.Output(None)

    return skew
