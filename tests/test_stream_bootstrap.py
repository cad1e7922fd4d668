"""A stream started while traffic flows, on real Flink, Spark and Redis. Read every half second from the first
moment of `stream run` until after it caught up, every value Redis serves equals plain Python over the raw
events at the event time it claims: the batch's values while the replay phase runs, the stream's after it;
the streamed history holds one value per (user, event time), each equal to its truth. No partial window of an
unfinished replay is ever served or kept, and the live files that waited meanwhile are read in order.

user_upvotes (7-day and 1-day windows) and user_activity (lifetime) start one after the other from the tiny
event log's batch values; live upvotes arrive from before the first start to the end, from heavy users, new
users and not from the quiet ones (whose windows still move as the live time passes their tiles' hours);
then a catch-up after an outage: hours of events written as many files at once.
"""

from __future__ import annotations

import random
import threading
import time
from bisect import bisect_right
from datetime import datetime, timedelta

import pytest

from serving.get_features import build_read_plan, get_features
from serving.codec import NULL, decode_value, micros_to_datetime
from serving.layout import feature_field, history_key
from serving.online_store import OnlineStore, WritePlan, connect
from streaming import runner
from streaming.connectors import stream_directory
from streaming.status import stream_status
from tests.conftest import LAST_DAY, START
from tests.reference import user_activity, user_upvotes, user_upvotes_at
from tests.test_streaming import _line, _wait_until_landed, _write_lines

GROUPS = {"user_upvotes": ("upvotes_7d", "distinct_items_7d", "upvotes_1d", "last_upvote_at"),
          "user_activity": ("upvotes_total", "distinct_posts_total", "last_upvote_at")}
CUTOFF = datetime.combine(LAST_DAY + timedelta(days=1), datetime.min.time())  # the batch values' event time
NEW_USERS = range(900_001, 900_006)


class Events:
    """Every upvote up to now (the event log's and the live ones), per user in event-time order."""

    def __init__(self, events: list[dict]):
        self.lock = threading.Lock()
        self.by_user: dict[int, list[dict]] = {}
        self.add(events)

    def add(self, events: list[dict]) -> None:
        with self.lock:
            for event in events:
                self.by_user.setdefault(event["user_id"], []).append(event)
            for mine in self.by_user.values():
                mine.sort(key=lambda e: e["event_time"])

    def upto(self, user: int, at: datetime) -> list[dict]:
        with self.lock:
            mine = self.by_user.get(user, [])
            return mine[:bisect_right([e["event_time"] for e in mine], at)]


def stream_truth(group: str, events: Events, user: int, at: datetime) -> tuple | None:
    """What the stream serves for `user` at `at` (plain Python over the events up to it); None: no value."""
    mine = events.upto(user, at)
    if not mine:
        return None
    if group == "user_activity":
        return len(mine), len({e["post_id"] for e in mine}), max(e["event_time"] for e in mine)
    return user_upvotes_at(mine, at)[user]


def _naive(value):
    return value.replace(tzinfo=None) if isinstance(value, datetime) else value


class Reader(threading.Thread):
    """Reads the watched users of both groups through the client every half second, keeping what it saw:
    (when, group, user, values, event time)."""

    def __init__(self, registry, redis_url: str, prefix: str, users: list[int]):
        super().__init__(daemon=True)
        self.store = OnlineStore(connect(redis_url))
        self.plans = {g: build_read_plan(registry, prefix, "user", [g]) for g in GROUPS}
        self.users, self.seen, self.done = users, [], threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for group, features in GROUPS.items():
                for row in get_features(self.store, self.plans[group], self.users):
                    stamp = row.event_times[f"{group}.{features[0]}"]
                    if stamp is not None:
                        values = tuple(_naive(row.values[f"{group}.{f}"]) for f in features)
                        self.seen.append((time.time(), group, row.entity_id, values, stamp.replace(tzinfo=None)))
            time.sleep(0.5)


class Writer(threading.Thread):
    """Live upvotes from the watched active users, a file every half second, event time 3 s apart from
    ten minutes after the cutoff."""

    def __init__(self, directory, events: Events, users: list[int]):
        super().__init__(daemon=True)
        self.directory, self.events, self.users = directory, events, users
        self.rng, self.done, self.newest = random.Random(21), threading.Event(), None
        self.at = CUTOFF + timedelta(minutes=10)

    def run(self) -> None:
        k = 0
        while not self.done.is_set():
            live = []
            for i in range(4):
                self.at += timedelta(seconds=3, microseconds=self.rng.randrange(1000))
                live.append({"event_id": f"boot-{k}-{i}", "user_id": self.rng.choice(self.users),
                             "post_id": self.rng.randrange(10**6), "event_time": self.at})
            self.events.add(live)  # before the file exists: a value can never be ahead of the truth's events
            _write_lines(self.directory, f"live-{k:05d}", [_line(e) for e in live])
            self.newest, k = self.at, k + 1
            time.sleep(0.5)


def catch_up(writer: Writer, events: Events, hours: int) -> datetime:
    """Write `hours` of the writer's users' events after its newest, five minutes of event time a file, all files
    at once, the newest file first; returns the newest event time."""
    rng, files, at = random.Random(5), [], writer.at
    for k in range(hours * 12):
        batch = []
        for i in range(rng.randrange(4, 12)):
            at += timedelta(seconds=rng.randrange(10, 50), microseconds=rng.randrange(1000))
            batch.append({"event_id": f"late-{k}-{i}", "user_id": rng.choice(writer.users),
                          "post_id": rng.randrange(10**6), "event_time": at})
        files.append((f"outage-{k:05d}", batch))
    events.add([event for _, batch in files for event in batch])
    for name, batch in reversed(files):
        _write_lines(writer.directory, name, [_line(e) for e in batch])
    return at


@pytest.mark.slow
@pytest.mark.usefixtures("event_log")
def test_streams_started_while_live_events_flow_never_serve_a_value_their_events_do_not_give(
        registry, settings, spark, sample, redis_url, tmp_path_factory):
    from batch.feature_job import materialize_partition
    from batch.publish import publish_partition

    own = settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("bootstrap"), "redis_prefix": "boot"})
    ds = LAST_DAY.isoformat()
    batch = {}
    for name in GROUPS:
        group = registry.groups[name]
        materialize_partition(spark, registry, group, ds)
        publish_partition(spark, registry, group, ds, redis_url, own.redis_prefix)
        batch[name] = {"user_upvotes": user_upvotes, "user_activity": user_activity}[name](sample, ds)
    logged = [{"user_id": int(r.user_id), "post_id": int(r.post_id), "event_time": r.event_time.to_pydatetime()}
              for day in sample.days(START, LAST_DAY) for r in sample.events("upvote_events", day).itertuples()]
    events = Events(logged)
    weekly = batch["user_upvotes"]["upvotes_7d"].sort_values(ascending=False)
    heavy, quiet = [int(u) for u in weekly.index[:10]], [int(u) for u in weekly[weekly > 0].index[-40::4]]
    watched = heavy + quiet + list(NEW_USERS)

    reader = Reader(registry, redis_url, own.redis_prefix, watched)
    writer = Writer(stream_directory(own, registry.sources["upvote_events"]), events, heavy + list(NEW_USERS))
    replayed: dict[str, list] = {}
    live_from: dict[str, float] = {}
    reader.start()
    writer.start()
    try:
        for name in GROUPS:
            group = registry.groups[name]

            def on_replay(read: int, total: int, left: float | None, name: str = name, group=group) -> None:
                # While it replays, status says so, with its progress, its time left and how long live input
                # has waited.
                replayed.setdefault(name, []).append((read, total, left, stream_status(registry, own, group, redis_url)))
            live_from[name] = runner.start(registry, own, group, redis_url, spark=spark, on_replay=on_replay).started_at
        time.sleep(20)  # the live jobs catch up and carry on
        writer.done.set()
        writer.join()
        # A catch-up after an outage: three hours of events as 36 files written at once, newest first (so the
        # directory lists them in no useful order); hourly tiles leave the windows in between.
        newest = catch_up(writer, events, hours=3)
        store = OnlineStore(connect(redis_url))
        for name in GROUPS:
            group = registry.groups[name]
            _wait_until_landed(store, WritePlan.for_group(group, registry.entity_of(group), own.redis_prefix), newest)
        caught_up = time.time()
        time.sleep(5)
    finally:
        reader.done.set()
        reader.join()
        for name in GROUPS:
            runner.kill(own, registry.groups[name])

    for name in GROUPS:
        (_, total, _, status), *_, (read, _, left, last) = replayed[name]
        assert status.state == "BOOTSTRAPPING" and status.replayed[1] == total > 0, status
        assert (read, left) == (total, 0), replayed[name]  # the whole replay was read before the live job
        assert last.lag_seconds > 1, last  # the live files written meanwhile wait, and status says for how long
        assert last.state == "BOOTSTRAPPING" and last.bootstrap_progress() == f"{total:,} of {total:,} replayed, about 0 s left"
        assert all(s.replay_seconds_left >= 0 for r, _, _, s in replayed[name] if s.replayed and s.replayed[0] > 0)

    def truth(name: str, user: int, stamp: datetime) -> tuple | None:
        if stamp == CUTOFF:  # the batch value of the last logged day
            row = batch[name].loc[user]
            return tuple(_naive(v.to_pydatetime() if hasattr(v, "to_pydatetime") else v) for v in row[list(GROUPS[name])])
        return stream_truth(name, events, user, stamp)

    replaying = [(name, user, values, stamp) for at, name, user, values, stamp in reader.seen if at < live_from[name]]
    assert {name for name, *_ in replaying} == set(GROUPS)
    assert all(stamp == CUTOFF and values == truth(name, user, stamp) for name, user, values, stamp in replaying), [
        r for r in replaying if r[3] != CUTOFF or r[2] != truth(r[0], r[1], r[3])][:5]  # the batch's, exactly
    wrong = [(name, user, values, stamp, truth(name, user, stamp)) for _, name, user, values, stamp in reader.seen
             if values != truth(name, user, stamp)]
    assert not wrong, f"{len(wrong)} of {len(reader.seen)} reads served values their events do not give: {wrong[:5]}"
    after = [(name, user, values, stamp) for at, name, user, values, stamp in reader.seen if at > caught_up]
    last_read = {(name, user): values for name, user, values, _ in after}
    newest = {u: events.upto(u, newest)[-1]["event_time"] for u in heavy + list(NEW_USERS)}
    assert {(n, u): last_read[(n, u)][-1] for n in GROUPS for u in newest} == {(n, u): newest[u] for n in GROUPS
                                                                            for u in newest}  # every event landed

    # The streamed history: one value for each (user, event time), equal to its truth.
    client = connect(redis_url)
    for name, features in GROUPS.items():
        group = registry.groups[name]
        dtypes = {f.name: f.dtype for f in group.features}
        kept: dict[tuple, list] = {}
        for _id, entry in client.xrange(history_key(own.redis_prefix, group.name, group.version)):
            user = int(entry[b"key"].decode().rsplit(":", 1)[1])
            stamp = micros_to_datetime(int(entry[b"ts"])).replace(tzinfo=None)
            raw = [entry[feature_field(name, group.version, f).encode()] for f in features]
            kept.setdefault((user, stamp), []).append(tuple(
                None if value == NULL else _naive(decode_value(dtypes[f], value)) for f, value in zip(features, raw)))
        assert len(kept) > len(heavy), name
        doubled = {key: values for key, values in kept.items() if len(values) > 1}
        assert not doubled, f"{name}: several values for one (user, event time): {list(doubled.items())[:3]}"
        wrong = {key: values[0] for key, values in kept.items() if values[0] != stream_truth(name, events, *key)}
        assert not wrong, f"{name}: {len(wrong)} of {len(kept)} history values wrong: {list(wrong.items())[:3]}"
    client.close()
