"""Stream-health alerts: one per incident (problem kind and job start), through the platform's alert sinks."""

import json
from datetime import timedelta

from orchestration.streaming_defs import STREAM_ALERT_FILE, stream_alerts
from quality.alerts import AlertSinks
from streaming.runner import JobProcess
from streaming.status import StreamStatus


def _job(started_at: float) -> JobProcess:
    return JobProcess(group="user_activity", pid=1, rest="127.0.0.1:1", redis_url="redis://127.0.0.1:1",
                      started_at=started_at, restored_from=None)


def _status(state: str, lag: float | None = 0.0) -> StreamStatus:
    return StreamStatus(group="user_activity", state=state, records_in=10, rows_written=10, last_write=None,
                        max_event_time=None, watermark=None, last_checkpoint=None, checkpoint_path=None,
                        dead_letters=0, lag_seconds=lag)


def test_problems_by_state_and_lag(registry):
    group = registry.groups["user_activity"]
    assert group.freshness == timedelta(minutes=2)
    job = _job(1000.0)
    assert stream_alerts(group, job, _status("RUNNING", lag=119), crashed=False) == []
    lagging, = stream_alerts(group, job, _status("RUNNING", lag=300), crashed=False)
    assert (lagging.problem, lagging.message()) == (
        "lagging", "user_activity stream is lagging: input has waited 300 s for Redis, freshness target 120 s")
    died, = stream_alerts(group, job, _status("STOPPED", lag=None), crashed=True)
    assert died.message() == "user_activity stream is down: the job process died"
    stopped, = stream_alerts(group, job, _status("STOPPED", lag=None), crashed=False)
    assert stopped.message() == "user_activity stream is down: stopped on purpose"
    assert [a.message() for a in stream_alerts(group, job, _status("RESTARTING"), crashed=False)] == [
        "user_activity stream is RESTARTING"]


def test_one_alert_per_incident_not_per_sensor_tick(registry, tmp_path):
    group = registry.groups["user_activity"]
    sinks = AlertSinks(file=tmp_path / STREAM_ALERT_FILE)
    first_job, restarted_job = _job(1000.0), _job(2000.0)
    ticks = [stream_alerts(group, first_job, _status("RUNNING", lag=lag), crashed=False) for lag in (300, 320, 340)]
    assert [sinks.send(alert) for tick in ticks for alert in tick] == [True, False, False]
    assert sinks.send(stream_alerts(group, first_job, _status("STOPPED", None), crashed=True)[0])
    assert sinks.send(stream_alerts(group, restarted_job, _status("RUNNING", lag=400), crashed=False)[0])
    lines = [json.loads(line) for line in (tmp_path / STREAM_ALERT_FILE).read_text().splitlines()]
    assert [(a["name"], a["problem"], a["state"]) for a in lines] == [
        ("user_activity", "lagging", "RUNNING"), ("user_activity", "down", "STOPPED"),
        ("user_activity", "lagging", "RUNNING")]
    assert lines[0]["lag_seconds"] == 300 and lines[0]["job_started_at"] == "1970-01-01T00:16:40+00:00"
