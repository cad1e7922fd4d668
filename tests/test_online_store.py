"""The online store against a real Redis: exact round trips, the event-time guard, TTL, pipelined reads."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pyarrow as pa
import redis
import pytest

from benchmarks.baselines import write_per_record
from serving import layout
from serving.codec import datetime_to_micros
from serving.get_features import build_read_plan, get_features
from serving.online_store import OnlineStore, WritePlan

ALL_DTYPES = WritePlan(prefix="t", entity="user", key_column="user_id", group="g", version=1, ttl_seconds=3600,
                       features=(("i32", "int32"), ("i64", "int64"), ("f", "float64"), ("s", "string"),
                                 ("b", "bool"), ("ts", "timestamp"), ("d", "date")))
UTC = timezone.utc


def _table(ids, event_time: datetime, **columns) -> pa.Table:
    types = {"i32": pa.int32(), "i64": pa.int64(), "f": pa.float64(), "s": pa.string(), "b": pa.bool_(),
             "ts": pa.timestamp("us", tz="UTC"), "d": pa.date32()}
    data = {"user_id": pa.array(ids, pa.int64())}
    for name, dtype in types.items():  # columns not given are null
        data[name] = pa.array(columns.get(name, [None] * len(ids)), dtype)
    data["feature_ts"] = pa.array([event_time] * len(ids), pa.timestamp("us", tz="UTC"))
    return pa.table(data)


def _read(store: OnlineStore, plan: WritePlan, ids) -> list[dict]:
    from serving.codec import decode_value

    rows = store.read([f"t:user:{i}" for i in ids], plan.fields)
    return [{name: decode_value(dtype, raw) for (name, dtype), raw in zip(plan.features, row)} for row in rows]


VALUES = dict(
    i32=[2**31 - 1, -(2**31), None],
    i64=[2**63 - 1, -(2**63), 0],
    f=[0.1, 5e-324, -0.0],
    s=["", "naïve – 日本語 \"quoted\" \n", None],
    b=[True, False, None],
    ts=[datetime(1970, 1, 1, tzinfo=UTC), datetime(2026, 2, 3, 4, 5, 6, 789012, tzinfo=UTC), None],
    d=[date(1, 1, 1), date(9999, 12, 31), None],
)


def test_every_dtype_round_trips_exactly(redis_client):
    store = OnlineStore(redis_client)
    t0 = datetime(2026, 1, 2, tzinfo=UTC)
    assert store.write(ALL_DTYPES, _table([1, 2, 3], t0, **VALUES)) == 3
    rows = _read(store, ALL_DTYPES, [1, 2, 3])
    for index, row in enumerate(rows):
        for name, values in VALUES.items():
            expected, actual = values[index], row[name]
            assert actual == expected and type(actual) is type(expected), (name, index, actual, expected)
    assert math.copysign(1, rows[2]["f"]) == -1  # -0.0 keeps its sign
    assert rows[0]["ts"].tzinfo is not None


def test_special_floats_round_trip(redis_client):
    plan = WritePlan(prefix="t", entity="user", key_column="user_id", group="g", version=1, ttl_seconds=0,
                     features=(("f", "float64"),))
    store = OnlineStore(redis_client)
    values = [math.inf, -math.inf, 1 / 3, 1e308]
    store.write(plan, _table([1, 2, 3, 4], datetime(2026, 1, 1, tzinfo=UTC), f=values))
    assert [r["f"] for r in _read(store, plan, [1, 2, 3, 4])] == values


def test_an_older_write_never_replaces_a_newer_value(redis_client):
    store = OnlineStore(redis_client)
    new, old = datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 4, tzinfo=UTC)
    store.write(ALL_DTYPES, _table([1], new, i64=[500]))
    assert store.write(ALL_DTYPES, _table([1, 2], old, i64=[400, 401])) == 1  # only id 2 is new to Redis
    assert [r["i64"] for r in _read(store, ALL_DTYPES, [1, 2])] == [500, 401]
    assert redis_client.hget("t:user:1", "g:v1:_ts") == str(datetime_to_micros(new)).encode()


def test_replaying_the_same_write_changes_nothing(redis_client):
    store = OnlineStore(redis_client)
    batch = _table([1, 2, 3], datetime(2026, 1, 2, tzinfo=UTC), **VALUES)
    store.write(ALL_DTYPES, batch)
    before = {k: redis_client.hgetall(k) for k in redis_client.keys("*")}
    store.write(ALL_DTYPES, batch)
    assert {k: redis_client.hgetall(k) for k in redis_client.keys("*")} == before


def test_a_newer_null_removes_the_field(redis_client):
    store = OnlineStore(redis_client)
    store.write(ALL_DTYPES, _table([1], datetime(2026, 1, 1, tzinfo=UTC), s=["old"]))
    store.write(ALL_DTYPES, _table([1], datetime(2026, 1, 2, tzinfo=UTC), s=[None]))
    assert not redis_client.hexists("t:user:1", "g:v1:s")


def test_entity_ttl_is_the_longest_group_ttl(redis_client):
    store = OnlineStore(redis_client)
    t = datetime(2026, 1, 1, tzinfo=UTC)
    store.write(ALL_DTYPES, _table([1], t, i64=[1]))
    assert 3590 < redis_client.ttl("t:user:1") <= 3600
    longer = WritePlan(**{**ALL_DTYPES.__dict__, "group": "h", "ttl_seconds": 7200})
    store.write(longer, _table([1], t, i64=[1]))
    assert 7190 < redis_client.ttl("t:user:1") <= 7200
    store.write(ALL_DTYPES, _table([1], datetime(2026, 1, 2, tzinfo=UTC), i64=[2]))
    assert redis_client.ttl("t:user:1") > 3600  # a shorter TTL never cuts another group's lifetime


def test_batched_and_per_record_writers_store_the_same(redis_client):
    store = OnlineStore(redis_client, chunk_rows=2)  # several script calls per pipeline
    batch = _table([1, 2, 3], datetime(2026, 1, 2, tzinfo=UTC), **VALUES)
    assert store.write(ALL_DTYPES, batch) == 3
    batched = {k: redis_client.hgetall(k) for k in redis_client.keys("*")}
    redis_client.flushall()
    assert write_per_record(store, ALL_DTYPES, batch) == 3
    assert {k: redis_client.hgetall(k) for k in redis_client.keys("*")} == batched


def test_get_features_reads_many_ids_and_unknown_ids_are_null(redis_client, registry):
    store = OnlineStore(redis_client)
    group = registry.groups["user_upvotes"]
    plan = WritePlan.for_group(group, registry.entity_of(group), "t")
    at = datetime(2026, 1, 3, tzinfo=UTC)
    store.write(plan, pa.table({
        "user_id": [42, 7], "upvotes_7d": [10, 3], "distinct_items_7d": [8, 3], "upvotes_1d": [2, 0],
        "last_upvote_at": pa.array([datetime(2026, 1, 2, 23, tzinfo=UTC)] * 2, pa.timestamp("us", tz="UTC")),
        "feature_ts": pa.array([at, at], pa.timestamp("us", tz="UTC"))}))
    read_plan = build_read_plan(registry, "t", "user", ["user_upvotes.upvotes_7d", "user_upvotes"])
    rows = get_features(store, read_plan, [42, 999, 7])
    assert [r.values["user_upvotes.upvotes_7d"] for r in rows] == [10, None, 3]
    assert rows[0].values["user_upvotes.distinct_items_7d"] == 8
    assert rows[0].event_times["user_upvotes.upvotes_7d"] == at
    assert rows[1].event_times["user_upvotes.upvotes_7d"] is None


@pytest.mark.parametrize("entity, refs, message", [
    ("user", ["nope.x"], "unknown feature group 'nope'"),
    ("user", ["user_upvotes.nope"], "unknown feature 'user_upvotes.nope'"),
    ("user", ["post_popularity.hot_score"], "describes entity 'post', not 'user'"),
    ("account", ["user_upvotes"], "unknown entity 'account'"),
])
def test_bad_feature_refs_are_explained(registry, entity, refs, message):
    from infra.errors import PlatformError

    with pytest.raises(PlatformError, match=message):
        build_read_plan(registry, "t", entity, refs)


def test_trimming_loaded_history_removes_every_loaded_entry_past_redis_work_limit(redis_client):
    """After a bootstrap the history holds more than the 10,000 entries an approximate XTRIM removes per call;
    the trim after a load removes all of them, and keeps the entries landed after the load read."""
    from offline.streamed_history import trim_through

    key = "test:history"
    pipe = redis_client.pipeline(transaction=False)
    for n in range(10_048):
        pipe.xadd(key, {"n": n})
    pipe.execute()
    last = redis_client.xrevrange(key, count=1)[0][0]
    later = redis_client.xadd(key, {"n": "landed after the read"})
    trim_through(redis_client, key, last)
    assert [entry_id for entry_id, _ in redis_client.xrange(key)] == [later]


def test_a_group_without_ttl_makes_the_entity_live_forever_whatever_writes_it_later(redis_client):
    store = OnlineStore(redis_client)
    t = datetime(2026, 1, 1, tzinfo=UTC)
    forever = WritePlan(**{**ALL_DTYPES.__dict__, "group": "f", "ttl_seconds": 0})
    store.write(forever, _table([2], t, i64=[1]))
    assert redis_client.ttl("t:user:2") == -1  # a new key of a group without TTL
    store.write(ALL_DTYPES, _table([1], t, i64=[1]))
    store.write(forever, _table([1], t, i64=[1]))
    assert redis_client.ttl("t:user:1") == -1  # the 1 h of the other group is lifted
    store.write(ALL_DTYPES, _table([1], datetime(2026, 1, 2, tzinfo=UTC), i64=[2]))
    assert redis_client.ttl("t:user:1") == -1  # and a group with a TTL writing again does not bring it back


def test_sliced_and_chunked_batches_write_the_rows_they_hold_in_many_script_calls(redis_client):
    store = OnlineStore(redis_client, chunk_rows=7)  # 50 rows: 8 calls, the last one short
    ids = list(range(100))
    whole = _table(ids, datetime(2026, 1, 2, tzinfo=UTC), i64=ids, s=[f"v{i}" for i in ids], f=[i / 3 for i in ids])
    chunked = pa.concat_tables([whole.slice(50, 20), whole.slice(70, 30)])  # two chunks per column
    assert store.write(ALL_DTYPES, whole.slice(0, 50).to_batches()[0]) == 50
    assert store.write(ALL_DTYPES, chunked) == 50
    rows = _read(store, ALL_DTYPES, ids)
    assert [(r["i64"], r["s"], r["f"]) for r in rows] == [(i, f"v{i}", i / 3) for i in ids]
    assert redis_client.dbsize() == 100


def test_a_write_after_redis_lost_its_scripts_loads_the_script_again(redis_client):
    store = OnlineStore(redis_client)
    t0 = datetime(2026, 1, 2, tzinfo=UTC)
    assert store.write(ALL_DTYPES, _table([1], t0, i64=[1])) == 1
    redis_client.script_flush()  # what a restarted Redis looks like to a long-lived writer
    assert store.write(ALL_DTYPES, _table([1, 2], t0.replace(day=3), i64=[2, 3])) == 2
    assert [r["i64"] for r in _read(store, ALL_DTYPES, [1, 2])] == [2, 3]


def test_a_streamed_write_appends_exactly_the_landed_rows_to_the_history_stream(redis_client):
    store = OnlineStore(redis_client, chunk_rows=2)
    t0 = datetime(2026, 1, 2, tzinfo=UTC)
    assert store.write(ALL_DTYPES, _table([1, 2, 3], t0, i64=[10, 20, 30], f=[0.5, None, 1.0]), history=True) == 3
    assert store.write(ALL_DTYPES, _table([1, 4], t0.replace(day=1), i64=[0, 40]), history=True) == 1  # 1 is older
    entries = [fields for _id, fields in redis_client.xrange(ALL_DTYPES.history_key)]
    assert [(e[b"key"], e[b"g:v1:i64"], e[b"g:v1:f"]) for e in entries] == [
        (b"t:user:1", b"10", b"0.5"), (b"t:user:2", b"20", b"\xff"), (b"t:user:3", b"30", b"1"), (b"t:user:4", b"40", b"\xff")]
    assert [r["f"] for r in _read(store, ALL_DTYPES, [1, 2, 3, 4])] == [0.5, None, 1.0, None]


def test_a_platform_server_serves_reads_as_soon_as_it_is_handed_out(tmp_path):
    """A persistent server restarted over a large dump is handed out only once it has loaded it: the first
    read gets the data, not `LOADING Redis is loading the dataset in memory` (as `featctl training-set` did
    right after `make demo`)."""
    from infra.redis_server import local_redis

    fill = "for i = 1, tonumber(ARGV[1]) do redis.call('SET', 'k' .. i, string.rep('v', 200)) end"
    with local_redis(tmp_path, persist=True) as url:
        redis.Redis.from_url(url).eval(fill, 0, 600_000)
    assert (tmp_path / "dump.rdb").stat().st_size > 10_000_000
    with local_redis(tmp_path, persist=True) as url:
        client = redis.Redis.from_url(url)
        assert client.get("k600000") == b"v" * 200 and client.dbsize() == 600_000
        client.close()


def test_the_clock_guard_refuses_and_counts_rows_dated_past_the_skew_of_redis_clock(redis_client):
    """A stream's writes carry its max clock skew: a row dated further ahead of Redis's own clock is refused
    (whatever Redis holds stays) and counted, one within it lands; a batch plan (no limit) is not checked."""
    store = OnlineStore(redis_client)
    streamed = replace(ALL_DTYPES, max_ahead_seconds=300)
    now = datetime.now(UTC).replace(microsecond=0)
    store.write(streamed, _table([1, 2], now, i64=[10, 20]))
    ahead = _table([1, 2, 3], now + timedelta(hours=1), i64=[11, 21, 31])
    within = _table([2], now + timedelta(minutes=4), i64=[22])
    assert store.write(streamed, ahead) == 0 and store.refused_ahead == 3
    assert store.write(streamed, within) == 1 and store.refused_ahead == 3
    assert write_per_record(store, streamed, _table([1], now + timedelta(days=30), i64=[12])) == 0
    assert store.refused_ahead == 4
    assert not redis_client.exists(layout.entity_key(streamed.prefix, streamed.entity, 3))
    i64 = layout.feature_field(streamed.group, streamed.version, "i64")
    assert [redis_client.hget(layout.entity_key(streamed.prefix, streamed.entity, k), i64) for k in (1, 2)] == [
        b"10", b"22"]
    store.record_progress(streamed, rows=3, landed=0, max_event_micros=0, now_ms=0, refused_ahead=3)
    assert store.progress(streamed)["rows_refused_ahead"] == 3
    assert store.write(ALL_DTYPES, ahead) == 3  # a batch plan: its event times are the ends of days it computed
