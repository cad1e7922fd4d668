"""`featctl stream repair` on real Flink, Spark and Redis: a group whose online values were overwritten by hand
(values and event times, some dated years ahead, so the guard would refuse every honest write) is derived again
from the event log and the batch tables: every entity holds exactly what it held before the corruption, the
other group's fields in the same hashes never changed, the streamed history is the same, and the repair counts
the entities it changed."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from assets.offline_layout import streamed_table
from serving.codec import micros_to_datetime
from serving.layout import event_time_field, feature_field
from serving.online_store import OnlineStore, WritePlan, connect
from streaming import runner
from streaming.connectors import stream_directory
from streaming.repair import drop_streamed_from, repair
from tests.conftest import LAST_DAY, START
from tests.reference import user_upvotes_at
from tests.test_streaming import _line, _wait_until_landed, _write_lines

CUTOFF = datetime.combine(LAST_DAY + timedelta(days=1), datetime.min.time())


@pytest.mark.slow
@pytest.mark.usefixtures("event_log")
def test_repair_derives_a_corrupted_group_again_and_leaves_the_other_groups_byte_identical(
        registry, settings, spark, sample, redis_url, tmp_path_factory):
    from batch.feature_job import materialize_partition
    from batch.publish import publish_partition
    from offline.streamed_history import load_streamed_history

    own = settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("repair"), "redis_prefix": "rep"})
    group, other = registry.groups["user_upvotes"], registry.groups["user_activity"]
    ds = LAST_DAY.isoformat()
    # The worker's warehouse is shared: streamed history an earlier test landed from the cutoff on would be
    # read as this job's, and the repair drops it (CI saw 399 rows of another test's 01:00 departures).
    drop_streamed_from(spark, group, CUTOFF.date().isoformat())
    for spec in (group, other):
        materialize_partition(spark, registry, spec, ds)
        publish_partition(spark, registry, spec, ds, redis_url, own.redis_prefix)
    rng, at, live = random.Random(8), CUTOFF + timedelta(minutes=15), []
    directory = stream_directory(own, registry.sources["upvote_events"])
    for k in range(6):  # 00:15 to 00:55: no hourly tile leaves the windows (at 01:00) while history is read
        batch = []
        for i in range(10):
            at += timedelta(seconds=40, microseconds=rng.randrange(1000))
            batch.append({"event_id": f"rep-{k}-{i}", "user_id": rng.randrange(12), "post_id": rng.randrange(50),
                          "event_time": at})
        _write_lines(directory, f"live-{k:03d}", [_line(e) for e in batch])
        live += batch
    client = connect(redis_url)
    store = OnlineStore(client)
    plan = WritePlan.for_group(group, registry.entity_of(group), own.redis_prefix)
    runner.start(registry, own, group, redis_url, spark=spark)
    try:
        _wait_until_landed(store, plan, at)
        keys = sorted(client.scan_iter(match=f"{own.redis_prefix}:user:*"))
        before = {key: client.hgetall(key) for key in keys}
        assert load_streamed_history(spark, registry, group, redis_url, own.redis_prefix) > 0
        history = spark.table(streamed_table(group)).toPandas().sort_values(["user_id", "feature_ts"])
        logged = [{"user_id": int(r.user_id), "post_id": int(r.post_id), "event_time": r.event_time.to_pydatetime()}
                  for day in sample.days(START, LAST_DAY) for r in sample.events("upvote_events", day).itertuples()]
        for user in range(12):  # the live users' values are the stream's, right at the event time they hold
            stored = before[f"{own.redis_prefix}:user:{user}".encode()]
            stamp = micros_to_datetime(int(stored[event_time_field(group.name, 1).encode()])).replace(tzinfo=None)
            truth = user_upvotes_at(logged + live, stamp)[user][0]
            assert stamp > CUTOFF and int(stored[feature_field(group.name, 1, "upvotes_7d").encode()]) == truth, user

        # The corruption: 30 users' values and event times overwritten, a third of them dated in 2099.
        corrupted = keys[:30]
        future = int((datetime(2099, 1, 1) - datetime(1970, 1, 1)).total_seconds() * 1e6)
        for k, key in enumerate(corrupted):
            client.hset(key, mapping={feature_field(group.name, 1, "upvotes_7d"): b"123456",
                                      event_time_field(group.name, 1): str(future if k % 3 == 0 else k).encode()})
        assert sum(client.hgetall(key) != before[key] for key in keys) == 30

        result = repair(spark, registry, own, group, redis_url)
        assert (result.changed, result.republished) == (30, ds), result
        held = {k for k in keys if event_time_field(group.name, 1).encode() in before[k]}
        assert result.entities == len(held | set(corrupted))
        assert runner.running_job(own, group) is not None  # the stream runs again
        after = {key: client.hgetall(key) for key in keys}
        assert after == before  # every field of every hash: the group's derived again, the other group's untouched
        assert load_streamed_history(spark, registry, group, redis_url, own.redis_prefix) > 0
        again = spark.table(streamed_table(group)).toPandas().sort_values(["user_id", "feature_ts"])
        assert again.reset_index(drop=True).equals(history.reset_index(drop=True))
    finally:
        runner.kill(own, group)
        client.close()


def test_a_savepoint_the_job_cannot_map_names_the_repair_as_the_fix(registry):
    """A platform upgrade that changes a job's graph (the window operator's name when it moved into the JVM)
    leaves savepoints Flink cannot map: the runner's error names the command that derives the state again,
    for a group and for a source's ingest, and points at the job's log for any other failure."""
    refused = ("java.lang.IllegalStateException: Failed to rollback to checkpoint/savepoint file:/sp. Cannot map "
               "checkpoint/savepoint state for operator 4f6d586f to the new program")
    log = Path("/jobs/job.log")
    assert "featctl stream repair user_upvotes starts it afresh" in runner._fix_for(
        registry.groups["user_upvotes"], "/sp", refused, log)
    assert "featctl ingest run upvote_events reads the stream from its start" in runner._fix_for(
        registry.sources["upvote_events"], "/sp", refused, log)
    assert runner._fix_for(registry.groups["user_upvotes"], "/sp", "OutOfMemoryError", log) == \
        "the whole output is in /jobs/job.log"
