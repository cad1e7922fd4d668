"""Windowed streaming on real parts: user_upvotes (declared 7-day and 1-day windows) through the generated
PyFlink job on the local mini-cluster into a real Redis, against plain Python over the same events.

Simulated time runs over twelve days of upvotes written file after file: at sampled moments every user's
served values equal the windows ending at the newest event (tests/reference.py), a user who stops upvoting
falls to 0 as the window passes, events 30 min and 3 h late are counted (the allowed lateness defaults to
the 7-day window, so late data heals online), one 8 days late is dead-lettered with the reason, and so are
events dated ahead of the job's clock (a producer's wrong clock),
which never move the windows' time: the job keeps running and stops with a savepoint.
"""

from __future__ import annotations

import json
import random
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from serving.get_features import build_read_plan, get_features
from serving.online_store import WritePlan
from streaming import runner
from streaming.connectors import stream_directory
from tests.conftest import LAST_DAY
from tests.reference import user_upvotes_at
from tests.test_streaming import _dead_letters, _line, _store, _wait_for_letters, _wait_until_landed, _write_lines

T0 = datetime(2026, 2, 1)
CHUNK = timedelta(hours=12)
QUIET_USER, QUIET_AFTER = 99, T0 + timedelta(days=1, hours=6)
FEATURES = ("upvotes_7d", "distinct_items_7d", "upvotes_1d", "last_upvote_at")


def _chunk_events(rng: random.Random, k: int) -> list[dict]:
    """Upvotes of chunk k (12 h), in event-time order, ending with one at half past an hour (so no tile
    boundary lies between the newest event and the watermark 5 s behind it)."""
    start = T0 + k * CHUNK
    events = []
    for i in range(rng.randrange(15, 40)):
        at = start + timedelta(seconds=rng.randrange(int(CHUNK.total_seconds()) - 3600), microseconds=rng.randrange(10**6))
        user = rng.choice([*range(1, 13), QUIET_USER]) if at < QUIET_AFTER else rng.randrange(1, 13)
        events.append({"event_id": f"c{k}-{i}", "user_id": user, "post_id": rng.randrange(40), "event_time": at})
    events.append({"event_id": f"c{k}-clock", "user_id": 1, "post_id": 0, "event_time": start + CHUNK - timedelta(minutes=30)})
    return sorted(events, key=lambda e: e["event_time"])


def _ahead_of(wall: datetime) -> tuple[datetime, ...]:
    """Event times a producer with a wrong clock sends: an hour, a day and decades ahead of `wall`."""
    return wall + timedelta(hours=1), wall + timedelta(days=1), datetime(2099, 1, 1)


def _served(registry, store, prefix: str, users: list[int]) -> dict[int, tuple]:
    plan = build_read_plan(registry, prefix, "user", ["user_upvotes"])
    served = {}
    for row in get_features(store, plan, users):
        values = tuple(row.values[f"user_upvotes.{name}"] for name in FEATURES)
        if any(v is not None for v in values):
            last = values[3].replace(tzinfo=None) if values[3] is not None else None
            served[row.entity_id] = (*values[:3], last)
    return served


@pytest.mark.slow
def test_windowed_values_follow_the_ground_truth_and_fall_when_a_user_goes_quiet(registry, settings, redis_url,
                                                                                   tmp_path_factory):
    own = settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("windowed"), "redis_prefix": "ws"})
    group = registry.groups["user_upvotes"]
    store = _store(redis_url)
    plan = WritePlan.for_group(group, registry.entity_of(group), own.redis_prefix)
    directory = stream_directory(own, registry.sources["upvote_events"])
    rng = random.Random(11)
    counted, quiet_values, checks = [], [], 0
    late_ok = late_merged = None
    late_refused = []
    runner.start(registry, own, group, redis_url)
    try:
        for k in range(24):
            events = _chunk_events(rng, k)
            if k == 14:  # behind the watermark (the previous chunk's newest event - 5 s): 30 min and 3 h are merged
                # (the allowed lateness is the 7-day window), 8 days is not
                newest = counted[-1]["event_time"]
                late_ok = {"event_id": "late-ok", "user_id": 5, "post_id": 777, "event_time": newest - timedelta(minutes=30)}
                late_merged = {"event_id": "late-merged", "user_id": 6, "post_id": 778,
                               "event_time": newest - timedelta(hours=3)}
                late_refused = [{"event_id": "late-old", "user_id": 7, "post_id": 779, "event_time": newest - timedelta(days=8)}]
                events = [late_ok, late_merged, *late_refused, *events]
            if k == 10:  # producers with wrong clocks, ahead of this machine's: never counted, never move time
                wall = datetime.now(timezone.utc).replace(tzinfo=None)
                events = [*events, *({"event_id": f"ahead-{n}", "user_id": 1 + n, "post_id": 900 + n, "event_time": at}
                                     for n, at in enumerate(_ahead_of(wall)))]
            _write_lines(directory, f"chunk-{k:03d}", [_line(e) for e in events])
            counted += [e for e in events if e not in late_refused and not e["event_id"].startswith("ahead-")]
            newest = max(e["event_time"] for e in counted)
            _wait_until_landed(store, plan, newest)
            if k % 3 == 2 or k == 23:
                served = _served(registry, store, own.redis_prefix, [*range(1, 13), QUIET_USER])
                assert served == user_upvotes_at(counted, newest), f"at {newest}"
                quiet_values.append(served[QUIET_USER][0])
                checks += 1
        savepoint = runner.stop(own, group)  # a job that read them still stops with a savepoint
    finally:
        runner.kill(own, group)
    assert (Path(savepoint) / "_metadata").exists()
    assert checks == 8
    # The quiet user: nothing after day 1, so its 7-day count only went down, to 0, and its latest upvote is gone.
    assert quiet_values[0] > 0 and quiet_values == sorted(quiet_values, reverse=True) and quiet_values[-1] == 0
    assert _served(registry, store, own.redis_prefix, [QUIET_USER])[QUIET_USER] == (0, 0, 0, None)
    letters = {json.loads(letter["record"])["post_id"]: letter["reason"] for letter in _wait_for_letters(own, group, 4)}
    assert sorted(letters) == [779, 900, 901, 902]
    assert letters[779].startswith(f"late: event time {late_refused[0]['event_time']} is ")
    assert "more than the allowed lateness of 604800 s: not counted online" in letters[779]
    assert all(" is ahead of the job's clock " in letters[post] for post in (900, 901, 902))
    assert len(_dead_letters(own, group)) == 4


def _snapshot(registry, store, prefix: str, users: list[int]) -> dict[int, tuple]:
    """Every user's values and the event time they hold as of, as Redis serves them."""
    plan = build_read_plan(registry, prefix, "user", ["user_upvotes"])
    return {row.entity_id: (tuple(row.values[f"user_upvotes.{n}"] for n in FEATURES),
                            row.event_times["user_upvotes.upvotes_7d"]) for row in get_features(store, plan, users)}


@pytest.mark.slow
def test_a_backlog_start_equals_a_live_start_killed_and_resumed_midway(registry, settings, redis_url, tmp_path_factory):
    """Sixteen files of upvotes (eight days): one job finds them all waiting at its start (Flink reads them in
    any order), another reads them one by one and is killed with SIGKILL after the eighth, then resumed;
    both end with the ground truth in Redis, the same values as of the same times, and no dead letter."""
    group = registry.groups["user_upvotes"]
    rng = random.Random(5)
    chunks = [_chunk_events(rng, k) for k in range(16)]
    events = [e for chunk in chunks for e in chunk]
    newest = max(e["event_time"] for e in events)
    users = [*range(1, 13), QUIET_USER]
    store = _store(redis_url)
    runs = {}
    for name in ("backlog", "live"):
        own = settings.model_copy(update={"data_dir": tmp_path_factory.mktemp(name), "redis_prefix": f"w{name[0]}"})
        plan = WritePlan.for_group(group, registry.entity_of(group), own.redis_prefix)
        directory = stream_directory(own, registry.sources["upvote_events"])
        try:
            if name == "backlog":
                for k, chunk in enumerate(chunks):
                    _write_lines(directory, f"chunk-{k:03d}", [_line(e) for e in chunk])
                runner.start(registry, own, group, redis_url)
            else:
                runner.start(registry, own, group, redis_url)
                for k, chunk in enumerate(chunks):
                    _write_lines(directory, f"chunk-{k:03d}", [_line(e) for e in chunk])
                    _wait_until_landed(store, plan, chunk[-1]["event_time"])
                    if k == 7:  # a crash after a checkpoint: the resumed job replays what came after it
                        time.sleep(own.stream_checkpoint_seconds + 2)
                        runner.kill(own, group)
                        runner.start(registry, own, group, redis_url)
            _wait_until_landed(store, plan, newest)
        finally:
            runner.kill(own, group)
        assert _served(registry, store, own.redis_prefix, users) == user_upvotes_at(events, newest), name
        assert _dead_letters(own, group) == [], name
        runs[name] = _snapshot(registry, store, own.redis_prefix, users)
    assert runs["backlog"] == runs["live"]


def _sample_upvotes(sample, first: date, last: date) -> list[dict]:
    frames = [sample.events("upvote_events", day) for day in sample.days(first, last)]
    return [{"user_id": int(r.user_id), "post_id": int(r.post_id), "event_time": r.event_time.to_pydatetime()}
            for frame in frames for r in frame.itertuples()]


@pytest.mark.slow
@pytest.mark.usefixtures("event_log")
def test_a_windowed_stream_continues_the_batch_history_and_training_sets_get_what_it_served(
        registry, settings, spark, sample, redis_url, tmp_path_factory):
    """user_upvotes' batch values of LAST_DAY are in Redis; the stream's first start replays the 7 days of the
    event log, then live upvotes arrive in bursts an hour apart (tiles leave the windows between them) and the
    job is killed and resumed midway. Every served value equals plain Python over the event log plus the live
    events, and a training set for (id, time) observations read through the client returns what was served."""
    from batch.feature_job import materialize_partition
    from batch.publish import publish_partition
    from offline.streamed_history import load_streamed_history
    from offline.training_set import training_set_pandas
    from serving.client import InProcessClient

    group, ds = registry.groups["user_upvotes"], LAST_DAY.isoformat()
    own = settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("wbatch"), "redis_prefix": "wh"})
    materialize_partition(spark, registry, group, ds)
    publish_partition(spark, registry, group, ds, redis_url, own.redis_prefix)
    batch = spark.table(group.table).where(f"ds = '{ds}'").toPandas().set_index("user_id")
    store = _store(redis_url)
    plan = WritePlan.for_group(group, registry.entity_of(group), own.redis_prefix)
    client = InProcessClient.connect(registry, redis_url, prefix=own.redis_prefix)
    directory = stream_directory(own, registry.sources["upvote_events"])
    cutoff = datetime.combine(LAST_DAY + timedelta(days=1), datetime.min.time())
    events = _sample_upvotes(sample, LAST_DAY - timedelta(days=6), LAST_DAY)
    users = sorted(int(u) for u in batch.index)
    watched = users[:12]
    observations = []
    rng = random.Random(3)
    runner.start(registry, own, group, redis_url, spark=spark)
    try:
        # The replay of the event log lands first (its newest event is the last one replayed): a live burst sent
        # before that is checked against values the replay has not finished (CI's failure on a loaded machine).
        _wait_until_landed(store, plan, max(e["event_time"] for e in events))
        for burst in range(6):
            start = cutoff + timedelta(hours=burst, minutes=10)
            live = [{"event_id": f"wl-{burst}-{i}", "user_id": rng.choice(watched), "post_id": rng.randrange(10**6),
                     "event_time": start + timedelta(seconds=7 * i, microseconds=rng.randrange(10**6))}
                    for i in range(8)]
            _write_lines(directory, f"live-{burst:02d}", [_line(e) for e in live])
            events += live
            newest = live[-1]["event_time"]
            _wait_until_landed(store, plan, newest)
            truth = user_upvotes_at(events, newest)
            served = _served(registry, store, own.redis_prefix, users)
            assert served == {u: truth.get(u, (0, 0, 0, None)) for u in users}, f"at {newest}"
            at = newest + timedelta(minutes=1)
            for row in client.get_features("user", watched, [f"user_upvotes.{n}" for n in FEATURES[:3]]):
                observations.append((row.entity_id, at, tuple(row.values[f"user_upvotes.{n}"] for n in FEATURES[:3])))
            if burst == 2:
                time.sleep(own.stream_checkpoint_seconds + 2)
                runner.kill(own, group)
                runner.start(registry, own, group, redis_url, spark=spark)
    finally:
        runner.kill(own, group)

    assert load_streamed_history(spark, registry, group, redis_url, own.redis_prefix) > 0
    frame = pd.DataFrame({"user_id": [u for u, _, _ in observations],
                          "event_time": [t.replace(tzinfo=timezone.utc) for _, t, _ in observations]})
    joined = training_set_pandas(spark, registry, frame, [f"user_upvotes.{n}" for n in FEATURES[:3]]).to_pandas()
    trained = list(zip(*(joined[f"user_upvotes__{n}"].tolist() for n in FEATURES[:3])))
    assert trained == [values for _, _, values in observations]
    assert len({values for _, _, values in observations}) > len(watched)  # the served values moved
