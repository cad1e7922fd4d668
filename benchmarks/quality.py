"""Benchmark of the quality gate: check time per partition at about 1M rows, beside its materialization time.

Why: every partition passes through the blocking checks before Redis sees it; the target is that the
checks add at most 20% to the partition's materialization. Measured on the sample domain, sized so a
day of upvotes is 1M events and the 7-day `user_upvotes` partition has about 1M users:

  raw/upvote_events     one day, 1M rows; baseline = writing the partition into the event log
                        (eventlog.hive.write_raw_partitions), check = quality.gate.check_source_partition
  features/user_upvotes ~1M rows from 7M events; baseline = batch.feature_job.materialize_partition,
                        check = quality.gate.check_feature_partition (with the row count against the day before)

Each check runs with the value expectations on pandas (the gate's choice up to PANDAS_MAX_ROWS rows) and
forced onto GE's Spark engine, warm (a first untimed run loads GE and warms the JVM). One Spark session
in this process, under a temporary data directory. Progress goes to stderr, the table to stdout.

    .venv/bin/python benchmarks/quality.py [--events-per-day N] [--users N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from assets.registry import load_registry
from batch.feature_job import materialize_partition
from eventlog.generator import DomainSize, RedditSample
from eventlog.hive import write_raw_partitions
from infra.settings import load_settings
from infra.spark import spark_session
from quality import validation
from quality.gate import check_feature_partition, check_source_partition

START = date(2026, 1, 1)
WINDOW_DAYS = 7


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _timed(action) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def _check_seconds(check) -> dict[str, tuple[float, object]]:
    """Warm check time with the value expectations on pandas (the gate's choice) and forced onto Spark."""
    check()  # loads GE, warms the JVM
    choice = validation.PANDAS_MAX_ROWS
    seconds = {"pandas": _timed(check)}
    validation.PANDAS_MAX_ROWS = 0
    try:
        seconds["spark"] = _timed(check)
    finally:
        validation.PANDAS_MAX_ROWS = choice
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events-per-day", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=20_000_000, help="20M users give ~1M active in 7 days")
    args = parser.parse_args()

    registry = load_registry()
    source, group = registry.sources["upvote_events"], registry.groups["user_upvotes"]
    sample = RedditSample(start=START, size=DomainSize(users=args.users, subreddits=2_000, posts_per_day=40_000,
                                                       upvotes_per_day=args.events_per_day))
    days = [START + timedelta(days=k) for k in range(WINDOW_DAYS + 1)]
    ds, previous = days[-1].isoformat(), days[-2].isoformat()
    with tempfile.TemporaryDirectory(prefix="fp-bench-quality-", ignore_cleanup_errors=True) as scratch:
        spark = spark_session(load_settings(data_dir=Path(scratch)))
        _progress(f"event log: {len(days) - 1} days x {args.events_per_day:,} upvotes")
        write_raw_partitions(spark, source, ((d.isoformat(), sample.events(source.name, d)) for d in days[:-1]))
        events = sample.events(source.name, days[-1])
        raw_seconds, raw_rows = _timed(lambda: write_raw_partitions(spark, source, [(ds, events)]))

        _progress("features: the day before (warm-up and the row-count baseline), then the measured day")
        materialize_partition(spark, registry, group, previous)
        feature_seconds, feature_rows = _timed(lambda: materialize_partition(spark, registry, group, ds))

        _progress("checks")
        raw_checks = _check_seconds(lambda: check_source_partition(spark, source, ds))
        feature_checks = _check_seconds(lambda: check_feature_partition(spark, registry, group, ds))

    print(f"{'partition':24} {'rows':>10} {'expectations':>12} {'materialize s':>14} {'check s (pandas)':>17} "
          f"{'check s (spark)':>16} {'check / materialize':>20}")
    for name, rows, seconds, checks in (("raw/upvote_events", raw_rows, raw_seconds, raw_checks),
                                        ("features/user_upvotes", feature_rows, feature_seconds, feature_checks)):
        (pandas_seconds, report), (spark_seconds, _) = checks["pandas"], checks["spark"]
        assert report.passed, report.failures
        print(f"{name:24} {rows:>10,} {report.expectations:>12} {seconds:>14.2f} {pandas_seconds:>17.2f} "
              f"{spark_seconds:>16.2f} {pandas_seconds / seconds:>19.0%}")
    total_check = raw_checks["pandas"][0] + feature_checks["pandas"][0]
    print(f"partition total (raw write + features): checks add {total_check / (raw_seconds + feature_seconds):.0%}")


if __name__ == "__main__":
    main()
