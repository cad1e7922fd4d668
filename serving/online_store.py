"""The online store: event-time-guarded batched writes and one-round-trip reads over Redis.

Writes go through one server-side script (serving/guarded_write.lua) per chunk of rows, pipelined: the
compare-and-set of event times happens inside Redis, so there is no read-then-write race between the
batch publish, a backfill and the streaming sink. Reads are one pipelined HMGET per entity, sent together:
`read_commands` is the one read strategy (on one Redis or a cluster), its asyncio twin the feature service's.
Every round trip on a pooled connection goes through serving/round_trip.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.compute as pc
import redis
import redis.asyncio as aioredis
from redis.cluster import RedisCluster
from redis.exceptions import (AskError, ClusterDownError, MovedError, NoScriptError, RedisClusterException,
                              SlotNotCoveredError, TryAgainError)
from redis.crc import key_slot

from assets.offline_layout import EVENT_TIME_COLUMN
from assets.specs import Entity, FeatureGroup
from infra.errors import PlatformError
from serving import layout, resp
from serving.codec import encode_array
from serving.round_trip import (ClusterNodePool, Command, round_trip, round_trip_async, round_trips,
                                round_trips_async)

# Package resources, so the scripts load from the code zip on Spark executors and Flink TaskManagers too.
GUARDED_WRITE = resources.files("serving").joinpath("guarded_write.lua").read_text()
RECORD_PROGRESS = resources.files("serving").joinpath("progress.lua").read_text()


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
    max_ahead_seconds: int | None = None  # set (streams): rows dated further ahead of Redis's clock are refused

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

    def history_key_in(self, slot: int | None) -> str:
        """The history stream that rows of entity keys in cluster `slot` append to (None: one Redis, one stream)."""
        return layout.slot_history_key(self.prefix, self.group, self.version, slot)

    def script_head(self, history: bool = False) -> list:
        """The arguments guarded_write.lua takes before the rows: event-time field, TTL, n, the n field
        names, whether landed rows are appended to the history stream, and the clock guard's limit (µs)."""
        ahead = -1 if self.max_ahead_seconds is None else self.max_ahead_seconds * 1_000_000
        return [self.event_time_field, self.ttl_seconds, len(self.features), *self.fields, int(history), ahead]


@dataclass(frozen=True)
class ScriptCall:
    """One guarded-write script call: its entity keys (in one cluster slot) and the whole EVALSHA, packed."""

    keys: pa.BinaryArray
    command: bytes

    @property
    def first_key(self) -> str:
        return self.keys[0].as_py().decode()


STORE_ERRORS = (redis.RedisError, RedisClusterException)  # what a store that fails to answer raises
# What a cluster write or read meets while the cluster changes (a node gone, a slot moved, a failover under
# way): the caller reloads the slot map and tries that node again.
CLUSTER_CHANGES = (redis.ConnectionError, redis.TimeoutError, ClusterDownError, MovedError, AskError, TryAgainError)
FAILOVER_SECONDS = 15.0  # how long a cluster write retries before the error is the caller's
RETRY_PAUSE_SECONDS = 0.25
REPLICA_WAIT_MS = 1000  # how long a cluster write waits for its replica (WAIT 1 <ms>)
UNLINK_BATCH = 1000  # keys deleted per UNLINK by delete_prefix

CLUSTER_SCHEME_SUFFIX = "+cluster"  # redis+cluster://host:port: the URL of any node of a Redis Cluster


def cluster_url(url: str) -> tuple[str, bool]:
    """`url` as redis-py takes it, and whether it names a Redis Cluster (`redis+cluster://`, `rediss+cluster://`).

    The online store's address is one string everywhere (profile, FP_REDIS_URL, job arguments), so whether
    it is a cluster travels with it, as `postgresql+psycopg://` carries a driver.
    """
    scheme, sep, rest = url.partition("://")
    if scheme.endswith(CLUSTER_SCHEME_SUFFIX):
        return f"{scheme.removesuffix(CLUSTER_SCHEME_SUFFIX)}{sep}{rest}", True
    return url, False


def connect(url: str, **options) -> redis.Redis | RedisCluster:
    """A client for the store at `url` (AUTH and TLS from the URL; a `+cluster` scheme gives a cluster client).

    A cluster client follows MOVED/ASK redirections and, when a node stops answering, reloads the slot map
    and retries, so a replica promoted by a failover takes over its master's writes.
    """
    plain, cluster = cluster_url(url)
    if cluster:
        return RedisCluster.from_url(plain, socket_keepalive=True, **options)
    return redis.Redis.from_url(plain, socket_keepalive=True, **options)


def connect_async(url: str, **options) -> aioredis.Redis | aioredis.RedisCluster:
    """The asyncio twin of `connect`, for the feature service."""
    plain, cluster = cluster_url(url)
    if cluster:
        return aioredis.RedisCluster.from_url(plain, socket_keepalive=True, **options)
    return aioredis.Redis.from_url(plain, socket_keepalive=True, **options)


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
        self.cluster = isinstance(client, RedisCluster)
        self._scripted_nodes: set[str] = set()  # cluster nodes known to hold the guarded-write script
        self.refused_ahead = 0  # rows the clock guard refused since this store was made (WritePlan.max_ahead_seconds)

    def _calls(self, plan: WritePlan, batch: pa.RecordBatch | pa.Table, history: bool) -> list[ScriptCall]:
        """Script calls of at most `chunk_rows` rows, each call's keys (history stream included) in one cluster
        slot, each packed whole by Arrow: the keys' and the rows' bulk strings are computed a column at a time,
        and a call's are contiguous slices of them."""
        ids = batch.column(plan.key_column)
        ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
        key_prefix = layout.entity_key(plan.prefix, plan.entity, "").encode()
        keys = pc.binary_join_element_wise(key_prefix, ids.cast(pa.string()).cast(pa.binary()), b"")
        key_bulk = resp.bulk_strings(keys)
        row_bulk = resp.concatenated([resp.bulk_strings(encode_array("timestamp", batch.column(EVENT_TIME_COLUMN))),
                                      *(resp.bulk_strings(encode_array(dtype, batch.column(name)))
                                        for name, dtype in plan.features)])
        head = plan.script_head(history)
        packed_head = b"".join(map(resp.bulk, head))
        command = resp.bulk("EVALSHA") + resp.bulk(self._script.sha)
        row_arguments = 1 + len(plan.features)  # its event time and values (its key goes among the KEYS)

        def calls_in(slot: int | None, keys: pa.Array, key_bulk: pa.Array, row_bulk: pa.Array):
            history_key = [resp.bulk(plan.history_key_in(slot))] if history else []
            for start in range(0, len(keys), self.chunk_rows):
                rows = min(self.chunk_rows, len(keys) - start)
                yield ScriptCall(keys.slice(start, rows), b"".join([
                    resp.header(3 + rows + len(history_key) + len(head) + rows * row_arguments), command,
                    resp.bulk(rows + len(history_key)), resp.contiguous(key_bulk.slice(start, rows)), *history_key,
                    packed_head, resp.contiguous(row_bulk.slice(start, rows))]))

        if not self.cluster:
            return list(calls_in(None, keys, key_bulk, row_bulk))
        by_slot: dict[int, list[int]] = {}
        for row, key in enumerate(keys.to_pylist()):
            by_slot.setdefault(key_slot(key), []).append(row)
        return [call for slot, rows in by_slot.items()
                for call in calls_in(slot, *(pc.take(a, pa.array(rows)) for a in (keys, key_bulk, row_bulk)))]

    def write(self, plan: WritePlan, batch: pa.RecordBatch | pa.Table, history: bool = False) -> int:
        """Write rows (entity key, features, `feature_ts`) in one pipelined round trip; returns rows that landed.

        A row lands only if its event time is at least the stored one for that entity and group version.
        With `history` (the stream injection), every landed row is also appended to the group version's
        history stream in the same script call (offline/streamed_history.py loads it into the offline table);
        on a cluster there is one such stream per slot, so the script's keys never cross slots.
        """
        if batch.num_rows == 0:
            return 0
        calls = self._calls(plan, batch, history)
        return self._run_on_cluster(calls) if self.cluster else self._run_on(calls)

    def _run_on(self, calls: list[ScriptCall]) -> int:
        """The script calls as one buffer to one server, then their replies: one round trip; returns the rows
        that landed. Calls the server answers NOSCRIPT (a restarted or flushed Redis) are sent again once the
        script is loaded."""
        replies = round_trip(self.client.connection_pool, [call.command for call in calls], len(calls),
                             tolerated=(NoScriptError,))
        landed = sum(self._counted(reply) for reply in replies if not isinstance(reply, NoScriptError))
        unscripted = [call for call, reply in zip(calls, replies) if isinstance(reply, NoScriptError)]
        if unscripted:
            self.client.script_load(GUARDED_WRITE)
            landed += self._run_on(unscripted)
        return landed

    def _counted(self, reply: list[int]) -> int:
        """A script call's rows that landed; the rows its clock guard refused add up in `refused_ahead`."""
        landed, refused = reply
        self.refused_ahead += refused
        return landed

    def _run_on_cluster(self, calls: list) -> int:
        """The script calls, each node's as one buffer, every buffer sent before any reply is read, so the nodes
        work at once (redis-py's cluster pipeline refuses scripts; reads follow the same strategy, read_commands).

        A node that fails or no longer owns a slot (a failover, a resharding) makes the client reload the slot
        map and send that node's calls again, for up to FAILOVER_SECONDS: a repeated call changes nothing,
        the event-time guard lands each row once. Rows that landed in both attempts are counted once.
        """
        landed, deadline = 0, time.monotonic() + FAILOVER_SECONDS
        while calls:
            try:
                by_node = _by_node(self.client, calls, lambda call: call.first_key)
            except CLUSTER_CHANGES + (SlotNotCoveredError,):
                by_node = {}  # a slot has no master yet: wait for the failover
            for name in [n for n in by_node if n not in self._scripted_nodes]:
                try:
                    _node_client(self.client, name).script_load(GUARDED_WRITE)
                    self._scripted_nodes.add(name)
                except CLUSTER_CHANGES:
                    pass  # the round trip below fails for that node and retries it
            batches = {name: [*(call.command for call in node_calls), *self._replicated(node_calls)]
                       for name, node_calls in by_node.items()}
            replies = round_trips({name: (_node_client(self.client, name).connection_pool, commands, len(commands))
                                   for name, commands in batches.items()}, CLUSTER_CHANGES + (NoScriptError,))
            failed = [] if by_node else calls
            for name, reply in replies.items():
                if isinstance(reply, BaseException):
                    if time.monotonic() > deadline:
                        raise reply
                    self._scripted_nodes.discard(name)  # a promoted replica may not have the script
                    failed += by_node[name]
                else:  # the WAIT reply after the calls' counts replicas
                    landed += sum(map(self._counted, reply[:len(by_node[name])]))
            if failed:
                if time.monotonic() > deadline:
                    raise ClusterDownError("no master serves some slots")
                time.sleep(RETRY_PAUSE_SECONDS)
                _reload_slots(self.client)
            calls = failed
        return landed

    def _replicated(self, node_calls: list) -> list[tuple]:
        """A WAIT for one replica after a node's writes, when its slots have a replica: Redis replicates
        asynchronously, and a master that dies before its replica has a write loses it in the failover.
        After WAIT the replica holds every acknowledged row (a replica that does not answer within
        REPLICA_WAIT_MS lets the write go on: the master alone has it)."""
        slot = key_slot(node_calls[0].first_key.encode())
        return [("WAIT", 1, REPLICA_WAIT_MS)] if len(self.client.nodes_manager.slots_cache.get(slot, ())) > 1 else []

    def record_progress(self, plan: WritePlan, rows: int, landed: int, max_event_micros: int, now_ms: int,
                        refused_ahead: int = 0) -> None:
        """Add a streamed batch to the group version's progress (rows, rows landed, rows the clock guard
        refused, last write, newest event time)."""
        key = layout.progress_key(plan.prefix, plan.group, plan.version)
        self._progress(keys=[key], args=[rows, landed, now_ms, max_event_micros, refused_ahead])

    def progress(self, plan: WritePlan) -> dict[str, int]:
        """The recorded progress of the group version's streaming injector (empty before its first write)."""
        raw = self.client.hgetall(layout.progress_key(plan.prefix, plan.group, plan.version))
        return {k.decode(): int(v) for k, v in raw.items()}

    def history_keys(self, plan: WritePlan) -> list[str]:
        """The group version's history streams that exist: one on a single Redis, one per written slot on a cluster."""
        if not self.cluster:
            return [plan.history_key] if self.client.exists(plan.history_key) else []
        pattern = layout.slot_history_keys_pattern(plan.prefix, plan.group, plan.version)
        return sorted(key.decode() for key in self.client.scan_iter(match=pattern, count=1000, _type="stream"))

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key that starts with `prefix` (every node's, on a cluster); returns how many went."""
        deleted, batch = 0, []
        for key in self.client.scan_iter(match=layout.glob_escaped(prefix) + "*", count=UNLINK_BATCH):
            batch.append(key)
            if len(batch) == UNLINK_BATCH:
                deleted += self.client.unlink(*batch)  # a cluster client splits it by slot
                batch = []
        return deleted + (self.client.unlink(*batch) if batch else 0)

    def read(self, entity_keys: Sequence[str], fields: Sequence[str]) -> list[list[bytes | None]]:
        """Raw values of `fields` for each key, one HMGET per key, as `read_commands` reads."""
        return read_commands(self.client, entity_keys, lambda keys: [("HMGET", key, *fields) for key in keys])


# The cluster wire, shared by the store's writes and the reads of both twins (sync, asyncio).

def _by_node(client: RedisCluster | aioredis.RedisCluster, items: Sequence, key_of) -> dict[str, list]:
    """`items` grouped by the name of the node that serves the slot of each one's key."""
    grouped: dict[str, list] = {}
    for item in items:
        grouped.setdefault(client.get_node_from_key(key_of(item)).name, []).append(item)
    return grouped


def _node_client(client: RedisCluster, name: str) -> redis.Redis:
    return client.get_redis_connection(client.get_node(node_name=name))


def _reload_slots(client: RedisCluster) -> None:
    try:
        client.nodes_manager.initialize()
    except CLUSTER_CHANGES + (RedisClusterException,):
        pass  # no node answers yet; the next attempt tries again


async def _reload_slots_async(client: aioredis.RedisCluster) -> None:
    try:
        await client.nodes_manager.initialize()
    except CLUSTER_CHANGES + (RedisClusterException,):
        pass  # no node answers yet; the next attempt tries again


ReadCommands = Callable[[Sequence[str]], Sequence[Command]]  # keys -> their commands, one reply per key


def _node_reads(by_node: dict[str, list[int]], keys: Sequence[str], commands_of: ReadCommands,
                pool_of) -> dict[str, tuple]:
    """Per node, the batch `round_trips` takes: the node's pool, its keys' commands, one reply per key."""
    return {name: (pool_of(name), commands_of([keys[i] for i in indices]), len(indices))
            for name, indices in by_node.items()}


def _in_key_order(by_node: dict[str, list[int]], replies: dict[str, list | BaseException], count: int,
                  retry_left: bool) -> list | None:
    """The nodes' replies back in key order; if a node failed, None while a retry is left, else its error."""
    errors = [reply for reply in replies.values() if isinstance(reply, BaseException)]
    if errors:
        if retry_left:
            return None
        raise errors[0]
    rows: list = [None] * count
    for name, indices in by_node.items():
        for index, row in zip(indices, replies[name]):
            rows[index] = row
    return rows


def read_commands(client: redis.Redis | RedisCluster, keys: Sequence[str],
                  commands_of: ReadCommands) -> list:
    """One reply per key, in order, to the commands `commands_of(keys)` gives: the online store's one read
    strategy, which `read_commands_async` (the feature service) follows too.

    On one Redis: every command in one buffer, one round trip. On a Redis Cluster: the keys grouped by the
    node that serves their slot, one buffer per node, every buffer sent before any reply is read so the
    nodes work at once; if a node fails or no longer owns a slot (a failover, a resharding), the slot map
    is reloaded and the whole read sent once more, and a second failure is the caller's.
    """
    if not isinstance(client, RedisCluster):
        return round_trip(client.connection_pool, commands_of(keys), len(keys))
    for attempt in range(2):
        by_node = _by_node(client, range(len(keys)), keys.__getitem__)
        replies = round_trips(_node_reads(by_node, keys, commands_of,
                                          lambda name: _node_client(client, name).connection_pool), CLUSTER_CHANGES)
        rows = _in_key_order(by_node, replies, len(keys), retry_left=attempt == 0)
        if rows is not None:
            return rows
        _reload_slots(client)


async def read_commands_async(client: aioredis.Redis | aioredis.RedisCluster, keys: Sequence[str],
                              commands_of: ReadCommands) -> list:
    """The asyncio twin of `read_commands`, for the feature service: the same strategy."""
    if not isinstance(client, aioredis.RedisCluster):
        return await round_trip_async(client.connection_pool, commands_of(keys), len(keys))
    await client.initialize()  # loads the slot map on first use, then does nothing
    for attempt in range(2):
        by_node = _by_node(client, range(len(keys)), keys.__getitem__)
        replies = await round_trips_async(_node_reads(by_node, keys, commands_of,
                                                      lambda name: ClusterNodePool(client.get_node(node_name=name))),
                                          CLUSTER_CHANGES)
        rows = _in_key_order(by_node, replies, len(keys), retry_left=attempt == 0)
        if rows is not None:
            return rows
        await _reload_slots_async(client)
