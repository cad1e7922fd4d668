"""Where a stream source's lines come from per profile: a watched local directory, or a Kafka topic.

The same source.sql renders for both; the platform reads the lines (settings say from where).
"""

from __future__ import annotations

from datetime import datetime, timezone
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


def dead_letter_options(directory: Path, roll_seconds: int) -> str:
    """WITH options of the dead-letter sink: JSON lines under `directory`, rolled and committed every
    `roll_seconds` (at the next checkpoint), so dead letters become visible without waiting for 128 MB."""
    return _options({"connector": "filesystem", "path": directory.resolve().as_uri(), "format": "json",
                     "sink.rolling-policy.rollover-interval": f"{roll_seconds}s",
                     "sink.rolling-policy.inactivity-interval": f"{roll_seconds}s",
                     "sink.rolling-policy.check-interval": f"{max(1, roll_seconds // 2)}s"})
