"""Which source partitions a feature partition reads that failed their contract check.

A windowed group reads several raw days for one partition (`user_upvotes` for ds=D reads D-6..D), but a
run's blocking checks only cover the raw partitions of that run. The contract results are kept in the
Dagster instance per partition, so the feature step asks it: a raw day whose latest contract check
failed blocks every feature partition whose window reads it, until the day is repaired and checked again.
"""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from assets.specs import FeatureGroup
from orchestration.dagster_internals import failed_check_partitions

CONTRACT_CHECK = "contract"


def window_days(group: FeatureGroup, source: str, ds: str) -> list[str] | None:
    """The raw partitions of `source` that partition `ds` of the group reads; None for all up to `ds`."""
    window = group.sources[source].window_days
    if window == "all":
        return None
    day = date.fromisoformat(ds)
    return [(day - timedelta(days=k)).isoformat() for k in reversed(range(window))]


def failed_source_partitions(instance: dg.DagsterInstance, group: FeatureGroup, partitions: list[str]
                             ) -> dict[str, list[str]]:
    """For each of the run's `partitions` that reads a failed source day: `raw/<source> ds=<day>` for each such day.

    One query per source covers every window of the run (a backfill of a month asks once, not 30 times).
    """
    blocked: dict[str, list[str]] = {}
    for source in group.sources:
        windows = {ds: window_days(group, source, ds) for ds in partitions}
        wanted = None if None in windows.values() else sorted({d for days in windows.values() for d in days})
        failed = failed_check_partitions(instance, dg.AssetCheckKey(dg.AssetKey(["raw", source]), CONTRACT_CHECK), wanted)
        for ds, days in windows.items():
            read = sorted(d for d in failed if (d in days if days is not None else d <= ds))
            blocked.setdefault(ds, []).extend(f"raw/{source} ds={d}" for d in read)
    return {ds: sorted(found) for ds, found in blocked.items() if found}
