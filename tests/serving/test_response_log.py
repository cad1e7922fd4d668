"""Logged serving: thousands of real HTTP requests are all in the log after a clean stop, exactly as the callers
received them; a full queue drops and counts instead of waiting; sampling; rotation keeps every line."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pandas as pd
import pyarrow as pa
import pytest
import redis

from serving.client import HttpClient
from serving.online_store import OnlineStore, WritePlan
from serving.response_log import ResponseLog
from serving.service import FeatureService
from tests.serving.conftest import ServerThread
from tests.serving.test_service import _post

PREFIX = "rlog"
UTC = timezone.utc
SERVED_AT = datetime(2026, 1, 10, 6, 0, tzinfo=UTC)


def _lines(directory: Path) -> list[dict]:
    return [orjson.loads(line) for path in sorted(directory.rglob("*.jsonl")) for line in path.read_bytes().splitlines()]


@pytest.fixture(scope="module")
def online(registry, redis_url):
    """Users 0..49 of user_upvotes in the session's Redis under this module's prefix."""
    store = OnlineStore(redis.Redis.from_url(redis_url))
    group = registry.groups["user_upvotes"]
    now = datetime.now(UTC) - timedelta(days=1)
    users = list(range(50))
    store.write(WritePlan.for_group(group, registry.entity_of(group), PREFIX), pa.table({
        "user_id": users, "upvotes_7d": [3 * u for u in users], "distinct_items_7d": users, "upvotes_1d": users,
        "last_upvote_at": pa.array([now - timedelta(hours=u) for u in users], pa.timestamp("us", tz="UTC")),
        "feature_ts": pa.array([now] * len(users), pa.timestamp("us", tz="UTC"))}))
    store.client.close()
    return redis_url


def test_thousands_of_requests_are_all_logged_at_a_clean_stop(registry, online, tmp_path):
    log = ResponseLog(tmp_path / "served", flush_seconds=0.05, rotate_bytes=256 << 10)
    answers = []
    with ServerThread(FeatureService(registry, online, PREFIX, response_log=log)) as server:
        client = HttpClient(server.url)
        for k in range(3_000):
            ids = [k % 50, (7 * k) % 50]
            if k % 2:
                answers.append(client.get_service("ranking", ids))
            else:
                answers.append(client.get_features("user", ids, ["user_upvotes.upvotes_7d"]))
        client.close()
        _, _, metrics = _post(server.url, b"", method="GET", path="/metrics")
    lines = _lines(tmp_path / "served")
    assert len(lines) == 3_000 and log.dropped.exposition()[-1].endswith(" 0")
    assert len(list((tmp_path / "served").rglob("*.jsonl"))) > 1  # rotated by size, nothing lost in between
    assert b"# TYPE fp_serving_log_dropped_total counter" in metrics
    lines.sort(key=lambda line: line["served_at"])
    for k in (0, 1, 1_499, 2_999):
        line, answer = lines[k], answers[k]
        assert line["service"] == ("ranking" if k % 2 else None)
        assert [row["entity_id"] for row in line["response"]["rows"]] == [row.entity_id for row in answer]
        assert [row["values"] for row in line["response"]["rows"]] == [
            {name: value.isoformat() if isinstance(value, datetime) else value for name, value in row.values.items()}
            for row in answer]
        assert set(line["request"]) == {"time"}


def test_a_full_queue_drops_and_counts_without_waiting(tmp_path):
    log = ResponseLog(tmp_path, max_queued=5)  # the writer is not started yet: nothing leaves the queue
    accepted = [log.offer("ranking", {"time": SERVED_AT}, b'{"rows": []}', SERVED_AT) for _ in range(8)]
    assert accepted == [True] * 5 + [False] * 3
    assert log.dropped.exposition()[-1] == "fp_serving_log_dropped_total 3"
    log.start().close()
    assert len(_lines(tmp_path)) == 5
    assert [p.parent.name for p in tmp_path.rglob("*.jsonl")] == ["ds=2026-01-10"]


def test_sampling_logs_the_drawn_share(tmp_path):
    draws = iter([0.1, 0.9, 0.2, 0.8, 0.29, 0.3])
    log = ResponseLog(tmp_path, sample_rate=0.3, draw=lambda: next(draws)).start()
    for k in range(6):
        log.offer(None, {"time": SERVED_AT}, b'{"k": %d}' % k, SERVED_AT)
    log.close()
    assert [line["response"]["k"] for line in _lines(tmp_path)] == [0, 2, 4]


def test_a_new_day_starts_a_new_partition(tmp_path):
    log = ResponseLog(tmp_path).start()
    for moment in (SERVED_AT, SERVED_AT + timedelta(hours=20), SERVED_AT + timedelta(hours=21)):
        log.offer(None, {"time": moment}, b"{}", moment)
    log.close()
    by_day = {p.parent.name: len(p.read_bytes().splitlines()) for p in tmp_path.rglob("*.jsonl")}
    assert by_day == {"ds=2026-01-10": 1, "ds=2026-01-11": 2}


def _materialize_served(spark, registry, settings, log_dir: Path, ds: str):
    """`served/skew_ranking` and its skew check for `ds`, as the daily job runs them (the definitions' own
    resources: the Spark resource finds the session's running session)."""
    import dagster as dg

    from orchestration.factory import build_definitions

    with_log = settings.model_copy(update={"serving_log_dir": log_dir})
    job = build_definitions(registry, with_log).resolve_implicit_global_asset_job_def()
    return job.execute_in_process(partition_key=ds, asset_selection=[dg.AssetKey(["served", "skew_ranking"])],
                                  instance=dg.DagsterInstance.ephemeral())


def test_the_skew_check_finds_nothing_on_a_clean_run_and_exactly_the_altered_rows(spark, event_log, registry,
                                                                                  redis_url, settings, tmp_path):
    from assets.registry import DEFAULT_ROOT, Registry
    from assets.specs import FeatureServiceSpec
    from batch.feature_job import materialize_partition
    from batch.publish import publish_range
    from batch.served_log import load_served, logged_training_set
    from offline.training_set import training_set_pandas
    from quality.skew import skew_report
    from serving.on_demand import select_service
    from tests.serving.conftest import HISTORY_DAYS, renamed_registry

    renamed = renamed_registry(registry, "skew", ["user_upvotes"])
    share = registry.services["ranking"].on_demand[0].model_copy(update={"inputs": {
        "upvotes_1d": "skew_user_upvotes.upvotes_1d", "upvotes_7d": "skew_user_upvotes.upvotes_7d"}})
    service = FeatureServiceSpec(name="skew_ranking", owner="team:ranking", description="Skew test service.",
                                 version=1, entity="user", file=DEFAULT_ROOT / "services/skew_ranking.yaml",
                                 features=("skew_user_upvotes.upvotes_7d", "skew_user_upvotes.hours_since_last_upvote"),
                                 on_demand=(share,))
    skewed = Registry(root=renamed.root, entities=renamed.entities, sources=renamed.sources, groups=renamed.groups,
                      services={"skew_ranking": service})
    group = skewed.groups["skew_user_upvotes"]
    last = HISTORY_DAYS[-1].isoformat()
    materialize_partition(spark, skewed, group, last)
    publish_range(spark, skewed, group, last, last, redis_url, "skew")
    users = sorted(r.user_id for r in spark.table(group.table).where(f"ds = '{last}'").select("user_id").collect())[:30]
    asked_at = datetime.combine(HISTORY_DAYS[-1] + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=3)

    log = ResponseLog(tmp_path / "served", flush_seconds=0.05)
    with ServerThread(FeatureService(skewed, redis_url, "skew", response_log=log)) as server:
        client = HttpClient(server.url)
        for start in range(0, len(users), 10):
            client.get_service("skew_ranking", users[start:start + 10], request={"time": asked_at.isoformat()})
        client.close()
    ds = next((tmp_path / "served").iterdir()).name.removeprefix("ds=")
    assert load_served(spark, tmp_path / "served", "skew_ranking", ds) == 3 * len(users)

    logged = logged_training_set(spark, skewed, "skew_ranking", [ds]).to_pandas()
    offline = training_set_pandas(spark, skewed, logged[["user_id", "request_time"]],
                                  select_service(skewed, "skew_ranking")[1], time_column="request_time").to_pandas()
    served_columns = ["skew_user_upvotes__upvotes_7d", "skew_user_upvotes__hours_since_last_upvote",
                      "skew_ranking__upvotes_1d_share"]
    assert list(logged.columns) == ["user_id", "request_time", "served_at", *served_columns]
    assert len(logged) == len(users) and sorted(logged["user_id"]) == users
    pd.testing.assert_frame_equal(logged[served_columns], offline[served_columns])  # served = offline, same times

    clean = skew_report(spark, skewed, "skew_ranking", ds)
    assert list(clean.features) == ["skew_user_upvotes.upvotes_7d", "skew_user_upvotes.hours_since_last_upvote",
                                    "skew_ranking.upvotes_1d_share"]
    assert clean.differing == 0 and all(f.compared == len(users) for f in clean.features.values())

    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()  # a whole day: a Dagster partition
    shutil.copytree(tmp_path / "served" / f"ds={ds}", tmp_path / "served" / f"ds={yesterday}")
    materialized = _materialize_served(spark, skewed, settings, tmp_path / "served", yesterday)
    assert materialized.success
    [evaluation] = materialized.get_asset_check_evaluations()
    assert (evaluation.check_name, evaluation.passed, evaluation.partition) == ("skew", True, yesterday)
    assert evaluation.metadata["differing"].value["skew_user_upvotes.upvotes_7d"] == f"0/{len(users)} (0.0%)"

    altered = users[3:5]
    stored = spark.table(group.table).where(f"ds = '{last}'").drop("ds")
    frame = stored.toPandas()
    frame.loc[frame["user_id"].isin(altered), "upvotes_7d"] += 1  # the batch values altered by hand
    spark.createDataFrame(frame, schema=stored.schema).createOrReplaceTempView("skew_altered")
    spark.sql(f"INSERT OVERWRITE TABLE {group.table} PARTITION (ds='{last}') SELECT * FROM skew_altered")
    report = skew_report(spark, skewed, "skew_ranking", ds)
    by_hand = report.features["skew_user_upvotes.upvotes_7d"]
    assert (by_hand.differing, sorted(int(e["id"]) for e in by_hand.examples)) == (2, altered)
    assert all(int(e["offline"]) == int(e["served"]) + 1 for e in by_hand.examples)
    assert report.features["skew_user_upvotes.hours_since_last_upvote"].differing == 0
    assert {int(e["id"]) for e in report.features["skew_ranking.upvotes_1d_share"].examples} <= set(altered)


def test_featctl_skew_names_an_unknown_service_and_reports_a_day_without_log(monkeypatch, capsys, spark):
    from tests.conftest import run_featctl

    code, out = run_featctl(monkeypatch, capsys, "skew", "--service", "rankin", "--ds", "2026-01-09")
    assert code == 1 and "unknown feature service 'rankin' (fix: use one of: ranking)" in " ".join(out.split())
    code, out = run_featctl(monkeypatch, capsys, "skew", "--service", "ranking", "--ds", "2026-01-09")
    assert code == 0, out
    assert "skew of ranking on 2026-01-09: 0 differing value(s)" in out and "ranking.upvotes_1d_share" in out
