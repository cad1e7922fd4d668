"""Where a stream source's lines come from per profile: a watched local directory, or a Kafka topic.

The same source.sql renders for both; the platform reads the lines (settings say from where).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from assets.specs import Source
from infra.settings import Settings

MONITOR_SECONDS = 1.0  # how often a watched directory of stream files is listed for new files


def stream_directory(settings: Settings, source: Source) -> Path:
    """The local directory whose JSON-lines files are the source's stream (local profile)."""
    return (settings.data_dir / source.stream.path).resolve()


def _options(values: dict[str, str]) -> str:
    return ",\n  ".join(f"'{key}' = '{value}'" for key, value in values.items())


def kafka_options(settings: Settings, source: Source, group: str, cutoff: str | None = None) -> str:
    """WITH options reading the source's Kafka topic as raw lines (the contract check parses them).

    With a bootstrap `cutoff` (UTC, `YYYY-MM-DD HH:MM:SS`) the source starts at the cutoff's offsets, since
    what came before is replayed from the event log; a restored job resumes from its checkpoint. (Files, the
    local profile's stream and every replay, are read by runtime.create_file_lines, in name order.)
    """
    options = {"connector": "kafka", "topic": source.stream.topic,
               "properties.bootstrap.servers": settings.kafka_bootstrap_servers,
               "properties.group.id": f"fp-{group}", "scan.startup.mode": "group-offsets",
               "properties.auto.offset.reset": "earliest", "format": "raw"}
    if cutoff:
        millis = int(datetime.fromisoformat(cutoff).replace(tzinfo=timezone.utc).timestamp() * 1000)
        options.update({"scan.startup.mode": "timestamp", "scan.startup.timestamp-millis": str(millis)})
    return _options(options)


def _committed_json_files(directory: Path, roll_seconds: int) -> dict[str, str]:
    """Flink's filesystem sink of JSON lines under `directory`, files rolled every `roll_seconds` and made
    visible at the next checkpoint (its two-phase commit), so rows show without waiting for 128 MB."""
    return {"connector": "filesystem", "path": directory.resolve().as_uri(), "format": "json",
            "sink.rolling-policy.rollover-interval": f"{roll_seconds}s",
            "sink.rolling-policy.inactivity-interval": f"{roll_seconds}s",
            "sink.rolling-policy.check-interval": f"{max(1, roll_seconds // 2)}s"}


def dead_letter_options(directory: Path, roll_seconds: int) -> str:
    """WITH options of the dead-letter sink: JSON lines under `directory`, committed files rolled every
    `roll_seconds`."""
    return _options(_committed_json_files(directory, roll_seconds))


def landing_options(directory: Path, lateness: timedelta, roll_seconds: int) -> str:
    """WITH options of an ingest's event-log sink (streaming/ingest.py): JSON lines under `directory`, one
    `ds=` directory per event day, committed files rolled every `roll_seconds`, and a day marked complete
    (`_SUCCESS`, Flink's partition commit) once the watermark has passed its end by `lateness`."""
    complete_after = timedelta(days=1) + lateness  # the partition's time is its day's start
    return _options({**_committed_json_files(directory, roll_seconds),
                     "sink.partition-commit.trigger": "partition-time",
                     "partition.time-extractor.timestamp-pattern": "$ds 00:00:00",
                     "sink.partition-commit.delay": f"{int(complete_after.total_seconds())} s",
                     "sink.partition-commit.watermark-time-zone": "UTC",
                     "sink.partition-commit.policy.kind": "success-file"})
