"""Stream-health alerts: one per incident (problem kind and job start), through the platform's alert sinks."""

import json
from datetime import timedelta

from datetime import datetime

from orchestration.streaming_defs import MAX_CRASHES_WITHOUT_PROGRESS, STREAM_ALERT_FILE, crash_count, stream_alerts
from quality.alerts import AlertSinks
from streaming.runner import JobProcess
from streaming.status import StreamStatus


def _job(started_at: float) -> JobProcess:
    return JobProcess(group="user_activity", pid=1, rest="127.0.0.1:1", redis_url="redis://127.0.0.1:1",
                      started_at=started_at, restored_from=None)


def _status(state: str, lag: float | None = 0.0, cause: str | None = None,
            reached: datetime | None = None) -> StreamStatus:
    return StreamStatus(group="user_activity", state=state, records_in=10, rows_written=10, rows_landed=10,
                        rows_refused_ahead=0,
                        last_write=None, max_event_time=reached, watermark=None, last_checkpoint=None, checkpoint_path=None,
                        dead_letters=0, lag_seconds=lag, cause=cause)


def test_problems_by_state_and_lag(registry):
    group = registry.groups["user_activity"]
    assert group.freshness == timedelta(minutes=2)
    job = _job(1000.0)
    assert stream_alerts(group, job, _status("RUNNING", lag=119)) == []
    lagging, = stream_alerts(group, job, _status("RUNNING", lag=300))
    assert (lagging.problem, lagging.message()) == (
        "lagging", "user_activity stream is lagging: input has waited 300 s for Redis, freshness target 120 s")
    died, = stream_alerts(group, job, _status("FAILED", lag=None, cause="ConnectionError: Redis is down"))
    assert (died.problem, died.message()) == ("down", "user_activity stream FAILED: ConnectionError: Redis is down")
    stopped, = stream_alerts(group, job, _status("STOPPED", lag=None))
    assert stopped.message() == "user_activity stream is down: stopped on purpose"
    assert [a.message() for a in stream_alerts(group, job, _status("RESTARTING", cause="OSError: disk full"))] == [
        "user_activity stream is RESTARTING: OSError: disk full"]
    gave_up, = stream_alerts(group, job, _status("FAILED", cause="ValueError: x"), gave_up=True)
    assert gave_up.problem == "gave_up" and gave_up.message().startswith(
        f"user_activity stream FAILED {MAX_CRASHES_WITHOUT_PROGRESS} times in a row without writing a row")


def test_a_bootstrapping_stream_raises_no_alert_and_says_how_far_it_is_and_how_long_it_has_left(registry):
    """A first start replaying the event log is not a problem (readers get the batch values); its progress
    and time left at the rate so far are what status, `stream run` and the sensor's metadata show."""
    from dataclasses import replace

    from streaming.runner import replay_seconds_left

    group = registry.groups["user_activity"]
    left = replay_seconds_left(105_000, 420_000, 100.0)  # a quarter in 100 s: 300 s to go
    status = replace(_status("BOOTSTRAPPING", lag=40), replayed=(105_000, 420_000), replay_seconds_left=left)
    assert stream_alerts(group, _job(1000.0), status) == []
    assert status.bootstrap_progress() == "105,000 of 420,000 replayed, about 5 min left"
    assert replay_seconds_left(0, 420_000, 15.0) is None  # the job is still starting: no rate yet
    assert replace(status, replayed=(0, 420_000), replay_seconds_left=None).bootstrap_progress() == "0 of 420,000 replayed"
    near_the_end = replace(status, replayed=(400_000, 420_000),
                           replay_seconds_left=replay_seconds_left(400_000, 420_000, 400.0))
    assert near_the_end.bootstrap_progress() == "400,000 of 420,000 replayed, about 20 s left"
    assert _status("RUNNING").bootstrap_progress() is None


def test_crashes_count_once_per_launch_and_only_in_a_row_without_progress():
    at = datetime(2026, 1, 3, 10, 0)
    record = {}
    for started in (1.0, 2.0, 3.0):  # three launches fail at the same point: three in a row
        for _tick in range(2):  # each failure is seen by two ticks, counted once
            record = crash_count(record, _job(started), _status("FAILED", reached=at))
    assert record["crashes"] == 3 == MAX_CRASHES_WITHOUT_PROGRESS
    record = crash_count(record, _job(4.0), _status("RUNNING", reached=at))
    assert record["crashes"] == 3  # running again is not progress yet
    later = datetime(2026, 1, 3, 11, 0)
    assert crash_count(record, _job(4.0), _status("FAILED", reached=later))["crashes"] == 1  # got further


def test_one_alert_per_incident_not_per_sensor_tick(registry, tmp_path):
    group = registry.groups["user_activity"]
    sinks = AlertSinks(file=tmp_path / STREAM_ALERT_FILE)
    first_job, restarted_job = _job(1000.0), _job(2000.0)
    ticks = [stream_alerts(group, first_job, _status("RUNNING", lag=lag)) for lag in (300, 320, 340)]
    assert [sinks.send(alert) for tick in ticks for alert in tick] == [True, False, False]
    assert sinks.send(stream_alerts(group, first_job, _status("FAILED", None, cause="ValueError: x"))[0])
    assert sinks.send(stream_alerts(group, restarted_job, _status("RUNNING", lag=400))[0])
    lines = [json.loads(line) for line in (tmp_path / STREAM_ALERT_FILE).read_text().splitlines()]
    assert [(a["name"], a["problem"], a["state"]) for a in lines] == [
        ("user_activity", "lagging", "RUNNING"), ("user_activity", "down", "FAILED"),
        ("user_activity", "lagging", "RUNNING")]
    assert lines[0]["lag_seconds"] == 300 and lines[0]["job_started_at"] == "1970-01-01T00:16:40+00:00"
