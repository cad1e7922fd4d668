"""The offline history of streamed values: what the stream landed in Redis, kept for training sets.

The stream injection appends every row it lands to the group version's Redis stream (on a Redis Cluster,
the stream of the entity key's slot: serving/online_store.py), in the same script call that lands it (serving/guarded_write.lua), so the history is exactly the sequence of values Redis
held, never a value the event-time guard refused. `load_streamed_history` moves the entries into the
Hive table `features.<group>_v<n>_streamed` (which training sets union with the batch table:
offline/offline_history.py), partitioned by the day of each value's event time, then trims what it
loaded from the Redis stream. Loading is idempotent: a row is identified by its entity and event time, so
entries still in the stream after a crash between the two steps, or a replayed row that landed again at
the same instant, are kept once (the last one landed).
"""

from __future__ import annotations

from datetime import timezone

import pandas as pd
import pyarrow as pa
import redis

from assets.dtypes import arrow_type
from assets.offline_layout import (EVENT_TIME_COLUMN, PARTITION_COLUMN, ensure_table, feature_table_columns,
                                   streamed_table)
from assets.registry import Registry
from assets.specs import FeatureGroup
from serving import layout
from serving.codec import NULL, decode_value, micros_to_datetime
from serving.online_store import OnlineStore, WritePlan, connect

READ_ENTRIES = 50_000  # history entries read from Redis per round trip


def _entries(client: redis.Redis, key: str) -> tuple[list, bytes | None]:
    """Every entry of the history stream now, oldest first, and the id of the last one."""
    entries, start = [], b"-"
    while True:
        chunk = client.xrange(key, min=start, max=b"+", count=READ_ENTRIES)
        entries += chunk
        if len(chunk) < READ_ENTRIES:
            return entries, (entries[-1][0] if entries else None)
        start = b"(" + chunk[-1][0]


def _frame(registry: Registry, group: FeatureGroup, prefix: str, entries: list) -> pd.DataFrame:
    """The entries as rows of the streamed table: entity key, features, event time, `ds`; one row per
    (entity, event time), the last landed."""
    entity = registry.entity_of(group)
    key_prefix = layout.entity_key(prefix, entity.name, "").encode()
    fields = {f.name: layout.feature_field(group.name, group.version, f.name).encode() for f in group.features}
    rows = []
    for _id, entry in entries:
        raw_id = entry[b"key"].removeprefix(key_prefix).decode()
        values = {name: None if entry[field] == NULL else decode_value(feature.dtype, entry[field])
                  for (name, field), feature in zip(fields.items(), group.features)}
        rows.append({entity.key: int(raw_id) if entity.dtype == "int64" else raw_id, **values,
                     EVENT_TIME_COLUMN: micros_to_datetime(int(entry[b"ts"]))})
    columns = feature_table_columns(registry, group)
    schema = pa.schema([(name, arrow_type(dtype)) for name, dtype in columns])
    frame = pa.Table.from_pylist(rows, schema=schema).to_pandas(timestamp_as_object=False)
    frame = frame.drop_duplicates([entity.key, EVENT_TIME_COLUMN], keep="last")
    frame[PARTITION_COLUMN] = frame[EVENT_TIME_COLUMN].dt.tz_convert(timezone.utc).dt.strftime("%Y-%m-%d")
    return frame


def load_streamed_history(spark, registry: Registry, group: FeatureGroup, redis_url: str, prefix: str) -> int:
    """Append what the group's stream landed since the last load to its streamed table; returns the rows."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    store = OnlineStore(connect(redis_url))
    client = store.client
    try:
        plan = WritePlan.for_group(group, registry.entity_of(group), prefix)
        read = {key: _entries(client, key) for key in store.history_keys(plan)}
        entries = [entry for key_entries, _last in read.values() for entry in key_entries]
        if not entries:
            return 0
        new = _frame(registry, group, prefix, entries)
        table, columns = streamed_table(group), feature_table_columns(registry, group)
        ensure_table(spark, table, columns)
        names = [name for name, _ in columns]
        days = sorted(set(new[PARTITION_COLUMN]))
        kept = spark.table(table).where(_one_of(PARTITION_COLUMN, days)).select(*names, PARTITION_COLUMN)
        incoming = spark.createDataFrame(new[[*names, PARTITION_COLUMN]], schema=kept.schema)
        newest_first = Window.partitionBy(names[0], EVENT_TIME_COLUMN).orderBy(F.col("_loaded").desc())
        merged = (kept.withColumn("_loaded", F.lit(0)).unionByName(incoming.withColumn("_loaded", F.lit(1)))
                  .withColumn("_rank", F.row_number().over(newest_first)).where("_rank = 1")
                  .localCheckpoint())  # read before the partitions are overwritten
        merged.createOrReplaceTempView("streamed_history_load")
        spark.sql(f"INSERT OVERWRITE TABLE {table} PARTITION ({PARTITION_COLUMN}) "
                  f"SELECT {', '.join(f'`{n}`' for n in names)}, {PARTITION_COLUMN} FROM streamed_history_load")
        spark.catalog.dropTempView("streamed_history_load")
        for key, (_entries_read, last) in read.items():
            if last is not None:
                trim_through(client, key, last)
        return len(new)
    finally:
        client.close()


def _one_of(column: str, values: list[str]) -> str:
    """A SQL predicate: `column` is one of the string `values`."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def trim_through(client: redis.Redis, key: str, last: bytes) -> None:
    """Delete the history entries up to and including id `last` (the ones just loaded), keep later ones.

    The trim is exact: an approximate one (redis-py's default) removes whole nodes only and at most
    10,000 entries a call, so after a large bootstrap it left loaded entries to be loaded again.
    """
    millis, sequence = last.decode().split("-")
    client.xtrim(key, minid=f"{millis}-{int(sequence) + 1}", approximate=False)


def load_histories(spark, registry: Registry, settings, groups) -> dict[str, int]:
    """Move what the streams of `groups` landed in Redis since the last load into their streamed tables
    (rows per group; groups without a stream are skipped), so training sets see every value served.
    Redis is the configured one, or the platform's own server under the data directory."""
    from infra.redis_server import redis_url_for

    streamed = [g for g in groups if g.stream]
    if not streamed:
        return {}
    with redis_url_for(settings) as url:
        return {g.name: load_streamed_history(spark, registry, g, url, settings.redis_prefix) for g in streamed}
