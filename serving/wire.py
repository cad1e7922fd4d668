"""The JSON form of GetFeatures results, written by the service and read back by the HTTP client.

JSON has no timestamps, dates or non-finite floats, so the response names each feature's declared dtype
and the client turns values back into the exact Python values the in-process client returns: timestamps
and dates travel as ISO 8601 text, `inf`, `-inf` and `nan` as those strings (plain JSON would turn them
into null), int64 as JSON integers (exact: Python parses them without a float step).
"""

from __future__ import annotations

import math
from datetime import date, datetime

import orjson

from serving.get_features import FeatureRow, ReadPlan


def response_body(plan: ReadPlan, rows: list[FeatureRow]) -> bytes:
    """The JSON body answering a GetFeatures request (rows are changed in place for non-finite floats)."""
    float_refs = [ref for ref, dtype in zip(plan.refs, plan.dtypes) if dtype == "float64"]
    for row in rows if float_refs else ():
        for ref in float_refs:
            value = row.values[ref]
            if value is not None and not math.isfinite(value):
                row.values[ref] = repr(value)
    return orjson.dumps({"entity": plan.entity,
                         "features": [{"name": ref, "dtype": dtype} for ref, dtype in zip(plan.refs, plan.dtypes)],
                         "rows": rows})


_FROM_JSON = {
    "timestamp": datetime.fromisoformat,
    "date": date.fromisoformat,
    "float64": float,
}


def rows_from_body(body: bytes) -> list[FeatureRow]:
    """FeatureRows equal to the in-process client's, from a response body of `response_body`."""
    payload = orjson.loads(body)
    converters = [(f["name"], _FROM_JSON[f["dtype"]]) for f in payload["features"] if f["dtype"] in _FROM_JSON]
    instants: dict[str, datetime] = {}
    rows = []
    for row in payload["rows"]:
        values = row["values"]
        for name, convert in converters:
            if values[name] is not None:
                values[name] = convert(values[name])
        times = {ref: None if text is None else instants.get(text) or instants.setdefault(text, datetime.fromisoformat(text))
                 for ref, text in row["event_times"].items()}
        rows.append(FeatureRow(row["entity_id"], values, times, row["stale"]))
    return rows
