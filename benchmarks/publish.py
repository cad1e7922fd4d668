"""Benchmark of publishing features to Redis: throughput of the three write paths and memory of the publish step.

Why: the online store only ever writes through an event-time guard (serving/guarded_write.lua), so a
stale backfill can never overwrite a fresher streamed value. The guard has a price; this script shows it
is small and that batching is what pays for it. On one deterministic synthetic data set (N entities x
10 features of mixed dtypes plus `feature_ts`) it measures, against a private local redis-server:

  (a) OnlineStore.write           guarded, batched: one Lua call per 500 rows, one round trip per batch;
  (a') the same over existing keys of a group with a TTL (the daily publish: every key there already);
  (b) baselines.write_per_record   the same guard, one round trip per row (on a sample: it is slow);
  (c) plain pipelined HSET         no guard, same keys, fields and encoded values (serving.layout/codec),
                                   one pipeline per 500 rows;

as values/s (rows x 10 / seconds of write calls; data generation is not timed), the ratios a/b and a/c,
and the peak memory of the real publish step (batch.publish.publish_partition streaming a Hive table
partition from Spark's Python workers) at two partition sizes, which must be about the same: publish
streams partitions to Redis and never collects a table into the driver.

Each Spark run happens in its own fresh process (one Spark JVM at a time), under a temporary data
directory, so nothing touches the project's .data and no fixed port is used. Progress goes to stderr,
the one result table to stdout.

    .venv/bin/python benchmarks/publish.py [--rows N] [--memory-rows N,M] [--per-record-sample K] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import redis

from assets.dtypes import SPARK_TYPES
from assets.offline_layout import EVENT_TIME_COLUMN, PARTITION_COLUMN, ensure_feature_table, feature_table_columns
from assets.registry import Registry
from assets.specs import Entity, Feature, FeatureGroup
from batch.feature_job import partition_end
from batch.publish import publish_partition
from infra.redis_server import local_redis
from infra.settings import load_settings
from infra.spark import spark_config, spark_session
from serving import layout
from serving.codec import encode_column
from serving.online_store import OnlineStore, WritePlan

from baselines import write_per_record  # beside this file

SEED = 20260101
GENERATE_ROWS = 50_000  # rows generated at a time: memory holds one such chunk, never the data set
PARQUET_FILE_ROWS = 500_000  # staging files per partition, so Spark reads a partition with parallel tasks
FIRST_DS = date(2026, 1, 1)
ENTITY = Entity(name="user", key="user_id", dtype="int64", description="Synthetic benchmark entity.")
FEATURES = (
    ("clicks_7d", "int64"), ("views_30d", "int64"), ("rank", "int64"),
    ("ctr_7d", "float64"), ("score", "float64"), ("spend_30d", "float64"),
    ("country", "string"), ("segment", "string"),
    ("is_active", "bool"), ("last_seen_at", "timestamp"),
)
COUNTRIES = np.array(["us", "gb", "de", "fr", "in", "br", "jp", "ca", "au", "mx", "es", "it", "nl", "se", "pl"])
SEGMENTS = np.array([f"segment_{i:03d}" for i in range(200)])
MEMORY_TOLERANCE = 1.2  # "about the same": largest partition's peak within 20% of the smallest's

AB_TARGET = 7.0
AC_TARGET = 0.6


def log(message: str) -> None:
    """Progress line on stderr (stdout carries only the result table)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the data set -----------------------------------------------------------------------------------

def bench_registry(folder: Path) -> tuple[Registry, FeatureGroup]:
    """A one-entity, one-group registry for the synthetic features (no TTL: plain HSET sets none either)."""
    group = FeatureGroup(
        name="bench_publish", entity=ENTITY.name, owner="team:bench", version=1, ttl=None,
        description="Synthetic features for benchmarks/publish.py.", sources={"bench": {}},
        features=tuple(Feature(name=name, dtype=dtype, description=name) for name, dtype in FEATURES),
        folder=folder, batch_sql="SELECT 1",
    )
    registry = Registry(root=folder, entities={ENTITY.name: ENTITY}, sources={}, groups={group.name: group})
    return registry, group


def feature_ts(ds: str) -> datetime:
    """The event time every row of partition `ds` carries, as the batch feature job sets it."""
    return datetime.fromisoformat(partition_end(ds)).replace(tzinfo=timezone.utc)


def synthetic_batch(start: int, rows: int, event_time: datetime) -> pa.RecordBatch:
    """Rows `start .. start+rows-1` of the data set: the same values for the same rows on every run."""
    rng = np.random.default_rng([SEED, start])
    base_us = int(event_time.timestamp() * 1_000_000)
    seen_us = base_us - rng.integers(0, 30 * 86_400 * 1_000_000, rows)
    columns = {
        ENTITY.key: pa.array(np.arange(start, start + rows, dtype=np.int64)),
        "clicks_7d": pa.array(rng.integers(0, 500, rows)),
        "views_30d": pa.array(rng.integers(0, 100_000, rows)),
        "rank": pa.array(rng.integers(1, 10_000_000, rows)),
        "ctr_7d": pa.array(rng.random(rows)),
        "score": pa.array(rng.normal(0.0, 10.0, rows)),
        "spend_30d": pa.array(np.round(rng.exponential(50.0, rows), 2)),
        "country": pa.array(COUNTRIES[rng.integers(0, len(COUNTRIES), rows)]),
        "segment": pa.array(SEGMENTS[rng.integers(0, len(SEGMENTS), rows)]),
        "is_active": pa.array(rng.random(rows) < 0.3),
        "last_seen_at": pa.array(seen_us).cast(pa.timestamp("us", tz="UTC")),
        EVENT_TIME_COLUMN: pa.array(np.full(rows, base_us)).cast(pa.timestamp("us", tz="UTC")),
    }
    return pa.RecordBatch.from_pydict(columns)


def synthetic_batches(rows: int, batch_rows: int, event_time: datetime):
    """The data set as batches of `batch_rows`, generated GENERATE_ROWS at a time."""
    for start in range(0, rows, GENERATE_ROWS):
        chunk = synthetic_batch(start, min(GENERATE_ROWS, rows - start), event_time)
        for offset in range(0, chunk.num_rows, batch_rows):
            yield chunk.slice(offset, batch_rows)


# --- (a), (b), (c): writes into Redis ---------------------------------------------------------------

def write_unguarded(client: redis.Redis, plan: WritePlan, batch: pa.RecordBatch, chunk_rows: int) -> int:
    """Variant (c): one plain HSET per row (event time and all features), pipelined `chunk_rows` at a time.

    Keys, fields and values are encoded exactly as the guarded writer encodes them; there is no guard.
    """
    keys = [layout.entity_key(plan.prefix, plan.entity, i) for i in batch.column(plan.key_column).to_pylist()]
    times = encode_column("timestamp", batch.column(EVENT_TIME_COLUMN))
    columns = [encode_column(dtype, batch.column(name)) for name, dtype in plan.features]
    fields = [plan.event_time_field, *plan.fields]
    for start in range(0, len(keys), chunk_rows):
        pipe = client.pipeline(transaction=False)
        for row in range(start, min(start + chunk_rows, len(keys))):
            pipe.hset(keys[row], mapping=dict(zip(fields, (times[row], *(c[row] for c in columns)))))
        pipe.execute()
    return len(keys)


@dataclass(frozen=True)
class WriteRun:
    """One write variant's result: rows written, seconds in the write calls, seconds redis-server spent."""

    rows: int
    seconds: float
    server_seconds: float

    @property
    def values_per_second(self) -> float:
        return self.rows * len(FEATURES) / self.seconds


def _server_seconds(client: redis.Redis, command: str) -> float:
    """Seconds redis-server spent in `command` (scripts' inner calls included) since the last RESETSTAT."""
    stats = client.info("commandstats").get(f"cmdstat_{command}", {})
    return stats.get("usec", 0) / 1e6


def time_writes(client: redis.Redis, write, command: str, rows: int, batch_rows: int, ds: str) -> WriteRun:
    """Write the first `rows` rows into an emptied Redis with `write(batch) -> landed`; checks all landed."""
    client.flushall()
    client.config_resetstat()
    seconds = 0.0
    landed = 0
    for batch in synthetic_batches(rows, batch_rows, feature_ts(ds)):
        started = time.perf_counter()
        landed += write(batch)
        seconds += time.perf_counter() - started
    if landed != rows or client.dbsize() != rows:
        raise RuntimeError(f"{command}: {landed} rows landed, {client.dbsize()} keys in Redis, expected {rows}")
    return WriteRun(rows, seconds, _server_seconds(client, command))


REPUBLISH_TTL_SECONDS = 30 * 86_400


def time_republish(client: redis.Redis, store: OnlineStore, plan: WritePlan, rows: int, batch_rows: int,
                   ds: str) -> WriteRun:
    """The daily publish of a group with a TTL: the rows of `ds` written once (not timed), then the next
    day's values for the same keys timed, every one landing (its event time is newer)."""
    plan = WritePlan(**{**plan.__dict__, "ttl_seconds": REPUBLISH_TTL_SECONDS})
    client.flushall()
    for batch in synthetic_batches(rows, batch_rows, feature_ts(ds)):
        store.write(plan, batch)
    client.config_resetstat()
    seconds, landed = 0.0, 0
    for batch in synthetic_batches(rows, batch_rows, feature_ts(ds) + timedelta(days=1)):
        started = time.perf_counter()
        landed += store.write(plan, batch)
        seconds += time.perf_counter() - started
    if landed != rows or client.dbsize() != rows:
        raise RuntimeError(f"republish: {landed} rows landed, {client.dbsize()} keys in Redis, expected {rows}")
    return WriteRun(rows, seconds, _server_seconds(client, "evalsha"))


def measure_writers(url: str, plan: WritePlan, rows: int, sample: int, batch_rows: int,
                    chunk_rows: int, ds: str) -> dict[str, WriteRun]:
    """Runs of (a) guarded batched, (a') the same over existing keys with a TTL, (b) guarded per-record on
    the first `sample` rows, (c) unguarded HSET."""
    client = redis.Redis.from_url(url)
    store = OnlineStore(client, chunk_rows=chunk_rows)
    try:
        log(f"(a) guarded batched write of {rows:,} rows")
        guarded = time_writes(client, lambda b: store.write(plan, b), "evalsha", rows, batch_rows, ds)
        log(f"(a') guarded batched republish of {rows:,} rows over existing keys, with a TTL")
        republish = time_republish(client, store, plan, rows, batch_rows, ds)
        log(f"(b) guarded per-record write of the first {sample:,} rows")
        per_record = time_writes(client, lambda b: write_per_record(store, plan, b), "evalsha", sample, batch_rows, ds)
        log(f"(c) unguarded pipelined HSET of {rows:,} rows")
        plain = time_writes(client, lambda b: write_unguarded(client, plan, b, chunk_rows), "hset",
                            rows, batch_rows, ds)
        client.flushall()
    finally:
        client.close()
    return {"a": guarded, "a'": republish, "b": per_record, "c": plain}


# --- memory of the publish step (Spark) -------------------------------------------------------------

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def _processes() -> dict[int, tuple[int, str, int]]:
    """pid -> (parent pid, command name, resident bytes) of every process, read from /proc."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue  # exited meanwhile
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        table[int(entry.name)] = (int(fields[1]), name, int(fields[21]) * PAGE_BYTES)
    return table


class TreeRssSampler:
    """Samples, every `interval` seconds in a thread, the summed RSS of a process and all its descendants.

    Keeps the peak sum and its split at that moment into the root process (driver), Java (the Spark JVM)
    and everything else (Spark's Python daemon and workers).
    """

    def __init__(self, root: int, interval: float = 0.2):
        self.root = root
        self.interval = interval
        self.peak = {"total": 0, "driver": 0, "jvm": 0, "workers": 0, "worker_processes": 0}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        table = _processes()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        split = {"driver": 0, "jvm": 0, "workers": 0}
        worker_processes = 0
        stack = [self.root]
        while stack:
            pid = stack.pop()
            if pid not in table:
                continue
            _, name, rss = table[pid]
            part = "driver" if pid == self.root else "jvm" if name == "java" else "workers"
            split[part] += rss
            worker_processes += part == "workers"
            stack.extend(children.get(pid, ()))
        total = sum(split.values())
        self.samples += 1
        if total > self.peak["total"]:
            self.peak = {"total": total, **split, "worker_processes": worker_processes}

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeRssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def build_partitions(data_dir: Path, partitions: list[tuple[str, int]]) -> None:
    """Create the group's Hive table with one partition per (ds, rows), from Parquet staged in chunks.

    Runs in its own process (its own Spark JVM), so the publish runs that follow start from a fresh JVM.
    """
    registry, group = bench_registry(data_dir)
    spark = spark_session(load_settings(data_dir=data_dir))
    ensure_feature_table(spark, registry, group)
    columns = feature_table_columns(registry, group)
    select = ", ".join(f"CAST(`{name}` AS {SPARK_TYPES[dtype]}) AS `{name}`" for name, dtype in columns)
    for ds, rows in partitions:
        staging = data_dir / "staging" / ds
        staging.mkdir(parents=True)
        writer = None
        for index, batch in enumerate(synthetic_batches(rows, GENERATE_ROWS, feature_ts(ds))):
            if index % (PARQUET_FILE_ROWS // GENERATE_ROWS) == 0:
                if writer:
                    writer.close()
                writer = pq.ParquetWriter(staging / f"part-{index:05d}.parquet", batch.schema, coerce_timestamps="us")
            writer.write_batch(batch)
        writer.close()
        log(f"  staged {rows:,} rows for partition {ds}; loading it into {group.table}")
        spark.read.parquet(str(staging)).createOrReplaceTempView("staged")
        spark.sql(f"INSERT OVERWRITE TABLE {group.table} PARTITION ({PARTITION_COLUMN}='{ds}') "
                  f"SELECT {select} FROM staged")
        spark.catalog.dropTempView("staged")
        shutil.rmtree(staging)
    spark.stop()


@dataclass(frozen=True)
class PublishRun:
    """One publish_partition run: rows published, seconds, and the peak RSS (bytes) of its process tree."""

    rows: int
    seconds: float
    peak: dict[str, int]
    samples: int

    @property
    def values_per_second(self) -> float:
        return self.rows * len(FEATURES) / self.seconds


def publish_once(data_dir: Path, ds: str, redis_url: str) -> PublishRun:
    """Publish partition `ds` with batch.publish.publish_partition, sampling this process tree's RSS meanwhile.

    Runs in its own fresh process: the tree sampled is this driver, its Spark JVM and Spark's Python workers.
    """
    registry, group = bench_registry(data_dir)
    settings = load_settings(data_dir=data_dir)
    spark = spark_session(settings)
    with TreeRssSampler(os.getpid()) as sampler:
        started = time.perf_counter()
        result = publish_partition(spark, registry, group, ds, redis_url, settings.redis_prefix,
                                   chunk_rows=settings.redis_batch_rows)
        seconds = time.perf_counter() - started
    spark.stop()
    return PublishRun(result.applied, seconds, sampler.peak, sampler.samples)


def in_fresh_process(function, *args):
    """`function(*args)` in a new spawned Python process, which exits afterwards (so does its Spark JVM)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def measure_publish(url: str, sizes: list[int]) -> list[PublishRun]:
    """Peak RSS of publishing a table partition of each size, each from a fresh Spark process."""
    data_dir = Path(tempfile.mkdtemp(prefix="fp-bench-"))
    partitions = [((FIRST_DS + timedelta(days=i)).isoformat(), rows) for i, rows in enumerate(sizes)]
    client = redis.Redis.from_url(url)
    try:
        log(f"building table partitions {', '.join(f'{ds} ({rows:,} rows)' for ds, rows in partitions)} "
            f"under {data_dir}")
        in_fresh_process(build_partitions, data_dir, partitions)
        runs = []
        for ds, rows in partitions:
            client.flushall()
            log(f"publishing partition {ds} ({rows:,} rows) from a fresh Spark process")
            run = in_fresh_process(publish_once, data_dir, ds, url)
            if run.rows != rows or client.dbsize() != rows:
                raise RuntimeError(f"publish of {ds}: {run.rows} rows landed, {client.dbsize()} keys, expected {rows}")
            log(f"  {run.seconds:.1f} s, peak RSS {run.peak['total'] / 2**20:,.0f} MiB")
            runs.append(run)
        client.flushall()
    finally:
        client.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    return runs


# --- the table --------------------------------------------------------------------------------------

def _mib(value: int) -> str:
    return f"{value / 2**20:,.0f} MiB"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def render(rows: int, writes: dict[str, WriteRun], publishes: list[PublishRun], sizes: list[int],
           chunk_rows: int, batch_rows: int, redis_version: str) -> str:
    """The result table, with notes saying exactly what each number is."""
    a, r, b, c = writes["a"], writes["a'"], writes["b"], writes["c"]
    table = [("measure", "rows", "seconds", "redis s", "values/s", "peak RSS", "target", "result")]
    table += [
        ("(a) guarded batched write (Lua)", f"{a.rows:,}", f"{a.seconds:.2f}", f"{a.server_seconds:.2f}",
         f"{a.values_per_second:,.0f}", "", "", ""),
        ("(a') the same, republished over existing keys, 30d TTL", f"{r.rows:,}", f"{r.seconds:.2f}",
         f"{r.server_seconds:.2f}", f"{r.values_per_second:,.0f}", "", "", ""),
        (f"(b) guarded per-record write, sample: first {b.rows:,} rows", f"{b.rows:,}", f"{b.seconds:.2f}",
         f"{b.server_seconds:.2f}", f"{b.values_per_second:,.0f}", "", "", ""),
        ("(c) unguarded pipelined HSET", f"{c.rows:,}", f"{c.seconds:.2f}", f"{c.server_seconds:.2f}",
         f"{c.values_per_second:,.0f}", "", "", ""),
    ]
    ab = a.values_per_second / b.values_per_second
    ac = a.values_per_second / c.values_per_second
    table += [
        ("ratio a/b", "", "", "", f"{ab:.1f}", "", f">= {AB_TARGET:g}", _verdict(ab >= AB_TARGET)),
        ("ratio a/c", "", "", "", f"{ac:.2f}", "", f">= {AC_TARGET:g}", _verdict(ac >= AC_TARGET)),
    ]
    for size, run in zip(sizes, publishes):
        table.append((f"publish_partition via Spark, {size:,}-row partition", f"{run.rows:,}", f"{run.seconds:.2f}",
                      "", f"{run.values_per_second:,.0f}", _mib(run.peak["total"]), "", ""))
    if len(publishes) > 1:
        growth = publishes[-1].peak["total"] / publishes[0].peak["total"]
        table.append((f"peak RSS {sizes[-1]:,} / {sizes[0]:,} rows", "", "", "", "", f"{growth:.2f}x",
                      f"<= {MEMORY_TOLERANCE:g}x", _verdict(growth <= MEMORY_TOLERANCE)))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in table]
    lines.insert(1, "-" * len(lines[0]))
    title = (f"Publish benchmark: {rows:,} entities x {len(FEATURES)} features "
             f"(int64, float64, string, bool, timestamp) + feature_ts, redis-server {redis_version} on loopback")
    splits = [f"  {size:,} rows: driver {_mib(r.peak['driver'])}, JVM {_mib(r.peak['jvm'])}, Python daemon + "
              f"workers {_mib(r.peak['workers'])} ({r.peak['worker_processes']} processes); {r.samples} samples"
              for size, r in zip(sizes, publishes)]
    notes = [
        f"values/s = rows x {len(FEATURES)} / seconds spent in the write calls (key/value encoding, network and",
        "  Redis included; generating the synthetic rows excluded). Redis is flushed before each variant, so",
        "  every key is new; no nulls, no TTL (the group has none; plain HSET sets none).",
        f"(a) OnlineStore.write, batches of {batch_rows:,} rows (Spark's arrow maxRecordsPerBatch), one EVALSHA of",
        f"  serving/guarded_write.lua per {chunk_rows} rows, one pipelined round trip per batch.",
        "(a') the daily publish of a group with a TTL: the same keys written the day before (not timed), then",
        "  the next day's values timed (each key exists, each lands; HGET, HSET and EXPIRE GT per key).",
        "(b) baselines.write_per_record: the same script, one round trip per row; measured on a sample",
        "  (the first rows of the same data set), since it is slow.",
        f"(c) one HSET per row (feature_ts + {len(FEATURES)} fields) with redis-py, values encoded by serving.codec,",
        f"  one non-transactional pipeline per {chunk_rows} rows.",
        "redis s = redis-server's own time in EVALSHA (a, b) or HSET (c), from INFO commandstats.",
        "peak RSS = largest sum of resident set sizes (rss field of /proc/<pid>/stat) over the publishing process",
        "  tree, sampled every 0.2 s during batch.publish.publish_partition only: the driver Python process,",
        "  its Spark JVM (local[2], spark.driver.memory 2g) and Spark's Python daemon and workers (which run",
        "  the Redis writes); Redis itself is not counted. Each size runs in a fresh process with a fresh JVM.",
        "  Forked workers share pages with their daemon, so the sum over-counts slightly. At the peak:",
        *splits,
    ]
    return "\n".join([title, "", *lines, "", *notes])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; `--quick` picks small sizes for a smoke run unless sizes are given."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, help="entities in the write-throughput data set (default 1,000,000)")
    parser.add_argument("--memory-rows", help="comma-separated partition sizes for the publish memory runs "
                                              "(default 1000000,5000000)")
    parser.add_argument("--per-record-sample", type=int, default=20_000,
                        help="rows written per record for (b) (default 20,000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 50k rows, memory runs at 50k and 200k")
    args = parser.parse_args(argv)
    args.rows = args.rows or (50_000 if args.quick else 1_000_000)
    args.memory_rows = [int(n) for n in (args.memory_rows or ("50000,200000" if args.quick else "1000000,5000000"))
                        .replace("_", "").split(",")]
    args.per_record_sample = min(args.per_record_sample, args.rows)
    return args


def main(argv: list[str] | None = None) -> None:
    """Run every measurement against one private redis-server and print the table."""
    args = parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fp-bench-") as tmp:
        settings = load_settings(data_dir=Path(tmp))
        batch_rows = int(spark_config(settings)["spark.sql.execution.arrow.maxRecordsPerBatch"])
        registry, group = bench_registry(Path(tmp))
        plan = WritePlan.for_group(group, registry.entity_of(group), settings.redis_prefix)
        ds = FIRST_DS.isoformat()
        with local_redis() as url:
            client = redis.Redis.from_url(url)
            redis_version = client.info("server")["redis_version"]
            client.close()
            writes = measure_writers(url, plan, args.rows, args.per_record_sample, batch_rows,
                                     settings.redis_batch_rows, ds)
            publishes = measure_publish(url, args.memory_rows)
    print(render(args.rows, writes, publishes, args.memory_rows, settings.redis_batch_rows, batch_rows,
                 redis_version))
    log(f"total wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
