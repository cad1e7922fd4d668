"""Benchmark of training sets: point-in-time joins of 100k and 1M observations against history built from the event log.

Why: a training set joins every observation with the latest feature values at or before its time, within
the group's TTL. This script measures that join on real history: it writes the `bench`-size sample event
log (720k upvotes + 40k posts a day) for --days days into Hive, computes user_upvotes (7-day windows) for
the last --partitions days with the batch job, samples observations (user_id, post_id, event_time,
label) from the upvotes of the days after those partitions, and measures, each at 100k and 1M
observations:

  (a) plain pandas.merge_asof: the baseline a data scientist would write (sort both frames, merge_asof by
      user_id with the TTL as tolerance), on pandas frames already in memory;
  (b) the pandas engine's join alone (offline.training_set.join_pandas) on the same in-memory history:
      the "local path" the 0.5 s target is about;
  (c) `featctl training-set --engine pandas` end to end (write_training_set): Parquet in, the history read
      from Hive by Spark (only the observed users), the join, Parquet out;
  (d) `featctl training-set --engine spark` end to end: the same through Spark's union + window join.

It checks that (a), (b), (c) and (d) agree on every row, then prints rows/s for each next to the baseline.
Everything runs in one process with one Spark JVM under a temporary data directory. Progress goes to
stderr, the table to stdout.

    .venv/bin/python benchmarks/training_set.py [--days N] [--partitions N] [--size bench|demo] [--quick]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from assets.registry import load_registry
from batch.feature_job import materialize_partition
from eventlog.generator import RedditSample
from eventlog.hive import write_event_log
from infra.settings import load_settings
from infra.spark import spark_session
from offline.offline_history import offline_history
from offline.training_set import join_pandas, plan_joins, write_training_set

GROUP = "user_upvotes"
START = date(2026, 1, 1)
SIZES = (100_000, 1_000_000)
JOIN_TARGET_SECONDS = 0.5  # (b) at 100k observations against about 1M feature rows
SEED = 11


def log(message: str) -> None:
    """Progress line on stderr (stdout carries only the result table)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def observations_from_upvotes(sample: RedditSample, days: list[date], rows: int) -> pd.DataFrame:
    """`rows` upvotes of `days` as observations (the seed's: a user upvoted a post), in random order."""
    upvotes = pd.concat([sample.upvotes(day) for day in days], ignore_index=True)
    picked = upvotes.sample(n=min(rows, len(upvotes)), random_state=SEED, replace=rows > len(upvotes))
    return pd.DataFrame({
        "user_id": picked["user_id"].to_numpy(), "post_id": picked["post_id"].to_numpy(),
        "event_time": picked["event_time"].astype("datetime64[us]").dt.tz_localize("UTC").reset_index(drop=True),
        "label": np.ones(len(picked), dtype=np.int64), "obs_id": np.arange(len(picked), dtype=np.int64),
    })


def baseline_merge_asof(observations: pd.DataFrame, history: pd.DataFrame, ttl: pd.Timedelta) -> pd.DataFrame:
    """(a): what one writes by hand with pandas: sort, merge_asof by entity, TTL as tolerance."""
    return pd.merge_asof(observations.sort_values("event_time"), history.sort_values("feature_ts"),
                         left_on="event_time", right_on="feature_ts", by="user_id", direction="backward",
                         tolerance=ttl)


def warm_up(spark, registry, sample: RedditSample, days: list[date], tmp: Path) -> None:
    """One untimed run of each engine on 1,000 observations."""
    path = tmp / "warm_up.parquet"
    pq.write_table(pa.Table.from_pandas(observations_from_upvotes(sample, days, 1_000), preserve_index=False), path,
                   coerce_timestamps="us")
    for engine in ("pandas", "spark"):
        write_training_set(spark, registry, path, [GROUP], tmp / f"warm_up_{engine}.parquet", engine)


def timed(function, *args):
    """(result, seconds) of one call."""
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


class StepTimer:
    """An `on_step` callback that remembers when each step of write_training_set started."""

    def __init__(self):
        self.starts: list[tuple[str, float]] = []

    def __call__(self, step: str) -> None:
        self.starts.append((step, time.perf_counter()))

    def durations(self, ended: float) -> str:
        """`step s, step s, ...` for the steps seen, the last one ending at `ended`."""
        ends = [t for _, t in self.starts[1:]] + [ended]
        return ", ".join(f"{re.sub(r' [^ ]*/[^ ]*', '', step.split(' (')[0])} {end - start:.2f} s"
                         for (step, start), end in zip(self.starts, ends))


def check_agreement(label: str, expected: pd.Series, table: pa.Table) -> None:
    """Stop the benchmark if a path's joined upvotes_7d differ from the baseline's (by observation id)."""
    got = table.select(["obs_id", f"{GROUP}__upvotes_7d"]).to_pandas().set_index("obs_id")[f"{GROUP}__upvotes_7d"]
    got = got.sort_index().astype("Float64")
    if not got.equals(expected.sort_index().astype("Float64")):
        raise RuntimeError(f"{label} disagrees with the merge_asof baseline")


def render(results: list[tuple], history_rows: int, events: int, partitions: list[str], breakdown: list[str],
           load: float) -> str:
    """The result table and what each row is."""
    header = ("observations", "path", "seconds", "rows/s", "x baseline", "target", "result")
    rows = [header]
    for n, label, seconds, baseline_seconds, target in results:
        verdict = "" if target is None else ("PASS" if seconds <= target else "MISS")
        rows.append((f"{n:,}", label, f"{seconds:.3f}", f"{n / seconds:,.0f}",
                     "" if label.startswith("(a)") else f"{baseline_seconds / seconds:.2f}",
                     "" if target is None else f"<= {target:g} s", verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    title = (f"Training-set benchmark: {GROUP} history of {history_rows:,} rows ({len(partitions)} daily partitions "
             f"{partitions[0]}..{partitions[-1]}) computed from a {events:,}-event log")
    notes = ["x baseline = seconds of (a) / seconds of the path (above 1: faster than plain merge_asof).",
             "(a), (b): history and observations already in memory (pandas / Arrow); (c), (d): Parquet file in,",
             "  Parquet out, the history read from the Hive table by Spark each time, as featctl training-set does.",
             "Every path gives the same user_upvotes values for every observation (checked); each engine ran once",
             "on 1,000 observations before the timed runs (Spark's first query plans and JIT are not counted).",
             f"1-minute load average at the end: {load:.1f} on {os.cpu_count()} cores (other processes share them).",
             "Where the time of (c) and (d) goes (write_training_set's steps):", *breakdown]
    return "\n".join([title, "", *lines, "", *notes])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; `--quick` is a smoke run on the demo-size site."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=7, help="days of event log (default 7: about 5.3M events)")
    parser.add_argument("--partitions", type=int, default=3, help="daily feature partitions, ending the day "
                                                                   "before the last (default 3: about 1M rows)")
    parser.add_argument("--size", choices=("bench", "demo"), default="bench", help="sample site size")
    parser.add_argument("--quick", action="store_true", help="smoke run: demo size, 4 days, 10k and 50k observations")
    args = parser.parse_args(argv)
    args.sizes = (10_000, 50_000) if args.quick else SIZES
    if args.quick:
        args.size, args.days = "demo", 4
    return args


def main(argv: list[str] | None = None) -> None:
    """Build the event log and history, then measure (a)-(d) at each observation count."""
    args = parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fp-bench-ts-") as tmp:
        tmp = Path(tmp)
        settings = load_settings(data_dir=tmp / "data", partitions_start=START)
        registry = load_registry()
        spark = spark_session(settings)
        sample = RedditSample(start=START, size=args.size)
        days = sample.days(START, START + timedelta(days=args.days - 1))
        log(f"writing the {args.size} event log for {days[0]}..{days[-1]}")
        events = sum(write_event_log(spark, registry, sample, days,
                                     progress=lambda source, day: log(f"  {source} {day}")).values())
        partitions = [d.isoformat() for d in days[-1 - args.partitions:-1]]
        group = registry.groups[GROUP]
        for ds in partitions:
            log(f"computing {GROUP} partition {ds}")
            materialize_partition(spark, registry, group, ds)
        history = offline_history(spark, registry, group).toArrow()
        log(f"history: {history.num_rows:,} rows")
        observed_days = [date.fromisoformat(ds) + timedelta(days=1) for ds in partitions]
        ttl = pd.Timedelta(group.ttl)
        joins = plan_joins(registry, [GROUP])
        results, breakdown = [], []
        warm_up(spark, registry, sample, observed_days, tmp)
        for n in args.sizes:
            observations = observations_from_upvotes(sample, observed_days, n)
            path = tmp / f"observations_{n}.parquet"
            pq.write_table(pa.Table.from_pandas(observations, preserve_index=False), path, coerce_timestamps="us")
            log(f"{n:,} observations: (a) merge_asof baseline")
            history_frame = history.to_pandas()
            history_frame["feature_ts"] = history_frame["feature_ts"].dt.tz_convert("UTC")
            baseline, baseline_seconds = timed(baseline_merge_asof, observations, history_frame, ttl)
            expected = baseline.set_index("obs_id")["upvotes_7d"]
            log(f"{n:,} observations: (b) join_pandas")
            arrow_observations = pa.Table.from_pandas(observations, preserve_index=False)
            joined, join_seconds = timed(join_pandas, arrow_observations, joins, {GROUP: history})
            check_agreement("(b)", expected, joined)
            outcomes = {}
            for engine in ("pandas", "spark"):
                log(f"{n:,} observations: featctl training-set --engine {engine}")
                out = tmp / f"train_{engine}_{n}.parquet"
                steps = StepTimer()
                summary = write_training_set(spark, registry, path, [GROUP], out, engine, on_step=steps)
                breakdown.append(f"  {n:,} observations, --engine {engine}: "
                                 f"{steps.durations(steps.starts[0][1] + summary.seconds)}")
                check_agreement(engine, expected, pq.read_table(out))
                outcomes[engine] = summary.seconds
            results += [
                (n, "(a) plain pandas.merge_asof (baseline)", baseline_seconds, baseline_seconds, None),
                (n, "(b) join_pandas (local path, join only)", join_seconds, baseline_seconds,
                 JOIN_TARGET_SECONDS if n == SIZES[0] else None),
                (n, "(c) training-set --engine pandas", outcomes["pandas"], baseline_seconds, None),
                (n, "(d) training-set --engine spark", outcomes["spark"], baseline_seconds, None),
            ]
        load = os.getloadavg()[0]
        spark.stop()
    print(render(results, history.num_rows, events, partitions, breakdown, load))
    log(f"total wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
