"""`featctl backfill` beside a running `dagster dev`: its backfills and the UI's are alike on the Backfills page.

Everything runs as a user runs it, in its own processes on a fresh data dir: the sample event log,
`dagster dev` (webserver and daemon), `featctl backfill`, and a backfill launched through the webserver's
GraphQL API with the mutation the UI's launch dialog sends, which the daemon then runs.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from orchestration.backfills import LAUNCH  # the mutation the UI's launch dialog sends
from infra.settings import PROJECT_ROOT
from tests.e2e.dagster_graphql import graphql

DAYS = ["2026-01-08", "2026-01-09", "2026-01-10"]
GROUP_ASSETS = ["features/user_upvotes", "online/user_upvotes"]
DAEMON_SECONDS = 600  # the daemon looks every 30 s, then a run starts its own process and JVM on 2 busy cores

BACKFILLS_PAGE = """
query Backfills {
  partitionBackfillsOrError {
    ... on PartitionBackfills {
      results {
        id status isAssetBackfill
        assetBackfillData { assetBackfillStatuses { ... on AssetPartitionsStatusCounts {
          assetKey { path } numPartitionsTargeted numPartitionsMaterialized numPartitionsFailed } } }
      }
    }
  }
}"""

RUNS_OF_BACKFILL = """
query RunsOfBackfill($backfillId: String!) {
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $backfillId}]}) {
    ... on Runs { results { runId status } }
  }
}"""

TERMINAL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def _backfills_page(url: str) -> dict[str, dict]:
    """The Backfills page's rows by id: status and each asset's (targeted, materialized, failed) partitions."""
    rows = graphql(url, BACKFILLS_PAGE)["partitionBackfillsOrError"]["results"]
    return {row["id"]: {"status": row["status"], "asset_backfill": row["isAssetBackfill"],
                        "partitions": {"/".join(s["assetKey"]["path"]): (
                            s["numPartitionsTargeted"], s["numPartitionsMaterialized"], s["numPartitionsFailed"])
                            for s in row["assetBackfillData"]["assetBackfillStatuses"]}} for row in rows}


def _featctl_backfill(env: dict[str, str]) -> str:
    """`featctl backfill` of DAYS for user_upvotes, as a user types it; the backfill id it prints."""
    done = subprocess.run([str(Path(sys.executable).with_name("featctl")), "backfill", "--start", DAYS[0], "--end",
                           DAYS[-1], "--group", "user_upvotes"], env={**env, "COLUMNS": "200"}, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [backfill_id] = re.findall(r"Backfills page as (\S+)", done.stdout)
    assert f"backfill {backfill_id}: COMPLETED_SUCCESS" in " ".join(done.stdout.split())
    return backfill_id


def _ui_backfill(url: str) -> str:
    """The UI launch dialog's backfill of the group's features and online publish for DAYS, run by the daemon."""
    params = {"assetSelection": [{"path": key.split("/")} for key in GROUP_ASSETS], "partitionNames": DAYS,
              "fromFailure": False, "tags": []}
    launched = graphql(url, LAUNCH, backfillParams=params)["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    deadline = time.monotonic() + DAEMON_SECONDS
    while time.monotonic() < deadline:
        status = _backfills_page(url)[launched["backfillId"]]["status"]
        if status in TERMINAL:
            assert status == "COMPLETED_SUCCESS"
            return launched["backfillId"]
        time.sleep(3)
    raise TimeoutError(f"the daemon did not settle backfill {launched['backfillId']} within {DAEMON_SECONDS} s")


def _redis_snapshot(client: redis.Redis) -> dict[bytes, dict[bytes, bytes]]:
    return {key: client.hgetall(key) for key in sorted(client.scan_iter())}


@pytest.mark.slow
def test_featctl_and_ui_backfills_share_the_backfills_page_and_reruns_leave_redis_byte_identical(dagster_ui, ui_redis):
    server = dagster_ui  # featctl below uses the instance it serves (the data dir's), as `featctl ui` does
    client = redis.Redis.from_url(ui_redis)
    before = _redis_snapshot(client)
    try:
        from_featctl = _featctl_backfill(server.env)
        published = _redis_snapshot(client)
        assert published != before
        assert sum(b"user_upvotes:v1:upvotes_7d" in fields for fields in published.values()) > 10
        from_ui = _ui_backfill(server.url)  # a rerun of featctl's range, by the daemon
        assert _redis_snapshot(client) == published
        # More reruns of either kind are tests/operate/test_backfill.py's (in process, the same assertions).

        page = _backfills_page(server.url)
        assert set(page) == {from_featctl, from_ui}
        for backfill_id, assets in ((from_featctl, ["raw/upvote_events", *GROUP_ASSETS]),
                                    (from_ui, GROUP_ASSETS)):
            assert page[backfill_id]["status"] == "COMPLETED_SUCCESS" and page[backfill_id]["asset_backfill"]
            assert page[backfill_id]["partitions"] == {a: (len(DAYS), len(DAYS), 0) for a in assets}
            # one run each: the daemon beside featctl did not submit featctl's backfill again
            runs = graphql(server.url, RUNS_OF_BACKFILL, backfillId=backfill_id)["runsOrError"]["results"]
            assert [r["status"] for r in runs] == ["SUCCESS"]
    except AssertionError:
        print(server.log_tail())
        raise
    finally:
        client.close()
