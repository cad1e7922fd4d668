"""Repair one group's online values after they were corrupted anyway (a bug, a bad deploy, a hand edit).

The event log and the batch tables are the truth the online values derive from, so a repair derives them
again, for the group version alone: its job is killed and its stream state (checkpoints, savepoints, replay
export) dropped; its fields (features and event time) leave every entity hash, the other groups' fields in
the same hashes untouched; its unloaded history and progress markers go, and so do the streamed history's
partitions from the cutoff on (the part the new job writes again); the newest batch partition is published
again; and the stream starts afresh: it replays the event log (streaming/bootstrap.py) and reads the live
stream from the cutoff. Once it has caught up with the live input, the repair compares every entity's values
with what they were before and says how many changed.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass

from assets.offline_layout import streamed_table, table_partitions
from assets.registry import Registry
from assets.specs import FeatureGroup
from infra.errors import PlatformError
from infra.settings import Settings
from serving import layout
from serving.online_store import OnlineStore, WritePlan, connect
from streaming import runner
from streaming.codegen import job_dir
from streaming.windows import to_us

CATCH_UP_TIMEOUT_S = 600
DERIVED_STATE = ("checkpoints", "savepoints", "replay", "bootstrap.json")  # under the job directory
FIELDS_PER_ROUND_TRIP = 500  # entity hashes read or cleaned per pipeline


@dataclass(frozen=True)
class RepairResult:
    """What `featctl stream repair` did: the partition republished and how many entities it changed."""

    group: str
    republished: str | None   # the batch partition published again (None: the group has none)
    entities: int             # entity hashes that held the group's fields before or after
    changed: int              # of which the values or event time differ now


def _group_values(store: OnlineStore, plan: WritePlan, entity: str) -> dict[bytes, tuple]:
    """Every entity hash's fields of the group version (features and event time), by key; hashes without them
    are left out."""
    fields = [*plan.fields, plan.event_time_field]
    keys = list(store.client.scan_iter(match=layout.glob_escaped(layout.entity_key(plan.prefix, entity, "")) + "*",
                                       count=FIELDS_PER_ROUND_TRIP))
    values = {}
    for start in range(0, len(keys), FIELDS_PER_ROUND_TRIP):
        chunk = keys[start:start + FIELDS_PER_ROUND_TRIP]
        for key, row in zip(chunk, store.read([k.decode() for k in chunk], fields)):
            if any(value is not None for value in row):
                values[key] = tuple(row)
    return values


def _drop_online(store: OnlineStore, plan: WritePlan, keys: list[bytes]) -> None:
    """Remove the group version's fields from `keys` (the hashes keep the other groups' fields), its history
    streams and its progress marker."""
    fields = [*plan.fields, plan.event_time_field]
    for start in range(0, len(keys), FIELDS_PER_ROUND_TRIP):
        pipe = store.client.pipeline(transaction=False)
        for key in keys[start:start + FIELDS_PER_ROUND_TRIP]:
            pipe.hdel(key, *fields)
        pipe.execute()
    for key in [*store.history_keys(plan), layout.progress_key(plan.prefix, plan.group, plan.version)]:
        store.client.unlink(key)


def drop_streamed_from(spark, group: FeatureGroup, first_ds: str) -> None:
    """Drop the group's streamed history partitions from `first_ds` on (a repair: the new job lands those
    values again)."""
    table = streamed_table(group)
    for ds in table_partitions(spark, table):
        if ds >= first_ds:
            spark.sql(f"ALTER TABLE {table} DROP IF EXISTS PARTITION (ds = '{ds}')")


def _wait_caught_up(registry: Registry, settings: Settings, group: FeatureGroup, store: OnlineStore,
                    plan: WritePlan) -> None:
    """Until the injector has landed the newest valid event waiting in the group's live input (local profile)."""
    if settings.kafka_bootstrap_servers:
        return
    newest = runner.newest_live_event(registry, settings, group)
    bootstrap = runner.recorded_bootstrap(settings, group)
    if newest is None or (bootstrap and bootstrap.cutoff and newest < bootstrap.cutoff):
        return  # nothing live from the cutoff on: the batch values stand
    micros = to_us(newest)
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    while store.progress(plan).get("max_event_time", 0) < micros:
        if time.monotonic() > deadline:
            raise PlatformError(f"the repaired {group.name} stream did not land its live input within "
                                f"{CATCH_UP_TIMEOUT_S} s", f"featctl stream status {group.name}")
        time.sleep(1)
    time.sleep(settings.stream_flush_ms / 1000 + 1)  # the last bundle of the backlog lands


def repair(spark, registry: Registry, settings: Settings, group: FeatureGroup, redis_url: str) -> RepairResult:
    """Derive the group version's online values and streamed history again from the event log and the batch
    tables (see the module doc), leaving every other group's keys and fields as they are."""
    if group.stream is None:
        raise PlatformError(f"feature group {group.name!r} has no stream/ folder",
                            f"featctl materialize --group {group.name} publishes its batch values again")
    entity = registry.entity_of(group).name
    plan = WritePlan.for_group(group, registry.entity_of(group), settings.redis_prefix)
    store = OnlineStore(connect(redis_url))
    try:
        runner.kill(settings, group)  # its state is suspect: no savepoint
        before = _group_values(store, plan, entity)
        directory = job_dir(settings, group)
        for name in DERIVED_STATE:
            path = directory / name
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        _drop_online(store, plan, list(before))
        partitions = table_partitions(spark, group.table)
        newest = partitions[-1] if partitions else None
        if newest is not None:
            from batch.publish import publish_partition

            publish_partition(spark, registry, group, newest, redis_url, settings.redis_prefix)
        runner.start(registry, settings, group, redis_url, spark=spark)
        bootstrap = runner.recorded_bootstrap(settings, group)
        if bootstrap is not None and bootstrap.cutoff is not None:
            drop_streamed_from(spark, group, bootstrap.cutoff.date().isoformat())
        _wait_caught_up(registry, settings, group, store, plan)
        after = _group_values(store, plan, entity)
    finally:
        store.client.close()
    changed = sum(before.get(key) != after.get(key) for key in before.keys() | after.keys())
    return RepairResult(group.name, newest, len(before.keys() | after.keys()), changed)
