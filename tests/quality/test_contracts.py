"""Record-level contracts for the stream side: every kind of bad line gets its reason, every good one
its typed values (timestamps normalized to UTC), and no line raises."""

from __future__ import annotations

import json
from datetime import datetime
from unittest.mock import ANY

import pytest

from quality.contracts import ClockGuard, check_line, shown_record
from tests.stream_lines import MAX_CLOCK_SKEW_SECONDS, MAX_LINE_BYTES, bad_lines, unusual_good_lines

GOOD = {"event_id": "up-1", "user_id": 42, "post_id": 7, "event_time": "2026-01-01 10:00:00.123456"}
CLOCK = ClockGuard(MAX_CLOCK_SKEW_SECONDS)  # what every stream job checks with


@pytest.fixture(scope="module")
def upvotes(registry):
    return registry.sources["upvote_events"]


@pytest.mark.parametrize("record", [GOOD, json.dumps(GOOD), json.dumps(GOOD).encode(),
                                    {**GOOD, "event_time": "2026-01-01 10:00:00"},
                                    {**GOOD, "added_upstream": "a compatible change"}])
def test_valid_records_pass(upvotes, record):
    assert check_line(upvotes, record, MAX_LINE_BYTES) == (None, ANY)


def test_a_valid_line_gives_its_typed_values_in_contract_order(upvotes):
    assert check_line(upvotes, json.dumps(GOOD).encode(), MAX_LINE_BYTES) == (
        None, ("up-1", 42, 7, datetime(2026, 1, 1, 10, 0, 0, 123456)))


@pytest.mark.parametrize("kind, line, reason", bad_lines(), ids=[kind for kind, _, _ in bad_lines()])
def test_every_kind_of_bad_line_gets_its_reason_and_no_values(upvotes, kind, line, reason):
    got, values = check_line(upvotes, line, MAX_LINE_BYTES, CLOCK)
    assert got is not None and got.startswith(reason), got
    assert values is None


@pytest.mark.parametrize("kind, line, event", unusual_good_lines(1), ids=[k for k, _, _ in unusual_good_lines(1)])
def test_unusual_good_lines_count_with_times_normalized_to_utc(upvotes, kind, line, event):
    assert check_line(upvotes, line, MAX_LINE_BYTES) == (
        None, (event["event_id"], event["user_id"], event["post_id"], event["event_time"]))


def test_an_event_dated_ahead_of_the_clock_is_refused_past_the_skew_only(upvotes):
    now = datetime(2026, 12, 7, 12, 0, 0)
    assert CLOCK.violation(datetime(2026, 12, 7, 12, 5, 0), now) is None  # exactly the skew: a clock a bit fast
    assert CLOCK.violation(datetime(2026, 12, 7, 12, 5, 0, 1), now) == (
        "event time 2026-12-07 12:05:00.000001 is ahead of the job's clock 2026-12-07 12:00:00 by more than "
        "max_clock_skew_seconds (300 s): the producer's clock is wrong (fix it, then send the event again)")
    future = {**GOOD, "event_time": "2099-01-01 00:00:00"}
    assert check_line(upvotes, future, MAX_LINE_BYTES)[0] is None  # the contract alone has no clock
    assert check_line(upvotes, future, MAX_LINE_BYTES, CLOCK)[0].startswith("event time 2099-01-01 00:00:00 is ahead")
    assert check_line(upvotes, GOOD, MAX_LINE_BYTES, CLOCK) == check_line(upvotes, GOOD, MAX_LINE_BYTES)


def test_the_catalogue_covers_at_least_25_kinds():
    kinds = [kind for kind, _, _ in bad_lines()]
    assert len(set(kinds)) == len(kinds) >= 25


def test_a_nullable_column_may_be_null_or_missing(registry):
    posts = registry.sources["post_events"]
    post = {"post_id": 1, "author_id": 2, "subreddit_id": 3, "subreddit": "r/python",
            "event_time": "2026-01-01 10:00:00.000000"}
    assert check_line(posts, post, MAX_LINE_BYTES)[0] is None
    assert check_line(posts, {**post, "title": None}, MAX_LINE_BYTES)[0] is None
    assert check_line(posts, {**post, "title": 5}, MAX_LINE_BYTES) == ("field 'title' should be string, got integer 5", None)


def test_a_dead_letter_keeps_the_line_escaped_and_cuts_only_an_oversized_one():
    assert shown_record(b'{"a": "\xff"}', MAX_LINE_BYTES) == '{"a": "\\xff"}'
    assert shown_record(b"x" * MAX_LINE_BYTES, MAX_LINE_BYTES) == "x" * MAX_LINE_BYTES
    cut = shown_record(b"x" * (MAX_LINE_BYTES + 1), MAX_LINE_BYTES)
    assert cut == "x" * 1024 + f"... (truncated, over {MAX_LINE_BYTES} bytes)"
