"""Streaming on real parts: the generated PyFlink job on the local mini-cluster, a real Redis, real files.

One job is started on a backlog of many event files (plus malformed records), killed with SIGKILL,
fed more events and resumed from its checkpoint; at each step Redis must equal a Python ground truth
over the same events, and every malformed record must sit in the dead-letter sink with its reason.
"""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta, timezone

import dagster as dg
import pandas as pd
import pytest

from infra.errors import PlatformError
from infra.redis_server import free_loopback_port
from orchestration.resources import OnlineStoreResource
from orchestration.streaming_defs import stream_sensor
from quality.contracts import shown_record
from serving.get_features import build_read_plan, get_features
from serving.online_store import OnlineStore, WritePlan, connect
from streaming import runner
from streaming.codegen import REPLAY, render_job
from streaming.connectors import stream_directory
from streaming.event_files import MALFORMED, write_backlog, write_file
from streaming.status import count_dead_letters, stream_status
from tests.conftest import LAST_DAY, START
from tests.reference import user_activity
from tests.stream_lines import MAX_LINE_BYTES, bad_lines, unusual_good_lines


def test_codegen_renders_the_local_job(registry, settings):
    text = render_job(registry, settings, registry.groups["user_activity"])
    compile(text, "run.py", "exec")
    # Files are read as a log, one after the other in name order, watched every second.
    live = stream_directory(settings, registry.sources["upvote_events"]).as_uri()
    assert f"runtime.create_file_lines(t_env, \"upvote_events__lines\", {live!r}, 1.0)" in text
    assert "CREATE TABLE upvote_events__lines" not in text  # not Flink's filesystem table, which reads in no order
    # One contract check in front of the typed source, fed lines cut one byte past the limit.
    assert (f"LATERAL TABLE(upvote_events__contract(CAST(line AS VARBINARY({settings.stream_max_line_bytes + 1})), "
            "replayed)) AS checked(reason, record, event_id, user_id, post_id, event_time)") in text
    # The event log replayed on a first start is the second input, judged by the same contract.
    assert "SELECT line, TRUE AS replayed FROM upvote_events__replayed_lines" in text and "CUTOFF = None" in text
    replayed = (runner.job_dir(settings, registry.groups["user_activity"]) / "replay" / "upvote_events").as_uri()
    assert f"runtime.create_file_lines(t_env, \"upvote_events__replayed_lines\", {replayed!r}, None)" in text
    with_cutoff = render_job(registry, settings, registry.groups["user_activity"], cutoff="2026-01-11 00:00:00")
    assert "CUTOFF = '2026-01-11 00:00:00'" in with_cutoff
    # The replay phase: the same graph with an empty watched directory for live input, checkpoints kept apart.
    phase = render_job(registry, settings, registry.groups["user_activity"], cutoff="2026-01-11 00:00:00", phase=REPLAY)
    empty = (runner.job_dir(settings, registry.groups["user_activity"]) / "no_live_input").as_uri()
    assert f"runtime.create_file_lines(t_env, \"upvote_events__lines\", {empty!r}, 1.0)" in phase
    assert "Path(JOB_DIR) / 'replay/checkpoints'" in phase and "Path(JOB_DIR) / 'checkpoints'" in text
    assert "WATERMARK FOR rowtime AS rowtime - INTERVAL '5' SECOND\n)\n" in text  # source.sql, no connector
    assert "{{ connector }}" not in text and "'format' = 'json'\n" not in text.split("# Generation")[0]
    assert "FROM upvote_events__checked WHERE reason IS NOT NULL" in text
    assert "user_activity__inject(user_id, upvotes_total, distinct_posts_total, last_upvote_at, feature_ts)" in text
    assert "COUNT(DISTINCT post_id) AS distinct_posts_total" in text


def test_codegen_renders_the_same_job_for_kafka(registry, settings):
    cluster = settings.model_copy(update={"kafka_bootstrap_servers": "kafka-1:9092,kafka-2:9092",
                                          "flink_rest": "jobmanager:8081"})
    text = render_job(registry, cluster, registry.groups["user_activity"])
    assert ('runtime.create_kafka_lines(t_env, "upvote_events__lines", **{\'servers\': \'kafka-1:9092,kafka-2:9092\', '
            "'topic': 'upvote_events', 'group_id': 'fp-user_activity', 'start_millis': None") in text
    resumed_at_cutoff = render_job(registry, cluster, registry.groups["user_activity"], cutoff="2026-01-11 00:00:00")
    assert "'start_millis': 1768089600000" in resumed_at_cutoff  # the cutoff, 2026-01-11 00:00:00 UTC
    assert "flink_rest='jobmanager:8081'" in text
    local = render_job(registry, settings, registry.groups["user_activity"])
    assert local.split("# Generation")[1] == text.split("# Generation")[1]  # same transform and injection
    replay = render_job(registry, cluster, registry.groups["user_activity"], cutoff="2026-01-11 00:00:00", phase=REPLAY)
    assert "create_kafka_lines" not in replay and "no_live_input" in replay  # the replay phase reads no topic


def test_a_job_on_kafka_without_the_connector_names_the_setup_that_fetches_it(settings, monkeypatch, tmp_path):
    from streaming import extensions

    kafka = settings.model_copy(update={"kafka_bootstrap_servers": "kafka-1:9092"})
    assert extensions.job_jars(kafka)[1:] == [str(jar) for jar in extensions.KAFKA_JARS]
    assert len(extensions.job_jars(settings)) == 1  # the platform's own classes only
    monkeypatch.setattr(extensions, "KAFKA_JARS", (tmp_path / "flink-connector-kafka.jar",))
    missing = r"Flink's Kafka connector is missing \(flink-connector-kafka.jar"
    with pytest.raises(PlatformError, match=missing) as caught:
        extensions.job_jars(kafka)
    assert "infra/setup.sh" in caught.value.fix


def test_a_group_without_stream_sql_cannot_be_built(registry, settings):
    batch_only = registry.groups["post_popularity"].model_copy(update={"stream": None})
    with pytest.raises(PlatformError, match="post_popularity' has no stream/ folder"):
        render_job(registry, settings, batch_only)


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
    assert sum(1 for _ in store.client.scan_iter(match=f"{settings.redis_prefix}:user:*")) == len(expected)


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
    assert 0 < status.rows_landed <= status.rows_written and status.max_event_time is not None
    assert status.last_checkpoint is not None and status.checkpoint_path
    assert status.records_in and status.records_in > 0
    runner.kill(settings, group)
    killed = stream_status(registry, settings, group, redis_url)
    assert (killed.state, killed.cause.split(":")[0]) == ("FAILED", "killed with SIGKILL (featctl stream kill)")


# --- the source contract in front of the running job -------------------------------------------------------

@pytest.fixture(scope="module")
def contract_job(registry, settings, tmp_path_factory):
    """The user_activity job on its own data dir and prefix, with the tests' line-size limit."""
    stream_settings = settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("contract"),
                                                  "redis_prefix": "ct", "stream_max_line_bytes": MAX_LINE_BYTES})
    group = registry.groups["user_activity"]
    yield stream_settings, group
    runner.kill(stream_settings, group)


def _good_event(user: int, second: int) -> dict:
    stamp = datetime(2026, 1, 3, 9, 0, 0) + timedelta(seconds=second)
    return {"event_id": f"good-{user}-{second}", "user_id": user, "post_id": second % 5, "event_time": stamp}


def _line(event: dict) -> bytes:
    return json.dumps({**event, "event_time": event["event_time"].strftime("%Y-%m-%d %H:%M:%S.%f")}).encode()


def _write_lines(directory, name: str, lines: list[bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    temp = directory / f".{name}.tmp"
    temp.write_bytes(b"".join(line + b"\n" for line in lines))
    temp.rename(directory / f"{name}.json")


def _lifetime_truth(events: list[dict]) -> dict[int, tuple[int, int, datetime]]:
    """Plain Python over the good events: upvotes, distinct posts and the latest upvote per user."""
    by_user: dict[int, list[dict]] = {}
    for event in events:
        by_user.setdefault(event["user_id"], []).append(event)
    return {user: (len(evs), len({e["post_id"] for e in evs}), max(e["event_time"] for e in evs))
            for user, evs in by_user.items()}


def _dead_letters(settings, group) -> list[dict]:
    return [json.loads(line) for f in (runner.job_dir(settings, group) / "dead_letter").rglob("*")
            if f.is_file() and not f.name.startswith(".") for line in f.read_text().splitlines()]


def _assert_redis_holds(registry, store, settings, truth: dict) -> None:
    plan = build_read_plan(registry, settings.redis_prefix, "user", ["user_activity"])
    for row in get_features(store, plan, sorted(truth)):
        count, distinct, last = truth[row.entity_id]
        assert row.values["user_activity.upvotes_total"] == count, row
        assert row.values["user_activity.distinct_posts_total"] == distinct, row
        assert row.values["user_activity.last_upvote_at"].replace(tzinfo=None) == last, row
    keys = {int(k.decode().rsplit(":", 1)[1]) for k in store.client.keys(f"{settings.redis_prefix}:user:*")}
    assert keys == set(truth), f"users in Redis that no good event has: {sorted(keys - set(truth))}"


def _wait_for_letters(settings, group, count: int, timeout_s: float = 90) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        letters = _dead_letters(settings, group)
        if len(letters) >= count:
            return letters
        time.sleep(1)
    raise AssertionError(f"{len(_dead_letters(settings, group))} dead letters after {timeout_s} s, expected {count}")


@pytest.mark.slow
def test_each_bad_line_between_good_events_is_dead_lettered_never_counted(contract_job, registry, redis_url):
    settings, group = contract_job
    directory = stream_directory(settings, registry.sources["upvote_events"])
    store = _store(redis_url)
    plan = WritePlan.for_group(group, registry.entity_of(group), settings.redis_prefix)
    process = runner.start(registry, settings, group, redis_url)
    bad = bad_lines()
    good_events, second = [], 0
    for index, (_kind, line, _reason) in enumerate(bad):  # one file per kind: good, bad, good
        before, after = _good_event(index % 7, second), _good_event((index + 3) % 7, second + 1)
        second += 2
        good_events += [before, after]
        _write_lines(directory, f"{index:04d}-kind", [_line(before), line, _line(after)])
    odd = unusual_good_lines(first_user=100)
    _write_lines(directory, "9999-unusual", [line for _kind, line, _event in odd])
    good_events += [event for _kind, _line_, event in odd]
    # An exact duplicate (same event_id) is another delivery of an event: counted again, as batch counts it.
    _write_lines(directory, "9999-zduplicate", [_line(good_events[0])])
    good_events.append(good_events[0])

    letters = _wait_for_letters(settings, group, len(bad))
    _wait_quiet(store, plan)
    lines = 3 * len(bad) + len(odd) + 1
    deadline = time.monotonic() + 30  # Flink's REST metrics trail the records by a second or more
    status = stream_status(registry, settings, group, redis_url)
    while status.records_in != lines and time.monotonic() < deadline:
        time.sleep(1)
        status = stream_status(registry, settings, group, redis_url)
    assert status.state == "RUNNING" and runner.running_job(settings, group).pid == process.pid
    assert status.records_in == lines  # every line read once
    _assert_redis_holds(registry, store, settings, _lifetime_truth(good_events))
    # Exactly the bad lines are dead letters, each once, with the reason the contract gives.
    expected = sorted((shown_record(line, MAX_LINE_BYTES), reason) for _kind, line, reason in bad)
    got = sorted((letter["record"], letter["reason"]) for letter in letters)
    assert [record for record, _ in got] == [record for record, _ in expected]
    for (_record, reason), (_same, prefix) in zip(got, expected):
        assert reason.startswith(prefix), (reason, prefix)
    assert all(letter["source"] == "upvote_events" for letter in letters)


@pytest.mark.slow
def test_a_job_restarted_on_a_file_of_every_bad_kind_keeps_running(contract_job, registry, redis_url):
    settings, group = contract_job
    directory = stream_directory(settings, registry.sources["upvote_events"])
    store = _store(redis_url)
    plan = WritePlan.for_group(group, registry.entity_of(group), settings.redis_prefix)
    if runner.running_job(settings, group) is None:
        runner.start(registry, settings, group, redis_url)
    time.sleep(settings.stream_checkpoint_seconds + 2)
    runner.kill(settings, group)  # a crash; then one file holding every bad kind at once arrives
    letters_before = len(_dead_letters(settings, group))
    truth_before = {user: _read_user(registry, store, settings, user)
                    for user in (int(k.decode().rsplit(":", 1)[1]) for k in store.client.keys("ct:user:*"))}
    late = [{**_good_event(1, 10_000), "post_id": 99}, _good_event(555, 10_001)]  # post 99: new to user 1
    _write_lines(directory, "a-every-bad-kind", [_line(late[0]), *(line for _k, line, _r in bad_lines()), _line(late[1])])
    written = store.progress(plan)["rows_written"]
    process = runner.start(registry, settings, group, redis_url)
    assert process.restored_from and "/chk-" in process.restored_from
    _wait_for_letters(settings, group, letters_before + len(bad_lines()))
    _wait_quiet(store, plan, after=written)
    assert stream_status(registry, settings, group, redis_url).state == "RUNNING"
    count, distinct, _last = truth_before.get(1, (0, 0, None))
    assert _read_user(registry, store, settings, 1) == (count + 1, distinct + 1, late[0]["event_time"])
    assert _read_user(registry, store, settings, 555) == (1, 1, late[1]["event_time"])


def _read_user(registry, store, settings, user: int) -> tuple[int, int, datetime]:
    plan = build_read_plan(registry, settings.redis_prefix, "user", ["user_activity"])
    values = get_features(store, plan, [user])[0].values
    return (values["user_activity.upvotes_total"], values["user_activity.distinct_posts_total"],
            values["user_activity.last_upvote_at"].replace(tzinfo=None))


@pytest.mark.slow
def test_a_failed_job_reports_failed_with_its_cause_and_the_sensor_restarts_it(registry, settings, redis_url,
                                                                                tmp_path_factory):
    """A job whose Redis refuses connections: RESTARTING, then FAILED, each with the one-line cause."""
    failing = settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("failing"), "redis_prefix": "fl"})
    group = registry.groups["user_activity"]
    closed = f"redis://127.0.0.1:{free_loopback_port()}"  # nothing listens there
    _write_lines(stream_directory(failing, registry.sources["upvote_events"]), "0001", [_line(_good_event(1, 0))])
    try:
        runner.start(registry, failing, group, closed)
    except PlatformError as exc:  # it may fail before every task ran once; the cause is the same
        assert "Connection refused" in str(exc)
    deadline = time.monotonic() + 120
    while runner.running_job(failing, group) and time.monotonic() < deadline:
        time.sleep(1)
    status = stream_status(registry, failing, group, redis_url)
    assert status.state == "FAILED"
    assert status.cause.startswith("redis.exceptions.ConnectionError: Error 111 connecting to 127.0.0.1:"), status.cause
    sensor = stream_sensor(registry, failing, group)
    resource = OnlineStoreResource(url=redis_url, local_dir=str(failing.data_dir / "redis"), prefix="fl")
    with dg.instance_for_test() as instance, \
            dg.build_sensor_context(instance=instance, resources={"online_store": resource}) as context:
        result = sensor(context)
    assert result.asset_events[0].metadata["state"].value == "FAILED"
    assert result.asset_events[0].metadata["cause"].value == status.cause
    assert result.asset_events[0].metadata["crashes_in_a_row"].value == 1
    assert [r.asset_selection for r in result.run_requests] == [[dg.AssetKey(["stream", "user_activity"])]]


# --- a stream started after the batch history ----------------------------------------------------------------

def _after_batch_history(registry, settings, spark, sample, redis_url, tmp_path_factory, prefix: str):
    """user_activity's batch values of LAST_DAY published under `prefix`, a data dir of their own, and what
    the stream tests check against: (settings, group, the pandas batch values, store, plan, the cutoff)."""
    from batch.feature_job import materialize_partition
    from batch.publish import publish_partition

    own = settings.model_copy(update={"data_dir": tmp_path_factory.mktemp(prefix), "redis_prefix": prefix})
    group, ds = registry.groups["user_activity"], LAST_DAY.isoformat()
    materialize_partition(spark, registry, group, ds)
    publish_partition(spark, registry, group, ds, redis_url, prefix)
    plan = WritePlan.for_group(group, registry.entity_of(group), prefix)
    cutoff = datetime.combine(LAST_DAY + timedelta(days=1), datetime.min.time())
    return own, group, user_activity(sample, ds), _store(redis_url), plan, cutoff


@pytest.mark.slow
@pytest.mark.usefixtures("event_log")
def test_a_stream_started_after_the_batch_history_continues_it(registry, settings, spark, sample, redis_url,
                                                                tmp_path_factory):
    """The batch values of LAST_DAY are in Redis; the stream's first start replays the event log, so n new
    upvotes of a user give the batch value plus n (not n), and a live event the event log already holds
    is refused rather than counted twice."""
    from streaming.bootstrap import recorded_bootstrap

    boot, group, batch, store, plan, cutoff = _after_batch_history(registry, settings, spark, sample, redis_url,
                                                                   tmp_path_factory, "bs")
    runner.start(registry, boot, group, redis_url, spark=spark)
    bootstrap = recorded_bootstrap(boot, group)
    assert bootstrap.days == tuple(d.isoformat() for d in sample.days(START, LAST_DAY)) and bootstrap.cutoff == cutoff
    assert bootstrap.events == sum(len(sample.events("upvote_events", d)) for d in sample.days(START, LAST_DAY))

    users = [int(u) for u in batch.index[:5]]
    live, late = _live_after_cutoff(users, cutoff, "live")
    _write_lines(stream_directory(boot, registry.sources["upvote_events"]), "live-0001",
                 [_line(e) for e in [late, *live]])
    letters = _wait_for_letters(boot, group, 1, timeout_s=180)
    _wait_quiet(store, plan, timeout_s=180)

    _assert_batch_plus_live(registry, store, boot, batch, users, live)
    untouched = [int(u) for u in batch.index[5:]]
    rows = get_features(store, build_read_plan(registry, boot.redis_prefix, "user", ["user_activity"]), untouched)
    for row in rows:  # every other user still holds its batch value, as of the end of LAST_DAY
        assert row.values["user_activity.upvotes_total"] == batch.loc[row.entity_id]["upvotes_total"]
        assert row.event_times["user_activity.upvotes_total"].replace(tzinfo=None) == cutoff
    assert len(store.client.keys("bs:user:*")) == len(batch)
    assert [letter["record"] for letter in letters] == [_line(late).decode()]
    assert "is before the stream's cutoff 2026-01-11 00:00:00" in letters[0]["reason"]
    runner.kill(boot, group)


def _live_after_cutoff(users: list[int], cutoff: datetime, prefix: str) -> tuple[list[dict], dict]:
    """n + 1 upvotes of new posts for the n-th of `users` after the cutoff, and one upvote an hour before it
    (a day the event log holds): ids start with `prefix`."""
    live = [{"event_id": f"{prefix}-{u}-{k}", "user_id": u, "post_id": 10_000_000 + k,
             "event_time": cutoff + timedelta(minutes=10 * n + k)} for n, u in enumerate(users) for k in range(n + 1)]
    late = {"event_id": f"{prefix}-late-1", "user_id": users[0], "post_id": 1,
            "event_time": cutoff - timedelta(hours=1)}
    return live, late


def _assert_batch_plus_live(registry, store, settings, batch, users: list[int], live: list[dict]) -> None:
    """Each of `users` holds its batch value plus its live upvotes (each of a new post), as of its newest."""
    for n, user in enumerate(users):
        want = batch.loc[user]
        assert _read_user(registry, store, settings, user) == (
            want["upvotes_total"] + n + 1, want["distinct_posts_total"] + n + 1, live_last(live, user))


def live_last(events: list[dict], user: int) -> datetime:
    return max(e["event_time"] for e in events if e["user_id"] == user)


@pytest.mark.slow
@pytest.mark.usefixtures("event_log")
def test_training_sets_get_what_the_stream_served_across_a_crash(registry, settings, spark, sample, redis_url,
                                                                  tmp_path_factory):
    """Reads through the client between bursts of live upvotes record (id, time, values); once the streamed
    history is loaded, a training set for those observations returns the same values for every one, and
    the history holds each landed value exactly once although the job was killed and resumed midway."""
    from offline.streamed_history import load_streamed_history
    from offline.training_set import training_set_pandas
    from serving.client import InProcessClient

    served, group, batch, store, plan, cutoff = _after_batch_history(registry, settings, spark, sample, redis_url,
                                                                     tmp_path_factory, "ts")
    client = InProcessClient.connect(registry, redis_url, prefix=served.redis_prefix)
    directory = stream_directory(served, registry.sources["upvote_events"])
    users = [int(u) for u in batch.index[:12]]
    counts = {u: (int(batch.loc[u]["upvotes_total"]), set()) for u in users}
    truth, observations = [], []  # (user, event time, upvotes_total) per live event; (user, time, values)
    runner.start(registry, served, group, redis_url, spark=spark)
    for burst in range(6):
        start = cutoff + timedelta(minutes=10 * burst, seconds=1)  # after the batch values' instant
        events = [{"event_id": f"burst-{burst}-{i}", "user_id": users[(burst * 5 + i * 7) % len(users)],
                   "post_id": 20_000_000 + burst * 100 + i, "event_time": start + timedelta(seconds=i)}
                  for i in range(8)]
        for event in events:
            total, _ = counts[event["user_id"]]
            counts[event["user_id"]] = (total + 1, None)
            truth.append((event["user_id"], event["event_time"], total + 1))
        _write_lines(directory, f"burst-{burst:02d}", [_line(e) for e in events])
        _wait_until_landed(store, plan, events[-1]["event_time"])
        at = events[-1]["event_time"] + timedelta(minutes=1)
        for row in client.get_features("user", users, ["user_activity.upvotes_total", "user_activity.last_upvote_at"]):
            observations.append((row.entity_id, at, row.values["user_activity.upvotes_total"]))
        if burst == 2:  # a crash after a checkpoint: the resumed job replays what came after it
            time.sleep(served.stream_checkpoint_seconds + 2)
            runner.kill(served, group)
            runner.start(registry, served, group, redis_url, spark=spark)
    runner.kill(served, group)

    loaded = load_streamed_history(spark, registry, group, redis_url, served.redis_prefix)
    assert load_streamed_history(spark, registry, group, redis_url, served.redis_prefix) == 0  # loaded once
    history = spark.table(f"{group.table}_streamed").where(f"feature_ts >= '{cutoff}'").toPandas()
    got = sorted((int(r.user_id), r.feature_ts.to_pydatetime().replace(tzinfo=None), int(r.upvotes_total))
                 for r in history.itertuples())
    assert got == sorted(truth) and loaded >= len(truth)  # each landed value once, none missing

    frame = pd.DataFrame({"user_id": [u for u, _, _ in observations],
                          "event_time": [t.replace(tzinfo=timezone.utc) for _, t, _ in observations]})
    joined = training_set_pandas(spark, registry, frame, ["user_activity.upvotes_total"]).to_pandas()
    assert joined["user_activity__upvotes_total"].tolist() == [v for _, _, v in observations]
    assert len({v for _, _, v in observations}) > len(users)  # the served values moved between bursts


def _wait_until_landed(store, plan, newest: datetime, timeout_s: float = 120) -> None:
    """Until the injector has written an event as new as `newest` and gone quiet."""
    micros = int(newest.replace(tzinfo=timezone.utc).timestamp() * 1_000_000)
    deadline = time.monotonic() + timeout_s
    while store.progress(plan).get("max_event_time", 0) < micros:
        assert time.monotonic() < deadline, f"the stream did not land {newest}: {store.progress(plan)}"
        time.sleep(0.3)
    _wait_quiet(store, plan, quiet_s=1.5)


def test_live_events_create_the_posts_most_upvotes_go_to(registry, tmp_path):
    """`featctl events live`'s generator: posts valid under the post_events contract, one per 25 upvotes,
    written before the upvotes that go to them; most upvotes go to those posts, the others to old ones."""
    from quality.contracts import check_line
    from streaming.event_files import LIVE_POST_BASE, DirectorySink, LiveUpvotes

    live = LiveUpvotes(DirectorySink(tmp_path / "upvotes"), rate=500, first_post=1_000, posts=100,
                       posts_sink=DirectorySink(tmp_path / "posts"),
                       subreddits={1: "r/python", 2: "r/rust"})
    now = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    posts = live.new_posts(500, now)
    assert len(posts) == 20 and live.live_posts == list(range(LIVE_POST_BASE, LIVE_POST_BASE + 20))
    for line in posts:
        reason, values = check_line(registry.sources["post_events"], line.encode(), 4096)
        assert reason is None and values[2] in (1, 2) and values[3] == {1: "r/python", 2: "r/rust"}[values[2]]
    _lines, upvotes = live.batch(500, now)
    to_live = [u for u in upvotes if u["post_id"] >= LIVE_POST_BASE]
    assert 0.7 < len(to_live) / len(upvotes) < 0.9
    assert all(1_000 <= u["post_id"] < 1_100 for u in upvotes if u["post_id"] < LIVE_POST_BASE)


@pytest.mark.slow
def test_a_stream_into_redis_cluster_loses_nothing_when_a_master_dies(registry, settings, sample, tmp_path):
    """The injection writes through the failover: a master is killed while a day of events streams in, its
    replica takes over, and every user's values equal the ground truth, the streamed history included."""
    from infra.redis_cluster import local_redis_cluster

    group, source = registry.groups["user_activity"], registry.sources["upvote_events"]
    days = sample.days(START, START + timedelta(days=1))
    with local_redis_cluster(tmp_path / "redis") as cluster:
        stream_settings = settings.model_copy(update={"data_dir": tmp_path / "data", "redis_prefix": "sf",
                                                      "redis_url": cluster.url})
        directory = stream_directory(stream_settings, source)
        write_backlog(directory, source, [sample.events("upvote_events", days[0])], rows_per_file=250)
        store = _store(cluster.url)
        plan = WritePlan.for_group(group, registry.entity_of(group), "sf")
        runner.start(registry, stream_settings, group, cluster.url)
        try:
            _wait_for(store, plan, rows=1)
            second_day = sample.events("upvote_events", days[1])
            half = len(second_day) // 2
            write_backlog(directory, source, [second_day.iloc[:half]], rows_per_file=100)
            time.sleep(1.0)  # the second day is streaming in
            victim = cluster.masters()[0]
            cluster.kill(victim)
            write_backlog(directory, source, [second_day.iloc[half:]], rows_per_file=100)  # during the failover
            cluster.wait_ready()
            _wait_quiet(store, plan, quiet_s=8.0)
            assert runner.running_job(stream_settings, group) is not None
            assert victim not in cluster.masters()
            _assert_equals_ground_truth(registry, store, stream_settings, sample, days[1])
            history = sum(store.client.xlen(key) for key in store.history_keys(plan))
            assert history >= sum(1 for _ in store.client.scan_iter(match="sf:user:*"))  # each landed to its slot's stream
        finally:
            runner.kill(stream_settings, group)
            store.client.close()
