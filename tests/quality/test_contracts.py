"""Record-level contracts for the stream side: one reason per bad record, fast enough for a stream."""

from __future__ import annotations

import json
import time

import pytest

from quality.contracts import record_violation

GOOD = {"event_id": "up-1", "user_id": 42, "post_id": 7, "event_time": "2026-01-01 10:00:00.123456"}


@pytest.fixture(scope="module")
def upvotes(registry):
    return registry.sources["upvote_events"]


@pytest.mark.parametrize("record", [GOOD, json.dumps(GOOD), json.dumps(GOOD).encode(),
                                    {**GOOD, "event_time": "2026-01-01 10:00:00"},
                                    {**GOOD, "added_upstream": "a compatible change"}])
def test_valid_records_pass(upvotes, record):
    assert record_violation(upvotes, record) is None


@pytest.mark.parametrize("record, reason", [
    ('{"event_id": "up-1", "user_id": 42', "not JSON: "),
    ("[1, 2]", "not a JSON object: array [1, 2]"),
    ({k: v for k, v in GOOD.items() if k != "user_id"}, "missing field 'user_id'"),
    ({**GOOD, "user_id": None}, "null in non-nullable field 'user_id'"),
    ({**GOOD, "user_id": "user-42"}, 'field \'user_id\' should be int64, got string "user-42"'),
    ({**GOOD, "post_id": "7"}, 'field \'post_id\' should be int64, got string "7"'),
    ({**GOOD, "user_id": True}, "field 'user_id' should be int64, got boolean true"),
    ({**GOOD, "user_id": 2 ** 63}, "field 'user_id' should be int64, got integer 9223372036854775808"),
    ({**GOOD, "event_time": "2026-01-01T10:00:00Z"},
     "field 'event_time' is not a timestamp like 2026-01-01 10:00:00.000000: '2026-01-01T10:00:00Z'"),
    ({**GOOD, "event_time": "2026-02-30 10:00:00"},
     "field 'event_time' is not a timestamp like 2026-01-01 10:00:00.000000: '2026-02-30 10:00:00'"),
    ({**GOOD, "event_time": 1767261600}, "field 'event_time' should be timestamp, got integer 1767261600"),
])
def test_a_broken_record_gets_its_reason(upvotes, record, reason):
    got = record_violation(upvotes, record if isinstance(record, (str, dict)) else json.dumps(record))
    assert got is not None and got.startswith(reason), got


def test_a_nullable_column_may_be_null_or_missing(registry):
    posts = registry.sources["post_events"]
    post = {"post_id": 1, "author_id": 2, "subreddit_id": 3, "subreddit": "r/python",
            "event_time": "2026-01-01 10:00:00.000000"}
    assert record_violation(posts, post) is None
    assert record_violation(posts, {**post, "title": None}) is None
    assert record_violation(posts, {**post, "title": 5}) == "field 'title' should be string, got integer 5"


def test_thousands_of_records_per_second(upvotes):
    lines = [json.dumps({**GOOD, "user_id": i}) for i in range(20_000)]
    started = time.perf_counter()
    assert all(record_violation(upvotes, line) is None for line in lines)
    assert len(lines) / (time.perf_counter() - started) > 20_000
