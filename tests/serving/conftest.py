"""Fixtures of the serving tests: isolated copies of the registry, feature history, observations, servers.

Every destructive or table-writing test here works on renamed groups (`<tag>_<group>`: their own offline
tables and Redis fields) under its own Redis key prefix or its own redis-server, so the session's shared
tables and Redis stay as the other test modules expect them.
"""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from assets.registry import Registry
from infra.redis_server import free_loopback_port
from tests.conftest import START

HISTORY_DAYS = [date(2026, 1, 3) + timedelta(days=2 * k) for k in range(4)]  # 2026-01-03, -05, -07, -09
HISTORY_GROUPS = ("user_upvotes", "post_popularity")


def renamed_registry(registry: Registry, tag: str, groups=None) -> Registry:
    """A registry whose groups are called `<tag>_<name>`: same SQL and sources, separate tables and fields."""
    renamed = {f"{tag}_{name}": group.model_copy(update={"name": f"{tag}_{name}"})
               for name, group in registry.groups.items() if groups is None or name in groups}
    return Registry(root=registry.root, entities=registry.entities, sources=registry.sources, groups=renamed)


@pytest.fixture(scope="session")
def pit_registry(registry):
    """Renamed copies of the groups the training-set tests join (tables features.pit_<group>_v1)."""
    return renamed_registry(registry, "pit", HISTORY_GROUPS)


@pytest.fixture(scope="session")
def feature_history(spark, event_log, pit_registry):
    """Four daily partitions of each pit_ group, computed by the batch job from the tiny event log."""
    from batch.feature_job import materialize_partition

    for group in pit_registry.groups.values():
        for day in HISTORY_DAYS:
            materialize_partition(spark, pit_registry, group, day.isoformat())
    return pit_registry


@pytest.fixture(scope="session")
def generated_observations(sample) -> pd.DataFrame:
    """The seed's observations: every upvote of four days as (user_id, post_id, event_time, label=1), plus
    negatives at random times from before the first partition to weeks after the last (TTL expiry)."""
    upvotes = pd.concat([sample.upvotes(START + timedelta(days=k)) for k in (1, 4, 6, 9)], ignore_index=True)
    rng = np.random.default_rng(5)
    n = 3_000
    negatives = pd.DataFrame({
        "user_id": rng.integers(0, sample.size.users + 20, n),
        "post_id": rng.integers(0, 10 * sample.size.posts_per_day, n),
        "event_time": pd.Timestamp("2026-01-02") + pd.to_timedelta(rng.integers(0, 50 * 86_400, n), unit="s"),
    })
    frame = pd.concat([upvotes[["user_id", "post_id", "event_time"]].assign(label=1), negatives.assign(label=0)],
                      ignore_index=True)
    frame["event_time"] = frame["event_time"].astype("datetime64[us]").dt.tz_localize("UTC")
    return frame.assign(obs_id=np.arange(len(frame)))


class ServerThread:
    """A uvicorn server for a FeatureService on a free loopback port, run in a thread until `stop()`."""

    def __init__(self, service):
        from serving.service import uvicorn_server

        self.port = free_loopback_port()
        self.server = uvicorn_server(service, self.port)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the feature service did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *_exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
