"""Freshness of every group's online values: a check on `online/<group>` and a sensor re-evaluating it.

A group is fresh when its online values were updated within the `freshness` target of its feature.yaml.
An update is the publish of the group's newest partition (a backfill of older days does not make a
stale group fresh) or, for a group with a stream, the stream's last write to Redis (its progress
marker). The check runs after every publish (any run that materializes `online/<group>`); the sensor
evaluates every group each minute and records a result when a group's state or last update changes, so
a group going stale shows in the UI (a failed `freshness` check on `online/<group>`) without any run.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import dagster as dg

from assets.registry import Registry
from assets.specs import FeatureGroup, format_duration
from orchestration.resources import OnlineStoreResource
from streaming.status import last_write_time, stream_progress

CHECK_NAME = "freshness"
SENSOR_NAME = "freshness"
SENSOR_INTERVAL_S = 60


@dataclass(frozen=True)
class Freshness:
    """How fresh one group's online values are at `checked_at`, and from which update."""

    group: str
    target: timedelta
    checked_at: datetime
    newest_partition: str | None = None
    published_at: datetime | None = None     # when the newest partition was published
    stream_write_at: datetime | None = None  # the stream's last write to Redis

    @property
    def last_update(self) -> datetime | None:
        return max((t for t in (self.published_at, self.stream_write_at) if t), default=None)

    @property
    def passed(self) -> bool:
        return self.last_update is not None and self.checked_at - self.last_update <= self.target

    @property
    def description(self) -> str:
        target = format_duration(self.target)
        if self.last_update is None:
            return f"{self.group} has never been published (freshness target {target})"
        by = "its stream" if self.last_update == self.stream_write_at else f"the publish of ds={self.newest_partition}"
        when = self.last_update.strftime("%Y-%m-%d %H:%M:%S UTC")
        if self.passed:
            return f"{self.group} is fresh: last updated at {when} by {by} (target {target})"
        return f"{self.group} is stale: last updated at {when} by {by}, more than its freshness target {target} ago"

    def metadata(self) -> dict:
        """What the UI shows with the result: the target, the last updates and the age."""
        age = self.checked_at - self.last_update if self.last_update else None
        return {
            "freshness_target": format_duration(self.target),
            "newest_partition": self.newest_partition or "none",
            "published_at": self.published_at.isoformat() if self.published_at else "never",
            "stream_write_at": self.stream_write_at.isoformat() if self.stream_write_at else "none",
            "age_seconds": dg.MetadataValue.float(age.total_seconds() if age else -1.0),
        }

    def evaluation(self) -> dg.AssetCheckEvaluation:
        """The result as an event a sensor records on the check."""
        return dg.AssetCheckEvaluation(asset_key=dg.AssetKey(["online", self.group]), check_name=CHECK_NAME,
                                       passed=self.passed, metadata=self.metadata(), description=self.description,
                                       severity=dg.AssetCheckSeverity.WARN, blocking=False,
                                       target_materialization_data=None)


def newest_publish(instance: dg.DagsterInstance, group: FeatureGroup) -> tuple[str | None, datetime | None]:
    """The newest published partition of `online/<group>` and when it was published (None, None if never)."""
    key = dg.AssetKey(["online", group.name])
    partitions = instance.get_materialized_partitions(key)
    if not partitions:
        return None, None
    newest = max(partitions)
    record = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, asset_partitions=[newest]),
                                             limit=1).records[0]
    return newest, datetime.fromtimestamp(record.timestamp, timezone.utc)


def group_freshness(instance: dg.DagsterInstance, registry: Registry, group: FeatureGroup,
                    online_store: OnlineStoreResource, now: datetime | None = None) -> Freshness:
    """The group's freshness now (or at `now`), from the instance and, for a streamed group, Redis."""
    partition, published = newest_publish(instance, group)
    streamed = None
    if group.stream is not None:
        with online_store.redis_url() as url:
            streamed = last_write_time(stream_progress(registry, group, url, online_store.prefix))
    return Freshness(group=group.name, target=group.freshness, checked_at=now or datetime.now(timezone.utc),
                     newest_partition=partition, published_at=published, stream_write_at=streamed)


def freshness_check(registry: Registry, group: FeatureGroup) -> dg.AssetChecksDefinition:
    """`online/<group>` freshness: passes while the last update is within the group's target."""

    @dg.asset_check(asset=dg.AssetKey(["online", group.name]), name=CHECK_NAME, blocking=False,
                    description=f"The online values were updated (newest partition published"
                                f"{' or stream write' if group.stream else ''}) within "
                                f"{format_duration(group.freshness)}.")
    def freshness(context: dg.AssetCheckExecutionContext, online_store: OnlineStoreResource) -> dg.AssetCheckResult:
        state = group_freshness(context.instance, registry, group, online_store)
        return dg.AssetCheckResult(passed=state.passed, description=state.description, metadata=state.metadata(),
                                   severity=dg.AssetCheckSeverity.WARN)

    return freshness


def freshness_sensor(registry: Registry) -> dg.SensorDefinition:
    """Re-evaluates every group's freshness each minute; records a result when a group's state changes."""

    @dg.sensor(name=SENSOR_NAME, minimum_interval_seconds=SENSOR_INTERVAL_S,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Marks a group stale (its online/<group> freshness check fails) once its last publish "
                           "or stream write is older than its feature.yaml freshness target.")
    def freshness(context: dg.SensorEvaluationContext, online_store: OnlineStoreResource) -> dg.SensorResult:
        previous = json.loads(context.cursor) if context.cursor else {}
        states = [group_freshness(context.instance, registry, group, online_store) for group in registry.groups.values()]
        seen = {s.group: [s.passed, s.last_update.isoformat() if s.last_update else None] for s in states}
        changed = [s.evaluation() for s in states if previous.get(s.group) != seen[s.group]]
        context.update_cursor(json.dumps(seen))
        return dg.SensorResult(asset_events=changed)

    return freshness
