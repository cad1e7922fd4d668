"""A source's ingest on real Flink, Spark and Dagster: every valid line of the stream lands in the event log
exactly once, across a kill -9 and a restart; every bad line is a dead letter with its reason; a day is
complete once the watermark passed its end by the source's lateness; a landed day loads into the raw table
beside the history already there, and loads again after a late event without counting anything twice; the
Dagster sensor requests the day's batch (and the days after a reloaded one). Truths are the lines written."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import date, datetime, timedelta
from itertools import zip_longest

import dagster as dg
import pandas as pd
import pytest

from eventlog.hive import write_raw_partitions
from eventlog.landing import landed_days, load_landed_day
from orchestration.factory import DAILY_JOB, build_definitions
from streaming import ingest, runner
from streaming.codegen import dead_letter_directory
from streaming.connectors import stream_directory
from streaming.status import ingest_status
from tests.stream_lines import MAX_LINE_BYTES, bad_lines, unusual_good_lines

D1, D2, D3 = date(2026, 1, 3), date(2026, 1, 4), date(2026, 1, 5)


def _event(n: int, day: date, minute: int) -> dict:
    """Upvote `n`, at `minute` of `day` (n microseconds past it, so no two share a time)."""
    stamp = datetime.combine(day, datetime.min.time()) + timedelta(minutes=minute, microseconds=n)
    return {"event_id": f"in-{n}", "user_id": n % 13, "post_id": n % 29, "event_time": stamp}


def _lines(events: list[dict]) -> list[bytes]:
    return [json.dumps({**e, "event_time": f"{e['event_time']:%Y-%m-%d %H:%M:%S.%f}"}).encode() for e in events]


def _write(settings, source, name: str, lines: list[bytes]) -> None:
    directory = stream_directory(settings, source)
    directory.mkdir(parents=True, exist_ok=True)
    temp = directory / f".{name}.tmp"
    temp.write_bytes(b"".join(line + b"\n" for line in lines))
    temp.rename(directory / f"{name}.json")


def _landed(settings, source) -> Counter:
    """(day, event_id) of every landed line, counted: a line landed twice counts 2."""
    root = ingest.landing_directory(settings, source)
    return Counter((path.parent.name.removeprefix("ds="), json.loads(line)["event_id"])
                   for path in root.glob("ds=*/*") if not path.name.startswith((".", "_"))
                   for line in path.read_text().splitlines())


def _wait_landed(settings, source, expected: int, timeout_s: float = 120) -> Counter:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        landed = _landed(settings, source)
        if sum(landed.values()) >= expected:
            return landed
        time.sleep(1)
    raise AssertionError(f"{sum(_landed(settings, source).values())} lines landed after {timeout_s} s, expected {expected}")


def _status_with_watermark(settings, source, timeout_s: float = 30):
    """The ingest's status once Flink's metrics show the sink's watermark (refreshed every second or so)."""
    deadline = time.monotonic() + timeout_s
    while (status := ingest_status(settings, source)).watermark is None and time.monotonic() < deadline:
        time.sleep(1)
    return status


def _raw_day(spark, table: str, day: date) -> Counter:
    return Counter((r.event_id, r.user_id, r.post_id, r.event_time) for r in
                   spark.sql(f"SELECT * FROM {table} WHERE ds = '{day}'").collect())


def _rows(events: list[dict]) -> Counter:
    return Counter((e["event_id"], e["user_id"], e["post_id"], e["event_time"]) for e in events)


def test_the_ingest_renders_the_same_job_for_kafka_with_a_consumer_group_of_its_own(registry, settings):
    source = registry.sources["upvote_events"]
    local = ingest.render_ingest(settings, source)
    assert f"runtime.create_file_lines(t_env, \"upvote_events__lines\", {stream_directory(settings, source).as_uri()!r}" \
        in local
    assert "'sink.partition-commit.delay' = '90000 s'" in local  # a day, plus the source's lateness of 1h
    assert f"'path' = '{ingest.landing_directory(settings, source).as_uri()}'" in local
    cluster = settings.model_copy(update={"kafka_bootstrap_servers": "kafka-1:9092"})
    kafka = ingest.render_ingest(cluster, source)
    assert "runtime.create_kafka_lines(t_env, \"upvote_events__lines\"" in kafka and "'topic': 'upvote_events'" in kafka
    assert "'group_id': 'fp-ingest-upvote_events'" in kafka  # not a group job's offsets
    assert kafka.split("# Output")[1] == local.split("# Output")[1]


@pytest.fixture(scope="module")
def ingesting(registry, settings, tmp_path_factory):
    """The upvote_events ingest on a data dir of its own; its loads go to a table of their own."""
    own = settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("ingest"), "stream_checkpoint_seconds": 2,
                                      "stream_max_line_bytes": MAX_LINE_BYTES})
    source = registry.sources["upvote_events"]
    yield own, source
    runner.kill(own, source)


@pytest.mark.slow
def test_the_ingest_lands_each_valid_line_once_across_a_kill_and_loads_days_late_events_included(
        ingesting, registry, spark):
    settings, source = ingesting
    by_day = {day: [_event(n, day, 60 + (n % 100) * 20) for n in range(k * 100, k * 100 + 40)]  # 01:00 to 14:00
              for k, day in enumerate((D1, D2, D3))}
    odd = unusual_good_lines(first_user=500)
    bad = bad_lines()
    # First file: day 1, the unusual good lines (dated day 1, 10:00) and every bad kind between them.
    _write(settings, source, "0001", [line for pair in zip_longest(_lines(by_day[D1]), [b for _, b, _ in bad])
                                      for line in pair if line is not None] + [line for _, line, _ in odd])
    _write(settings, source, "0002", _lines(by_day[D2][:20]))
    process = ingest.start(settings, source)
    assert process.restored_from is None
    _wait_landed(settings, source, len(by_day[D1]) + len(odd) + 20)

    # A kill -9 while the next file is read: the restart resumes from the last checkpoint.
    _write(settings, source, "0003", _lines(by_day[D2][20:] + by_day[D3][:20]))
    time.sleep(1.5)
    runner.kill(settings, source)
    restarted = ingest.start(settings, source)
    assert restarted.restored_from is not None

    # The day-1 history already in the raw table (as `featctl events generate` writes it) stays beside the load.
    table_source = source.model_copy(update={"table": "ingest_test.upvote_events"})
    history = [_event(n, D1, 30) | {"event_id": f"history-{n}"} for n in range(5)]
    write_raw_partitions(spark, table_source, [(D1.isoformat(), pd.DataFrame(history))])
    day1 = by_day[D1] + [event for _, _, event in odd]
    landed = _wait_landed(settings, source, len(day1) + 40 + 20)
    assert load_landed_day(spark, settings, table_source, D1.isoformat()) == len(day1)
    assert _raw_day(spark, table_source.table, D1) == _rows(history + day1)

    # A late event for day 1, after the day was complete and loaded, with more of day 3.
    late = _event(999, D1, 12 * 60)
    _write(settings, source, "0004", _lines([late] + by_day[D3][20:]))
    landed = _wait_landed(settings, source, len(day1) + 1 + 40 + 40)

    truth = Counter({(day.isoformat(), e["event_id"]): 1 for day, events in
                     [(D1, day1 + [late]), (D2, by_day[D2]), (D3, by_day[D3])] for e in events})
    assert landed == truth, "every valid line landed once, in its event day"
    letters = [json.loads(line) for f in dead_letter_directory(settings, source).rglob("*")
               if f.is_file() and not f.name.startswith(".") for line in f.read_text().splitlines()]
    reasons = [letter["reason"] for letter in letters]
    for kind, _, reason in bad:  # one dead letter per bad line, with the reason its kind gets
        reasons.remove(next((r for r in reasons if r.startswith(reason)), f"no letter for {kind}: {reason}"))
    assert not reasons
    days = {day.ds: day for day in landed_days(settings, source)}
    assert [(ds, d.rows, d.complete) for ds, d in days.items()] == [
        (D1.isoformat(), len(day1) + 1, True), (D2.isoformat(), 40, True), (D3.isoformat(), 40, False)]
    assert not days[D1.isoformat()].loaded, "the late event changed a loaded day"
    status = _status_with_watermark(settings, source)
    assert status.state == "RUNNING" and status.dead_letters == len(bad)
    assert status.watermark.date() == D3 and status.lag_seconds == 0

    # The sensor: day 1 again (and day 2's batch, whose lifetime windows hold day 1), and day 2 for the first time.
    definitions = build_definitions(registry, settings)
    sensor = definitions.resolve_sensor_def("upvote_events_event_log")
    with dg.instance_for_test() as instance:
        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=definitions))
    (observed,) = result.asset_events  # what the UI shows on ingest/upvote_events
    assert observed.metadata["state"].value == "RUNNING" and observed.metadata["dead_letters"].value == len(bad)
    assert observed.metadata["events_by_day"].value == {D1.isoformat(): len(day1) + 1, D2.isoformat(): 40,
                                                        D3.isoformat(): 40}
    readers = sorted(f"{layer}/{g}" for g, spec in registry.groups.items() if "upvote_events" in spec.sources
                     for layer in ("features", "online"))
    assert sensor.job_name == DAILY_JOB
    assert [(r.partition_key, sorted(k.to_user_string() for k in r.asset_selection)) for r in result.run_requests] == [
        (D1.isoformat(), sorted(["raw/upvote_events", *readers])), (D2.isoformat(), readers),
        (D2.isoformat(), sorted(["raw/upvote_events", *readers]))]

    # Loading day 1 again counts the late event once and nothing twice.
    assert load_landed_day(spark, settings, table_source, D1.isoformat()) == len(day1) + 1
    assert load_landed_day(spark, settings, table_source, D1.isoformat()) == len(day1) + 1
    assert _raw_day(spark, table_source.table, D1) == _rows(history + day1 + [late])
    reloaded = landed_days(settings, source)[0]
    assert reloaded.loaded and reloaded.rows == len(day1) + 1  # its events as the load counted them
