"""Every aggregation operation of assets/operations.py, declared in one group over windows of one and two days:
the batch partition Spark computes from the rendered batch.sql equals a plain-Python truth over the raw events,
and the window operator on Flink, replaying the same events, gives the same values (streaming/consistency.py).
Adding an operation is adding its row and a feature here."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pandas as pd
import pytest

from assets.aggregations import WindowPlan
from assets.operations import OPERATIONS
from assets.registry import load_registry, render_declared
from batch.feature_job import feature_query
from streaming.consistency import check_consistency
from streaming.windows import EntityWindows, to_us
from tests.conftest import LAST_DAY
from tests.quality.conftest import copy_registry

GROUP = "every_operation"
FEATURES = [  # name, dtype, aggregate
    ("upvotes_2d", "int64", "{operation: count, window: 2d}"),
    ("posts_counted_1d", "int64", "{operation: count, input: post_id, window: 1d}"),
    ("distinct_posts_2d", "int64", "{operation: count_distinct, input: post_id, window: 2d}"),
    ("post_sum_1d", "int64", "{operation: sum, input: post_id, window: 1d}"),
    ("lowest_post_2d", "int64", "{operation: min, input: post_id, window: 2d}"),
    ("last_upvote_at_2d", "timestamp", "{operation: max, input: event_time, window: 2d}"),
    ("latest_post_1d", "int64", "{operation: last, input: post_id, window: 1d}"),
    ("mean_post_2d", "float64", "{operation: avg, input: post_id, window: 2d}"),
    ("mean_post_1d", "float64", "{operation: avg, input: post_id, window: 1d}"),
]


@pytest.fixture(scope="module")
def operations_registry(tmp_path_factory):
    """The project's sources with one declared group using every operation, its files rendered."""
    root = copy_registry(tmp_path_factory.mktemp("operations") / "assets", ())
    folder = root / "features" / GROUP
    folder.mkdir(parents=True)
    (folder / "feature.yaml").write_text(
        "entity: user\nowner: team:ranking\ndescription: Every aggregation operation over one and two days.\n"
        "version: 1\nttl: 30d\nfreshness: 26h\naggregations: {source: upvote_events, tail: 1h, allowed_lateness: 1h}\nfeatures:\n"
        + "".join(f"  - {{name: {name}, dtype: {dtype}, description: {name}, aggregate: {aggregate}}}\n"
                  for name, dtype, aggregate in FEATURES))
    render_declared(folder, root)  # featctl render
    return load_registry(root)


def _truth(events: pd.DataFrame, ds: str) -> pd.DataFrame:
    """Plain pandas over the raw events: each feature per user with an upvote in the two days ending `ds`."""
    last = events[events.event_time.dt.strftime("%Y-%m-%d") == ds]
    rows = {}
    for user, mine in events.groupby("user_id"):
        today = last[last.user_id == user].sort_values(["event_time", "post_id"])
        rows[user] = {
            "upvotes_2d": len(mine), "posts_counted_1d": len(today), "distinct_posts_2d": mine.post_id.nunique(),
            "post_sum_1d": int(today.post_id.sum()), "lowest_post_2d": mine.post_id.min(),
            "last_upvote_at_2d": mine.event_time.max(),
            "latest_post_1d": today.post_id.iloc[-1] if len(today) else None,
            "mean_post_2d": sum(mine.post_id.tolist()) / len(mine),
            "mean_post_1d": sum(today.post_id.tolist()) / len(today) if len(today) else None}
    return pd.DataFrame.from_dict(rows, orient="index")


def test_every_operation_is_declared_here():
    declared = {aggregate.split(",")[0].removeprefix("{operation: ") for _, _, aggregate in FEATURES}
    assert declared == set(OPERATIONS)


def test_the_window_operator_keeps_every_operation_exactly_whatever_the_order_of_events(operations_registry):
    """The stream side alone, in plain Python: events of one user in shuffled order; at the newest event the
    window operator's values equal the windows ending then (whole hours back, the stream's semantics)."""
    plan = WindowPlan.for_group(operations_registry.groups[GROUP], operations_registry.sources["upvote_events"],
                                "user_id").typed({"post_id": "int64", "event_time": "timestamp"})
    rng = random.Random(7)
    start = datetime(2026, 1, 1)
    events = [{"post_id": rng.randrange(40), "event_time": start + timedelta(seconds=rng.randrange(3 * 86400))}
              for _ in range(400)]
    windows = EntityWindows(plan)
    for event in rng.sample(events, len(events)):
        windows.add(plan, to_us(event["event_time"]), tuple(event[name] for name in plan.inputs))
    newest = max(e["event_time"] for e in events)

    def within(days: int) -> list[dict]:
        oldest = newest.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1) - timedelta(days=days)
        return sorted((e for e in events if e["event_time"] >= oldest), key=lambda e: (e["event_time"], e["post_id"]))

    two, one = within(2), within(1)
    truth = {"upvotes_2d": len(two), "posts_counted_1d": len(one), "distinct_posts_2d": len({e["post_id"] for e in two}),
             "post_sum_1d": sum(e["post_id"] for e in one), "lowest_post_2d": min(e["post_id"] for e in two),
             "last_upvote_at_2d": to_us(newest), "latest_post_1d": one[-1]["post_id"],
             "mean_post_2d": sum(e["post_id"] for e in two) / len(two),
             "mean_post_1d": sum(e["post_id"] for e in one) / len(one)}
    assert dict(zip((f.name for f in plan.features), windows.values(plan))) == truth


@pytest.mark.slow
@pytest.mark.usefixtures("event_log")
def test_every_operation_in_batch_equals_plain_python_and_the_stream_agrees(operations_registry, spark, sample,
                                                                            settings):
    ds = LAST_DAY.isoformat()
    group = operations_registry.groups[GROUP]
    events = pd.concat([sample.events("upvote_events", LAST_DAY - timedelta(days=back)) for back in (1, 0)])
    truth = _truth(events, ds)
    batch = feature_query(spark, operations_registry, group, ds).toPandas().set_index("user_id")
    assert sorted(batch.index) == sorted(truth.index) and len(truth) > 100
    for name, dtype, _ in FEATURES:
        for user, wanted in truth[name].items():
            got = batch.at[user, name]
            assert (pd.isna(got) and pd.isna(wanted)) or got == wanted, (name, user, got, wanted)
    report = check_consistency(spark, operations_registry, settings, group, ds)
    assert report.consistent, report.differences[:20]
    assert report.entities == len(truth) and report.events == len(events)
