"""Benchmark of a first start with traffic flowing: how long `featctl stream run` takes to exact values over a
site's 7-day event log, and how fresh the live events sent meanwhile are.

Why: a new group, a version bump and a repair all start a stream from the event log (streaming/bootstrap.py,
the replay phase of streaming/runner.py), with live traffic already flowing. Readers get the batch values
until the live job takes over, so what a user waits for is the time to exact values, and the live events of
that time are as late as it is long.

  setup       a temporary data dir with `featctl events generate --size SIZE` for the DAYS days before today
              (the window the first start replays) and a private redis-server on a free port.
  bootstrap   streaming.runner.start (what `featctl stream run GROUP` calls, with the CLI's Spark session)
              while a writer appends RATE upvotes/s of users active now (streaming.event_files.LiveUpvotes),
              a file every FILE_INTERVAL_S s whose last line is a probe by a user id of its own. Phases: the
              export of the event log, the replay job's start, the replay (events/s from its first read to its
              last), the hand-over (savepoint, then the live job's start) and the backlog: until every probe
              written before the live job ran is in Redis. Time to exact values = the sum.
  freshness   per probe, the time from its file's rename to its first feature appearing in Redis: for probes
              written during the bootstrap and while the live job read the backlog, beside the baseline of
              probes written in the AFTER_S s once values were exact (the same job, steady state).

Guard: every probe appears, and each probe user's first feature is 1 (one upvote, counted once). Progress goes
to stderr, the table to stdout; the exit status is 1 when the guard failed.

    .venv/bin/python benchmarks/stream_bootstrap.py [--size demo] [--days 7] [--rate 200] [--after 60]
                                                    [--group user_upvotes]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import redis

from assets.registry import load_registry
from infra.redis_server import local_redis
from infra.settings import PROJECT_ROOT, load_settings
from serving import layout
from serving.online_store import WritePlan
from streaming import runner
from streaming.bootstrap import recorded_bootstrap
from streaming.codegen import job_dir
from streaming.connectors import stream_directory
from streaming.event_files import TIMESTAMP_FORMAT, DirectorySink, LiveUpvotes, write_file

PROBE_BASE = 1_000_000_000   # probe user ids: far above LiveUpvotes' 0 .. users-1
FILE_INTERVAL_S = 0.5
POLL_S = 0.05                # Redis poll period of the probe watcher
PROBE_TIMEOUT_S = 120        # after the writer stopped: time allowed for the last probes
# When a probe was written: before the live job ran, while it read the backlog, once values were exact.
PHASES = ("bootstrap", "backlog", "steady")
FEATCTL = str(Path(sys.executable).parent / "featctl")


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


class Writer(threading.Thread):
    """Appends `rate` upvotes/s as a file every FILE_INTERVAL_S s, each ending with a probe; notes each probe's
    rename time and the phase it was written in (PHASES)."""

    def __init__(self, directory: Path, rate: float):
        super().__init__(daemon=True)
        self.live = LiveUpvotes(DirectorySink(directory), rate=rate, seed=20261207)
        self.directory, self.rate = directory, rate
        self.probes: list[tuple[int, float, str]] = []  # (probe user, renamed at, phase)
        self.phase = PHASES[0]
        self.done = threading.Event()
        self.events = 0

    def run(self) -> None:
        tick, began = 0, time.monotonic()
        while not self.done.is_set():
            time.sleep(max(0.0, began + tick * FILE_INTERVAL_S - time.monotonic()))
            now = datetime.now(timezone.utc)
            lines, _valid = self.live.batch(max(0, int(self.rate * FILE_INTERVAL_S) - 1), now)
            user = PROBE_BASE + tick
            lines.append(json.dumps({"event_id": f"probe-{tick}", "user_id": user, "post_id": tick,
                                     "event_time": now.strftime(TIMESTAMP_FORMAT)}, separators=(",", ":")))
            phase = self.phase
            write_file(self.directory, f"{now:%Y%m%dT%H%M%S%f}-bench", lines)
            self.probes.append((user, time.time(), phase))
            self.events += len(lines)
            tick += 1


def seen_times(client: redis.Redis, plan: WritePlan, writer: Writer, seen: dict[int, float]) -> None:
    """Note the time each probe written so far first shows its first feature in Redis."""
    pending = [user for user, _at, _phase in list(writer.probes) if user not in seen]
    if not pending:
        return
    pipe = client.pipeline(transaction=False)
    for user in pending:
        pipe.hget(layout.entity_key(plan.prefix, plan.entity, user), plan.fields[0])
    now = time.time()
    for user, value in zip(pending, pipe.execute()):
        if value is not None:
            seen[user] = now


def percentiles(values: list[float]) -> str:
    if not values:
        return "-"
    p50, p99 = np.percentile(values, [50, 99])
    return f"p50 {p50:.1f} s, p99 {p99:.1f} s, max {max(values):.1f} s ({len(values)} probes)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="demo", help="event log size (featctl events generate --size)")
    parser.add_argument("--days", type=int, default=7, help="days of event log before today (default 7)")
    parser.add_argument("--rate", type=float, default=200, help="live upvotes/s during the run (default 200)")
    parser.add_argument("--after", type=float, default=60, help="seconds of steady state once values are exact")
    parser.add_argument("--group", default="user_upvotes")
    args = parser.parse_args(argv)
    registry = load_registry()
    group = registry.groups[args.group]
    today = datetime.now(timezone.utc).date()
    with tempfile.TemporaryDirectory(prefix="fp-bench-bootstrap-") as tmp, local_redis() as url:
        settings = load_settings(data_dir=Path(tmp))
        first, last = today - timedelta(days=args.days), today - timedelta(days=1)
        log(f"generating the {args.size} event log {first} .. {last}")
        environment = {k: v for k, v in os.environ.items() if not k.startswith("FP_")}
        generated = subprocess.run([FEATCTL, "events", "generate", "--start", first.isoformat(), "--end", last.isoformat(),
                                    "--size", args.size], cwd=PROJECT_ROOT, env={**environment, "FP_DATA_DIR": tmp},
                                   capture_output=True, text=True)
        if generated.returncode:
            sys.exit(generated.stdout[-2000:] + generated.stderr[-2000:])
        from infra.spark import spark_session

        spark = spark_session(settings)
        plan = WritePlan.for_group(group, registry.entity_of(group), settings.redis_prefix)
        writer = Writer(stream_directory(settings, registry.sources[group.stream.source_tables[0]]), args.rate)
        client, seen, replay = redis.Redis.from_url(url), {}, {}

        def on_replay(read: int, total: int, _left: float | None) -> None:
            if read > 0:
                replay.setdefault("first_read", time.monotonic())
            replay.update(read=read, total=total, last=time.monotonic())
            log(f"replayed {read:,} of {total:,}")

        writer.start()
        began, began_wall = time.monotonic(), time.time()
        try:
            runner.start(registry, settings, group, url, spark=spark, on_replay=on_replay)
            running = time.monotonic()
            writer.phase = "backlog"
            log(f"live job RUNNING after {running - began:.0f} s; waiting for the backlog")
            backlog = [user for user, _at, phase in writer.probes if phase == "bootstrap"]
            while not all(user in seen for user in backlog) and time.monotonic() - running < PROBE_TIMEOUT_S * 5:
                seen_times(client, plan, writer, seen)
                time.sleep(POLL_S)
            exact = time.monotonic()
            writer.phase = "steady"
            log(f"exact values after {exact - began:.0f} s; {args.after:g} s of steady state")
            while time.monotonic() - exact < args.after:
                seen_times(client, plan, writer, seen)
                time.sleep(POLL_S)
            writer.done.set()
            writer.join()
            deadline = time.monotonic() + PROBE_TIMEOUT_S
            while len(seen) < len(writer.probes) and time.monotonic() < deadline:
                seen_times(client, plan, writer, seen)
                time.sleep(POLL_S)
            values = {user: client.hget(layout.entity_key(plan.prefix, plan.entity, user), plan.fields[0])
                      for user, _at, _phase in writer.probes}
        finally:
            writer.done.set()
            runner.kill(settings, group)
            client.close()
        bootstrap = recorded_bootstrap(settings, group)
        export_s = (job_dir(settings, group) / "bootstrap.json").stat().st_mtime - began_wall
    missing = [user for user, value in values.items() if value is None]
    wrong = [user for user, value in values.items() if value is not None and int(value) != 1]
    latencies = {phase: [seen[user] - at for user, at, written in writer.probes if written == phase and user in seen]
                 for phase in PHASES}
    replay_s = replay.get("last", running) - replay.get("first_read", running)
    rows = [
        ("event log replayed", f"{bootstrap.events:,} events, {len(bootstrap.days)} days ({args.size})", ""),
        ("export (Spark)", f"{export_s:.0f} s", ""),
        ("replay job start", f"{replay.get('first_read', running) - began - export_s:.0f} s", ""),
        ("replay", f"{replay_s:.0f} s, {bootstrap.events / max(replay_s, 1e-9):,.0f} events/s", ""),
        ("hand-over (savepoint, live job start)", f"{running - replay.get('last', running):.0f} s", ""),
        ("backlog of live events", f"{exact - running:.0f} s", ""),
        ("stream run -> exact values", f"{exact - began:.0f} s", ""),
        ("freshness: sent during the bootstrap", percentiles(latencies["bootstrap"]),
         "baseline, sent once values were exact: " + percentiles(latencies["steady"])),
        ("freshness: sent during the backlog", percentiles(latencies["backlog"]), ""),
        ("guard", "ok" if not missing and not wrong else f"FAILED: {len(missing)} probes missing, {len(wrong)} wrong",
         f"{writer.events:,} live events at {args.rate:g}/s"),
    ]
    width = max(len(r[0]) for r in rows)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                            text=True).stdout.strip() or "?"
    print(f"\nstream bootstrap: {group.name} v{group.version}, {date.today()} at {commit}, {os.cpu_count()} cores")
    for name, value, baseline in rows:
        print(f"  {name:<{width}}  {value}" + (f"   [{baseline}]" if baseline else ""))
    sys.exit(1 if missing or wrong else 0)


if __name__ == "__main__":
    main()
