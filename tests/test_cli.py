"""featctl as a user runs it: the demo end to end in a fresh data directory, reads, the catalog, errors."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from eventlog.generator import RedditSample
from tests.conftest import featctl_process


def test_errors_are_one_line_with_the_fix(tmp_path):
    result = featctl_process("materialize", "--group", "nope", "--partition", "2026-01-05", data_dir=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "error: unknown feature group 'nope' (fix: use one of: post_popularity, subreddit_activity, user_activity, user_upvotes)" \
        in " ".join(result.stdout.split())
    bad_date = featctl_process("materialize", "--partition", "05/01/2026", data_dir=tmp_path)
    assert bad_date.returncode == 1 and "is not a date (fix: use YYYY-MM-DD)" in bad_date.stdout


@pytest.mark.slow
def test_demo_then_get_reads_what_the_demo_published(tiny_demo):
    """`make demo` in a clean data dir: own Redis started and stopped, values readable afterwards."""
    tmp_path = tiny_demo.data_dir
    assert "online/user_upvotes" in tiny_demo.printed and "demo done" in tiny_demo.printed
    assert not (tmp_path / "redis" / "server.json").exists(), "the demo must stop the Redis it started"
    assert (tmp_path / "redis" / "dump.rdb").exists()

    yesterday = tiny_demo.end
    sample = RedditSample(start=datetime(2026, 1, 1).date(), size="tiny")
    mine = [sample.upvotes(yesterday - timedelta(days=k)) for k in range(7)]
    mine = [frame[frame.user_id == 42] for frame in mine]
    upvotes_7d = sum(len(f) for f in mine)
    distinct_7d = len(set().union(*(set(f.post_id) for f in mine)))

    got = featctl_process("get", "user", "42", "user_upvotes.upvotes_7d", "user_upvotes.distinct_items_7d",
                   data_dir=tmp_path, timeout=120)
    assert got.returncode == 0, got.stdout + got.stderr
    lines = {line.split("│")[2].strip(): line.split("│")[3].strip()
             for line in got.stdout.splitlines() if line.startswith("│")}
    assert lines == {"user_upvotes.upvotes_7d": str(upvotes_7d), "user_upvotes.distinct_items_7d": str(distinct_7d)}
    assert f"{yesterday + timedelta(days=1)}T00:00:00+00:00" in got.stdout

    catalog = featctl_process("list", data_dir=tmp_path, timeout=120)
    assert catalog.returncode == 0
    assert f"ds={yesterday}" in catalog.stdout and "distinct_items_7d" in catalog.stdout

    # Every paired stream starts with one command, each continuing the batch history it replays.
    started = featctl_process("stream", "run", "--all", data_dir=tmp_path)
    try:
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
        assert {line.split(":")[0] for line in started.stdout.splitlines() if ": RUNNING" in line} == {
            "post_popularity", "subreddit_activity", "user_activity", "user_upvotes"}
        assert "note: no ingest runs for post_events, upvote_events: live events reach Redis but not the event log" \
            in " ".join(started.stdout.split()), started.stdout
        status = featctl_process("stream", "status", data_dir=tmp_path, timeout=120)
        states = [line.split("│")[2].strip() for line in status.stdout.splitlines()
                  if line.startswith("│") and line.split("│")[1].strip()]
        assert states == ["RUNNING"] * 4, status.stdout
        again = featctl_process("stream", "run", "--all", data_dir=tmp_path, timeout=120)
        assert "every stream is running already" in again.stdout
    finally:
        stopped = featctl_process("stream", "shutdown", data_dir=tmp_path)
    assert stopped.returncode == 0 and stopped.stdout.count(": savepoint") == 4, stopped.stdout


@pytest.mark.usefixtures("event_log")
def test_a_publish_without_redis_is_one_line_naming_the_online_store(workspace_featctl, settings):
    """Redis does not answer during `featctl materialize`: the command ends with one line naming the online
    store, its URL (no password) and what to do; the executors' tracebacks are in the data dir's spark.log,
    not on the terminal (which here includes what the Spark JVM printed)."""
    from infra.redis_server import free_loopback_port

    url = f"redis://:secret@127.0.0.1:{free_loopback_port()}/0"  # nothing listens there
    spark_log = settings.data_dir / "logs" / "spark.log"
    logged_before = spark_log.stat().st_size if spark_log.exists() else 0
    code, printed = workspace_featctl("materialize", "--group", "user_activity", "--partition", "2026-01-01",
                                      FP_REDIS_URL=url)
    assert code == 1
    shown = [line for line in printed.splitlines() if not line.startswith("WARNING: Using incubator")]
    assert len(" ".join(shown)) < 600 and "Traceback" not in printed, shown
    message = " ".join(" ".join(shown).split())
    assert message.startswith("error: partition 2026-01-01: step online__user_activity failed: the online store "
                              f"redis://:***@{url.split('@')[1]} did not answer: ConnectionError: ")
    assert "(fix: start Redis, or point FP_REDIS_URL at a running one, and run again" in message and "secret" not in message
    with open(spark_log, "rb") as log:
        log.seek(logged_before)
        assert b"redis.exceptions.ConnectionError" in log.read()
