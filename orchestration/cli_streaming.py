"""featctl stream ... / events live / consistency: build, run, watch and stop a group's Flink job."""

from __future__ import annotations

import click
from rich.table import Table

from infra.errors import PlatformError
from infra.redis_server import lasting_online_store_url, redis_url_for, stop_local_redis
from orchestration.cli import SIZES, cli, console, events, load_platform, yesterday_utc

def _stream_redis_url(settings) -> str:
    """Streams outlive featctl: they use the configured Redis, or the platform's server left running."""
    return lasting_online_store_url(settings.redis_url, settings.data_dir / "redis")

@cli.group()
def stream() -> None:
    """Streaming jobs: stream/source.sql + transform.sql -> PyFlink job -> Redis."""

@stream.command("build")
@click.argument("group")
def stream_build(group: str) -> None:
    """Generate the group's run.py from its stream SQL under the active profile."""
    from streaming.codegen import build_job

    settings, registry = load_platform()
    console.print(f"wrote {build_job(registry, settings, registry.group(group))}")

@stream.command("run")
@click.argument("groups", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every group with a stream/ folder that is not running yet.")
def stream_run(groups: tuple[str, ...], every: bool) -> None:
    """Start (or resume from its last savepoint/checkpoint) each group's job on the local mini-cluster.

    The first start replays the group's window of the event log, so the stream continues the batch values.
    Several groups start at once, each in its own JVM (with cores to spare, in about the time of the slowest);
    each line says when one runs, and a group that fails to start does not stop the others."""
    from concurrent.futures import ThreadPoolExecutor

    from infra.spark import spark_session
    from streaming.codegen import stream_sources
    from streaming.runner import latest_restore_point, running_job, start
    from streaming.status import replay_text

    settings, registry = load_platform()
    if every == bool(groups):
        raise PlatformError("name the groups to start, or pass --all (not both)", "featctl stream run --all")
    selected = ([g for g in registry.groups.values() if g.stream and not running_job(settings, g)] if every
                else [registry.group(g) for g in groups])
    if every and not selected:
        console.print("every stream is running already (featctl stream status)")
        return
    url = _stream_redis_url(settings)
    first = {g.name for g in selected if latest_restore_point(settings, g) is None}  # these replay the event log
    spark = spark_session(settings) if first else None
    states = {g.name: "starting" + (", replaying the event log first" if g.name in first else "") for g in selected}
    with console.status("") as shown:
        def render() -> None:
            shown.update("; ".join(f"{n}: {s}" for n, s in states.items())
                         + (" (readers get the batch values until each live job takes over)" if first else ""))

        def show(name: str, state: str | None) -> None:
            if state is None:
                states.pop(name)
            else:
                states[name] = state
            render()

        def start_one(spec) -> None:
            process = start(registry, settings, spec, url, spark=spark if spec.name in first else None,
                            on_replay=lambda read, total, left: show(spec.name, "BOOTSTRAPPING, " + replay_text(
                                read, total, left)))
            show(spec.name, None)
            resumed = f", resumed from {process.restored_from}" if process.restored_from else ""
            console.print(f"{spec.name}: RUNNING (pid {process.pid}, Flink REST http://{process.rest}{resumed})")

        render()
        with ThreadPoolExecutor(max_workers=len(selected)) as pool:
            started = {spec.name: pool.submit(start_one, spec) for spec in selected}
    read = {s.name for g in selected for s in stream_sources(registry, g)}
    not_ingested = sorted(name for name in read if not running_job(settings, registry.sources[name]))
    if not_ingested:  # the streams count their events; only an ingest keeps them for the batch and replays
        console.print(f"note: no ingest runs for {', '.join(not_ingested)}: live events reach Redis but not the "
                      f"event log (raw tables), so the daily batch cannot count them: featctl ingest run "
                      f"{' '.join(not_ingested)}")
    failed = {name: future.exception() for name, future in started.items() if future.exception() is not None}
    for error in failed.values():  # a bug keeps its traceback; one failed start is its own error
        if len(failed) == 1 or not isinstance(error, PlatformError):
            raise error
    if failed:
        raise PlatformError("; ".join(f"{name}: {error}" for name, error in failed.items()))

@stream.command("history")
@click.argument("groups", nargs=-1)
def stream_history(groups: tuple[str, ...]) -> None:
    """Load the values each stream landed in Redis into its offline history (features.<group>_v<n>_streamed)."""
    from infra.spark import spark_session
    from offline.streamed_history import load_histories

    settings, registry = load_platform()
    selected = [registry.group(g) for g in groups] or [g for g in registry.groups.values() if g.stream]
    with console.status("loading the streamed history"):
        loaded = load_histories(spark_session(settings), registry, settings, selected)
    for name, rows in loaded.items():
        console.print(f"{name}: {rows:,} streamed rows loaded into the offline history")


@stream.command("status")
@click.argument("groups", nargs=-1)
def stream_status_command(groups: tuple[str, ...]) -> None:
    """State, records, watermark, last checkpoint, lag and dead letters of each stream."""
    from streaming.status import stream_status

    settings, registry = load_platform()
    selected = [registry.group(g) for g in groups] or [g for g in registry.groups.values() if g.stream]
    table = Table(title="streams")
    for column in ("group", "state", "records in", "rows sent / landed", "refused: ahead of clock", "max event time",
                   "watermark", "last checkpoint", "lag s", "dead letters"):
        table.add_column(column)
    causes = []
    with redis_url_for(settings) as url:
        for group in selected:
            s = stream_status(registry, settings, group, url)
            if s.cause:
                causes.append(f"{s.group} {s.state}: {s.cause}")
            when = lambda t: t.strftime("%Y-%m-%d %H:%M:%S") if t else "-"  # noqa: E731
            state = f"{s.state} ({s.bootstrap_progress()})" if s.replayed else s.state
            table.add_row(s.group, state, "-" if s.records_in is None else f"{s.records_in:,}",
                          f"{s.rows_written:,} / {s.rows_landed:,}", f"{s.rows_refused_ahead:,}", when(s.max_event_time),
                          when(s.watermark), when(s.last_checkpoint),
                          "-" if s.lag_seconds is None else f"{s.lag_seconds:.1f}", str(s.dead_letters))
    console.print(table)
    for cause in causes:
        console.print(cause, markup=False)

@stream.command("stop")
@click.argument("group")
def stream_stop(group: str) -> None:
    """Stop the group's job with a savepoint; `stream run` resumes from it."""
    from streaming.runner import stop

    settings, registry = load_platform()
    with console.status(f"stopping {group} with a savepoint"):
        savepoint = stop(settings, registry.group(group))
    console.print(f"{group}: stopped, savepoint {savepoint}")

@stream.command("kill")
@click.argument("group")
def stream_kill(group: str) -> None:
    """Kill the group's job without a savepoint (it resumes from its last checkpoint)."""
    from streaming.runner import kill

    settings, registry = load_platform()
    kill(settings, registry.group(group))
    console.print(f"{group}: killed")

@stream.command("repair")
@click.argument("group")
def stream_repair(group: str) -> None:
    """Derive the group's online values and streamed history again from the event log and the batch tables
    (after a bug or a bad deploy corrupted them): the other groups' values stay as they are."""
    from infra.spark import spark_session
    from streaming.repair import repair

    settings, registry = load_platform()
    spec = registry.group(group)
    with console.status(f"repairing {group}: republishing its newest batch partition, replaying the event log"):
        result = repair(spark_session(settings), registry, settings, spec, _stream_redis_url(settings))
    console.print(f"{group}: repaired, {result.changed:,} of {result.entities:,} entities changed "
                  f"(batch partition {result.republished or 'none'} republished, stream restarted from the event log)")

@stream.command("shutdown")
def stream_shutdown() -> None:
    """Stop every running stream and ingest with a savepoint, then the platform's own Redis server."""
    from streaming.runner import running_job, stop

    settings, registry = load_platform()
    for job in [*registry.groups.values(), *registry.sources.values()]:
        if job.stream and running_job(settings, job):
            console.print(f"{job.name}: savepoint {stop(settings, job)}")
    if stop_local_redis(settings.data_dir / "redis"):
        console.print("stopped the platform's Redis")

@events.command("live")
@click.option("--rate", default=100.0, show_default=True, help="Upvotes per second.")
@click.option("--seconds", default=60.0, show_default=True, help="How long to keep appending.")
@click.option("--malformed", default=0.0, show_default=True, help="Share of records broken on purpose (0..1).")
@click.option("--size", type=click.Choice(SIZES), default="demo", show_default=True,
              help="The sample site whose users and subreddits act (as `featctl demo --size`).")
def events_live(rate: float, seconds: float, malformed: float, size: str) -> None:
    """Append live events to the streams (the watched directories, or the Kafka topics on a profile with
    Kafka): upvotes, and the posts most of them go to (one post per 25 upvotes), one file (or flushed batch
    of messages) per second each, in time order."""
    import numpy as np

    from eventlog.generator import SIZES as SITES
    from eventlog.generator import subreddit_name
    from streaming.connectors import stream_sink
    from streaming.event_files import LiveUpvotes

    settings, registry = load_platform()
    if not 0 <= malformed <= 1:
        raise PlatformError(f"--malformed {malformed} is not a share", "use a number from 0 to 1")
    site = SITES[size]
    upvotes = stream_sink(settings, registry.sources["upvote_events"])
    subreddits = dict(enumerate(subreddit_name(np.arange(site.subreddits)).tolist()))
    recent_days = 3  # the other upvotes go to the sample site's posts of the last days (the event log's)
    yesterday_index = (yesterday_utc() - settings.partitions_start).days
    live = LiveUpvotes(upvotes, users=site.users, rate=rate, malformed_share=malformed,
                       posts=recent_days * site.posts_per_day,
                       first_post=max(0, yesterday_index - recent_days + 1) * site.posts_per_day,
                       posts_sink=stream_sink(settings, registry.sources["post_events"]), subreddits=subreddits)
    units = valid = 0
    with console.status(f"appending {rate:g} upvotes/s to {upvotes.where} (and their posts)"):
        for records in live.run(seconds):
            units, valid = units + 1, valid + len(records)
    console.print(f"wrote {units} {'batches' if settings.kafka_bootstrap_servers else 'files'}, {valid:,} valid "
                  f"upvotes and {len(live.live_posts):,} posts")

@cli.command()
@click.argument("groups", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every group with a stream/ folder.")
@click.option("--ds", default=None, help="Partition to compare (default: yesterday).")
def consistency(groups: tuple[str, ...], every: bool, ds: str | None) -> None:
    """Replay one slice of the event log through each group's batch query and Flink job, and diff the values."""
    from infra.spark import spark_session
    from streaming.consistency import check_consistency

    settings, registry = load_platform()
    if every == bool(groups):
        raise PlatformError("name the groups to compare, or pass --all (not both)", "featctl consistency --all")
    selected = [g for g in registry.groups.values() if g.stream] if every else [registry.group(g) for g in groups]
    day = ds or yesterday_utc().isoformat()
    disagreeing = []
    for group in selected:
        with console.status(f"replaying {group.name}'s event log up to {day} through Spark and Flink"):
            report = check_consistency(spark_session(settings), registry, settings, group, day)
        if report.consistent:
            console.print(f"{group.name}: batch and stream agree on {report.entities:,} entities "
                          f"({report.events:,} events up to {day})")
            continue
        disagreeing.append(f"{group.name} ({len(report.differences)} values)")
        console.print(f"{group.name}: batch and stream disagree on {len(report.differences)} values for ds={day}")
        for line in report.differences[:20]:
            console.print(f"  {line}")
    if disagreeing:
        raise PlatformError(f"batch and stream disagree for ds={day}: {', '.join(disagreeing)}",
                            "make each stream compute what its batch.sql computes")
