"""Batch/stream consistency: every group with both queries computes the same values from the same events
of the event log (its raw tables, replayed into the stream in event-time order)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from streaming.consistency import check_consistency
from tests.conftest import LAST_DAY

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("event_log")]
DS = "2026-01-03"


# The days of each source a group's window reads as of DS (the first day of the sample is 2026-01-01).
REPLAYED_DAYS = {"user_activity": {"upvote_events": 3}, "user_upvotes": {"upvote_events": 3},
                 "subreddit_activity": {"upvote_events": 1, "post_events": 3},
                 "post_popularity": {"upvote_events": 3, "post_events": 3}}


@pytest.mark.parametrize("group_name", sorted(REPLAYED_DAYS))
def test_batch_and_stream_agree_for_every_group_with_both(spark, registry, settings, sample, group_name):
    assert {g.name for g in registry.groups.values() if g.stream} == set(REPLAYED_DAYS), "add new stream groups here"
    report = check_consistency(spark, registry, settings, registry.groups[group_name], DS)
    assert report.consistent, report.differences[:10]
    assert report.entities >= 10  # the tiny sample has 12 subreddits
    last = date.fromisoformat(DS)
    assert report.events == sum(len(sample.events(source, last - timedelta(days=back)))
                                for source, days in REPLAYED_DAYS[group_name].items() for back in range(days))


def test_a_diverging_pair_is_reported(spark, registry, settings):
    group = registry.groups["user_activity"]
    diverging = group.model_copy(update={"stream": group.stream.model_copy(update={
        "transform_sql": group.stream.transform_sql.replace("COUNT(DISTINCT post_id)", "COUNT(post_id)")})})
    report = check_consistency(spark, registry, settings, diverging, DS)
    assert not report.consistent
    assert any("distinct_posts_total: batch" in line for line in report.differences)
    assert not any("upvotes_total: batch" in line and "distinct" not in line for line in report.differences)


def test_the_stream_asset_check_shows_the_latest_diff(spark, registry, settings):
    """`stream/user_upvotes`'s consistency check, as Dagster runs it: the event log's newest day, passed."""
    import dagster as dg
    from dagster_pyspark import PySparkResource

    from orchestration.streaming_defs import stream_consistency_check

    check = stream_consistency_check(registry, settings, registry.groups["user_upvotes"])
    result = check(spark=PySparkResource(spark_config={}))
    assert isinstance(result, dg.AssetCheckResult) and result.passed, result.metadata
    assert result.metadata["ds"].value == LAST_DAY.isoformat()
    assert result.metadata["differing_values"].value == 0 and result.metadata["entities"].value > 100


def test_every_group_agrees_on_a_demo_size_event_log(tmp_path):
    """The demo's event log (60,000 upvotes a day over 20,000 users), two days of it in a data directory of
    its own: `featctl consistency --all` replays the raw tables' rows of each group's window through a
    bounded copy of its job and finds no differing value, for all four groups."""
    from tests.test_cli import _featctl

    written = _featctl("events", "generate", "--start", "2026-01-01", "--end", "2026-01-02", "--size", "demo",
                       data_dir=tmp_path)
    assert written.returncode == 0, written.stdout[-2000:] + written.stderr[-2000:]
    compared = _featctl("consistency", "--all", "--ds", "2026-01-02", data_dir=tmp_path, timeout=1200)
    assert compared.returncode == 0, compared.stdout[-3000:] + compared.stderr[-3000:]
    agreed = {line.split(":")[0]: int(line.split(" agree on ")[1].split(" ")[0].replace(",", ""))
              for line in compared.stdout.splitlines() if " agree on " in line}
    assert set(agreed) == set(REPLAYED_DAYS)
    assert agreed["user_upvotes"] > 10_000 and agreed["post_popularity"] > 3_000 and agreed["subreddit_activity"] > 20
