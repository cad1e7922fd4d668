"""Streaming on real parts: the generated PyFlink job on the local mini-cluster, a real Redis, real files.

One job is started on a backlog of many event files (plus malformed records), killed with SIGKILL,
fed more events and resumed from its checkpoint; at each step Redis must equal a Python ground truth
over the same events, and every malformed record must sit in the dead-letter sink with its reason.
"""

from __future__ import annotations

import json
import time
from datetime import date, timedelta

import dagster as dg
import pytest
import redis

from infra.errors import PlatformError
from orchestration.resources import OnlineStoreResource
from orchestration.streaming_defs import stream_sensor
from serving.get_features import build_read_plan, get_features
from serving.online_store import OnlineStore, WritePlan, connect
from streaming import runner
from streaming.codegen import render_job
from streaming.connectors import stream_directory
from streaming.event_files import MALFORMED, write_backlog, write_file
from streaming.status import count_dead_letters, stream_status
from tests.conftest import START
from tests.reference import user_activity


def test_codegen_renders_the_local_job(registry, settings):
    text = render_job(registry, settings, registry.groups["user_activity"])
    compile(text, "run.py", "exec")
    assert "CREATE TABLE upvote_events__input (" in text
    assert f"'path' = '{stream_directory(settings, registry.sources['upvote_events']).as_uri()}'" in text
    assert "WHERE event_id IS NOT NULL AND event_time IS NOT NULL AND post_id IS NOT NULL AND user_id IS NOT NULL" in text
    assert "user_activity__inject(user_id, upvotes_total, distinct_posts_total, last_upvote_at, feature_ts)" in text
    assert "COUNT(DISTINCT post_id) AS distinct_posts_total" in text


def test_codegen_renders_the_same_sql_for_kafka(registry, settings):
    cluster = settings.model_copy(update={"kafka_bootstrap_servers": "kafka-1:9092,kafka-2:9092",
                                          "flink_rest": "jobmanager:8081"})
    text = render_job(registry, cluster, registry.groups["user_activity"])
    assert "'connector' = 'kafka'" in text and "'topic' = 'upvote_events'" in text
    assert "'properties.bootstrap.servers' = 'kafka-1:9092,kafka-2:9092'" in text
    assert "flink_rest='jobmanager:8081'" in text
    local = render_job(registry, settings, registry.groups["user_activity"])
    assert local.split("# Generation")[1] == text.split("# Generation")[1]  # same transform and injection


def test_a_group_without_stream_sql_cannot_be_built(registry, settings):
    with pytest.raises(PlatformError, match="user_upvotes' has no stream/ folder"):
        render_job(registry, settings, registry.groups["user_upvotes"])


# --- the running job -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def job(registry, settings, sample, tmp_path_factory, redis_url):
    """The user_activity job on its own data dir and key prefix, stopped at the end."""
    stream_settings = settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("stream"),
                                                  "redis_prefix": "st"})
    group = registry.groups["user_activity"]
    yield stream_settings, group
    runner.kill(stream_settings, group)


def _store(url):
    return OnlineStore(connect(url))


def _wait_for(store: OnlineStore, plan: WritePlan, rows: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if store.progress(plan).get("rows_written", 0) >= rows:
            time.sleep(1.0)
            return
        time.sleep(0.3)
    raise AssertionError(f"only {store.progress(plan)} after {timeout_s} s, waited for {rows} rows")


def _assert_equals_ground_truth(registry, store, settings, sample, last_day: date):
    expected = user_activity(sample, last_day.isoformat())
    plan = build_read_plan(registry, settings.redis_prefix, "user", ["user_activity"])
    rows = get_features(store, plan, [int(i) for i in expected.index])
    for row in rows:
        want = expected.loc[row.entity_id]
        assert row.values["user_activity.upvotes_total"] == want["upvotes_total"], row
        assert row.values["user_activity.distinct_posts_total"] == want["distinct_posts_total"], row
        assert row.values["user_activity.last_upvote_at"].replace(tzinfo=None) == want["last_upvote_at"], row
        assert row.event_times["user_activity.upvotes_total"].replace(tzinfo=None) == want["last_upvote_at"]
    assert len(store.client.keys(f"{settings.redis_prefix}:user:*")) == len(expected)


def _snapshot(client, prefix) -> dict:
    return {k: client.hgetall(k) for k in sorted(client.keys(f"{prefix}:user:*"))}


@pytest.mark.slow
def test_backlog_kill_and_resume_equal_the_ground_truth(job, registry, sample, redis_url):
    settings, group = job
    source = registry.sources["upvote_events"]
    directory = stream_directory(settings, source)
    first_days = sample.days(START, START + timedelta(days=2))
    # A backlog of many files present before the job starts, and malformed records among them.
    write_backlog(directory, source, (sample.events("upvote_events", d) for d in first_days), rows_per_file=250)
    good = {"event_id": "x", "user_id": 1, "post_id": 2, "event_time": "2026-01-01 10:00:00.000000"}
    bad_lines = [make(good) for _reason, make in MALFORMED]
    write_file(directory, "20260101T100000000000-malformed", bad_lines)

    store = _store(redis_url)
    plan = WritePlan.for_group(group, registry.entity_of(group), settings.redis_prefix)
    process = runner.start(registry, settings, group, redis_url)
    assert process.restored_from is None
    _wait_for(store, plan, rows=1)
    _wait_quiet(store, plan)
    _assert_equals_ground_truth(registry, store, settings, sample, first_days[-1])

    # Crash: SIGKILL after a checkpoint, new events arrive while it is down, resume from the checkpoint.
    time.sleep(settings.stream_checkpoint_seconds + 2)
    runner.kill(settings, group)
    more_days = sample.days(first_days[-1] + timedelta(days=1), first_days[-1] + timedelta(days=1))
    write_backlog(directory, source, (sample.events("upvote_events", d) for d in more_days), rows_per_file=500)
    written_before_restart = store.progress(plan)["rows_written"]
    process = runner.start(registry, settings, group, redis_url)
    assert process.restored_from and "/chk-" in process.restored_from
    _wait_quiet(store, plan, after=written_before_restart)
    _assert_equals_ground_truth(registry, store, settings, sample, more_days[-1])

    # Every malformed record is in the dead-letter sink with its reason; no good event was lost (above).
    deadline = time.monotonic() + 60
    while count_dead_letters(settings, group) < len(bad_lines) and time.monotonic() < deadline:
        time.sleep(1)
    letters = [json.loads(line) for f in (runner.job_dir(settings, group) / "dead_letter").rglob("*")
               if f.is_file() and not f.name.startswith(".") for line in f.read_text().splitlines()]
    assert sorted(letter["record"] for letter in letters) == sorted(bad_lines)
    assert all(letter["reason"] and letter["source"] == "upvote_events" for letter in letters)


def _wait_quiet(store, plan, after: int = 0, quiet_s: float = 4.0, timeout_s: float = 120) -> None:
    deadline, last, since = time.monotonic() + timeout_s, None, time.monotonic()
    while time.monotonic() < deadline:
        written = store.progress(plan).get("rows_written", 0)
        if written != last:
            last, since = written, time.monotonic()
        elif written > after and time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.3)
    raise AssertionError(f"the injector did not go quiet: {store.progress(plan)}")


@pytest.mark.slow
def test_sensor_observes_a_running_job_and_alerts_when_it_stops(job, registry, redis_url):
    settings, group = job
    if runner.running_job(settings, group) is None:
        runner.start(registry, settings, group, redis_url)
    store = _store(redis_url)
    plan = WritePlan.for_group(group, registry.entity_of(group), settings.redis_prefix)
    written = store.progress(plan).get("rows_written", 0)
    live = {"event_id": "sensor-1", "user_id": 7, "post_id": 9, "event_time": "2026-01-05 00:00:01.000000"}
    write_file(stream_directory(settings, registry.sources["upvote_events"]), "20260105T000001000000-sensor",
               [json.dumps(live)])
    _wait_for(store, plan, rows=written + 1)
    sensor = stream_sensor(registry, settings, group)
    resource = OnlineStoreResource(url=redis_url, local_dir=str(settings.data_dir / "redis"), prefix="st")
    with dg.instance_for_test() as instance, \
            dg.build_sensor_context(instance=instance, resources={"online_store": resource}) as context:
        result = sensor(context)
        observation = result.asset_events[0]
        assert observation.asset_key == dg.AssetKey(["stream", "user_activity"])
        assert observation.metadata["state"].value == "RUNNING"
        assert observation.metadata["rows_written"].value > 0
        assert observation.metadata["healthy"].value is True
        assert observation.metadata["lag_seconds"].value == 0.0
        assert not result.run_requests

        savepoint = runner.stop(settings, group)
        assert "savepoint-" in savepoint
        alerts = settings.data_dir / "alerts" / "streams.jsonl"
        before = len(alerts.read_text().splitlines()) if alerts.exists() else 0
        with dg.build_sensor_context(instance=instance, resources={"online_store": resource},
                                     cursor=context.cursor) as later:
            result = sensor(later)
        assert result.asset_events[0].metadata["state"].value == "STOPPED"
        assert result.asset_events[0].metadata["healthy"].value is False
        assert not result.run_requests  # stopped on purpose: no restart
        new = [json.loads(line) for line in alerts.read_text().splitlines()[before:]]
        assert [a["message"] for a in new] == ["user_activity stream is down: stopped on purpose"]


@pytest.mark.slow
def test_status_reports_state_checkpoint_and_progress(job, registry, redis_url):
    settings, group = job
    runner.start(registry, settings, group, redis_url)
    live = {"event_id": "status-1", "user_id": 8, "post_id": 9, "event_time": "2026-01-05 00:00:02.000000"}
    write_file(stream_directory(settings, registry.sources["upvote_events"]), "20260105T000002000000-status",
               [json.dumps(live)])
    deadline = time.monotonic() + 60  # Flink's REST metrics and the first checkpoint take a few seconds
    status = stream_status(registry, settings, group, redis_url)
    while not (status.records_in and status.last_checkpoint) and time.monotonic() < deadline:
        time.sleep(1)
        status = stream_status(registry, settings, group, redis_url)
    assert status.state == "RUNNING"
    assert status.rows_written > 0 and status.max_event_time is not None
    assert status.last_checkpoint is not None and status.checkpoint_path
    assert status.records_in and status.records_in > 0
    runner.kill(settings, group)
    assert stream_status(registry, settings, group, redis_url).state == "STOPPED"
