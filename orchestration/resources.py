"""Dagster resources: Spark (dagster-pyspark, configured by profile) and the online store's Redis."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from infra.redis_server import online_store_url


class OnlineStoreResource(dg.ConfigurableResource):
    """Where online features are published: a Redis URL, or a platform-run server under `local_dir`."""

    url: str | None = None
    local_dir: str
    prefix: str = "fp"
    chunk_rows: int = 500

    @contextmanager
    def redis_url(self) -> Iterator[str]:
        """The configured URL; without one, the platform's own persistent local server for the step."""
        with online_store_url(self.url, Path(self.local_dir)) as url:
            yield url
