"""The feature service over real HTTP and a real Redis: same results as in-process, 4xx reasons, staleness,
auth, metrics, OpenAPI, and a Redis outage answered with 503s until it comes back."""

from __future__ import annotations

import http.client
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
import redis

from infra.redis_server import free_loopback_port, local_redis
from infra.settings import PROJECT_ROOT
from serving.client import HttpClient, InProcessClient, StoreUnavailable
from serving.feature_refs import InvalidRequest, UnknownName
from serving.online_store import OnlineStore, WritePlan
from serving.service import MAX_BODY_BYTES, FeatureService
from tests.conftest import run_featctl
from tests.serving.conftest import ServerThread

PREFIX = "svc"
MAX_IDS = 5
UTC = timezone.utc
NOW = datetime.now(UTC).replace(microsecond=0)
FRESH = NOW - timedelta(days=1)      # within every group's TTL
OLD = NOW - timedelta(days=40)       # older than user_upvotes' 30 days
TS = pa.timestamp("us", tz="UTC")


def _write(store: OnlineStore, registry, group_name: str, columns: dict, event_times: list[datetime]) -> None:
    group = registry.groups[group_name]
    plan = WritePlan.for_group(group, registry.entity_of(group), PREFIX)
    store.write(plan, pa.table({**columns, "feature_ts": pa.array(event_times, TS)}))


@pytest.fixture(scope="module")
def online(registry):
    """A Redis of this module's own with users 1 (fresh), 2 (stale) and posts 10 (inf score), 11."""
    with local_redis() as url:
        client = redis.Redis.from_url(url)
        store = OnlineStore(client)
        _write(store, registry, "user_upvotes", {
            "user_id": [1, 2], "upvotes_7d": [12, 3], "distinct_items_7d": [9, 3], "upvotes_1d": [2, 0],
            "last_upvote_at": pa.array([FRESH - timedelta(hours=2, microseconds=7), OLD - timedelta(hours=1)], TS)},
            [FRESH, OLD])
        _write(store, registry, "post_popularity", {
            "post_id": [10, 11], "subreddit": ["r/python", "r/日本語 \"q\""], "upvotes_7d": [50, 0],
            "upvotes_1d": [7, 0], "hot_score": [math.inf, -1.5e-300], "is_trending": [True, False]}, [FRESH, FRESH])
        client.close()
        yield url


@pytest.fixture(scope="module")
def service(registry, online):
    with ServerThread(FeatureService(registry, online, PREFIX, max_ids=MAX_IDS)) as server:
        yield server


@pytest.fixture(scope="module")
def clients(registry, online, service):
    in_process = InProcessClient.connect(registry, online, PREFIX, max_ids=MAX_IDS)
    over_http = HttpClient(service.url)
    yield in_process, over_http
    in_process.close()
    over_http.close()


def _post(url: str, body: bytes | dict, headers: dict | None = None, method: str = "POST", path: str = "/features"):
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    payload = body if isinstance(body, bytes) else orjson.dumps(body)
    connection.request(method, path, payload if method == "POST" else None, headers or {})
    response = connection.getresponse()
    result = response.status, dict(response.getheaders()), response.read()
    connection.close()
    return result


REQUESTS = [
    ("user", [1, 2, 999], ["user_upvotes.upvotes_7d", "user_upvotes"]),
    ("user", [2], ["user_upvotes@v1.last_upvote_at"]),
    ("user", ["1", 1], ["user_upvotes@v1"]),
    ("post", [10, 11, 12], ["post_popularity"]),
]


@pytest.mark.parametrize("entity, ids, features", REQUESTS)
def test_http_answers_equal_the_in_process_client(clients, entity, ids, features):
    in_process, over_http = clients
    expected = in_process.get_features(entity, ids, features)
    assert over_http.get_features(entity, ids, features) == expected
    assert len(expected) == len(ids)


def test_values_types_event_times_and_missing_ids(clients):
    _, over_http = clients
    first, second, unknown = over_http.get_features("user", [1, 2, 999], ["user_upvotes.upvotes_7d", "user_upvotes"])
    assert list(first.values) == ["user_upvotes.upvotes_7d", "user_upvotes.distinct_items_7d",
                                  "user_upvotes.upvotes_1d", "user_upvotes.last_upvote_at"]
    assert first.values["user_upvotes.upvotes_7d"] == 12
    assert first.values["user_upvotes.last_upvote_at"] == FRESH - timedelta(hours=2, microseconds=7)
    assert set(first.event_times.values()) == {FRESH}
    assert unknown.values == dict.fromkeys(first.values) and set(unknown.event_times.values()) == {None}
    versioned = over_http.get_features("user", [1], ["user_upvotes@v1.upvotes_7d"])[0]
    assert versioned.values == {"user_upvotes@v1.upvotes_7d": 12}
    post = over_http.get_features("post", [10, 11], ["post_popularity.hot_score", "post_popularity.subreddit"])
    assert post[0].values["post_popularity.hot_score"] == math.inf
    assert post[1].values == {"post_popularity.hot_score": -1.5e-300, "post_popularity.subreddit": "r/日本語 \"q\""}


def test_values_older_than_the_ttl_are_flagged_stale(clients):
    for client in clients:
        fresh, stale, unknown = client.get_features("user", [1, 2, 999], ["user_upvotes"])
        assert not any(fresh.stale.values())
        assert all(stale.stale.values()) and stale.values["user_upvotes.upvotes_7d"] == 3  # stale, still served
        assert not any(unknown.stale.values())


def test_rows_that_share_an_event_time_have_dicts_of_their_own(clients):
    """Posts 10 and 11 were published at the same instant: each row's event times and stale flags are its own
    dicts (decoding copies one per distinct time), so a caller who edits one row changes no other."""
    in_process, _ = clients
    first, second, third = in_process.get_features("post", [10, 11, 10], ["post_popularity"])
    assert set(first.event_times.values()) == set(second.event_times.values()) == {FRESH}
    assert first.event_times is not second.event_times and first.event_times is not third.event_times
    assert first.stale is not second.stale
    first.event_times["post_popularity.hot_score"], first.stale["post_popularity.hot_score"] = None, True
    assert second.event_times["post_popularity.hot_score"] == third.event_times["post_popularity.hot_score"] == FRESH
    assert not any(second.stale.values()) and not any(third.stale.values())


BAD_REQUESTS = [
    (b"not json", 400, "the request body is not JSON"),
    (b"[1, 2]", 400, "the request body must be a JSON object, got list"),
    ({"entity": "user", "ids": [1]}, 400, "request fields: missing ['features']"),
    ({"entity": "user", "ids": [1], "features": ["user_upvotes"], "as_of": 1}, 400, "request fields: unknown ['as_of']"),
    ({"entity": "account", "ids": [1], "features": ["user_upvotes"]}, 404, "unknown entity 'account'"),
    ({"entity": "user", "ids": [1], "features": ["nope"]}, 404, "unknown feature group 'nope'"),
    ({"entity": "user", "ids": [1], "features": ["user_upvotes.nope"]}, 404, "unknown feature 'user_upvotes.nope'"),
    ({"entity": "user", "ids": [1], "features": ["user_upvotes@v9"]}, 404, "group 'user_upvotes' has no version 9"),
    ({"entity": "user", "ids": [1], "features": ["User Upvotes"]}, 422, "'User Upvotes' is not a feature ref"),
    ({"entity": "user", "ids": [1], "features": "user_upvotes"}, 422, "features must be a list of feature refs"),
    ({"entity": "user", "ids": [1], "features": []}, 422, "no features requested"),
    ({"entity": "user", "ids": [1], "features": ["post_popularity"]}, 422, "describes entity 'post', not 'user'"),
    ({"entity": "user", "ids": ["x"], "features": ["user_upvotes"]}, 422, "ids[0] = 'x' is not a user id"),
    ({"entity": "user", "ids": [1, 1.5], "features": ["user_upvotes"]}, 422, "ids[1] = 1.5 is not a user id"),
    ({"entity": "user", "ids": [True], "features": ["user_upvotes"]}, 422, "ids[0] = True is not a user id"),
    ({"entity": "user", "ids": [None], "features": ["user_upvotes"]}, 422, "ids[0] = None is not a user id"),
    ({"entity": "user", "ids": ["18446744073709551616"], "features": ["user_upvotes"]}, 422, "is not a user id"),
    ({"entity": "user", "ids": 1, "features": ["user_upvotes"]}, 422, "ids must be a list, got int"),
    ({"entity": "user", "ids": [], "features": ["user_upvotes"]}, 422, "no ids requested"),
    ({"entity": "user", "ids": list(range(MAX_IDS + 1)), "features": ["user_upvotes"]}, 422,
     f"too many ids: {MAX_IDS + 1} in one request, at most {MAX_IDS}"),
]


@pytest.mark.parametrize("body, status, reason", BAD_REQUESTS, ids=[r[2][:40] for r in BAD_REQUESTS])
def test_each_bad_request_gets_its_4xx_and_reason(service, body, status, reason):
    got, headers, payload = _post(service.url, body)
    error = orjson.loads(payload)
    assert got == status, error
    assert reason in error["error"]
    assert error["fix"], "every error says what to do"
    assert headers["content-type"] == "application/json"


def test_clients_raise_the_same_errors(clients):
    in_process, over_http = clients
    for features, ids, kind in ((["nope.x"], [1], UnknownName), (["user_upvotes"], ["x"], InvalidRequest)):
        with pytest.raises(kind) as local:
            in_process.get_features("user", ids, features)
        with pytest.raises(kind) as remote:
            over_http.get_features("user", ids, features)
        assert str(remote.value) == str(local.value)


def test_unknown_paths_methods_and_oversized_bodies_are_json_4xx(service):
    status, headers, body = _post(service.url, b"", method="GET")
    assert (status, headers["allow"], orjson.loads(body)["fix"]) == (405, "POST", "POST /features; GET the other routes")
    status, _, body = _post(service.url, b"", method="GET", path="/nope")
    assert status == 404 and "/features" in orjson.loads(body)["fix"]
    status, _, body = _post(service.url, b"[" + b" " * MAX_BODY_BYTES + b"]")
    assert status == 413 and orjson.loads(body) == {"error": "Request Entity Too Large",
                                                    "fix": f"send at most {MAX_BODY_BYTES} bytes"}


def test_health_metrics_and_openapi(service, clients):
    clients[1].get_features("user", [1], ["user_upvotes"])
    assert _post(service.url, b"", method="GET", path="/healthz")[:1] == (200,)
    _, headers, metrics = _post(service.url, b"", method="GET", path="/metrics")
    text = metrics.decode()
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'fp_serving_request_seconds_bucket{route="/features",status="200",le="0.001"}' in text
    assert 'fp_serving_request_seconds_count{route="/features",status="422"}' in text
    assert "# TYPE fp_serving_redis_errors_total counter" in text
    _, _, document = _post(service.url, b"", method="GET", path="/openapi.json")
    schema = orjson.loads(document)
    assert schema["openapi"].startswith("3.") and "/features" in schema["paths"]
    request = schema["components"]["schemas"]["FeaturesRequest"]
    assert "user" in request["properties"]["entity"]["enum"]
    assert "user_upvotes" in request["properties"]["features"]["description"]


def test_api_token_is_required_when_configured(registry, online):
    with ServerThread(FeatureService(registry, online, PREFIX, api_token="s3cret")) as server:
        body = {"entity": "user", "ids": [1], "features": ["user_upvotes"]}
        assert _post(server.url, body)[0] == 401
        status, headers, payload = _post(server.url, body, {"authorization": "Bearer wrong"})
        assert status == 401 and headers["www-authenticate"] == "Bearer"
        assert "API token" in orjson.loads(payload)["error"]
        assert HttpClient(server.url, token="s3cret").get_features("user", [1], ["user_upvotes.upvotes_7d"])[0] \
            .values == {"user_upvotes.upvotes_7d": 12}


class RedisOnPort:
    """A redis-server of this test's own on a fixed free port, so it can be stopped and started again there."""

    def __init__(self, port: int, directory: Path):
        self.port, self.directory, self.process = port, directory, None

    def start(self) -> None:
        self.process = subprocess.Popen([shutil.which("redis-server"), "--bind", "127.0.0.1", "--port", str(self.port),
                                         "--dir", str(self.directory), "--save", "", "--appendonly", "no"],
                                        stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.info("server")["process_id"] == self.process.pid:
                    break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def test_redis_down_is_a_503_with_the_reason_and_the_service_recovers(registry, tmp_path):
    port = free_loopback_port()
    store = RedisOnPort(port, tmp_path)
    url = f"redis://127.0.0.1:{port}/0"
    body = {"entity": "user", "ids": [1, 2], "features": ["user_upvotes.upvotes_7d"]}
    with ServerThread(FeatureService(registry, url, PREFIX, redis_timeout_seconds=0.5)) as server:
        client = HttpClient(server.url)
        status, headers, payload = _post(server.url, body)
        assert status == 503 and headers["retry-after"] == "1"
        assert orjson.loads(payload)["error"].startswith("online store unavailable: ConnectionError")
        assert _post(server.url, b"", method="GET", path="/healthz")[0] == 503
        with pytest.raises(StoreUnavailable):
            client.get_features("user", [1], ["user_upvotes"])
        try:
            store.start()
            assert client.get_features("user", [1], ["user_upvotes.upvotes_7d"])[0].values == \
                {"user_upvotes.upvotes_7d": None}
            store.stop()
            assert _post(server.url, body)[0] == 503  # the pooled connection is dead now
            store.start()
            assert _post(server.url, body)[0] == 200
            assert _post(server.url, b"", method="GET", path="/healthz")[0] == 200
        finally:
            store.stop()
        metrics = _post(server.url, b"", method="GET", path="/metrics")[2].decode()
        assert "fp_serving_redis_errors_total 4" in metrics


def test_in_process_client_reports_redis_down_the_same_way(registry):
    port = free_loopback_port()
    client = InProcessClient.connect(registry, f"redis://127.0.0.1:{port}/0", PREFIX, timeout_seconds=0.5)
    with pytest.raises(StoreUnavailable, match="online store unavailable: ConnectionError"):
        client.get_features("user", [1], ["user_upvotes"])


@contextmanager
def _featctl_serve(online: str, tmp_path: Path, *args: str):
    """`featctl serve` on a free loopback port against the test Redis, until it answers; yields (port, the
    process); stopped with Ctrl-C (SIGINT) at the end, its output in `process.output`."""
    port = free_loopback_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FP_")}
    env.update({"FP_DATA_DIR": str(tmp_path), "FP_REDIS_URL": online, "FP_REDIS_PREFIX": PREFIX})
    featctl = str(Path(sys.executable).parent / "featctl")
    process = subprocess.Popen([featctl, "serve", "--port", str(port), *args], cwd=PROJECT_ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = HttpClient(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        while True:
            try:
                client.get_features("user", [1], ["user_upvotes.upvotes_7d"])
                break
            except Exception:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        client.close()
        yield port, process
    finally:
        process.send_signal(signal.SIGINT)
        process.output = process.communicate(timeout=30)[0]


def test_featctl_serve_starts_on_loopback_and_stops(online, tmp_path):
    with _featctl_serve(online, tmp_path, "--workers", "1") as (port, process):
        client = HttpClient(f"http://127.0.0.1:{port}")
        assert client.get_features("user", [1], ["user_upvotes.upvotes_7d"])[0].values == {"user_upvotes.upvotes_7d": 12}
        client.close()
    assert f"feature service on http://127.0.0.1:{port}  (1 worker;" in process.output
    assert "Traceback" not in process.output


def test_featctl_serve_with_two_workers_answers_on_both_and_metrics_count_both(online, tmp_path):
    """Two worker processes share the port; 400 requests from 16 concurrent connections are answered, each
    worker answers some, and /metrics (from whichever worker) counts all of them and both workers."""
    from concurrent.futures import ThreadPoolExecutor

    def read(_n: int) -> dict:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("POST", "/features", orjson.dumps({"entity": "user", "ids": [1],
                                                              "features": ["user_upvotes.upvotes_7d"]}))
        body = orjson.loads(connection.getresponse().read())
        connection.close()
        return body

    def features_answered(text: str) -> int:
        return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
                   if line.startswith('fp_serving_request_seconds_count{route="/features",status="200"}'))

    with _featctl_serve(online, tmp_path, "--workers", "2") as (port, process):
        # The first answer proves one worker is up; a worker publishes its metrics as it starts, so two files
        # mean both accept (on a loaded machine the second one's start outlasted all 400 requests).
        metrics_dir = tmp_path / "serving" / f"metrics-{port}"
        deadline = time.monotonic() + 60
        while len(list(metrics_dir.glob("*.json"))) < 2:
            assert time.monotonic() < deadline, "the second worker never started"
            time.sleep(0.1)
        with ThreadPoolExecutor(16) as pool:
            bodies = list(pool.map(read, range(400)))
        assert {body["rows"][0]["values"]["user_upvotes.upvotes_7d"] for body in bodies} == {12}
        time.sleep(1.5)  # every worker has published its metrics since (every 0.5 s)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/metrics")
        scraped = connection.getresponse().read().decode()
        connection.close()
        snapshots = sorted(metrics_dir.glob("*.json"))
        per_worker = [features_answered("\n".join(
            f'fp_serving_request_seconds_count{{route="{labels[0]}",status="{labels[1]}"}} {sum(counts)}'
            for labels, counts, _total in orjson.loads(file.read_bytes())["fp_serving_request_seconds"]))
            for file in snapshots]
    assert "fp_serving_worker_processes 2" in scraped
    assert features_answered(scraped) == 401  # the 400 and the readiness probe
    assert len(per_worker) == 2 and all(count > 0 for count in per_worker) and sum(per_worker) == 401
    assert "(2 workers;" in process.output and "Traceback" not in process.output


def test_featctl_get_reads_through_the_client_with_its_id_checks_and_limits(online, tmp_path, monkeypatch, capsys):
    for name in [k for k in os.environ if k.startswith("FP_")]:
        monkeypatch.delenv(name)
    for name, value in {"FP_DATA_DIR": str(tmp_path), "FP_REDIS_URL": online, "FP_REDIS_PREFIX": PREFIX,
                        "FP_SERVING_MAX_IDS": "2", "COLUMNS": "200"}.items():
        monkeypatch.setenv(name, value)

    code, out = run_featctl(monkeypatch, capsys, "get", "user", "1,999", "user_upvotes.upvotes_7d")
    assert code == 0, out
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines() if line.startswith("│")]
    assert cells == [["1", "user_upvotes.upvotes_7d", "12", FRESH.isoformat()],
                     ["999", "user_upvotes.upvotes_7d", "null", "-"]]

    code, out = run_featctl(monkeypatch, capsys, "get", "user", "1,2,3", "user_upvotes")
    assert (code, " ".join(out.split())) == (1, "error: too many ids: 3 in one request, at most 2 (fix: split the "
                                                "ids into requests of at most 2)")
    code, out = run_featctl(monkeypatch, capsys, "get", "user", "x", "user_upvotes")
    assert (code, " ".join(out.split())) == (1, "error: ids[0] = 'x' is not a user id (fix: user ids are integers "
                                                "(or strings of digits) in the int64 range)")


def test_a_redis_that_never_answers_is_a_503_after_the_timeout(registry):
    import socket

    with socket.socket() as silent:  # accepts connections (kernel backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        with ServerThread(FeatureService(registry, url, PREFIX, redis_timeout_seconds=0.3)) as server:
            started = time.monotonic()
            status, _, payload = _post(server.url, {"entity": "user", "ids": [1], "features": ["user_upvotes"]})
            assert status == 503 and time.monotonic() - started < 5
            assert "Redis did not answer within 0.3 s" in orjson.loads(payload)["error"]
            assert _post(server.url, b"", method="GET", path="/healthz")[0] == 503
