"""`dagster dev` as a test's own server: a fresh instance, its own data dir and Redis, a free loopback port.

The test starts it like a user would (`featctl events generate`, then `dagster dev -m orchestration.definitions`)
in its own process group, so stopping it also ends the webserver, the daemon, the code server and any run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.redis_server import free_loopback_port
from infra.settings import PROJECT_ROOT
from orchestration.runs import write_instance_config
from orchestration.webserver import start_dagster_dev, stop_process_group

START_SECONDS = 180  # measured 13 s on an idle machine; 2 busy cores can take many times that


@dataclass(frozen=True)
class DagsterDev:
    """A running `dagster dev`: where it answers and where it logs."""

    url: str
    log: Path
    env: dict[str, str]  # the environment it runs with, for the featctl commands a test runs beside it

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the server's combined output, for a failing test's report."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def platform_env(root: Path, redis_url: str, redis_prefix: str, partitions_start: str) -> dict[str, str]:
    """The environment of every process the test starts: a fresh data dir under `root`, whose Dagster instance
    (DAGSTER_HOME) is the one featctl uses, so `dagster dev` shows featctl's runs and backfills too."""
    home = root / "data" / "dagster"
    write_instance_config(home)  # the platform's instance settings, as featctl writes them
    return {**os.environ, "DAGSTER_HOME": str(home), "FP_PROFILE": "local", "FP_DATA_DIR": str(root / "data"),
            "FP_REDIS_URL": redis_url, "FP_REDIS_PREFIX": redis_prefix, "FP_PARTITIONS_START": partitions_start,
            "PYSPARK_PYTHON": sys.executable}


def generate_events(env: dict[str, str], start: str, end: str) -> None:
    """Write the tiny sample event log into the raw Hive tables of the env's data dir (one Spark JVM, then exit)."""
    featctl = Path(sys.executable).with_name("featctl")
    done = subprocess.run([str(featctl), "events", "generate", "--start", start, "--end", end, "--size", "tiny"],
                          env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"featctl events generate failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                           f"{done.stderr[-3000:]}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def dagster_dev(env: dict[str, str], log: Path) -> Iterator[DagsterDev]:
    """Run `dagster dev` on a free loopback port until the block ends; retries a lost port race."""
    for _attempt in range(3):
        port = free_loopback_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_dagster_dev(env, port, log)
        server = DagsterDev(url=url, log=log, env=env)
        try:
            deadline = time.monotonic() + START_SECONDS
            while proc.poll() is None and time.monotonic() < deadline and not _answers(url):
                time.sleep(0.5)
            if proc.poll() is None and _answers(url):
                yield server
                return
            if proc.poll() is None:
                raise RuntimeError(f"dagster dev did not answer {url}/server_info within {START_SECONDS} s:\n"
                                   f"{server.log_tail()}")
            if "address already in use" not in server.log_tail().lower():
                raise RuntimeError(f"dagster dev exited with {proc.returncode}:\n{server.log_tail()}")
        finally:
            stop_process_group(proc)
    raise RuntimeError(f"dagster dev lost the race for a free port three times:\n{server.log_tail()}")
