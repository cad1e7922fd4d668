"""Bootstrap: a stream's first start replays the event log, so the stream continues the history batch saw.

A paired stream that started from nothing would count from its own start (a lifetime count of 1,935
becoming 2 after two new upvotes). So on its first start (nothing to resume) a job reads, before its
live input, the raw partitions of its source that its window covers (every one for a lifetime
group), exported from the event log in event-time order as JSON-lines files under the job directory:
its state then holds what the batch history implies, exactly, for every aggregation (COUNT DISTINCT
too), as if it had run since the first event (Chronon bootstraps from a batch snapshot instead, which
only mergeable aggregations allow).

The replay is a phase of its own (streaming/runner.py `replay_first`): the job first runs with the export
as its only input, stops with a savepoint once the export's bounded source has ended, and the live job
resumes from that state. So a live event is never counted against a window the replay has not finished,
and no timer fires on live time over a partial window; live events wait in the stream meanwhile and are
read right after, and readers get the batch values until then.

The last replayed day ends at the *cutoff*. A live line older than the cutoff is already in the event
log, so the contract refuses it (counting it again would count it twice). Replayed values never
overwrite the batch values in Redis: their event times are older, and the event-time guard lets a write
land only when it is at least as new as what Redis holds; the first live event after the cutoff lands
the continued value.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from assets.offline_layout import PARTITION_COLUMN, table_partitions
from assets.registry import Registry
from assets.specs import FeatureGroup, Source
from infra.settings import Settings
from streaming.codegen import job_dir, replay_directory, stream_sources
from streaming.event_files import write_backlog

ROWS_PER_FILE = 50_000


@dataclass(frozen=True)
class Bootstrap:
    """What a job's first start replays: the event-log days and where live input takes over."""

    days: tuple[str, ...]     # the raw partitions replayed (of any source), oldest first
    events: int               # of every source
    cutoff: datetime | None   # the end of the last replayed day (UTC); None when there was no history

    @property
    def cutoff_text(self) -> str | None:
        """The cutoff as the generated job reads it (`YYYY-MM-DD HH:MM:SS`, UTC)."""
        return self.cutoff.strftime("%Y-%m-%d %H:%M:%S") if self.cutoff else None


def _record_path(settings: Settings, group: FeatureGroup) -> Path:
    return job_dir(settings, group) / "bootstrap.json"


def replayed_days(group: FeatureGroup, source: Source, partitions: list[str], through_ds: str | None) -> list[str]:
    """The partitions a first start replays: those the group's window reads as of the newest one
    (through `through_ds` when given), every one for a lifetime (`window_days: all`) group."""
    kept = [ds for ds in partitions if through_ds is None or ds <= through_ds]
    if not kept:
        return []
    window = group.sources[source.name].window_days
    if window == "all":
        return kept
    first = (date.fromisoformat(kept[-1]) - timedelta(days=window - 1)).isoformat()
    return [ds for ds in kept if ds >= first]


def export_event_log(spark, source: Source, days: list[str], directory: Path,
                     rows_per_file: int = ROWS_PER_FILE) -> int:
    """Write partitions `days` of the source's raw table into `directory` as stream files, in event-time
    order (one day in memory at a time); returns the number of events written."""
    columns = ", ".join(f"`{c.name}`" for c in source.columns)
    frames = (spark.sql(f"SELECT {columns} FROM {source.table} WHERE {PARTITION_COLUMN} = '{ds}' "
                        f"ORDER BY `{source.event_time}`").toPandas() for ds in days)
    counted = []

    def counting(frames):
        for frame in frames:
            counted.append(len(frame))
            if len(frame):
                yield frame
    write_backlog(directory, source, counting(frames), rows_per_file)
    return sum(counted)


def prepare_bootstrap(spark, registry: Registry, settings: Settings, group: FeatureGroup,
                      through_ds: str | None = None) -> Bootstrap:
    """Export what the group's first start replays of each source it streams (replacing an earlier export)
    and record it. Every source is replayed through the same last day (`through_ds`, else the newest
    partition any of them has), so one cutoff holds for all."""
    sources = stream_sources(registry, group)
    partitions = {source.name: table_partitions(spark, source.table) for source in sources}
    last = through_ds or max((days[-1] for days in partitions.values() if days), default=None)
    replayed, events = set(), 0
    for source in sources:
        days = replayed_days(group, source, partitions[source.name], last)
        directory = replay_directory(settings, group, source)
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        events += export_event_log(spark, source, days, directory)
        replayed.update(days)
    days = sorted(replayed)
    cutoff = datetime.combine(date.fromisoformat(days[-1]) + timedelta(days=1), time.min) if days else None
    bootstrap = Bootstrap(tuple(days), events, cutoff)
    _record_path(settings, group).write_text(json.dumps({**asdict(bootstrap), "cutoff": bootstrap.cutoff_text}))
    return bootstrap


def recorded_bootstrap(settings: Settings, group: FeatureGroup) -> Bootstrap | None:
    """The bootstrap the group's job was (or will be) started with, or None if none was prepared."""
    path = _record_path(settings, group)
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    cutoff = datetime.fromisoformat(record["cutoff"]) if record["cutoff"] else None
    return Bootstrap(tuple(record["days"]), record["events"], cutoff)
