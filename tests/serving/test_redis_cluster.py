"""The online store on a real Redis Cluster (3 masters, 3 replicas on loopback): the same values as one Redis,
every script call within one slot, the streamed history per slot, the service and both clients."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest
from redis.crc import key_slot

from serving.client import HttpClient, InProcessClient
from serving.get_features import build_read_plan, get_features
from serving.online_store import OnlineStore, WritePlan, cluster_url, connect
from serving.service import FeatureService
from tests.serving.conftest import ServerThread, renamed_registry

UTC = timezone.utc
TS = pa.timestamp("us", tz="UTC")
T1 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _rows(ids, seed: int, event_time: datetime) -> pa.Table:
    """user_upvotes rows for `ids` with random values (nulls among them) at one event time."""
    rng = np.random.default_rng(seed)
    n = len(ids)
    last = [None if k % 7 == 0 else event_time - timedelta(seconds=int(s)) for k, s in
            enumerate(rng.integers(0, 86_400, n))]
    return pa.table({"user_id": pa.array(ids, pa.int64()), "upvotes_7d": rng.integers(0, 10**6, n),
                     "distinct_items_7d": pa.array([None if k % 5 == 0 else int(v) for k, v in
                                                    enumerate(rng.integers(0, 500, n))], pa.int64()),
                     "upvotes_1d": rng.integers(0, 100, n), "last_upvote_at": pa.array(last, TS),
                     "feature_ts": pa.array([event_time] * n, TS)})


@pytest.fixture
def cluster_store(redis_cluster):
    store = OnlineStore(connect(redis_cluster.url))
    store.client.flushall()
    yield store
    store.client.close()


def _plan(registry, prefix: str = "rc", group: str = "user_upvotes") -> WritePlan:
    group = registry.groups[group]
    return WritePlan.for_group(group, registry.entity_of(group), prefix)


def test_the_one_private_redis_py_use_is_pinned_to_the_installed_version(redis_cluster):
    """serving.round_trip.ClusterNodePool gives an asyncio cluster node's connection back through redis-py's
    private free list (redis 5.3 has no public way): pinned to the version it was written for, so an upgrade
    checks it again. A connection it lends is connected, and once given back it is the one the node lends next."""
    import asyncio

    import redis
    from redis.asyncio.cluster import ClusterNode

    from serving.round_trip import ClusterNodePool

    assert redis.__version__ == "5.3.1", "check ClusterNodePool against this redis-py, then update the pin here"
    async def lend_twice() -> tuple:
        node = ClusterNode("127.0.0.1", redis_cluster.nodes[0].port)
        pool = ClusterNodePool(node)
        first = await pool.get_connection()
        connected = first.is_connected
        await pool.release(first)
        second = await pool.get_connection()
        await pool.release(second)
        await node.disconnect()
        return connected, second is first

    assert asyncio.run(lend_twice()) == (True, True)


def test_the_cluster_url_scheme_chooses_the_cluster_client(redis_cluster):
    assert cluster_url("redis+cluster://:pw@h:7000/0") == ("redis://:pw@h:7000/0", True)
    assert cluster_url("rediss+cluster://h:7000") == ("rediss://h:7000", True)
    assert cluster_url("redis://h:6379/0") == ("redis://h:6379/0", False)
    assert OnlineStore(connect(redis_cluster.url)).cluster


def test_a_write_on_the_cluster_holds_what_one_redis_holds_across_every_master(cluster_store, redis_cluster,
                                                                             redis_client, registry):
    plan = _plan(registry)
    ids = list(range(5_000))
    rows = _rows(ids, seed=1, event_time=T1)
    single = OnlineStore(redis_client)
    assert cluster_store.write(plan, rows) == single.write(plan, rows) == 5_000
    read_plan = build_read_plan(registry, "rc", "user", ["user_upvotes"])
    on_cluster = get_features(cluster_store, read_plan, ids + [10**9])
    on_single = get_features(single, read_plan, ids + [10**9])
    assert on_cluster == on_single
    assert on_cluster[17].values["user_upvotes.upvotes_7d"] == rows.column("upvotes_7d")[17].as_py()
    assert on_cluster[-1].values["user_upvotes.upvotes_7d"] is None
    per_master = [node.client().dbsize() for node in redis_cluster.masters()]
    assert sum(per_master) == 5_000 and min(per_master) > 1_000  # the keys spread over the three masters


def test_every_script_call_stays_in_one_slot_history_stream_included(cluster_store, registry):
    plan = _plan(registry)
    rows = _rows(list(range(3_000)), seed=2, event_time=T1)
    calls = cluster_store._calls(plan, rows, history=True)
    assert sum(len(call.keys) for call in calls) == 3_000
    for call in calls:
        history_key = plan.history_key_in(key_slot(call.keys[0].as_py())).encode()
        assert call.command.count(history_key) == 1  # the call's last key: its slot's history stream
        assert len({key_slot(key) for key in [*call.keys.to_pylist(), history_key]}) == 1, call.first_key


def test_the_event_time_guard_holds_on_the_cluster(cluster_store, registry):
    plan = _plan(registry)
    ids = list(range(2_000))
    assert cluster_store.write(plan, _rows(ids, seed=3, event_time=T1)) == 2_000
    assert cluster_store.write(plan, _rows(ids[:500], seed=4, event_time=T1 - timedelta(hours=1))) == 0
    newer = _rows(ids[:500], seed=5, event_time=T1 + timedelta(hours=1))
    assert cluster_store.write(plan, newer) == 500
    read = get_features(cluster_store, build_read_plan(registry, "rc", "user", ["user_upvotes"]), ids[:500])
    assert [r.values["user_upvotes.upvotes_7d"] for r in read] == newer.column("upvotes_7d").to_pylist()


def test_the_streamed_history_lands_per_slot_and_loads_exactly_once(cluster_store, redis_cluster, registry, spark):
    from offline.streamed_history import load_streamed_history

    renamed = renamed_registry(registry, "rc", ["user_upvotes"])
    group = renamed.groups["rc_user_upvotes"]
    plan = WritePlan.for_group(group, renamed.entity_of(group), "rc")
    ids = list(range(10**9, 10**9 + 2_000))
    first, newer = _rows(ids, seed=6, event_time=T1), _rows(ids[:700], seed=7, event_time=T1 + timedelta(hours=2))
    assert cluster_store.write(plan, first, history=True) == 2_000
    assert cluster_store.write(plan, newer, history=True) == 700
    assert cluster_store.write(plan, _rows(ids, seed=8, event_time=T1 - timedelta(days=1)), history=True) == 0
    keys = cluster_store.history_keys(plan)
    assert len(keys) == len({key_slot(f"rc:user:{i}".encode()) for i in ids}) > 1_000
    assert load_streamed_history(spark, renamed, group, redis_cluster.url, "rc") == 2_700
    assert load_streamed_history(spark, renamed, group, redis_cluster.url, "rc") == 0
    assert all(cluster_store.client.xlen(key) == 0 for key in keys)
    loaded = spark.table(f"features.{group.name}_v1_streamed").toPandas()
    loaded["feature_ts"] = loaded["feature_ts"].astype("datetime64[us]").dt.tz_localize("UTC")  # a UTC session
    expected = pa.concat_tables([first, newer]).to_pandas()
    assert len(loaded) == 2_700
    merged = expected.merge(loaded, on=["user_id", "feature_ts"], suffixes=("", "_loaded"))
    assert len(merged) == 2_700
    assert (merged["upvotes_7d"] == merged["upvotes_7d_loaded"]).all()
    spark.sql(f"DROP TABLE features.{group.name}_v1_streamed")


def test_the_service_and_both_clients_read_the_cluster(cluster_store, redis_cluster, registry):
    plan = _plan(registry)
    ids = list(range(300))
    rows = _rows(ids, seed=9, event_time=T1)
    cluster_store.write(plan, rows)
    features = ["user_upvotes.upvotes_7d", "user_upvotes.last_upvote_at"]
    in_process = InProcessClient.connect(registry, redis_cluster.url, "rc", max_ids=1_000)
    with ServerThread(FeatureService(registry, redis_cluster.url, "rc", max_ids=1_000)) as server:
        over_http = HttpClient(server.url)
        for batch in (ids[:1], ids[:100], ids[100:300] + [10**9]):
            assert over_http.get_features("user", batch, features) == in_process.get_features("user", batch, features)
        over_http.close()
    rows_read = in_process.get_features("user", ids, features)
    in_process.close()
    assert [r.values["user_upvotes.upvotes_7d"] for r in rows_read] == rows.column("upvotes_7d").to_pylist()
    assert [r.values["user_upvotes.last_upvote_at"] for r in rows_read] == rows.column("last_upvote_at").to_pylist()


def test_killing_a_master_mid_publish_loses_nothing_and_the_service_recovers(registry, tmp_path):
    """A master dies after 5 of 20 batches: its replica takes over, the writer retries through the failover,
    every row lands exactly once, and the service answers 503 only while the slots have no master."""
    import threading
    import time

    from infra.redis_cluster import local_redis_cluster
    from serving.client import StoreUnavailable

    plan = _plan(registry)
    batches = [_rows(list(range(k * 1_000, (k + 1) * 1_000)), seed=100 + k, event_time=T1) for k in range(20)]
    with local_redis_cluster(tmp_path / "cluster") as cluster:
        store = OnlineStore(connect(cluster.url))
        victim = cluster.masters()[0]
        probe_ids = list(range(0, 5_000, 50))  # written before the kill, on every master
        with ServerThread(FeatureService(registry, cluster.url, "rc", max_ids=1_000,
                                         redis_timeout_seconds=0.5)) as server:
            over_http = HttpClient(server.url)
            answers: list[tuple[float, str]] = []
            stop = threading.Event()

            def read_all_along():
                while not stop.is_set():
                    try:
                        over_http.get_features("user", probe_ids, ["user_upvotes.upvotes_7d"])
                        answers.append((time.monotonic(), "ok"))
                    except StoreUnavailable:
                        answers.append((time.monotonic(), "503"))
                    time.sleep(0.02)

            landed = sum(store.write(plan, batch) for batch in batches[:5])
            reader = threading.Thread(target=read_all_along)
            reader.start()
            time.sleep(0.5)
            killed_at = time.monotonic()
            cluster.kill(victim)
            landed += sum(store.write(plan, batch) for batch in batches[5:])
            written_at = time.monotonic()
            cluster.wait_ready()
            time.sleep(1.0)
            stop.set()
            reader.join()
            over_http.close()
        assert landed == 20_000
        assert victim not in cluster.masters() and len(cluster.masters()) == 3  # its replica took over
        read = get_features(store, build_read_plan(registry, "rc", "user", ["user_upvotes"]), list(range(20_000)))
        expected = pa.concat_tables(batches)
        assert [r.values["user_upvotes.upvotes_7d"] for r in read] == expected.column("upvotes_7d").to_pylist()
        assert [r.values["user_upvotes.last_upvote_at"] for r in read] == expected.column("last_upvote_at").to_pylist()
        assert sum(node.client().dbsize() for node in cluster.masters()) == 20_000
        store.client.close()
    failures = [t for t, status in answers if status == "503"]
    after = [status for t, status in answers if t > (failures[-1] if failures else killed_at)]
    assert answers[0][1] == "ok" and after and set(after) == {"ok"}  # 200 again, and for good
    window = (failures[-1] - killed_at) if failures else 0.0
    assert window < 10, f"503s for {window:.1f} s after the kill"
    print(f"failover: writes resumed {written_at - killed_at:.1f} s after the kill; 503s for {window:.1f} s, "
          f"{len(failures)} of {len(answers)} reads")


def test_deleting_a_prefix_reaches_every_master(cluster_store, redis_cluster, registry):
    cluster_store.write(_plan(registry), _rows(list(range(3_000)), seed=10, event_time=T1))
    cluster_store.client.set("rc:other:1", "kept")
    assert cluster_store.delete_prefix("rc:user:") == 3_000
    assert sum(node.client().dbsize() for node in redis_cluster.masters()) == 1
    assert cluster_store.client.get("rc:other:1") == b"kept"
