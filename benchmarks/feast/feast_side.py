"""Feast's half of benchmarks/versus_feast.py: run by the Feast virtual environment's Python, never by ours.

Why a separate process: Feast pins its own pandas, pyarrow, redis-py and FastAPI, which do not install
beside this project's stack, so the benchmark drives Feast through this script (each command prints one
JSON object on stdout) and `feast serve`, never by importing it. It imports nothing of the project.

Commands (the repo folder holds feature_store.yaml and Feast's registry):
  apply        write feature_store.yaml (local provider, Redis online store, the given offline store) and
               register the entity and the feature view over the benchmark's Parquet file;
  materialize  store.materialize over the file's whole time range: seconds, rows, peak RSS;
  online       store.get_online_features latencies for 1 and 100 ids, and the values of the check ids;
  historical   store.get_historical_features of an observations Parquet file, timed, result to Parquet.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Bool, Float64, Int64, String, UnixTimestamp

PROJECT = "versus_feast"
VIEW = "bench_features"
FEAST_TYPES = {"int64": Int64, "float64": Float64, "string": String, "bool": Bool, "timestamp": UnixTimestamp}


def feature_store_yaml(redis_address: str, offline: str) -> str:
    """Feast's documented local setup with a Redis online store and the `offline` store (dask or duckdb)."""
    return (f"project: {PROJECT}\nregistry: registry.db\nprovider: local\n"
            f"online_store:\n  type: redis\n  connection_string: \"{redis_address}\"\n"
            f"offline_store:\n  type: {offline}\nentity_key_serialization_version: 3\n")


def apply(args) -> dict:
    """Create the repo and register `user` and the 10-feature view over the Parquet file."""
    repo = Path(args.repo)
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(feature_store_yaml(args.redis, args.offline))
    features = json.loads(args.features)
    user = Entity(name=args.entity, join_keys=[args.key], value_type=ValueType.INT64)
    source = FileSource(name="bench_rows", path=str(Path(args.parquet).resolve()), timestamp_field=args.event_time)
    view = FeatureView(name=VIEW, entities=[user], ttl=timedelta(seconds=args.ttl_seconds), source=source, online=True,
                       schema=[Field(name=name, dtype=FEAST_TYPES[dtype]) for name, dtype in features])
    store = FeatureStore(repo_path=str(repo))
    store.apply([user, view])
    return {"features": len(features)}


def peak_rss_bytes() -> int:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def materialize(args) -> dict:
    """Materialize the view's whole file into Redis, timed (the repo's registry loaded first, not timed)."""
    store = FeatureStore(repo_path=args.repo)
    times = pq.read_table(store.get_feature_view(VIEW).batch_source.path, columns=[args.event_time]).column(0)
    start = pd.Timestamp(times.to_numpy().min()).tz_localize("UTC") - timedelta(seconds=1)
    end = pd.Timestamp(times.to_numpy().max()).tz_localize("UTC") + timedelta(seconds=1)
    before = peak_rss_bytes()
    started = time.perf_counter()
    store.materialize(start.to_pydatetime(), end.to_pydatetime(), feature_views=[VIEW])
    return {"seconds": time.perf_counter() - started, "rows": len(times), "peak_rss": peak_rss_bytes(),
            "rss_before": before}


def online(args) -> dict:
    """Latencies (seconds) of get_online_features for each ids-per-request size on the id lists given,
    and the values read for the check ids (the driver compares them with ours)."""
    store = FeatureStore(repo_path=args.repo)
    refs = [f"{VIEW}:{name}" for name in json.loads(args.features)]
    id_lists = json.loads(Path(args.id_lists).read_text())
    latencies = {}
    for size, lists in id_lists.items():
        for ids in lists[:args.warmup]:
            store.get_online_features(refs, {args.key: ids})
        samples = []
        for ids in lists:
            started = time.perf_counter()
            store.get_online_features(refs, {args.key: ids}).to_dict()
            samples.append(time.perf_counter() - started)
        latencies[size] = samples
    check = json.loads(args.check_ids)
    values = store.get_online_features(refs, {args.key: check}).to_dict()
    return {"latencies": latencies, "values": {k: [_plain(v) for v in vs] for k, vs in values.items()}}


def _plain(value):
    """A Feast value as JSON: timestamps as epoch microseconds."""
    if isinstance(value, datetime):
        return int(pd.Timestamp(value).value // 1000) if value.tzinfo else int(pd.Timestamp(value, tz="UTC").value // 1000)
    return value.item() if isinstance(value, np.generic) else value


def historical(args) -> dict:
    """The point-in-time join of an observations file (entity key, event_timestamp, obs_id): Parquet in,
    get_historical_features, to_df, Parquet out, timed (after one untimed join of its first 1,000 rows, so
    imports and first-call set-up are not counted, as on our side)."""
    store = FeatureStore(repo_path=args.repo)
    refs = [f"{VIEW}:{name}" for name in json.loads(args.features)]
    store.get_historical_features(entity_df=pd.read_parquet(args.observations).head(1000), features=refs).to_df()
    started = time.perf_counter()
    joined = store.get_historical_features(entity_df=pd.read_parquet(args.observations), features=refs).to_df()
    joined.to_parquet(args.out, index=False)
    return {"seconds": time.perf_counter() - started, "rows": len(joined), "peak_rss": peak_rss_bytes()}


def main(argv: list[str] | None = None) -> None:
    """Parse the command, run it, print its JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("apply", "materialize", "online", "historical"):
        command = commands.add_parser(name)
        command.add_argument("--repo", required=True)
        command.add_argument("--features", default="[]", help="JSON list of [name, dtype] (apply) or names")
        command.add_argument("--key", default="user_id")
    commands.choices["apply"].add_argument("--parquet", required=True)
    commands.choices["apply"].add_argument("--redis", required=True, help="host:port")
    commands.choices["apply"].add_argument("--offline", default="dask", choices=("dask", "duckdb"))
    commands.choices["apply"].add_argument("--entity", default="user")
    commands.choices["apply"].add_argument("--ttl-seconds", type=int, required=True)
    for name in ("apply", "materialize"):
        commands.choices[name].add_argument("--event-time", default="feature_ts")
    commands.choices["online"].add_argument("--id-lists", required=True, help="JSON file {size: [[ids]...]}")
    commands.choices["online"].add_argument("--check-ids", required=True, help="JSON list of ids")
    commands.choices["online"].add_argument("--warmup", type=int, default=50)
    commands.choices["historical"].add_argument("--observations", required=True)
    commands.choices["historical"].add_argument("--out", required=True)
    args = parser.parse_args(argv)
    command = {"apply": apply, "materialize": materialize, "online": online, "historical": historical}[args.command]
    with contextlib.redirect_stdout(sys.stderr):  # Feast prints progress; stdout carries only the result
        result = command(args)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
