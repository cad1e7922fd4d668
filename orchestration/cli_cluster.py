"""featctl commands for the cluster profile on this machine: `featctl cluster up|down|status`."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.table import Table

from infra.local_cluster import ENGINES, PROFILE_FILE, ClusterState, down, up
from infra.settings import PROJECT_ROOT
from orchestration.cli import cli, console

DEFAULT_DIR = PROJECT_ROOT / ".data" / "cluster"
DIR_OPTION = click.option("--dir", "directory", type=click.Path(path_type=Path), default=DEFAULT_DIR,
                          show_default=True, help="Where the clusters keep their state, logs and profile.")


@cli.group()
def cluster() -> None:
    """Spark standalone, a Flink session cluster and Redis Cluster on loopback, for FP_PROFILE=<dir>/profile.yaml."""


def _show(state: ClusterState) -> None:
    table = Table(title=f"clusters under {state.directory}")
    for column in ("process", "pid", "ports", "running"):
        table.add_column(column)
    for process in state.processes:
        table.add_row(process.role, str(process.pid), ", ".join(f"{k} {v}" for k, v in process.ports.items()),
                      "yes" if process.alive() else "[red]no[/]")
    console.print(table)
    for name, url in state.urls.items():
        console.print(f"[bold]{name}[/] {url}", highlight=False)


@cluster.command("up")
@DIR_OPTION
@click.option("--spark-workers", default=1, show_default=True, help="Spark standalone workers (one core each).")
@click.option("--kafka", is_flag=True, help="Also a Kafka-compatible broker, whose topics the streams then read.")
def cluster_up(directory: Path, spark_workers: int, kafka: bool) -> None:
    """Start the clusters (stopping the ones a previous `up` left) and write the profile that uses them."""
    started = time.monotonic()
    state = up(directory, spark_workers, ENGINES + ("kafka",) if kafka else ENGINES)
    _show(state)
    console.print(f"up in {time.monotonic() - started:.0f} s. Use them: "
                  f"export FP_PROFILE={Path(state.directory) / PROFILE_FILE}", highlight=False)


@cluster.command("down")
@DIR_OPTION
def cluster_down(directory: Path) -> None:
    """Stop every process `cluster up` started there."""
    stopped = down(directory)
    console.print(f"stopped {len(stopped)} processes" + (f": {', '.join(stopped)}" if stopped else ""),
                  highlight=False)


@cluster.command("status")
@DIR_OPTION
def cluster_status(directory: Path) -> None:
    """What `cluster up` started there, and whether each process still runs."""
    state = ClusterState.load(directory)
    if state is None:
        console.print(f"no clusters under {directory}: featctl cluster up", highlight=False)
        return
    _show(state)
