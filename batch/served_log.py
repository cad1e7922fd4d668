"""Load one day of a feature service's response log (serving/response_log.py) into its Hive table.

The log's JSON lines become one row per (response, id, feature) of `served.<service>` partition `ds`:
when it was served, the request time its on-demand features were computed at, the id, the feature,
its dtype, the value exactly as the caller received it (JSON text), the event time it held as of and
whether it was stale. Loading a day again replaces the partition, so a rerun changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import orjson
import pyarrow as pa

from assets.dtypes import SPARK_TYPES, arrow_type
from assets.offline_layout import PARTITION_COLUMN, SERVED_COLUMNS, ensure_table, served_table


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
