"""featctl commands for operating the platform: `featctl backfill` (a date range as one Dagster backfill) and
`featctl rebuild` (the derived state dropped and replayed from the event log)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

import click
from rich.table import Table

from assets.specs import FeatureGroup
from infra.errors import PlatformError
from infra.redis_server import redis_url_for
from orchestration.cli import cli, console, load_platform, progress_bar


@cli.command()
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), required=True, help="First day, YYYY-MM-DD.")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), required=True, help="Last day, YYYY-MM-DD (included).")
@click.option("--group", "groups", multiple=True, help="Feature group (repeatable); default: all.")
def backfill(start: datetime, end: datetime, groups: tuple[str, ...]) -> None:
    """Recompute and republish START..END of some or all groups as one Dagster backfill (listed in the UI).

    Re-running it changes nothing: partitions are overwritten with the same rows and the online publish
    never replaces a value Redis holds as of a later event time.
    """
    from orchestration.backfills import backfill_assets, backfill_days, run_backfill
    from orchestration.runs import dagster_instance

    settings, registry = load_platform()
    days = backfill_days(settings, start.date(), end.date())
    assets = backfill_assets(registry, groups)
    with redis_url_for(settings):  # one server for every step (the online store finds it running)
        instance = dagster_instance(settings)
        with progress_bar() as progress:
            task = progress.add_task(f"backfill {days[0]}..{days[-1]} (asset partitions)", total=len(days) * len(assets))
            result = run_backfill(instance, days, assets,
                                  progress=lambda done, total: progress.update(task, completed=done))
    runs = ", ".join(run_id[:8] for run_id in result.run_ids)
    table = Table(title=f"backfill {result.backfill_id}: {result.status} ({len(days)} days, runs {runs})")
    for column in ("asset", "partitions", "rows", "landed in Redis", "seconds"):
        table.add_column(column, justify="left" if column == "asset" else "right")
    for asset in assets:
        steps = [s for s in result.steps if s.asset == asset]
        if not steps:
            table.add_row(asset, f"0/{len(days)}", "", "", "")
            continue
        meta = steps[0].metadata
        rows = sum(s.rows for s in steps) if all(s.rows is not None for s in steps) else meta.get("rows")
        landed = meta.get("rows_landed")
        table.add_row(asset, f"{len(steps)}/{len(days)}", "" if rows is None else f"{rows:,}",
                      "" if landed is None else f"{landed:,}", f"{steps[0].seconds:.1f}")
    console.print(table)
    console.print(f"listed on the Dagster UI's Backfills page as {result.backfill_id} (featctl ui)")
    if result.error:
        raise result.error


def dagster_replay(defs, instance):
    """A `replay(ds, groups)` for orchestration.rebuild that runs the daily Dagster job for those groups' assets."""
    from orchestration.runs import run_partition

    def replay(ds: str, groups: Sequence[FeatureGroup]) -> None:
        sources = {f"raw/{source}" for group in groups for source in group.sources}
        steps = {f"{kind}/{group.name}" for group in groups for kind in ("features", "online")}
        run_partition(defs, ds, instance, sorted(sources | steps))

    return replay


def _days(start: datetime | None, end: datetime | None) -> list[str] | None:
    if start is None and end is None:
        return None
    if start is None or end is None or end < start:
        raise PlatformError("--start and --end go together, start <= end", "pass both, e.g. --start 2026-01-03 "
                            "--end 2026-01-09, or neither to rebuild the partitions the tables hold now")
    first: date = start.date()
    return [(first + timedelta(days=k)).isoformat() for k in range((end.date() - first).days + 1)]


@cli.command()
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), default=None, help="First day to replay.")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Last day to replay.")
@click.option("--yes", is_flag=True, help="Do not ask before dropping the derived state.")
def rebuild(start: datetime | None, end: datetime | None, yes: bool) -> None:
    """Drop feature tables and online values, then replay the event log through the Dagster batch runs.

    Without --start/--end the partitions the feature tables hold now are rebuilt, so the result equals them.
    """
    from infra.spark import spark_session
    from orchestration.factory import build_definitions
    from orchestration.rebuild import plan_rebuild, rebuild as rebuild_platform
    from orchestration.runs import dagster_instance
    from serving.online_store import OnlineStore, connect

    settings, registry = load_platform()
    days = _days(start, end)
    if not yes:
        click.confirm(f"Drop the offline tables of {len(registry.groups)} feature groups and the "
                      f"{settings.redis_prefix}:<entity>:* keys in Redis, then replay the event log?", abort=True)
    with redis_url_for(settings) as url:
        spark = spark_session(settings)
        plan = plan_rebuild(spark, registry, days)
        defs = build_definitions(registry, settings.model_copy(update={"redis_url": url}))
        store = OnlineStore(connect(url))
        with progress_bar() as progress:
            task = progress.add_task("replaying the event log (daily_features)", total=len(plan.days))
            summary = rebuild_platform(spark, registry, store, settings.redis_prefix, plan,
                                       dagster_replay(defs, dagster_instance(settings)),
                                       on_day=lambda _ds: progress.advance(task))
        store.client.close()
    console.print(f"dropped {len(summary.dropped_tables)} tables and {summary.deleted_keys:,} Redis keys; replayed "
                  + ", ".join(f"{name} ({len(d)} day{'' if len(d) == 1 else 's'})" for name, d in summary.replayed.items()),
                  highlight=False)
    if summary.kept_streamed_tables:
        console.print(f"kept streamed history {', '.join(summary.kept_streamed_tables)}: replay the stream jobs "
                      "to rebuild it", highlight=False)
