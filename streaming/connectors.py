"""Where a stream source's lines come from per profile: a watched local directory, or a Kafka topic.

The same source.sql renders for both; the platform reads the lines (settings say from where), and a producer
of the platform's (`featctl events live`) appends them there (stream_sink).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from assets.specs import Source
from infra.errors import PlatformError
from infra.settings import Settings
from streaming.event_files import DirectorySink, StreamSink

MONITOR_SECONDS = 1.0  # how often a watched directory of stream files is listed for new files
TOPIC_DISCOVERY_SECONDS = 10  # how soon a job reads a partition added to its topic


def stream_directory(settings: Settings, source: Source) -> Path:
    """The local directory whose JSON-lines files are the source's stream (local profile)."""
    return (settings.data_dir / source.stream.path).resolve()


def _options(values: dict[str, str]) -> str:
    return ",\n  ".join(f"'{key}' = '{value}'" for key, value in values.items())


def kafka_lines(settings: Settings, source: Source, group: str, cutoff: str | None = None) -> dict:
    """The arguments of runtime.create_kafka_lines reading the source's topic as raw lines (the contract check
    parses them), as consumer group `fp-<group>`.

    With a bootstrap `cutoff` (UTC, `YYYY-MM-DD HH:MM:SS`) the source starts at the cutoff's offsets, since
    what came before is replayed from the event log; a restored job resumes from its checkpoint. (Files, the
    local profile's stream and every replay, are read by runtime.create_file_lines, in name order.)
    """
    millis = (int(datetime.fromisoformat(cutoff).replace(tzinfo=timezone.utc).timestamp() * 1000) if cutoff
              else None)
    return {"servers": settings.kafka_bootstrap_servers, "topic": source.stream.topic, "group_id": consumer_group(group),
            "start_millis": millis, "discovery_seconds": TOPIC_DISCOVERY_SECONDS}


def consumer_group(reader: str) -> str:
    """The Kafka consumer group a job reads as: `fp-<group>` for a group's stream, `fp-ingest-<source>` for an
    ingest (its `reader` name), so each job keeps offsets of its own."""
    return f"fp-{reader}"


def _partitions(consumer, topic: str) -> list:
    """Every partition of `topic` (none for a topic that does not exist), as the consumer addresses them."""
    from kafka import TopicPartition

    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


def topic_is_empty(servers: str, topic: str) -> bool:
    """Whether `topic` holds no record in any partition (its beginning and end offsets meet everywhere)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, client_id="feature-platform")
    try:
        partitions = _partitions(consumer, topic)
        return consumer.beginning_offsets(partitions) == consumer.end_offsets(partitions)
    finally:
        consumer.close(autocommit=False)


def ingest_reader(source: Source) -> str:
    """The name a source's ingest reads the source's stream as (its consumer group: consumer_group)."""
    return f"ingest-{source.name}"


def oldest_waiting_record(settings: Settings, source: Source, reader: str, after: datetime | None,
                          read_seconds: float = 1.5) -> datetime | None:
    """When the oldest record that `reader`'s job has still to reflect was produced: the first records past
    its consumer group's committed offsets (Flink commits them at each checkpoint) produced after `after`
    (what the job already wrote); None when none arrives within `read_seconds` or Kafka does not answer.
    Read without joining the group, and nothing is committed: the job's own offsets stay as they are."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    after_ms = after.timestamp() * 1000 if after else float("-inf")
    try:
        consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=consumer_group(reader),
                                 enable_auto_commit=False, client_id="feature-platform-status",
                                 request_timeout_ms=5_000)
    except KafkaError:
        return None
    try:
        partitions = _partitions(consumer, source.stream.topic)
        if not partitions:
            return None
        consumer.assign(partitions)
        for partition in partitions:
            committed = consumer.committed(partition)
            if committed is None:
                consumer.seek_to_beginning(partition)
            else:
                consumer.seek(partition, committed)
        deadline = time.monotonic() + read_seconds
        while time.monotonic() < deadline:
            records = consumer.poll(timeout_ms=300, max_records=500)
            waiting = [r.timestamp for batch in records.values() for r in batch if r.timestamp > after_ms]
            if waiting:
                return datetime.fromtimestamp(min(waiting) / 1000, timezone.utc)
        return None
    except KafkaError:
        return None
    finally:
        consumer.close(autocommit=False)


def _kafka_admin(settings: Settings):
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        return KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, client_id="feature-platform",
                                request_timeout_ms=10_000)
    except KafkaError as error:
        raise PlatformError(f"Kafka at {settings.kafka_bootstrap_servers} does not answer: {error}",
                            "start the brokers (featctl cluster up --kafka on this machine) or fix "
                            "kafka_bootstrap_servers") from None


def prepare_inputs(settings: Settings, sources: list[Source]) -> None:
    """Make the sources' streams exist before a job reads them: the watched directories (a source lists its
    directory when it starts), or the Kafka topics (ensure_topics)."""
    if settings.kafka_bootstrap_servers:
        ensure_topics(settings, sources)
        return
    for source in sources:
        stream_directory(settings, source).mkdir(parents=True, exist_ok=True)


def ensure_topics(settings: Settings, sources: list[Source]) -> None:
    """Create the sources' topics that do not exist yet (one partition each): a job finds a topic's
    partitions when it starts (and every TOPIC_DISCOVERY_SECONDS after), and Kafka would create a topic
    that a producer writes to first with the broker's defaults. Existing topics are left as they are."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = _kafka_admin(settings)
    try:
        missing = sorted({s.stream.topic for s in sources} - set(admin.list_topics()))
        if missing:
            try:
                admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1) for topic in missing])
            except TopicAlreadyExistsError:
                pass  # another job created it meanwhile
    finally:
        admin.close()


class KafkaSink:
    """A Kafka topic: each append the lines as messages in order (one partition's order), flushed and
    acknowledged by every in-sync replica before it returns."""

    def __init__(self, settings: Settings, source: Source):
        from kafka import KafkaProducer

        self.topic = source.stream.topic
        self.where = f"Kafka topic {self.topic} at {settings.kafka_bootstrap_servers}"
        self.producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=5,
                                      client_id="feature-platform")

    def append(self, name: str, lines: list[str]) -> None:
        for line in lines:
            self.producer.send(self.topic, line.encode())
        self.producer.flush()


def stream_sink(settings: Settings, source: Source) -> StreamSink:
    """Where this profile's producers append the source's lines: its Kafka topic or its watched directory, made
    to exist as a job's start makes them (prepare_inputs)."""
    prepare_inputs(settings, [source])
    return KafkaSink(settings, source) if settings.kafka_bootstrap_servers else DirectorySink(
        stream_directory(settings, source))


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
