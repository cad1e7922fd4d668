"""Freshness: a group whose last update is older than its feature.yaml target is reported stale."""

from __future__ import annotations

import shutil
import time
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from assets.registry import DEFAULT_ROOT, RegistryError, load_registry
from orchestration.factory import build_definitions
from orchestration.freshness import SENSOR_NAME, group_freshness
from orchestration.resources import OnlineStoreResource
from serving.online_store import OnlineStore, WritePlan, connect


@pytest.fixture
def instance(tmp_path):
    """An instance of the test's own: publishes are recorded in it as materializations."""
    with dg.instance_for_test(temp_dir=str(tmp_path)) as own:
        yield own


@pytest.fixture
def online_store(settings, redis_client):
    return OnlineStoreResource(url=settings.redis_url, local_dir=str(settings.data_dir / "redis"),
                               prefix=settings.redis_prefix)


def _publish(instance: dg.DagsterInstance, group: str, ds: str) -> datetime:
    """Record a publish of partition `ds` of `online/<group>` (as a run would) and return its time."""
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=["online", group], partition=ds))
    record = instance.fetch_materializations(dg.AssetKey(["online", group]), limit=1).records[0]
    return datetime.fromtimestamp(record.timestamp, timezone.utc)


def test_a_publish_older_than_the_target_is_stale(registry, instance, online_store):
    group = registry.groups["user_upvotes"]
    assert group.freshness == timedelta(hours=26)
    published = _publish(instance, "user_upvotes", "2026-01-09")
    fresh = group_freshness(instance, registry, group, online_store, now=published + timedelta(hours=25))
    assert fresh.passed
    assert fresh.description.startswith("user_upvotes is fresh: last updated at")
    assert "the publish of ds=2026-01-09" in fresh.description
    stale = group_freshness(instance, registry, group, online_store, now=published + timedelta(hours=27))
    assert not stale.passed
    assert stale.description.endswith("by the publish of ds=2026-01-09, more than its freshness target 26h ago")
    assert stale.metadata()["age_seconds"].value == pytest.approx(27 * 3600)


def test_a_backfill_of_older_days_does_not_make_a_group_fresh(registry, instance, online_store):
    group = registry.groups["user_upvotes"]
    newest = _publish(instance, "user_upvotes", "2026-01-09")
    _publish(instance, "user_upvotes", "2026-01-02")  # published later, but an older day
    state = group_freshness(instance, registry, group, online_store, now=newest + timedelta(hours=26, seconds=1))
    assert (state.passed, state.newest_partition, state.published_at) == (False, "2026-01-09", newest)


def test_the_streams_last_write_counts_as_an_update(registry, settings, instance, online_store, redis_client):
    group = registry.groups["user_activity"]  # freshness 2m, kept fresh by its Flink stream
    _publish(instance, "user_activity", "2026-01-09")
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    assert not group_freshness(instance, registry, group, online_store, now=later).passed
    store = OnlineStore(connect(settings.redis_url))
    plan = WritePlan.for_group(group, registry.entity_of(group), settings.redis_prefix)
    store.record_progress(plan, rows=10, landed=10, max_event_micros=0,
                          now_ms=int((later - timedelta(seconds=30)).timestamp() * 1000))
    store.client.close()
    state = group_freshness(instance, registry, group, online_store, now=later)
    assert state.passed and "by its stream" in state.description


def test_the_sensor_marks_stale_and_never_published_groups_in_the_ui(registry, settings, instance, redis_client):
    tiny = registry.groups["user_upvotes"].model_copy(update={"freshness": timedelta(seconds=1)})
    small = type(registry)(root=registry.root, entities=registry.entities, sources=registry.sources,
                           groups={**registry.groups, "user_upvotes": tiny})
    defs = build_definitions(small, settings)
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    _publish(instance, "user_upvotes", "2026-01-09")
    _publish(instance, "subreddit_activity", "2026-01-09")
    time.sleep(1.5)
    context = dg.build_sensor_context(instance=instance, definitions=defs,
                                      resources={"online_store": defs.resources["online_store"]})
    result = sensor.evaluate_tick(context)
    results = {e.asset_key.to_user_string(): e for e in result.asset_events}
    assert set(results) == {f"online/{g}" for g in registry.groups}
    assert all(e.check_name == "freshness" and e.severity == dg.AssetCheckSeverity.WARN for e in results.values())
    assert results["online/subreddit_activity"].passed
    assert not results["online/user_upvotes"].passed
    assert "user_upvotes is stale" in results["online/user_upvotes"].description
    assert "more than its freshness target 1s ago" in results["online/user_upvotes"].description
    assert results["online/post_popularity"].description == ("post_popularity has never been published "
                                                             "(freshness target 26h)")
    again = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs, cursor=result.cursor,
                                                         resources={"online_store": defs.resources["online_store"]}))
    assert again.asset_events == []  # nothing changed: nothing new to record


def test_a_group_without_a_freshness_target_is_a_registry_error(tmp_path):
    root = tmp_path / "assets"
    shutil.copytree(DEFAULT_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    spec = root / "features" / "user_upvotes" / "feature.yaml"
    spec.write_text("".join(line for line in spec.read_text().splitlines(keepends=True)
                            if not line.startswith("freshness:")))
    with pytest.raises(RegistryError, match=r"user_upvotes/feature.yaml: freshness: missing: how old the group's "
                                            r"online values may get") as caught:
        load_registry(root)
    assert "freshness: 26h" in caught.value.fix
