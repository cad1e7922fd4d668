"""Benchmark of scaling out by configuration: one Redis vs a Redis Cluster, local Spark vs a standalone cluster.

Why: the cluster profile must cost little where it cannot help (one machine) and help where it can. On
this machine, in one run, it measures:

  online store  the guarded batched publish (values/s) and GetFeatures p50/p99 for 1 and 100 ids, on a
                private single redis-server and on a private Redis Cluster of 3 masters + 3 replicas
                (infra/redis_cluster.py), same rows (benchmarks/publish.py's synthetic 10-feature set);
                every value read back is checked equal on both before a figure is printed;
  feature job   one demo-size partition of `user_upvotes` (batch.feature_job.materialize_partition over
                the sample event log) on `local[2]`, and on a Spark standalone cluster (featctl cluster's
                launcher) using 1 core and 2 cores of two one-core workers; each run in a fresh Spark
                process; the row counts must agree.

Both stores and the Spark cluster bind free loopback ports and are stopped at the end. Progress goes to
stderr, the result tables to stdout.

    .venv/bin/python benchmarks/scale.py [--rows N] [--reads N] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from assets.registry import load_registry
from publish import FEATURES, bench_registry, feature_ts, in_fresh_process, log, synthetic_batches  # beside this file
from infra.local_cluster import down, up
from infra.redis_cluster import local_redis_cluster
from infra.redis_server import local_redis
from infra.settings import load_settings
from serving.get_features import build_read_plan, get_features
from serving.online_store import OnlineStore, WritePlan, connect

DS = "2026-01-09"
BATCH_ROWS = 5_000


def _percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(np.array(samples) * 1e6, q))


def measure_store(url: str, rows: int, reads: int) -> dict:
    """Publish `rows` synthetic rows through the guarded writer, then time GetFeatures of 1 and 100 ids."""
    registry, group = bench_registry(Path(tempfile.gettempdir()))
    plan = WritePlan.for_group(group, registry.entity_of(group), "fp")
    store = OnlineStore(connect(url), chunk_rows=500)
    store.client.flushall()
    started, landed = time.perf_counter(), 0
    for batch in synthetic_batches(rows, BATCH_ROWS, feature_ts(DS)):
        landed += store.write(plan, batch)
    seconds = time.perf_counter() - started
    if landed != rows:
        raise RuntimeError(f"{url}: {landed} of {rows} rows landed")
    read_plan = build_read_plan(registry, "fp", "user", [group.name])
    rng = np.random.default_rng(7)
    result = {"values_per_second": rows * len(FEATURES) / seconds, "publish_seconds": seconds}
    for width in (1, 100):
        id_lists = [rng.integers(0, rows, width).tolist() for _ in range(reads)]
        for ids in id_lists[:50]:  # warm-up: connections, plans
            get_features(store, read_plan, ids)
        samples = []
        for ids in id_lists:
            t0 = time.perf_counter()
            get_features(store, read_plan, ids)
            samples.append(time.perf_counter() - t0)
        result[f"p50_{width}"], result[f"p99_{width}"] = _percentile(samples, 50), _percentile(samples, 99)
    result["check"] = get_features(store, read_plan, list(range(0, rows, max(1, rows // 2_000))))
    store.client.close()
    return result


def generate_event_log(data_dir: Path) -> None:
    """The demo-size sample event log for DS and the week before it (user_upvotes' lookback)."""
    from orchestration.cli import generate_events

    settings = load_settings(data_dir=data_dir)
    last = date.fromisoformat(DS)
    with contextlib.redirect_stdout(sys.stderr):  # its progress bar: stdout carries only the tables
        generate_events(settings, load_registry(settings.registry_dir), last - timedelta(days=8), last, "demo")


def feature_job(data_dir: Path, master: str, cores: int | None) -> tuple[float, int]:
    """Seconds and rows of one materialize_partition of user_upvotes for DS on `master` (a fresh session)."""
    from batch.feature_job import materialize_partition
    from infra.spark import spark_session

    conf = {} if cores is None else {"spark.cores.max": str(cores), "spark.executor.cores": "1",
                                     "spark.executor.memory": "1g", "spark.driver.host": "127.0.0.1",
                                     "spark.driver.bindAddress": "127.0.0.1"}
    settings = load_settings(data_dir=data_dir, spark_master=master, spark_conf=conf)
    spark = spark_session(settings)
    registry = load_registry(settings.registry_dir)
    materialize_partition(spark, registry, registry.groups["user_upvotes"], "2026-01-08")  # warm-up: JIT, executors
    started = time.perf_counter()
    rows = materialize_partition(spark, registry, registry.groups["user_upvotes"], DS)
    seconds = time.perf_counter() - started
    spark.stop()
    return seconds, rows


def measure_spark(work: Path) -> dict[str, tuple[float, int]]:
    """The feature job on local[2] and on a standalone cluster with 1 and 2 cores (two one-core workers)."""
    data_dir = work / "data"
    log("generating the demo-size event log (9 days)")
    in_fresh_process(generate_event_log, data_dir)
    runs = {}
    log("feature job on local[2]")
    runs["local[2]"] = in_fresh_process(feature_job, data_dir, "local[2]", None)
    log("starting a Spark standalone master and two one-core workers")
    state = up(work / "cluster", spark_workers=2, engines=("spark",))
    try:
        for cores in (1, 2):
            log(f"feature job on the standalone cluster, {cores} core(s)")
            runs[f"standalone, {cores} worker{'s' if cores > 1 else ''}"] = in_fresh_process(
                feature_job, data_dir, state.urls["spark_master"], cores)
    finally:
        down(work / "cluster")
    counts = {rows for _seconds, rows in runs.values()}
    if len(counts) != 1:
        raise RuntimeError(f"the feature job's row counts differ between masters: {runs}")
    return runs


def render(stores: dict[str, dict], spark_runs: dict[str, tuple[float, int]], rows: int, reads: int) -> str:
    single, cluster = stores["single"], stores["cluster"]
    lines = [f"## Online store: one Redis vs Redis Cluster (3 masters + 3 replicas), {rows:,} rows x "
             f"{len(FEATURES)} features, {reads:,} timed reads per GetFeatures row", "",
             "| measurement | single Redis | Redis Cluster | cluster / single |", "|---|---:|---:|---:|",
             f"| guarded batched publish, values/s | {single['values_per_second']:,.0f} | "
             f"{cluster['values_per_second']:,.0f} | {cluster['values_per_second'] / single['values_per_second']:.2f}x |"]
    for width in (1, 100):
        for q in (50, 99):
            key = f"p{q}_{width}"
            lines.append(f"| GetFeatures {width} id{'s' if width > 1 else ''}, p{q} (us) | {single[key]:,.0f} | "
                         f"{cluster[key]:,.0f} | {cluster[key] / single[key]:.2f}x |")
    if not spark_runs:
        return "\n".join(lines)
    base = spark_runs["local[2]"][0]
    lines += ["", f"## Feature job: user_upvotes, one demo-size partition ({next(iter(spark_runs.values()))[1]:,} rows)",
              "", "| Spark master | seconds | vs local[2] |", "|---|---:|---:|"]
    lines += [f"| {name} | {seconds:.1f} | {seconds / base:.2f}x |" for name, (seconds, _rows) in spark_runs.items()]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows published into each store")
    parser.add_argument("--reads", type=int, default=2_000, help="timed GetFeatures calls per width")
    parser.add_argument("--quick", action="store_true", help="20k rows, 300 reads, no Spark runs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows, reads = (20_000, 300) if args.quick else (args.rows, args.reads)
    stores = {}
    with local_redis() as single_url, local_redis_cluster() as cluster:
        for name, url in (("single", single_url), ("cluster", cluster.url)):
            log(f"online store on {name} Redis: publishing {rows:,} rows, then {reads:,} reads per width")
            stores[name] = measure_store(url, rows, reads)
    if stores["single"].pop("check") != stores["cluster"].pop("check"):
        raise RuntimeError("the two stores returned different values for the same rows")
    work = Path(tempfile.mkdtemp(prefix="fp-bench-scale-"))
    try:
        spark_runs = {} if args.quick else measure_spark(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(render(stores, spark_runs, rows, reads), flush=True)


if __name__ == "__main__":
    main()
