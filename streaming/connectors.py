"""Connector options of a stream source per profile: a watched local directory, or a Kafka topic.

The same source.sql renders for both; only the WITH clause differs, filled from settings.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from assets.specs import Source
from infra.settings import Settings

MONITOR_INTERVAL = "1s"


def stream_directory(settings: Settings, source: Source) -> Path:
    """The local directory whose JSON-lines files are the source's stream (local profile)."""
    return (settings.data_dir / source.stream.path).resolve()


def _options(values: dict[str, str]) -> str:
    return ",\n  ".join(f"'{key}' = '{value}'" for key, value in values.items())


def source_options(settings: Settings, source: Source, group: str, cutoff: str | None = None) -> str:
    """WITH options reading the source's stream as raw lines (the contract check parses them).

    With a bootstrap `cutoff` (UTC, `YYYY-MM-DD HH:MM:SS`) a Kafka source starts at the cutoff's offsets,
    since what came before is replayed from the event log; a restored job resumes from its checkpoint.
    """
    if settings.kafka_bootstrap_servers:
        options = {"connector": "kafka", "topic": source.stream.topic,
                   "properties.bootstrap.servers": settings.kafka_bootstrap_servers,
                   "properties.group.id": f"fp-{group}", "scan.startup.mode": "group-offsets",
                   "properties.auto.offset.reset": "earliest", "format": "raw"}
        if cutoff:
            millis = int(datetime.fromisoformat(cutoff).replace(tzinfo=timezone.utc).timestamp() * 1000)
            options.update({"scan.startup.mode": "timestamp", "scan.startup.timestamp-millis": str(millis)})
    else:
        options = {"connector": "filesystem", "path": stream_directory(settings, source).as_uri(), "format": "raw",
                   "source.monitor-interval": MONITOR_INTERVAL}
    return _options(options)


def replay_options(directory: Path, bounded: bool = False) -> str:
    """WITH options reading a job's replayed event-log files (streaming/bootstrap.py) as raw lines; watched
    for new files unless `bounded` (then the source ends once it has read what is there)."""
    options = {"connector": "filesystem", "path": directory.resolve().as_uri(), "format": "raw"}
    return _options(options if bounded else {**options, "source.monitor-interval": MONITOR_INTERVAL})


def dead_letter_options(directory: Path, roll_seconds: int) -> str:
    """WITH options of the dead-letter sink: JSON lines under `directory`, rolled and committed every
    `roll_seconds` (at the next checkpoint), so dead letters become visible without waiting for 128 MB."""
    return _options({"connector": "filesystem", "path": directory.resolve().as_uri(), "format": "json",
                     "sink.rolling-policy.rollover-interval": f"{roll_seconds}s",
                     "sink.rolling-policy.inactivity-interval": f"{roll_seconds}s",
                     "sink.rolling-policy.check-interval": f"{max(1, roll_seconds // 2)}s"})
