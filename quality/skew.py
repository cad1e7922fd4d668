"""Online/offline skew of a feature service: what was served against what the offline history says.

For each logged (id, request time) of one day of `served.<service>`, the point-in-time training set of
the service (offline/training_set.py, the same on-demand functions at the same request time) gives the
value a model trained offline would have seen. Per feature, the report counts the served values that
differ from it and keeps examples, so a skewed feature is named with the rows that show it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime

import orjson
import pyarrow as pa

from assets.dtypes import arrow_type
from assets.offline_layout import PARTITION_COLUMN, served_table
from assets.registry import Registry
from offline.training_set import output_column, training_set_pandas
from serving.on_demand import select_service

TIME = "request_time"
MAX_EXAMPLES = 10


@dataclass
class FeatureSkew:
    """One feature's served values against their offline point-in-time values."""

    compared: int = 0
    differing: int = 0
    examples: list[dict] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.differing / self.compared if self.compared else 0.0


@dataclass(frozen=True)
class SkewReport:
    """Per feature of the service (in its order), for one day of its log."""

    service: str
    ds: str
    features: dict[str, FeatureSkew]

    @property
    def differing(self) -> int:
        return sum(f.differing for f in self.features.values())


def _as_served(value) -> str:
    """An offline value as the service's JSON would have carried it (non-finite floats as text)."""
    if isinstance(value, float) and not math.isfinite(value):
        value = repr(value)
    if isinstance(value, (datetime, date)):
        value = value.isoformat()
    return orjson.dumps(value).decode()


def skew_report(spark, registry: Registry, service: str, ds: str) -> SkewReport:
    """Compare partition `ds` of `served.<service>` with the offline values at each logged request time."""
    entity, selection = select_service(registry, service)
    key = registry.entities[entity]
    features = {name: FeatureSkew() for name in selection.outputs}
    if not spark.catalog.tableExists(served_table(service)):  # nothing was ever logged
        return SkewReport(service, ds, features)
    served = spark.table(served_table(service)).where(f"{PARTITION_COLUMN} = '{ds}'").toArrow()
    if served.num_rows == 0:
        return SkewReport(service, ds, features)
    ids = served["entity_id"].to_pylist()
    times = served[TIME].cast(arrow_type("timestamp")).to_pylist()
    pairs = list(dict.fromkeys(zip(ids, times)))
    observations = pa.table({key.key: pa.array([i for i, _ in pairs]).cast(arrow_type(key.dtype)),
                             TIME: pa.array([t for _, t in pairs], arrow_type("timestamp"))})
    offline = training_set_pandas(spark, registry, observations, selection, time_column=TIME).to_pylist()
    expected = {(str(row[key.key]), row[TIME]): row for row in offline}
    for entity_id, moment, name, value in zip(ids, times, served["feature"].to_pylist(), served["value"].to_pylist()):
        if name not in features:
            continue
        skew = features[name]
        offline_value = _as_served(expected[entity_id, moment][output_column(name)])
        skew.compared += 1
        if offline_value != value:
            skew.differing += 1
            if len(skew.examples) < MAX_EXAMPLES:
                skew.examples.append({"id": entity_id, "request_time": moment.isoformat(), "served": value,
                                      "offline": offline_value})
    return SkewReport(service, ds, features)
