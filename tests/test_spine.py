"""The spine end to end on real parts: HiveQL on Spark, run by Dagster, published to a real Redis.

One Dagster run of the daily job computes PARTITION for every group; its Redis values must equal the
pandas reference computed straight from the generated events.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from orchestration.factory import build_definitions
from orchestration.runs import run_partition
from serving import layout
from serving.get_features import build_read_plan, get_features
from serving.online_store import OnlineStore
from tests.conftest import PARTITION
from tests.reference import EXPECTED

pytestmark = pytest.mark.usefixtures("event_log")


@pytest.fixture(scope="module")
def defs(registry, settings):
    return build_definitions(registry, settings)


@pytest.fixture(scope="module")
def published(defs, redis_url):
    """Redis after one run of the whole daily job for PARTITION, and the run's per-asset summaries."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushall()
    steps = {s.asset: s for s in run_partition(defs, PARTITION)}
    return client, steps


def _snapshot(client) -> dict:
    return {key: client.hgetall(key) for key in sorted(client.keys("*"))}


@pytest.mark.parametrize("group_name", sorted(EXPECTED))
def test_published_values_equal_the_pandas_reference(published, registry, settings, sample, group_name):
    client, steps = published
    group = registry.groups[group_name]
    expected = EXPECTED[group_name](sample, PARTITION)
    assert len(expected) > 10, "the fixture should exercise many entities"
    assert steps[f"features/{group_name}"].rows == len(expected)
    assert steps[f"online/{group_name}"].rows == len(expected)

    entity = registry.entity_of(group)
    assert len(client.keys(layout.entity_key(settings.redis_prefix, entity.name, "*"))) == len(expected)
    plan = build_read_plan(registry, settings.redis_prefix, entity.name, [group_name])
    rows = get_features(OnlineStore(client), plan, [int(i) for i in expected.index])
    as_of = datetime.fromisoformat(PARTITION).replace(tzinfo=timezone.utc) + timedelta(days=1)
    for row in rows:
        want = expected.loc[row.entity_id]
        for feature in group.features:
            got, wanted = row.values[f"{group_name}.{feature.name}"], want[feature.name]
            if pd.isna(wanted):  # an entity that left a windowed group's window: its empty value is null
                wanted = None
            elif feature.dtype == "timestamp":
                wanted = wanted.to_pydatetime().replace(tzinfo=timezone.utc)
            assert got == wanted, (group_name, row.entity_id, feature.name, got, wanted)
        assert set(row.event_times.values()) == {as_of}


def test_user_42_has_the_values_a_person_would_count(published, registry, settings, sample):
    """The README's example read, checked by hand against the raw events of the 7-day window."""
    client, _ = published
    window = [sample.upvotes(datetime.fromisoformat(PARTITION).date() - timedelta(days=k)) for k in range(7)]
    mine = [frame[frame.user_id == 42] for frame in window]
    plan = build_read_plan(registry, settings.redis_prefix, "user",
                           ["user_upvotes.upvotes_7d", "user_upvotes.distinct_items_7d"])
    row = get_features(OnlineStore(client), plan, [42])[0]
    assert row.values["user_upvotes.upvotes_7d"] == sum(len(f) for f in mine)
    assert row.values["user_upvotes.distinct_items_7d"] == len(set().union(*(set(f.post_id) for f in mine)))


def test_rerunning_a_partition_leaves_redis_unchanged(published, defs):
    client, _ = published
    before = _snapshot(client)
    steps = {s.asset: s for s in run_partition(defs, PARTITION, assets=["features/user_upvotes",
                                                                         "online/user_upvotes"])}
    assert steps["features/user_upvotes"].rows == steps["online/user_upvotes"].rows > 0
    assert _snapshot(client) == before


def test_an_older_partition_never_overwrites_newer_values(published, defs, registry, settings, sample):
    client, _ = published
    newer = _snapshot(client)
    older = (datetime.fromisoformat(PARTITION) - timedelta(days=1)).date().isoformat()
    steps = {s.asset: s for s in run_partition(defs, older, assets=["features/user_upvotes", "online/user_upvotes"])}
    older_users = set(EXPECTED["user_upvotes"](sample, older).index)
    newer_users = set(EXPECTED["user_upvotes"](sample, PARTITION).index)
    assert steps["online/user_upvotes"].metadata["rows_skipped_as_older"] == len(older_users & newer_users)
    for key, fields in newer.items():
        if key.startswith(f"{settings.redis_prefix}:user:".encode()):
            assert client.hgetall(key) == fields


def test_a_missing_column_in_batch_sql_names_the_file_and_feature(spark, registry, tmp_path):
    from assets.registry import RegistryError
    from batch.feature_job import feature_query

    group = registry.groups["user_upvotes"]
    broken = group.model_copy(update={"batch_sql": group.batch_sql.replace(
        "  COUNT(DISTINCT `post_id`) AS `distinct_items_7d`,\n", "")})
    with pytest.raises(RegistryError) as caught:
        feature_query(spark, registry, broken, PARTITION)
    message = str(caught.value)
    assert "features/user_upvotes/batch.sql: features[1].distinct_items_7d" in message
    assert "no output column 'distinct_items_7d'" in message


def test_a_mistyped_column_in_batch_sql_is_refused(spark, registry):
    from assets.registry import RegistryError
    from batch.feature_job import feature_query

    group = registry.groups["user_upvotes"]
    broken = group.model_copy(update={"batch_sql": group.batch_sql.replace(
        "COUNT(*) AS `upvotes_7d`", "CAST(COUNT(*) AS STRING) AS `upvotes_7d`")})
    with pytest.raises(RegistryError, match=r"features\[0\].upvotes_7d: output column 'upvotes_7d' is string, "
                                            r"feature.yaml declares int64"):
        feature_query(spark, registry, broken, PARTITION)


def test_a_missing_raw_partition_fails_the_run_with_the_fix(defs):
    from infra.errors import PlatformError

    with pytest.raises(PlatformError, match=r"raw.upvote_events has no events for ds=2026-03-01"):
        run_partition(defs, "2026-03-01", assets=["raw/upvote_events"])
