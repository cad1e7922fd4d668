"""Event sourcing: dropping the derived state and replaying the event log gives identical tables and Redis."""

from __future__ import annotations

import pytest
import redis

from infra.redis_server import local_redis
from orchestration.cli_operate import dagster_replay
from orchestration.factory import build_definitions
from orchestration.rebuild import plan_rebuild, rebuild
from serving.online_store import OnlineStore
from tests.serving.conftest import renamed_registry

PREFIX = "rb"


def _state(spark, registry, client) -> tuple[dict, dict]:
    """Every row of every group's offline table, and every platform hash in Redis (with whether it expires)."""
    tables = {}
    for group in registry.groups.values():
        if spark.catalog.tableExists(group.table):
            frame = spark.table(group.table)
            tables[group.table] = [tuple(row) for row in frame.orderBy(*frame.columns).collect()]
    online = {key: (client.hgetall(key), client.ttl(key) > 0) for key in client.scan_iter(match=f"{PREFIX}:*")}
    return tables, online


@pytest.mark.slow  # four Dagster runs of two groups (~1 min)
def test_rebuild_replays_the_event_log_into_identical_tables_and_redis(spark, event_log, registry, settings):
    platform = renamed_registry(registry, "rb", ("user_upvotes", "post_popularity"))
    with local_redis() as url:
        client = redis.Redis.from_url(url)
        client.set("other:user:1", "not derived from the event log")
        defs = build_definitions(platform, settings.model_copy(update={"redis_url": url, "redis_prefix": PREFIX}))
        replay = dagster_replay(defs, None)
        for ds in ("2026-01-06", "2026-01-04"):  # newest first: the event-time guard keeps the newer values
            replay(ds, list(platform.groups.values()))
        tables, online = before = _state(spark, platform, client)
        assert len(tables) == 2 and all(len(rows) > 100 for rows in tables.values())
        assert len(online) > 300 and all(expires for _, expires in online.values())

        plan = plan_rebuild(spark, platform)
        assert plan.days == ["2026-01-04", "2026-01-06"]
        states_seen_by_replay = []

        def recording_replay(ds, groups):
            states_seen_by_replay.append(_state(spark, platform, client))
            replay(ds, groups)

        summary = rebuild(spark, platform, OnlineStore(client), PREFIX, plan, recording_replay)
        assert states_seen_by_replay[0] == ({}, {}), "the derived state is gone before the replay starts"
        assert sorted(summary.dropped_tables) == sorted(tables)
        assert summary.deleted_keys == len(online)
        assert _state(spark, platform, client) == before
        assert client.get("other:user:1") == b"not derived from the event log"
        client.close()
