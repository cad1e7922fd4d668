"""Benchmark of the quality gate: check time per partition at about 1M rows, beside its materialization time.

Why: every partition passes through the blocking checks before Redis sees it; the target is that the
checks add at most 20% to the partition's materialization. Measured on the sample domain, sized so a
day of upvotes is 1M events and the 7-day `user_upvotes` partition has about 1M users:

  raw/upvote_events      one day, 1M rows; baseline = writing it into the event log
                         (eventlog.hive.write_raw_partitions); check = quality.gate.check_source_partition
  features/user_upvotes  ~1M rows from 7M events; baseline = batch.feature_job.materialize_partition;
                         check = quality.gate.check_feature_partition (row count against the day before)
  online/user_upvotes    the ~1M rows published to a private redis-server (batch.publish); no check

Checks run with the value expectations on pandas (the gate's choice up to PANDAS_MAX_ROWS rows) and
forced onto GE's Spark engine. Every figure is the median of --repeats warm runs (a first untimed run
loads GE and warms the JVM), because a shared 2-core machine is noisy. One Spark session in this
process, under a temporary data directory. Progress goes to stderr, the table to stdout.

    .venv/bin/python benchmarks/quality_gate.py [--events-per-day N] [--users N] [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from assets.registry import load_registry
from batch.feature_job import materialize_partition
from batch.publish import publish_partition
from eventlog.generator import DomainSize, RedditSample
from eventlog.hive import write_raw_partitions
from infra.redis_server import local_redis
from infra.settings import load_settings
from infra.spark import spark_session
from quality import validation
from quality.gate import check_feature_partition, check_source_partition

START = date(2026, 1, 1)
WINDOW_DAYS = 7


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _median_seconds(action, repeats: int) -> tuple[float, object]:
    """Median wall time of `repeats` runs of `action` and its last result."""
    seconds, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = action()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def _check_seconds(check, repeats: int) -> dict[str, tuple[float, object]]:
    """Warm check time with the value expectations on pandas (the gate's choice) and forced onto Spark."""
    check()  # loads GE, warms the JVM
    choice = validation.PANDAS_MAX_ROWS
    seconds = {"pandas": _median_seconds(check, repeats)}
    validation.PANDAS_MAX_ROWS = 0
    try:
        seconds["spark"] = _median_seconds(check, repeats)
    finally:
        validation.PANDAS_MAX_ROWS = choice
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events-per-day", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=20_000_000, help="20M users give ~1M active in 7 days")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    registry = load_registry()
    source, group = registry.sources["upvote_events"], registry.groups["user_upvotes"]
    sample = RedditSample(start=START, size=DomainSize(users=args.users, subreddits=2_000, posts_per_day=40_000,
                                                       upvotes_per_day=args.events_per_day))
    days = [START + timedelta(days=k) for k in range(WINDOW_DAYS + 1)]
    ds, previous = days[-1].isoformat(), days[-2].isoformat()
    with tempfile.TemporaryDirectory(prefix="fp-bench-quality-", ignore_cleanup_errors=True) as scratch, \
            local_redis() as redis_url:
        spark = spark_session(load_settings(data_dir=Path(scratch)))
        _progress(f"event log: {len(days) - 1} days x {args.events_per_day:,} upvotes")
        write_raw_partitions(spark, source, ((d.isoformat(), sample.events(source.name, d)) for d in days[:-1]))
        events = sample.events(source.name, days[-1])
        raw = _median_seconds(lambda: write_raw_partitions(spark, source, [(ds, events)]), args.repeats)

        _progress("features: the day before (warm-up and the row-count baseline), then the measured day")
        materialize_partition(spark, registry, group, previous)
        features = _median_seconds(lambda: materialize_partition(spark, registry, group, ds), args.repeats)
        _progress("online publish")
        online = _median_seconds(lambda: publish_partition(spark, registry, group, ds, redis_url, "bench").rows,
                                 args.repeats)

        _progress("checks")
        raw_checks = _check_seconds(lambda: check_source_partition(spark, source, ds), args.repeats)
        feature_checks = _check_seconds(lambda: check_feature_partition(spark, registry, group, ds), args.repeats)

    print(f"median of {args.repeats} warm runs")
    print(f"{'asset':22} {'rows':>10} {'expectations':>12} {'materialize s':>14} {'check s (pandas)':>17} "
          f"{'check s (spark)':>16} {'check / materialize':>20}")
    for name, (seconds, rows), checks in (("raw/upvote_events", raw, raw_checks),
                                          ("features/user_upvotes", features, feature_checks),
                                          ("online/user_upvotes", online, None)):
        if checks is None:
            print(f"{name:22} {rows:>10,} {'-':>12} {seconds:>14.2f} {'-':>17} {'-':>16} {'-':>20}")
            continue
        (pandas_seconds, report), (spark_seconds, _) = checks["pandas"], checks["spark"]
        assert report.passed, report.failures
        print(f"{name:22} {rows:>10,} {report.expectations:>12} {seconds:>14.2f} {pandas_seconds:>17.2f} "
              f"{spark_seconds:>16.2f} {pandas_seconds / seconds:>19.0%}")
    checks_total = raw_checks["pandas"][0] + feature_checks["pandas"][0]
    materialization = raw[0] + features[0]
    print(f"the partition's checks: {checks_total:.2f} s = {checks_total / materialization:.0%} of raw write + "
          f"features ({materialization:.2f} s), {checks_total / (materialization + online[0]):.0%} with the publish "
          f"({materialization + online[0]:.2f} s)")


if __name__ == "__main__":
    main()
