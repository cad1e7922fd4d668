"""The health of a group's stream, from the three places that know it: the job process, Flink's REST
API (state, records, watermark, checkpoints) and the injector's progress markers in Redis."""

from __future__ import annotations

import http.client
import time
import urllib.error
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from assets.registry import Registry
from assets.specs import FeatureGroup, Source
from infra.settings import Settings
from serving.codec import micros_to_datetime
from serving.online_store import OnlineStore, WritePlan, connect
from streaming.codegen import dead_letter_directory, job_name, stream_sources
from streaming.connectors import ingest_reader, oldest_waiting_record, stream_directory
from streaming.runner import (all_tasks_up, failure_cause, flink_job, job_exception, last_job, latest_restore_point,
                              replay_progress, replay_seconds_left, rest_call, running_job)


@dataclass(frozen=True)
class StreamStatus:
    """What an operator asks of a stream: is it up, how far has it got, how fresh is Redis."""

    group: str
    # RUNNING (every task runs), BOOTSTRAPPING (a first start's replay phase: readers get the batch values),
    # RESTARTING (the job lives but not all its tasks run), FAILED (the job process ended without being
    # asked to), STOPPED (stopped on purpose, or never started), or another Flink job state (INITIALIZING,
    # ...); UNREACHABLE when the process lives but its REST API is silent
    state: str
    records_in: int | None              # records read by the source operators
    rows_written: int                   # feature rows the injector sent to Redis, landed or not
    rows_landed: int                    # of those, the rows that landed (the guard keeps a newer value)
    rows_refused_ahead: int             # rows the guard script refused: dated past max_clock_skew_seconds
    last_write: datetime | None
    max_event_time: datetime | None     # newest event time the injector has written
    watermark: datetime | None
    last_checkpoint: datetime | None
    checkpoint_path: str | None
    dead_letters: int
    lag_seconds: float | None           # age of the oldest input not yet reflected in Redis (0: caught up)
    cause: str | None = None            # why the job failed or restarts, one line (None when it runs well)
    replayed: tuple[int, int] | None = None  # BOOTSTRAPPING: events of the event log replayed, of how many
    replay_seconds_left: float | None = None  # BOOTSTRAPPING: at the rate replayed so far (None: nothing read yet)

    def bootstrap_progress(self) -> str | None:
        """'102,649 of 420,000 replayed, about 4 min left' while the stream bootstraps, else None."""
        return None if self.replayed is None else replay_text(*self.replayed, self.replay_seconds_left)


@dataclass(frozen=True)
class IngestStatus:
    """What an operator asks of a source's ingest (streaming/ingest.py): is it up, how far has its event time got."""

    source: str
    state: str                        # as StreamStatus.state (never BOOTSTRAPPING: an ingest replays nothing)
    records_in: int | None            # raw lines read, valid or not
    watermark: datetime | None        # a day is complete once this passes its end by the source's lateness
    last_checkpoint: datetime | None  # lines landed up to here are committed
    dead_letters: int
    lag_seconds: float | None         # age of the oldest input newer than the last checkpoint (0: caught up)
    cause: str | None = None


def _ingest_progress(rest: str, name: str, source: Source) -> dict:
    """Lines read and the watermark of a running ingest: Flink chains the whole job into one vertex, so these
    are its operators' metrics (the source's records out, the output of the typed stream's watermark
    assigner, which is what the event-log sink commits days by; the dead-letter sink sees no watermark)."""
    job = flink_job(rest, name)
    try:
        (vertex,) = [v["id"] for v in rest_call(rest, f"/jobs/{job['jid']}")["vertices"]]
        ids = [m["id"] for m in rest_call(rest, f"/jobs/{job['jid']}/vertices/{vertex}/subtasks/metrics")]
        (assigner,) = [i for i in ids if i.startswith("WatermarkAssigner") and i.endswith(".currentOutputWatermark")]
        lines = _vertex_metric(rest, job["jid"], vertex, f"Source__{source.name}__lines.numRecordsOut")
        watermark = _vertex_metric(rest, job["jid"], vertex, assigner, "min")
    except (urllib.error.URLError, OSError, KeyError, TypeError, ValueError, http.client.HTTPException):
        return {}
    return {"records_in": int(lines), "watermark": _millis(watermark)}


def ingest_status(settings: Settings, source: Source) -> IngestStatus:
    """The source's ingest status now."""
    flink = _job_details(settings, source)
    process = running_job(settings, source)
    if process is not None and flink["state"] == "RUNNING":
        flink.update(_ingest_progress(process.rest, job_name(source), source))
    restore = latest_restore_point(settings, source)  # what a stopped or killed ingest has committed
    committed = flink.get("last_checkpoint") or (
        datetime.fromtimestamp((Path(restore) / "_metadata").stat().st_mtime, timezone.utc) if restore else None)
    return IngestStatus(source=source.name, state=flink["state"], records_in=flink.get("records_in"),
                        watermark=flink.get("watermark"), last_checkpoint=committed,
                        dead_letters=count_dead_letters(settings, source),
                        lag_seconds=input_lag_seconds(settings, source, committed, ingest_reader(source)),
                        cause=flink.get("cause"))


def replay_text(read: int, total: int, seconds_left: float | None) -> str:
    """A replay's progress for people: '102,649 of 420,000 replayed, about 4 min left'."""
    return f"{read:,} of {total:,} replayed" + ("" if seconds_left is None else f", about {duration_text(seconds_left)} left")


def duration_text(seconds: float) -> str:
    """A rough duration for people: '40 s', '4 min', '2 h 5 min'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def _millis(value) -> datetime | None:
    if not value or value < 0 or value > 4e15:  # Flink reports Long.MIN_VALUE before the first watermark
        return None
    return datetime.fromtimestamp(value / 1000, timezone.utc)


def count_dead_letters(settings: Settings, subject: FeatureGroup | Source) -> int:
    """Dead-lettered records of a group's job (or a source's ingest) committed so far (in-progress part files
    are not counted yet)."""
    directory = dead_letter_directory(settings, subject)
    return sum(sum(1 for _ in f.open()) for f in directory.rglob("*") if f.is_file() and not f.name.startswith("."))


def _vertex_metric(rest: str, jid: str, vertex: str, metric: str, aggregate: str = "sum") -> float:
    """A metric of a vertex (or of one operator in it: `<operator>.<metric>`) over its subtasks: their sum, or
    `aggregate` (min, max)."""
    values = rest_call(rest, f"/jobs/{jid}/vertices/{vertex}/subtasks/metrics?get={metric}&agg={aggregate}")
    return sum(v[aggregate] for v in values)


def _flink_details(rest: str, name: str, replaying: int | None, started_at: float) -> dict:
    """State, records read, watermark and last completed checkpoint of the job `name`, from Flink's REST API;
    for a replay phase (`replaying` events, its process started at `started_at`), BOOTSTRAPPING, how many it
    has read and about how long it has left."""
    job = flink_job(rest, name)
    if job is None:
        return {"state": "UNREACHABLE"}
    details = {"state": job["state"]}
    if job["state"] == "RUNNING" and not all_tasks_up(job):
        details["state"] = "RESTARTING"
    if details["state"] != "RUNNING":
        details["cause"] = job_exception(rest, job["jid"])
    try:
        jid = job["jid"]
        if replaying is not None and details["state"] == "RUNNING":
            read = replay_progress(rest, jid).read
            details.update(state="BOOTSTRAPPING", replayed=(read, replaying),
                           replay_seconds_left=replay_seconds_left(read, replaying, time.time() - started_at))
        vertices = rest_call(rest, f"/jobs/{jid}")["vertices"]
        lines = [v for v in vertices if "__lines" in v["name"]]  # every raw record, valid or not
        details["records_in"] = int(sum(_vertex_metric(rest, jid, v["id"], "numRecordsIn") for v in lines))
        marks = [int(w["value"]) for v in vertices if not v["name"].startswith("Source")
                 for w in rest_call(rest, f"/jobs/{jid}/vertices/{v['id']}/watermarks")]
        details["watermark"] = _millis(max(marks)) if marks else None
        completed = rest_call(rest, f"/jobs/{jid}/checkpoints").get("latest", {}).get("completed")
        if completed:
            details["last_checkpoint"] = _millis(completed["latest_ack_timestamp"])
            details["checkpoint_path"] = completed.get("external_path")
    except (urllib.error.URLError, OSError, KeyError, ValueError, http.client.HTTPException):
        pass
    return details


def input_lag_seconds(settings: Settings, source, last_write: datetime | None, reader: str) -> float:
    """How long the oldest input newer than what the job `reader` last reflected (`last_write`) has waited;
    0 when caught up. Input is the source's stream files (their arrival time) or, on a profile with Kafka, the
    records of its topic past the job's committed offsets (their produce time: connectors.oldest_waiting_record)."""
    if settings.kafka_bootstrap_servers:
        oldest = oldest_waiting_record(settings, source, reader, last_write)
        return max(0.0, time.time() - oldest.timestamp()) if oldest else 0.0
    directory = stream_directory(settings, source)
    written = last_write.timestamp() if last_write else 0.0
    waiting = [f.stat().st_mtime for f in directory.glob("*") if not f.name.startswith(".")] if directory.exists() else []
    waiting = [m for m in waiting if m > written]
    return max(0.0, time.time() - min(waiting)) if waiting else 0.0


def stream_progress(registry: Registry, group: FeatureGroup, redis_url: str, prefix: str) -> dict:
    """The injector's progress marker for the group's version in Redis (empty before its first write)."""
    store = OnlineStore(connect(redis_url))
    try:
        return store.progress(WritePlan.for_group(group, registry.entity_of(group), prefix))
    finally:
        store.client.close()


def last_write_time(progress: dict) -> datetime | None:
    """When the stream last wrote to Redis, from its progress marker (None before its first write)."""
    return _millis(progress.get("last_write_ms"))


def _job_details(settings: Settings, subject: FeatureGroup | Source) -> dict:
    """What Flink says of the job of a group (or of a source's ingest), or why there is none (FAILED, STOPPED)."""
    process = running_job(settings, subject)
    if process is not None:
        return _flink_details(process.rest, job_name(subject), process.replaying, process.started_at)
    last = last_job(settings, subject)
    crashed = last is not None and not last.stopped
    return {"state": "FAILED", "cause": failure_cause(settings, subject)} if crashed else {"state": "STOPPED"}


def stream_status(registry: Registry, settings: Settings, group: FeatureGroup, redis_url: str) -> StreamStatus:
    """The group's stream status now."""
    process = running_job(settings, group)
    flink = _job_details(settings, group)
    progress = stream_progress(registry, group, redis_url, settings.redis_prefix)
    last_write = last_write_time(progress)
    # While the replay phase runs, what it writes is the event log's: the live files since it started all wait.
    reflected = (datetime.fromtimestamp(process.started_at, timezone.utc) if flink.get("replayed") else last_write)
    lags = [input_lag_seconds(settings, source, reflected, group.name) for source in stream_sources(registry, group)]
    return StreamStatus(
        group=group.name, state=flink["state"], records_in=flink.get("records_in"),
        rows_written=progress.get("rows_written", 0), rows_landed=progress.get("rows_landed", 0),
        rows_refused_ahead=progress.get("rows_refused_ahead", 0),
        last_write=last_write,
        lag_seconds=max(lags, default=None),
        max_event_time=micros_to_datetime(progress["max_event_time"]) if progress.get("max_event_time") else None,
        watermark=flink.get("watermark"), last_checkpoint=flink.get("last_checkpoint"),
        checkpoint_path=flink.get("checkpoint_path"), dead_letters=count_dead_letters(settings, group),
        cause=flink.get("cause"), replayed=flink.get("replayed"), replay_seconds_left=flink.get("replay_seconds_left"))
