"""Which source partitions a feature partition reads that failed their contract check.

A windowed group reads several raw days for one partition (`user_upvotes` for ds=D reads D-6..D), but a
run's blocking checks only cover the raw partitions of that run. The contract results are kept in the
Dagster instance per partition, so the feature step asks it: a raw day whose latest contract check
failed blocks every feature partition whose window reads it, until the day is repaired and checked again.
"""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from assets.specs import FeatureGroup

CONTRACT_CHECK = "contract"


def window_days(group: FeatureGroup, source: str, ds: str) -> list[str] | None:
    """The raw partitions of `source` that partition `ds` of the group reads; None for all up to `ds`."""
    window = group.sources[source].window_days
    if window == "all":
        return None
    day = date.fromisoformat(ds)
    return [(day - timedelta(days=k)).isoformat() for k in reversed(range(window))]


def failed_source_partitions(instance: dg.DagsterInstance, group: FeatureGroup, ds: str) -> list[str]:
    """`raw/<source> ds=<day>` for every partition the group reads for `ds` whose latest contract check failed."""
    failed = []
    for source in group.sources:
        days = window_days(group, source, ds)
        key = dg.AssetCheckKey(dg.AssetKey(["raw", source]), CONTRACT_CHECK)
        for info in instance.event_log_storage.get_asset_check_partition_info([key], partition_keys=days):
            read = days is not None or (info.partition_key or "") <= ds
            if read and info.latest_execution_status == AssetCheckExecutionRecordStatus.FAILED:
                failed.append(f"raw/{source} ds={info.partition_key}")
    return sorted(failed)
