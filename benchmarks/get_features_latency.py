"""Benchmark of GetFeatures: latency and throughput of the three read paths over the same Redis keys.

Why: the in-process client and the HTTP service add a read plan, id checks, typed decoding, staleness and
(for HTTP) JSON and a network hop on top of the Redis read itself. This script shows what that costs
against the floor, for one entity id and for 100 ids, each with 10 features (int64, float64, string,
bool, timestamp) of one group, against a private local redis-server holding N entities:

  (a) raw redis-py: one pipelined HMGET per id of the same 11 fields (10 features + event time), no decode;
  (b) the in-process client: serving.client.InProcessClient.get_features (plan cache, id check, decode);
  (c) the HTTP service: serving.client.HttpClient over one keep-alive connection to the feature service
      (uvicorn + httptools + uvloop, Starlette, orjson) running in its own process, as `featctl serve` runs;
  (d) the in-process client asked for the same 10 features plus one on-demand feature (hours since
      last_seen_at at the request time, benchmarks/on_demand_group/on_demand.py), beside its baseline (b):
      what the request-time function (Series in, Series out, typed through Arrow) adds to a call;
  (e) the HTTP service of (c) with its response log on (every response, serving/response_log.py) in a
      second process: the issue's target is a p99 within 10% of (c)'s.

The variants take turns every 50 requests (on the same ids), so a noisy neighbour slows all of them
alike. One client thread sends requests back to back; latency is per request (ids drawn at random, draws not timed), requests/s is
requests / seconds spent in them. Where the time goes: the in-process client's parts timed separately,
and the service's own handling time from its /metrics histogram. Progress goes to stderr, the tables to
stdout.

    .venv/bin/python benchmarks/get_features_latency.py [--entities N] [--requests N] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from multiprocessing import get_context
from pathlib import Path

# This file is named like the package it measures, and Python puts a script's folder first on sys.path:
# `import serving` from any script in benchmarks/ (this one, publish.py, training_set.py) would find this
# file instead of the package. Take the folder off the path, and when a sibling script has imported this
# file as `serving`, hand it the package instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if __name__ == "serving":
    del sys.modules[__name__]
    importlib.import_module("serving")

import numpy as np  # noqa: E402
import orjson  # noqa: E402  (after the sys.path fix above)
import redis  # noqa: E402

from assets.registry import Registry  # noqa: E402
from assets.specs import OnDemandFeature
from infra.redis_server import free_loopback_port, local_redis
from serving import layout
from serving.client import HttpClient, InProcessClient
from serving.get_features import check_ids, decode_rows, entity_keys, now_micros, read_raw
from serving.online_store import OnlineStore, WritePlan
from serving.wire import rows_from_body


@dataclass(frozen=True)
class Workload:
    """What is read: benchmarks/publish.py's deterministic 10-feature data set (int64, float64, string,
    bool, timestamp) in its one-group registry, given a 30-day TTL so staleness is computed."""

    data_set: object  # the benchmarks/publish.py module
    registry: Registry

    @property
    def group(self) -> str:
        return next(iter(self.registry.groups))

    @property
    def entity(self) -> str:
        return self.data_set.ENTITY.name

    @property
    def features(self) -> tuple:
        return self.data_set.FEATURES

    @property
    def refs(self) -> list[str]:
        return [f"{self.group}.{name}" for name, _ in self.features]

    @property
    def refs_with_on_demand(self) -> list[str]:
        """The 10 features and the on-demand one: what (d) asks for."""
        return [*self.refs, f"{self.group}.{ON_DEMAND.name}"]


@functools.cache
def workload() -> Workload:
    """The workload, loaded once per process (the service's process loads its own)."""
    spec = importlib.util.spec_from_file_location("publish_benchmark", Path(__file__).with_name("publish.py"))
    data_set = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = data_set
    spec.loader.exec_module(data_set)
    registry, group = data_set.bench_registry(Path(tempfile.gettempdir()))
    group = group.model_copy(update={"ttl": TTL, "folder": ON_DEMAND_FOLDER, "on_demand": (ON_DEMAND,)})
    return Workload(data_set, Registry(root=registry.root, entities=registry.entities, sources={},
                                       groups={group.name: group}))


ON_DEMAND_FOLDER = Path(__file__).resolve().with_name("on_demand_group")
ON_DEMAND = OnDemandFeature(name="hours_since_last_seen", dtype="float64", description="Hours since last_seen_at.",
                            function="hours_since_last_seen", inputs={"last_seen_at": "last_seen_at",
                                                                      "now": "request.time"})
SEED = 20260105
PREFIX = "bench"
TTL = timedelta(days=30)
SCENARIOS = (1, 100)  # ids per request
BLOCK = 50  # requests a path sends before the next path takes its turn
TARGETS = {("b/a", 1): 1.5, ("b/a", 100): 1.3}
HTTP_P99_TARGET_MS = 1.0
LOGGING_P99_TARGET = 1.1  # (e) p99 / (c) p99


def log(message: str) -> None:
    """Progress line on stderr (stdout carries only the result tables)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_entities(url: str, entities: int) -> None:
    """Write `entities` users of the synthetic data set, as of yesterday, through the guarded writer."""
    work = workload()
    plan = WritePlan.for_group(work.registry.groups[work.group], work.data_set.ENTITY, PREFIX)
    client = redis.Redis.from_url(url)
    store = OnlineStore(client, chunk_rows=500)
    for batch in work.data_set.synthetic_batches(entities, 50_000, datetime.now(timezone.utc) - timedelta(days=1)):
        store.write(plan, batch)
    client.close()


def run_service(url: str, port: int, log_dir: str | None = None) -> None:
    """The feature service for the benchmark registry (logging responses under `log_dir` when given), in this
    (spawned) process until it is terminated."""
    from serving.response_log import ResponseLog
    from serving.service import FeatureService, uvicorn_server

    log = None if log_dir is None else ResponseLog(Path(log_dir))
    uvicorn_server(FeatureService(workload().registry, url, PREFIX, response_log=log), port).run()


def wait_for_service(client: HttpClient, seconds: float = 30) -> None:
    """Block until the service answers a GetFeatures request."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            client.get_features(workload().entity, [0], workload().refs[:1])
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@dataclass
class Samples:
    """Latencies (seconds) of one variant in one scenario."""

    latencies: list

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def requests_per_second(self) -> float:
        return len(self.latencies) / sum(self.latencies)


def measure(variants: dict, entities: int, requests: int, warmup: int, service_url: str) -> tuple[dict, dict]:
    """Samples per (variant, ids per request), the variants taking turns every BLOCK requests (on the same
    ids), so a noisy neighbour slows them alike; and per ids per request the service's own mean handling
    time (from its metrics, warm-up excluded)."""
    rng = np.random.default_rng(SEED + 1)
    samples = {(name, n): Samples([]) for name in variants for n in SCENARIOS}
    served = {}
    clock = time.perf_counter
    for n in SCENARIOS:
        for call in variants.values():
            for _ in range(warmup):
                call(rng.integers(0, entities, n).tolist())
        before = service_totals(service_url)
        for block in range(requests // BLOCK):
            id_lists = [rng.integers(0, entities, n).tolist() for _ in range(BLOCK)]
            for name, call in variants.items():
                latencies = samples[name, n].latencies
                for ids in id_lists:
                    started = clock()
                    call(ids)
                    latencies.append(clock() - started)
            if (block + 1) % (requests // BLOCK // 4) == 0:
                log(f"  {n} id(s): {(block + 1) * BLOCK:,}/{requests:,} requests per path")
        after = service_totals(service_url)
        served[n] = (after[0] - before[0]) / (after[1] - before[1])
    return samples, served


def _median_parts(stages: list[tuple[str, object]], id_lists: list) -> dict[str, float]:
    """Median microseconds of each stage; a stage is `(name, function(state) -> state)`, run in order per call."""
    spent: dict[str, list[float]] = {name: [] for name, _ in stages}
    for ids in id_lists:
        state = ids
        for name, stage in stages:
            started = time.perf_counter()
            state = stage(state)
            spent[name].append((time.perf_counter() - started) * 1e6)
    return {name: statistics.median(values) for name, values in spent.items()}


def parts_of_calls(in_process: InProcessClient, over_http: HttpClient, entities: int, requests: int) -> dict:
    """Per ids per request, where the time of a (b) and a (c) call goes, part by part (median microseconds)."""
    work = workload()
    plan = in_process.plans.plan(work.entity, work.refs).read
    in_process_stages = [
        ("plan + id check", lambda ids: check_ids(in_process.plans.plan(work.entity, work.refs).read, ids, 1000)),
        ("Redis read (one buffer of HMGETs)", lambda ids: (ids, read_raw(in_process.store, plan, entity_keys(plan, ids)))),
        ("decode + staleness", lambda state: decode_rows(plan, state[0], state[1], now_micros())),
    ]
    http_stages = [
        ("request to JSON", lambda ids: orjson.dumps({"entity": work.entity, "ids": ids, "features": work.refs})),
        ("HTTP exchange (http.client, loopback, service)", over_http._post),
        ("JSON to typed rows", lambda reply: rows_from_body(reply[1])),
    ]
    rng = np.random.default_rng(SEED + 2)
    parts = {}
    for n in SCENARIOS:
        id_lists = [rng.integers(0, entities, n).tolist() for _ in range(requests)]
        parts[n] = {"(b)": _median_parts(in_process_stages, id_lists), "(c)": _median_parts(http_stages, id_lists)}
    return parts


def service_totals(url: str) -> tuple[float, float]:
    """(seconds, requests) the service has spent on 200 /features requests so far, from its /metrics."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    values = {"sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        for kind in values:
            if line.startswith(f'fp_serving_request_seconds_{kind}{{route="/features",status="200"}}'):
                values[kind] = float(line.rsplit(" ", 1)[1])
    return values["sum"], values["count"]


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def render(samples: dict, parts: dict, served: dict, entities: int, requests: int,
           redis_version: str) -> str:
    """The result table (with ratios and targets) and the where-the-time-goes table."""
    header = ("ids x features", "path", "p50 us", "p99 us", "req/s", "p50 x a", "p99 x a", "target", "result")
    rows = [header]
    names = {"a": "(a) raw redis-py pipelined HMGET", "b": "(b) in-process client", "c": "(c) HTTP service",
             "d": "(d) in-process client + 1 on-demand", "e": "(e) HTTP service, response log on"}
    for n in SCENARIOS:
        base = samples["a", n]
        for key, label in names.items():
            s = samples[key, n]
            p50, p99 = s.percentile(0.5), s.percentile(0.99)
            ratio50, ratio99 = p50 / base.percentile(0.5), p99 / base.percentile(0.99)
            target, verdict = "", ""
            if key == "b":
                target, verdict = f"p99 <= {TARGETS['b/a', n]:g}x a", _verdict(ratio99 <= TARGETS["b/a", n])
            if key == "c" and n == 1:
                target, verdict = f"p99 <= {HTTP_P99_TARGET_MS:g} ms", _verdict(p99 * 1000 <= HTTP_P99_TARGET_MS)
            if key == "d":
                b = samples["b", n]
                target = (f"vs (b): p50 +{(p50 - b.percentile(0.5)) * 1e6:,.0f} us, "
                          f"p99 x {p99 / b.percentile(0.99):.2f}")
            if key == "e":
                ratio = p99 / samples["c", n].percentile(0.99)
                target, verdict = f"p99 <= {LOGGING_P99_TARGET:g}x c (is {ratio:.2f})", _verdict(ratio <= LOGGING_P99_TARGET)
            rows.append((f"{n} x {len(workload().features)}", label, f"{p50 * 1e6:,.0f}", f"{p99 * 1e6:,.0f}",
                         f"{s.requests_per_second:,.0f}", "" if key == "a" else f"{ratio50:.2f}",
                         "" if key == "a" else f"{ratio99:.2f}", target, verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    breakdown = ["", "Where the time goes (median us per call, measured part by part):"]
    for n, paths in parts.items():
        for path, timings in paths.items():
            breakdown.append(f"  {n:>3} id(s) {path}: " + ", ".join(f"{name} {us:,.0f}" for name, us in timings.items()))
    breakdown.append("HTTP service's own handling time per request (mean, from its /metrics histogram): "
                     + ", ".join(f"{n} id(s) {seconds * 1e6:,.0f} us" for n, seconds in served.items())
                     + "; the rest of (c) is the client (HTTP, JSON, typed values) and the loopback hop.")
    title = (f"GetFeatures benchmark: {entities:,} entities x {len(workload().features)} features in one group, redis-server "
             f"{redis_version} on loopback, {requests:,} requests per path and size, paths taking turns every {BLOCK}; "
             f"1-minute load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return "\n".join([title, "", *lines, *breakdown])


def check_on_demand(in_process: InProcessClient) -> None:
    """Before any figure: (d)'s on-demand value is the hand computation from the stored last_seen_at."""
    work = workload()
    asked_at = datetime.now(timezone.utc)
    rows = in_process.get_features(work.entity, [1, 2], work.refs_with_on_demand, request={"time": asked_at})
    for row, plain in zip(rows, in_process.get_features(work.entity, [1, 2], work.refs)):
        seen = row.values[f"{work.group}.last_seen_at"]
        expected = None if seen is None else (asked_at - seen).total_seconds() / 3600
        assert row.values[f"{work.group}.{ON_DEMAND.name}"] == expected, "on-demand value differs from the hand computation"
        assert {ref: row.values[ref] for ref in work.refs} == plain.values, "(d) changed the stored values"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; `--quick` is a smoke run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=100_000, help="entities in Redis (default 100,000)")
    parser.add_argument("--requests", type=int, default=10_000, help="requests per path and size (default 10,000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 10k entities, 600 requests")
    args = parser.parse_args(argv)
    if args.quick:
        args.entities, args.requests = 10_000, 600
    return args


def main(argv: list[str] | None = None) -> None:
    """Load Redis, start the service in its own process, measure (a), (b), (c), print the tables."""
    args = parse_args(argv)
    with local_redis() as url:
        raw = redis.Redis.from_url(url)
        redis_version = raw.info("server")["redis_version"]
        work = workload()
        log(f"writing {args.entities:,} entities x {len(work.features)} features")
        load_entities(url, args.entities)
        fields = [layout.feature_field(work.group, 1, name) for name, _ in work.features]
        fields.append(layout.event_time_field(work.group, 1))

        def raw_hmget(ids):
            pipe = raw.pipeline(transaction=False)
            for i in ids:
                pipe.hmget(layout.entity_key(PREFIX, work.entity, i), fields)
            return pipe.execute()

        in_process = InProcessClient.connect(work.registry, url, PREFIX)
        port = free_loopback_port()
        server = get_context("spawn").Process(target=run_service, args=(url, port), daemon=True)
        server.start()
        log_dir = tempfile.TemporaryDirectory(prefix="fp-bench-log-")
        logging_port = free_loopback_port()
        logging_server = get_context("spawn").Process(target=run_service, args=(url, logging_port, log_dir.name),
                                                      daemon=True)
        logging_server.start()
        over_http = HttpClient(f"http://127.0.0.1:{port}")
        logged_http = HttpClient(f"http://127.0.0.1:{logging_port}")
        try:
            wait_for_service(over_http)
            wait_for_service(logged_http)
            assert over_http.get_features(work.entity, [1, 2], work.refs) == in_process.get_features(
                work.entity, [1, 2], work.refs), "HTTP and in-process answers differ"
            check_on_demand(in_process)
            log(f"service up on port {port} (pid {server.pid}); measuring")
            variants = {"a": raw_hmget, "b": lambda ids: in_process.get_features(work.entity, ids, work.refs),
                        "c": lambda ids: over_http.get_features(work.entity, ids, work.refs),
                        "d": lambda ids: in_process.get_features(work.entity, ids, work.refs_with_on_demand),
                        "e": lambda ids: logged_http.get_features(work.entity, ids, work.refs)}
            samples, served = measure(variants, args.entities, args.requests, 200, f"http://127.0.0.1:{port}")
            parts = parts_of_calls(in_process, over_http, args.entities, min(args.requests, 2_000))
        finally:
            over_http.close()
            logged_http.close()
            server.terminate()
            logging_server.terminate()
            server.join()
            logging_server.join()
        logged = sum(len(f.read_bytes().splitlines()) for f in Path(log_dir.name).rglob("*.jsonl"))
        log_dir.cleanup()
        assert logged > 0, "(e) logged no response"
        in_process.close()
        raw.close()
    print(render(samples, parts, served, args.entities, args.requests, redis_version))


if __name__ == "__main__":
    main()
