"""GetFeatures(entity, ids, features): a read plan resolved once from the registry, then one round trip.

A feature ref is `group.feature` or a whole `group`; all refs of one call share the entity. The plan
lists every hash field to fetch (the features and each group's event-time field) and how to decode each,
so the per-call work is one pipelined HMGET per id and a decode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from assets.registry import Registry
from infra.errors import PlatformError
from serving import layout
from serving.codec import decode_value, micros_to_datetime
from serving.online_store import OnlineStore


@dataclass(frozen=True)
class ReadPlan:
    """Fields to fetch for one entity and feature list, and how to turn them back into typed values."""

    prefix: str
    entity: str
    key_dtype: str
    refs: tuple[str, ...]            # `group.feature`, in output order
    dtypes: tuple[str, ...]          # declared dtype per ref
    fields: tuple[str, ...]          # feature fields, then one event-time field per group
    event_time_slot: tuple[int, ...]  # per ref: index into fields of its group's event-time field


def build_read_plan(registry: Registry, prefix: str, entity: str, features: Sequence[str]) -> ReadPlan:
    """Resolve feature refs against the registry; unknown names are errors that list what exists."""
    if entity not in registry.entities:
        raise PlatformError(f"unknown entity {entity!r}", f"use one of: {', '.join(sorted(registry.entities))}")
    if not features:
        raise PlatformError("no features requested", "name features as group.feature or a whole group")
    refs, dtypes, fields, groups = [], [], [], []
    for ref in features:
        group_name, _, feature_name = ref.partition(".")
        group = registry.group(group_name)
        if group.entity != entity:
            raise PlatformError(f"{ref!r} describes entity {group.entity!r}, not {entity!r}",
                                f"request {group.entity} features in a separate call")
        names = [f.name for f in group.features]
        if feature_name and feature_name not in names:
            raise PlatformError(f"unknown feature {ref!r}", f"group {group_name!r} has: {', '.join(names)}")
        for name in [feature_name] if feature_name else names:
            refs.append(f"{group.name}.{name}")
            dtypes.append(group.feature(name).dtype)
            fields.append(layout.feature_field(group.name, group.version, name))
            groups.append(group)
    ts_fields = list(dict.fromkeys(layout.event_time_field(g.name, g.version) for g in groups))
    slots = tuple(len(fields) + ts_fields.index(layout.event_time_field(g.name, g.version)) for g in groups)
    return ReadPlan(prefix=prefix, entity=entity, key_dtype=registry.entities[entity].dtype, refs=tuple(refs),
                    dtypes=tuple(dtypes), fields=tuple(fields + ts_fields), event_time_slot=slots)


@dataclass(frozen=True)
class FeatureRow:
    """Feature values of one entity id, with the event time each value was computed as of."""

    entity_id: object
    values: dict[str, object]
    event_times: dict[str, datetime | None]


def get_features(store: OnlineStore, plan: ReadPlan, ids: Sequence) -> list[FeatureRow]:
    """The planned features for each id, in order; an unknown id gets nulls, not an error."""
    keys = [layout.entity_key(plan.prefix, plan.entity, i) for i in ids]
    rows = []
    for entity_id, raw in zip(ids, store.read(keys, plan.fields)):
        values = {ref: decode_value(dtype, raw[i]) for i, (ref, dtype) in enumerate(zip(plan.refs, plan.dtypes))}
        times = {ref: None if raw[slot] is None else micros_to_datetime(int(raw[slot]))
                 for ref, slot in zip(plan.refs, plan.event_time_slot)}
        rows.append(FeatureRow(entity_id=entity_id, values=values, event_times=times))
    return rows
