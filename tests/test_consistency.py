"""Batch/stream consistency: every group with both queries computes the same values from the same events
of the event log (its raw tables, replayed into the stream in event-time order)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from eventlog.generator import RedditSample
from streaming.consistency import check_consistency
from tests.conftest import LAST_DAY

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("event_log")]
DS = "2026-01-03"
LOG_DS = "2026-01-02"  # the small site's log holds 2026-01-01 and this day

# The days of each source a group's window reads as of LOG_DS (the first day of the sample is 2026-01-01):
# the 1-day windows leave the first day out, the longer ones read both.
REPLAYED_DAYS = {"user_activity": {"upvote_events": 2}, "user_upvotes": {"upvote_events": 2},
                 "subreddit_activity": {"upvote_events": 1, "post_events": 2},
                 "post_popularity": {"upvote_events": 2, "post_events": 2}}


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


def test_every_group_agrees_on_a_small_site_event_log(registry, tmp_path):
    """The small site's event log (15,000 upvotes a day over 5,000 users: five times tiny, many Arrow batches
    and heavy users), two days of it in a data directory of its own: `featctl consistency --all` replays the
    raw tables' rows of each group's window through a bounded copy of its job and finds no differing value,
    for all four groups, over exactly the events of each group's window. This is the one consistency check of
    every group (beyond tiny, across a day end); the demo size is a measurement (make bench-consistency)."""
    from tests.conftest import featctl_process

    assert {g.name for g in registry.groups.values() if g.stream} == set(REPLAYED_DAYS), "add new stream groups here"
    written = featctl_process("events", "generate", "--start", "2026-01-01", "--end", LOG_DS, "--size", "small",
                              data_dir=tmp_path)
    assert written.returncode == 0, written.stdout[-2000:] + written.stderr[-2000:]
    compared = featctl_process("consistency", "--all", "--ds", LOG_DS, data_dir=tmp_path, timeout=1200)
    assert compared.returncode == 0, compared.stdout[-3000:] + compared.stderr[-3000:]
    agreed = {}
    for line in compared.stdout.splitlines():
        if " agree on " in line:  # "<group>: batch and stream agree on N entities (M events up to D)"
            entities, events = line.split(" agree on ")[1].split(" entities (")
            agreed[line.split(":")[0]] = (int(entities.replace(",", "")), int(events.split(" ")[0].replace(",", "")))
    assert set(agreed) == set(REPLAYED_DAYS)
    sample, last = RedditSample(start=date(2026, 1, 1), size="small"), date.fromisoformat(LOG_DS)
    for group, days_by_source in REPLAYED_DAYS.items():
        assert agreed[group][1] == sum(len(sample.events(source, last - timedelta(days=back)))
                                       for source, days in days_by_source.items() for back in range(days)), group
    assert agreed["user_upvotes"][0] > 3_000 and agreed["post_popularity"][0] > 800
    assert agreed["subreddit_activity"][0] == 30
