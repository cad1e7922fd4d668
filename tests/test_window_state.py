"""The window operator's state (streaming/windows.py) against plain Python over the same events.

Events arrive out of order; expiry is driven the way Flink's timers drive it (advance to each tile's
leaving time); at every checked moment the values equal the windows tests/reference.py computes.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import numpy as np

from assets.aggregations import WindowPlan, stream_value_time
from streaming.windows import EntityWindows, from_us, leaving_times, to_us
from tests.reference import user_upvotes_at

START = datetime(2026, 1, 1)


def _plan(registry) -> WindowPlan:
    group = registry.groups["user_upvotes"]
    return WindowPlan.for_group(group, registry.sources["upvote_events"], "user_id")


def _events(seed: int, count: int, days: int) -> list[dict]:
    rng = random.Random(seed)
    return [{"user_id": rng.choice([1, 2, 3]), "post_id": rng.randrange(30),
             "event_time": START + timedelta(seconds=rng.randrange(days * 86400), microseconds=rng.choice([0, 17]))}
            for _ in range(count)]


def _values(plan: WindowPlan, windows: EntityWindows) -> tuple:
    upvotes_7d, distinct_7d, upvotes_1d, last = windows.values(plan)
    return upvotes_7d, distinct_7d, upvotes_1d, None if last is None else from_us(last)


def _inputs(plan: WindowPlan, event: dict) -> tuple:
    return tuple(event[name] for name in plan.inputs)


def test_values_after_out_of_order_events_equal_the_windows_at_the_newest_event(registry):
    plan = _plan(registry)
    events = _events(seed=7, count=600, days=12)
    arrival = sorted(events, key=lambda e: e["event_time"] + timedelta(seconds=random.Random(id(e)).randrange(-3, 3)))
    state = {}
    for event in arrival:
        windows = state.setdefault(event["user_id"], EntityWindows(plan))
        windows.add(plan, to_us(event["event_time"]), _inputs(plan, event))
        mine = [e for e in events if e["user_id"] == event["user_id"]]
        newest = from_us(windows.as_of)
        assert _values(plan, windows) == user_upvotes_at(mine, newest)[event["user_id"]]


def test_a_quiet_entity_falls_to_the_empty_values_as_its_tiles_leave(registry):
    plan = _plan(registry)
    events = sorted((e for e in _events(seed=3, count=200, days=3) if e["user_id"] == 1), key=lambda e: e["event_time"])
    windows, timers, checked = EntityWindows(plan), set(), []

    def fire_until(now_us: int) -> None:  # as Flink's watermark passes timers, before the next event
        for timer in sorted(t for t in timers if t <= now_us):
            timers.discard(timer)
            if windows.advance(plan, timer):
                checked.append((from_us(timer), _values(plan, windows)))
    for event in events:
        fire_until(to_us(event["event_time"]))
        timers.update(leaving_times(plan, windows.add(plan, to_us(event["event_time"]), _inputs(plan, event))))
    quiet_from = len(checked)
    fire_until(2 ** 62)  # nothing new arrives; the watermark passes every leaving time
    for moment, values in checked:
        assert values == user_upvotes_at(events, moment)[1], moment
    assert checked[-1][1] == (0, 0, 0, None) and windows.empty
    counts = [values[0] for _, values in checked[quiet_from:]]
    assert counts == sorted(counts, reverse=True) and counts[0] > 0  # once quiet, it only went down


def _emitted(plan: WindowPlan, events: list[dict], watermark_first: bool) -> list[tuple]:
    """The (value time, values) rows the operator emits for one entity's in-order events, its timers fired
    before each event (the watermark came first) or only at the end (the events came first)."""
    windows, timers, rows = EntityWindows(plan), set(), []

    def fire_until(now_us: int) -> None:
        for timer in sorted(t for t in timers if t <= now_us):
            timers.discard(timer)
            if windows.advance(plan, timer):
                rows.append((windows.as_of, _values(plan, windows)))
    for event in events:
        time_us = to_us(event["event_time"])
        if watermark_first:
            fire_until(time_us - 1)
        for leaving in windows.departures_before(plan, time_us):
            windows.advance(plan, leaving)
            rows.append((windows.as_of, _values(plan, windows)))
        timers.update(leaving_times(plan, windows.add(plan, time_us, _inputs(plan, event))))
        rows.append((windows.as_of, _values(plan, windows)))
    fire_until(2 ** 62)
    return rows


def test_an_entity_emits_the_same_values_whether_the_watermark_or_its_next_event_comes_first(registry):
    """Every tile departure is a row of its own, at its time and with the values a plain count gives there,
    whether a timer emitted it or the entity's next event did: the streamed history does not depend on
    when watermarks arrive."""
    plan = _plan(registry)
    events = sorted((e for e in _events(seed=5, count=300, days=20) if e["user_id"] == 2), key=lambda e: e["event_time"])
    rows = _emitted(plan, events, watermark_first=False)
    assert rows == _emitted(plan, events, watermark_first=True)
    assert len(rows) > len(events)  # departures between events and after the last one
    for time_us, values in rows:
        assert values == user_upvotes_at(events, from_us(time_us))[2], from_us(time_us)


def test_an_event_older_than_the_newest_is_merged_into_the_windows_that_cover_it(registry):
    plan = _plan(registry)
    windows = EntityWindows(plan)
    newest = datetime(2026, 1, 10, 12, 30)
    windows.add(plan, to_us(newest), (newest, 1))
    inside, outside = newest - timedelta(days=6, hours=12), newest - timedelta(days=7, hours=1)
    windows.add(plan, to_us(inside), (inside, 2))
    windows.add(plan, to_us(outside), (outside, 3))
    assert _values(plan, windows) == (2, 2, 1, newest)


def test_a_stream_value_on_a_day_boundary_is_stamped_one_microsecond_after_the_batch_partition():
    """Batch partition 2026-01-09 is stamped 2026-01-10 00:00; a stream value counting an event at that
    instant must be later, or the guard and the history could not tell the two apart."""
    midnight, later = datetime(2026, 1, 10), datetime(2026, 1, 10, 0, 0, 0, 1)
    assert from_us(stream_value_time(to_us(midnight))) == later
    assert from_us(stream_value_time(to_us(later))) == later
    assert [from_us(int(t)) for t in stream_value_time(np.array([to_us(midnight), to_us(later)]))] == [later, later]


def test_a_kept_aggregate_holds_its_last_value_once_its_window_is_empty(registry):
    """subreddit_activity's `name` (last, keep) stays what it was when the day's upvotes have left, while the
    counts fall to 0, as batch carries a feature without an empty value; a count with an input counts the
    events where it is not null."""
    group = registry.groups["subreddit_activity"]
    plan = WindowPlan.for_group(group, None, "subreddit_id").typed(
        {"event_time": "timestamp", "user_id": "int64", "post_id": "int64", "subreddit": "string"})
    assert plan.inputs == ("event_time", "subreddit", "user_id", "post_id")
    windows = EntityWindows(plan)
    first = datetime(2026, 1, 10, 9, 15)
    for minutes, user, post in ((0, 1, 10), (5, 2, 10), (30, 1, 11)):
        at = first + timedelta(minutes=minutes)
        windows.add(plan, to_us(at), (at, "r/python", user, post))
    assert windows.values(plan) == ["r/python", 3, 2, 2]
    (leaving,) = set(leaving_times(plan, plan.bucket(to_us(first))))
    assert windows.advance(plan, leaving) and windows.empty
    assert windows.values(plan) == ["r/python", 0, 0, 0]

    popularity = registry.groups["post_popularity"]
    counted = WindowPlan.for_group(popularity, None, "post_id").typed(
        {"event_time": "timestamp", "subreddit": "string", "created_at": "timestamp", "upvote_id": "string"})
    assert [f.dtype for f in counted.features] == ["string", "timestamp", "int64", "int64"]
    windows = EntityWindows(counted)
    windows.add(counted, to_us(first), (first, "r/rust", first, None))  # the post's creation: no upvote_id
    windows.add(counted, to_us(first), (first, None, None, "up-1"))
    assert windows.values(counted) == ["r/rust", to_us(first), 1, 1]


PLAIN = (dict, list, tuple, int, float, str, bool, type(None))


def _only_plain(value) -> bool:
    if isinstance(value, dict):
        return all(_only_plain(k) and _only_plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(map(_only_plain, value))
    return isinstance(value, PLAIN)


def test_the_stored_state_is_plain_values_with_a_format_and_resumes_where_it_stopped(registry):
    """What the operator stores reads back (as Flink's pickling serializer round-trips it) into windows that
    give the same values and go on exactly as the originals; it names no class of the platform's."""
    import pickle

    plan = _plan(registry)
    events = sorted(_events(seed=11, count=300, days=9), key=lambda e: e["event_time"])
    first, rest = [e for e in events if e["user_id"] == 2][:60], [e for e in events if e["user_id"] == 2][60:]
    original = EntityWindows(plan)
    for event in first:
        original.add(plan, to_us(event["event_time"]), _inputs(plan, event))
    stored = pickle.loads(pickle.dumps(original.to_state()))
    assert stored["format"] == 1 and _only_plain(stored) and b"streaming" not in pickle.dumps(original.to_state())
    resumed = EntityWindows.from_state(stored)
    assert _values(plan, resumed) == _values(plan, original)
    for event in rest:
        for windows in (original, resumed):
            windows.add(plan, to_us(event["event_time"]), _inputs(plan, event))
        assert _values(plan, resumed) == _values(plan, original) == user_upvotes_at(
            first + rest, event["event_time"])[2]


def test_a_state_of_another_format_is_refused_naming_the_repair(registry):
    """A stored value this platform cannot read (a format it does not know, or the EntityWindows object jobs
    stored before formats) is refused with the command that derives the group's state again."""
    import pickle

    import pytest

    plan = _plan(registry)
    windows = EntityWindows(plan)
    windows.add(plan, to_us(START), (START, 1))
    for stored in ({**windows.to_state(), "format": 2}, pickle.loads(pickle.dumps(windows))):
        with pytest.raises(ValueError, match=r"this platform reads format 1: featctl stream repair"):
            EntityWindows.from_state(stored)
