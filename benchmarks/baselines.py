"""Baselines the benchmarks measure the platform's writers against: ways the platform itself does not write.

They live beside the benchmarks, not in serving/, so the production code holds nothing that exists only to
be measured against. Each one keeps the platform's guarantees (the same event-time guard), so a benchmark
compares costs, not correctness.
"""

from __future__ import annotations

from functools import cache

import pyarrow as pa
import redis
from redis.commands.core import Script

from assets.offline_layout import EVENT_TIME_COLUMN
from serving import layout
from serving.codec import encode_column
from serving.online_store import GUARDED_WRITE, OnlineStore, WritePlan


@cache
def _guarded_write(client: redis.Redis) -> Script:
    """The guarded-write script registered on `client`, once (registering hashes the script: 5 µs a row)."""
    return client.register_script(GUARDED_WRITE)


def write_per_record(store: OnlineStore, plan: WritePlan, batch: pa.RecordBatch | pa.Table) -> int:
    """The store's guarded write, one round trip per row: the baseline its batched `write` is measured
    against. Returns the rows that landed; rows the clock guard refused add up in `store.refused_ahead`,
    as with the store's own writes."""
    keys = [layout.entity_key(plan.prefix, plan.entity, i) for i in batch.column(plan.key_column).to_pylist()]
    times = encode_column("timestamp", batch.column(EVENT_TIME_COLUMN))
    columns = [encode_column(dtype, batch.column(name)) for name, dtype in plan.features]
    script = _guarded_write(store.client)
    landed = 0
    for row, key in enumerate(keys):
        row_landed, refused = script(keys=[key], args=[*plan.script_head(), times[row], *(c[row] for c in columns)])
        store.refused_ahead += refused
        landed += row_landed
    return landed
