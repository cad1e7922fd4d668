"""Load one day of a feature service's response log (serving/response_log.py) into its Hive table.

The log's JSON lines become one row per (response, id, feature) of `served.<service>` partition `ds`:
when it was served, the request time its on-demand features were computed at, the id, the feature,
its dtype, the value exactly as the caller received it (JSON text), the event time it held as of and
whether it was stale. Loading a day again replaces the partition, so a rerun changes nothing. The
logged days also make a training set of exactly the values served (`logged_training_set`).
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import orjson
import pyarrow as pa

from assets.dtypes import SPARK_TYPES, arrow_type
from assets.offline_layout import PARTITION_COLUMN, SERVED_COLUMNS, ensure_table, served_table
from assets.registry import Registry


def served_rows(log_dir: Path, service: str, ds: str) -> pa.Table:
    """The logged responses of `service` served on day `ds`, one row per id and feature."""
    columns: dict[str, list] = {name: [] for name, _ in SERVED_COLUMNS}
    for path in sorted((Path(log_dir) / f"{PARTITION_COLUMN}={ds}").glob("*.jsonl")):
        for text in path.read_bytes().splitlines():
            line = orjson.loads(text)
            if line["service"] != service:
                continue
            served_at = datetime.fromisoformat(line["served_at"])
            request_time = datetime.fromisoformat(line["request"]["time"])
            dtypes = {f["name"]: f["dtype"] for f in line["response"]["features"]}
            for row in line["response"]["rows"]:
                for feature, value in row["values"].items():
                    event_time = row["event_times"][feature]
                    for name, item in (("served_at", served_at), ("request_time", request_time),
                                       ("entity_id", str(row["entity_id"])), ("feature", feature),
                                       ("dtype", dtypes[feature]), ("value", orjson.dumps(value).decode()),
                                       ("event_time", None if event_time is None else datetime.fromisoformat(event_time)),
                                       ("stale", row["stale"][feature])):
                        columns[name].append(item)
    return pa.table({name: pa.array(columns[name], arrow_type(dtype)) for name, dtype in SERVED_COLUMNS})


def load_served(spark, log_dir: Path, service: str, ds: str) -> int:
    """Replace partition `ds` of `served.<service>` with that day's log; the number of rows written."""
    table = served_table(service)
    ensure_table(spark, table, SERVED_COLUMNS)
    rows = served_rows(log_dir, service, ds)
    schema = ", ".join(f"`{name}` {SPARK_TYPES[dtype]}" for name, dtype in SERVED_COLUMNS)
    spark.createDataFrame(rows.to_pandas(), schema=schema).createOrReplaceTempView("_fp_served_rows")
    names = ", ".join(f"`{name}`" for name, _ in SERVED_COLUMNS)
    spark.sql(f"INSERT OVERWRITE TABLE {table} PARTITION ({PARTITION_COLUMN}='{ds}') SELECT {names} FROM _fp_served_rows")
    return rows.num_rows


def _decoded(dtype: str, text: str):
    """A served value back from its JSON text (timestamps and dates as ISO text, non-finite floats as text)."""
    value = orjson.loads(text)
    if value is None:
        return None
    if dtype == "timestamp":
        return datetime.fromisoformat(value)
    if dtype == "date":
        return date.fromisoformat(value)
    return float(value) if dtype == "float64" else value


def logged_training_set(spark, registry: Registry, service: str, days: list[str]) -> pa.Table:
    """A training set from what the service served on `days` (as Chronon's bootstrap): one row per response
    and id, with the entity key, `request_time`, `served_at` and the service's features as served, named as
    training sets name them (`<group>__<feature>`), oldest first. Join labels to it by key and time."""
    from offline.training_set import output_column
    from serving.on_demand import select_service

    entity, selection = select_service(registry, service)
    key = registry.entities[entity]
    quoted = ", ".join(f"'{ds}'" for ds in days)
    served = spark.table(served_table(service)).where(f"{PARTITION_COLUMN} IN ({quoted})").toArrow()
    rows: dict[tuple, dict] = {}
    for served_at, request_time, entity_id, feature, value in zip(
            *(served[c].to_pylist() for c in ("served_at", "request_time", "entity_id", "feature", "value"))):
        rows.setdefault((served_at, entity_id), {"request_time": request_time})[feature] = value
    ordered = sorted(rows.items(), key=lambda item: item[0])
    columns = {key.key: pa.array([entity_id for (_, entity_id), _ in ordered]).cast(arrow_type(key.dtype)),
               "request_time": pa.array([r["request_time"] for _, r in ordered], arrow_type("timestamp")),
               "served_at": pa.array([at for (at, _), _ in ordered], arrow_type("timestamp"))}
    for name, dtype in zip(selection.outputs, selection.dtypes):
        columns[output_column(name)] = pa.array([None if name not in r else _decoded(dtype, r[name])
                                                 for _, r in ordered], arrow_type(dtype))
    return pa.table(columns)
