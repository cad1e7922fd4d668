"""`dagster dev` (web UI, daemon, code server) as a child process group that can always be stopped whole.

`featctl ui` and the browser tests start it the same way: in its own process group, so stopping it also
ends the daemon, the code server and any run's Spark JVM, and with SIGINT at its default, because dagster
dev stops on SIGTERM by treating it as SIGINT, and a process started from the background of a
non-interactive shell inherits SIGINT as ignored.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from infra.settings import PROJECT_ROOT

STOP_GRACE_SECONDS = 30


def start_dagster_dev(env: dict[str, str], port: int, output: Path | None = None) -> subprocess.Popen:
    """Start `dagster dev` on 127.0.0.1:`port`; output to `output` or inherited.

    It loads the code location pyproject.toml names ([tool.dagster]: orchestration.definitions, as feature_platform).
    """
    command = [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(port)]
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if output is None:
            return subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, start_new_session=True)
        with output.open("ab") as out:
            return subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, previous)


def stop_process_group(process: subprocess.Popen, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
    """End `process`'s whole group: SIGTERM lets dagster dev stop its children, SIGKILL ends what is left."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # whatever outlived the leader, e.g. a run's Spark JVM
    except ProcessLookupError:
        pass
    process.wait()
