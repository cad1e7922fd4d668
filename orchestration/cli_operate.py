"""featctl commands for operating the platform: `featctl backfill` (a date range as one Dagster backfill)."""

from __future__ import annotations

from datetime import datetime

import click
from rich.table import Table

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
