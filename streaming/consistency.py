"""Batch/stream consistency: the same slice of the event log through the HiveQL batch query and through
the Flink job must give the same feature values. Run before release, for every group with both.

The batch side computes partition `ds` with Spark; the stream side is a fresh job with its own Redis and
data directory whose first start replays the event log's partitions up to `ds` (the ones the group's
window reads, in event-time order, as every first start does: streaming/bootstrap.py); it waits until the
injector has gone quiet and reads the values back. Differences are listed per entity and feature.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from assets.registry import Registry
from assets.specs import FeatureGroup
from batch.feature_job import feature_query
from infra.errors import PlatformError
from infra.redis_server import local_redis
from infra.settings import Settings
from serving import layout
from serving.codec import decode_value
from serving.get_features import build_read_plan, get_features
from serving.online_store import OnlineStore, WritePlan, connect
from streaming import runner
from streaming.bootstrap import prepare_bootstrap

QUIET_SECONDS = 4.0


@dataclass
class ConsistencyReport:
    """The outcome of one comparison: entities compared and every value that differs."""

    group: str
    ds: str
    entities: int
    events: int
    differences: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return not self.differences


def _wait_until_quiet(store: OnlineStore, plan: WritePlan, timeout_s: float) -> int:
    deadline, last, still_since = time.monotonic() + timeout_s, -1, time.monotonic()
    while time.monotonic() < deadline:
        written = store.progress(plan).get("rows_written", 0)
        if written != last:
            last, still_since = written, time.monotonic()
        elif written > 0 and time.monotonic() - still_since >= QUIET_SECONDS:
            return written
        time.sleep(0.5)
    raise PlatformError(f"the stream of {plan.group} did not go quiet within {timeout_s:.0f} s",
                        "see the job log under the consistency run's data directory")


def check_consistency(spark, registry: Registry, settings: Settings, group: FeatureGroup, ds: str,
                      timeout_s: float = 300) -> ConsistencyReport:
    """Compare partition `ds` of the batch query with the stream job's values over the same events: the
    raw partitions the group's window reads as of `ds`, replayed from the event log in event-time order."""
    if group.stream is None:
        raise PlatformError(f"{group.name} has no stream/ folder: nothing to compare", "pick a group with both")
    batch = feature_query(spark, registry, group, ds).toPandas()
    entity = registry.entity_of(group)
    with tempfile.TemporaryDirectory(prefix=f"fp-consistency-{group.name}-") as tmp, local_redis() as url:
        replay = settings.model_copy(update={"data_dir": Path(tmp), "redis_url": url})
        events = prepare_bootstrap(spark, registry, replay, group, through_ds=ds).events
        store = OnlineStore(connect(url))
        plan = WritePlan.for_group(group, entity, replay.redis_prefix)
        runner.start(registry, replay, group, url)
        try:
            _wait_until_quiet(store, plan, timeout_s)
        finally:
            runner.kill(replay, group)
        read_plan = build_read_plan(registry, replay.redis_prefix, entity.name, [group.name])
        ids = batch[entity.key].tolist()
        streamed = {row.entity_id: row.values for row in get_features(store, read_plan, ids)}
        report = ConsistencyReport(group=group.name, ds=ds, entities=len(ids), events=events)
        extra = len(store.client.keys(layout.entity_key(replay.redis_prefix, entity.name, "*"))) - len(ids)
        if extra > 0:
            report.differences.append(f"the stream wrote {extra} {entity.name} entities the batch query has not")
        for record in batch.to_dict(orient="records"):
            for feature in group.features:
                wanted = record[feature.name]
                if feature.dtype == "timestamp":
                    wanted = decode_value("timestamp", str(int(wanted.value // 1000)).encode())
                got = streamed[record[entity.key]][f"{group.name}.{feature.name}"]
                if got != wanted:
                    report.differences.append(f"{entity.key}={record[entity.key]} {feature.name}: "
                                              f"batch {wanted!r}, stream {got!r}")
        store.client.close()
    return report
