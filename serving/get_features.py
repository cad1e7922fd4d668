"""GetFeatures(entity, ids, features): a read plan resolved once from the registry, then one round trip.

A feature ref is `group.feature` or a whole `group`, optionally pinned to a version (`group@vN.feature`,
see serving/feature_refs.py); all refs of one call share the entity. The plan lists every hash field to
fetch (the features, then each group version's event-time field), how to decode each, each group's TTL
and the HMGET commands already encoded in Redis's protocol, so the per-call work is one buffer of HMGETs
(one per id) sent in one round trip, and a column-wise decode. `ReadPlans` keeps plans by feature list,
so a service answering the same model's request again does no registry work at all.

A value is stale when it is older than its group's TTL, measured from the value's event time (not from
when it was written): a backfilled old partition is stale the moment it lands.
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property, lru_cache, partial


from assets.dtypes import INT_RANGES
from assets.registry import Registry
from serving import layout
from serving.codec import DECODERS, micros_to_datetime
from serving.feature_refs import InvalidRequest, UnknownName, resolve_refs, shown
from serving.online_store import OnlineStore, read_commands

INT64_RANGE = INT_RANGES["int64"]


@dataclass(frozen=True)
class ReadPlan:
    """Fields to fetch for one entity and feature list, and how to turn them back into typed values."""

    prefix: str
    entity: str
    key_dtype: str
    refs: tuple[str, ...]             # output names (`group.feature`, `group@vN.feature`), in output order
    dtypes: tuple[str, ...]           # declared dtype per ref
    fields: tuple[str, ...]           # feature fields, then one event-time field per group version
    event_time_slot: tuple[int, ...]  # per ref: index into fields of its group's event-time field
    ttl_micros: tuple[int | None, ...]  # per event-time field: the group's TTL (None: never stale)

    @cached_property
    def decoders(self) -> tuple:
        """Per ref: the function turning its stored bytes back into a typed value."""
        return tuple(DECODERS[dtype] for dtype in self.dtypes)

    @cached_property
    def hmget_head(self) -> bytes:
        """The start of each HMGET command in RESP: the array length and the command name."""
        return b"*%d\r\n$5\r\nHMGET\r\n" % (len(self.fields) + 2)

    @cached_property
    def hmget_fields(self) -> bytes:
        """The plan's fields in RESP, encoded once: what every HMGET of this plan ends with."""
        return b"".join(b"$%d\r\n%s\r\n" % (len(f), f) for f in map(str.encode, self.fields))

    @cached_property
    def ref_group(self) -> tuple[int, ...]:
        """Per ref: index of its group among the event-time fields."""
        return tuple(slot - len(self.refs) for slot in self.event_time_slot)


def build_read_plan(registry: Registry, prefix: str, entity: str, features: Sequence[str]) -> ReadPlan:
    """Resolve feature refs against the registry; unknown names are errors that list what exists."""
    if not isinstance(entity, str) or entity not in registry.entities:
        raise UnknownName(f"unknown entity {entity!r}", f"use one of: {', '.join(sorted(registry.entities))}")
    resolved = resolve_refs(registry, features)
    for ref in resolved:
        if ref.group.entity != entity:
            raise InvalidRequest(f"{ref.name!r} describes entity {ref.group.entity!r}, not {entity!r}",
                                 f"request {ref.group.entity} features in a separate call")
    ts_fields = list(dict.fromkeys(layout.event_time_field(r.group.name, r.group.version) for r in resolved))
    ttls = {layout.event_time_field(r.group.name, r.group.version):
            None if r.group.ttl is None else int(r.group.ttl.total_seconds() * 1_000_000) for r in resolved}
    slots = tuple(len(resolved) + ts_fields.index(layout.event_time_field(r.group.name, r.group.version))
                  for r in resolved)
    return ReadPlan(prefix=prefix, entity=entity, key_dtype=registry.entities[entity].dtype,
                    refs=tuple(r.name for r in resolved), dtypes=tuple(r.feature.dtype for r in resolved),
                    fields=tuple([layout.feature_field(r.group.name, r.group.version, r.feature.name)
                                  for r in resolved] + ts_fields),
                    event_time_slot=slots, ttl_micros=tuple(ttls[f] for f in ts_fields))


class ReadPlans:
    """Read plans by (entity, feature list), each resolved once: the per-request cost is a dict lookup."""

    def __init__(self, registry: Registry, prefix: str, max_plans: int = 1024):
        self.registry = registry
        self.prefix = prefix
        self._cached = lru_cache(maxsize=max_plans)(partial(build_read_plan, registry, prefix))

    def plan(self, entity: str, features: Sequence[str]) -> ReadPlan:
        """The plan for `features` of `entity`, from the cache when this list was asked for before."""
        if not isinstance(features, (list, tuple)) or not all(isinstance(f, str) for f in features):
            raise InvalidRequest(f"features must be a list of feature refs, got {shown(features)}",
                                 'send e.g. ["user_upvotes.upvotes_7d", "user_upvotes"]')
        if not isinstance(entity, str):
            raise InvalidRequest(f"entity must be a name, got {shown(entity)}", 'send e.g. "user"')
        return self._cached(entity, tuple(features))


def _bad_id(entity: str, key_dtype: str, index: int, value) -> InvalidRequest:
    kind = "integers (or strings of digits) in the int64 range" if key_dtype == "int64" else "non-empty strings"
    return InvalidRequest(f"ids[{index}] = {shown(value)} is not a {entity} id", f"{entity} ids are {kind}")


def _as_int64(value):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value)
    else:
        return None
    return number if INT64_RANGE[0] <= number <= INT64_RANGE[1] else None


def check_ids(plan: ReadPlan, ids, max_ids: int) -> list:
    """The ids as entity keys (int64 ids as ints), or an InvalidRequest naming the first bad one."""
    if not isinstance(ids, (list, tuple)):
        raise InvalidRequest(f"ids must be a list, got {type(ids).__name__}", "send e.g. [42, 7]")
    if not ids:
        raise InvalidRequest("no ids requested", "send at least one id")
    if len(ids) > max_ids:
        raise InvalidRequest(f"too many ids: {len(ids)} in one request, at most {max_ids}",
                             f"split the ids into requests of at most {max_ids}")
    if plan.key_dtype == "int64":
        if all(type(i) is int for i in ids) and INT64_RANGE[0] <= min(ids) and max(ids) <= INT64_RANGE[1]:
            return list(ids)
        checked = [_as_int64(i) for i in ids]
    else:
        checked = [i if isinstance(i, str) and i else None for i in ids]
    for index, value in enumerate(checked):
        if value is None:
            raise _bad_id(plan.entity, plan.key_dtype, index, ids[index])
    return checked


@dataclass(slots=True)
class FeatureRow:
    """Feature values of one entity id, with the event time each value holds as of and whether it is stale."""

    entity_id: object
    values: dict[str, object]
    event_times: dict[str, datetime | None]
    stale: dict[str, bool] = field(default_factory=dict)


def entity_keys(plan: ReadPlan, ids: Sequence) -> list[str]:
    """The Redis keys of `ids` under the plan's prefix and entity."""
    return [layout.entity_key(plan.prefix, plan.entity, i) for i in ids]


def hmget_commands(plan: ReadPlan, keys: Sequence[str]) -> list[bytes]:
    """One HMGET per key in Redis's wire protocol (RESP), built from the plan's pre-encoded field list, as one
    buffer: the commands `read_commands` and its asyncio twin send."""
    head, fields = plan.hmget_head, plan.hmget_fields
    return [b"".join([head + b"$%d\r\n%s\r\n" % (len(k), k) + fields for k in map(str.encode, keys)])]


def read_raw(store: OnlineStore, plan: ReadPlan, keys: Sequence[str]) -> list[list[bytes | None]]:
    """The plan's fields of each key in one round trip (one per node on a cluster), replies in key order."""
    return read_commands(store.client, keys, partial(hmget_commands, plan))


def now_micros() -> int:
    """The current time as epoch microseconds, what staleness is measured against."""
    return time.time_ns() // 1000


def _decoded_column(decode, raw: tuple) -> list:
    return list(map(decode, raw)) if None not in raw else [None if r is None else decode(r) for r in raw]


def _event_time_column(raw: tuple, ttl: int | None, now: int) -> tuple[list, list]:
    """Event times and stale flags of one group's event-time field; each distinct value is decoded once."""
    micros = {r: int(r) for r in set(raw) if r is not None}
    instants = {r: micros_to_datetime(m) for r, m in micros.items()}
    stale = {r: ttl is not None and now - m > ttl for r, m in micros.items()}
    return [instants.get(r) for r in raw], [stale.get(r, False) for r in raw]


def _dicts_of_one_value(refs: tuple[str, ...], values: Sequence) -> list[dict]:
    """Per value, a dict of its own mapping every ref to it. Rows share few event times (a batch publish writes
    one per day) and stale flags: a value seen before copies its dict, five times cheaper than building it
    (with codec's faster timestamps, decoding 100 ids x 10 features went from 0.35 ms to 0.27 ms)."""
    built: dict = {}
    dicts = []
    for value in values:
        seen = built.get(value)
        if seen is None:
            built[value] = seen = dict.fromkeys(refs, value)
            dicts.append(seen)
        else:
            dicts.append(seen.copy())
    return dicts


def decode_rows(plan: ReadPlan, ids: Sequence, raw_rows: Sequence[Sequence[bytes | None]],
                now: int) -> list[FeatureRow]:
    """Typed rows from the raw HMGET replies; `now` (epoch microseconds) decides staleness.

    Decoding goes a field (column) at a time, so each dtype's decoder runs over a whole column.
    """
    if not raw_rows:
        return []
    refs, width = plan.refs, len(plan.refs)
    columns = list(zip(*raw_rows))
    values = zip(*[_decoded_column(decode, raw) for decode, raw in zip(plan.decoders, columns)])
    groups = [_event_time_column(raw, ttl, now) for raw, ttl in zip(columns[width:], plan.ttl_micros)]
    if len(groups) == 1:
        times, stale = groups[0]
        return [FeatureRow(entity_id, dict(zip(refs, row)), event_times, stale_flags) for entity_id, row, event_times,
                stale_flags in zip(ids, values, _dicts_of_one_value(refs, times), _dicts_of_one_value(refs, stale))]
    per_ref = [groups[g] for g in plan.ref_group]
    return [FeatureRow(entity_id, dict(zip(refs, row)), dict(zip(refs, [times[i] for times, _ in per_ref])),
                       dict(zip(refs, [stale[i] for _, stale in per_ref])))
            for i, (entity_id, row) in enumerate(zip(ids, values))]


def get_features(store: OnlineStore, plan: ReadPlan, ids: Sequence, now: int | None = None) -> list[FeatureRow]:
    """The planned features for each id, in order, in one round trip; an unknown id gets nulls, not an error."""
    raw = read_raw(store, plan, entity_keys(plan, ids))
    return decode_rows(plan, ids, raw, now_micros() if now is None else now)
