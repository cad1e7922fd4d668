"""Backfills as Dagster runs them: launched through its GraphQL API, advanced by its daemon's iteration.

`featctl backfill` sends the web UI's `launchPartitionBackfill` mutation for exactly the range's
partitions of the chosen assets (not the later partitions whose windows read them, which a UI
selection of `raw/` assets adds), then runs the daemon's backfill iteration for that backfill until it
is settled, each run executing in this process. Every asset has a single-run backfill policy, so the
range is one run per layer Dagster can run together, Spark doing every day of it in one session. A
featctl backfill and a UI backfill are the same kind of record: the Backfills page lists both with
their runs and each asset's partitions (targeted, materialized, failed), and the daemon of `featctl ui`
never picks a finished one up again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import dagster as dg

from assets.registry import Registry
from infra.errors import PlatformError
from infra.settings import Settings
from orchestration.dagster_internals import (
    Workspace,
    advance_backfill,
    execute_graphql,
    in_process_workspace,
)
from orchestration.runs import QUIET_LOGS, StepSummary, failed_checks_summary, step_error, step_summary

BACKFILL_TAG = "dagster/backfill"  # the tag Dagster puts on every run of a backfill
TERMINAL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
MAX_ITERATIONS = 50  # a settled backfill needs one per layer of runs and one more; more means it is stuck

LAUNCH = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}"""

STATUS = """
query BackfillStatus($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill {
      id status title
      assetBackfillData {
        assetBackfillStatuses {
          ... on AssetPartitionsStatusCounts {
            assetKey { path } numPartitionsTargeted numPartitionsInProgress numPartitionsMaterialized
            numPartitionsFailed
          }
        }
      }
    }
    ... on Error { message }
  }
}"""


def backfill_assets(registry: Registry, groups: Sequence[str] = ()) -> list[str]:
    """The assets a backfill of `groups` (default: all) runs: their sources, feature tables and publishes."""
    selected = [registry.group(g) for g in groups] or list(registry.groups.values())
    return sorted({f"raw/{s}" for g in selected for s in g.sources}
                  | {f"{kind}/{g.name}" for g in selected for kind in ("features", "online")})


def backfill_days(settings: Settings, start: date, end: date) -> list[str]:
    """The partitions start..end, or an error when the range is empty or outside the daily partitions."""
    if end < start:
        raise PlatformError(f"--end {end} is before --start {start}", "give the first day first")
    if start < settings.partitions_start:
        raise PlatformError(f"--start {start} is before the first partition {settings.partitions_start}",
                            "start later, or set FP_PARTITIONS_START earlier")
    last_complete = datetime.now(timezone.utc).date() - timedelta(days=1)
    if end > last_complete:
        raise PlatformError(f"--end {end} is not a complete day yet (the last one is {last_complete})",
                            f"end at {last_complete} or earlier")
    return [(start + timedelta(days=k)).isoformat() for k in range((end - start).days + 1)]


@dataclass(frozen=True)
class AssetPartitions:
    """One asset's partitions in a backfill, as the Backfills page counts them."""

    targeted: int
    in_progress: int
    materialized: int
    failed: int


@dataclass(frozen=True)
class BackfillState:
    """A backfill as Dagster reports it: its status (e.g. COMPLETED_SUCCESS), title and each asset's partitions."""

    backfill_id: str
    status: str
    title: str | None
    assets: dict[str, AssetPartitions]


def launch_backfill(workspace: Workspace, days: list[str], assets: Sequence[str], title: str,
                    run_config: dict | None = None) -> str:
    """Launch a backfill of `assets` over exactly `days` through GraphQL, as the web UI does; its id."""
    params = {
        "partitionsByAssets": [{"assetKey": {"path": dg.AssetKey.from_user_string(a).path},
                                "partitions": {"range": {"start": days[0], "end": days[-1]}}} for a in assets],
        "title": title,
        "description": f"{len(days)} days of {len(assets)} assets",
        "tags": [{"key": "featctl", "value": "backfill"}],
    }
    if run_config is not None:
        params["runConfigData"] = run_config
    launched = execute_graphql(workspace, LAUNCH, {"backfillParams": params})["launchPartitionBackfill"]
    if launched["__typename"] != "LaunchBackfillSuccess":
        raise PlatformError(f"Dagster refused the backfill {days[0]}..{days[-1]}: {launched.get('message')}",
                            "check the range and the assets against the Dagster UI (featctl ui)")
    return launched["backfillId"]


def backfill_state(workspace: Workspace, backfill_id: str) -> BackfillState:
    """What the Backfills page shows for `backfill_id`, read through GraphQL."""
    found = execute_graphql(workspace, STATUS, {"backfillId": backfill_id})["partitionBackfillOrError"]
    if found["__typename"] != "PartitionBackfill":
        raise PlatformError(f"no backfill {backfill_id}: {found.get('message')}", "list them with featctl ui")
    statuses = found["assetBackfillData"]["assetBackfillStatuses"]
    return BackfillState(backfill_id, found["status"], found["title"], {
        "/".join(s["assetKey"]["path"]): AssetPartitions(s["numPartitionsTargeted"], s["numPartitionsInProgress"],
                                                         s["numPartitionsMaterialized"], s["numPartitionsFailed"])
        for s in statuses if "assetKey" in s})


def finish_backfill(workspace: Workspace, backfill_id: str, logger: logging.Logger | None = None) -> BackfillState:
    """Run the daemon's backfill iteration for `backfill_id` until it is settled (its runs execute here)."""
    logger = logger or logging.getLogger("featctl.backfill")
    for _ in range(MAX_ITERATIONS):
        state = backfill_state(workspace, backfill_id)
        if state.status in TERMINAL:
            return state
        advance_backfill(workspace, backfill_id, logger)
    raise PlatformError(f"backfill {backfill_id} is still {state.status} after {MAX_ITERATIONS} iterations",
                        "see it on the Backfills page of the Dagster UI (featctl ui)")


@dataclass(frozen=True)
class BackfillResult:
    """A finished backfill: its id and state (as on the UI's Backfills page), its runs and each asset partition's step."""

    backfill_id: str
    run_ids: list[str]
    state: BackfillState
    steps: list[StepSummary]
    error: PlatformError | None = None

    @property
    def status(self) -> str:
        """Dagster's status of the backfill: COMPLETED_SUCCESS, COMPLETED_FAILED, ..."""
        return self.state.status


def backfill_run_ids(instance: dg.DagsterInstance, backfill_id: str) -> list[str]:
    """The runs Dagster launched for a backfill, oldest first."""
    records = instance.get_run_records(dg.RunsFilter(tags={BACKFILL_TAG: backfill_id}), ascending=True)
    return [r.dagster_run.run_id for r in records]


def run_backfill(instance: dg.DagsterInstance, days: list[str], assets: list[str],
                 progress: Callable[[int, int], None] = lambda done, total: None) -> BackfillResult:
    """Backfill `assets` over `days` as a Dagster backfill and wait until it is settled.

    The code location is the one `featctl ui` serves, loaded in this process from the current registry
    and settings. `progress(done, total)` is called as asset partitions materialize (polled from the
    instance's event log while the backfill advances in a worker thread). Re-running a backfill changes
    nothing: feature partitions are overwritten with the same rows, and the online guard never lets a
    value replace one Redis holds as of a later event time (one as of the same time gets the same bytes).
    A failed step or check (the backfill then ends COMPLETED_FAILED) is the result's error; an error of
    Dagster's own while launching or advancing it is re-raised.
    """
    total = len(days) * len(assets)
    outcome: dict = {}
    with in_process_workspace(instance) as workspace:
        backfill_id = launch_backfill(workspace, days, assets, f"featctl backfill {days[0]}..{days[-1]}",
                                      QUIET_LOGS)

        def execute() -> None:
            try:
                outcome["state"] = finish_backfill(workspace, backfill_id)
            except Exception as exc:  # re-raised below, in the caller's thread
                outcome["error"] = exc

        worker = threading.Thread(target=execute, name=f"backfill-{backfill_id}")
        worker.start()
        while worker.is_alive():
            worker.join(timeout=1.0)
            progress(_materialized(instance, backfill_id), total)
        if "error" in outcome:
            raise outcome["error"]
        state = outcome["state"]
    run_ids = backfill_run_ids(instance, backfill_id)
    steps = [s for run_id in run_ids for s in _steps_of(instance, run_id)]
    progress(len(steps), total)
    error = None if state.status == "COMPLETED_SUCCESS" else _backfill_error(instance, run_ids, days, state)
    return BackfillResult(backfill_id, run_ids, state, steps, error)


def _materialized(instance: dg.DagsterInstance, backfill_id: str) -> int:
    return sum(len(instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records)
               for run_id in backfill_run_ids(instance, backfill_id))


def _steps_of(instance: dg.DagsterInstance, run_id: str) -> list[StepSummary]:
    """Each asset partition a run materialized, with its step's duration, from the instance's event log."""
    successes = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS).records
    seconds = {r.event_log_entry.step_key: r.event_log_entry.dagster_event.event_specific_data.duration_ms / 1000
               for r in successes}
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    return [step_summary(r.event_log_entry.asset_materialization, seconds.get(r.event_log_entry.step_key, 0.0))
            for r in records]


def _backfill_error(instance: dg.DagsterInstance, run_ids: list[str], days: list[str],
                    state: BackfillState) -> PlatformError:
    """What failed in a backfill: the first failed step with its error, and the failed blocking checks."""
    failures = [r.event_log_entry.dagster_event for run_id in run_ids
                for r in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records]
    evaluations = [r.event_log_entry.dagster_event.event_specific_data for run_id in run_ids
                   for r in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
                                                         ).records]
    fix = None
    if failures:
        detail, fix = step_error(failures[0].step_failure_data.error)
        what = f"step {failures[0].step_key} failed: {detail}"
    else:
        failed = sorted(a for a, p in state.assets.items() if p.failed or p.materialized < p.targeted)
        what = f"backfill {state.status}: {', '.join(failed) or 'no asset'} not materialized"
    span = days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}"
    return PlatformError(f"partition {span}: {what}" + failed_checks_summary(evaluations),
                         (f"{fix}; " if fix else "")
                         + f"see backfill {state.backfill_id} and its runs on the Dagster UI's Backfills page (featctl ui)")
