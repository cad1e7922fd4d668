"""The health of a group's stream, from the three places that know it: the job process, Flink's REST
API (state, records, watermark, checkpoints) and the injector's progress markers in Redis."""

from __future__ import annotations

import time
import urllib.error
from dataclasses import dataclass
from datetime import datetime, timezone

from assets.registry import Registry
from assets.specs import FeatureGroup
from infra.settings import Settings
from serving.codec import micros_to_datetime
from serving.online_store import OnlineStore, WritePlan, connect
from streaming.codegen import job_dir
from streaming.runner import flink_job, rest_call, running_job


@dataclass(frozen=True)
class StreamStatus:
    """What an operator asks of a stream: is it up, how far has it got, how fresh is Redis."""

    group: str
    state: str                          # RUNNING, ... or STOPPED when no job process lives
    records_in: int | None              # records read by the source operators
    rows_written: int                   # feature rows the injector wrote to Redis
    last_write: datetime | None
    max_event_time: datetime | None     # newest event time the injector has written
    watermark: datetime | None
    last_checkpoint: datetime | None
    checkpoint_path: str | None
    dead_letters: int

    @property
    def lag_seconds(self) -> float | None:
        """How far the newest written value trails the wall clock (None before the first write)."""
        if self.max_event_time is None:
            return None
        return max(0.0, time.time() - self.max_event_time.timestamp())


def _millis(value) -> datetime | None:
    if not value or value < 0 or value > 4e15:  # Flink reports Long.MIN_VALUE before the first watermark
        return None
    return datetime.fromtimestamp(value / 1000, timezone.utc)


def count_dead_letters(settings: Settings, group: FeatureGroup) -> int:
    """Dead-lettered records committed so far (in-progress part files are not counted yet)."""
    directory = job_dir(settings, group) / "dead_letter"
    return sum(sum(1 for _ in f.open()) for f in directory.rglob("*") if f.is_file() and not f.name.startswith("."))


def _flink_details(rest: str) -> dict:
    job = flink_job(rest)
    if job is None:
        return {"state": "UNREACHABLE"}
    details = {"state": job["state"]}
    try:
        info = rest_call(rest, f"/jobs/{job['jid']}")
        sources = [v for v in info["vertices"] if "Source" in v["name"]]
        details["records_in"] = sum(v["metrics"].get("write-records", 0) for v in sources)
        marks = [w["value"] for v in info["vertices"] if "Watermark" in v["name"] or "GroupAggregate" in v["name"]
                 for w in rest_call(rest, f"/jobs/{job['jid']}/vertices/{v['id']}/watermarks")]
        numeric = [int(m) for m in marks if str(m).lstrip("-").isdigit()]
        details["watermark"] = _millis(max(numeric)) if numeric else None
        completed = rest_call(rest, f"/jobs/{job['jid']}/checkpoints").get("latest", {}).get("completed")
        if completed:
            details["last_checkpoint"] = _millis(completed["latest_ack_timestamp"])
            details["checkpoint_path"] = completed.get("external_path")
    except (urllib.error.URLError, OSError, KeyError):
        pass
    return details


def stream_status(registry: Registry, settings: Settings, group: FeatureGroup, redis_url: str) -> StreamStatus:
    """The group's stream status now."""
    process = running_job(settings, group)
    flink = _flink_details(process.rest) if process else {"state": "STOPPED"}
    store = OnlineStore(connect(redis_url))
    try:
        progress = store.progress(WritePlan.for_group(group, registry.entity_of(group), settings.redis_prefix))
    finally:
        store.client.close()
    return StreamStatus(
        group=group.name, state=flink["state"], records_in=flink.get("records_in"),
        rows_written=progress.get("rows_written", 0), last_write=_millis(progress.get("last_write_ms")),
        max_event_time=micros_to_datetime(progress["max_event_time"]) if progress.get("max_event_time") else None,
        watermark=flink.get("watermark"), last_checkpoint=flink.get("last_checkpoint"),
        checkpoint_path=flink.get("checkpoint_path"), dead_letters=count_dead_letters(settings, group))
