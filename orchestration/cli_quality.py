"""featctl commands of the quality gate: `featctl check` (run by CI on every PR)."""

from __future__ import annotations

import click
from rich.table import Table

from assets.registry import load_registry
from infra.errors import PlatformError
from infra.settings import load_settings
from orchestration.cli import cli, console
from quality.pr_check import analysis_spark, check_registry

LOCK_FILE = "registry.lock"


@cli.command()
@click.option("--update-lock", is_flag=True,
              help="Record the current output schemas in assets/registry.lock (an intended change).")
def check(update_lock: bool) -> None:
    """Validate every feature folder: YAML, batch.sql on Spark, stream SQL on Flink, schemas against the lock."""
    settings = load_settings()
    registry = load_registry(settings.registry_dir)
    lock_path = settings.registry_dir / LOCK_FILE
    with console.status("analysing batch.sql with Spark and stream SQL with Flink"), analysis_spark(settings) as spark:
        result = check_registry(spark, registry, lock_path, settings.partitions_start.isoformat(), update_lock)
    table = Table(title=f"featctl check: {len(registry.groups)} groups, {len(registry.sources)} sources")
    for column in ("group", "entity", "features", "stream", "lock"):
        table.add_column(column)
    changed = {change.group.ref for change in result.lock.changed}
    new = {version.group.ref for version in result.lock.new}
    for group in registry.groups.values():
        lock = ("changed" if group.ref in changed else "new" if group.ref in new else "ok")
        if result.lock_updated and lock != "ok":
            lock = "recorded"
        table.add_row(group.ref, group.entity, str(len(group.features)), "yes" if group.stream else "-", lock)
    console.print(table)
    for problem in result.problems:
        console.print(f"[red]error:[/] {problem}", highlight=False, soft_wrap=True)
    if result.problems:
        raise PlatformError(f"featctl check found {len(result.problems)} problem(s)", "fix the errors listed above")
    console.print(f"[green]ok[/]: every folder is valid{'; lock updated' if result.lock_updated else ''}")


@cli.command()
@click.option("--service", required=True, help="A feature service (assets/services/<name>.yaml).")
@click.option("--ds", required=True, help="The day of its response log (served/<service> partition), YYYY-MM-DD.")
def skew(service: str, ds: str) -> None:
    """Online/offline skew of a service for one day: per feature, the served values that differ from the
    offline point-in-time values at the same request times (load the day first: materialize served/<service>)."""
    from infra.spark import spark_session
    from orchestration.cli import load_platform
    from quality.skew import skew_report
    from serving.on_demand import select_service

    settings, registry = load_platform()
    select_service(registry, service)  # an unknown service is an error before Spark starts
    with console.status("recomputing the logged requests offline (Spark)"):
        report = skew_report(spark_session(settings), registry, service, ds)
    table = Table(title=f"skew of {service} on {ds}: {report.differing:,} differing value(s)")
    for column in ("feature", "compared", "differing", "share", "examples (id, request time: served / offline)"):
        table.add_column(column)
    for name, feature in report.features.items():
        examples = "\n".join(f"{e['id']}, {e['request_time']}: {e['served']} / {e['offline']}"
                             for e in feature.examples[:3])
        table.add_row(name, f"{feature.compared:,}", f"{feature.differing:,}", f"{feature.share:.1%}", examples)
    console.print(table)
