"""Session fixtures: one private Redis on a free loopback port, one Spark session, one tiny event log."""

from __future__ import annotations

import sys
from datetime import date, timedelta

import pytest
import redis

from assets.registry import load_registry
from eventlog.generator import RedditSample
from infra.redis_server import local_redis
from infra.settings import load_settings

START = date(2026, 1, 1)
LAST_DAY = date(2026, 1, 10)
PARTITION = "2026-01-09"


def run_featctl(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """`featctl <args>` in this process, as its entry point runs it: (exit code, what it printed)."""
    from orchestration.cli import main

    monkeypatch.setattr(sys, "argv", ["featctl", *args])
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().out


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
