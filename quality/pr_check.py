"""`featctl check`: what CI verifies on every PR, before any data is touched.

1. every folder loads (YAML against the spec; errors name the file and field: assets.registry);
2. every batch.sql is analysed by Spark against raw tables created from the source contracts, so its
   output columns and types must be the declared ones (batch.feature_job.feature_query);
3. every stream/*.sql is parsed and validated by Flink's planner (quality.stream_sql);
4. every group version's declared output is compared with the committed lock (quality.lock): a changed
   schema without a version bump, or a group version the lock does not record yet, is an error.
Spark runs on a throwaway local metastore, so the check needs no data and works on a clean machine.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from assets.offline_layout import ensure_raw_table
from assets.registry import Registry, RegistryError
from batch.feature_job import feature_query
from infra.errors import PlatformError
from infra.settings import Settings
from quality.lock import LockComparison, compare_with_lock, read_lock, write_lock
from quality.stream_sql import validate_stream_queries


@dataclass(frozen=True)
class RegistryCheck:
    """The outcome of `featctl check`: problems (each one line naming file and field) and lock status."""

    problems: tuple[PlatformError, ...]
    lock: LockComparison
    lock_updated: bool


@contextmanager
def analysis_spark(settings: Settings) -> Iterator:
    """A local Spark session on an empty temporary metastore (or the process's running session)."""
    from infra.spark import spark_session

    with tempfile.TemporaryDirectory(prefix="fp-check-", ignore_cleanup_errors=True) as scratch:
        local = settings.model_copy(update={"data_dir": Path(scratch), "hive_metastore_uri": None,
                                            "warehouse_dir": None, "spark_master": "local[2]", "spark_conf": {}})
        yield spark_session(local)


def analyse_batch_queries(spark, registry: Registry, ds: str) -> list[RegistryError]:
    """Spark's analysis of every group's batch.sql for partition `ds`, against tables made from the contracts."""
    for source in registry.sources.values():
        ensure_raw_table(spark, source)
    problems = []
    for group in registry.groups.values():
        try:
            feature_query(spark, registry, group, ds)
        except RegistryError as exc:
            problems.append(exc)
    return problems


def check_registry(spark, registry: Registry, lock_path: Path, ds: str, update_lock: bool = False) -> RegistryCheck:
    """Run checks 2-4 on a loaded registry; with `update_lock`, record the current schemas if nothing else failed."""
    problems: list[PlatformError] = [*analyse_batch_queries(spark, registry, ds), *validate_stream_queries(registry)]
    locked = read_lock(lock_path)
    comparison = compare_with_lock(registry, locked, lock_path)
    if update_lock and not problems:
        write_lock(lock_path, registry, locked)
        return RegistryCheck(tuple(problems), comparison, lock_updated=True)
    problems += comparison.errors()
    return RegistryCheck(tuple(problems), comparison, lock_updated=False)
