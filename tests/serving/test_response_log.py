"""Logged serving: thousands of real HTTP requests are all in the log after a clean stop, exactly as the callers
received them; a full queue drops and counts instead of waiting; sampling; rotation keeps every line."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
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
