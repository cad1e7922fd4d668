"""A deterministic sample of the seed's Reddit domain: users, subreddits, posts, and upvotes per day.

Every day's events depend only on (seed, day), so any slice can be regenerated exactly: tests compute
their reference values from the same frames the event log was written from. Activity is skewed like a
real site: a few users upvote a lot, a few posts collect most upvotes, and posts get upvotes for a few
days after they are created.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

POST_LIFETIME_DAYS = 4
TOPICS = ("python", "datascience", "machinelearning", "programming", "rust", "golang", "aww", "science",
          "worldnews", "gaming", "movies", "books", "music", "askreddit", "todayilearned", "space")


@dataclass(frozen=True)
class DomainSize:
    """How big the sample site is."""

    users: int
    subreddits: int
    posts_per_day: int
    upvotes_per_day: int


SIZES = {
    "tiny": DomainSize(users=300, subreddits=12, posts_per_day=60, upvotes_per_day=3_000),
    "small": DomainSize(users=5_000, subreddits=30, posts_per_day=500, upvotes_per_day=15_000),
    "demo": DomainSize(users=20_000, subreddits=60, posts_per_day=2_000, upvotes_per_day=60_000),
    "bench": DomainSize(users=1_000_000, subreddits=2_000, posts_per_day=40_000, upvotes_per_day=720_000),
}


def subreddit_name(subreddit_id: np.ndarray) -> np.ndarray:
    """r/<topic><n>: names are a pure function of the id."""
    topics = np.array(TOPICS)[subreddit_id % len(TOPICS)]
    suffix = np.where(subreddit_id < len(TOPICS), "", (subreddit_id // len(TOPICS)).astype(str))
    return np.char.add(np.char.add("r/", topics), suffix)


def _skewed(rng: np.random.Generator, n: int, size: int, exponent: float) -> np.ndarray:
    """`size` draws from 0..n-1 with a power-law popularity (rank r has weight 1/(r+1)^exponent)."""
    u = rng.random(size)
    if exponent == 1.0:
        return np.minimum((np.exp(u * np.log(n + 1)) - 1).astype(np.int64), n - 1)
    a = 1.0 - exponent
    ranks = ((u * ((n + 1) ** a - 1) + 1) ** (1 / a)) - 1
    return np.minimum(ranks.astype(np.int64), n - 1)


class RedditSample:
    """The sample site from `start` on; `day(d)` gives that day's events as pandas frames."""

    def __init__(self, start: date, size: DomainSize | str = "tiny", seed: int = 7):
        self.start = start
        self.size = SIZES[size] if isinstance(size, str) else size
        self.seed = seed

    def _day_index(self, day: date) -> int:
        index = (day - self.start).days
        if index < 0:
            raise ValueError(f"{day} is before the sample's start {self.start}")
        return index

    def posts(self, day: date) -> pd.DataFrame:
        """Posts created on `day` (the post_events source)."""
        i = self._day_index(day)
        n = self.size.posts_per_day
        rng = np.random.default_rng([self.seed, i, 0])
        subreddit_id = _skewed(rng, self.size.subreddits, n, 0.9)
        day_start = np.datetime64(datetime.combine(day, datetime.min.time()), "us")
        offsets = np.sort(rng.integers(0, 86_400_000_000, n)).astype("timedelta64[us]")
        titles = np.char.add("post ", (i * n + np.arange(n)).astype(str)).astype(object)
        titles[rng.random(n) < 0.05] = None
        return pd.DataFrame({
            "post_id": i * n + np.arange(n, dtype=np.int64),
            "author_id": _skewed(rng, self.size.users, n, 1.1),
            "subreddit_id": subreddit_id,
            "subreddit": subreddit_name(subreddit_id).astype(object),
            "title": titles,
            "event_time": day_start + offsets,
        })

    def upvotes(self, day: date) -> pd.DataFrame:
        """Upvotes given on `day` (the upvote_events source), to posts of the last few days, in time order."""
        i = self._day_index(day)
        recent = pd.concat([self.posts(day - timedelta(days=k)) for k in range(POST_LIFETIME_DAYS)
                            if (day - timedelta(days=k)) >= self.start], ignore_index=True)
        rng = np.random.default_rng([self.seed, i, 1])
        n = self.size.upvotes_per_day
        post_row = _skewed(rng, len(recent), n, 1.0)
        created = recent["event_time"].to_numpy()[post_row]
        day_start = np.datetime64(datetime.combine(day, datetime.min.time()), "us")
        earliest = np.maximum(created, day_start)
        span = (day_start + np.timedelta64(86_400_000_000, "us") - earliest).astype(np.int64)
        event_time = earliest + (rng.random(n) * span).astype(np.int64).astype("timedelta64[us]")
        frame = pd.DataFrame({
            "event_id": np.char.add(f"up-{i}-", np.arange(n).astype(str)).astype(object),
            "user_id": _skewed(rng, self.size.users, n, 1.1),
            "post_id": recent["post_id"].to_numpy()[post_row],
            "event_time": event_time,
        })
        return frame.sort_values("event_time", kind="stable").reset_index(drop=True)

    def events(self, source: str, day: date) -> pd.DataFrame:
        """One source's events on `day`."""
        return {"post_events": self.posts, "upvote_events": self.upvotes}[source](day)

    def days(self, first: date, last: date) -> list[date]:
        return [first + timedelta(days=k) for k in range((last - first).days + 1)]
