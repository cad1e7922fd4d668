"""The quality gate's two checks: a raw partition against its source contract, a feature partition
against its feature.yaml. Both read the partition as written and return a PartitionReport.
"""

from __future__ import annotations

from datetime import date, timedelta

from assets.registry import Registry
from assets.specs import FeatureGroup, Source
from quality.declared import feature_columns, source_columns
from quality.partitions import partition_row_count, read_partition
from quality.suites import feature_value_expectations, source_value_expectations
from quality.validation import PartitionReport, validate_partition


def check_source_partition(spark, source: Source, ds: str) -> PartitionReport:
    """Partition `ds` of the source's raw table against its contract: columns, types, nulls, event times."""
    declared = source_columns(source)
    return validate_partition(read_partition(spark, source.table, ds), source.table, ds, declared,
                              lambda usable: source_value_expectations(source, declared, usable, ds))


def check_feature_partition(spark, registry: Registry, group: FeatureGroup, ds: str) -> PartitionReport:
    """Partition `ds` of the group's offline table against feature.yaml: schema, key, ranges, row count."""
    declared = feature_columns(registry, group)
    previous_rows = None
    if group.row_count_vs_previous is not None:
        previous_rows = partition_row_count(spark, group.table, (date.fromisoformat(ds) - timedelta(days=1)).isoformat())
    return validate_partition(read_partition(spark, group.table, ds), group.table, ds, declared,
                              lambda usable: feature_value_expectations(group, declared, usable, previous_rows),
                              ordered=True)
