"""Streams on Kafka for real: a Kafka-compatible broker (tansu, started as `featctl cluster up --kafka` starts
it), Flink's Kafka connector (the jars infra/setup.sh takes out of their wheel), real Flink jobs and Redis.

One topic per source, read by two consumers of their own: the source's ingest lands every valid line in the
event log once, in its event day, across a kill -9 and a restart, and dead-letters each bad line with its
reason; the paired user_activity job serves what a plain-Python count of the valid lines gives, across a
kill -9 of its own. Lines are produced the way `featctl events live` produces them (streaming.connectors'
KafkaSink). Truths are the lines produced."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import date, timedelta
from itertools import zip_longest

import pytest

from infra import local_cluster
from serving.online_store import WritePlan
from streaming import ingest, runner
from streaming.codegen import dead_letter_directory
from streaming.connectors import KafkaSink, ensure_topics, stream_sink
from streaming.status import ingest_status, stream_status
from tests.stream_lines import MAX_LINE_BYTES, bad_lines
from tests.test_stream_bootstrap import Reader
from tests.test_ingest import _event, _lines, _wait_landed
from tests.test_streaming import (_after_batch_history, _assert_batch_plus_live, _assert_redis_holds, _dead_letters,
                                  _lifetime_truth, _line, _live_after_cutoff, _store, _wait_for_letters, _wait_quiet,
                                  _wait_until_landed)

D1, D2 = date(2026, 2, 3), date(2026, 2, 4)


@pytest.fixture
def kafka(tmp_path_factory):
    """A broker of the test's own (its topics start empty) as `featctl cluster up --kafka` starts one (free
    loopback port, memory storage), stopped after."""
    directory = tmp_path_factory.mktemp("kafka_cluster")
    state = local_cluster.up(directory, engines=("kafka",))
    yield state.urls["kafka"]
    assert local_cluster.down(directory) == ["kafka"]


@pytest.fixture
def on_kafka(settings, kafka, tmp_path_factory):
    """A profile whose streams read the broker's topics, on a data dir and key prefix of its own."""
    return settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("on_kafka"), "redis_prefix": "kf",
                                       "kafka_bootstrap_servers": kafka, "stream_checkpoint_seconds": 2,
                                       "stream_max_line_bytes": MAX_LINE_BYTES})


def _produce(sink: KafkaSink, lines: list[bytes]) -> None:
    """Send the lines as they are (bad ones are not all UTF-8) with the sink's producer, in order, flushed."""
    for line in lines:
        sink.producer.send(sink.topic, line)
    sink.producer.flush()


@pytest.mark.slow
def test_an_ingest_and_a_paired_job_read_one_topic_each_exactly_once_across_a_kill(on_kafka, registry, redis_url):
    settings, source, group = on_kafka, registry.sources["upvote_events"], registry.groups["user_activity"]
    sink = stream_sink(settings, source)  # creates the topic, as a job's start would
    assert isinstance(sink, KafkaSink) and sink.topic == "upvote_events"
    ensure_topics(settings, [source])  # again: an existing topic is left as it is
    day1 = [_event(n, D1, 60 + n) for n in range(60)]
    day2 = [_event(n, D2, 60 + n) for n in range(100, 160)]
    bad = bad_lines()
    _produce(sink, [line for pair in zip_longest(_lines(day1), [b for _, b, _ in bad]) for line in pair
                    if line is not None])
    try:
        # The ingest: its first start reads the topic from the beginning.
        process = ingest.start(settings, source)
        assert process.restored_from is None
        _wait_landed(settings, source, len(day1))
        # A kill -9 while more lines arrive: the restart resumes from the offsets of its last checkpoint.
        _produce(sink, _lines(day2[:30]))
        time.sleep(1.5)
        runner.kill(settings, source)
        _produce(sink, _lines(day2[30:]))
        time.sleep(1)
        assert ingest_status(settings, source).lag_seconds >= 1  # its lines wait in the topic, and status says so
        assert ingest.start(settings, source).restored_from is not None
        landed = _wait_landed(settings, source, len(day1) + len(day2))
        time.sleep(settings.stream_checkpoint_seconds * 2)  # a line landed twice would show by now
        landed = _wait_landed(settings, source, len(day1) + len(day2))
        assert landed == Counter({(day.isoformat(), e["event_id"]): 1 for day, events in [(D1, day1), (D2, day2)]
                                  for e in events}), "every valid line landed once, in its event day"
        letters = [json.loads(line) for f in dead_letter_directory(settings, source).rglob("*")
                   if f.is_file() and not f.name.startswith(".") for line in f.read_text().splitlines()]
        reasons = [letter["reason"] for letter in letters]
        for kind, _, reason in bad:
            reasons.remove(next((r for r in reasons if r.startswith(reason)), f"no letter for {kind}: {reason}"))
        assert not reasons
        assert ingest_status(settings, source).lag_seconds == 0  # caught up: nothing past its offsets waits
        runner.stop(settings, source)

        # The paired job, a consumer of its own: the whole topic (no event-log replay: started without Spark).
        store = _store(redis_url)
        plan = WritePlan.for_group(group, registry.entity_of(group), settings.redis_prefix)
        assert runner.start(registry, settings, group, redis_url).restored_from is None
        _wait_for_letters(settings, group, len(bad))
        _wait_until_landed(store, plan, max(e["event_time"] for e in day2))
        _assert_redis_holds(registry, store, settings, _lifetime_truth(day1 + day2))
        time.sleep(settings.stream_checkpoint_seconds + 1)
        runner.kill(settings, group)
        day3 = [_event(n, D2, 300 + n) for n in range(200, 240)]
        _produce(sink, _lines(day3))
        time.sleep(1)
        assert stream_status(registry, settings, group, redis_url).lag_seconds >= 1
        assert runner.start(registry, settings, group, redis_url).restored_from is not None
        _wait_until_landed(store, plan, max(e["event_time"] for e in day3))
        assert stream_status(registry, settings, group, redis_url).lag_seconds == 0
        _assert_redis_holds(registry, store, settings, _lifetime_truth(day1 + day2 + day3))
        assert len(_dead_letters(settings, group)) == len(bad)  # none judged twice across the kill
    finally:
        runner.kill(settings, source)
        runner.kill(settings, group)


@pytest.mark.slow
@pytest.mark.usefixtures("event_log")
def test_a_first_start_on_kafka_replays_the_event_log_first_then_reads_the_topic_from_the_cutoff(
        on_kafka, registry, settings, spark, sample, redis_url, tmp_path_factory):
    """The bootstrap barrier on Kafka: user_activity's batch values of LAST_DAY are in Redis and live upvotes
    already wait in the topic when the stream first starts. The replay phase reads the event log alone (its
    live input an empty directory), then the live job restores its state and reads the topic from the
    cutoff: n new upvotes of a user give the batch value plus n, and a live line older than the cutoff (the
    event log holds its day) is dead-lettered, not counted twice. Read every half second from before the start
    until the stream is quiet: every served value equals the batch value plus the user's live upvotes up to
    the event time it is served as of (the batch's own at the cutoff)."""
    boot, group, batch, store, plan, cutoff = _after_batch_history(registry, settings, spark, sample, redis_url,
                                                                   tmp_path_factory, "kb")
    boot = boot.model_copy(update={"kafka_bootstrap_servers": on_kafka.kafka_bootstrap_servers})
    users = [int(u) for u in batch.index[:5]]
    live, late = _live_after_cutoff(users, cutoff, "kafka-live")  # the first at the cutoff itself, midnight
    _produce(stream_sink(boot, registry.sources["upvote_events"]), [_line(e) for e in [late, *live]])
    reader = Reader(registry, redis_url, boot.redis_prefix, users)  # every half second, from before the start
    reader.start()
    try:
        process = runner.start(registry, boot, group, redis_url, spark=spark)
        assert process.restored_from and "/savepoints/" in process.restored_from  # the replay phase's state
        during_start = sum(1 for seen in list(reader.seen) if seen[1] == group.name)  # reads served meanwhile
        letters = _wait_for_letters(boot, group, 1, timeout_s=180)
        _wait_quiet(store, plan, timeout_s=180)
        reader.done.set()
        reader.join()
        reads = [(user, values[0], stamp) for _, name, user, values, stamp in reader.seen if name == group.name]
        _assert_batch_plus_live(registry, store, boot, batch, users, live)
        assert during_start > 0 and len(reads) > during_start
        assert live[0]["event_time"] == cutoff and (users[0], batch.loc[users[0]]["upvotes_total"] + 1,
                                                    cutoff + timedelta(microseconds=1)) in reads
        for user, total, as_of in reads:  # at every moment, not only after it settled
            # A value as of T counts the events up to T, but the batch's as of midnight only those before it.
            counted = sum(1 for e in live if e["user_id"] == user
                          and (e["event_time"] < as_of or e["event_time"] == as_of != cutoff))
            assert total == batch.loc[user]["upvotes_total"] + counted, (user, total, as_of)
        assert [letter["record"] for letter in letters] == [_line(late).decode()]
        assert f"is before the stream's cutoff {cutoff}" in letters[0]["reason"]
    finally:
        reader.done.set()
        runner.kill(boot, group)

