"""Lines a producer of the upvote stream might send: the bad ones (each with the reason the contract must
give) and unusual good ones (with the values they stand for), shared by the contract's unit tests and
the running-job tests, so every kind is checked once in Python and once through Flink.

Every bad line names its own user (BAD_USER_BASE + its index), so a bad line that was counted anyway
would show up in Redis as a key of a user no good event has.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

BAD_USER_BASE = 900_000
MAX_LINE_BYTES = 4096  # the limit the tests run the job with (FP_STREAM_MAX_LINE_BYTES)
MAX_CLOCK_SKEW_SECONDS = 300  # the settings' default, which the tests' jobs run with


def _ahead(by: timedelta) -> str:
    """An event time `by` ahead of this machine's clock (UTC), as a producer with a wrong clock sends it."""
    return f"{datetime.now(timezone.utc).replace(tzinfo=None) + by:%Y-%m-%d %H:%M:%S.%f}"


def _good(user: int, **changes) -> dict:
    return {"event_id": f"bad-{user}", "user_id": user, "post_id": 7, "event_time": "2026-01-03 10:00:00.000000",
            **changes}


def _json(record: dict) -> bytes:
    return json.dumps(record).encode()


def _without(record: dict, field: str) -> dict:
    return {k: v for k, v in record.items() if k != field}


def bad_lines() -> list[tuple[str, bytes, str]]:
    """(kind, the raw line, the start of the reason) for every kind of line the contract refuses."""
    def rec(k: int, **changes) -> dict:
        return _good(BAD_USER_BASE + k, **changes)

    user = lambda k: BAD_USER_BASE + k  # noqa: E731
    cases = [
        ("not UTF-8", lambda k: b'{"event_id": "bad-0", "user_id": ' + str(user(k)).encode() + b', "x": "\xff\xfe"}',
         "not UTF-8: byte 0xff"),
        ("UTF-8 byte order mark", lambda k: b"\xef\xbb\xbf" + _json(rec(k)), "not JSON: Unexpected UTF-8 BOM"),
        ("truncated JSON", lambda k: _json(rec(k))[:-9], "not JSON: "),
        ("plain text", lambda k: f"user {user(k)} upvoted post 7".encode(), "not JSON: "),
        ("whitespace only", lambda k: b" \t ", "empty line"),
        ("JSON array", lambda k: json.dumps([user(k), 7]).encode(), "not a JSON object: array"),
        ("JSON string", lambda k: json.dumps(f"user {user(k)}").encode(), "not a JSON object: string"),
        ("JSON null", lambda k: b"null", "not a JSON object: null"),
        ("JSON number", lambda k: str(user(k)).encode(), "not a JSON object: integer"),
        ("NaN", lambda k: _json(rec(k)).replace(b'"post_id": 7', b'"post_id": NaN'), "not JSON: NaN"),
        ("Infinity", lambda k: _json(rec(k)).replace(b'"post_id": 7', b'"post_id": -Infinity'), "not JSON: -Infinity"),
        ("deeply nested", lambda k: b"[" * 2000 + b"]" * 2000, "not JSON: nested too deeply"),
        ("missing user_id", lambda k: _json(_without(rec(k), "user_id")), "missing field 'user_id'"),
        ("null user_id", lambda k: _json(rec(k, user_id=None)), "null in non-nullable field 'user_id'"),
        ("numeric string id", lambda k: _json(rec(k, user_id=str(user(k)))), "field 'user_id' should be int64, got string"),
        ("fractional id", lambda k: _json(rec(k, user_id=user(k) + 0.5)), "field 'user_id' should be int64, got number"),
        ("integral float id", lambda k: _json(rec(k, user_id=float(user(k)))), "field 'user_id' should be int64, got number"),
        ("boolean id", lambda k: _json(rec(k, post_id=True)), "field 'post_id' should be int64, got boolean"),
        ("object id", lambda k: _json(rec(k, post_id={"id": 7})), "field 'post_id' should be int64, got object"),
        ("array id", lambda k: _json(rec(k, post_id=[7])), "field 'post_id' should be int64, got array"),
        ("id out of int64 range", lambda k: _json(rec(k, post_id=2 ** 63)), "field 'post_id' should be int64, got integer"),
        ("missing event_id", lambda k: _json(_without(rec(k), "event_id")), "missing field 'event_id'"),
        ("numeric event_id", lambda k: _json(rec(k, event_id=5)), "field 'event_id' should be string, got integer"),
        ("epoch event_time", lambda k: _json(rec(k, event_time=1767434400)),
         "field 'event_time' should be timestamp, got integer"),
        ("null event_time", lambda k: _json(rec(k, event_time=None)), "null in non-nullable field 'event_time'"),
        ("missing event_time", lambda k: _json(_without(rec(k), "event_time")), "missing field 'event_time'"),
        ("hour 25", lambda k: _json(rec(k, event_time="2026-01-03 25:00:00")), "field 'event_time' is not a timestamp"),
        ("February 30", lambda k: _json(rec(k, event_time="2026-02-30 10:00:00")), "field 'event_time' is not a timestamp"),
        ("words for a time", lambda k: _json(rec(k, event_time="yesterday")), "field 'event_time' is not a timestamp"),
        ("offset out of range", lambda k: _json(rec(k, event_time="2026-01-03T10:00:00+25:00")),
         "field 'event_time' is not a timestamp"),
        ("object event_time", lambda k: _json(rec(k, event_time={"s": 1})), "field 'event_time' should be timestamp, got object"),
        ("line over the limit", lambda k: _json(rec(k, padding="x" * MAX_LINE_BYTES)),
         f"line longer than {MAX_LINE_BYTES} bytes"),
        # A producer with a wrong clock (the job's guard allows MAX_CLOCK_SKEW_SECONDS ahead of its own clock).
        ("an hour ahead", lambda k: _json(rec(k, event_time=_ahead(timedelta(hours=1)))), "event time "),
        ("a day ahead", lambda k: _json(rec(k, event_time=_ahead(timedelta(days=1)))), "event time "),
        ("year 2099", lambda k: _json(rec(k, event_time="2099-01-01 00:00:00.000000")),
         "event time 2099-01-01 00:00:00 is ahead of the job's clock "),
    ]
    return [(kind, make(k), reason) for k, (kind, make, reason) in enumerate(cases)]


def unusual_good_lines(first_user: int) -> list[tuple[str, bytes, dict]]:
    """(kind, the raw line, the event it stands for, timestamps normalized to naive UTC) for lines the
    contract accepts although they look unusual."""
    def event(user: int, stamp: datetime) -> dict:
        return {"event_id": f"odd-{user}", "user_id": user, "post_id": 11, "event_time": stamp}

    at = datetime(2026, 1, 3, 10, 0, 0)
    cases = [
        ("ISO 8601 with Z", "2026-01-03T10:00:00Z", at),
        ("ISO 8601 with an offset", "2026-01-03T12:30:00+02:30", at),
        ("ISO 8601 with a negative offset and fraction", "2026-01-03T05:00:00.250-05:00", at.replace(microsecond=250000)),
        ("nanoseconds", "2026-01-03 10:00:00.123456789", at.replace(microsecond=123456)),
        ("no fraction", "2026-01-03 10:00:00", at),
    ]
    out = []
    for k, (kind, text, stamp) in enumerate(cases):
        user = first_user + k
        record = {"unknown_field": "an added field is allowed", **event(user, stamp), "event_time": text}
        out.append((kind, json.dumps(record).encode(), event(user, stamp)))
    return out
