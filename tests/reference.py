"""Expected feature values computed in pandas straight from the generated events, independent of Spark.

One function per example group, mirroring what its batch.sql means (not how it is written), so a test
compares the platform's Redis values with numbers derived another way.
"""

from __future__ import annotations

import importlib.util
from datetime import date, datetime, timedelta

import pandas as pd

from assets.registry import load_registry


def _window(sample, source: str, ds: str, days: int | None) -> pd.DataFrame:
    last = date.fromisoformat(ds)
    first = sample.start if days is None else max(sample.start, last - timedelta(days=days - 1))
    frames = []
    for day in sample.days(first, last):
        frame = sample.events(source, day)
        frames.append(frame.assign(ds=day.isoformat()))
    return pd.concat(frames, ignore_index=True)


def _hot_score():
    path = load_registry().groups["post_popularity"].udf_path
    spec = importlib.util.spec_from_file_location("reference_udf", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.hot_score


def _with_entities_that_left(active, sample, ds: str, empty: dict) -> pd.DataFrame:
    """What a windowed group's partition holds: the entities with events in its window (`active`) plus,
    with the `empty` values (other features as they were), those that had events in the previous day's
    window but have none in this one's."""
    now = active(sample, ds)
    previous_day = date.fromisoformat(ds) - timedelta(days=1)
    if previous_day < sample.start:
        return now
    before = active(sample, previous_day.isoformat())
    left = before.loc[before.index.difference(now.index)].copy()
    if left.empty:
        return now
    for column, value in empty.items():
        left[column] = pd.Series(value, index=left.index, dtype=now[column].dtype)
    return pd.concat([now, left])


def user_upvotes(sample, ds: str) -> pd.DataFrame:
    return _with_entities_that_left(_active_user_upvotes, sample, ds, {
        "upvotes_7d": 0, "distinct_items_7d": 0, "upvotes_1d": 0, "last_upvote_at": pd.NaT})


def _active_user_upvotes(sample, ds: str) -> pd.DataFrame:
    up = _window(sample, "upvote_events", ds, 7)
    grouped = up.groupby("user_id")
    return pd.DataFrame({
        "upvotes_7d": grouped.size(),
        "distinct_items_7d": grouped["post_id"].nunique(),
        "upvotes_1d": grouped["ds"].apply(lambda s: int((s == ds).sum())),
        "last_upvote_at": grouped["event_time"].max(),
    })


def subreddit_activity(sample, ds: str) -> pd.DataFrame:
    return _with_entities_that_left(_active_subreddit_activity, sample, ds, {
        "upvotes_1d": 0, "distinct_upvoters_1d": 0, "upvoted_posts_1d": 0, "upvotes_per_post_1d": None})


def _active_subreddit_activity(sample, ds: str) -> pd.DataFrame:
    up = _window(sample, "upvote_events", ds, 1)
    posts = _window(sample, "post_events", ds, None)
    joined = up.merge(posts[["post_id", "subreddit_id", "subreddit"]], on="post_id")
    grouped = joined.groupby("subreddit_id")
    frame = pd.DataFrame({
        "name": grouped["subreddit"].max(),
        "upvotes_1d": grouped.size(),
        "distinct_upvoters_1d": grouped["user_id"].nunique(),
        "upvoted_posts_1d": grouped["post_id"].nunique(),
    })
    frame["upvotes_per_post_1d"] = frame["upvotes_1d"] / frame["upvoted_posts_1d"]
    return frame


def post_popularity(sample, ds: str) -> pd.DataFrame:
    posts = _window(sample, "post_events", ds, 7).set_index("post_id")
    up = _window(sample, "upvote_events", ds, 7)
    up = up[up["post_id"].isin(posts.index)]
    upvotes_7d = up.groupby("post_id").size().reindex(posts.index, fill_value=0)
    upvotes_1d = up[up["ds"] == ds].groupby("post_id").size().reindex(posts.index, fill_value=0)
    created_seconds = posts["event_time"].astype("datetime64[us]").astype("int64") // 1_000_000
    hot = _hot_score()
    return pd.DataFrame({
        "subreddit": posts["subreddit"],
        "upvotes_7d": upvotes_7d,
        "upvotes_1d": upvotes_1d,
        "hot_score": [hot(int(n), int(s)) for n, s in zip(upvotes_7d, created_seconds)],
        "is_trending": upvotes_1d >= 5,
    })


def user_activity(sample, ds: str) -> pd.DataFrame:
    up = _window(sample, "upvote_events", ds, None)
    grouped = up.groupby("user_id")
    return pd.DataFrame({
        "upvotes_total": grouped.size(),
        "distinct_posts_total": grouped["post_id"].nunique(),
        "last_upvote_at": grouped["event_time"].max(),
    })


EXPECTED = {"user_upvotes": user_upvotes, "user_activity": user_activity, "subreddit_activity": subreddit_activity,
            "post_popularity": post_popularity}


def user_upvotes_at(events: list[dict], at) -> dict[int, tuple[int, int, int, object]]:
    """user_upvotes as the stream serves it at time `at` (naive UTC), from the events up to `at`: per user,
    (upvotes_7d, distinct_items_7d, upvotes_1d, last_upvote_at) over the 7-day and 1-day windows ending at
    `at` in whole hours (the oldest hour counted is the one after `at`'s hour, 7 or 1 days back); users
    whose windows hold no event have (0, 0, 0, None), users with no event up to `at` are left out."""
    hour = at.replace(minute=0, second=0, microsecond=0)
    week_from, day_from = hour + timedelta(hours=1) - timedelta(days=7), hour + timedelta(hours=1) - timedelta(days=1)
    by_user: dict[int, list[dict]] = {}
    for event in events:
        if event["event_time"] <= at:
            by_user.setdefault(event["user_id"], []).append(event)
    truth = {}
    for user, mine in sorted(by_user.items()):
        week = [e for e in mine if e["event_time"].replace(minute=0, second=0, microsecond=0) >= week_from]
        day = [e for e in week if e["event_time"].replace(minute=0, second=0, microsecond=0) >= day_from]
        truth[user] = (len(week), len({e["post_id"] for e in week}), len(day),
                       max((e["event_time"] for e in week), default=None))
    return truth


def _hour(at):
    return at.replace(minute=0, second=0, microsecond=0)


def _window_start(at, days: int):
    """The oldest whole hour the stream's window of `days` ending at `at` counts (the one after at's hour)."""
    return _hour(at) + timedelta(hours=1) - timedelta(days=days)


def subreddit_activity_at(posts: list[dict], upvotes: list[dict], at) -> dict[int, tuple]:
    """subreddit_activity as the stream serves it at `at` (naive UTC): per subreddit with an upvote up to `at`
    (on a known post, of any age), (name, upvotes, distinct upvoters, distinct posts, upvotes per post) over
    the 24 whole hours ending with at's hour; an empty window gives (name, 0, 0, 0, None)."""
    post_of = {p["post_id"]: p for p in posts if p["event_time"] <= at}
    start, windows = _window_start(at, 1), {}
    for upvote in upvotes:
        post = post_of.get(upvote["post_id"])
        if upvote["event_time"] > at or post is None:
            continue
        name, inside = windows.setdefault(post["subreddit_id"], (post["subreddit"], []))
        if _hour(upvote["event_time"]) >= start:
            inside.append(upvote)
    truth = {}
    for subreddit, (name, inside) in windows.items():
        posts_upvoted = len({u["post_id"] for u in inside})
        truth[subreddit] = (name, len(inside), len({u["user_id"] for u in inside}), posts_upvoted,
                            len(inside) / posts_upvoted if posts_upvoted else None)
    return truth


def post_popularity_at(posts: list[dict], upvotes: list[dict], at) -> dict[int, tuple]:
    """post_popularity as the stream serves it at `at` (naive UTC): per post created in the 7 days of whole
    hours ending with at's hour, (subreddit, upvotes_7d, upvotes_1d, hot_score, is_trending) over its
    upvotes up to `at` in the 7-day and 1-day windows."""
    week, day, hot = _window_start(at, 7), _window_start(at, 1), _hot_score()
    truth = {}
    for post in posts:
        if post["event_time"] > at or _hour(post["event_time"]) < week:
            continue
        mine = [u for u in upvotes if u["post_id"] == post["post_id"] and u["event_time"] <= at
                and _hour(u["event_time"]) >= week]
        last_day = sum(1 for u in mine if _hour(u["event_time"]) >= day)
        created_seconds = (post["event_time"] - datetime(1970, 1, 1)) // timedelta(seconds=1)
        truth[post["post_id"]] = (post["subreddit"], len(mine), last_day, hot(len(mine), created_seconds),
                                  last_day >= 5)
    return truth
