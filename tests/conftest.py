"""Shared test setup: per worker one private Redis on a free loopback port, one Spark session and one tiny
event log; per test session one `featctl demo` and one `dagster dev`; featctl in this process or as its own
process; and the xdist scheduler that keeps each module (or group of modules sharing a process) in one worker."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis

from assets.registry import load_registry
from eventlog.generator import RedditSample
from infra.redis_server import local_redis
from infra.settings import PROJECT_ROOT, load_settings

# Every JVM the suite starts (Spark, Flink jobs and clusters, in this process or in featctl's) compiles with C1
# only and collects with the serial collector: the suite's JVMs live seconds to minutes on small data, where C2's
# compile threads cost more CPU than they save (measured: a third less CPU, a fifth less wall time). Semantics
# are the JVM's either way; benchmarks/ and the platform itself keep the JVM's defaults.
TEST_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
if TEST_JVM_OPTIONS not in os.environ.get("JDK_JAVA_OPTIONS", ""):
    os.environ["JDK_JAVA_OPTIONS"] = f"{os.environ.get('JDK_JAVA_OPTIONS', '')} {TEST_JVM_OPTIONS}".strip()

START = date(2026, 1, 1)
LAST_DAY = date(2026, 1, 10)
PARTITION = "2026-01-09"
FEATCTL = str(Path(sys.executable).parent / "featctl")


def featctl_process(*args: str, data_dir: Path, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    """`featctl <args>` as its own process, as a user's shell runs it: no FP_* variable but the data dir and
    `env`; stdout and stderr as text."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FP_")}
    environment.update({"FP_DATA_DIR": str(data_dir), "COLUMNS": "200", **env})
    return subprocess.run([FEATCTL, *args], cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True,
                          timeout=timeout)


def run_featctl(monkeypatch, capsys, *args: str, with_stderr: bool = False) -> tuple[int, str]:
    """`featctl <args>` in this process, as its entry point runs it: (exit code, what it printed to stdout, and
    to stderr after it `with_stderr`). `capsys` may be pytest's capfd, to include what the JVMs printed."""
    from orchestration.cli import main

    monkeypatch.setattr(sys, "argv", ["featctl", *args])
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    printed = capsys.readouterr()
    return code, printed.out + (printed.err if with_stderr else "")


@dataclass(frozen=True)
class Demo:
    """One `featctl demo --size tiny --days 2` in a fresh data dir: what it printed and what it served."""

    data_dir: Path
    end: date  # its last partition: yesterday when the session ran it (a demo run after midnight UTC passes it too)
    printed: str
    served: dict[bytes, dict[bytes, bytes]]  # every entity hash of its Redis right after it stopped


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> Demo:
    """The demo as `make demo` runs it (its own process, Spark, Redis and Dagster instance), run once per test
    session: the local-profile reference the cluster profile must serve byte for byte, and the data dir whose
    published values `featctl get` and the streams start from."""
    data_dir = tmp_path_factory.mktemp("demo")
    end = datetime.now(timezone.utc).date() - timedelta(days=1)
    result = featctl_process("demo", "--size", "tiny", "--days", "2", "--end", end.isoformat(), data_dir=data_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with local_redis(data_dir / "redis", persist=True) as url:
        served = served_hashes(url)
    return Demo(data_dir=data_dir, end=end, printed=result.stdout, served=served)


def served_hashes(url: str) -> dict[bytes, dict[bytes, bytes]]:
    """Every entity hash of the store at `url` (a Redis or a Redis Cluster), not the streams' progress or
    history keys."""
    from serving.online_store import connect

    client = connect(url)
    keys = [k for k in client.scan_iter(match="fp:*", count=1000) if not k.startswith(b"fp:_")]
    served = {key: client.hgetall(key) for key in keys}
    client.close()
    return served


UI_REDIS_PREFIX = "ui"


@pytest.fixture(scope="session")
def ui_redis():
    """The Redis the UI's runs publish to (under UI_REDIS_PREFIX): a server of its own on a free port."""
    with local_redis() as url:
        yield url


@pytest.fixture(scope="session")
def dagster_ui(tmp_path_factory, ui_redis):
    """`dagster dev` as a user starts it, once per test session, on a free loopback port: a fresh instance (the
    one featctl uses in its data dir) and data dir holding the tiny event log, publishing to `ui_redis`."""
    from tests.e2e.dagster_process import dagster_dev, generate_events, platform_env

    root = tmp_path_factory.mktemp("ui")
    env = platform_env(root, ui_redis, UI_REDIS_PREFIX, START.isoformat())
    generate_events(env, START.isoformat(), LAST_DAY.isoformat())
    with dagster_dev(env, root / "dagster-dev.log") as server:
        yield server


@pytest.fixture
def workspace_featctl(monkeypatch, capfd, settings):
    """`featctl` in this process on the test session's workspace (its data dir, catalog, Spark and Redis), as a
    user's shell with those FP_* variables runs it; `run(*args, FP_X=...)` adds variables for one test (a
    registry copy of renamed groups, a Redis key prefix of its own), so its tables and keys are its own.
    What it printed is stdout then stderr, with what the JVMs printed meanwhile (file-descriptor capture)."""
    base = {"FP_PROFILE": "local", "FP_DATA_DIR": str(settings.data_dir), "FP_REDIS_URL": settings.redis_url,
            "FP_PARTITIONS_START": settings.partitions_start.isoformat()}
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home))  # featctl's dagster_instance() sets it

    def run(*args: str, **env: str) -> tuple[int, str]:
        for name, value in {**base, **env}.items():
            monkeypatch.setenv(name, value)
        return run_featctl(monkeypatch, capfd, *args, with_stderr=True)

    return run


# Modules using a session fixture that starts whole processes (the demo, `dagster dev`): under xdist they run
# in one worker, so each is started once (every worker has session fixtures of its own). Collection checks
# that every module using one is listed.
SHARED_PROCESS_MODULES = {"tests/test_cli.py": "tiny_demo", "tests/test_cluster_profile.py": "tiny_demo",
                          "tests/e2e/test_dagster_ui.py": "dagster_ui",
                          "tests/operate/test_backfills_page.py": "dagster_ui"}
# The work units that take minutes (pytest --durations), longest first: handed out first, so the short
# modules fill in around them instead of one long unit running alone at the end.
LONGEST_FIRST = ("tiny_demo", "tests/test_streaming.py", "tests/test_windowed_stream.py", "dagster_ui",
                 "tests/test_stream_bootstrap.py", "tests/test_stream_repair.py",
                 "tests/test_consistency.py", "tests/test_joined_streams.py", "tests/operate/test_backfill.py")


def work_unit(nodeid: str) -> str:
    """What one xdist worker runs whole, in order: the test's module, or the shared-process group it is in."""
    module = nodeid.split("::", 1)[0]
    return SHARED_PROCESS_MODULES.get(module, module)


def pytest_collection_modifyitems(config, items):
    """Order the tests by work unit, LONGEST_FIRST first (stable: a module's own order is kept); refuse a module
    that uses a shared-process fixture without being in SHARED_PROCESS_MODULES."""
    shared = set(SHARED_PROCESS_MODULES.values())
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        for name in shared.intersection(item.fixturenames) - {SHARED_PROCESS_MODULES.get(module)}:
            raise pytest.UsageError(f"{module} uses the session fixture {name}: add it to SHARED_PROCESS_MODULES "
                                    "in tests/conftest.py")
    rank = {unit: k for k, unit in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(work_unit(item.nodeid), len(rank)))


def pytest_xdist_make_scheduler(config, log):
    """`make test`'s scheduler (`-n 2 --dist loadscope --no-loadscope-reorder`): each work_unit runs whole in one
    worker, units handed out in collection order. (xdist's own loadgroup marks a group on `item._nodeid`,
    which pytest 9 no longer reads, so it would split every module.)"""
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return WorkUnitScheduling(config, log)


@pytest.fixture(scope="session")
def redis_url():
    """A redis-server of the test session's own, on a free port, stopped at the end."""
    with local_redis() as url:
        yield url


@pytest.fixture(scope="session")
def redis_cluster():
    """A Redis Cluster of the test session's own (3 masters, 3 replicas, free ports), stopped at the end."""
    from infra.redis_cluster import local_redis_cluster

    with local_redis_cluster() as cluster:
        yield cluster


@pytest.fixture
def redis_client(redis_url):
    """A client on an empty store."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def settings(tmp_path_factory, redis_url):
    """Settings pointing every engine at the session's temporary data directory and Redis."""
    return load_settings(profile="local", data_dir=tmp_path_factory.mktemp("data"), redis_url=redis_url,
                         partitions_start=START)


@pytest.fixture(scope="session")
def registry():
    return load_registry()


@pytest.fixture(scope="session")
def sample():
    """The deterministic tiny sample site the event log is written from."""
    return RedditSample(start=START, size="tiny")


@pytest.fixture(scope="session")
def spark(settings):
    """The one Spark session (Hive support, embedded metastore) of the test session."""
    from infra.spark import spark_session

    session = spark_session(settings)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def event_log(spark, registry, sample):
    """The tiny event log, START..LAST_DAY, in the raw Hive tables."""
    from eventlog.hive import write_event_log

    days = [START + timedelta(days=k) for k in range((LAST_DAY - START).days + 1)]
    return write_event_log(spark, registry, sample, days)
