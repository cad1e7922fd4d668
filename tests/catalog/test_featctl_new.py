"""`featctl new`: a scaffolded folder loads, passes `featctl check`'s analyses as generated, and computes
the values its starter query promises; bad requests fail with the fix; an existing folder is never touched.

Runs the real CLI entry point in this process on copies of the registry (FP_REGISTRY_DIR). The Flink test
comes first so its validator JVM runs before this module starts the session's Spark.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta, timezone
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from assets.registry import load_registry
from infra.settings import PROJECT_ROOT, load_settings
from orchestration.factory import build_definitions
from orchestration.runs import dagster_instance, run_partition
from quality.pr_check import analyse_batch_queries
from quality.stream_sql import validate_stream_queries
from serving.get_features import build_read_plan, get_features
from serving.online_store import OnlineStore
from tests.conftest import PARTITION, run_featctl
from tests.quality.conftest import copy_registry


@pytest.fixture
def registry_copy(tmp_path):
    """A copy of the project's registry without feature groups: room for new ones."""
    return copy_registry(tmp_path / "assets", ())


@pytest.fixture
def featctl(monkeypatch, capsys, registry_copy):
    """Run `featctl <args>` on the registry copy; returns (exit code, output)."""
    monkeypatch.setenv("FP_REGISTRY_DIR", str(registry_copy))

    def run(*args: str) -> tuple[int, str]:
        return run_featctl(monkeypatch, capsys, *args)

    return run


def test_a_stream_group_is_generated_with_stream_sql_flink_accepts(featctl, registry_copy):
    code, out = featctl("new", "post_upvotes_live", "--entity", "post", "--source", "upvote_events", "--stream",
                        "--owner", "team:feed")
    assert code == 0, out
    folder = registry_copy / "features" / "post_upvotes_live"
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == [
        "batch.sql", "feature.yaml", "stream/source.sql", "stream/transform.sql"]
    group = load_registry(registry_copy).groups["post_upvotes_live"]
    assert group.stream.source_tables == ("upvote_events",)
    assert (group.owner, group.tags, group.freshness) == ("team:feed", {"team": "feed"}, timedelta(minutes=5))
    assert [(f.name, f.aggregate.operation, f.aggregate.window.days) for f in group.features] == [
        ("events_7d", "count", 7), ("events_1d", "count", 1), ("last_event_at", "max", 7)]
    assert group.sources["upvote_events"].window_days == 7  # written by the platform from the longest window
    assert "GROUP BY `post_id`" in group.batch_sql and "streaming/windows.py" in group.stream.transform_sql
    assert "featctl render post_upvotes_live" in out
    assert validate_stream_queries(load_registry(registry_copy)) == []


def test_a_new_group_loads_and_its_query_outputs_the_declared_features(featctl, registry_copy, spark, settings):
    code, out = featctl("new", "author_posts", "--entity", "user", "--source", "post_events")
    assert code == 0, out
    assert "featctl check --update-lock" in out and "make test" in out
    registry = load_registry(registry_copy)
    group = registry.groups["author_posts"]
    assert (group.entity, group.owner, group.version, group.ttl, group.freshness) == (
        "user", "team:community", 1, timedelta(days=30), timedelta(hours=26))
    assert group.sources["post_events"].window_days == 7
    assert [(f.name, f.dtype) for f in group.features] == [
        ("events_7d", "int64"), ("events_1d", "int64"), ("last_event_at", "timestamp")]
    assert "author_id AS user_id" in group.batch_sql

    assert analyse_batch_queries(spark, registry, settings.partitions_start.isoformat()) == []


def _posts_per_author(sample, ds: str) -> pd.DataFrame:
    """What the starter query means, in pandas: posts per author over the 7 days ending with `ds`."""
    last = date.fromisoformat(ds)
    days = sample.days(max(sample.start, last - timedelta(days=6)), last)
    posts = pd.concat([sample.events("post_events", d).assign(ds=d.isoformat()) for d in days], ignore_index=True)
    grouped = posts.groupby("author_id")
    return pd.DataFrame({"events_7d": grouped.size(),
                         "events_1d": grouped["ds"].apply(lambda s: int((s == ds).sum())),
                         "last_event_at": grouped["event_time"].max()})


def test_a_new_group_runs_in_dagster_and_publishes_the_counts_pandas_computes(
        featctl, registry_copy, event_log, settings, sample, redis_client):
    assert featctl("new", "catalog_author_posts", "--entity", "user", "--source", "post_events")[0] == 0
    registry = load_registry(registry_copy)
    steps = {s.asset: s for s in run_partition(build_definitions(registry, settings), PARTITION, None,
                                               ["features/catalog_author_posts", "online/catalog_author_posts"])}
    expected = _posts_per_author(sample, PARTITION)
    assert len(expected) > 10, "the fixture should exercise many authors"
    assert steps["features/catalog_author_posts"].rows == len(expected)
    assert steps["online/catalog_author_posts"].rows == len(expected)

    plan = build_read_plan(registry, settings.redis_prefix, "user", ["catalog_author_posts"])
    for row in get_features(OnlineStore(redis_client), plan, [int(i) for i in expected.index]):
        want = expected.loc[row.entity_id]
        assert row.values["catalog_author_posts.events_7d"] == want["events_7d"]
        assert row.values["catalog_author_posts.events_1d"] == want["events_1d"]
        assert row.values["catalog_author_posts.last_event_at"] == \
            want["last_event_at"].to_pydatetime().replace(tzinfo=timezone.utc)


@pytest.mark.parametrize("args, error", [
    (("User_Posts", "--entity", "user", "--source", "post_events"),
     "error: group name 'User_Posts' is not snake_case (fix: use lowercase letters, digits and _"),
    (("x", "--entity", "usr", "--source", "post_events"),
     "error: unknown entity 'usr' (fix: use one of: post, subreddit, user)"),
    (("x", "--entity", "user", "--source", "comments"),
     "error: unknown source 'comments' (fix: use one of: post_events, upvote_events)"),
    (("x", "--entity", "subreddit", "--source", "upvote_events"),
     "error: source 'upvote_events' has no column for entity 'subreddit' (no entity_keys.subreddit in "
     "upvote_events.yaml) (fix: with upvote_events use an entity of: post, user; for subreddit use a source of: "
     "post_events)"),
    (("x", "--entity", "user", "--source", "post_events", "--owner", "bob"),
     "error: owner 'bob' is neither team:<name> nor an email address (fix: pass --owner team:ranking"),
])
def test_a_bad_request_fails_with_the_fix_and_creates_nothing(featctl, registry_copy, args, error):
    code, out = featctl("new", *args)
    assert code == 1
    assert " ".join(out.split()).startswith(error), out
    assert list((registry_copy / "features").iterdir()) == []


def test_an_existing_group_is_never_overwritten(featctl, tmp_path, monkeypatch):
    root = copy_registry(tmp_path / "with_groups", ("user_upvotes",))
    monkeypatch.setenv("FP_REGISTRY_DIR", str(root))
    folder = root / "features" / "user_upvotes"
    before = {p.relative_to(folder): p.read_text() for p in folder.rglob("*") if p.is_file()}
    code, out = featctl("new", "user_upvotes", "--entity", "user", "--source", "upvote_events")
    assert code == 1
    assert f"error: {folder} already exists; featctl new never overwrites a folder (fix: pick another name, or " \
           "edit that folder)" == " ".join(out.split())
    assert {p.relative_to(folder): p.read_text() for p in folder.rglob("*") if p.is_file()} == before


def test_a_work_in_progress_folder_is_reported_as_taken_not_overwritten(featctl, registry_copy):
    folder = registry_copy / "features" / "user_posts"
    folder.mkdir()
    (folder / "notes.md").write_text("my work in progress")
    code, out = featctl("new", "user_posts", "--entity", "user", "--source", "post_events")
    assert code == 1
    assert f"{folder} already exists; featctl new never overwrites a folder" in " ".join(out.split())
    assert [p.name for p in folder.iterdir()] == ["notes.md"]
    assert (folder / "notes.md").read_text() == "my work in progress"
    assert [p.name for p in (registry_copy / "features").iterdir()] == ["user_posts"], "no staging left behind"


def test_the_code_location_and_featctl_list_read_the_registry_settings_point_at(featctl, registry_copy, tmp_path,
                                                                                monkeypatch):
    assert featctl("new", "author_posts", "--entity", "user", "--source", "post_events")[0] == 0
    monkeypatch.setenv("FP_DATA_DIR", str(tmp_path / "data"))
    code, out = featctl("list")
    assert code == 0, out
    assert "author_posts v1" in out and "events_7d" in out and "never" in out
    assert "user_upvotes" not in out

    env = {**os.environ, "FP_REGISTRY_DIR": str(registry_copy), "FP_DATA_DIR": str(tmp_path / "data")}
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))  # dagster_instance() sets it; restored afterwards
    instance = dagster_instance(load_settings(data_dir=tmp_path / "data"))
    instance.report_runless_asset_event(dg.AssetMaterialization(["online", "author_posts"], partition=PARTITION))
    listed = subprocess.run([str(Path(sys.executable).parent / "featctl"), "list"], env=env, capture_output=True,
                            text=True, check=True)
    assert f"ds={PARTITION} at" in listed.stdout
    loaded = subprocess.run([sys.executable, "-c", "from orchestration.definitions import defs; print(sorted("
                             "k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()))"],
                            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == str(sorted(["raw/post_events", "raw/upvote_events", "features/author_posts",
                                                "online/author_posts", "ingest/post_events", "ingest/upvote_events"]))
