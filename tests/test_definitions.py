"""The Dagster code location: loads, lists every group's raw -> features -> online path, carries metadata."""

from __future__ import annotations

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
    for group in registry.groups.values():
        expected |= {f"features/{group.name}", f"online/{group.name}"}
        if group.stream:
            expected.add(f"stream/{group.name}")
            stream = graph.get(dg.AssetKey(["stream", group.name]))
            assert stream.kinds == {"flink", "redis"}
            assert stream.parent_keys == {dg.AssetKey(["raw", group.stream.source_table])}
        features = graph.get(dg.AssetKey(["features", group.name]))
        assert {k.to_user_string() for k in features.parent_keys} == {f"raw/{s}" for s in group.sources}
        online = graph.get(dg.AssetKey(["online", group.name]))
        assert online.parent_keys == {dg.AssetKey(["features", group.name])}
    assert keys == expected


def test_assets_carry_owner_schema_sql_and_code_version(graph, registry):
    group = registry.groups["user_upvotes"]
    node = graph.get(dg.AssetKey(["features", "user_upvotes"]))
    assert node.owners == ["team:ranking"]
    assert node.kinds == {"spark", "hive"}
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
    sql = root / "features/user_upvotes/batch.sql"
    before = build_definitions(load_registry(root), settings).resolve_asset_graph()
    sql.write_text(sql.read_text() + "\n-- reviewed\n")
    after = build_definitions(load_registry(root), settings).resolve_asset_graph()
    key = dg.AssetKey(["features", "user_upvotes"])
    assert before.get(key).code_version != after.get(key).code_version
    other = dg.AssetKey(["features", "post_popularity"])
    assert before.get(other).code_version == after.get(other).code_version


def test_the_daily_job_and_schedule_cover_every_asset(registry, settings):
    defs = build_definitions(registry, settings)
    job = defs.resolve_job_def(DAILY_JOB)
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == (
        {f"raw/{s}" for s in registry.sources} | {f"{kind}/{g}" for g in registry.groups for kind in ("features", "online")})
    assert [s.name for s in defs.sensors] == ["freshness", *(f"{g.name}_stream_health"
                                                             for g in registry.groups.values() if g.stream)]
    schedule = defs.resolve_schedule_def(f"{DAILY_JOB}_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 * * *", "UTC")
    checks = {k.to_user_string() for k in job.asset_layer.asset_graph.asset_check_keys}
    assert checks == ({f"raw/{s}:contract" for s in registry.sources} | {f"features/{g}:expectations" for g in registry.groups}
                      | {f"online/{g}:freshness" for g in registry.groups})


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
