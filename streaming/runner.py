"""Launch, watch, stop and resume a group's streaming job (or a source's ingest job, streaming/ingest.py) as
its own process (never inside Dagster).

A job runs `python run.py` detached; locally its Flink mini-cluster serves the REST API on a free
loopback port, recorded in `<job dir>/job.json` with the process id. Stopping takes a savepoint through
the REST API; starting again resumes from the newest savepoint or retained checkpoint, so a killed job
picks up where its last checkpoint left off.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

from assets.registry import Registry
from assets.specs import FeatureGroup, Source
from infra.errors import PlatformError
from infra.java import ensure_java_home
from infra.redis_server import free_loopback_port
from infra.settings import PROJECT_ROOT, Settings
from streaming.bootstrap import prepare_bootstrap, recorded_bootstrap
from streaming.codegen import BOUNDED, LIVE, REPLAY, build_job, command, job_dir, job_name, stream_sources
from streaming.connectors import prepare_inputs, stream_directory
from streaming.event_files import newest_event_in

START_TIMEOUT_S = 120
FAILED_EXIT_WAIT_S = 20  # for a job that failed as it started to print why
REPLAY_STALL_S = 600  # a replay phase that reads nothing for this long has failed
FAILED_STATES = ("FAILING", "FAILED")
EXCEPTION_LINE = re.compile(r"^(?:Caused by: )?([\w.$]*(?:Error|Exception|Exit)[\w$]*(?:: .*)?)$")


@dataclass(frozen=True)
class JobProcess:
    """A launched job: its process, REST endpoint and what it resumed from."""

    group: str  # the group's name, or the source's for an ingest job
    pid: int
    rest: str
    redis_url: str | None  # None for an ingest job, which writes the event log only
    started_at: float
    restored_from: str | None
    stopped: bool = False  # stopped on purpose (featctl stream stop), as opposed to crashed
    log_offset: int = 0  # where this launch's output starts in the job's log
    killed: bool = False  # ended by `featctl stream kill` (SIGKILL, no savepoint), as a crash would end it
    replaying: int | None = None  # a first start's replay phase: the events it replays before the live job takes over


def _state_path(settings: Settings, subject: FeatureGroup | Source) -> Path:
    return job_dir(settings, subject) / "job.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of this process counts as gone
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True


def rest_call(rest: str, path: str, body: dict | None = None, timeout: float = 5, method: str | None = None) -> dict:
    """One call to Flink's REST API (GET, or POST with a JSON body, or `method`)."""
    data = None if body is None else json.dumps(body).encode()
    method = method or ("POST" if body is not None else "GET")
    request = urllib.request.Request(f"http://{rest}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


def last_job(settings: Settings, subject: FeatureGroup | Source) -> JobProcess | None:
    """The group's (or source's ingest) most recently launched job, alive or not; None if it was never started."""
    path = _state_path(settings, subject)
    return JobProcess(**json.loads(path.read_text())) if path.exists() else None


def running_job(settings: Settings, subject: FeatureGroup | Source) -> JobProcess | None:
    """The group's (or source's ingest) job process if it is alive, else None."""
    process = last_job(settings, subject)
    return process if process is not None and _alive(process.pid) else None


def latest_restore_point(settings: Settings, subject: FeatureGroup | Source) -> str | None:
    """The newest savepoint or retained checkpoint of the group's (or source's ingest) job, or None for a
    first start."""
    directory = job_dir(settings, subject)
    found = [*directory.glob("savepoints/*/_metadata"), *directory.glob("checkpoints/*/chk-*/_metadata")]
    if not found:
        return None
    return str(max(found, key=lambda p: p.stat().st_mtime).parent)


def flink_job(rest: str, name: str | None = None, started_after: float = 0) -> dict | None:
    """The job called `name` (any, for a mini-cluster's one job) at `rest` started after the epoch second
    `started_after`, from /jobs/overview: the live one if there is one, else the newest. On a session cluster
    the other groups' jobs, and this group's earlier ones, run or ran beside it."""
    try:
        jobs = rest_call(rest, "/jobs/overview")["jobs"]
    except (urllib.error.URLError, OSError, KeyError, ValueError, http.client.HTTPException):
        return None  # not up yet, or something else (another process) answers on that port
    jobs = [j for j in jobs if (name is None or j["name"] == name) and j["start-time"] >= started_after * 1000]
    live = [j for j in jobs if j["state"] not in ("FINISHED", "CANCELED", "FAILED")] or jobs
    return max(live, key=lambda j: j["start-time"]) if live else None


def all_tasks_up(job: dict) -> bool:
    """Whether every task of a job (from /jobs/overview) runs or has finished its input."""
    tasks = job["tasks"]
    return tasks.get("running", 0) + tasks.get("finished", 0) == tasks["total"]


def one_line_cause(text: str) -> str:
    """The root cause in a Java or Python stack trace, as one line: the last exception line it names."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    causes = [m.group(1) for m in map(EXCEPTION_LINE.match, lines) if m]
    return (causes[-1] if causes else lines[-1] if lines else "no output")[:300]


def failure_cause(settings: Settings, subject: FeatureGroup | Source) -> str | None:
    """Why the last launched job ended, from its log since that launch (None if it never ran)."""
    process = last_job(settings, subject)
    log_path = job_dir(settings, subject) / "job.log"
    if process is not None and process.killed:
        return (f"killed with SIGKILL (featctl {command(subject)} kill): no savepoint, the next start resumes "
                "from a checkpoint")
    if process is None or not log_path.exists():
        return None
    with open(log_path, "rb") as log:
        log.seek(process.log_offset)
        return one_line_cause(log.read().decode(errors="replace"))


def job_exception(rest: str, jid: str) -> str | None:
    """The newest exception Flink recorded for job `jid`, as one line (None when it has none)."""
    try:
        history = rest_call(rest, f"/jobs/{jid}/exceptions").get("exceptionHistory", {}).get("entries", [])
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException):
        return None
    return one_line_cause(history[0].get("stacktrace", "")) if history else None


def _fix_for(subject: FeatureGroup | Source, restore: str | None, output: str, log_path: Path) -> str:
    """What to do about a job that failed as it started: a savepoint the job no longer matches (the platform's
    job graph changed in an upgrade) is repaired from the event log; anything else is in the job's log."""
    if restore and "Cannot map checkpoint/savepoint state" in output and isinstance(subject, Source):
        return (f"its state {restore} was written by a job of another shape (a platform upgrade): move it aside "
                f"and featctl ingest run {subject.name} reads the stream from its start (the event log keeps one "
                "copy of each line: days already landed are replaced, not doubled)")
    if restore and "Cannot map checkpoint/savepoint state" in output:
        return (f"its state {restore} was written by a job of another shape (a platform upgrade): "
                f"featctl stream repair {subject.name} starts it afresh from the event log")
    return f"the whole output is in {log_path}"


def _output_since(log_path: Path, offset: int) -> str:
    """What a job's run.py has written to its log since `offset` (where this launch began)."""
    with open(log_path, "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def _launch(settings: Settings, group: FeatureGroup | Source, script: Path, redis_url: str | None,
            restore: str | None, phase: str, replaying: int | None = None, handover: bool = False) -> JobProcess | None:
    """Start run.py on a free REST port and wait until every task runs or has finished (the replay source
    ends once it has read the event log; a bounded job may have finished altogether).

    Returns None when the mini-cluster lost its port to another process between our check and its
    bind (the caller retries on a new port); raises for any other failure.
    """
    directory = script.parent
    port = free_loopback_port()
    args = [sys.executable, str(script), "--rest-port", str(port)] + (["--redis-url", redis_url] if redis_url else [])
    if restore:
        args += ["--restore", restore] + (["--handover"] if handover else [])
    pythonpath = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "JAVA_HOME": ensure_java_home(), "PYTHONPATH": pythonpath}
    log_path = directory / "job.log"
    log_start = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(args, cwd=directory, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    rest = settings.flink_rest or f"127.0.0.1:{port}"
    process = JobProcess(group=group.name, pid=proc.pid, rest=rest, redis_url=redis_url, started_at=time.time(),
                         restored_from=restore, log_offset=log_start, replaying=replaying)
    _state_path(settings, group).write_text(json.dumps(asdict(process)))
    deadline, job = time.monotonic() + START_TIMEOUT_S, None
    while time.monotonic() < deadline:
        if proc.poll() == 0 and phase == BOUNDED:
            return process
        if proc.poll() is not None:
            output = _output_since(log_path, log_start)
            if "BindException" in output and not settings.flink_rest:
                return None
            cause = one_line_cause(output)
            raise PlatformError(f"the {group.name} job exited with status {proc.returncode}: {cause}",
                                _fix_for(group, restore, output, log_path))
        job = flink_job(rest, job_name(group), process.started_at - 1)
        if job and job["state"] in FAILED_STATES:
            cause = job_exception(rest, job["jid"]) or ""
            with contextlib.suppress(subprocess.TimeoutExpired):  # a job that could not even start (a savepoint
                proc.wait(timeout=FAILED_EXIT_WAIT_S)              # it cannot map) says why only as run.py exits
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            output = _output_since(log_path, log_start)
            raise PlatformError(f"the {group.name} job failed as it started: {cause or one_line_cause(output)}",
                                _fix_for(group, restore, cause + output, log_path))
        if job and job["state"] == "RUNNING" and all_tasks_up(job):
            return process
        if job and job["state"] == "FINISHED" and phase == BOUNDED:
            return process
        time.sleep(0.5)
    cause = job_exception(rest, job["jid"]) if job else None
    raise PlatformError(f"the {group.name} job did not reach RUNNING in {START_TIMEOUT_S} s"
                        + (f": {cause}" if cause else ""), f"the whole output is in {log_path}")


def start(registry: Registry, settings: Settings, group: FeatureGroup, redis_url: str, spark=None,
          bounded: bool = False, on_replay: Callable[[int, int, float | None], None] | None = None) -> JobProcess:
    """Build run.py and launch it, resuming from the newest savepoint/checkpoint; wait until RUNNING.

    A first start (nothing to resume) with a Spark session replays the event log first, so the stream
    continues the batch history (streaming/bootstrap.py): a replay phase reads the export alone, then
    hands its state to the live job through a savepoint (see replay_first), so no live event is ever
    counted against a window the replay has not finished. Without Spark it starts from its live input alone.
    A `bounded` job reads only the bootstrap already prepared and ends when it has (see wait_finished).
    """
    if running_job(settings, group):
        raise PlatformError(f"the {group.name} stream is already running", f"featctl stream stop {group.name}")
    restore = latest_restore_point(settings, group)
    if restore is None and spark is not None:
        bootstrap = prepare_bootstrap(spark, registry, settings, group)
    else:
        bootstrap = recorded_bootstrap(settings, group)
    cutoff = bootstrap.cutoff_text if bootstrap else None
    if bounded:
        return _launch_job(registry, settings, group, redis_url, cutoff, None, restore, BOUNDED)
    handover = restore is None and bootstrap is not None and bool(bootstrap.events)
    if handover:
        restore = replay_first(registry, settings, group, redis_url, bootstrap, on_replay)
    backlog_until = None
    prepare_inputs(settings, stream_sources(registry, group))
    if not settings.kafka_bootstrap_servers:
        newest = newest_live_event(registry, settings, group) if group.aggregations else None
        backlog_until = f"{newest + timedelta(microseconds=1):%Y-%m-%d %H:%M:%S.%f}" if newest else None
    return _launch_job(registry, settings, group, redis_url, cutoff, backlog_until, restore, LIVE, handover=handover)


def newest_live_event(registry: Registry, settings: Settings, group: FeatureGroup) -> datetime | None:
    """The newest valid event time waiting in the group's watched stream directories (local profile); None
    when there is none."""
    return max(filter(None, (newest_event_in(stream_directory(settings, source), source,
                                             settings.stream_max_line_bytes, settings.max_clock_skew_seconds)
                             for source in stream_sources(registry, group))), default=None)


def _launch_job(registry: Registry, settings: Settings, group: FeatureGroup, redis_url: str, cutoff: str | None,
                backlog_until: str | None, restore: str | None, phase: str,
                replaying: int | None = None, handover: bool = False) -> JobProcess:
    """Build run.py for `phase` and launch it (launch_script)."""
    script = build_job(registry, settings, group, cutoff, backlog_until, phase)
    return launch_script(settings, group, script, redis_url, restore, phase, replaying, handover)


def launch_script(settings: Settings, subject: FeatureGroup | Source, script: Path, redis_url: str | None,
                  restore: str | None, phase: str = LIVE, replaying: int | None = None,
                  handover: bool = False) -> JobProcess:
    """Launch a built run.py and wait until it runs (on a new port when another process took the one it chose).
    `handover`: `restore` is the replay phase's savepoint, whose live input (an empty directory) has no reader
    in a job reading Kafka; its state is dropped instead of failing the restore."""
    for _attempt in range(3):
        process = _launch(settings, subject, script, redis_url, restore, phase, replaying, handover)
        if process is not None:
            return process
    raise PlatformError(f"the {subject.name} job could not bind a REST port three times",
                        f"retry featctl {command(subject)} run")


def replay_first(registry: Registry, settings: Settings, group: FeatureGroup, redis_url: str, bootstrap,
                 on_replay: Callable[[int, int, float | None], None] | None = None) -> str:
    """A first start's replay phase: the job with the event-log export as its only input (its live source
    an empty directory, so its graph and state are the live job's) runs until the export's bounded source
    has read everything, then stops with a savepoint, the state the live job resumes from (returned).

    Live events wait in the stream meanwhile and are counted right after, as a backlog; readers get the
    batch values until then (the replayed values are older than them: the guard keeps the batch's). A
    replay phase stopped midway leaves no restore point (its checkpoints are kept apart): the next start
    replays again. `on_replay(read, total, seconds_left)` is told how many events the replay has read and
    about how long it has left (replay_seconds_left).
    """
    process = _launch_job(registry, settings, group, redis_url, bootstrap.cutoff_text, None, None, REPLAY,
                          replaying=bootstrap.events)
    read, moved_at = -1, time.monotonic()
    while True:
        job = flink_job(process.rest, job_name(group), process.started_at - 1)
        if not _alive(process.pid) or job is None or job["state"] in FAILED_STATES:
            raise PlatformError(f"the {group.name} job failed while it replayed the event log: "
                                f"{failure_cause(settings, group)}", f"the whole output is in {job_dir(settings, group) / 'job.log'}")
        progress = replay_progress(process.rest, job["jid"])
        if progress.finished:
            break
        if progress.read != read:
            read, moved_at = progress.read, time.monotonic()
            if on_replay:
                on_replay(read, bootstrap.events,
                          replay_seconds_left(read, bootstrap.events, time.time() - process.started_at))
        elif time.monotonic() - moved_at > REPLAY_STALL_S:
            raise PlatformError(f"the {group.name} replay read nothing for {REPLAY_STALL_S} s (at {read} of "
                                f"{bootstrap.events} events)", "featctl stream kill, then see its job.log")
        time.sleep(1)
    if on_replay:
        on_replay(bootstrap.events, bootstrap.events, 0.0)
    return stop(settings, group)


@dataclass(frozen=True)
class ReplayProgress:
    """How far a job's replay of the event log has got: events read, and whether every replay source ended."""

    read: int
    finished: bool


def replay_seconds_left(read: int, total: int, elapsed_s: float) -> float | None:
    """The replay's time left at the rate it has read so far (`read` of `total` events in `elapsed_s`); None
    before it has read anything."""
    if read <= 0 or elapsed_s <= 0:
        return None
    return max(0, total - read) * elapsed_s / read


def replay_progress(rest: str, jid: str) -> ReplayProgress:
    """The replay sources' progress in job `jid`, from Flink's REST API (their vertices' records out)."""
    vertices = [v for v in rest_call(rest, f"/jobs/{jid}")["vertices"] if "__replayed_lines" in v["name"]]
    read = sum(int(v.get("metrics", {}).get("write-records", 0)) for v in vertices)
    return ReplayProgress(read, bool(vertices) and all(v["status"] == "FINISHED" for v in vertices))


def stop(settings: Settings, group: FeatureGroup | Source, timeout_s: float = 120) -> str:
    """Stop the job with a savepoint (the next start resumes from it); returns the savepoint path."""
    process = running_job(settings, group)
    verb = command(group)
    if process is None:
        raise PlatformError(f"the {group.name} {verb} job is not running", f"featctl {verb} run {group.name}")
    job = flink_job(process.rest, job_name(group))
    if job is None:
        raise PlatformError(f"the {group.name} job does not answer on {process.rest}", f"featctl {verb} kill, then run")
    target = job_dir(settings, group) / "savepoints"
    trigger = rest_call(process.rest, f"/jobs/{job['jid']}/stop", {"targetDirectory": str(target), "drain": False})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = rest_call(process.rest, f"/jobs/{job['jid']}/savepoints/{trigger['request-id']}")
        if result["status"]["id"] == "COMPLETED":
            if "failure-cause" in result.get("operation", {}):
                raise PlatformError(f"savepoint failed: {result['operation']['failure-cause'].get('stack-trace', '')[:300]}")
            location = result["operation"]["location"]
            _wait_exit(process.pid, timeout_s=30)
            state = _state_path(settings, group)
            state.write_text(json.dumps({**json.loads(state.read_text()), "stopped": True}))
            return location.removeprefix("file:")
        time.sleep(0.3)
    raise PlatformError(f"no savepoint within {timeout_s} s", f"featctl {verb} kill stops it without one")


def wait_finished(process: JobProcess, timeout_s: float) -> None:
    """Until a bounded job's process has ended by itself (an error naming its log if that takes longer)."""
    deadline = time.monotonic() + timeout_s
    while _alive(process.pid):
        if time.monotonic() > deadline:
            raise PlatformError(f"the bounded {process.group} job did not finish within {timeout_s:.0f} s",
                                "see its job.log")
        time.sleep(0.5)


def _wait_exit(pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        os.killpg(pid, signal.SIGTERM)


def kill(settings: Settings, group: FeatureGroup | Source) -> None:
    """Kill the job's process group at once (SIGKILL), as a crash would: no savepoint."""
    process = running_job(settings, group)
    if process is None:
        return
    os.killpg(process.pid, signal.SIGKILL)
    _wait_exit(process.pid, timeout_s=10)
    if settings.flink_rest:  # on a session cluster the job outlives its client: it fails as its host would
        job = flink_job(process.rest, job_name(group))
        if job is not None and job["state"] not in ("FINISHED", "CANCELED", "FAILED"):
            rest_call(process.rest, f"/jobs/{job['jid']}?mode=cancel", method="PATCH")
    state = _state_path(settings, group)
    state.write_text(json.dumps({**json.loads(state.read_text()), "killed": True}))
