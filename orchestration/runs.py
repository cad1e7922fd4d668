"""Launching Dagster runs of the platform's job from code (featctl, tests): one partition of some or all assets.

Runs go through the platform's Dagster instance (SQLite under the data directory in the local profile),
so what `featctl demo` or `featctl materialize` did shows in the web UI afterwards. Backfills of a date
range are Dagster backfills (orchestration/backfills.py).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import yaml

from infra.errors import PlatformError
from infra.settings import Settings
from orchestration.factory import DAILY_JOB

# In-process runs (featctl) print nothing of Dagster's own: a failure comes back as one line naming the step
# and its cause (run_partition), and the run's full log, tracebacks included, stays in the instance (UI).
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def write_instance_config(home: Path, postgres_url: str | None = None) -> None:
    """The platform's `dagster.yaml` in `home`: no telemetry, no "Join the Dagster community" dialog greeting
    every page of a fresh instance, and Postgres storage when `postgres_url` is set (else SQLite in `home`)."""
    config = {"telemetry": {"enabled": False}, "nux": {"enabled": False}}
    if postgres_url:
        config["storage"] = {"postgres": {"postgres_url": postgres_url}}
    text = yaml.safe_dump(config, sort_keys=False)
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def dagster_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent instance under `settings.dagster_home`: SQLite there, or the configured Postgres database
    (dagster-postgres), so a run, a sensor, featctl and the UI share one instance from any process or host."""
    home = settings.dagster_home.resolve()
    write_instance_config(home, settings.dagster_postgres_url)
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


def step_error(error) -> tuple[str, str | None]:
    """A failed step's error as (what, fix): the last line of the innermost cause (the asset's own exception,
    not Dagster's wrapper), split into a PlatformError's what and fix where it is one."""
    while error.cause is not None:
        error = error.cause
    line = error.message.strip().splitlines()[-1] if error.message.strip() else error.cls_name
    line = line.removeprefix(f"{error.cls_name}: ")
    for prefix in ("infra.errors.", "serving.client."):
        line = line.removeprefix(f"{prefix}{error.cls_name}: ")
    what, marker, fix = line.partition(" (fix: ")
    return (what, fix.removesuffix(")")) if marker else (line, None)


def run_partition(defs: dg.Definitions, partition: str, instance: dg.DagsterInstance | None = None,
                  assets: Sequence[str] | None = None) -> list[StepSummary]:
    """Run the daily job for `partition`, all assets or only `assets` (e.g. `features/user_upvotes`).

    One summary per asset partition; raises a PlatformError naming the failed step and its error when the run fails.
    """
    job = defs.resolve_job_def(DAILY_JOB)
    selection = [dg.AssetKey.from_user_string(a) for a in assets] if assets else None
    result = job.execute_in_process(instance=instance, asset_selection=selection, run_config=QUIET_LOGS,
                                    raise_on_error=False, partition_key=partition)
    if not result.success:
        failure = next((e for e in result.all_events if e.is_step_failure), None)
        detail, fix = step_error(failure.step_failure_data.error) if failure else ("run failed", None)
        step = failure.step_key if failure else DAILY_JOB
        raise PlatformError(f"partition {partition}: step {step} failed: {detail}"
                            + failed_checks_summary(result.get_asset_check_evaluations()),
                            (f"{fix}; " if fix else "") + "see the run in the Dagster UI (make ui) for the full log")
    step_seconds = {e.step_key: e.event_specific_data.duration_ms / 1000 for e in result.get_step_success_events()}
    return [step_summary(event.event_specific_data.materialization, step_seconds.get(event.step_key, 0.0))
            for event in result.get_asset_materialization_events()]


def failed_checks_summary(evaluations: Sequence[dg.AssetCheckEvaluation]) -> str:
    """The blocking checks that failed, each with its day and what it found (e.g. the schema diff)."""
    failed = [f"{e.asset_key.to_user_string()}:{e.check_name} ds={e.partition}: {e.description or 'failed'}"
              for e in evaluations if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
    return "; failed checks: " + "; ".join(failed) if failed else ""


def step_summary(materialization: dg.AssetMaterialization, seconds: float) -> StepSummary:
    """What one materialization of a run reports: the asset partition, its rows, metadata and step time."""
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    return StepSummary(asset=materialization.asset_key.to_user_string(), rows=metadata.get("dagster/row_count"),
                       seconds=seconds, metadata=metadata, partition=materialization.partition)
