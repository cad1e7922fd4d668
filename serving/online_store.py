"""The online store: event-time-guarded batched writes and one-round-trip reads over Redis.

Writes go through one server-side script (serving/guarded_write.lua) per chunk of rows, pipelined: the
compare-and-set of event times happens inside Redis, so there is no read-then-write race between the
batch publish, a backfill and the streaming sink. Reads are one pipelined HMGET per entity, sent together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from assets.offline_layout import EVENT_TIME_COLUMN
from assets.specs import Entity, FeatureGroup
from infra.errors import PlatformError
from serving import layout
from serving.codec import encode_column

GUARDED_WRITE = (Path(__file__).parent / "guarded_write.lua").read_text()
RECORD_PROGRESS = (Path(__file__).parent / "progress.lua").read_text()


@dataclass(frozen=True)
class WritePlan:
    """What a writer needs to publish rows of one group version: picklable, so Spark executors get it."""

    prefix: str
    entity: str
    key_column: str
    group: str
    version: int
    ttl_seconds: int
    features: tuple[tuple[str, str], ...]  # (name, dtype)

    @classmethod
    def for_group(cls, group: FeatureGroup, entity: Entity, prefix: str) -> WritePlan:
        """The plan for `group`'s features, keyed by its entity's key column."""
        return cls(prefix=prefix, entity=entity.name, key_column=entity.key, group=group.name,
                   version=group.version, ttl_seconds=int(group.ttl.total_seconds()) if group.ttl else 0,
                   features=tuple((f.name, f.dtype) for f in group.features))

    @property
    def fields(self) -> list[str]:
        return [layout.feature_field(self.group, self.version, name) for name, _ in self.features]

    @property
    def event_time_field(self) -> str:
        return layout.event_time_field(self.group, self.version)

    @property
    def history_key(self) -> str:
        return layout.history_key(self.prefix, self.group, self.version)

    def script_head(self, history: bool = False) -> list:
        """The arguments guarded_write.lua takes before the rows: event-time field, TTL, n, the n field
        names, and whether landed rows are appended to the history stream."""
        return [self.event_time_field, self.ttl_seconds, len(self.features), *self.fields, int(history)]


def connect(url: str, cluster: bool = False) -> redis.Redis | RedisCluster:
    """A client for `url` (redis://, rediss:// with AUTH/TLS in the URL); `cluster=True` for Redis Cluster."""
    if cluster:
        return RedisCluster.from_url(url)
    return redis.Redis.from_url(url, socket_keepalive=True)


def shown_url(url: str) -> str:
    """`url` as errors show it: the password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def online_store_unavailable(url: str, cause: str) -> PlatformError:
    """The one-line error of a write that failed because Redis did not answer, naming the store and why."""
    return PlatformError(f"the online store {shown_url(url)} did not answer: {cause}",
                         "start Redis, or point FP_REDIS_URL at a running one, and run again (a re-run is exact: "
                         "the event-time guard lands each value once)")


class OnlineStore:
    """Reads and guarded writes of feature values for one Redis (or Redis Cluster) deployment."""

    def __init__(self, client: redis.Redis | RedisCluster, chunk_rows: int = 500):
        self.client = client
        self.chunk_rows = chunk_rows
        self._script = client.register_script(GUARDED_WRITE)
        self._progress = client.register_script(RECORD_PROGRESS)
        self._slot = key_slot if isinstance(client, RedisCluster) else (lambda _key: 0)

    def _encoded(self, plan: WritePlan, batch: pa.RecordBatch | pa.Table) -> tuple[list[str], list, list[list]]:
        keys = [layout.entity_key(plan.prefix, plan.entity, i) for i in batch.column(plan.key_column).to_pylist()]
        times = encode_column("timestamp", batch.column(EVENT_TIME_COLUMN))
        columns = [encode_column(dtype, batch.column(name)) for name, dtype in plan.features]
        return keys, times, columns

    def _calls(self, plan: WritePlan, keys, times, columns, history: bool):
        """Script calls of at most `chunk_rows` keys, each key set within one cluster slot."""
        head = plan.script_head(history)
        pending: dict[int, tuple[list, list]] = {}

        def done(call):
            return (call[0] + [plan.history_key], call[1]) if history else call
        for row, key in enumerate(keys):
            call_keys, args = pending.setdefault(self._slot(key), ([], list(head)))
            call_keys.append(key)
            args.append(times[row])
            args.extend(column[row] for column in columns)
            if len(call_keys) >= self.chunk_rows:
                yield done(pending.pop(self._slot(key)))
        yield from map(done, pending.values())

    def write(self, plan: WritePlan, batch: pa.RecordBatch | pa.Table, history: bool = False) -> int:
        """Write rows (entity key, features, `feature_ts`) in one pipelined round trip; returns rows that landed.

        A row lands only if its event time is at least the stored one for that entity and group version.
        With `history` (the stream injection), every landed row is also appended to the group version's
        history stream in the same script call (serving/streamed_history.py loads it into the offline table).
        """
        if batch.num_rows == 0:
            return 0
        if history and isinstance(self.client, RedisCluster):
            raise NotImplementedError("the streamed history is not written on Redis Cluster yet: its stream "
                                      "key would have to share every entity key's slot")
        pipe = self.client.pipeline(transaction=False)
        for call_keys, args in self._calls(plan, *self._encoded(plan, batch), history):
            self._script(keys=call_keys, args=args, client=pipe)
        return sum(pipe.execute())

    def write_per_record(self, plan: WritePlan, batch: pa.RecordBatch | pa.Table) -> int:
        """The same guarded write, one round trip per row: the baseline the batched writer is measured against."""
        keys, times, columns = self._encoded(plan, batch)
        return sum(self._script(keys=[key], args=[*plan.script_head(), times[row], *(c[row] for c in columns)])
                   for row, key in enumerate(keys))

    def record_progress(self, plan: WritePlan, rows: int, landed: int, max_event_micros: int, now_ms: int) -> None:
        """Add a streamed batch to the group version's progress (rows, last write, newest event time)."""
        key = layout.progress_key(plan.prefix, plan.group, plan.version)
        self._progress(keys=[key], args=[rows, landed, now_ms, max_event_micros])

    def progress(self, plan: WritePlan) -> dict[str, int]:
        """The recorded progress of the group version's streaming injector (empty before its first write)."""
        raw = self.client.hgetall(layout.progress_key(plan.prefix, plan.group, plan.version))
        return {k.decode(): int(v) for k, v in raw.items()}

    def read(self, entity_keys: Sequence[str], fields: Sequence[str]) -> list[list[bytes | None]]:
        """Raw values of `fields` for each key, in one pipelined round trip (one HMGET per key)."""
        pipe = self.client.pipeline(transaction=False)
        for key in entity_keys:
            pipe.hmget(key, fields)
        return pipe.execute()
