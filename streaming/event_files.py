"""The local stream: JSON-lines files in a watched directory, written the way Flink reads them safely.

Each file appears atomically (written under a hidden temp name, then renamed) and files are named in
event-time order, so the job never sees half a file and reads the directory as a log: file after file in
name order (runtime.create_file_lines), a backlog of waiting files included.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from assets.specs import Source

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def record_lines(frame: pd.DataFrame, source: Source) -> list[str]:
    """JSON lines for rows of a source's events, timestamps in Flink's SQL format (UTC, microseconds)."""
    columns = [c.name for c in source.columns]
    out = frame[columns].copy()
    for column in source.columns:
        if column.dtype == "timestamp":
            out[column.name] = out[column.name].dt.strftime(TIMESTAMP_FORMAT)
    return [json.dumps(record, separators=(",", ":")) for record in out.to_dict(orient="records")]


def write_file(directory: Path, name: str, lines: Iterable[str]) -> Path:
    """Write one stream file atomically: readers see all of it or nothing."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{name}.json"
    temp = directory / f".{name}.json.tmp"
    with open(temp, "w") as handle:
        for line in lines:
            handle.write(line + "\n")
    os.replace(temp, final)
    return final


class StreamSink(Protocol):
    """Where a producer appends a source's lines: one call, one unit (a file, or a flushed batch of messages).
    streaming.connectors.stream_sink gives the profile's."""

    where: str  # for people: the directory, or the topic and its brokers

    def append(self, name: str, lines: list[str]) -> None:
        """Append `lines` as one unit named `name` (a file's name), all of them or none visible to readers."""


class DirectorySink:
    """The local profile's stream: each append one JSON-lines file in the watched directory (write_file)."""

    def __init__(self, directory: Path):
        self.directory, self.where = directory, str(directory)

    def append(self, name: str, lines: list[str]) -> None:
        write_file(self.directory, name, lines)


def write_backlog(directory: Path, source: Source, frames: Iterable[pd.DataFrame], rows_per_file: int) -> int:
    """Write events (already in event-time order) as many files at once: a backlog for a starting job."""
    files = 0
    for frame in frames:
        lines = record_lines(frame, source)
        for start in range(0, len(lines), rows_per_file):
            first = frame[source.event_time].iloc[start]
            write_file(directory, f"{first:%Y%m%dT%H%M%S%f}-{files:06d}", lines[start:start + rows_per_file])
            files += 1
    return files


def newest_event_in(directory: Path, source: Source, max_bytes: int, max_clock_skew_seconds: int) -> datetime | None:
    """The newest event time of the valid lines in the stream files under `directory` (None: no file, or
    no valid line): what a job starting now finds as its backlog.
    Lines dated more than `max_clock_skew_seconds` ahead of now are not valid (the job dead-letters them)."""
    from quality.contracts import ClockGuard, check_line

    event_time = source.event_time_index
    clock = ClockGuard(max_clock_skew_seconds)
    newest = None
    for path in sorted(directory.glob("[!.]*")) if directory.is_dir() else ():
        with open(path, "rb") as handle:
            for line in handle:
                reason, values = check_line(source, line.rstrip(b"\n"), max_bytes, clock)
                if reason is None and (newest is None or values[event_time] > newest):
                    newest = values[event_time]
    return newest


MALFORMED = (
    ("not JSON", lambda rec: "{" + json.dumps(rec)[:-5]),
    ("missing key", lambda rec: json.dumps({k: v for k, v in rec.items() if k != "user_id"})),
    ("wrong type", lambda rec: json.dumps({**rec, "user_id": f"user-{rec['user_id']}"})),
    ("null key", lambda rec: json.dumps({**rec, "user_id": None})),
)


LIVE_POST_BASE = 2_000_000_000  # ids of live posts: above every post id of the sample site


@dataclass
class LiveUpvotes:
    """Upvotes happening now, at `rate` per second, a `malformed_share` of them broken on purpose.

    With a `posts_sink` (and the site's `subreddits`, id -> name) posts are created too, one per
    `upvotes_per_post` upvotes, and most upvotes go to the newest of them, as on a live site: the groups that
    join upvotes with their posts (subreddit_activity) or count the posts of the week (post_popularity)
    then move with the live stream. The other upvotes go to random old posts (`first_post` on).
    """

    sink: StreamSink  # where the upvote lines go
    users: int = 20_000
    posts: int = 10_000
    first_post: int = 0  # the old posts upvotes may go to: ids first_post .. first_post + posts - 1
    rate: float = 100.0
    malformed_share: float = 0.0
    seed: int = 11
    posts_sink: StreamSink | None = None
    subreddits: dict[int, str] = field(default_factory=dict)
    upvotes_per_post: int = 25
    hot_posts: int = 200  # the newest live posts most upvotes go to

    def __post_init__(self):
        self._rng = np.random.default_rng(self.seed)
        self._random = random.Random(self.seed)
        self._sequence = 0
        self._live_posts: list[int] = []
        self._post_carry = 0.0

    def new_posts(self, upvotes: int, now: datetime) -> list[str]:
        """The post lines created alongside `upvotes` upvotes at `now` (none without a posts sink)."""
        if self.posts_sink is None:
            return []
        self._post_carry += upvotes / self.upvotes_per_post
        count, self._post_carry = int(self._post_carry), self._post_carry - int(self._post_carry)
        stamp, lines = now.astimezone(timezone.utc).strftime(TIMESTAMP_FORMAT), []
        for _ in range(count):
            post_id = LIVE_POST_BASE + len(self._live_posts)
            subreddit = self._random.choice(sorted(self.subreddits))
            self._live_posts.append(post_id)
            lines.append(json.dumps({"post_id": post_id, "author_id": self._random.randrange(self.users),
                                     "subreddit_id": subreddit, "subreddit": self.subreddits[subreddit],
                                     "title": f"live post {post_id - LIVE_POST_BASE}", "event_time": stamp},
                                    separators=(",", ":")))
        return lines

    @property
    def live_posts(self) -> list[int]:
        """The ids of the posts created so far."""
        return list(self._live_posts)

    def _post_ids(self, count: int) -> list[int]:
        posts = (self.first_post + self._rng.integers(0, self.posts, count)).tolist()
        hot = self._live_posts[-self.hot_posts:]
        if hot:
            chosen = self._rng.integers(0, len(hot), count).tolist()
            live = self._rng.random(count) < 0.8
            posts = [hot[c] if is_live else old for c, is_live, old in zip(chosen, live.tolist(), posts)]
        return posts

    def batch(self, count: int, now: datetime) -> tuple[list[str], list[dict]]:
        """`count` upvote lines at `now`; returns the lines and the valid records among them."""
        users = self._rng.integers(0, self.users, count)
        posts = self._post_ids(count)
        lines, valid = [], []
        stamp = now.astimezone(timezone.utc).strftime(TIMESTAMP_FORMAT)
        for user, post in zip(users.tolist(), posts):
            self._sequence += 1
            record = {"event_id": f"live-{self.seed}-{self._sequence}", "user_id": user, "post_id": post,
                      "event_time": stamp}
            if self._random.random() < self.malformed_share:
                lines.append(self._random.choice(MALFORMED)[1](record))
            else:
                lines.append(json.dumps(record, separators=(",", ":")))
                valid.append(record)
        return lines, valid

    def run(self, seconds: float, interval: float = 1.0) -> Iterator[list[dict]]:
        """Append one unit (a file, or a batch of messages) per `interval` for `seconds`; yields the valid
        records of each."""
        deadline = time.monotonic() + seconds
        carry = 0.0
        while time.monotonic() < deadline:
            tick = time.monotonic()
            carry += self.rate * interval
            count, carry = int(carry), carry - int(carry)
            now = datetime.now(timezone.utc)
            posts = self.new_posts(count, now)
            if posts:  # before the upvotes that go to them
                self.posts_sink.append(f"{now:%Y%m%dT%H%M%S%f}-live", posts)
            lines, valid = self.batch(count, now)
            if lines:
                self.sink.append(f"{now:%Y%m%dT%H%M%S%f}-live", lines)
                yield valid
            time.sleep(max(0.0, interval - (time.monotonic() - tick)))
