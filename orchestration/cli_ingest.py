"""featctl ingest ...: run, watch and stop each source's ingest (its stream into the event log), and load
the days it landed into the raw tables."""

from __future__ import annotations

import click
from rich.table import Table

from infra.errors import PlatformError
from orchestration.cli import cli, console, load_platform


def _streamed_sources(registry, names: tuple[str, ...]):
    """The named sources, or every source with a stream when none is named."""
    if not names:
        return [s for s in registry.sources.values() if s.stream]
    unknown = [n for n in names if n not in registry.sources]
    if unknown:
        raise PlatformError(f"no source named {', '.join(unknown)}", f"one of: {', '.join(registry.sources)}")
    return [registry.sources[n] for n in names]


@cli.group()
def ingest() -> None:
    """Ingest: each source's stream, judged by its contract, into the event log (raw tables), exactly once."""


@ingest.command("run")
@click.argument("sources", nargs=-1)
def ingest_run(sources: tuple[str, ...]) -> None:
    """Start (or resume from its last savepoint/checkpoint) the ingest of each source (every streamed source
    that is not running when none is named)."""
    from streaming.ingest import landing_directory, start
    from streaming.runner import running_job

    settings, registry = load_platform()
    selected = _streamed_sources(registry, sources)
    if not sources:
        selected = [s for s in selected if not running_job(settings, s)]
    for source in selected:
        with console.status(f"starting the {source.name} ingest"):
            process = start(settings, source)
        resumed = f", resumed from {process.restored_from}" if process.restored_from else ""
        console.print(f"{source.name}: RUNNING (pid {process.pid}, Flink REST http://{process.rest}{resumed}), "
                      f"landing in {landing_directory(settings, source)}")


@ingest.command("status")
@click.argument("sources", nargs=-1)
def ingest_status_command(sources: tuple[str, ...]) -> None:
    """Each ingest's state, watermark and dead letters, and per day: events landed, complete, loaded."""
    from eventlog.landing import landed_days
    from streaming.status import ingest_status

    settings, registry = load_platform()
    when = lambda t: t.strftime("%Y-%m-%d %H:%M:%S") if t else "-"  # noqa: E731
    jobs = Table(title="ingests")
    for column in ("source", "state", "lines in", "watermark", "last checkpoint", "lag s", "dead letters"):
        jobs.add_column(column)
    days = Table(title="landed days")
    for column in ("source", "ds", "events", "complete", "in raw table"):
        days.add_column(column)
    causes = []
    for source in _streamed_sources(registry, sources):
        s = ingest_status(settings, source)
        if s.cause:
            causes.append(f"{s.source} {s.state}: {s.cause}")
        jobs.add_row(s.source, s.state, "-" if s.records_in is None else f"{s.records_in:,}", when(s.watermark),
                     when(s.last_checkpoint), "-" if s.lag_seconds is None else f"{s.lag_seconds:.1f}",
                     str(s.dead_letters))
        for day in landed_days(settings, source):
            days.add_row(source.name, day.ds, f"{day.rows:,}", "yes" if day.complete else "no",
                         "yes" if day.loaded else "no")
    console.print(jobs)
    console.print(days)
    for cause in causes:
        console.print(cause, markup=False)


@ingest.command("stop")
@click.argument("source")
def ingest_stop(source: str) -> None:
    """Stop the source's ingest with a savepoint; `ingest run` resumes from it."""
    from streaming.runner import stop

    settings, registry = load_platform()
    (spec,) = _streamed_sources(registry, (source,))
    with console.status(f"stopping the {source} ingest with a savepoint"):
        savepoint = stop(settings, spec)
    console.print(f"{source}: stopped, savepoint {savepoint}")


@ingest.command("kill")
@click.argument("source")
def ingest_kill(source: str) -> None:
    """Kill the source's ingest without a savepoint (it resumes from its last checkpoint)."""
    from streaming.runner import kill

    settings, registry = load_platform()
    (spec,) = _streamed_sources(registry, (source,))
    kill(settings, spec)
    console.print(f"{source}: killed")


@ingest.command("load")
@click.argument("source")
@click.option("--ds", "days", multiple=True, help="A day to load (repeatable; default: every complete day not loaded).")
def ingest_load(source: str, days: tuple[str, ...]) -> None:
    """Load landed days into raw.<source> (what the Dagster sensor does for each day once it is complete)."""
    from eventlog.landing import landed_days, load_landed_day
    from infra.spark import spark_session

    settings, registry = load_platform()
    (spec,) = _streamed_sources(registry, (source,))
    selected = days or tuple(d.ds for d in landed_days(settings, spec) if d.complete and not d.loaded)
    if not selected:
        console.print(f"{source}: every complete landed day is loaded (featctl ingest status {source})")
        return
    spark = spark_session(settings)
    for ds in selected:
        with console.status(f"loading {source} ds={ds} into {spec.table}"):
            rows = load_landed_day(spark, settings, spec, ds)
        console.print(f"{source} ds={ds}: {rows:,} landed events in {spec.table}")
