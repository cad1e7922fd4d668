"""The platform's only private Dagster calls (orchestration/dagster_internals.py), pinned to the installed version.

An upgrade of Dagster fails here first, naming what to re-verify, instead of breaking backfills or the
upstream gate silently. The behaviour itself is covered by tests/operate/test_backfill.py and
tests/quality/test_gate.py.
"""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import version

import dagster as dg

from orchestration import dagster_internals


def test_dagster_is_the_version_the_private_calls_were_written_against():
    installed = {name: version(name) for name in ("dagster", "dagster-graphql")}
    assert installed == {"dagster": dagster_internals.DAGSTER_VERSION,
                         "dagster-graphql": dagster_internals.DAGSTER_VERSION}, (
        f"Dagster is now {installed}: re-verify every call in orchestration/dagster_internals.py against it "
        "(run tests/operate/test_backfill.py and tests/quality/test_gate.py), then update DAGSTER_VERSION")


def test_the_private_names_have_the_shapes_the_module_uses():
    from dagster._core.execution.api import execute_run
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.launcher import LaunchRunContext
    from dagster._core.run_coordinator import DefaultRunCoordinator
    from dagster._daemon.backfill import execute_backfill_jobs
    from dagster_graphql.cli import execute_query

    assert list(inspect.signature(execute_backfill_jobs).parameters)[:3] == [
        "workspace_process_context", "logger", "backfill_jobs"]
    assert list(inspect.signature(execute_query).parameters) == ["workspace_process_context", "query", "variables"]
    assert {"run_coordinator_data", "run_launcher_data"} <= set(InstanceRef._fields)
    assert list(inspect.signature(execute_run).parameters)[:3] == ["job", "dagster_run", "instance"]
    assert {"dagster_run", "job_code_origin"} <= {n for n in dir(LaunchRunContext) if not n.startswith("_")}
    for data, cls in ((dagster_internals.RUN_LAUNCHER, dagster_internals.DeferredRunLauncher),
                      (dagster_internals.RUN_COORDINATOR, DefaultRunCoordinator)):
        assert getattr(importlib.import_module(data.module_name), data.class_name) is cls
    target = dagster_internals.AssetCheckEvaluationTargetMaterializationData(storage_id=7, run_id="r", timestamp=1.5)
    assert (target.storage_id, target.run_id, target.timestamp) == (7, "r", 1.5)
    assert dagster_internals.AssetCheckExecutionRecordStatus.FAILED.value == "FAILED"


def test_an_instance_launching_runs_here_shares_the_storage(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(["raw", "upvote_events"], partition="2026-01-09"))
        local = dagster_internals.runs_in_this_process(instance)
        try:
            from dagster._core.run_coordinator import DefaultRunCoordinator

            assert isinstance(local.run_launcher, dagster_internals.DeferredRunLauncher)
            assert isinstance(local.run_coordinator, DefaultRunCoordinator)  # submitted runs launch at once
            assert local.get_materialized_partitions(dg.AssetKey(["raw", "upvote_events"])) == {"2026-01-09"}
        finally:
            local.dispose()
