"""The platform's only use of Dagster's private API, each call pinned to the installed version.

1. Backfills as the UI launches them, finished in this process. `featctl backfill` sends the web UI's
   GraphQL `launchPartitionBackfill` mutation (so it is the same kind of backfill on the Backfills page)
   and must settle it before it returns, its runs executing in the caller's process: the local profile's
   embedded Derby metastore admits one JVM, and tests share theirs. Dagster 1.13 offers neither publicly:
   its GraphQL schema executes against a workspace context, and a backfill advances only in the daemon's
   backfill iteration, whose public form, `dagster-daemon run`, also ticks every schedule and sensor
   (which restart stream jobs) and launches each run in a new process, 30 s between iterations. The
   iteration records the runs it submits before they execute here, so a daemon running beside featctl
   (`featctl ui`) sees them in progress and does not submit them again.
2. Per-partition check results: a partitioned check's latest status per partition (the upstream gate)
   and the materialization a result is about (so the UI shows it against that partition) have no
   public API.

tests/operate/test_dagster_internals.py pins these to DAGSTER_VERSION: an upgrade fails there first.
"""

from __future__ import annotations

import importlib
import logging
import sys
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.execution.api import execute_run
from dagster._core.launcher import LaunchRunContext
from dagster._core.launcher.sync_in_memory_run_launcher import SyncInMemoryRunLauncher
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._serdes.config_class import ConfigurableClassData
from dagster._utils.hosted_user_process import recon_job_from_origin

from infra.settings import PROJECT_ROOT

DAGSTER_VERSION = "1.13.27"  # the version these calls were written against; the pinned test checks it
_PROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["dagster"]
CODE_LOCATION_MODULE = _PROJECT["module_name"]  # what `dagster dev` and `dg` load, under the same name
CODE_LOCATION_NAME = _PROJECT["code_location_name"]

Workspace = WorkspaceProcessContext


class DeferredRunLauncher(SyncInMemoryRunLauncher):
    """Dagster's synchronous in-process launcher, holding each launched run until `execute_launched()`.

    The backfill iteration records the runs it submitted only after submitting them; executing them
    afterwards keeps a minutes-long run from running before the backfill says it was requested.
    """

    def __init__(self, inst_data: ConfigurableClassData | None = None):
        super().__init__(inst_data=inst_data)
        self._launched: list[LaunchRunContext] = []

    def launch_run(self, context: LaunchRunContext) -> None:
        """Hold the run (status STARTING) for `execute_launched`."""
        self._launched.append(context)

    def execute_launched(self) -> None:
        """Execute every held run here, oldest first, as Dagster's own synchronous launcher does."""
        while self._launched:
            context = self._launched.pop(0)
            execute_run(recon_job_from_origin(context.job_code_origin), context.dagster_run, self._instance)


# Submitted runs go straight to the launcher (no queue), which executes them in this process.
RUN_COORDINATOR = ConfigurableClassData("dagster._core.run_coordinator", "DefaultRunCoordinator", "{}")
RUN_LAUNCHER = ConfigurableClassData(__name__, DeferredRunLauncher.__name__, "{}")


class DagsterCallError(RuntimeError):
    """A GraphQL request or backfill iteration failed with an error of Dagster's own (a bug, not a failed step)."""


def runs_in_this_process(instance: dg.DagsterInstance) -> dg.DagsterInstance:
    """The same storage as `instance` (runs, events, backfills), launching submitted runs here and now."""
    ref = instance.get_ref()._replace(run_coordinator_data=RUN_COORDINATOR, run_launcher_data=RUN_LAUNCHER)
    return dg.DagsterInstance.from_ref(ref)


@contextmanager
def in_process_workspace(instance: dg.DagsterInstance) -> Iterator[Workspace]:
    """The platform's code location, loaded afresh in this process (the registry and settings as they are now).

    Runs the workspace submits go to `instance`'s storage and execute synchronously in this process.
    """
    module = sys.modules.get(CODE_LOCATION_MODULE)
    if module is not None:
        importlib.reload(module)  # as the web UI's "reload": the definitions of the current registry
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name=CODE_LOCATION_MODULE, attribute="defs", working_directory=str(PROJECT_ROOT)),
        location_name=CODE_LOCATION_NAME)
    local = runs_in_this_process(instance)
    try:
        with WorkspaceProcessContext(local, InProcessWorkspaceLoadTarget(origin)) as context:
            yield context
    finally:
        local.dispose()


def execute_graphql(workspace: Workspace, query: str, variables: Mapping[str, object] | None = None) -> dict:
    """The `data` of a query or mutation of Dagster's GraphQL API (what the web UI sends) against `workspace`."""
    from dagster_graphql.cli import execute_query  # GraphQL and the daemon load here, not with the definitions

    result = execute_query(workspace, query, dict(variables or {}))
    if result.get("errors"):
        raise DagsterCallError("; ".join(e.get("message", str(e)) for e in result["errors"]))
    return result["data"]


def advance_backfill(workspace: Workspace, backfill_id: str, logger: logging.Logger) -> None:
    """One iteration of the daemon's backfill loop for this backfill only: submit its next runs, or settle it.

    The runs it submitted execute (here) before this returns. Other backfills (e.g. launched from the UI)
    are left to the daemon.
    """
    from dagster._daemon.backfill import execute_backfill_jobs

    backfill = workspace.instance.get_backfill(backfill_id)
    for error in execute_backfill_jobs(workspace, logger, [backfill]):
        if error is not None:
            raise DagsterCallError(f"backfill {backfill_id}: {error.to_string()}")
    workspace.instance.run_launcher.execute_launched()


def failed_check_partitions(instance: dg.DagsterInstance, check: dg.AssetCheckKey, partitions: list[str] | None
                            ) -> set[str]:
    """The partitions (all when None) whose latest execution of `check` failed: one query to the instance."""
    infos = instance.event_log_storage.get_asset_check_partition_info([check], partition_keys=partitions)
    return {info.partition_key for info in infos
            if info.latest_execution_status == AssetCheckExecutionRecordStatus.FAILED and info.partition_key}


def check_target(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str
                 ) -> AssetCheckEvaluationTargetMaterializationData | None:
    """The latest materialization of the partition a check result is about, so the UI shows it against that one."""
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]),
                                              limit=1).records
    if not records:
        return None
    return AssetCheckEvaluationTargetMaterializationData(storage_id=records[0].storage_id,
                                                         run_id=records[0].run_id, timestamp=records[0].timestamp)
