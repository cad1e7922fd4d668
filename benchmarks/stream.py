"""Benchmark of the streaming path: freshness, state, Redis memory and read latency of the real lifetime
(user_activity) and windowed (user_upvotes) jobs, and injection throughput.

Why: a streamed feature is only worth its job if a new event reaches Redis within seconds, and the
platform's injection (a vectorized pandas UDF writing each Arrow batch through the guarded batched
writer) is the part of the job it owns. A windowed group (declared 7-day and 1-day windows in 1h tiles,
run by streaming.runtime's WindowOperator) must keep that freshness, and its cost shows in what it
keeps: state per entity, Redis memory per entity, and what serving its wider hash costs. This script
measures each against its baseline and target (freshness p99 <= 3 s at 1,000 events/s on the local
mini-cluster, for both groups; batched injection >= 5x per-record; read p99 windowed <= 1.5x plain):

  freshness   the generated user_activity job (streaming.runner.start: its own process, a temporary data
              directory, a private redis-server) while events are appended at a steady rate as atomic
              JSON-lines files (streaming.event_files.write_file). The last line of every file is a probe:
              an upvote by a user id of its own, outside the generator's range. Latency = the time a
              poller first sees the probe user's user_activity fields in Redis minus the wall time the file
              was renamed into the watched directory. Files come every `--file-interval` s (0.21 s: about
              5 per second, a period that does not divide the 1 s directory scan, so the files' arrival
              phases sweep the whole scan interval instead of locking onto a few fixed ones, and so the
              percentiles sample the discovery wait fairly). user_activity has no windows, so several
              files per scan read in any order lose nothing (the ordering trap of STACK-NOTES is for
              event-time windows). Baseline: the wait for the source's next directory scan alone, uniform
              on [0, source.monitor-interval). Guard: at the end Redis must equal a Python ground truth of
              every event sent (count and distinct posts per user, sum of counts = events sent).
  windowed    the same for the generated user_upvotes job (same runner, source and settings; the same
              events, seed and schedule, on an emptied Redis), the probe watched on its first feature
              upvotes_7d. Files read in any order within a scan lose nothing here either: the window
              operator merges out-of-order events, and they differ by seconds, far inside the 1h allowed
              lateness. Baseline: the lifetime user_activity run above. Guard: upvotes_7d and
              distinct_items_7d equal the same ground truth (the events are timed now, so all are in
              both windows).
  footprint   for each of the two jobs, after its drain and before it is killed: (1) state per active
              user: the full state size (`latest.completed.state_size`, Flink REST /jobs/<jid>/checkpoints)
              of the first checkpoint triggered after Redis equalled the ground truth (checkpoints every
              settings.stream_checkpoint_seconds s; waits up to CHECKPOINT_WAIT_S s), divided by the
              distinct users sent; (2) Redis memory per user: mean MEMORY USAGE of a seeded sample of up
              to MEMORY_SAMPLE of the users' hashes; (3) read latency: READ_CALLS calls of
              serving.get_features.get_features for the group's features of READ_IDS random users sent
              (the same ids for both groups), p50/p99, and the p99 ratio windowed / plain. The windowed
              job's numbers sit beside the lifetime job's as their baseline. Guard: every id read
              returns the ground truth.
  injection   the same N feature rows (the update stream user_activity emits for N upvotes: one row per
              event, the user's running count, distinct posts and latest time), from one JSON-lines file
              read by a bounded filesystem source, through (a) the platform's vectorized InjectFeatures UDF
              (streaming.runtime.injector) and (b) a plain row-at-a-time ScalarFunction writing each row
              with baselines.write_per_record (one Redis round trip per row, on a one-row Arrow batch),
              each into a primary-keyed blackhole sink as in the generated job, each job in its own process
              with the generated job's Flink settings (streaming.runtime.table_environment). Because much of
              (b)'s cost per row is Arrow work rather than the round trip, (b') is a leaner per-record
              baseline: the same row UDF calling the guarded Lua script itself, one EVALSHA per row. Rows/s
              from the first to the last written row, from the progress markers the injectors record in
              Redis. Guard: every row landed and Redis holds each user's last row. For context, the same
              rows through the same writers in this process, without Flink.

One Flink JVM at a time: the two freshness jobs run one after the other, then the injection jobs.
Progress goes to stderr, the one result table to stdout; the exit status is 1 when a correctness guard
failed (a run that loses data is not a result).

    .venv/bin/python benchmarks/stream.py [--rate N] [--seconds S] [--warmup S] [--file-interval S]
                                          [--rows N] [--quick]

(`--seconds` and `--warmup` apply to each of the two freshness runs; `--quick`: 15 s each, 20k rows.)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import redis
from pyflink.table.udf import ScalarFunction

from assets.dtypes import FLINK_TYPES
from assets.offline_layout import EVENT_TIME_COLUMN
from assets.registry import Registry, load_registry
from infra.java import ensure_java_home
from infra.redis_server import local_redis
from infra.settings import PROJECT_ROOT, load_settings
from serving import layout
from serving.codec import NULL, datetime_to_micros
from serving.get_features import build_read_plan, get_features
from serving.online_store import GUARDED_WRITE, OnlineStore, WritePlan, connect
from streaming import runner
from streaming.connectors import MONITOR_SECONDS, stream_directory
from streaming.event_files import TIMESTAMP_FORMAT, DirectorySink, LiveUpvotes, write_file

from baselines import write_per_record  # beside this file (job_environment puts it on the jobs' path too)

GROUP = "user_activity"          # the lifetime group: the baseline of the windowed group's rows
WINDOWED = "user_upvotes"        # the windowed group (7d/1d windows, 1h tiles), same source and runner
SEED = 20260107
PROBE_BASE = 1_000_000_000       # probe user ids: far above LiveUpvotes' 0 .. users-1
POLL_S = 0.01                    # Redis poll period of the probe watcher and the progress watcher
DRAIN_TIMEOUT_S = 90             # after the last file: time allowed for Redis to reach the ground truth
PROGRESS_EVERY = 1000            # the per-record injector records its progress every this many rows
ARROW_BATCH_ROWS = 5000          # python.fn-execution.arrow.batch.size, as streaming/runtime.py sets it
FRESHNESS_P99_TARGET_S = 3.0
RATE_TOLERANCE = 0.98            # the achieved event rate must be within 2% of the asked one
RATIO_TARGET = 5.0
VARIANTS = {"batched": "a", "per-record": "b", "bare": "b'"}  # injection job variants and their table labels
CHECKPOINT_WAIT_S = 30           # after the drain: time allowed for a checkpoint triggered after it to complete
MEMORY_SAMPLE = 1000             # user hashes whose MEMORY USAGE is averaged
READ_CALLS = 2000                # timed get_features calls per group
READ_IDS = 100                   # user ids per call
READ_WARMUP = 50                 # untimed calls first (connection, plan caches)
READ_RATIO_TARGET = 1.5          # read p99 windowed / p99 plain


def log(message: str) -> None:
    """Progress line on stderr (stdout carries only the result table)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def redis_mismatches(client: redis.Redis, plan: WritePlan, expected: dict[int, tuple[int, int]]) -> list[str]:
    """How Redis differs from `expected` (user id -> (count, distinct posts)); empty when equal.

    The count and distinct fields are the group's first two features (user_activity: upvotes_total,
    distinct_posts_total; user_upvotes: upvotes_7d, distinct_items_7d). Also checks that Redis holds no
    other user keys than the expected ones.
    """
    fields = plan.fields[:2]
    users = list(expected)
    pipe = client.pipeline(transaction=False)
    for user in users:
        pipe.hmget(layout.entity_key(plan.prefix, plan.entity, user), fields)
    wrong = [(user, want, got) for user, want, got in zip(users, (expected[u] for u in users), pipe.execute())
             if tuple(int(v) if v is not None else None for v in got) != want]
    problems = []
    if wrong:
        user, want, got = wrong[0]
        problems.append(f"{len(wrong):,} of {len(users):,} users differ "
                        f"(e.g. user {user}: Redis {got}, expected {want})")
    keys = sum(1 for _ in client.scan_iter(match=layout.entity_key(plan.prefix, plan.entity, "*"), count=5000))
    if keys != len(users):
        problems.append(f"{keys:,} user keys in Redis, expected {len(users):,}")
    return problems


def job_environment() -> dict[str, str]:
    """The environment streaming.runner gives a job: JAVA_HOME, and the project first on PYTHONPATH; then this
    folder, where the Python workers of the per-record baseline's job import baselines.py from."""
    path = os.pathsep.join(p for p in (str(PROJECT_ROOT), str(Path(__file__).resolve().parent),
                                       os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "JAVA_HOME": ensure_java_home(), "PYTHONPATH": path}


def contracts_origin() -> str | None:
    """Where a job process imports quality.contracts from (the dead-letter check needs it), or None."""
    probe = "import importlib.util as u; s = u.find_spec('quality.contracts'); print(s.origin if s else '')"
    found = subprocess.run([sys.executable, "-c", probe], env=job_environment(), capture_output=True, text=True)
    return found.stdout.strip() or None


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system, s) the live processes of process group `pgid` have used so far, from /proc.

    A job started by streaming.runner is its own session, so its group is its driver, JVM and Python workers.
    """
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Cores a process group used over a stretch of wall time: `with CpuMeter(pgid) as meter: ...; meter.cores`."""

    def __init__(self, pgid: int):
        self.pgid = pgid
        self.cores = float("nan")

    def __enter__(self) -> CpuMeter:
        self._cpu, self._wall = group_cpu_seconds(self.pgid), time.monotonic()
        return self

    def __exit__(self, *_exc) -> None:
        self.cores = (group_cpu_seconds(self.pgid) - self._cpu) / max(time.monotonic() - self._wall, 1e-9)


def read_progress(client: redis.Redis, plan: WritePlan) -> dict[str, int]:
    """The injector's progress markers (rows_written, rows_landed, last_write_ms, ...) in one atomic read."""
    raw = client.hgetall(layout.progress_key(plan.prefix, plan.group, plan.version))
    return {k.decode(): int(v) for k, v in raw.items()}


# --- freshness --------------------------------------------------------------------------------------

class ProbeWatcher:
    """Polls Redis every POLL_S s, in a thread, for the probe users' field of the group's first feature
    (`plan`'s: upvotes_total, upvotes_7d); notes when each appears."""

    def __init__(self, url: str, plan: WritePlan):
        self.client = redis.Redis.from_url(url)
        self.plan = plan
        self.field = plan.fields[0]
        self.pending: dict[int, str] = {}
        self.seen: dict[int, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def expect(self, user: int) -> None:
        """Start looking for probe `user` (call before its file is renamed into place)."""
        with self._lock:
            self.pending[user] = layout.entity_key(self.plan.prefix, self.plan.entity, user)

    def waiting(self) -> int:
        """Probes expected and not seen yet."""
        with self._lock:
            return len(self.pending)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                items = list(self.pending.items())
            if items:
                pipe = self.client.pipeline(transaction=False)
                for _user, key in items:
                    pipe.hexists(key, self.field)
                found = pipe.execute()
                now = time.time()  # after the answer: a conservative (late) bound, within POLL_S + one round trip
                with self._lock:
                    for (user, _key), hit in zip(items, found):
                        if hit:
                            self.seen[user] = now
                            del self.pending[user]
            self._stop.wait(POLL_S)

    def __enter__(self) -> ProbeWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()
        self.client.close()


@dataclass
class Appended:
    """What the writer put into the stream: per-file probes and rename times, and the ground truth."""

    probes: list[tuple[int, float, bool]] = field(default_factory=list)  # (probe user, renamed at, measured)
    measured_events: list[int] = field(default_factory=list)            # events per measured file
    counts: Counter = field(default_factory=Counter)
    posts: defaultdict = field(default_factory=lambda: defaultdict(set))

    @property
    def events(self) -> int:
        """Events sent, probes included."""
        return sum(self.counts.values())

    def add(self, records: list[dict]) -> None:
        """Count sent events into the ground truth."""
        for record in records:
            self.counts[record["user_id"]] += 1
            self.posts[record["user_id"]].add(record["post_id"])

    def expected(self) -> dict[int, tuple[int, int]]:
        """user id -> (count, distinct posts) over every event sent: upvotes_total and distinct_posts_total
        of user_activity, and, the events being timed now, upvotes_7d and distinct_items_7d of user_upvotes."""
        return {user: (count, len(self.posts[user])) for user, count in self.counts.items()}

    def achieved_rate(self) -> float:
        """Events/s of the measured files: events in files 2..n over the time from the first rename to the last."""
        renamed = [at for _user, at, measured in self.probes if measured]
        if len(renamed) < 2:
            return float("nan")
        return sum(self.measured_events[1:]) / (renamed[-1] - renamed[0])


def append_events(directory: Path, rate: float, warmup: float, seconds: float, interval: float,
                  watcher: ProbeWatcher) -> Appended:
    """Append `rate` events/s for `warmup` + `seconds` s, one file every `interval` s on a fixed schedule.

    Each file holds the events of one interval (LiveUpvotes: random users and posts, event time now);
    its last line is the probe. Files renamed in the first `warmup` s are not measured.
    """
    live = LiveUpvotes(DirectorySink(directory), rate=rate, seed=SEED)
    out = Appended()
    start = time.monotonic()
    carry = 0.0
    tick = 0
    while tick * interval < warmup + seconds:
        time.sleep(max(0.0, start + tick * interval - time.monotonic()))
        carry += rate * interval
        count, carry = int(carry), carry - int(carry)
        now = datetime.now(timezone.utc)
        lines, valid = live.batch(max(0, count - 1), now)
        probe = {"event_id": f"probe-{tick}", "user_id": PROBE_BASE + tick, "post_id": tick,
                 "event_time": now.strftime(TIMESTAMP_FORMAT)}
        lines.append(json.dumps(probe, separators=(",", ":")))
        watcher.expect(probe["user_id"])
        write_file(directory, f"{now:%Y%m%dT%H%M%S%f}-bench", lines)
        renamed = time.time()
        measured = tick * interval >= warmup
        out.probes.append((probe["user_id"], renamed, measured))
        out.add([*valid, probe])
        if measured:
            out.measured_events.append(len(lines))
        tick += 1
    return out


@dataclass
class CheckpointState:
    """The job's state in the first checkpoint triggered after the drain (Flink's REST API)."""

    checkpoint_id: int | None
    state_bytes: int | None                  # full state size of all operators (None: no such checkpoint)
    vertices: list[tuple[str, int]]          # (vertex name, its full state size), largest first
    note: str                                # why there is no size, or which field and wait it came from


@dataclass
class Footprint:
    """What one job leaves behind, read after the drain while it still runs: state, Redis memory, reads."""

    state: CheckpointState
    redis_bytes: float | None                # mean MEMORY USAGE of the sampled user hashes
    redis_sampled: int                       # user hashes sampled
    reads: list[float]                       # seconds per get_features call of READ_IDS ids
    read_fields: int                         # hash fields each id's HMGET fetches (features + event time)
    read_problems: list[str]                 # reads that did not return the ground truth
    read_job_cores: float                    # cores the (idle) job's processes used while the reads ran


@dataclass
class FreshnessRun:
    """Result of the freshness run of one group, and its footprint."""

    group: str
    latencies: list[float]   # seconds, measured probes that appeared
    missing: int             # measured probes that never appeared
    appended: Appended
    problems: list[str]      # correctness guard failures; empty = Redis equals the ground truth
    start_seconds: float     # runner.start until the job was RUNNING
    checkpoints: str         # Flink's checkpoint summary, for the notes
    rows_written: int        # the injector's progress marker
    footprint: Footprint
    job_cores: float         # cores the job's processes used from the first file to the drain


def checkpoint_summary(rest: str) -> str:
    """Completed checkpoints and their end-to-end duration, from Flink's REST API."""
    job = runner.flink_job(rest)
    if job is None:
        return "checkpoint statistics unavailable (REST did not answer)"
    stats = runner.rest_call(rest, f"/jobs/{job['jid']}/checkpoints")
    duration = stats.get("summary", {}).get("end_to_end_duration", {})
    counts = stats.get("counts", {})
    failed = (stats.get("latest") or {}).get("failed") or {}
    reason = failed.get("failure_message") or "Flink's REST API gives no reason"
    return (f"{counts.get('completed', 0)} checkpoints completed, {counts.get('failed', 0)} failed"
            + (f" (latest failure: {reason[:160]})" if counts.get("failed") else "")
            + f"; end-to-end duration p50 {duration.get('p50', float('nan')):.0f} ms, "
            f"max {duration.get('max', float('nan')):.0f} ms")


def checkpointed_state(rest: str, after_ms: int) -> CheckpointState:
    """The full state size of the first completed checkpoint triggered at or after `after_ms` (epoch ms).

    Polls /jobs/<jid>/checkpoints for up to CHECKPOINT_WAIT_S s. The size is the checkpoint's
    `state_size` (the full state; `checkpointed_size` is what that checkpoint persisted, smaller when
    incremental), split by vertex from /jobs/<jid>/checkpoints/details/<id>.
    """
    job = runner.flink_job(rest)
    if job is None:
        return CheckpointState(None, None, [], "REST did not answer")
    jid = job["jid"]
    began = time.monotonic()
    completed: dict = {}
    while time.monotonic() - began < CHECKPOINT_WAIT_S:
        try:
            completed = (runner.rest_call(rest, f"/jobs/{jid}/checkpoints").get("latest") or {}).get("completed") or {}
        except (OSError, ValueError, http.client.HTTPException):
            completed = {}
        if completed.get("trigger_timestamp", 0) >= after_ms:
            break
        time.sleep(0.5)
    else:
        return CheckpointState(None, None, [], f"no checkpoint triggered after the drain completed within "
                                               f"{CHECKPOINT_WAIT_S} s")
    waited = time.monotonic() - began
    field_name = "state_size" if "state_size" in completed else "checkpointed_size"
    vertices = []
    try:
        names = {v["id"]: v["name"] for v in runner.rest_call(rest, f"/jobs/{jid}").get("vertices", [])}
        details = runner.rest_call(rest, f"/jobs/{jid}/checkpoints/details/{completed['id']}")
        vertices = sorted(((names.get(vid, vid), int(task.get(field_name, 0)))
                           for vid, task in details.get("tasks", {}).items()), key=lambda v: -v[1])
    except (OSError, ValueError, KeyError, http.client.HTTPException):
        pass  # the per-vertex split is for the notes only
    return CheckpointState(int(completed["id"]), int(completed[field_name]), vertices,
                           f"checkpoint {completed['id']}, `latest.completed.{field_name}`, completed "
                           f"{waited:.1f} s after the drain")


def redis_memory(client: redis.Redis, plan: WritePlan, users: list[int]) -> tuple[float | None, int]:
    """Mean MEMORY USAGE (bytes, SAMPLES 0: every field counted) of the user hashes of `users`, and how many."""
    pipe = client.pipeline(transaction=False)
    for user in users:
        pipe.memory_usage(layout.entity_key(plan.prefix, plan.entity, user), samples=0)
    sizes = [size for size in pipe.execute() if size is not None]
    return (float(np.mean(sizes)) if sizes else None), len(sizes)


def time_reads(url: str, registry: Registry, prefix: str, group: str, users: list[int],
               expected: dict[int, tuple[int, int]]) -> tuple[list[float], int, list[str]]:
    """Time READ_CALLS get_features calls of READ_IDS random users each, of the whole group, one at a time.

    The ids (drawn with SEED from `users`, so both groups read the same ids) and the plan are ready before
    the clock starts; READ_WARMUP untimed calls go first. Each answer's first two features must be the
    ground truth, checked once the clock stopped and then dropped (answers kept for a check at the end
    would grow the heap to ~200k objects and time Python's garbage collector walking them). Returns the
    seconds per call, the hash fields each id fetches, and the problems.
    """
    plan = build_read_plan(registry, prefix, "user", [group])
    store = OnlineStore(connect(url))
    rng = np.random.default_rng(SEED)
    pool = np.array(sorted(users))
    calls = [rng.choice(pool, min(READ_IDS, len(pool)), replace=False).tolist()
             for _ in range(READ_WARMUP + READ_CALLS)]
    count_ref, distinct_ref = plan.refs[:2]
    seconds, wrong, first_wrong = [], 0, None
    for index, ids in enumerate(calls):
        began = time.perf_counter()
        rows = get_features(store, plan, ids)
        took = time.perf_counter() - began
        if index < READ_WARMUP:
            continue
        seconds.append(took)
        for row in rows:
            got = (row.values[count_ref], row.values[distinct_ref])
            if got != expected[row.entity_id]:
                wrong += 1
                first_wrong = first_wrong or (row.entity_id, got)
    store.client.close()
    problems = []
    if wrong:
        user, got = first_wrong
        problems.append(f"read: {wrong:,} of {READ_CALLS * READ_IDS:,} ids read wrong "
                        f"(e.g. user {user}: {got}, expected {expected[user]})")
    return seconds, len(plan.fields), problems


def measure_footprint(url: str, registry: Registry, plan: WritePlan, process: runner.JobProcess, appended: Appended,
                      drained_ms: int) -> Footprint:
    """After the drain, with the job still running: its checkpointed state, its user hashes' Redis memory
    (a SEED sample of up to MEMORY_SAMPLE of the users sent) and the read latency of its group."""
    log(f"  waiting for a checkpoint triggered after the drain (at most {CHECKPOINT_WAIT_S} s)")
    state = checkpointed_state(process.rest, drained_ms)
    log(f"  state: {state.state_bytes} bytes ({state.note})")
    users = sorted(appended.counts)
    sample = np.random.default_rng(SEED).choice(users, min(MEMORY_SAMPLE, len(users)), replace=False).tolist()
    client = redis.Redis.from_url(url)
    redis_bytes, sampled = redis_memory(client, plan, sample)
    client.close()
    log(f"  Redis: {redis_bytes or 0:,.0f} bytes per user hash ({sampled} sampled); timing {READ_CALLS:,} reads "
        f"of {READ_IDS} ids")
    expected = appended.expected()
    with CpuMeter(process.pid) as job_cpu:
        reads, read_fields, read_problems = time_reads(url, registry, plan.prefix, plan.group, users, expected)
    log(f"  reads: p50 {np.percentile(reads, 50) * 1000:.2f} ms, p99 {np.percentile(reads, 99) * 1000:.2f} ms; "
        f"the job used {job_cpu.cores:.2f} cores meanwhile" + (f"; PROBLEMS: {read_problems}" if read_problems else ""))
    return Footprint(state, redis_bytes, sampled, reads, read_fields, read_problems, job_cpu.cores)


def measure_freshness(url: str, group_name: str, rate: float, warmup: float, seconds: float,
                      interval: float) -> FreshnessRun:
    """Start the real job of `group_name` on a temporary data dir, append events, time the probes, check
    Redis; then, the job still running, measure its footprint (measure_footprint)."""
    registry = load_registry()
    group = registry.groups[group_name]
    with tempfile.TemporaryDirectory(prefix="fp-bench-stream-") as tmp:
        settings = load_settings(data_dir=Path(tmp))
        plan = WritePlan.for_group(group, registry.entity_of(group), settings.redis_prefix)
        directory = stream_directory(settings, registry.sources[group.stream.source_tables[0]])
        client = redis.Redis.from_url(url)
        client.flushall()
        log(f"starting the {group_name} job (data dir {tmp})")
        began = time.monotonic()
        process = runner.start(registry, settings, group, url)
        start_seconds = time.monotonic() - began
        try:
            log(f"job RUNNING after {start_seconds:.1f} s (pid {process.pid}, REST {process.rest}); appending "
                f"{rate:,.0f} events/s for {warmup:g} s warm-up + {seconds:g} s, a file every {interval:g} s")
            with ProbeWatcher(url, plan) as watcher, CpuMeter(process.pid) as job_cpu:
                appended = append_events(directory, rate, warmup, seconds, interval, watcher)
                log(f"appended {appended.events:,} events in {len(appended.probes)} files; waiting for the last "
                    f"{watcher.waiting()} probe(s) and for Redis to equal the ground truth")
                expected = appended.expected()
                deadline = time.monotonic() + DRAIN_TIMEOUT_S
                problems = redis_mismatches(client, plan, expected)
                while (problems or watcher.waiting()) and time.monotonic() < deadline:
                    time.sleep(1.0)
                    problems = redis_mismatches(client, plan, expected)
                drained_ms = int(time.time() * 1000)
                seen = dict(watcher.seen)
            footprint = measure_footprint(url, registry, plan, process, appended, drained_ms)
            checkpoints = checkpoint_summary(process.rest)
            rows_written = read_progress(client, plan).get("rows_written", 0)
        finally:
            runner.kill(settings, group)
            client.close()
    measured = [(user, at) for user, at, is_measured in appended.probes if is_measured]
    latencies = [seen[user] - at for user, at in measured if user in seen]
    return FreshnessRun(group_name, latencies, len(measured) - len(latencies), appended, problems, start_seconds,
                        checkpoints, rows_written, footprint, job_cpu.cores)


# --- injection throughput ---------------------------------------------------------------------------

def feature_rows(rows: int) -> pd.DataFrame:
    """The update stream user_activity emits for `rows` deterministic upvotes: one feature row per event.

    Event times are 1 ms apart, so each user's rows carry increasing event times and all of them land.
    """
    rng = np.random.default_rng(SEED)
    users = max(1_000, rows // 10)
    events = pd.DataFrame({
        "user_id": rng.integers(0, users, rows),
        "post_id": rng.integers(0, 10_000, rows),
        "event_time": pd.Timestamp("2026-01-07") + pd.to_timedelta(np.arange(rows), unit="ms"),
    })
    by_user = events.groupby("user_id")
    first_upvote = (~events.duplicated(["user_id", "post_id"])).astype("int64")
    return pd.DataFrame({
        "user_id": events["user_id"],
        "upvotes_total": by_user.cumcount() + 1,
        "distinct_posts_total": first_upvote.groupby(events["user_id"]).cumsum(),
        "last_upvote_at": events["event_time"],
        EVENT_TIME_COLUMN: events["event_time"],
    })


def write_feature_rows(frame: pd.DataFrame, directory: Path) -> None:
    """The rows as one JSON-lines file (read in order by one split), timestamps in Flink's SQL format."""
    out = frame.copy()
    for column in ("last_upvote_at", EVENT_TIME_COLUMN):
        out[column] = out[column].dt.strftime(TIMESTAMP_FORMAT)
    write_file(directory, "feature_rows", (json.dumps(r, separators=(",", ":")) for r in out.to_dict("records")))


def final_values(frame: pd.DataFrame) -> dict[int, tuple[int, int]]:
    """user id -> (upvotes_total, distinct_posts_total) of each user's last row: what Redis must hold."""
    last = frame.groupby("user_id").last()
    return {int(user): (int(count), int(distinct))
            for user, count, distinct in zip(last.index, last["upvotes_total"], last["distinct_posts_total"])}


class PerRecordWriter:
    """Writes one feature row (key, features..., feature_ts as Python values) in one Redis round trip.

    `bare=False`: a one-row Arrow batch through baselines.write_per_record, the platform's per-record
    writer (baseline (b)). `bare=True`: the same guarded script called directly with the values encoded
    in Python as serving.codec encodes them, no Arrow (baseline (b')): what a lean per-record sink costs.
    """

    def __init__(self, client: redis.Redis, plan: WritePlan, bare: bool):
        self.store = OnlineStore(client)
        self.plan = plan
        self.bare = bare
        self.names = [plan.key_column, *(name for name, _ in plan.features), EVENT_TIME_COLUMN]
        self.script = client.register_script(GUARDED_WRITE)

    def write(self, values: tuple) -> int:
        """Write the row; 1 if it landed (its event time is not older than the stored one), else 0."""
        if not self.bare:
            return write_per_record(self.store, self.plan, pa.RecordBatch.from_pydict(
                {name: [value] for name, value in zip(self.names, values)}))
        key, *features, event_time = values
        encoded = [encode_value(dtype, value) for (_, dtype), value in zip(self.plan.features, features)]
        landed, _refused = self.script(keys=[layout.entity_key(self.plan.prefix, self.plan.entity, key)],
                                       args=[*self.plan.script_head(), datetime_to_micros(event_time), *encoded])
        return landed


def encode_value(dtype: str, value):
    """One Python value as serving.codec.encode_column encodes it (NULL for None), without Arrow."""
    if value is None:
        return NULL
    if dtype == "timestamp":
        return datetime_to_micros(value)
    if dtype == "bool":
        return "1" if value else "0"
    if dtype == "date":
        return value.isoformat()
    return float(value) if dtype == "float64" else value


class PerRecordInjector(ScalarFunction):
    """Baselines (b) and (b'): a row-at-a-time UDF writing each row in its own round trip (PerRecordWriter).

    Records its progress like the platform's injector, every PROGRESS_EVERY rows and on close, so all
    variants are timed by the same markers.
    """

    def __init__(self, plan: WritePlan, redis_url: str, bare: bool):
        self.plan = plan
        self.redis_url = redis_url
        self.bare = bare
        self.writer = None
        self.rows = self.landed = self.newest = 0

    def open(self, function_context):
        self.writer = PerRecordWriter(connect(self.redis_url), self.plan, self.bare)

    def eval(self, *values):
        landed = self.writer.write(values)
        self.rows += 1
        self.landed += landed
        self.newest = max(self.newest, datetime_to_micros(values[-1]))
        if self.rows >= PROGRESS_EVERY:
            self._record()
        return landed

    def _record(self) -> None:
        if self.rows:
            self.writer.store.record_progress(self.plan, self.rows, self.landed, self.newest, int(time.time() * 1000))
            self.rows = self.landed = 0

    def close(self):
        if self.writer is not None:
            self._record()
            self.writer.store.client.close()


def run_injection_job(variant: str, rows_dir: Path, redis_url: str, work_dir: Path) -> None:
    """One injection variant as a bounded Flink job in this process: rows file -> UDF -> PK blackhole sink."""
    from pyflink.table import DataTypes
    from pyflink.table.udf import udf

    from streaming import runtime

    registry = load_registry()
    group = registry.groups[GROUP]
    settings = load_settings(data_dir=work_dir)
    plan = WritePlan.for_group(group, registry.entity_of(group), settings.redis_prefix)
    args = runtime.JobArgs(redis_url, None, None, False)  # REST on port 0: any free port, no race to lose
    t_env = runtime.table_environment(f"benchmarks/stream.py injection {variant}", args,
                                      checkpoint_dir=work_dir / "checkpoints",
                                      checkpoint_seconds=settings.stream_checkpoint_seconds,
                                      flush_ms=settings.stream_flush_ms, flink_rest=None)
    function = (runtime.injector(plan, redis_url, False) if variant == "batched"
                else udf(PerRecordInjector(plan, redis_url, bare=variant == "bare"), result_type=DataTypes.BIGINT()))
    t_env.create_temporary_system_function("inject", function)
    columns = [(plan.key_column, "int64"), *plan.features, (EVENT_TIME_COLUMN, "timestamp")]
    t_env.execute_sql(f"""
CREATE TABLE feature_rows ({", ".join(f"{name} {FLINK_TYPES[dtype]}" for name, dtype in columns)})
WITH ('connector' = 'filesystem', 'path' = '{rows_dir.resolve().as_uri()}', 'format' = 'json')
""")
    t_env.execute_sql(f"""
CREATE TABLE online ({plan.key_column} BIGINT, landed BIGINT, PRIMARY KEY ({plan.key_column}) NOT ENFORCED)
WITH ('connector' = 'blackhole')
""")
    t_env.execute_sql(f"INSERT INTO online SELECT {plan.key_column}, inject({', '.join(n for n, _ in columns)}) "
                      "FROM feature_rows").wait()


@dataclass
class InjectionRun:
    """One injection variant: rows/s between the first and last progress marker, job wall time, guard."""

    rows: int
    rate: float | None
    job_seconds: float
    problems: list[str]


def measure_injection(variant: str, rows_dir: Path, url: str, plan: WritePlan, expected: dict, rows: int,
                      work: Path) -> InjectionRun:
    """Run one variant's job in a fresh process (its own JVM) against an emptied Redis and time its markers."""
    client = redis.Redis.from_url(url)
    client.flushall()
    timeout = 120 + rows / 1_000
    work.mkdir(parents=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--injection-job", variant, "--rows-dir", str(rows_dir),
               "--redis-url", url, "--work-dir", str(work)]
    log(f"({VARIANTS[variant]}) {variant} injection of {rows:,} rows in a fresh Flink process "
        f"(at most {timeout:.0f} s)")
    began = time.monotonic()
    with open(work / "job.log", "wb") as job_log:
        proc = subprocess.Popen(command, stdout=job_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=job_environment(), start_new_session=True)
    first = None
    try:
        while proc.poll() is None and time.monotonic() - began < timeout:
            if first is None and read_progress(client, plan).get("rows_written"):
                first = read_progress(client, plan)
            time.sleep(POLL_S if first is None else 0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    job_seconds = time.monotonic() - began
    last = read_progress(client, plan)
    problems = []
    if proc.returncode != 0:
        tail = (work / "job.log").read_text(errors="replace")[-1500:]
        problems.append(f"job exited with status {proc.returncode} after {job_seconds:.0f} s")
        log(f"  job log tail:\n{tail}")
    if last.get("rows_written") != rows or last.get("rows_landed") != rows:
        problems.append(f"progress says {last.get('rows_written', 0):,} written, {last.get('rows_landed', 0):,} landed"
                        f" of {rows:,}")
    problems += redis_mismatches(client, plan, expected)
    client.close()
    rate = None
    if first is not None and last.get("last_write_ms", 0) > first["last_write_ms"]:
        seconds = (last["last_write_ms"] - first["last_write_ms"]) / 1000
        rate = (last["rows_written"] - first["rows_written"]) / seconds
    log(f"  {'n/a' if rate is None else f'{rate:,.0f}'} rows/s; job {job_seconds:.1f} s"
        + (f"; PROBLEMS: {problems}" if problems else ""))
    return InjectionRun(rows, rate, job_seconds, problems)


@dataclass
class RawRun:
    """The same rows through a writer outside Flink: rows/s over the write calls, and the guard."""

    rate: float
    problems: list[str]


def measure_raw(url: str, plan: WritePlan, frame: pd.DataFrame, expected: dict) -> dict[str, RawRun]:
    """The same rows outside Flink: (c) OnlineStore.write on ARROW_BATCH_ROWS-row batches, then one round
    trip per row with (d) PerRecordWriter as in (b) and (e) the bare PerRecordWriter as in (b')."""
    client = redis.Redis.from_url(url)
    store = OnlineStore(client)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.cast(pa.schema([pa.field(f.name, pa.timestamp("us")) if pa.types.is_timestamp(f.type) else f
                                  for f in table.schema]))
    rows = len(frame)
    values = list(zip(*(table.column(name).to_pylist() for name in table.column_names)))  # what a row UDF gets
    variants = {
        "c": (f"OnlineStore.write, {ARROW_BATCH_ROWS:,}-row batches",
              lambda: sum(store.write(plan, table.slice(start, ARROW_BATCH_ROWS))
                          for start in range(0, rows, ARROW_BATCH_ROWS))),
        "d": ("one-row Arrow batch + baselines.write_per_record per row",
              lambda: sum(map(PerRecordWriter(client, plan, bare=False).write, values))),
        "e": ("bare EVALSHA of the guarded script per row",
              lambda: sum(map(PerRecordWriter(client, plan, bare=True).write, values))),
    }
    runs = {}
    for name, (label, write) in variants.items():
        log(f"({name}) {label}: {rows:,} rows outside Flink")
        client.flushall()
        began = time.perf_counter()
        landed = write()
        seconds = time.perf_counter() - began
        problems = [] if landed == rows else [f"{landed:,} of {rows:,} rows landed"]
        runs[name] = RawRun(rows / seconds, problems + redis_mismatches(client, plan, expected))
    client.flushall()
    client.close()
    return runs


# --- the table --------------------------------------------------------------------------------------

def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _guard(problems: list[str]) -> str:
    return "OK" if not problems else "FAIL"


def _rate(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:,.0f}"


def _seconds(values: list[float], unit: str = "s", scale: float = 1.0) -> list[str]:
    """p50, p95, p99 and max of `values` (seconds), times `scale`, with `unit`; n/a for none."""
    if not values:
        return ["n/a"] * 4
    digits = 2 if unit == "s" else 3
    return [f"{v * scale:.{digits}f} {unit}" for v in (*np.percentile(values, [50, 95, 99]), max(values))]


def _bytes(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return top / bottom if top and bottom else None


def _drift(latencies: list[float]) -> str:
    """Mean latency of the first, middle and last third of the probes, in file order: rising means the job
    falls behind the rate (a backlog builds), flat means a steady delay."""
    thirds = np.array_split(np.array(latencies), 3) if len(latencies) >= 3 else []
    return " / ".join(f"{part.mean():.2f}" for part in thirds) + " s" if thirds else "n/a"


def _per_user(run: FreshnessRun) -> float | None:
    """The run's checkpointed state size divided by the distinct users sent (None without a checkpoint)."""
    size = run.footprint.state.state_bytes
    return None if size is None or not run.appended.counts else size / len(run.appended.counts)


def _state_note(run: FreshnessRun) -> str:
    """Where the run's state size came from, and its largest vertices."""
    state = run.footprint.state
    if state.state_bytes is None:
        return f"no size: {state.note}"
    largest = ", ".join(f"{name[:60]}{'...' if len(name) > 60 else ''}: {size:,}" for name, size in state.vertices[:2])
    return (f"{state.state_bytes:,} bytes / {len(run.appended.counts):,} users; {state.note}"
            + (f";\n    largest vertices: {largest}" if largest else ""))


def render(args: argparse.Namespace, fresh: FreshnessRun, windowed: FreshnessRun, injection: dict[str, InjectionRun],
           raw: dict[str, RawRun], context: dict) -> str:
    """The one result table, and notes saying exactly what each number is."""
    monitor = MONITOR_SECONDS
    header = ("measurement", "n", "p50", "p95", "p99", "max", "rate /s", "bytes", "target", "result")
    table = [header]

    def row(label: str, n: str = "", stats=("", "", "", ""), rate: str = "", size: str = "", target: str = "",
            result: str = "") -> tuple:
        return (label, n, *stats, rate, size, target, result)

    def freshness_row(label: str, run: FreshnessRun) -> tuple:
        achieved = run.appended.achieved_rate()
        met = (bool(run.latencies) and np.percentile(run.latencies, 99) <= FRESHNESS_P99_TARGET_S and not run.missing
               and achieved >= RATE_TOLERANCE * args.rate)
        return row(label, f"{len(run.latencies):,}", _seconds(run.latencies), _rate(achieved),
                   target=f"p99 <= {FRESHNESS_P99_TARGET_S:g} s @ {args.rate:,.0f}/s",
                   result="INVALID" if run.problems else _verdict(met))

    def size_rows(label: str, baseline: str, top: float | None, bottom: float | None, n_top: int,
                  n_bottom: int) -> list[tuple]:
        ratio = _ratio(top, bottom)
        return [row(label, f"{n_top:,}", size=_bytes(top)),
                row(f"  baseline: {baseline}", f"{n_bottom:,}", size=_bytes(bottom)),
                row("  ratio windowed / lifetime", size="n/a" if ratio is None else f"{ratio:.1f}x")]

    w, f = windowed.footprint, fresh.footprint
    read_ratio = _ratio(np.percentile(w.reads, 99), np.percentile(f.reads, 99)) if w.reads and f.reads else None
    read_invalid = w.read_problems or f.read_problems or windowed.problems or fresh.problems
    read_verdict = "INVALID" if read_invalid else _verdict(read_ratio is not None and read_ratio <= READ_RATIO_TARGET)
    table += [
        freshness_row("freshness: event appended -> visible in Redis", fresh),
        row(f"  baseline: wait for the next scan, U(0, {monitor:g} s)", "",
            [f"{q * monitor:.2f} s" for q in (0.5, 0.95, 0.99, 1.0)]),
        row("  guard: Redis == ground truth of events sent", f"{fresh.appended.events:,}", target="equal",
            result=_guard(fresh.problems)),
        freshness_row(f"freshness, windowed {WINDOWED} (baseline: the lifetime job above)", windowed),
        row("  guard: Redis == ground truth of events sent", f"{windowed.appended.events:,}", target="equal",
            result=_guard(windowed.problems)),
        *size_rows("state per active user, windowed (7d/1d tiles)", f"state per active user, lifetime ({GROUP})",
                   _per_user(windowed), _per_user(fresh), len(windowed.appended.counts), len(fresh.appended.counts)),
        *size_rows(f"Redis memory per user hash, windowed ({WINDOWED})",
                   f"Redis memory per user hash, lifetime ({GROUP})", w.redis_bytes, f.redis_bytes, w.redis_sampled,
                   f.redis_sampled),
        row(f"read: get_features, {READ_IDS} ids of {WINDOWED} (windowed)", f"{len(w.reads):,}",
            _seconds(w.reads, "ms", 1000)),
        row(f"  baseline: the same read of {GROUP} (plain)", f"{len(f.reads):,}", _seconds(f.reads, "ms", 1000)),
        row("  ratio p99 windowed / plain", stats=("", "", "n/a" if read_ratio is None else f"{read_ratio:.2f}x", ""),
            target=f"<= {READ_RATIO_TARGET:g}x", result=read_verdict),
        row("  guard: every id read == ground truth", f"{(len(w.reads) + len(f.reads)) * READ_IDS:,}",
            target="equal", result=_guard(w.read_problems + f.read_problems)),
    ]
    a, b, bare = injection["batched"], injection["per-record"], injection["bare"]
    c, d, e = raw["c"], raw["d"], raw["e"]

    def rate_row(label: str, rows: int, rate: float | None) -> tuple:
        return row(label, f"{rows:,}", rate=_rate(rate))

    def ratio_row(label: str, top: InjectionRun, bottom: InjectionRun) -> tuple:
        ratio = top.rate / bottom.rate if top.rate and bottom.rate else None
        met = ratio is not None and ratio >= RATIO_TARGET
        verdict = "INVALID" if top.problems or bottom.problems else _verdict(met)
        shown = "n/a" if ratio is None else f"{ratio:.1f}x"
        return row(label, rate=shown, target=f">= {RATIO_TARGET:g}x", result=verdict)

    table += [
        rate_row("(a) injection in Flink: InjectFeatures (vectorized)", a.rows, a.rate),
        rate_row("(b) baseline in Flink: row UDF + write_per_record", b.rows, b.rate),
        ratio_row("  ratio a/b", a, b),
        rate_row("(b') baseline in Flink: row UDF + bare EVALSHA", bare.rows, bare.rate),
        ratio_row("  ratio a/b'", a, bare),
        row("  guard: all rows landed, Redis == last rows", f"{a.rows + b.rows + bare.rows:,}", target="equal",
            result=_guard(a.problems + b.problems + bare.problems)),
        rate_row("context, no Flink: (c) OnlineStore.write", a.rows, c.rate),
        rate_row("context, no Flink: (d) write_per_record per row", a.rows, d.rate),
        rate_row("context, no Flink: (e) bare EVALSHA per row", a.rows, e.rate),
        row("  ratios c/d, c/e", rate=f"{c.rate / d.rate:.1f}x, {c.rate / e.rate:.1f}x"),
        row("  guard: all rows landed, Redis == last rows", f"{3 * a.rows:,}", target="equal",
            result=_guard(c.problems + d.problems + e.problems)),
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in table]
    lines.insert(1, "-" * len(lines[0]))
    runs = {"freshness": fresh, f"freshness {WINDOWED}": windowed, "(a)": a, "(b)": b, "(b')": bare, "(c)": c,
            "(d)": d, "(e)": e}
    problems = [f"  {name}: {problem}" for name, run in runs.items() for problem in run.problems]
    problems += [f"  reads {run.group}: {problem}" for run in (fresh, windowed)
                 for problem in run.footprint.read_problems]
    notes = [
        f"freshness: the generated {GROUP} job (file source listed every {MONITOR_SECONDS:g} s, Python "
        f"bundle.time {context['flush_ms']} ms, checkpoints",
        f"  every {context['checkpoint_s']} s, parallelism 1), started by streaming.runner.start in "
        f"{fresh.start_seconds:.1f} s, on a private Redis. {args.rate:,.0f} events/s as one atomic",
        f"  JSON-lines file every {args.file_interval:g} s (~{args.rate * args.file_interval:,.0f} events each, the "
        f"last a probe by a user of its own); {args.warmup:g} s warm-up, then {args.seconds:g} s measured.",
        f"  latency = first poll (every {POLL_S * 1000:.0f} ms) finding the probe user's upvotes_total in Redis - wall "
        "time right after the file's rename;",
        f"  n = measured probes seen ({fresh.missing} never seen); rate = events in measured files 2..n / time from "
        "the first measured rename to the last.",
        f"  mean latency of the first / middle / last third of the probes: {_drift(fresh.latencies)} (rising: the job "
        "falls behind the rate);",
        f"  the job's processes (driver, JVM, Python workers) used {fresh.job_cores:.2f} cores from the first file to "
        "the drain.",
        "  baseline = the wait for the next directory scan alone, for a file arriving at a random phase (analytic, "
        "not measured).",
        "  guard: every user's upvotes_total and distinct_posts_total in Redis equal a Python count over all "
        f"{fresh.appended.events:,} events sent (warm-up",
        f"  included) and there are no other user keys; the injector's rows_written marker: {fresh.rows_written:,}.",
        f"  Flink: {fresh.checkpoints}.",
        f"  The dead-letter check imported quality.contracts from {context['contracts']}.",
        f"freshness, windowed: the generated {WINDOWED} job (its declared windows through streaming.runtime's "
        "WindowOperator, same source, settings",
        f"  and runner), started in {windowed.start_seconds:.1f} s on the emptied Redis, fed the same event stream "
        f"(same seed and schedule, event time now) and measured",
        f"  exactly as above, the probe watched on upvotes_7d; {windowed.missing} probes never seen; mean latency of "
        "the first / middle / last third:",
        f"  {_drift(windowed.latencies)}; the job used {windowed.job_cores:.2f} cores. Its baseline is the lifetime "
        f"{GROUP} job above (no windows).",
        "  guard: upvotes_7d and distinct_items_7d equal the same Python count and distinct posts (every event is "
        "inside both windows);",
        f"  rows_written marker: {windowed.rows_written:,}.",
        f"  Flink: {windowed.checkpoints}.",
        "state per active user: after the drain, each job still running, the full state size (Flink REST "
        "/jobs/<jid>/checkpoints) of the first",
        f"  checkpoint triggered after Redis equalled the ground truth (waited at most {CHECKPOINT_WAIT_S} s), divided "
        "by the distinct users sent (probes",
        "  included). All operators' state (keyed state, the window operator's timers, sources, sinks); per job:",
        *(f"  {run.group}: {_state_note(run)}" for run in (windowed, fresh)),
        f"Redis memory per user hash: mean MEMORY USAGE ... SAMPLES 0 (every field counted, key and overhead "
        f"included) of up to {MEMORY_SAMPLE:,} user",
        "  hashes drawn with the benchmark's seed from the users sent (the same users for both jobs), each job's "
        "hashes alone in Redis;",
        f"  {w.read_fields} hash fields of {WINDOWED} vs {f.read_fields} of {GROUP} (features + event time, named "
        "<group>:v<version>:<feature>).",
        f"read: {READ_CALLS:,} calls (after {READ_WARMUP} untimed) of serving.get_features.get_features(OnlineStore("
        "connect(url)), build_read_plan(registry,",
        f"  prefix, 'user', [group]), ids), {READ_IDS} distinct random ids per call drawn with the seed from the users "
        "sent (the same ids for both",
        "  groups), one call at a time from this process over loopback, while the job is still running (idle: it used "
        f"{w.read_job_cores:.2f} cores meanwhile,",
        f"  the lifetime job {f.read_job_cores:.2f}).",
        "  Latency per call from just before to just after the call (plan and ids ready). Guard: every id's first "
        "two features read equal the",
        "  ground truth.",
        f"injection: the same {a.rows:,} feature rows ({context['users']:,} users; user_activity's update stream) in "
        "one JSON-lines file: a bounded",
        "  filesystem source -> UDF -> blackhole sink with PRIMARY KEY; each job in a fresh process with the generated "
        "job's Flink settings.",
        f"  (a) streaming.runtime.injector: pandas UDF, one pipelined guarded write per Arrow batch (<= "
        f"{ARROW_BATCH_ROWS:,} rows or {context['flush_ms']} ms).",
        "  (b) a plain ScalarFunction: per row, a one-row Arrow batch -> baselines.write_per_record (one EVALSHA "
        "round trip).",
        "  (b') the same UDF calling the guarded script itself with values encoded in Python: one EVALSHA per row, "
        "no Arrow work.",
        "  rate = (rows_written at the last progress marker - at the first marker seen) / (their last_write_ms "
        f"difference), so JVM start and",
        f"  teardown are excluded; (b), (b') record progress every {PROGRESS_EVERY:,} rows. Job wall times: "
        f"a {a.job_seconds:.0f} s, b {b.job_seconds:.0f} s, b' {bare.job_seconds:.0f} s.",
        "  context: the same rows and writers in this process without Flink, rows/s over the write calls only; (c) "
        f"{ARROW_BATCH_ROWS:,}-row batches,",
        "  (d) as (b), (e) as (b').",
        f"machine: {os.cpu_count()} cores shared with other jobs; load average (1/5/15 min) {context['load_before']} "
        f"before, {context['load_after']} after;",
        f"  redis-server {context['redis_version']} on loopback; total wall time {context['wall_s']:.0f} s.",
        *(["guard failures:", *problems] if problems else []),
    ]
    title = (f"Streaming benchmark: freshness, state, Redis memory and reads of the {GROUP} (lifetime) and {WINDOWED} "
             f"(windowed) jobs at {args.rate:,.0f} events/s, and injection throughput batched vs per-record on "
             f"{a.rows:,} rows")
    return "\n".join([title, "", *lines, "", *notes])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; `--quick` is a smoke run unless sizes are given."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000, help="events/s appended (default 1,000)")
    parser.add_argument("--seconds", type=float,
                        help="measured seconds of appending, per freshness run (default 60; 15 with --quick)")
    parser.add_argument("--warmup", type=float, default=30,
                        help="seconds appended before measuring, per freshness run (default 30: the first half "
                             "minute of a fresh job, its Python workers and state cache warming up, is slower)")
    parser.add_argument("--file-interval", type=float, default=0.21, help="seconds between stream files (default 0.21)")
    parser.add_argument("--rows", type=int, help="rows per injection variant (default 200,000; 20,000 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 15 s of events per freshness run, 20k rows")
    parser.add_argument("--injection-job", choices=tuple(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--rows-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    parser.add_argument("--work-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (15 if args.quick else 60)
    args.rows = args.rows or (20_000 if args.quick else 200_000)
    return args


def main(argv: list[str] | None = None) -> None:
    """Freshness runs of the lifetime then the windowed group (each with its footprint), then the injection jobs
    and the context writes, on one private Redis; print the table."""
    args = parse_args(argv)
    if args.injection_job:  # this process is one injection variant, started by measure_injection
        run_injection_job(args.injection_job, args.rows_dir, args.redis_url, args.work_dir)
        return
    contracts = contracts_origin()
    if contracts is None:
        sys.exit("quality.contracts is missing: the job's dead-letter check imports it; put a stand-in on PYTHONPATH")
    started = time.perf_counter()
    settings = load_settings()
    context = {"flush_ms": settings.stream_flush_ms, "checkpoint_s": settings.stream_checkpoint_seconds,
               "contracts": contracts, "load_before": "/".join(f"{v:.1f}" for v in os.getloadavg())}
    with local_redis() as url, tempfile.TemporaryDirectory(prefix="fp-bench-inject-") as tmp:
        client = redis.Redis.from_url(url)
        context["redis_version"] = client.info("server")["redis_version"]
        client.close()
        fresh = measure_freshness(url, GROUP, args.rate, args.warmup, args.seconds, args.file_interval)
        windowed = measure_freshness(url, WINDOWED, args.rate, args.warmup, args.seconds, args.file_interval)
        for run in (fresh, windowed):
            log(f"freshness {run.group}: {len(run.latencies)} samples, guard {_guard(run.problems)} "
                f"{run.problems or ''}")

        registry = load_registry()
        group = registry.groups[GROUP]
        plan = WritePlan.for_group(group, registry.entity_of(group), settings.redis_prefix)
        log(f"generating {args.rows:,} feature rows")
        frame = feature_rows(args.rows)
        expected = final_values(frame)
        context["users"] = len(expected)
        rows_dir = Path(tmp) / "rows"
        write_feature_rows(frame, rows_dir)
        injection = {variant: measure_injection(variant, rows_dir, url, plan, expected, args.rows, Path(tmp) / variant)
                     for variant in VARIANTS}
        raw = measure_raw(url, plan, frame, expected)
    context["load_after"] = "/".join(f"{v:.1f}" for v in os.getloadavg())
    context["wall_s"] = time.perf_counter() - started
    print(render(args, fresh, windowed, injection, raw, context))
    log(f"total wall time {context['wall_s']:.0f} s")
    if any(run.problems or run.footprint.read_problems for run in (fresh, windowed)) \
            or any(run.problems for run in (*injection.values(), *raw.values())):
        sys.exit(1)


if __name__ == "__main__":
    main()
