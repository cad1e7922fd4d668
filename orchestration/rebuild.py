"""Event sourcing: drop the state derived from the event log and replay the log through the batch path.

The event log (raw.<source>) is the source of truth; feature tables and online values are derived from
it. A rebuild
  1. plans what to recompute: each group's partitions as they are now (or the days asked for),
  2. drops the derived state: each group version's offline table and the platform's entity hashes in
     Redis (`<prefix>:<entity>:*` for the registry's entities; other prefixes and keys are untouched),
  3. replays the partitions oldest first through a `replay(ds, groups)` callable (featctl passes one that
     launches the Dagster daily job, so a rebuild is the same runs as production).
Batch values are a pure function of the event log and the event-time guard makes the online state
independent of write order, so the rebuilt tables and Redis hold exactly what they held before.

Streamed history (`features.<group>_v<n>_streamed`) is kept: the batch path cannot recreate it; replaying
the stream jobs over the event log does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from assets.offline_layout import streamed_table, table_partitions
from assets.registry import Registry
from assets.specs import FeatureGroup
from infra.errors import PlatformError
from serving import layout
from serving.online_store import OnlineStore


Replay = Callable[[str, Sequence[FeatureGroup]], None]


@dataclass(frozen=True)
class RebuildPlan:
    """Which partitions of which groups to recompute."""

    partitions: dict[str, tuple[str, ...]]  # group name -> ds, oldest first

    @property
    def days(self) -> list[str]:
        """Every day some group is replayed for, oldest first."""
        return sorted({ds for days in self.partitions.values() for ds in days})


@dataclass(frozen=True)
class RebuildSummary:
    """What a rebuild dropped and replayed."""

    dropped_tables: tuple[str, ...]
    deleted_keys: int
    replayed: dict[str, tuple[str, ...]]
    kept_streamed_tables: tuple[str, ...]


def plan_rebuild(spark, registry: Registry, days: Sequence[str] | None = None) -> RebuildPlan:
    """Every group's current partitions, or `days` for every group; an error when there is nothing to replay."""
    if days:
        return RebuildPlan({name: tuple(sorted(days)) for name in registry.groups})
    partitions = {name: tuple(table_partitions(spark, group.table)) for name, group in registry.groups.items()}
    if not any(partitions.values()):
        raise PlatformError("nothing to rebuild: no feature table has partitions",
                            "pass --start and --end to replay a range of days of the event log")
    return RebuildPlan(partitions)


def delete_online_state(store: OnlineStore, registry: Registry, prefix: str) -> int:
    """Delete the entity hashes of the registry's entities under `prefix`; returns how many keys went."""
    return sum(store.delete_prefix(layout.entity_key(prefix, entity, "")) for entity in registry.entities)


def drop_offline_tables(spark, registry: Registry) -> list[str]:
    """Drop every group version's batch table; returns the tables that existed."""
    dropped = []
    for group in registry.groups.values():
        if spark.catalog.tableExists(group.table):
            spark.sql(f"DROP TABLE {group.table}")
            dropped.append(group.table)
    return dropped


def rebuild(spark, registry: Registry, store: OnlineStore, prefix: str, plan: RebuildPlan, replay: Replay,
            on_day: Callable[[str], None] | None = None) -> RebuildSummary:
    """Drop the derived state and replay `plan` (from `plan_rebuild`, made before) into it (see the module doc)."""
    dropped = drop_offline_tables(spark, registry)
    deleted = delete_online_state(store, registry, prefix)
    for ds in plan.days:
        replay(ds, [registry.groups[name] for name, group_days in plan.partitions.items() if ds in group_days])
        if on_day:
            on_day(ds)
    kept = tuple(streamed_table(g) for g in registry.groups.values() if spark.catalog.tableExists(streamed_table(g)))
    return RebuildSummary(dropped_tables=tuple(dropped), deleted_keys=deleted,
                          replayed={name: days for name, days in plan.partitions.items() if days},
                          kept_streamed_tables=kept)
