"""The hand-written windowed streams on real parts: subreddit_activity (upvotes joined with the posts they
went to) and post_popularity (two sources, the hot_score UDF in Flink), each through its generated PyFlink
job on the local mini-cluster into a real Redis, against plain Python over the same events.

Simulated time runs over days of posts and upvotes written file after file, as producers would send them:
at every step every served value equals tests/reference.py over the events sent so far. Along the way an
upvote is read before its post, a subreddit goes quiet and falls to zero (its name kept), a post line no
producer should send is dead-lettered, upvotes 30 min and 3 h late count (the allowed lateness defaults to the
1-day window) and one 30 h late is refused with the reason, and posts leave post_popularity's population when their creation leaves the window.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

import pytest

from serving.get_features import build_read_plan, get_features
from serving.online_store import WritePlan
from streaming import runner
from streaming.connectors import stream_directory
from tests.reference import post_popularity_at, subreddit_activity_at
from tests.test_streaming import _dead_letters, _line, _store, _wait_for_letters, _wait_until_landed, _write_lines

pytestmark = pytest.mark.slow
T0 = datetime(2026, 3, 1)
NAMES = {1: "r/python", 2: "r/rust", 3: "r/golang", 4: "r/quiet"}
QUIET, QUIET_AFTER = 4, T0 + timedelta(hours=18)
SUBREDDIT_FEATURES = ("name", "upvotes_1d", "distinct_upvoters_1d", "upvoted_posts_1d", "upvotes_per_post_1d")
POST_FEATURES = ("subreddit", "upvotes_7d", "upvotes_1d", "hot_score", "is_trending")


class Site:
    """Posts and upvotes of simulated time, chunk by chunk, in event-time order within each chunk. Every
    chunk ends with a post and an upvote of it half an hour before its end (so both streams' watermarks
    reach the same time and no tile boundary lies between the newest event and the watermark)."""

    def __init__(self, seed: int, chunk: timedelta, upvoted_for: timedelta):
        self.rng, self.chunk, self.upvoted_for = random.Random(seed), chunk, upvoted_for
        self.posts: list[dict] = []
        self.next_post = 1000

    def _post(self, subreddit: int, at: datetime) -> dict:
        self.next_post += 1
        return {"post_id": self.next_post, "author_id": self.rng.randrange(1, 50), "subreddit_id": subreddit,
                "subreddit": NAMES[subreddit], "title": f"post {self.next_post}", "event_time": at}

    def chunk_events(self, k: int) -> tuple[list[dict], list[dict]]:
        start, rng = T0 + k * self.chunk, self.rng
        span = int(self.chunk.total_seconds()) - 3600
        subreddits = [1, 2, 3] + ([QUIET] if start < QUIET_AFTER else [])
        posts = sorted((self._post(rng.choice(subreddits), start + timedelta(seconds=rng.randrange(span)))
                        for _ in range(rng.randrange(2, 5))), key=lambda p: p["event_time"])
        clock = start + self.chunk - timedelta(minutes=30)
        posts.append(self._post(1, clock))
        self.posts += posts
        upvotes = []
        for i in range(rng.randrange(12, 30)):
            at = start + timedelta(seconds=rng.randrange(span), microseconds=rng.randrange(10**6))
            open_posts = [p for p in self.posts if at - self.upvoted_for <= p["event_time"] <= at
                          and (p["subreddit_id"] != QUIET or at < QUIET_AFTER)]
            if open_posts:  # mostly the newest posts, so some trend
                chosen = rng.choice(open_posts[-3:] if rng.random() < 0.6 else open_posts)
                upvotes.append({"event_id": f"u{k}-{i}", "user_id": rng.randrange(1, 15),
                                "post_id": chosen["post_id"], "event_time": at})
        upvotes = sorted(upvotes, key=lambda u: u["event_time"])
        upvotes.append({"event_id": f"u{k}-clock", "user_id": 1, "post_id": posts[-1]["post_id"], "event_time": clock})
        return posts, upvotes


def _served(registry, store, prefix: str, entity: str, group: str, features: tuple, ids: list[int]) -> dict:
    plan = build_read_plan(registry, prefix, entity, [group])
    served = {}
    for row in get_features(store, plan, ids):
        values = tuple(row.values[f"{group}.{name}"] for name in features)
        if any(v is not None for v in values):
            served[row.entity_id] = values
    return served


def _setup(registry, settings, redis_url: str, tmp_path_factory, name: str) -> tuple:
    """A group's own data directory and Redis prefix, its store and write plan, and the post and upvote
    stream directories."""
    own = settings.model_copy(update={"data_dir": tmp_path_factory.mktemp(name), "redis_prefix": name[:2]})
    group = registry.groups[name]
    directories = tuple(stream_directory(own, registry.sources[s]) for s in ("post_events", "upvote_events"))
    return own, group, _store(redis_url), WritePlan.for_group(group, registry.entity_of(group), own.redis_prefix), directories


def test_subreddit_activity_joins_upvotes_with_their_posts_and_falls_when_a_subreddit_goes_quiet(
        registry, settings, redis_url, tmp_path_factory):
    own, group, store, plan, (posts_dir, upvotes_dir) = _setup(registry, settings, redis_url, tmp_path_factory,
                                                              "subreddit_activity")
    site = Site(seed=21, chunk=timedelta(hours=6), upvoted_for=timedelta(days=2))
    sent, quiet_counts = [], []
    bad_post = b'{"post_id": "seven", "author_id": 1, "subreddit_id": 1, "subreddit": "r/python", "title": null, ' \
               b'"event_time": "2026-03-01 13:00:00.000000"}'
    late_ok = late_refused = None
    runner.start(registry, own, group, redis_url)
    try:
        for k in range(14):
            posts, upvotes = site.chunk_events(k)
            if k == 10:  # behind the watermark (the previous chunk's newest event - 5 s): 30 min and 3 h are
                # merged (the allowed lateness is the 1-day window), 30 h is not
                newest, old_post = sent[-1]["event_time"], site.posts[0]["post_id"]
                late_ok = {"event_id": "late-ok", "user_id": 7, "post_id": old_post,
                           "event_time": newest - timedelta(minutes=30)}
                late_merged = {"event_id": "late-merged", "user_id": 9, "post_id": old_post,
                               "event_time": newest - timedelta(hours=3)}
                late_refused = {"event_id": "late-refused", "user_id": 8, "post_id": old_post,
                                "event_time": newest - timedelta(hours=30)}
                upvotes = [late_ok, late_merged, late_refused, *upvotes]
            post_lines = [_line(p) for p in posts] + ([bad_post] if k == 2 else [])
            files = [(posts_dir, f"posts-{k:03d}", post_lines), (upvotes_dir, f"upvotes-{k:03d}", [_line(u) for u in upvotes])]
            for directory, name, lines in (reversed(files) if k == 6 else files):  # k = 6: upvotes before their posts
                _write_lines(directory, name, lines)
            sent += [u for u in upvotes if u is not late_refused]
            newest = max(u["event_time"] for u in sent)
            _wait_until_landed(store, plan, newest)
            served = _served(registry, store, own.redis_prefix, "subreddit", group.name, SUBREDDIT_FEATURES, [*NAMES])
            assert served == subreddit_activity_at(site.posts, sent, newest), f"at {newest}"
            quiet_counts.append(served[QUIET][1])
        letters = _wait_for_letters(own, group, 2)  # while the job runs: its sink commits files at checkpoints
    finally:
        runner.kill(own, group)
    # The quiet subreddit: nothing after QUIET_AFTER, so its day count went up, then down to 0; its name stays.
    assert max(quiet_counts) > 0 and quiet_counts[-1] == 0
    assert served[QUIET] == (NAMES[QUIET], 0, 0, 0, None)
    by_source = {letter["source"]: letter for letter in letters}
    assert set(by_source) == {"post_events", "upvote_events+post_events"} and len(letters) == 2
    assert by_source["post_events"]["record"] == bad_post.decode()
    assert by_source["post_events"]["reason"] == "field 'post_id' should be int64, got string \"seven\""
    refused = by_source["upvote_events+post_events"]
    assert json.loads(refused["record"])["post_id"] == late_refused["post_id"]
    assert refused["reason"].startswith(f"late: event time {late_refused['event_time']} is ")
    assert "more than the allowed lateness of 86400 s: not counted online" in refused["reason"]
    assert len(_dead_letters(own, group)) == 2


def test_post_popularity_runs_its_udf_in_flink_for_the_posts_of_the_window(registry, settings, redis_url,
                                                                           tmp_path_factory):
    own, group, store, plan, (posts_dir, upvotes_dir) = _setup(registry, settings, redis_url, tmp_path_factory,
                                                              "post_popularity")
    site = Site(seed=8, chunk=timedelta(hours=12), upvoted_for=timedelta(days=9))
    sent, left_checked = [], 0
    runner.start(registry, own, group, redis_url)
    try:
        for k in range(20):
            posts, upvotes = site.chunk_events(k)
            _write_lines(posts_dir, f"posts-{k:03d}", [_line(p) for p in posts])
            _write_lines(upvotes_dir, f"upvotes-{k:03d}", [_line(u) for u in upvotes])
            sent += upvotes
            newest = upvotes[-1]["event_time"]
            _wait_until_landed(store, plan, newest)
            if k % 2 == 0:
                continue
            now = post_popularity_at(site.posts, sent, newest)
            expected = {}
            for post in site.posts:  # a post that left the window keeps what it held just before (as batch keeps it)
                left_at = post["event_time"].replace(minute=0, second=0, microsecond=0) + timedelta(days=7)
                if post["post_id"] in now:
                    expected[post["post_id"]] = now[post["post_id"]]
                else:
                    expected[post["post_id"]] = post_popularity_at(site.posts, sent, left_at - timedelta(microseconds=1))[post["post_id"]]
                    left_checked += 1
            served = _served(registry, store, own.redis_prefix, "post", group.name, POST_FEATURES,
                             [p["post_id"] for p in site.posts])
            assert served == expected, f"at {newest}"
    finally:
        runner.kill(own, group)
    assert left_checked > 10 and any(values[4] for values in expected.values())  # posts left; some trended
    assert _dead_letters(own, group) == []
