"""Windowed values leave their window: an entity that goes quiet gets its empty values (0 for counts, null
for the latest time) from the first partition whose window holds none of its events, in the offline table,
in Redis and in training sets.

The tiny sample keeps every user busy every week, so this runs on a sparse site of its own (thousands of
users, few upvotes each) in its own raw tables, and checks every partition of ten days against a ground
truth computed in pandas straight from the events (tests/reference.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from assets.registry import load_registry
from batch.feature_job import materialize_partitions
from batch.publish import publish_range
from eventlog.generator import DomainSize, RedditSample
from eventlog.hive import write_raw_partitions
from offline.training_set import training_set_pandas
from serving.get_features import build_read_plan, get_features
from serving.online_store import OnlineStore, connect
from tests.conftest import START
from tests.quality.conftest import copy_registry
from tests.reference import subreddit_activity, user_upvotes

pytestmark = pytest.mark.slow
SPARSE = DomainSize(users=4_000, subreddits=150, posts_per_day=40, upvotes_per_day=1_200)
DAYS = [(START + timedelta(days=k)).isoformat() for k in range(10)]
GROUPS = {"win_user_upvotes": ("user_upvotes", user_upvotes), "win_subreddit_activity": ("subreddit_activity",
                                                                                           subreddit_activity)}
PREFIX = "win"


@pytest.fixture(scope="module")
def sparse():
    return RedditSample(start=START, size=SPARSE, seed=21)


@pytest.fixture(scope="module")
def window_registry(tmp_path_factory):
    """The two windowed groups under their own names, reading the raw tables `win_raw.*`."""
    root = copy_registry(tmp_path_factory.mktemp("windows") / "assets", ("user_upvotes", "subreddit_activity"))
    for source in (root / "sources").glob("*.yaml"):
        source.write_text(source.read_text().replace("table: raw.", "table: win_raw."))
    for name, (original, _reference) in GROUPS.items():
        sql = root / "features" / original / "batch.sql"
        sql.write_text(sql.read_text().replace("raw.", "win_raw."))
        (root / "features" / original).rename(root / "features" / name)
    return load_registry(root)


@pytest.fixture(scope="module")
def published(spark, window_registry, sparse, redis_url):
    """Ten days of the sparse site computed oldest first and published to Redis, as a backfill does."""
    for source in window_registry.sources.values():
        write_raw_partitions(spark, source, ((ds, sparse.events(source.name, datetime.fromisoformat(ds).date()))
                                             for ds in DAYS))
    for name in GROUPS:
        group = window_registry.groups[name]
        materialize_partitions(spark, window_registry, group, DAYS)
        publish_range(spark, window_registry, group, DAYS[0], DAYS[-1], redis_url, PREFIX)
    return OnlineStore(connect(redis_url))


def _partition(spark, registry, group_name: str, ds: str) -> pd.DataFrame:
    group = registry.groups[group_name]
    key = registry.entity_of(group).key
    frame = spark.table(group.table).where(f"ds = '{ds}'").toPandas().set_index(key)
    return frame.drop(columns=["ds", "feature_ts"])


def _equal(got, wanted) -> bool:
    if pd.isna(wanted):
        return pd.isna(got)
    return got == wanted


@pytest.mark.parametrize("group_name", sorted(GROUPS))
def test_every_partition_equals_the_ground_truth_including_entities_that_left(published, spark, window_registry,
                                                                           sparse, group_name):
    _original, reference = GROUPS[group_name]
    left_in_all = 0
    for ds in DAYS:
        expected = reference(sparse, ds)
        got = _partition(spark, window_registry, group_name, ds)
        assert set(got.index) == set(expected.index), ds
        for entity, row in expected.iterrows():
            for feature, wanted in row.items():
                assert _equal(got.at[entity, feature], wanted), (ds, entity, feature, got.at[entity, feature], wanted)
        counts = [c for c in expected.columns if c.endswith(("_7d", "_1d")) and expected[c].dtype.kind == "i"]
        left_in_all += int((expected[counts] == 0).all(axis=1).sum())
    assert left_in_all > 20, "the sparse site should have entities leaving their windows"


def _quiet_user(sparse) -> tuple[int, str]:
    """A user whose last upvote falls early enough that its 7-day window empties within the ten days."""
    for ds in DAYS[7:]:
        before, now = user_upvotes(sparse, DAYS[DAYS.index(ds) - 1]), user_upvotes(sparse, ds)
        left = now[(now["upvotes_7d"] == 0) & (before.reindex(now.index)["upvotes_7d"] > 0)]
        later = [user_upvotes(sparse, d) for d in DAYS[DAYS.index(ds) + 1:]]
        for user in left.index:
            if all(user not in frame.index or frame.at[user, "upvotes_7d"] == 0 for frame in later):
                return int(user), ds
    raise AssertionError("no user goes quiet in the sparse site")


def test_a_quiet_user_reads_zero_online_and_in_training_sets(published, spark, window_registry, sparse):
    store = published
    user, emptied = _quiet_user(sparse)
    end_of = lambda ds: datetime.fromisoformat(ds).replace(tzinfo=timezone.utc) + timedelta(days=1)  # noqa: E731
    plan = build_read_plan(window_registry, PREFIX, "user", ["win_user_upvotes"])
    row = get_features(store, plan, [user])[0]
    assert row.values == {"win_user_upvotes.upvotes_7d": 0, "win_user_upvotes.distinct_items_7d": 0,
                          "win_user_upvotes.upvotes_1d": 0, "win_user_upvotes.last_upvote_at": None}
    assert row.event_times["win_user_upvotes.upvotes_7d"] == end_of(emptied)

    day_before = DAYS[DAYS.index(emptied) - 1]
    busy = user_upvotes(sparse, day_before).loc[user]
    observations = pd.DataFrame({"user_id": [user, user, user],
                                 "event_time": [end_of(day_before) + timedelta(hours=1),
                                                end_of(emptied) + timedelta(hours=1),
                                                end_of(DAYS[-1]) + timedelta(hours=1)]})
    joined = training_set_pandas(spark, window_registry, observations, ["win_user_upvotes"]).to_pandas()
    assert joined["win_user_upvotes__upvotes_7d"].tolist() == [busy["upvotes_7d"], 0, 0]
    assert joined["win_user_upvotes__distinct_items_7d"].tolist() == [busy["distinct_items_7d"], 0, 0]
