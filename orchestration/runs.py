"""Launching Dagster runs of the platform's job from code (featctl, tests): a partition, a range, a backfill.

Runs go through the platform's Dagster instance (SQLite under the data directory in the local profile),
so what `featctl demo`, `featctl materialize` or `featctl backfill` did shows in the web UI afterwards.
A range of days is one run (the assets' single-run backfill policy): Spark does the whole range in one
session. A backfill is such a run tagged with a backfill id and recorded in the instance as a completed
asset backfill, so it is listed on the UI's Backfills page with its runs and partitions; no daemon is
needed, and none picks it up again.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.definitions.selector import PartitionRangeSelector, PartitionsByAssetSelector, PartitionsSelector
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, BACKFILL_ID_TAG
from dagster._core.utils import make_new_backfill_id, make_new_run_id

from assets.registry import Registry
from infra.errors import PlatformError
from infra.settings import Settings
from orchestration.factory import DAILY_JOB

QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def dagster_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent instance under `settings.dagster_home`, created on first use."""
    home = settings.dagster_home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


@dataclass(frozen=True)
class StepSummary:
    """One asset partition's outcome in a run: its row count and how long its step took."""

    asset: str
    rows: int | None
    seconds: float
    metadata: dict
    partition: str | None = None


def run_partition(defs: dg.Definitions, partition: str, instance: dg.DagsterInstance | None = None,
                  assets: Sequence[str] | None = None) -> list[StepSummary]:
    """Run the daily job for `partition`, all assets or only `assets` (e.g. `features/user_upvotes`).

    Raises a PlatformError naming the failed step and its error when the run fails.
    """
    return run_partitions(defs, partition, partition, instance, assets)


def run_partitions(defs: dg.Definitions, first: str, last: str, instance: dg.DagsterInstance | None = None,
                   assets: Sequence[str] | None = None, tags: dict[str, str] | None = None,
                   run_id: str | None = None) -> list[StepSummary]:
    """Run the daily job once for partitions `first`..`last` (one day when equal); one summary per asset partition.

    Raises a PlatformError naming the failed step and its error when the run fails.
    """
    job = defs.resolve_job_def(DAILY_JOB)
    selection = [dg.AssetKey.from_user_string(a) for a in assets] if assets else None
    if first == last:
        where = {"partition_key": first, "tags": tags}
    else:
        where = {"tags": {**(tags or {}), ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}}
    result = job.execute_in_process(instance=instance, asset_selection=selection, run_config=QUIET_LOGS,
                                    raise_on_error=False, run_id=run_id, **where)
    if not result.success:
        failure = next((e for e in result.all_events if e.is_step_failure), None)
        detail = failure.step_failure_data.error.message.strip().splitlines()[-1] if failure else "run failed"
        step = failure.step_key if failure else DAILY_JOB
        days = first if first == last else f"{first}..{last}"
        raise PlatformError(f"partition {days}: step {step} failed: {detail}" + _failed_checks(result),
                            "see the run in the Dagster UI (make ui) for the full log")
    step_seconds = {e.step_key: e.event_specific_data.duration_ms / 1000 for e in result.get_step_success_events()}
    return [_summary(event.event_specific_data.materialization, step_seconds.get(event.step_key, 0.0))
            for event in result.get_asset_materialization_events()]


def _failed_checks(result) -> str:
    """The blocking checks that failed in a run, each with its day and what it found (e.g. the schema diff)."""
    failed = [f"{e.asset_key.to_user_string()}:{e.check_name} ds={e.partition}: {e.description or 'failed'}"
              for e in result.get_asset_check_evaluations()
              if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
    return "; failed checks: " + "; ".join(failed) if failed else ""


def _summary(materialization: dg.AssetMaterialization, seconds: float) -> StepSummary:
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    return StepSummary(asset=materialization.asset_key.to_user_string(), rows=metadata.get("dagster/row_count"),
                       seconds=seconds, metadata=metadata, partition=materialization.partition)


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
class BackfillResult:
    """A finished backfill: its id (as on the UI's Backfills page), its run and what each asset partition did."""

    backfill_id: str
    run_id: str
    status: str
    steps: list[StepSummary]
    error: PlatformError | None = None


def _record_backfill(defs: dg.Definitions, instance: dg.DagsterInstance, backfill_id: str, started: float,
                     days: list[str], assets: list[str], steps: list[StepSummary], title: str) -> str:
    """Store the backfill in the instance as a finished asset backfill: targeted and materialized partitions."""
    graph = defs.resolve_asset_graph()
    keys = [dg.AssetKey.from_user_string(a) for a in assets]
    days_range = PartitionsSelector(ranges=[PartitionRangeSelector(start=days[0], end=days[-1])])
    # Exactly these partitions: from_asset_partitions would add every later partition a window reads.
    record = PartitionBackfill.from_partitions_by_assets(
        backfill_id=backfill_id, asset_graph=graph, backfill_timestamp=started, tags={"featctl": "backfill"},
        dynamic_partitions_store=instance,
        partitions_by_assets=[PartitionsByAssetSelector(asset_key=key, partitions=days_range) for key in keys],
        title=title, description=f"{len(days)} days of {len(assets)} assets, one run", run_config=None)
    target = record.asset_backfill_data.target_subset
    done = AssetGraphSubset.from_asset_partition_set(
        {AssetKeyPartitionKey(dg.AssetKey.from_user_string(s.asset), s.partition) for s in steps}, graph)
    missing = target - done
    data = record.asset_backfill_data._replace(requested_runs_for_target_roots=True, requested_subset=target,
                                               materialized_subset=done, failed_and_downstream_subset=missing)
    failed = missing.num_partitions_and_non_partitioned_assets > 0
    status = BulkActionStatus.COMPLETED_FAILED if failed else BulkActionStatus.COMPLETED_SUCCESS
    instance.add_backfill(record.with_asset_backfill_data(data, instance, graph).with_status(status)
                          .with_end_timestamp(time.time()))
    return status.value


def run_backfill(defs: dg.Definitions, instance: dg.DagsterInstance, days: list[str], assets: list[str],
                 progress: Callable[[int, int], None] = lambda done, total: None) -> BackfillResult:
    """Backfill `assets` over `days` as one Dagster run tagged with a new backfill id, then record the backfill.

    `progress(done, total)` is called as asset partitions materialize (polled from the instance's event
    log while the run executes in a worker thread). Re-running a backfill changes nothing: feature
    partitions are overwritten with the same rows, and the online guard never lets a value replace one
    Redis holds as of a later event time (one as of the same time is rewritten with the same bytes).
    """
    backfill_id, run_id, started = make_new_backfill_id(), make_new_run_id(), time.time()
    total = len(days) * len(assets)
    outcome: dict = {}

    def execute() -> None:
        try:
            outcome["steps"] = run_partitions(defs, days[0], days[-1], instance, assets,
                                              tags={BACKFILL_ID_TAG: backfill_id}, run_id=run_id)
        except Exception as exc:  # a failed step is a PlatformError; anything else is re-raised below
            outcome["error"] = exc

    worker = threading.Thread(target=execute, name=f"backfill-{backfill_id}")
    worker.start()
    while worker.is_alive():
        worker.join(timeout=1.0)
        progress(_materialized(instance, run_id), total)
    steps = outcome.get("steps") or _steps_of(instance, run_id)
    progress(len(steps), total)
    status = _record_backfill(defs, instance, backfill_id, started, days, assets, steps,
                              f"featctl backfill {days[0]}..{days[-1]}")
    error = outcome.get("error")
    if error is not None and not isinstance(error, PlatformError):
        raise error  # a bug: keep its traceback (the backfill is recorded as failed)
    return BackfillResult(backfill_id, run_id, status, steps, error)


def _materialized(instance: dg.DagsterInstance, run_id: str) -> int:
    if instance.get_run_by_id(run_id) is None:
        return 0
    return len(instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records)


def _steps_of(instance: dg.DagsterInstance, run_id: str) -> list[StepSummary]:
    """What a failed run did materialize, from the instance's event log."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    return [_summary(r.event_log_entry.asset_materialization, 0.0) for r in records]
