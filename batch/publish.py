"""Publish partitions of a feature table to the online store, streamed from Spark's executors.

Each executor task writes its rows with the guarded batched writer as Arrow batches go by
(`mapInArrow`), so nothing is collected into the driver and memory stays bounded whatever the table
size; on a cluster the writes fan out across executors. Only per-batch counts come back. A range of
days (a backfill) is one Spark job: the guard keeps each key's newest value whatever order rows land
in, so a backfill never overwrites fresher values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from assets.offline_layout import EVENT_TIME_COLUMN, PARTITION_COLUMN
from assets.registry import Registry
from assets.specs import FeatureGroup
from serving.online_store import OnlineStore, WritePlan, connect, online_store_unavailable

COUNTS_SCHEMA = "rows long, applied long"
REDIS_ERROR = re.compile(r"redis\.exceptions\.(\w+): ([^\n]*)")


@dataclass(frozen=True)
class PublishResult:
    """Rows read from the partition and rows that landed (the rest were older than what Redis holds)."""

    rows: int
    applied: int

    @property
    def skipped_as_older(self) -> int:
        return self.rows - self.applied


def _writer(plan: WritePlan, url: str, chunk_rows: int):
    def write_batches(batches):
        import pyarrow as pa

        store = OnlineStore(connect(url), chunk_rows=chunk_rows)
        try:
            for batch in batches:
                applied = store.write(plan, batch)
                yield pa.RecordBatch.from_pydict({"rows": [batch.num_rows], "applied": [applied]})
        finally:
            store.client.close()

    return write_batches


def publish_partition(spark, registry: Registry, group: FeatureGroup, ds: str, redis_url: str, prefix: str,
                      chunk_rows: int = 500) -> PublishResult:
    """Write partition `ds` of the group's offline table to Redis through the event-time guard."""
    return publish_range(spark, registry, group, ds, ds, redis_url, prefix, chunk_rows)


def publish_range(spark, registry: Registry, group: FeatureGroup, first: str, last: str, redis_url: str,
                  prefix: str, chunk_rows: int = 500) -> PublishResult:
    """Write partitions `first`..`last` (inclusive) of the group's offline table to Redis in one Spark job.

    Every row goes through the event-time guard, so a value lands only where Redis holds an older one.
    """
    plan = WritePlan.for_group(group, registry.entity_of(group), prefix)
    columns = [plan.key_column, *(name for name, _ in plan.features), EVENT_TIME_COLUMN]
    frame = (spark.table(group.table).where(f"{PARTITION_COLUMN} BETWEEN '{first}' AND '{last}'")
             .select(*columns))
    counts = frame.mapInArrow(_writer(plan, redis_url, chunk_rows), COUNTS_SCHEMA)
    try:
        total = counts.groupBy().sum("rows", "applied").collect()[0]
    except Exception as exc:  # a task's Python traceback, through Spark: one line if Redis is what failed
        cause = REDIS_ERROR.search(str(exc))
        if cause is None:
            raise
        raise online_store_unavailable(redis_url, f"{cause.group(1)}: {cause.group(2).strip()}") from None
    return PublishResult(rows=int(total[0] or 0), applied=int(total[1] or 0))
