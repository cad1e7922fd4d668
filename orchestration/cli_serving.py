"""featctl commands of serving and training: serve, training-set (attached to the `featctl` group)."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import click
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from infra.errors import PlatformError
from infra.redis_server import redis_url_for
from offline.training_set import ENGINES, TIME_COLUMN
from orchestration.cli import cli, console, load_platform


def _check_port_free(host: str, port: int) -> None:
    """Fail with the fix, before Redis and the service start, when `host:port` is taken."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            raise PlatformError(f"port {port} on {host} is in use", "pass --port or set FP_SERVING_PORT") from None


@cli.command()
@click.option("--port", type=int, default=None, help="Port (default: FP_SERVING_PORT, 8600).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: FP_SERVING_WORKERS, else one per core).")
def serve(port: int | None, workers: int | None) -> None:
    """Start the feature service (POST /features, /healthz, /metrics, /openapi.json) on FP_SERVING_HOST."""
    from serving.service import FeatureService, run_workers, uvicorn_server

    settings, registry = load_platform()
    host, port = settings.serving_host, port or settings.serving_port
    workers = workers or settings.serving_workers or os.cpu_count() or 1
    _check_port_free(host, port)
    with redis_url_for(settings) as url:
        auth = "API token required" if settings.serving_api_token else "no API token (set FP_SERVING_API_TOKEN)"
        console.print(f"feature service on http://{host}:{port}  ({workers} worker{'s' if workers > 1 else ''}; {auth}; "
                      f"Redis prefix {settings.redis_prefix!r}; Ctrl-C stops it)", highlight=False)
        if workers == 1:
            uvicorn_server(FeatureService.from_settings(settings, registry, url), port, host).run()
        else:
            run_workers(workers, port, host, url, settings.data_dir / "serving" / f"metrics-{port}")


class StepProgress:
    """One line per training-set step with its elapsed time; Spark steps also show their running stage's tasks."""

    def __init__(self, progress: Progress, spark):
        self.progress = progress
        self.spark = spark
        self.task = None
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_spark, daemon=True)

    def __call__(self, step: str) -> None:
        self._finish_step()
        self.task = self.progress.add_task(step, total=None, tasks="")

    def _finish_step(self) -> None:
        if self.task is not None:
            self.progress.update(self.task, total=1, completed=1, tasks="")

    def _poll_spark(self) -> None:
        tracker = self.spark.sparkContext.statusTracker()
        while not self._stop.wait(0.5):
            stages = [s for s in map(tracker.getStageInfo, tracker.getActiveStageIds()) if s is not None]
            if stages and self.task is not None:
                done, total = sum(s.numCompletedTasks for s in stages), sum(s.numTasks for s in stages)
                self.progress.update(self.task, tasks=f"Spark: {done}/{total} tasks of stage "
                                                      f"{', '.join(str(s.stageId) for s in stages)}")

    def __enter__(self) -> StepProgress:
        self._poller.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._poller.join()
        self._finish_step()


@cli.command("training-set")
@click.option("--observations", type=click.Path(exists=True, path_type=Path), required=True,
              help="Parquet file or directory: entity key columns, the time column, label, any other columns.")
@click.option("--features", default=None, help="Comma-separated refs: group, group.feature, group@vN.feature.")
@click.option("--service", default=None, help="A feature service (assets/services/) instead of --features.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Parquet output path.")
@click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
              help="pandas for inputs that fit in memory, Spark for more; auto picks by row count.")
@click.option("--time-column", default=TIME_COLUMN, show_default=True, help="Observation time column.")
def training_set(observations: Path, features: str | None, service: str | None, out: Path, engine: str,
                 time_column: str) -> None:
    """Write a point-in-time-correct training set: each observation with the features (or the feature
    service's features, on-demand ones computed at the observation time) as of its time."""
    from infra.spark import spark_session
    from offline.streamed_history import load_histories
    from offline.training_set import plan_joins, write_training_set
    from serving.on_demand import select, select_service

    if (features is None) == (service is None):
        raise PlatformError("pass either --features or --service", "e.g. --features user_upvotes or --service ranking")
    settings, registry = load_platform()
    selection = (select_service(registry, service)[1] if service
                 else select(registry, [ref.strip() for ref in features.split(",") if ref.strip()]))
    refs = list(selection.reads)  # the stored features joined (on-demand ones are computed from them)
    with console.status("starting Spark, loading the streamed history"):
        spark = spark_session(settings)
        joined = {join.group.name: join.group for join in plan_joins(registry, refs)}
        load_histories(spark, registry, settings, joined.values())
    columns = (TextColumn("{task.description}"), SpinnerColumn(finished_text="[green]done"),
               TimeElapsedColumn(), TextColumn("{task.fields[tasks]}"))
    with Progress(*columns, console=console) as progress, StepProgress(progress, spark) as steps:
        summary = write_training_set(spark, registry, observations, selection, out, engine, time_column,
                                     on_step=steps)
    table = Table(title=f"training set {out}: {summary.rows:,} rows ({summary.engine}, {summary.seconds:.1f} s)")
    table.add_column("feature values as of")
    table.add_column("rows with values", justify="right")
    for column, filled in summary.filled.items():
        table.add_row(column, f"{filled:,} ({filled / max(summary.rows, 1):.0%})")
    console.print(table)
