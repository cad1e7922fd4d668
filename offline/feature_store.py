"""The first seed's feature-store API: log observations as they happen, then turn them into training data.

    store = FeatureStore(["user_upvotes"], entity="user")
    store.append_observation(user_id, post_id, now())        # the seed: append_observation(userId, postId, now())
    training = store.generate_training_set()                  # each observation with the features as of its time

The seed replays events up to each observation (`process_events_until`) and reads the features then; the
offline history already holds every value with the event time it held from, so the replay is an as-of join
(offline/training_set.py) and gives the same rows. Observations are kept forever like the event log: one
JSON-lines file per day under `<data_dir>/observations/<log>/`, appended one line per observation.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pandas as pd

from assets.dtypes import nullable_pandas_types
from assets.registry import Registry, load_registry
from infra.errors import PlatformError
from infra.settings import Settings, load_settings
from offline.streamed_history import load_histories
from offline.training_set import TIME_COLUMN, plan_joins, training_set_pandas, training_set_spark

LABEL_COLUMN = "label"


class FeatureStore:
    """Observations of one entity, logged as they happen, and the training sets joining them with features."""

    def __init__(self, features: Sequence[str], entity: str, log: str = "observations",
                 settings: Settings | None = None, registry: Registry | None = None, spark=None):
        self.settings = settings or load_settings()
        self.registry = registry or load_registry(self.settings.registry_dir)
        if entity not in self.registry.entities:
            raise PlatformError(f"unknown entity {entity!r}", f"use one of: {', '.join(sorted(self.registry.entities))}")
        self.features = list(features)
        self.key = self.registry.entities[entity].key
        self.log_dir = self.settings.data_dir / "observations" / log
        self._spark = spark

    def append_observation(self, entity_id, label, ts: datetime | None = None, **columns) -> None:
        """Log that `label` was observed for `entity_id` at `ts` (default: now, UTC; naive times are UTC).

        Extra keyword columns are kept with the observation, e.g. `post_id=...` to join post features too.
        """
        ts = ts or datetime.now(timezone.utc)
        ts = ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
        line = orjson.dumps({self.key: entity_id, TIME_COLUMN: ts, LABEL_COLUMN: label, **columns},
                            option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{ts.astimezone(timezone.utc):%Y-%m-%d}.jsonl", "ab") as log:
            log.write(line)  # one write of one line in append mode: concurrent writers do not interleave

    def observations(self) -> pd.DataFrame:
        """Every logged observation, oldest first (in logging order at equal times), times as UTC timestamps."""
        files: list[Path] = sorted(self.log_dir.glob("*.jsonl"))
        records = [orjson.loads(line) for path in files for line in path.read_bytes().splitlines() if line]
        if not records:
            raise PlatformError(f"no observations logged under {self.log_dir}", "call append_observation first")
        frame = pd.DataFrame.from_records(records)
        frame[TIME_COLUMN] = pd.to_datetime(frame[TIME_COLUMN], utc=True, format="ISO8601").astype("datetime64[us, UTC]")
        return frame.sort_values(TIME_COLUMN, kind="stable", ignore_index=True)

    def _spark_session(self):
        if self._spark is None:
            from infra.spark import spark_session

            self._spark = spark_session(self.settings)
        return self._spark

    def generate_training_set(self, engine: str = "pandas") -> pd.DataFrame:
        """The logged observations, each with the store's features as they were at its time (never later),
        after loading what the streams of those groups landed in Redis into their offline history."""
        spark = self._spark_session()
        observations = self.observations()
        load_histories(spark, self.registry, self.settings, {j.group.name: j.group for j in
                                                             plan_joins(self.registry, self.features)}.values())
        if engine == "spark":
            table = training_set_spark(spark, self.registry, spark.createDataFrame(observations), self.features).toArrow()
        elif engine == "pandas":
            table = training_set_pandas(spark, self.registry, observations, self.features)
        else:
            raise PlatformError(f"unknown engine {engine!r}", "use pandas or spark")
        return table.to_pandas(types_mapper=nullable_pandas_types().get)
