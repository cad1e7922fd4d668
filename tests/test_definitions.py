"""The Dagster code location: loads, lists every group's raw -> features -> online path, carries metadata."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import dagster as dg
import pytest

from orchestration.factory import DAILY_JOB, build_definitions
from infra.settings import PROJECT_ROOT


@pytest.fixture(scope="module")
def graph(registry, settings):
    return build_definitions(registry, settings).resolve_asset_graph()


def test_every_group_has_its_raw_features_online_path(graph, registry):
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    expected = {f"raw/{s}" for s in registry.sources}
    for source in registry.sources.values():  # a streamed source's ingest lands the events raw/<source> loads
        expected.add(f"ingest/{source.name}")
        ingest = graph.get(dg.AssetKey(["ingest", source.name]))
        assert ingest.kinds == {"flink", "ingest"} and ingest.owners == [source.owner]
        assert graph.get(dg.AssetKey(["raw", source.name])).parent_keys == {ingest.key}
    for group in registry.groups.values():
        expected |= {f"features/{group.name}", f"online/{group.name}"}
        if group.stream:
            expected.add(f"stream/{group.name}")
            stream = graph.get(dg.AssetKey(["stream", group.name]))
            assert stream.kinds == {"flink", "redis", "stream"}
            assert stream.parent_keys == {dg.AssetKey(["raw", table]) for table in group.stream.source_tables}
            expected.add(f"history/{group.name}")  # what the stream landed, loaded for training sets
            history = graph.get(dg.AssetKey(["history", group.name]))
            assert history.parent_keys == {dg.AssetKey(["stream", group.name])}
            assert history.metadata["table"] == f"{group.table}_streamed"
        features = graph.get(dg.AssetKey(["features", group.name]))
        assert {k.to_user_string() for k in features.parent_keys} == {f"raw/{s}" for s in group.sources}
        online = graph.get(dg.AssetKey(["online", group.name]))
        assert online.parent_keys == {dg.AssetKey(["features", group.name])}
    expected |= {f"{kind}/{name}" for name in registry.services for kind in ("service", "served")}
    assert keys == expected


def test_a_service_is_an_asset_downstream_of_the_online_groups_it_reads(graph, registry):
    node = graph.get(dg.AssetKey(["service", "ranking"]))
    assert node.parent_keys == {dg.AssetKey(["online", "user_upvotes"]), dg.AssetKey(["online", "user_activity"])}
    assert node.owners == ["team:ranking"] and not node.is_executable
    assert node.description == registry.services["ranking"].description.strip()
    assert [(c.name, c.type) for c in node.metadata["dagster/column_schema"].columns] == [
        ("user_upvotes.upvotes_7d", "int64"), ("user_upvotes.distinct_items_7d", "int64"),
        ("user_upvotes.hours_since_last_upvote", "float64"), ("user_activity.upvotes_total", "int64"),
        ("ranking.upvotes_1d_share", "float64")]
    assert "3. `user_upvotes.hours_since_last_upvote` (float64)" in node.metadata["features"].value
    served = graph.get(dg.AssetKey(["served", "ranking"]))
    assert served.parent_keys == {dg.AssetKey(["service", "ranking"])} and served.kinds == {"spark", "hive", "served"}
    assert served.metadata["dagster/table_name"] == "served.ranking"


def test_assets_carry_owner_schema_sql_and_code_version(graph, registry):
    group = registry.groups["user_upvotes"]
    node = graph.get(dg.AssetKey(["features", "user_upvotes"]))
    assert node.owners == ["team:ranking"]
    assert node.kinds == {"spark", "hive", "features"}  # the engines, and the stage the graph shows
    assert (node.tags["entity"], node.tags["team"]) == ("user", "ranking")
    assert node.metadata["freshness_target"] == "26h"
    assert node.metadata["folder"].value == str(group.folder.resolve())
    assert node.backfill_policy == dg.BackfillPolicy.single_run()
    online = graph.get(dg.AssetKey(["online", "user_upvotes"]))
    assert online.metadata["freshness_target"] == "26h" and online.backfill_policy == dg.BackfillPolicy.single_run()
    assert graph.get(dg.AssetKey(["online", "user_activity"])).metadata["freshness_target"] == "2m"
    schema = node.metadata["dagster/column_schema"]
    assert [c.name for c in schema.columns] == ["user_id", "upvotes_7d", "distinct_items_7d", "upvotes_1d",
                                                 "last_upvote_at", "feature_ts"]
    sql = node.metadata["sql"]
    assert group.batch_sql.strip() in getattr(sql, "value", sql)
    assert node.code_version and node.code_version == graph.get(dg.AssetKey(["online", "user_upvotes"])).code_version


def test_code_version_changes_with_the_folder(registry, settings, tmp_path):
    import shutil

    from assets.registry import DEFAULT_ROOT, load_registry

    root = tmp_path / "assets"
    shutil.copytree(DEFAULT_ROOT, root)
    sql = root / "features/subreddit_activity/batch.sql"
    before = build_definitions(load_registry(root), settings).resolve_asset_graph()
    sql.write_text(sql.read_text() + "\n-- reviewed\n")
    after = build_definitions(load_registry(root), settings).resolve_asset_graph()
    key = dg.AssetKey(["features", "subreddit_activity"])
    assert before.get(key).code_version != after.get(key).code_version
    other = dg.AssetKey(["features", "post_popularity"])
    assert before.get(other).code_version == after.get(other).code_version


def test_the_daily_job_and_schedule_cover_every_asset(registry, settings):
    defs = build_definitions(registry, settings)
    job = defs.resolve_job_def(DAILY_JOB)
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == (
        {f"raw/{s}" for s in registry.sources} | {f"{kind}/{g}" for g in registry.groups for kind in ("features", "online")}
        | {f"served/{s}" for s in registry.services})
    assert [s.name for s in defs.sensors] == ["freshness", *(f"{g.name}_stream_health"
                                                             for g in registry.groups.values() if g.stream),
                                              *(f"{s}_event_log" for s, spec in registry.sources.items() if spec.stream)]
    assert all(defs.resolve_sensor_def(f"{s}_event_log").job_name == DAILY_JOB for s in registry.sources)
    schedule = defs.resolve_schedule_def(f"{DAILY_JOB}_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 * * *", "UTC")
    checks = {k.to_user_string() for k in job.asset_layer.asset_graph.asset_check_keys}
    assert checks == ({f"raw/{s}:contract" for s in registry.sources} | {f"features/{g}:expectations" for g in registry.groups}
                      | {f"online/{g}:freshness" for g in registry.groups} | {f"served/{s}:skew" for s in registry.services})


def test_loading_the_definitions_warns_nothing_of_ours(registry, settings):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_definitions(registry, settings)
    ours = [w for w in caught if str(PROJECT_ROOT) in str(w.filename)]
    assert ours == []


@pytest.mark.slow
def test_dg_check_defs_loads_the_code_location():
    env = {**os.environ, "FP_DATA_DIR": "/tmp/fp-dg-check"}
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "dg"), "check", "defs"],
                            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_the_defs_yaml_component_builds_what_featctl_builds(registry, settings):
    """The code location (defs folder -> FeaturePlatform component) and featctl's build_definitions agree."""
    from orchestration.component import FeaturePlatform

    loaded = dg.load_from_defs_folder(path_within_project=PROJECT_ROOT / "orchestration")
    direct = build_definitions(registry, settings)
    graphs = [d.resolve_asset_graph() for d in (loaded, direct)]
    assert graphs[0].get_all_asset_keys() == graphs[1].get_all_asset_keys()
    assert len(graphs[0].get_all_asset_keys()) == len(registry.sources) + 2 * len(registry.groups) + 2 * sum(
        1 for g in registry.groups.values() if g.stream) + 2 * len(registry.services) + sum(  # stream/ and history/
        1 for s in registry.sources.values() if s.stream)  # ingest/
    assert graphs[0].asset_check_keys == graphs[1].asset_check_keys
    key = dg.AssetKey(["features", "user_upvotes"])
    assert graphs[0].get(key).code_version == graphs[1].get(key).code_version
    assert [(s.name, s.cron_schedule) for s in loaded.schedules] == [(s.name, s.cron_schedule) for s in direct.schedules]
    assert [s.name for s in loaded.sensors] == [s.name for s in direct.sensors]
    assert loaded.resolve_job_def(DAILY_JOB).name == DAILY_JOB and set(loaded.resources) == {"spark", "online_store"}
    defs_yaml = PROJECT_ROOT / "orchestration" / "defs" / "feature_platform" / "defs.yaml"
    assert f"type: {FeaturePlatform.__module__}.{FeaturePlatform.__name__}" in defs_yaml.read_text()


@pytest.mark.slow
def test_dg_list_defs_shows_every_asset_check_schedule_and_sensor(registry, settings):
    env = {**os.environ, "FP_DATA_DIR": "/tmp/fp-dg-check"}
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "dg"), "list", "defs", "--json"],
                            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    listed = json.loads(result.stdout)
    direct = build_definitions(registry, settings)
    graph = direct.resolve_asset_graph()
    assert sorted(a["asset_key"] for a in listed["assets"]) == sorted(k.to_user_string() for k in graph.get_all_asset_keys())
    assert sorted(c["key"] for c in listed["asset_checks"]) == sorted(k.to_user_string() for k in graph.asset_check_keys)
    assert [(s["name"], s["cron_schedule"]) for s in listed["schedules"]] == [(DAILY_JOB + "_schedule", "0 2 * * *")]
    assert sorted(s["name"] for s in listed["sensors"]) == sorted(s.name for s in direct.sensors)
    assert sorted(j["name"] for j in listed["jobs"]) == sorted(
        [DAILY_JOB, *(f"{g.name}_stream_repair" for g in registry.groups.values() if g.stream)])
    upvotes = next(a for a in listed["assets"] if a["asset_key"] == "features/user_upvotes")
    assert upvotes["owners"] == [{"team": "ranking"}] and upvotes["kinds"] == ["features", "hive", "spark"]
