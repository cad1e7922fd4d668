"""Round trips on pooled Redis connections: commands out as one buffer per connection, replies read in order.

A pipelined call leaves its replies on the connection until it reads them; a call that stops early (an
error, a cancelled request) and gives the connection back as it is hands those replies to the next caller,
who reads them as its own. So every pipelined read and write of the online store goes through here: a
connection that fails on the way is dropped, and it always goes back to its pool. `round_trips` is the form
for a Redis Cluster, one connection per node, every buffer sent before any reply is read so the nodes work
at once. The asyncio twins (the feature service) sit beside the sync ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager

# A command is an argument tuple, or bytes already packed in RESP (they may hold several commands).
Command = tuple | bytes


def _packed(connection, commands: Sequence[Command]) -> list[bytes]:
    return [part for command in commands for part in (
        [command] if isinstance(command, bytes) else connection.pack_command(*command))]


@contextmanager
def pooled(pool):
    """A connection of `pool` for one round trip: dropped on any error (its unread replies must never reach
    the next caller), always given back."""
    connection = pool.get_connection()
    try:
        yield connection
    except BaseException:
        connection.disconnect()
        raise
    finally:
        pool.release(connection)


def _replies(connection, count: int, tolerated: tuple) -> list:
    """`count` replies in order; an error reply of a `tolerated` type takes its reply's place (the replies
    after it stay in step), any other error is raised."""
    replies = []
    for _ in range(count):
        try:
            replies.append(connection.read_response())
        except tolerated as error:
            replies.append(error)
    return replies


def round_trip(pool, commands: Sequence[Command], count: int, tolerated: tuple = ()) -> list:
    """`commands` as one buffer on a connection of `pool`, then their `count` replies, in order (error replies
    of a `tolerated` type in their places)."""
    with pooled(pool) as connection:
        connection.send_packed_command(_packed(connection, commands))
        return _replies(connection, count, tolerated)


def round_trips(batches: dict[str, tuple[object, Sequence[Command], int]],
                recorded: tuple) -> dict[str, list | BaseException]:
    """Per name (a cluster node) its (pool, commands, reply count): each batch as one buffer on a connection of
    its pool, every buffer sent before any reply is read; per name its replies, or the error of a `recorded`
    type that stopped them (that connection is dropped). Any other error is raised, every connection dropped."""
    results: dict[str, list | BaseException] = {}
    with ExitStack() as held:
        sent = []
        for name, (pool, commands, count) in batches.items():
            connection = None
            try:
                connection = held.enter_context(pooled(pool))
                connection.send_packed_command(_packed(connection, commands))
                sent.append((name, connection, count))
            except recorded as error:
                results[name] = _dropped(connection, error)
        for name, connection, count in sent:
            try:
                results[name] = _replies(connection, count, ())
            except recorded as error:
                results[name] = _dropped(connection, error)
    return results


def _dropped(connection, error: BaseException) -> BaseException:
    """`error`, once the connection it stopped (if it got one) is dropped: its unread replies go with it."""
    if connection is not None:
        connection.disconnect()
    return error


@asynccontextmanager
async def pooled_async(pool):
    """The asyncio twin of `pooled` (a cancelled request drops its connection too)."""
    connection = await pool.get_connection()
    try:
        yield connection
    except BaseException:
        await connection.disconnect()
        raise
    finally:
        await pool.release(connection)


async def round_trip_async(pool, commands: Sequence[Command], count: int) -> list:
    """The asyncio twin of `round_trip`."""
    async with pooled_async(pool) as connection:
        await connection.send_packed_command(_packed(connection, commands))
        return [await connection.read_response() for _ in range(count)]


async def round_trips_async(batches: dict[str, tuple[object, Sequence[Command], int]],
                            recorded: tuple) -> dict[str, list | BaseException]:
    """The asyncio twin of `round_trips`."""
    results: dict[str, list | BaseException] = {}
    async with AsyncExitStack() as held:
        sent = []
        for name, (pool, commands, count) in batches.items():
            connection = None
            try:
                connection = await held.enter_async_context(pooled_async(pool))
                await connection.send_packed_command(_packed(connection, commands))
                sent.append((name, connection, count))
            except recorded as error:
                results[name] = await _dropped_async(connection, error)
        for name, connection, count in sent:
            try:
                results[name] = [await connection.read_response() for _ in range(count)]
            except recorded as error:
                results[name] = await _dropped_async(connection, error)
    return results


async def _dropped_async(connection, error: BaseException) -> BaseException:
    """The asyncio twin of `_dropped`."""
    if connection is not None:
        await connection.disconnect()
    return error


class ClusterNodePool:
    """A redis.asyncio cluster node's connections with a pool's interface, for `round_trips_async`.

    redis.asyncio's ClusterNode lends connections (`acquire_connection`) but takes them back only through
    its private free list (redis 5.3); this is the one place that touches it. Like a pool's, a connection
    is connected when it is handed out, and given back if it cannot connect."""

    def __init__(self, node):
        self.node = node

    async def get_connection(self):
        connection = self.node.acquire_connection()
        try:
            await connection.connect()
        except BaseException:
            await self.release(connection)
            raise
        return connection

    async def release(self, connection) -> None:
        self.node._free.append(connection)
