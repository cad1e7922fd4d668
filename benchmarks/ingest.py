"""Benchmark of the ingest (streaming/ingest.py): events/s landed in the event log, beside the paired
lifetime and windowed jobs' rates on the same events.

Why: a source's ingest reads every line its groups' jobs read, judges it by the same contract and lands it
in the event log exactly once; if it fell behind them, a day would be complete online long before the batch
could compute it. So its rate is measured beside its baseline, the generated user_activity job (the
lifetime GROUP BY, the cheapest paired job: no window operator) on the same files:

  ingest     N upvotes as a backlog of JSON-lines files (ROWS_PER_FILE lines each, event times in order over
             two days), read by the upvote_events ingest from its first start on a temporary data dir.
             Seconds from the job's RUNNING until every line is in a committed file of the landing area,
             and events/s over that span. Guard: exactly the N event ids landed, each once.
  baseline   the same files through the user_activity job (streaming.runner.start without Spark: no replay)
             into a private redis-server: seconds from RUNNING until the injector has written the newest
             event, events/s. Guard: the users' upvotes_total in Redis add up to N.
  windowed   the same for the user_upvotes job (the window operator: 7-day and 1-day windows in 1h tiles), the
             rate a windowed group keeps up with or bootstraps at. Guard: the users' upvotes_7d add up to N.

One Flink JVM at a time. Progress goes to stderr, the result table to stdout; the exit status is 1 when a
guard failed (a run that loses data is not a result).

    .venv/bin/python benchmarks/ingest.py [--events N]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import pandas as pd

from assets.registry import load_registry
from infra.redis_server import local_redis
from infra.settings import load_settings
from serving.get_features import build_read_plan, get_features
from serving.online_store import OnlineStore, connect
from streaming import ingest, runner
from streaming.connectors import stream_directory
from streaming.event_files import write_backlog
from streaming.status import stream_status

ROWS_PER_FILE = 10_000
USERS = 5_000
TIMEOUT_S = 1_800


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _events(count: int) -> list[dict]:
    rng, start = random.Random(3), datetime(2026, 1, 1)
    step = 2 * 86_400_000_000 // count
    return [{"event_id": f"e{n}", "user_id": rng.randrange(USERS), "post_id": rng.randrange(50_000),
             "event_time": start + timedelta(microseconds=n * step)} for n in range(count)]


def _write_backlog(settings, source, events: list[dict]) -> None:
    write_backlog(stream_directory(settings, source), source, [pd.DataFrame(events)], ROWS_PER_FILE)


def _landed(settings, source) -> Counter:
    root = ingest.landing_directory(settings, source)
    return Counter(json.loads(line)["event_id"] for path in root.glob("ds=*/*")
                   if not path.name.startswith((".", "_")) for line in path.read_text().splitlines())


def _wait(done, what: str) -> float:
    """Seconds until `done()` is true (polled every 0.5 s)."""
    began = time.monotonic()
    while not done():
        if time.monotonic() - began > TIMEOUT_S:
            raise SystemExit(f"{what} did not finish within {TIMEOUT_S} s")
        time.sleep(0.5)
    return time.monotonic() - began


def measure_ingest(registry, settings, events: list[dict]) -> tuple[float, float, bool]:
    """(job start s, seconds to land every event, guard passed) of the upvote_events ingest."""
    source = registry.sources["upvote_events"]
    _write_backlog(settings, source, events)
    began = time.monotonic()
    ingest.start(settings, source)
    started = time.monotonic() - began
    try:
        seconds = _wait(lambda: sum(_landed(settings, source).values()) >= len(events), "the ingest")
        landed = _landed(settings, source)
    finally:
        runner.kill(settings, source)
    return started, seconds, landed == Counter(e["event_id"] for e in events)


def measure_paired_job(group_name: str, feature: str, registry, settings, events: list[dict]) -> tuple[float, float, bool]:
    """(job start s, seconds to write the newest event, guard passed) of a group's job: its users' `feature`
    (the count of their upvotes: every event is inside every window as of the user's newest) adds up to N."""
    group = registry.groups[group_name]
    _write_backlog(settings, registry.sources["upvote_events"], events)
    newest = max(e["event_time"] for e in events)
    with local_redis() as url:
        began = time.monotonic()
        runner.start(registry, settings, group, url)
        started = time.monotonic() - began
        try:
            def written() -> bool:
                reached = stream_status(registry, settings, group, url).max_event_time
                return reached is not None and reached.replace(tzinfo=None) >= newest
            seconds = _wait(written, f"the {group_name} job")
        finally:
            runner.kill(settings, group)
        plan = build_read_plan(registry, settings.redis_prefix, "user", [group_name])
        store = OnlineStore(connect(url))
        total = sum(row.values[f"{group_name}.{feature}"] or 0
                    for row in get_features(store, plan, sorted({e["user_id"] for e in events})))
        store.client.close()
    return started, seconds, total == len(events)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args(argv)
    registry, events = load_registry(), _events(args.events)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    rows = []
    for name, measure in (("ingest upvote_events -> event log", measure_ingest),
                          ("baseline: user_activity job (lifetime) -> Redis",
                           partial(measure_paired_job, "user_activity", "upvotes_total")),
                          ("user_upvotes job (7d and 1d windows) -> Redis",
                           partial(measure_paired_job, "user_upvotes", "upvotes_7d"))):
        with tempfile.TemporaryDirectory(prefix="fp-bench-ingest-") as tmp:
            settings = load_settings(data_dir=Path(tmp))
            _log(f"{name}: {len(events):,} events ...")
            started, seconds, exact = measure(registry, settings, events)
            rows.append((name, started, seconds, exact))
    print(f"\ningest beside the paired lifetime and windowed jobs, {len(events):,} upvotes as a backlog (commit {commit})\n")
    print("| job | start s | seconds to all events | events/s | exact |")
    print("|---|---:|---:|---:|---|")
    for name, started, seconds, exact in rows:
        print(f"| {name} | {started:.1f} | {seconds:.1f} | {len(events) / seconds:,.0f} | {'yes' if exact else 'NO'} |")
    return 0 if all(exact for *_, exact in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
