"""Fixtures of the quality-gate tests: an isolated copy of the registry to break partitions in.

Injections rewrite raw partitions, so they must not touch the session's shared `raw.*` tables. The copy
reads `qa_raw.*` tables (same contracts, written from the same sample) and holds one group,
`qa_user_upvotes` (user_upvotes under another name), so its offline table and online fields are its own.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.registry import DEFAULT_ROOT, Registry, load_registry
from eventlog.hive import write_raw_partitions
from orchestration.factory import DAILY_JOB
from orchestration.runs import QUIET_LOGS
from quality.partitions import partition_location
from tests.conftest import LAST_DAY, START

QA_GROUP = "qa_user_upvotes"


def copy_registry(root: Path, groups: tuple[str, ...]) -> Path:
    """A copy of the project's registry (and its lock) under `root`, keeping only the feature groups `groups`
    (and no feature services: they name groups the copy may rename or leave out)."""
    shutil.copytree(DEFAULT_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    for folder in (root / "features").iterdir():
        if folder.name not in groups:
            shutil.rmtree(folder)
    shutil.rmtree(root / "services", ignore_errors=True)
    return root


@pytest.fixture(scope="session")
def qa_registry(tmp_path_factory) -> Registry:
    """The registry copy whose raw tables live in `qa_raw` and whose one group is `qa_user_upvotes`."""
    root = copy_registry(tmp_path_factory.mktemp("qa") / "assets", ("user_upvotes",))
    for source in (root / "sources").glob("*.yaml"):
        source.write_text(source.read_text().replace("table: raw.", "table: qa_raw."))
    sql = root / "features" / "user_upvotes" / "batch.sql"
    sql.write_text(sql.read_text().replace("raw.", "qa_raw."))
    (root / "features" / "user_upvotes").rename(root / "features" / QA_GROUP)
    return load_registry(root)


@pytest.fixture(scope="session")
def qa_event_log(spark, qa_registry, sample) -> dict[str, int]:
    """The tiny sample's upvotes, START..LAST_DAY, in `qa_raw.upvote_events`."""
    days = [START + timedelta(days=k) for k in range((LAST_DAY - START).days + 1)]
    source = qa_registry.sources["upvote_events"]
    return {source.name: write_raw_partitions(spark, source, ((d.isoformat(), sample.events(source.name, d))
                                                              for d in days))}


@contextmanager
def upstream_rewrite(spark, registry: Registry, sample, source_name: str, ds: str,
                     change: Callable[[pa.Table], pa.Table | list[pa.Table]]) -> Iterator[None]:
    """An upstream producer rewrites partition `ds` of a raw table with `change`d files; restored afterwards.

    `change` turns the day's events into the table (or tables, one file each) the producer writes. The
    files replace the partition's own under new names, as a producer writes them; the metastore still
    describes the contract's schema, as it does when a producer changes what it writes.
    """
    source = registry.sources[source_name]
    directory = Path(partition_location(spark, source.table, ds).removeprefix("file:"))
    events = sample.events(source_name, date.fromisoformat(ds))
    table = pa.Table.from_pandas(events[[c.name for c in source.columns]], preserve_index=False)
    event_time = table.schema.get_field_index(source.event_time)
    table = table.set_column(event_time, source.event_time, table.column(event_time).cast(pa.timestamp("us", "UTC")))
    for old in directory.iterdir():
        old.unlink()
    changed = change(table)
    for part in changed if isinstance(changed, list) else [changed]:
        pq.write_table(part, directory / f"part-upstream-{uuid.uuid4().hex}.parquet")
    spark.sql(f"REFRESH TABLE {source.table}")
    try:
        yield
    finally:
        write_raw_partitions(spark, source, [(ds, events)])


@dataclass(frozen=True)
class RunOutcome:
    """What one Dagster run of a partition did: materialized assets and check evaluations by check key."""

    success: bool
    materialized: set[str]
    checks: dict[str, dg.AssetCheckEvaluation]
    errors: dict[str, str]  # failed step -> its error message


def run_daily(defs: dg.Definitions, partition: str, assets: list[str],
              instance: dg.DagsterInstance | None = None) -> RunOutcome:
    """Run the daily job for `partition` on `assets` (with their checks) and report what happened.

    Without `instance` each run has an ephemeral instance of its own, so no run sees another's results.
    """
    job = defs.resolve_job_def(DAILY_JOB)
    result = job.execute_in_process(partition_key=partition, run_config=QUIET_LOGS, raise_on_error=False,
                                    asset_selection=[dg.AssetKey.from_user_string(a) for a in assets],
                                    instance=instance)
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    checks = {f"{e.asset_key.to_user_string()}:{e.check_name}": e for e in result.get_asset_check_evaluations()}
    errors = {e.step_key: e.step_failure_data.error.message for e in result.all_events if e.is_step_failure}
    return RunOutcome(result.success, materialized, checks, errors)
