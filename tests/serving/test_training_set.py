"""Point-in-time-correct training sets: a hand-checkable history, the generated data set, streamed history."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from assets.registry import Registry
from assets.specs import Entity, Feature, FeatureGroup
from offline.training_set import join_pandas, join_spark, plan_joins, training_set_pandas, training_set_spark

UTC = timezone.utc
T1 = datetime(2026, 1, 2, tzinfo=UTC)
T2 = datetime(2026, 1, 3, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
USER = Entity(name="user", key="user_id", dtype="int64", description="A user.")


def _clicks_registry(tmp_path: Path) -> Registry:
    group = FeatureGroup(name="clicks", entity="user", owner="team:test", version=1, ttl="1d",
                         description="Hand-checkable clicks.", sources={"clicks": {}},
                         features=(Feature(name="clicks", dtype="int64", description="Clicks."),
                                   Feature(name="tag", dtype="string", description="A tag.")),
                         folder=tmp_path, batch_sql="SELECT 1")
    return Registry(root=tmp_path, entities={"user": USER}, sources={}, groups={"clicks": group})


HISTORY = pa.table({
    "user_id": pa.array([1, 1, 3], pa.int64()),
    "clicks": pa.array([10, 20, 99], pa.int64()),
    "tag": ["a", "b", "old"],
    "feature_ts": pa.array([T1, T2, T1 - timedelta(days=5)], pa.timestamp("us", tz="UTC")),
})
# (observation, user, time, expected clicks): the feature changes at T1 and T2; TTL 1 day.
CASES = [
    ("before t1", 1, T1 - MICROSECOND, None),
    ("exactly t1", 1, T1, 10),
    ("between t1 and t2", 1, T1 + timedelta(hours=12), 10),
    ("just before t2", 1, T2 - MICROSECOND, 10),
    ("exactly t2", 1, T2, 20),
    ("t2 + TTL", 1, T2 + timedelta(days=1), 20),
    ("after the TTL", 1, T2 + timedelta(days=1) + MICROSECOND, None),
    ("entity without history", 2, T2, None),
    ("only a value older than the TTL", 3, T1, None),
]
OBSERVATIONS = pa.table({
    "case": [c[0] for c in CASES],
    "user_id": pa.array([c[1] for c in CASES], pa.int64()),
    "event_time": pa.array([c[2] for c in CASES], pa.timestamp("us", tz="UTC")),
    "label": list(range(len(CASES))),
})


def test_hand_checkable_history_pandas(tmp_path):
    joins = plan_joins(_clicks_registry(tmp_path), ["clicks"])
    result = join_pandas(OBSERVATIONS, joins, {"clicks": HISTORY}).to_pylist()
    assert {r["case"]: r["clicks__clicks"] for r in result} == {c[0]: c[3] for c in CASES}
    assert {r["case"]: r["clicks__tag"] for r in result}["between t1 and t2"] == "a"
    assert [r["clicks__feature_ts"] for r in result][:3] == [None, T1, T1]
    assert [r["label"] for r in result] == list(range(len(CASES)))  # observation order and columns kept


def test_hand_checkable_history_spark_equals_pandas(tmp_path, spark):
    joins = plan_joins(_clicks_registry(tmp_path), ["clicks.clicks", "clicks.tag"])
    expected = join_pandas(OBSERVATIONS, joins, {"clicks": HISTORY})
    result = join_spark(spark.createDataFrame(OBSERVATIONS.to_pandas()), joins,
                        {"clicks": spark.createDataFrame(HISTORY.to_pandas())}).toArrow()
    assert result.to_pylist() == expected.to_pylist()


def _by_obs_id(table: pa.Table) -> pa.Table:
    return table.sort_by("obs_id")


@pytest.fixture(scope="module")
def both_engines(spark, feature_history, generated_observations):
    refs = list(feature_history.groups)
    local = training_set_pandas(spark, feature_history, generated_observations, refs)
    distributed = training_set_spark(spark, feature_history, spark.createDataFrame(generated_observations), refs)
    return _by_obs_id(local), _by_obs_id(distributed.toArrow())


@pytest.mark.slow  # builds 8 feature partitions from the event log first (~30-40 s)
def test_spark_and_pandas_agree_on_the_generated_set(both_engines, generated_observations):
    local, distributed = both_engines
    assert local.num_rows == distributed.num_rows == len(generated_observations)
    assert local.column_names == distributed.column_names
    for name in local.column_names:
        assert local[name].to_pylist() == distributed[name].to_pylist(), name
    for stem in ("pit_user_upvotes", "pit_post_popularity"):
        filled = len(local[f"{stem}__feature_ts"]) - local[f"{stem}__feature_ts"].null_count
        assert 0.1 * local.num_rows < filled < local.num_rows, f"{stem} should match some rows, not all"


@pytest.mark.slow  # builds 8 feature partitions from the event log first (~30-40 s)
def test_no_training_row_sees_the_future_or_an_expired_value(both_engines, feature_history):
    local, _ = both_engines
    for group in feature_history.groups.values():
        joined_at = local[f"{group.name}__feature_ts"]
        matched = pc.is_valid(joined_at)
        observed = pc.filter(local["event_time"], matched)
        joined = pc.filter(joined_at, matched)
        assert pc.all(pc.less_equal(joined, observed)).as_py(), f"{group.name}: a value from after the observation"
        age = pc.subtract(pc.cast(observed, pa.int64()), pc.cast(joined, pa.int64()))
        assert pc.max(age).as_py() <= group.ttl.total_seconds() * 1e6, f"{group.name}: a value older than its TTL"


@pytest.mark.slow  # builds 8 feature partitions from the event log first (~30-40 s)
def test_generated_rows_hold_the_latest_partition_before_them(both_engines, spark, feature_history):
    """Spot check against the tables themselves: the joined values are the last partition ending <= t."""
    local, _ = both_engines
    rows = local.filter(pc.is_valid(local["pit_user_upvotes__feature_ts"])).slice(0, 200).to_pylist()
    table = spark.table("features.pit_user_upvotes_v1").toPandas()
    for row in rows:
        mine = table[(table.user_id == row["user_id"]) & (table.feature_ts <= row["event_time"].replace(tzinfo=None))]
        latest = mine.sort_values("feature_ts").iloc[-1]
        assert row["pit_user_upvotes__upvotes_7d"] == latest.upvotes_7d
        assert row["pit_user_upvotes__feature_ts"].replace(tzinfo=None) == latest.feature_ts


def test_streamed_rows_join_between_batch_partitions_and_batch_wins_ties(spark, tmp_path):
    """The offline history is batch UNION streamed: a streamed value between two batch instants is seen."""
    from assets.offline_layout import streamed_table, table_ddl
    from offline.offline_history import offline_history

    registry = _clicks_registry(tmp_path)
    group = registry.groups["clicks"].model_copy(update={"name": "pit_streamtest"})
    registry = Registry(root=tmp_path, entities=registry.entities, sources={}, groups={group.name: group})
    columns = [("user_id", "int64"), ("clicks", "int64"), ("tag", "string"), ("feature_ts", "timestamp")]
    spark.sql("CREATE DATABASE IF NOT EXISTS features")
    for table in (group.table, streamed_table(group)):
        spark.sql(f"DROP TABLE IF EXISTS {table}")
        spark.sql(table_ddl(table, columns))
    spark.sql(f"INSERT INTO {group.table} PARTITION (ds='2026-01-01') VALUES (1, 10, 'batch', TIMESTAMP '{T1:%F %T}')")
    spark.sql(f"INSERT INTO {streamed_table(group)} PARTITION (ds='2026-01-01') VALUES "
              f"(1, 11, 'streamed tie', TIMESTAMP '{T1:%F %T}'), "
              f"(1, 15, 'streamed', TIMESTAMP '{T1 + timedelta(hours=6):%F %T}')")
    history = offline_history(spark, registry, group)
    assert history.count() == 2  # the tie at T1 collapsed onto the batch row
    observations = pd.DataFrame({"user_id": [1, 1], "event_time": [T1 + timedelta(hours=1), T1 + timedelta(hours=7)]})
    local = training_set_pandas(spark, registry, observations, ["pit_streamtest"])
    distributed = training_set_spark(spark, registry, spark.createDataFrame(observations), ["pit_streamtest"])
    assert local["pit_streamtest__tag"].to_pylist() == ["batch", "streamed"]
    assert distributed.toArrow().to_pylist() == local.to_pylist()


def test_feature_store_logs_observations_and_generates_the_training_set(spark, settings, tmp_path):
    """The seed's API: append_observation(user, post, ts) as things happen, then generate_training_set()."""
    from assets.offline_layout import table_ddl
    from offline.feature_store import FeatureStore

    registry = _clicks_registry(tmp_path)
    group = registry.groups["clicks"].model_copy(update={"name": "pit_store"})
    registry = Registry(root=tmp_path, entities=registry.entities, sources={}, groups={group.name: group})
    spark.sql("CREATE DATABASE IF NOT EXISTS features")
    spark.sql(f"DROP TABLE IF EXISTS {group.table}")
    spark.sql(table_ddl(group.table, [("user_id", "int64"), ("clicks", "int64"), ("tag", "string"),
                                      ("feature_ts", "timestamp")]))
    spark.sql(f"INSERT INTO {group.table} PARTITION (ds='2026-01-01') VALUES (1, 10, 'a', TIMESTAMP '{T1:%F %T}'), "
              f"(1, 20, 'b', TIMESTAMP '{T2:%F %T}')")
    store = FeatureStore(["pit_store.clicks"], entity="user", log="next_upvote", registry=registry, spark=spark,
                         settings=settings.model_copy(update={"data_dir": tmp_path}))
    store.append_observation(1, 501, T1 - timedelta(hours=1))
    store.append_observation(1, 502, (T1 + timedelta(hours=1)).replace(tzinfo=None), post_id=7)  # naive = UTC
    store.append_observation(1, 503, T2 + timedelta(days=2))
    store.append_observation(2, 504, T2)
    assert sorted(p.name for p in (tmp_path / "observations" / "next_upvote").iterdir()) == \
        ["2026-01-01.jsonl", "2026-01-02.jsonl", "2026-01-03.jsonl", "2026-01-05.jsonl"]
    training = store.generate_training_set()
    assert training["label"].tolist() == [501, 502, 504, 503]  # oldest first
    assert training["pit_store__clicks"].tolist() == [pd.NA, 10, pd.NA, pd.NA]  # before T1; T1's; none; past TTL
    assert training["post_id"].iloc[1] == 7
    assert store.generate_training_set(engine="spark").equals(training)
