"""Head-to-head with Feast: the same data set, the same Redis server build, the same machine, in one run.

Why: users compare us with Feast first. This script loads one generated data set (benchmarks/publish.py's
N users x 10 features of mixed dtypes, default 1M) into both systems, each on a private redis-server, and
prints one table, each row ours beside Feast's (the pinned release in benchmarks/feast/requirements.txt,
installed into its own virtual environment by benchmarks/feast/setup.sh) and, for reads, the raw redis-py
floor:

  publish      ours: batch.publish.publish_partition of the Hive table partition (Spark, fresh process);
               Feast: store.materialize of the same rows from its file source (its local engine);
               rows/s and the peak RSS of each side's process tree;
  online read  in process, 1 and 100 ids x 10 features: raw pipelined HMGET, our InProcessClient,
               Feast's get_online_features (its own process, same id lists);
  HTTP         `featctl serve --workers W` against `feast serve --workers W`, measured by wrk (C, keep-alive):
               1 connection for p50/p99, then 32 connections for a fixed time: requests/s and p99;
  training     the point-in-time join of 100k and 1M observations against the N rows: our
               write_training_set (pandas engine; Parquet in, Hive history read by Spark, Parquet out) and
               Feast's get_historical_features + to_df + to_parquet, on its dask and duckdb offline stores.

Before any figure is printed, both systems must return the same values for the same entity reads (online,
in process and over HTTP) and the same point-in-time rows, or the benchmark stops. Progress goes to stderr,
the table to stdout.

    .venv/bin/python benchmarks/versus_feast.py [--rows N] [--observations N,M] [--seconds S] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import redis

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # benchmarks/serving.py-like names

from assets.dtypes import SPARK_TYPES  # noqa: E402
from assets.offline_layout import PARTITION_COLUMN, ensure_feature_table, feature_table_columns  # noqa: E402
from assets.registry import load_registry  # noqa: E402
from infra.redis_server import free_loopback_port, local_redis  # noqa: E402
from infra.settings import load_settings  # noqa: E402
from infra.spark import spark_session  # noqa: E402
from serving.client import HttpClient, InProcessClient  # noqa: E402
from serving.get_features import entity_keys  # noqa: E402

REGISTRY = HERE / "feast" / "registry"
FEAST_VENV = Path(os.environ.get("FP_FEAST_VENV", HERE.parent / ".data" / "feast" / "venv"))
FEAST_SIDE = HERE / "feast" / "feast_side.py"
GROUP = "bench_features"
SEED = 20261201
CHECK_IDS = 200  # entities whose values both systems must agree on, plus one id that does not exist
CONNECTIONS = 32
ROUNDS = 3  # wrk runs per system and connection count, taking turns; the median (by requests/s) is shown
WORKERS = os.cpu_count() or 1
OFFLINE_STORES = ("dask", "duckdb")
TARGETS = {"publish": 4.0, "http_p50_x_raw": 4.0, "http_p99_ms": 1.0, "rps_x_feast": 3.0, "p99_of_feast": 1 / 3}


def log(message: str) -> None:
    """Progress line on stderr (stdout carries only the result table)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@functools.cache
def data_set():
    """benchmarks/publish.py as a module (loaded once per process): the deterministic generator both systems load."""
    spec = importlib.util.spec_from_file_location("publish_benchmark", HERE / "publish.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def feature_specs() -> list[tuple[str, str]]:
    """(name, dtype) of the group's 10 features, from the on-disk registry both sides are built from."""
    return [(f.name, f.dtype) for f in load_registry(REGISTRY).groups[GROUP].features]


# --- Feast's side ------------------------------------------------------------------------------------

def feast(command: str, repo: Path, *args: str) -> dict:
    """Run one benchmarks/feast/feast_side.py command in Feast's environment; its JSON result."""
    python = FEAST_VENV / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"Feast's environment {FEAST_VENV} is missing: run `bash benchmarks/feast/setup.sh` "
                         "(make bench-feast does)")
    done = subprocess.run([str(python), str(FEAST_SIDE), command, "--repo", str(repo), *args],
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"feast_side {command} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout)


def redis_address(url: str) -> str:
    """host:port of a redis:// URL (Feast's connection_string form)."""
    return url.split("//", 1)[1].rsplit("/", 1)[0]


# --- our side (each Spark step in a fresh process: one Spark JVM at a time) --------------------------

def build_partition(data_dir: Path, rows_file: Path, ds: str) -> int:
    """Load the generated rows into the group's Hive feature table as partition `ds`."""
    registry = load_registry(REGISTRY)
    group = registry.groups[GROUP]
    spark = spark_session(load_settings(data_dir=data_dir, registry_dir=REGISTRY))
    ensure_feature_table(spark, registry, group)
    select = ", ".join(f"CAST(`{name}` AS {SPARK_TYPES[dtype]}) AS `{name}`"
                       for name, dtype in feature_table_columns(registry, group))
    spark.read.parquet(str(rows_file)).createOrReplaceTempView("staged")
    spark.sql(f"INSERT OVERWRITE TABLE {group.table} PARTITION ({PARTITION_COLUMN}='{ds}') SELECT {select} FROM staged")
    rows = spark.table(group.table).where(f"{PARTITION_COLUMN} = '{ds}'").count()
    spark.stop()
    return rows


def publish_ours(data_dir: Path, ds: str, redis_url: str):
    """publish_partition of partition `ds`, timed, with the peak RSS of this process tree (publish.py's)."""
    from batch.publish import publish_partition

    publish = data_set()
    registry = load_registry(REGISTRY)
    settings = load_settings(data_dir=data_dir, registry_dir=REGISTRY)
    spark = spark_session(settings)
    with publish.TreeRssSampler(os.getpid()) as sampler:
        started = time.perf_counter()
        result = publish_partition(spark, registry, registry.groups[GROUP], ds, redis_url, settings.redis_prefix,
                                   chunk_rows=settings.redis_batch_rows)
        seconds = time.perf_counter() - started
    spark.stop()
    return {"rows": result.applied, "seconds": seconds, "peak_rss": sampler.peak["total"]}


def training_sets_ours(data_dir: Path, observation_files: list[Path]) -> list[dict]:
    """write_training_set (pandas engine) of each observations file, timed in one warm Spark session
    (an untimed run on the smallest file first, as Feast's side loads its libraries before timing)."""
    from offline.training_set import write_training_set

    registry = load_registry(REGISTRY)
    spark = spark_session(load_settings(data_dir=data_dir, registry_dir=REGISTRY))
    refs = [f"{GROUP}.{name}" for name, _ in feature_specs()]
    write_training_set(spark, registry, observation_files[0], refs, data_dir / "warm_up.parquet", "pandas",
                       time_column="event_timestamp")
    results = []
    for path in observation_files:
        out = path.with_name(f"ours_{path.name}")
        started = time.perf_counter()
        summary = write_training_set(spark, registry, path, refs, out, "pandas", time_column="event_timestamp")
        results.append({"seconds": time.perf_counter() - started, "rows": summary.rows, "out": str(out)})
    spark.stop()
    return results


def in_fresh_process(function, *args):
    """`function(*args)` in a new spawned Python process, so each Spark JVM starts and ends with its step."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


# --- the data ----------------------------------------------------------------------------------------

def write_rows(path: Path, rows: int, event_time: datetime) -> None:
    """The data set's first `rows` rows as one Parquet file (Feast's file source and our staging)."""
    publish = data_set()
    writer = None
    for batch in publish.synthetic_batches(rows, publish.GENERATE_ROWS, event_time):
        writer = writer or pq.ParquetWriter(path, batch.schema, coerce_timestamps="us")
        writer.write_batch(batch)
    writer.close()


def write_observations(path: Path, count: int, users: int, feature_time: datetime) -> None:
    """`count` observations (user_id, event_timestamp, obs_id) of random users at random microseconds from
    one day before the rows' feature time (no value yet) to 40 days after it (past the 30-day TTL)."""
    rng = np.random.default_rng([SEED, count])
    base = int(feature_time.timestamp() * 1_000_000)
    offsets = rng.integers(-86_400 * 1_000_000, 40 * 86_400 * 1_000_000, count)
    offsets[offsets == 0] = 1  # never exactly at the feature time, where "at or before" and "before" would differ
    table = pa.table({
        "user_id": pa.array(rng.integers(0, users, count)),
        "event_timestamp": pa.array(base + offsets).cast(pa.timestamp("us", tz="UTC")),
        "obs_id": pa.array(np.arange(count, dtype=np.int64)),
    })
    pq.write_table(table, path)


# --- correctness guards ------------------------------------------------------------------------------

def comparable(value, dtype: str):
    """A value as both systems can agree on it: Feast keeps UnixTimestamp at whole seconds."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if dtype == "timestamp":
        micros = value if isinstance(value, (int, np.integer)) else int(pd.Timestamp(value).value // 1000)
        return int(micros) // 1_000_000
    return value


def check_online(ours: list, feast_values: dict, ids: list[int], specs: list[tuple[str, str]], label: str) -> None:
    """Stop unless our rows and Feast's to_dict() agree on every feature of every id."""
    for row, index in zip(ours, range(len(ids))):
        for name, dtype in specs:
            mine = comparable(row.values[f"{GROUP}.{name}"], dtype)
            theirs = comparable(feast_values[name][index], dtype)
            if mine != theirs:
                raise RuntimeError(f"{label}: user {ids[index]} {name}: ours {mine!r}, Feast {theirs!r}")


def check_training_sets(ours_path: Path, feast_path: Path, specs: list[tuple[str, str]]) -> dict:
    """Stop unless both training sets hold the same values for every observation Feast returns, and ours has
    no value for an observation Feast leaves out (its dask store drops rows that match no feature row; a
    training set keeps every labelled row). Counts: observations, with values, left out by Feast."""
    ours = pd.read_parquet(ours_path).set_index("obs_id").sort_index()
    theirs = pd.read_parquet(feast_path).set_index("obs_id").sort_index()
    if not theirs.index.isin(ours.index).all() or len(ours) < len(theirs):
        raise RuntimeError(f"training sets: Feast returned observations we did not ({len(theirs)} vs {len(ours)})")
    left_out = ours.loc[~ours.index.isin(theirs.index)]
    filled = left_out[[f"{GROUP}__{name}" for name, _ in specs]].notna().to_numpy().any(axis=1)
    if filled.any():
        raise RuntimeError(f"training sets: {int(filled.sum())} observations Feast left out have values in ours, "
                           f"e.g. obs {left_out.index[filled.argmax()]}")
    shared = ours.loc[theirs.index]
    for name, dtype in specs:
        mine = shared[f"{GROUP}__{name}"].map(lambda v: comparable(v, dtype))
        other = theirs[name].map(lambda v: comparable(v, dtype))
        differing = (mine != other) & ~(mine.isna() & other.isna())
        if differing.any():
            first = differing.idxmax()
            raise RuntimeError(f"training sets differ on {name} in {int(differing.sum())} rows, e.g. obs {first}: "
                               f"ours {mine[first]!r}, Feast {other[first]!r}")
    return {"observations": len(ours), "filled": int(ours[f"{GROUP}__{specs[0][0]}"].notna().sum()),
            "left_out": len(left_out)}


# --- reads -------------------------------------------------------------------------------------------

def id_lists(users: int, requests: int) -> dict[str, list[list[int]]]:
    """The random ids each read path asks for, per ids-per-request size (the same for every path)."""
    rng = np.random.default_rng(SEED)
    return {str(n): [rng.integers(0, users, n).tolist() for _ in range(count)]
            for n, count in ((1, requests), (100, max(requests // 10, 100)))}


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) in microseconds."""
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] * 1e6, ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1e6


def read_in_process(url: str, lists: dict[str, list[list[int]]], warmup: int = 50) -> dict:
    """Latencies of raw pipelined HMGET and of our InProcessClient on the same id lists, taking turns."""
    registry = load_registry(REGISTRY)
    refs = [f"{GROUP}.{name}" for name, _ in feature_specs()]
    client = InProcessClient.connect(registry, url, load_settings(registry_dir=REGISTRY).redis_prefix)
    plan = client.plans.plan("user", refs).read
    raw = redis.Redis.from_url(url)

    def raw_hmget(ids):
        pipe = raw.pipeline(transaction=False)
        for key in entity_keys(plan, ids):
            pipe.hmget(key, plan.fields)
        return pipe.execute()

    paths = {"raw": raw_hmget, "ours": lambda ids: client.get_features("user", ids, refs)}
    latencies = {}
    for size, batches in lists.items():
        for call in paths.values():
            for ids in batches[:warmup]:
                call(ids)
        for name in paths:
            latencies[name, size] = []
        for start in range(0, len(batches), 50):
            for name, call in paths.items():
                for ids in batches[start:start + 50]:
                    began = time.perf_counter()
                    call(ids)
                    latencies[name, size].append(time.perf_counter() - began)
    client.close()
    raw.close()
    return latencies


# --- HTTP --------------------------------------------------------------------------------------------

@dataclass
class Server:
    """A feature server process of one system, on a free loopback port."""

    name: str
    process: subprocess.Popen
    port: int
    path: str
    body: bytes

    def stop(self) -> None:
        """SIGTERM the server's process group (its workers too), then wait."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)

    def post(self, body: bytes) -> dict:
        """POST `body` to the server's read route; the JSON answer."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{self.path}", data=body,
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())


def start_ours(data_dir: Path, url: str, specs) -> Server:
    """`featctl serve --workers W` on the benchmark registry and our Redis."""
    port = free_loopback_port()
    env = {**os.environ, "FP_REGISTRY_DIR": str(REGISTRY), "FP_REDIS_URL": url, "FP_DATA_DIR": str(data_dir)}
    process = subprocess.Popen([str(Path(sys.executable).with_name("featctl")), "serve", "--port", str(port),
                                "--workers", str(WORKERS)], env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=(data_dir / "ours-serve.log").open("w"))
    body = json.dumps({"entity": "user", "ids": [1], "features": [f"{GROUP}.{n}" for n, _ in specs]}).encode()
    return Server("ours", process, port, "/features", body)


def start_feast(repo: Path, specs) -> Server:
    """`feast serve --workers W` (gunicorn + uvicorn workers), access log off and no worker recycling."""
    port = free_loopback_port()
    process = subprocess.Popen([str(FEAST_VENV / "bin" / "feast"), "serve", "-h", "127.0.0.1", "-p", str(port),
                                "--workers", str(WORKERS), "--no-access-log", "--max-requests", "0"],
                               cwd=repo, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=(repo / "feast-serve.log").open("w"))
    body = json.dumps({"features": [f"bench_features:{n}" for n, _ in specs],
                       "entities": {"user_id": [1]}}).encode()
    return Server("feast", process, port, "/get-online-features", body)


def wait_until_serving(server: Server, seconds: float = 90) -> None:
    """Block until the server answers its benchmark request."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            server.post(server.body)
            return
        except Exception:
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{server.name}'s server did not come up (exit {server.process.poll()})")
            time.sleep(0.25)


def check_http(ours: Server, theirs: Server, ids: list[int], specs) -> None:
    """Stop unless both servers answer the same values for the same ids."""
    mine = HttpClient(f"http://127.0.0.1:{ours.port}").get_features("user", ids, [f"{GROUP}.{n}" for n, _ in specs])
    body = json.dumps({"features": [f"bench_features:{n}" for n, _ in specs], "entities": {"user_id": ids}})
    answer = theirs.post(body.encode())
    names = answer["metadata"]["feature_names"]
    dtypes = dict(specs)
    values = {name: [v * 1_000_000 if dtypes.get(name) == "timestamp" and v is not None else v  # Feast: seconds
                     for v in result["values"]] for name, result in zip(names, answer["results"])}
    check_online(mine, values, ids, specs, "HTTP")


WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{body}]]
"""


def wrk(server: Server, connections: int, seconds: int, work: Path) -> dict:
    """wrk against the server's read route: requests/s, p50 and p99 (microseconds), non-2xx count."""
    script = work / f"{server.name}.lua"
    script.write_text(WRK_SCRIPT.format(body=server.body.decode()))
    done = subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency", "-s",
                           str(script), f"http://127.0.0.1:{server.port}{server.path}"],
                          capture_output=True, text=True, check=True)
    out = done.stdout
    units = {"us": 1, "ms": 1e3, "s": 1e6}

    def latency(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * units[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50": latency("50%"),
            "p99": latency("99%"), "errors": int(errors.group(1)) if errors else 0}


# --- the table ---------------------------------------------------------------------------------------

def _ratio(value: float, target: float, higher_is_better: bool = True) -> str:
    met = value >= target if higher_is_better else value <= target
    return f"{'PASS' if met else 'MISS'}"


def render(args, results: dict) -> str:
    """One table: each measure ours beside Feast's (and the raw floor where there is one), with the ratio."""
    rows = [("measure", "ours", "Feast", "raw redis-py", "ours better by", "target", "result")]
    pub, fpub = results["publish"], results["materialize"]
    ours_rps, feast_rps = pub["rows"] / pub["seconds"], fpub["rows"] / fpub["seconds"]
    rows.append((f"publish / materialize {pub['rows']:,} rows, rows/s", f"{ours_rps:,.0f}", f"{feast_rps:,.0f}", "",
                 f"{ours_rps / feast_rps:.1f}x", f">= {TARGETS['publish']:g}x",
                 _ratio(ours_rps / feast_rps, TARGETS["publish"])))
    rows.append(("  peak RSS of the process tree, MiB", f"{pub['peak_rss'] / 2**20:,.0f}",
                 f"{fpub['peak_rss'] / 2**20:,.0f}", "", f"{fpub['peak_rss'] / pub['peak_rss']:.1f}x", "", ""))
    reads, freads = results["reads"], results["feast_reads"]
    for size in ("1", "100"):
        raw50, raw99 = percentiles(reads["raw", size])
        our50, our99 = percentiles(reads["ours", size])
        fe50, fe99 = percentiles(freads[size])
        rows.append((f"in-process read, {size} id(s) x 10, p50 us", f"{our50:,.0f}", f"{fe50:,.0f}", f"{raw50:,.0f}",
                     f"{fe50 / our50:.1f}x", "", ""))
        rows.append((f"in-process read, {size} id(s) x 10, p99 us", f"{our99:,.0f}", f"{fe99:,.0f}", f"{raw99:,.0f}",
                     f"{fe99 / our99:.1f}x", "<= 1.1x raw", _ratio(our99 / raw99, 1.1, higher_is_better=False)))
    raw50 = percentiles(reads["raw", "1"])[0]
    one, fone = results["http_1"], results["feast_http_1"]
    rows.append(("HTTP 1 id x 10, 1 connection, p50 us", f"{one['p50']:,.0f}", f"{fone['p50']:,.0f}", f"{raw50:,.0f}",
                 f"{fone['p50'] / one['p50']:.1f}x", f"<= {TARGETS['http_p50_x_raw']:g}x raw",
                 _ratio(one["p50"] / raw50, TARGETS["http_p50_x_raw"], higher_is_better=False)))
    rows.append(("HTTP 1 id x 10, 1 connection, p99 us", f"{one['p99']:,.0f}", f"{fone['p99']:,.0f}", "",
                 f"{fone['p99'] / one['p99']:.1f}x", f"<= {TARGETS['http_p99_ms'] * 1000:g} us",
                 _ratio(one["p99"], TARGETS["http_p99_ms"] * 1000, higher_is_better=False)))
    many, fmany = results["http_many"], results["feast_http_many"]
    rows.append((f"HTTP 1 id x 10, {CONNECTIONS} connections, requests/s", f"{many['rps']:,.0f}", f"{fmany['rps']:,.0f}",
                 "", f"{many['rps'] / fmany['rps']:.1f}x", f">= {TARGETS['rps_x_feast']:g}x",
                 _ratio(many["rps"] / fmany["rps"], TARGETS["rps_x_feast"])))
    rows.append((f"HTTP 1 id x 10, {CONNECTIONS} connections, p99 us", f"{many['p99']:,.0f}", f"{fmany['p99']:,.0f}",
                 "", f"{fmany['p99'] / many['p99']:.1f}x", ">= 3x",
                 _ratio(fmany["p99"] / many["p99"], 1 / TARGETS["p99_of_feast"])))
    for index, count in enumerate(args.observations):
        mine = results["training"][index]["seconds"]
        by_store = {store: results[f"historical_{store}"][index]["seconds"] for store in OFFLINE_STORES}
        fastest = min(by_store, key=by_store.get)
        rows.append((f"training set, {count:,} observations, seconds", f"{mine:.2f}",
                     f"{by_store[fastest]:.2f} ({fastest})", "", f"{by_store[fastest] / mine:.2f}x",
                     "<= Feast's fastest", _ratio(mine, by_store[fastest], higher_is_better=False)))
        for store in OFFLINE_STORES:
            if store != fastest:
                rows.append((f"  Feast on {store}", "", f"{by_store[store]:.2f}", "", "", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    title = (f"Ours vs Feast {results['feast_version']}: {args.rows:,} users x 10 features (int64, float64, string, "
             f"bool, timestamp), redis-server {results['redis_version']} per system, {os.cpu_count()} cores")
    notes = [
        "publish: ours = batch.publish.publish_partition of the Hive partition (Spark local[2], fresh process,",
        "  the guarded batched write); Feast = FeatureStore.materialize over the same rows from its file source",
        "  (its local engine). Timed from the call to its return; peak RSS = largest summed RSS of the process tree",
        "  (ours: driver, JVM, Python workers; Feast: its one process, ru_maxrss).",
        "in-process reads: the same random ids for every path; raw = one pipelined HMGET per id of the group's",
        "  fields (no decode); ours and raw take turns every 50 requests; Feast's run in its own process after.",
        f"HTTP: wrk (1 thread) on keep-alive connections, {ROUNDS} runs of {max(1, args.seconds // ROUNDS)} s per system taking "
        f"turns, the median run by requests/s shown; both servers run {WORKERS} worker",
        "  processes (featctl serve --workers; feast serve --workers, access log off, no worker recycling);",
        "  wrk and the servers share the machine's cores. raw = the in-process raw HMGET p50 above.",
        "training set: ours = write_training_set --engine pandas (Parquet in, the Hive table's files listed by",
        "  Spark's catalog and read by Arrow, Parquet out) in a warm Spark session; Feast =",
        "  get_historical_features(entity_df) + to_df + to_parquet,",
        "  Parquet in, in a warm process; the faster of its dask and duckdb offline stores is compared.",
        "Checked before printing: both systems returned the same values for the same ids (in process and over",
        "  HTTP; timestamps compared at seconds, Feast's precision) and the same point-in-time rows: of the",
        *(f"  {c['observations']:,} observations, {c['filled']:,} have values; Feast on {store} left out {c['left_out']:,}"
          " (the ones with no value in ours)" for store, c in results["checks"].items()),
        "ours better by: ours / Feast for rows/s and requests/s, Feast / ours for latencies, seconds and memory.",
        f"1-minute load average at the end: {os.getloadavg()[0]:.1f}.",
    ]
    return "\n".join([title, "", *lines, "", *notes])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; `--quick` is a smoke run at small sizes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, help="users in the data set (default 1,000,000)")
    parser.add_argument("--observations", help="comma-separated observation counts (default 100000,1000000)")
    parser.add_argument("--seconds", type=int, help="wrk seconds per system and connection count, split into "
                                                    f"{ROUNDS} runs (default 30)")
    parser.add_argument("--requests", type=int, help="in-process requests per path for 1 id (default 10,000; a "
                                                     "tenth of that for 100 ids)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 50k users, 10k and 50k observations, 6 s")
    args = parser.parse_args(argv)
    args.rows = args.rows or (50_000 if args.quick else 1_000_000)
    args.observations = [int(n) for n in (args.observations or ("10000,50000" if args.quick else "100000,1000000"))
                         .replace("_", "").split(",")]
    args.seconds = args.seconds or (6 if args.quick else 30)
    args.requests = args.requests or (1_000 if args.quick else 10_000)
    return args


def main(argv: list[str] | None = None) -> None:
    """Load both systems, check they agree, measure, print the table."""
    args = parse_args(argv)
    started = time.perf_counter()
    specs = feature_specs()
    names = json.dumps([name for name, _ in specs])
    ds = (datetime.now(timezone.utc) - timedelta(days=1)).date().isoformat()
    publish = data_set()
    feature_time = publish.feature_ts(ds)
    results = {}
    with tempfile.TemporaryDirectory(prefix="fp-versus-feast-") as tmp:
        work = Path(tmp)
        data_dir, repo = work / "data", work / "feast_repo"
        rows_file = work / "rows.parquet"
        log(f"generating {args.rows:,} rows (feature time {feature_time:%Y-%m-%d %H:%M} UTC)")
        write_rows(rows_file, args.rows, feature_time)
        with local_redis() as ours_url, local_redis() as feast_url:
            client = redis.Redis.from_url(ours_url)
            results["redis_version"] = client.info("server")["redis_version"]
            client.close()
            log("Feast: apply, then materialize")
            feast("apply", repo, "--parquet", str(rows_file), "--redis", redis_address(feast_url),
                  "--features", json.dumps(specs), "--ttl-seconds", str(30 * 86_400))
            results["feast_version"] = subprocess.run([str(FEAST_VENV / "bin" / "python"), "-c",
                                                       "import feast; print(feast.__version__)"],
                                                      capture_output=True, text=True, check=True).stdout.strip()
            results["materialize"] = feast("materialize", repo)
            log(f"  {results['materialize']['seconds']:.1f} s")
            log("ours: the Hive partition, then publish_partition")
            in_fresh_process(build_partition, data_dir, rows_file, ds)
            results["publish"] = in_fresh_process(publish_ours, data_dir, ds, ours_url)
            log(f"  {results['publish']['seconds']:.1f} s")
            for label, url in (("ours", ours_url), ("Feast", feast_url)):
                keys = redis.Redis.from_url(url).dbsize()
                if keys != args.rows:
                    raise RuntimeError(f"{label}'s Redis holds {keys:,} keys, expected {args.rows:,}")

            check_ids = [*np.random.default_rng(SEED + 1).integers(0, args.rows, CHECK_IDS).tolist(), args.rows + 7]
            lists = id_lists(args.rows, args.requests)
            (work / "ids.json").write_text(json.dumps(lists))
            log("in-process reads: raw HMGET and ours, then Feast's")
            results["reads"] = read_in_process(ours_url, lists)
            answer = feast("online", repo, "--features", names, "--id-lists", str(work / "ids.json"),
                           "--check-ids", json.dumps(check_ids))
            results["feast_reads"] = answer["latencies"]
            mine = InProcessClient.connect(load_registry(REGISTRY), ours_url, "fp").get_features(
                "user", check_ids, [f"{GROUP}.{n}" for n, _ in specs])
            check_online(mine, answer["values"], check_ids, specs, "in process")

            log(f"HTTP: featctl serve and feast serve, {WORKERS} workers each")
            servers = [start_ours(data_dir, ours_url, specs), start_feast(repo, specs)]
            try:
                for server in servers:
                    wait_until_serving(server)
                check_http(servers[0], servers[1], check_ids, specs)
                for connections, key in ((1, "http_1"), (CONNECTIONS, "http_many")):
                    runs = {server.name: [] for server in servers}
                    for server in servers:
                        wrk(server, connections, 2, work)  # warm-up, not counted
                    for _ in range(ROUNDS):  # the systems take turns, so a noisy neighbour slows both alike
                        for server in servers:
                            run = wrk(server, connections, max(1, args.seconds // ROUNDS), work)
                            if run["errors"]:
                                raise RuntimeError(f"{server.name}: {run['errors']} error answers")
                            runs[server.name].append(run)
                    for server in servers:
                        middle = sorted(runs[server.name], key=lambda run: run["rps"])[ROUNDS // 2]
                        results[("" if server.name == "ours" else "feast_") + key] = middle
                        log(f"  {server.name}, {connections} connection(s), median of {ROUNDS} by requests/s: {middle}")
            finally:
                for server in servers:
                    server.stop()

        log("training sets: observations, ours, then Feast's dask and duckdb")
        files = []
        for count in args.observations:
            files.append(work / f"observations_{count}.parquet")
            write_observations(files[-1], count, args.rows, feature_time)
        results["training"] = in_fresh_process(training_sets_ours, data_dir, files)
        results["checks"] = {}
        for store in OFFLINE_STORES:
            (repo / "feature_store.yaml").write_text(
                re.sub(r"(offline_store:\n  type: )\w+", rf"\g<1>{store}", (repo / "feature_store.yaml").read_text()))
            results[f"historical_{store}"] = []
            for path in files:
                out = path.with_name(f"feast_{store}_{path.name}")
                results[f"historical_{store}"].append(
                    feast("historical", repo, "--features", names, "--observations", str(path), "--out", str(out)))
                results["checks"][store] = check_training_sets(Path(results["training"][files.index(path)]["out"]), out,
                                                        specs)
            log(f"  {store}: {[round(r['seconds'], 2) for r in results[f'historical_{store}']]} s")
    print(render(args, results))
    log(f"total wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
