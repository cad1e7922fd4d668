"""featctl: the platform's command line (demo, get, materialize, list, events, ui).

Errors a user can fix print as one line with the fix and exit 1; anything else is a bug and keeps its
traceback. Heavy imports (Dagster, Spark, Redis) happen inside the commands that need them, so
`featctl list` stays fast with a hundred groups (benchmarks/catalog.py).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from assets.registry import Registry, load_registry
from assets.specs import format_duration
from infra.errors import PlatformError
from infra.settings import Settings, load_settings

console = Console(width=None if sys.stdout.isatty() else 120)
SIZES = ("tiny", "small", "demo", "bench")


def progress_bar() -> Progress:
    """The progress bar every long featctl command shows (description, bar, done/total, elapsed)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


def load_platform() -> tuple[Settings, Registry]:
    """The settings and the registry they point at (`registry_dir`, FP_REGISTRY_DIR): what every command reads."""
    settings = load_settings()
    return settings, load_registry(settings.registry_dir)


def yesterday_utc() -> date:
    """The last whole UTC day, the default partition of featctl commands (partitions are UTC days)."""
    return datetime.now(timezone.utc).date() - timedelta(days=1)


def _lookback_days(registry: Registry) -> int:
    """The longest finite source window of any group: how many days before a partition it reads."""
    windows = [s.window_days for g in registry.groups.values() for s in g.sources.values() if s.window_days != "all"]
    return max(windows, default=1) - 1


def generate_events(settings: Settings, registry: Registry, first: date, last: date, size: str) -> dict[str, int]:
    """Write the sample event log for days first..last into the raw tables, with a progress bar."""
    from eventlog.generator import RedditSample
    from eventlog.hive import write_event_log
    from infra.spark import spark_session

    sample = RedditSample(start=settings.partitions_start, size=size)
    if first < sample.start:
        raise PlatformError(f"{first} is before partitions_start {sample.start}", "set FP_PARTITIONS_START earlier")
    days = sample.days(first, last)
    spark = spark_session(settings)
    with progress_bar() as progress:
        task = progress.add_task("event log", total=len(days) * len(registry.sources))
        return write_event_log(spark, registry, sample, days, progress=lambda _s, _d: progress.advance(task))


def show_features(settings: Settings, registry: Registry, url: str, entity: str | None, ids: list,
                  features: list[str], service: str | None = None) -> None:
    """Print GetFeatures for `ids` (of `features` of `entity`, or of the feature service `service`) through
    the in-process client (its id checks and limits): one row per id and feature, with the value's event time."""
    from serving.client import InProcessClient

    client = InProcessClient.connect(registry, url, settings.redis_prefix, max_ids=settings.serving_max_ids,
                                     timeout_seconds=settings.serving_redis_timeout_seconds)
    try:
        rows = client.get_service(service, ids) if service else client.get_features(entity, ids, features)
    finally:
        client.close()
    asked = f"service {service}" if service else entity
    table = Table(title=f"GetFeatures({asked}, {[row.entity_id for row in rows]})")
    for column in ("id", "feature", "value", "event time"):
        table.add_column(column)
    for row in rows:
        for ref, value in row.values.items():
            when = row.event_times[ref]
            table.add_row(str(row.entity_id), ref, "null" if value is None else str(value),
                          when.isoformat() if when else "-")
    console.print(table)


class AreaGroup(click.Group):
    """A command group whose commands from other areas (`orchestration/cli_<area>.py`) are imported on first need.

    Commands defined here (`list`, `get`, ...) run without importing the other areas: the quality area
    alone pulls in pandas and the Spark job modules, a third of `featctl list`'s time. Asking for another
    command, or for help, imports every area first.
    """

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """This group's command `cmd_name`, importing the other areas if it is not one of the core ones."""
        command = super().get_command(ctx, cmd_name)
        if command is None:
            load_command_modules()
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, with the other areas' (for help and completion)."""
        load_command_modules()
        return super().list_commands(ctx)


@click.group(cls=AreaGroup)
def cli() -> None:
    """Feature platform: feature folders -> Spark -> Dagster -> Redis."""


@cli.command()
@click.option("--days", default=7, show_default=True, help="Daily partitions to compute, ending with --end.")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="The last partition, YYYY-MM-DD (default: yesterday, the last whole UTC day).")
@click.option("--size", type=click.Choice(SIZES), default="demo", show_default=True, help="Sample site size.")
def demo(days: int, end: datetime | None, size: str) -> None:
    """Generate the sample event log, compute every group through Dagster, publish to Redis, read back."""
    from infra.redis_server import redis_url_for
    from orchestration.factory import build_definitions
    from orchestration.runs import dagster_instance, run_partition

    settings, registry = load_platform()
    last = end.date() if end else yesterday_utc()
    partitions = [last - timedelta(days=k) for k in reversed(range(days))]
    started = time.monotonic()
    with redis_url_for(settings) as url:
        console.print(f"[bold]Redis[/] {url}   [bold]data[/] {settings.data_dir}")
        t0 = time.monotonic()
        counts = generate_events(settings, registry, partitions[0] - timedelta(days=_lookback_days(registry)),
                                 last, size)
        events_seconds = time.monotonic() - t0
        defs = build_definitions(registry, settings.model_copy(update={"redis_url": url}))
        instance = dagster_instance(settings)
        rows, seconds = {}, defaultdict(float)
        with progress_bar() as progress:
            task = progress.add_task("Dagster runs (daily_features)", total=len(partitions))
            for day in partitions:
                for step in run_partition(defs, day.isoformat(), instance):
                    rows[step.asset] = step.rows
                    seconds[step.asset] += step.seconds
                progress.advance(task)
        summary = Table(title=f"{len(partitions)} partitions {partitions[0]}..{last} ({size} sample)")
        for column in ("asset", f"rows ({last})", "seconds (all partitions)"):
            summary.add_column(column, justify="left" if column == "asset" else "right")
        summary.add_row("event log (" + ", ".join(f"{k} {v:,}" for k, v in counts.items()) + ")", "",
                        f"{events_seconds:.1f}")
        for asset in sorted(rows, key=lambda a: (not a.startswith("raw/"), a.split("/")[1], a.startswith("online/"))):
            summary.add_row(asset, f"{rows[asset]:,}" if rows[asset] is not None else "", f"{seconds[asset]:.1f}")
        console.print(summary)
        show_features(settings, registry, url, "user", ["42", "7"], ["user_upvotes"])
        show_features(settings, registry, url, "subreddit", ["0", "1"], ["subreddit_activity"])
        show_features(settings, registry, url, "post", [str(_first_post_id(registry, settings, last))],
                      ["post_popularity"])
    console.print(f"demo done in {time.monotonic() - started:.0f} s. Try: featctl get user 42 "
                  "user_upvotes.upvotes_7d user_upvotes.distinct_items_7d   |   make ui")


def _first_post_id(registry: Registry, settings: Settings, day: date) -> int:
    from infra.spark import spark_session

    table = registry.sources["post_events"].table
    return spark_session(settings).sql(f"SELECT MIN(post_id) FROM {table} WHERE ds = '{day}'").collect()[0][0]


@cli.command()
@click.option("--service", default=None, help="A feature service (assets/services/): its features, in its order.")
@click.argument("args", nargs=-1, required=True, metavar="ENTITY IDS FEATURE... | --service NAME IDS...")
def get(service: str | None, args: tuple[str, ...]) -> None:
    """Read FEATUREs (group.feature or group) of ENTITY for IDS (comma-separated) from the online store,
    or with --service NAME the service's features for IDS (comma-separated or several arguments)."""
    from infra.redis_server import redis_url_for

    if service:
        entity, ids, features = None, [i for arg in args for i in arg.split(",") if i], []
    elif len(args) < 3:
        raise PlatformError(f"featctl get needs ENTITY IDS FEATURE..., got {' '.join(args)}",
                            "e.g. featctl get user 42,7 user_upvotes, or featctl get --service ranking 42 7")
    else:
        entity, ids, features = args[0], args[1].split(","), list(args[2:])
    settings, registry = load_platform()
    with redis_url_for(settings) as url:
        show_features(settings, registry, url, entity, ids, features, service)


@cli.command()
@click.option("--group", "groups", multiple=True, help="Feature group (repeatable); default: all.")
@click.option("--partition", "partition", required=True, help="Day to compute, YYYY-MM-DD.")
def materialize(groups: tuple[str, ...], partition: str) -> None:
    """Run one partition of some or all groups through Dagster: sources, feature tables, online publish."""
    from infra.redis_server import redis_url_for
    from orchestration.factory import build_definitions
    from orchestration.runs import dagster_instance, run_partition

    try:
        date.fromisoformat(partition)
    except ValueError:
        raise PlatformError(f"partition {partition!r} is not a date", "use YYYY-MM-DD") from None
    settings, registry = load_platform()
    selected = [registry.group(g) for g in groups] or list(registry.groups.values())
    assets = sorted({f"raw/{s}" for g in selected for s in g.sources}
                    | {f"{kind}/{g.name}" for g in selected for kind in ("features", "online")})
    with redis_url_for(settings) as url:
        defs = build_definitions(registry, settings.model_copy(update={"redis_url": url}))
        with console.status(f"materializing {len(assets)} assets for {partition}"):
            steps = run_partition(defs, partition, dagster_instance(settings), assets)
    table = Table(title=f"materialized {partition}")
    for column in ("asset", "rows", "seconds"):
        table.add_column(column)
    for step in steps:
        table.add_row(step.asset, "" if step.rows is None else f"{step.rows:,}", f"{step.seconds:.1f}")
    console.print(table)


def _published_in_instance(home: str) -> dict[str, str]:
    """`ds=<partition> at <time>` of the latest materialization of each `online/<group>` in the instance at `home`."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(home)
    events = instance.get_latest_materialization_events(instance.get_asset_keys(prefix=["online"]))
    published = {}
    for key, event in events.items():
        if event is not None:
            when = datetime.fromtimestamp(event.timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            published[key.path[-1]] = f"ds={event.dagster_event.partition} at\n{when}"
    return published


def start_reading_last_published(settings: Settings) -> Callable[[], dict[str, str]]:
    """Start reading each group's latest online publish from the Dagster instance; call the result for it.

    Importing Dagster and its storage takes longer than the rest of `featctl list` together, so it runs in
    a forked process while this one loads the registry. Without an instance nothing was ever published
    and nothing is started. The instance is opened as it is, not through orchestration.runs, whose
    imports (the job, Spark) would cost another second.
    """
    home = settings.dagster_home.resolve()
    if not (home / "dagster.yaml").exists():  # orchestration.runs.dagster_instance() writes it first
        return lambda: {}
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
    future = pool.submit(_published_in_instance, str(home))
    pool.shutdown(wait=False)
    return future.result


@cli.command("list")
def list_catalog() -> None:
    """The feature catalog: groups, features, dtypes, owners, descriptions and freshness."""
    settings = load_settings()
    last_published = start_reading_last_published(settings)
    registry = load_registry(settings.registry_dir)
    published = last_published()
    table = Table(title="feature catalog", show_lines=True)
    for column in ("group", "feature", "dtype", "description"):
        table.add_column(column, no_wrap=column != "description")
    for group in registry.groups.values():
        about = (f"[bold]{group.name} v{group.version}[/]\nentity: {group.entity}\nowner: {group.owner}\n"
                 f"freshness: {format_duration(group.freshness) if group.freshness else '-'}\n"
                 f"published: {published.get(group.name, 'never')}")
        for index, feature in enumerate(group.features):
            table.add_row(about if index == 0 else "", feature.name, feature.dtype, feature.description)
        for feature in group.on_demand:
            table.add_row("", feature.name, feature.dtype, f"on demand, from {', '.join(feature.inputs.values())}: "
                          f"{feature.description}")
    console.print(table)
    if registry.services:
        console.print(service_catalog(registry))


def service_catalog(registry: Registry) -> Table:
    """The feature services: which model reads which features (refs in order, then on-demand features)."""
    table = Table(title="feature services", show_lines=True)
    for column in ("service", "features (in answer order)", "description"):
        table.add_column(column, no_wrap=column != "description")
    for service in registry.services.values():
        features = [*service.features, *(f"{f.name} (on demand, {f.dtype})" for f in service.on_demand)]
        table.add_row(f"[bold]{service.name} v{service.version}[/]\nentity: {service.entity}\nowner: {service.owner}",
                      "\n".join(features), service.description.strip())
    return table


@cli.group(cls=AreaGroup)
def events() -> None:
    """The sample event log."""


@events.command("generate")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), required=True, help="First day, YYYY-MM-DD.")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Last day (default: yesterday).")
@click.option("--size", type=click.Choice(SIZES), default="demo", show_default=True)
def events_generate(start: datetime, end: datetime | None, size: str) -> None:
    """Write the deterministic sample Reddit events for START..END into the raw Hive tables."""
    settings, registry = load_platform()
    counts = generate_events(settings, registry, start.date(), end.date() if end else yesterday_utc(), size)
    console.print(", ".join(f"{name}: {n:,} events" for name, n in counts.items()))


@cli.command()
@click.option("--port", default=3000, show_default=True, help="Port of the web UI on 127.0.0.1.")
def ui(port: int) -> None:
    """Start the Dagster web UI on 127.0.0.1 with the platform's instance and online store."""
    from infra.redis_server import redis_url_for
    from orchestration.runs import dagster_instance
    from orchestration.webserver import start_dagster_dev, stop_process_group

    settings = load_settings()
    dagster_instance(settings)
    with redis_url_for(settings) as url:
        env = {**os.environ, "FP_REDIS_URL": url, "DAGSTER_HOME": str(settings.dagster_home.resolve())}
        console.print(f"Dagster UI on http://127.0.0.1:{port} (Ctrl-C stops it and the platform's Redis)")
        process = start_dagster_dev(env, port)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill stops the UI and Redis too
        try:
            process.wait()
        except KeyboardInterrupt:
            pass
        finally:
            stop_process_group(process)


def load_command_modules() -> None:
    """Import every `orchestration/cli_<area>.py`: each area's commands attach themselves to `cli`.

    A new area is a new module, with no list to keep in step.
    """
    import importlib
    import pkgutil

    import orchestration

    for module in pkgutil.iter_modules(orchestration.__path__):
        if module.name.startswith("cli_"):
            importlib.import_module(f"orchestration.{module.name}")


def main() -> None:
    """Entry point: run the CLI, turning PlatformErrors into one line with the fix."""
    try:
        cli(standalone_mode=False)
    except PlatformError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
