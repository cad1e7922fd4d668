"""Batch/stream consistency: the same slice of the event log through the HiveQL batch query and through
the Flink job must give the same feature values. Run before release, for every group with both.

The batch side computes partition `ds` with Spark; the stream side is a fresh job with its own Redis and
data directory whose first start replays the event log's partitions up to `ds` (the ones the group's
window reads, as every first start does: streaming/bootstrap.py). That job is bounded: it reads the replayed
events alone and ends when it has, its windows standing as of the end of `ds`; then the values are read
back. Differences are listed per entity and feature.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from assets.registry import Registry
from assets.specs import FeatureGroup
from batch.feature_job import feature_query
from infra.errors import PlatformError
from infra.redis_server import local_redis
from infra.settings import Settings
from serving import layout
from serving.codec import decode_value
from serving.get_features import build_read_plan, get_features
from serving.online_store import OnlineStore, connect
from streaming import runner
from streaming.bootstrap import prepare_bootstrap

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


def check_consistency(spark, registry: Registry, settings: Settings, group: FeatureGroup, ds: str,
                      timeout_s: float = 900) -> ConsistencyReport:
    """Compare partition `ds` of the batch query with the stream job's values over the same events: the
    raw partitions the group's window reads as of `ds`, replayed from the event log in event-time order."""
    if group.stream is None:
        raise PlatformError(f"{group.name} has no stream/ folder: nothing to compare", "pick a group with both")
    batch = feature_query(spark, registry, group, ds).toPandas()
    entity = registry.entity_of(group)
    with tempfile.TemporaryDirectory(prefix=f"fp-consistency-{group.name}-") as tmp, local_redis() as url:
        replay = settings.model_copy(update={"data_dir": Path(tmp), "redis_url": url})
        bootstrap = prepare_bootstrap(spark, registry, replay, group, through_ds=ds)
        store = OnlineStore(connect(url))
        try:
            runner.wait_finished(runner.start(registry, replay, group, url, bounded=True), timeout_s)
        finally:
            runner.kill(replay, group)
        read_plan = build_read_plan(registry, replay.redis_prefix, entity.name, [group.name])
        ids = batch[entity.key].tolist()
        streamed = {row.entity_id: row.values for row in get_features(store, read_plan, ids)}
        report = ConsistencyReport(group=group.name, ds=ds, entities=len(ids), events=bootstrap.events)
        extra = len(store.client.keys(layout.entity_key(replay.redis_prefix, entity.name, "*"))) - len(ids)
        if extra > 0:
            report.differences.append(f"the stream wrote {extra} {entity.name} entities the batch query has not")
        for record in batch.to_dict(orient="records"):
            for feature in group.features:
                wanted = record[feature.name]
                if pd.isna(wanted):  # null in the batch table (NaN, NaT or None in pandas): null online
                    wanted = None
                elif feature.dtype == "timestamp":
                    wanted = decode_value("timestamp", str(int(wanted.value // 1000)).encode())
                got = streamed[record[entity.key]][f"{group.name}.{feature.name}"]
                if got != wanted:
                    report.differences.append(f"{entity.key}={record[entity.key]} {feature.name}: "
                                              f"batch {wanted!r}, stream {got!r}")
        store.client.close()
    return report
