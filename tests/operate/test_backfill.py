"""Backfills: Dagster backfills (launched through GraphQL, advanced by the daemon's iteration); re-running one changes nothing."""

from __future__ import annotations

import re
from datetime import date

import dagster as dg
import pytest

from infra.errors import PlatformError
from orchestration.backfills import (
    LAUNCH,
    AssetPartitions,
    backfill_assets,
    backfill_days,
    backfill_state,
    finish_backfill,
    run_backfill,
)
from orchestration.dagster_internals import execute_graphql, in_process_workspace
from orchestration.runs import dagster_instance
from tests.conftest import run_featctl
from tests.quality.conftest import copy_registry

DAYS = ["2026-01-08", "2026-01-09", "2026-01-10"]

# What the Backfills page asks for: every backfill with its status and each asset's partition counts.
BACKFILLS_PAGE = """
query Backfills {
  partitionBackfillsOrError {
    ... on PartitionBackfills {
      results {
        id status isAssetBackfill title
        assetBackfillData { assetBackfillStatuses { ... on AssetPartitionsStatusCounts {
          assetKey { path } numPartitionsTargeted numPartitionsMaterialized numPartitionsFailed } } }
      }
    }
  }
}"""


@pytest.fixture
def code_location_env(monkeypatch, settings):
    """The environment the code location reads its settings from (as under dagster dev): the test session's."""
    monkeypatch.setenv("FP_PROFILE", "local")
    monkeypatch.setenv("FP_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("FP_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("FP_PARTITIONS_START", settings.partitions_start.isoformat())
    monkeypatch.delenv("FP_REGISTRY_DIR", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home))  # featctl's dagster_instance() sets it


def _redis_snapshot(client) -> dict[bytes, dict[bytes, bytes]]:
    return {key: client.hgetall(key) for key in sorted(client.scan_iter())}


def _check_results(instance: dg.DagsterInstance, run_ids: list[str]) -> dict[tuple[str, str | None], bool]:
    results = {}
    for run_id in run_ids:
        for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records:
            evaluation = record.event_log_entry.dagster_event.event_specific_data
            results[(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}", evaluation.partition)] = (
                evaluation.passed)
    return results


def _backfills_page(instance: dg.DagsterInstance) -> dict[str, dict]:
    """The Backfills page's rows by id: status, title and each asset's (targeted, materialized, failed) partitions."""
    with in_process_workspace(instance) as workspace:
        rows = execute_graphql(workspace, BACKFILLS_PAGE)["partitionBackfillsOrError"]["results"]
    return {row["id"]: {
        "status": row["status"], "asset_backfill": row["isAssetBackfill"], "title": row["title"],
        "partitions": {"/".join(s["assetKey"]["path"]): (s["numPartitionsTargeted"], s["numPartitionsMaterialized"],
                                                         s["numPartitionsFailed"])
                       for s in row["assetBackfillData"]["assetBackfillStatuses"]}} for row in rows}


@pytest.mark.slow
def test_a_3_day_backfill_materializes_3_partitions_per_group_and_a_rerun_changes_nothing(
        registry, settings, event_log, redis_client, tmp_path, code_location_env):
    assets = backfill_assets(registry)
    seen = []
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        first = run_backfill(instance, DAYS, assets, progress=lambda done, total: seen.append((done, total)))
        assert first.error is None and first.status == "COMPLETED_SUCCESS"
        assert seen[-1] == (len(DAYS) * len(assets), len(DAYS) * len(assets))

        assert first.run_ids
        for run_id in first.run_ids:
            run = instance.get_run_by_id(run_id)
            assert run.status == dg.DagsterRunStatus.SUCCESS
            assert run.tags["dagster/backfill"] == first.backfill_id
            assert (run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"]) == (
                DAYS[0], DAYS[-1])
        for group in registry.groups:
            for kind in ("features", "online"):
                key = dg.AssetKey([kind, group])
                assert instance.get_materialized_partitions(key) == set(DAYS)
                for ds in DAYS:
                    [record] = instance.fetch_materializations(
                        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[ds]), limit=5).records
                    assert record.run_id in first.run_ids

        features = next(s for s in first.steps if s.asset == "features/user_upvotes")
        assert sorted(features.metadata["rows_by_partition"]) == DAYS
        assert features.metadata["rows"] == sum(features.metadata["rows_by_partition"].values()) > 0
        rendered = features.metadata[f"sql (ds={DAYS[-1]})"]
        assert f"'{DAYS[-1]}'" in rendered and "{{ ds }}" not in rendered

        checks = _check_results(instance, first.run_ids)
        for group in registry.groups:
            assert [checks[(f"features/{group}:expectations", ds)] for ds in DAYS] == [True, True, True]
        assert [checks[("raw/upvote_events:contract", ds)] for ds in DAYS] == [True, True, True]
        assert all(checks[(f"online/{group}:freshness", None)] for group in registry.groups)

        assert first.state.title == f"featctl backfill {DAYS[0]}..{DAYS[-1]}"
        assert first.state.assets == {a: AssetPartitions(targeted=len(DAYS), in_progress=0, materialized=len(DAYS),
                                                         failed=0) for a in assets}

        before = _redis_snapshot(redis_client)
        assert any(key.startswith(b"fp:") for key in before) and len(before) > 10
        second = run_backfill(instance, DAYS, assets)
        assert second.status == "COMPLETED_SUCCESS" and second.backfill_id != first.backfill_id
        assert _redis_snapshot(redis_client) == before
        read = [{s.asset: s.metadata["rows"] for s in run.steps if s.asset.startswith("online/")} for run in (first, second)]
        assert read[0] == read[1] and set(read[0]) == {f"online/{g}" for g in registry.groups}
        page = _backfills_page(instance)
        assert set(page) == {first.backfill_id, second.backfill_id}
        assert all(row["status"] == "COMPLETED_SUCCESS" and row["asset_backfill"] for row in page.values())


@pytest.mark.slow
def test_featctl_and_ui_backfills_are_alike_on_the_backfills_page_and_reruns_leave_redis_byte_identical(
        registry, settings, event_log, redis_client, monkeypatch, capsys, code_location_env):
    assets = ["features/user_upvotes", "online/user_upvotes", "raw/upvote_events"]
    instance = dagster_instance(settings)
    args = ("backfill", "--start", DAYS[0], "--end", DAYS[-1], "--group", "user_upvotes")

    def featctl_backfill() -> str:
        code, out = run_featctl(monkeypatch, capsys, *args)
        assert code == 0, out
        [backfill_id] = re.findall(r"Backfills page as (\S+)", out)
        assert f"backfill {backfill_id}: COMPLETED_SUCCESS" in " ".join(out.split())
        return backfill_id

    def ui_backfill() -> str:
        """The UI's launch of features and online for the range, settled as the daemon settles it."""
        params = {"assetSelection": [{"path": ["features", "user_upvotes"]}, {"path": ["online", "user_upvotes"]}],
                  "partitionNames": DAYS, "fromFailure": False, "tags": []}
        with in_process_workspace(instance) as workspace:
            launched = execute_graphql(workspace, LAUNCH, {"backfillParams": params})["launchPartitionBackfill"]
            assert launched["__typename"] == "LaunchBackfillSuccess", launched
            assert backfill_state(workspace, launched["backfillId"]).status == "REQUESTED"  # what the daemon picks up
            assert finish_backfill(workspace, launched["backfillId"]).status == "COMPLETED_SUCCESS"
        return launched["backfillId"]

    from_featctl = featctl_backfill()
    published = _redis_snapshot(redis_client)
    assert any(b"user_upvotes:v1:upvotes_7d" in fields for fields in published.values())
    from_ui = ui_backfill()
    assert _redis_snapshot(redis_client) == published
    again = [featctl_backfill(), ui_backfill()]
    assert _redis_snapshot(redis_client) == published

    page = _backfills_page(instance)
    for backfill_id in (from_featctl, again[0]):
        assert page[backfill_id]["status"] == "COMPLETED_SUCCESS" and page[backfill_id]["asset_backfill"]
        assert page[backfill_id]["partitions"] == {a: (len(DAYS), len(DAYS), 0) for a in assets}
    for backfill_id in (from_ui, again[1]):
        assert page[backfill_id]["status"] == "COMPLETED_SUCCESS" and page[backfill_id]["asset_backfill"]
        assert page[backfill_id]["partitions"] == {a: (len(DAYS), len(DAYS), 0) for a in assets if a != "raw/upvote_events"}
    for backfill_id in (from_featctl, from_ui, *again):
        runs = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert runs and all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in runs)


def test_backfill_ranges_are_checked(settings):
    assert backfill_days(settings, date(2026, 1, 8), date(2026, 1, 10)) == DAYS
    with pytest.raises(PlatformError, match="--end 2026-01-07 is before --start 2026-01-08"):
        backfill_days(settings, date(2026, 1, 8), date(2026, 1, 7))
    with pytest.raises(PlatformError, match="--start 2025-12-31 is before the first partition 2026-01-01"):
        backfill_days(settings, date(2025, 12, 31), date(2026, 1, 2))
    with pytest.raises(PlatformError, match="is not a complete day yet"):
        backfill_days(settings, date(2026, 1, 8), date(2999, 1, 1))


def test_backfill_assets_are_the_groups_sources_features_and_publishes(registry):
    assert backfill_assets(registry, ["user_upvotes"]) == ["features/user_upvotes", "online/user_upvotes",
                                                            "raw/upvote_events"]
    with pytest.raises(PlatformError, match="unknown feature group 'nope'"):
        backfill_assets(registry, ["nope"])


@pytest.mark.slow
def test_one_bad_day_in_a_backfill_blocks_the_ranges_publish_and_the_backfill_fails(
        registry, settings, event_log, redis_client, tmp_path, monkeypatch, code_location_env):
    root = copy_registry(tmp_path / "assets", ("subreddit_activity",))  # hand-written SQL, so it can have a bug
    folder = (root / "features" / "subreddit_activity").rename(root / "features" / "ranged_activity")
    sql = folder / "batch.sql"  # a bug that shows on one day only: negative daily counts on 2026-01-09
    old = "COUNT(*)                                          AS upvotes_1d"
    assert old in sql.read_text()
    sql.write_text(sql.read_text().replace(old, "COUNT(*) - IF('{{ ds }}' = '2026-01-09', 100000, 0) AS upvotes_1d"))
    monkeypatch.setenv("FP_REGISTRY_DIR", str(root))  # the code location loads this registry
    assets = ["raw/post_events", "raw/upvote_events", "features/ranged_activity", "online/ranged_activity"]
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        result = run_backfill(instance, DAYS, assets)
        assert isinstance(result.error, PlatformError)
        assert re.search(r"partition 2026-01-08..2026-01-10: step .*ranged_activity.* failed", str(result.error))
        assert "features/ranged_activity:expectations ds=2026-01-09" in str(result.error)
        checks = _check_results(instance, result.run_ids)
        assert [checks[("features/ranged_activity:expectations", ds)] for ds in DAYS] == [True, False, True]
        assert instance.get_materialized_partitions(dg.AssetKey(["features", "ranged_activity"])) == set(DAYS)
        assert instance.get_materialized_partitions(dg.AssetKey(["online", "ranged_activity"])) == set()
        assert result.status == "COMPLETED_FAILED"
        assert result.state.assets["online/ranged_activity"].failed == len(DAYS)
        assert result.state.assets["features/ranged_activity"].materialized == len(DAYS)
        assert _backfills_page(instance)[result.backfill_id]["status"] == "COMPLETED_FAILED"
    assert not any(b"ranged_activity" in field for key in redis_client.scan_iter() for field in redis_client.hkeys(key))
