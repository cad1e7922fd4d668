"""The feature service: GetFeatures over HTTP, an ASGI app served by uvicorn (httptools parser, uvloop loop).

    POST /features      {"entity": "user", "ids": [42, 7], "features": ["user_upvotes.upvotes_7d", "user_upvotes"]}
                        or {"service": "ranking", "ids": [42, 7]} (a feature service, assets/services/)
                        -> per id: values, per-feature event times, stale flags (serving/wire.py); both forms
                        may add "request": {"time": ..., <field>: ...} for on-demand features
    GET  /healthz       200 when Redis answers a PING, else 503 with the reason
    GET  /metrics       Prometheus text: request latency histogram, Redis errors, responses logged/dropped
                        (summed over the worker processes of `featctl serve --workers N`)
    GET  /openapi.json  the OpenAPI 3.1 description of the above

The request path does the least work it can: the read plan comes from a cache keyed by the feature list,
Redis is read with one round trip on an asyncio connection (a slow Redis delays only the requests waiting
for it) by sending the plan's pre-encoded HMGETs as one buffer, and orjson encodes the rows. Requests that cannot be
answered as written get a 4xx with `{"error": what, "fix": how}`: 400 malformed body, 401 missing or
wrong API token, 404 unknown entity, group, version, feature or service, 422 bad or too many ids, an
entity mismatch, a malformed ref, or a missing or mistyped request field. A Redis failure is a 503 with
the reason and `Retry-After`; the next request reconnects, so the service recovers on its own when Redis
is back. With a response log (FP_SERVING_LOG_DIR) each answered body is also offered to the bounded
queue of serving/response_log.py, never waited on.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import shutil
import time
from contextlib import asynccontextmanager
from functools import partial
from http import HTTPStatus
from pathlib import Path

import orjson
import redis
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from assets.registry import Registry
from infra.errors import PlatformError
from infra.settings import Settings
from serving.client import store_unavailable
from serving.feature_refs import InvalidRequest, UnknownName
from serving.codec import micros_to_datetime
from serving.get_features import ReadPlan, check_ids, decode_rows, entity_keys, hmget_commands, now_micros
from serving.metrics import CONTENT_TYPE, Counter, Histogram, SharedMetrics, exposition
from serving.online_store import STORE_ERRORS, connect_async, read_commands_async
from serving.openapi import openapi_document
from serving.request_plan import RequestPlans, finish_rows
from serving.response_log import ResponseLog
from serving.wire import response_body

REQUEST_FORMS = (frozenset({"entity", "ids", "features"}), frozenset({"service", "ids"}))
OPTIONAL_FIELDS = frozenset({"request"})
SHAPES = '{"entity": ..., "ids": [...], "features": [...]} or {"service": ..., "ids": [...]}'

MAX_BODY_BYTES = 1 << 20
ROUTES = ("/features", "/healthz", "/metrics", "/openapi.json")
UVICORN_OPTIONS = {"loop": "uvloop", "http": "httptools", "lifespan": "on", "access_log": False, "log_level": "warning"}
PUBLISH_SECONDS = 0.5  # how often a worker of several shares its metrics (a scrape is at most this behind)
WORKER_REDIS_URL, WORKER_METRICS_DIR = "FP_SERVING_WORKER_REDIS_URL", "FP_SERVING_WORKER_METRICS_DIR"


def _json(status: int, payload: dict, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, headers=headers, media_type="application/json")


def _error(status: int, error: PlatformError, headers: dict | None = None) -> Response:
    return _json(status, {"error": error.what, "fix": error.fix}, headers)


def _status_of(error: InvalidRequest) -> int:
    return 404 if isinstance(error, UnknownName) else 422


def _request_fields(body: bytes) -> dict:
    """The request object, or an InvalidRequest saying what is wrong with its shape (answered as 400)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not JSON: {exc}", f"send {SHAPES}") from None
    if not isinstance(payload, dict):
        raise InvalidRequest(f"the request body must be a JSON object, got {type(payload).__name__}",
                             f"send {SHAPES}")
    form = REQUEST_FORMS[1] if "service" in payload else REQUEST_FORMS[0]
    missing, unknown = form - payload.keys(), payload.keys() - form - OPTIONAL_FIELDS
    if missing or unknown:
        problem = f"missing {sorted(missing)}" if missing else f"unknown {sorted(unknown)}"
        raise InvalidRequest(f"request fields: {problem}", "send exactly entity, ids and features, or service and "
                             "ids (either with an optional request)")
    return payload


class TimedRequests:
    """ASGI wrapper recording every HTTP request's latency by route and status."""

    def __init__(self, app, latency: Histogram):
        self.app = app
        self.latency = latency

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def send_recording_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording_status)
        finally:
            route = scope["path"] if scope["path"] in ROUTES else "other"
            self.latency.observe(time.perf_counter() - started, route, str(status))


class FeatureService:
    """The service's state (Redis client, plan cache, metrics) and its route handlers."""

    def __init__(self, registry: Registry, redis_url: str, prefix: str, api_token: str | None = None,
                 max_ids: int = 1000, redis_timeout_seconds: float = 1.0, response_log: ResponseLog | None = None,
                 shared_metrics: SharedMetrics | None = None):
        self.registry = registry
        self.redis_url = redis_url
        self.redis_timeout_seconds = redis_timeout_seconds
        self.plans = RequestPlans(registry, prefix)
        self.max_ids = max_ids
        self.api_token = api_token.encode() if api_token else None
        self.redis: aioredis.Redis | aioredis.RedisCluster | None = None
        self.latency = Histogram("fp_serving_request_seconds", "HTTP request latency of the feature service.",
                                 ("route", "status"))
        self.redis_errors = Counter("fp_serving_redis_errors_total",
                                    "Requests that failed because Redis did not answer.")
        self.openapi = orjson.dumps(openapi_document(registry, max_ids))
        self.response_log = response_log
        self.shared_metrics = shared_metrics  # set when this is one of several worker processes

    @classmethod
    def from_settings(cls, settings: Settings, registry: Registry, redis_url: str,
                      shared_metrics: SharedMetrics | None = None) -> FeatureService:
        """The service configured by the platform settings (FP_SERVING_* and FP_REDIS_PREFIX)."""
        log = None if settings.serving_log_dir is None else ResponseLog(
            settings.serving_log_dir, settings.serving_log_sample, settings.serving_log_queue,
            settings.serving_log_flush_seconds)
        return cls(registry, redis_url, settings.redis_prefix, settings.serving_api_token, settings.serving_max_ids,
                   settings.serving_redis_timeout_seconds, log, shared_metrics)

    @property
    def _own_metrics(self) -> list:
        logs = [] if self.response_log is None else [self.response_log.logged, self.response_log.dropped]
        return [self.latency, self.redis_errors, *logs]

    async def _publish_metrics(self) -> None:
        """A worker's metrics into the shared directory, every PUBLISH_SECONDS, for whichever worker is scraped."""
        while True:
            self.shared_metrics.publish(self._own_metrics)
            await asyncio.sleep(PUBLISH_SECONDS)

    @asynccontextmanager
    async def lifespan(self, _app):
        """One asyncio Redis client (a connection pool) and the response log's writer for the life of the server;
        at shutdown the log writes every queued response before the server exits."""
        # No socket timeout: redis-py would arm one per reply (100 ids, 100 timers). Each request has one deadline.
        self.redis = connect_async(self.redis_url, socket_connect_timeout=self.redis_timeout_seconds)
        if self.response_log is not None:
            self.response_log.start()
        publisher = None if self.shared_metrics is None else asyncio.create_task(self._publish_metrics())
        try:
            yield
        finally:
            if publisher is not None:
                publisher.cancel()
                self.shared_metrics.publish(self._own_metrics)
            await self.redis.aclose()
            if self.response_log is not None:
                await asyncio.to_thread(self.response_log.close)

    def _authorized(self, authorization: bytes) -> bool:
        if self.api_token is None:
            return True
        return authorization.startswith(b"Bearer ") and hmac.compare_digest(authorization[7:], self.api_token)

    @asynccontextmanager
    async def _deadline(self):
        """Redis must answer within the configured timeout; if it does not, that is a Redis timeout error."""
        try:
            async with asyncio.timeout(self.redis_timeout_seconds):
                yield
        except TimeoutError:
            raise redis.TimeoutError(f"Redis did not answer within {self.redis_timeout_seconds:g} s") from None

    async def _read(self, plan: ReadPlan, keys: list[str]) -> list:
        """The asyncio twin of serving.get_features.read_raw: the plan's HMGETs, one buffer (one per node on
        a cluster), the replies in key order."""
        async with self._deadline():
            return await read_commands_async(self.redis, keys, partial(hmget_commands, plan))

    async def features(self, body: bytes, authorization: bytes) -> Response:
        """POST /features: GetFeatures for one entity, many ids, many feature refs (or one feature service)."""
        if not self._authorized(authorization):
            return _error(401, PlatformError("missing or wrong API token",
                                             "send the header `Authorization: Bearer <FP_SERVING_API_TOKEN>`"),
                          {"www-authenticate": "Bearer"})
        try:
            payload = _request_fields(body)
        except InvalidRequest as exc:
            return _error(400, exc)
        now = now_micros()
        try:
            plan = (self.plans.service(payload["service"]) if "service" in payload
                    else self.plans.plan(payload["entity"], payload["features"]))
            ids = check_ids(plan.read, payload["ids"], self.max_ids)
            request = plan.request(payload.get("request"), micros_to_datetime(now))
        except InvalidRequest as exc:
            return _error(_status_of(exc), exc)
        try:
            raw = await self._read(plan.read, entity_keys(plan.read, ids))
        except STORE_ERRORS as exc:
            self.redis_errors.inc()
            return _error(503, store_unavailable(exc), {"retry-after": "1"})
        try:
            rows = finish_rows(plan, decode_rows(plan.read, ids, raw, now), request)
        except PlatformError as exc:  # an on-demand function returned what it does not declare: the code's fault
            return _error(500, exc)
        body = response_body(plan, rows)
        if self.response_log is not None:
            self.response_log.offer(payload.get("service"), request, body, micros_to_datetime(now))
        return Response(body, media_type="application/json")

    async def healthz(self, _request: Request) -> Response:
        """GET /healthz: ready when Redis answers."""
        try:
            async with self._deadline():
                await self.redis.ping()
        except STORE_ERRORS as exc:
            self.redis_errors.inc()
            return _error(503, store_unavailable(exc), {"retry-after": "1"})
        return _json(200, {"status": "ok"})

    async def metrics(self, _request: Request) -> Response:
        """GET /metrics: Prometheus text exposition (of every worker process, when there are several)."""
        if self.shared_metrics is None:
            return Response(exposition(self._own_metrics), media_type=CONTENT_TYPE)
        self.shared_metrics.publish(self._own_metrics)
        return Response(exposition(self.shared_metrics.merged(self._own_metrics)), media_type=CONTENT_TYPE)

    async def openapi_json(self, _request: Request) -> Response:
        """GET /openapi.json: the service's OpenAPI document, with the feature catalog."""
        return Response(self.openapi, media_type="application/json")


HTTP_FIXES = {404: f"use one of {', '.join(ROUTES)}", 405: "POST /features; GET the other routes",
              413: f"send at most {MAX_BODY_BYTES} bytes"}


def _status_error(status: int, detail: str | None = None, headers: dict | None = None) -> Response:
    """The JSON error of an HTTP-level refusal (unknown path, wrong method, body too large)."""
    return _error(status, PlatformError(detail or HTTPStatus(status).phrase, HTTP_FIXES.get(status)), headers)


async def _http_error(_request: Request, exc: HTTPException) -> Response:
    """Starlette's own 404 (unknown path) and 405 (wrong method), as JSON errors."""
    return _status_error(exc.status_code, exc.detail, exc.headers)


class FeaturesFirst:
    """ASGI app: POST /features goes straight to the service's handler, every other request to Starlette.

    The hot path builds no Request, no routing and no middleware objects per call (measured: they were a
    fifth of a worker's time under load); it keeps Starlette's answers for a wrong method (405) and a body
    over MAX_BODY_BYTES (413)."""

    def __init__(self, service: FeatureService, app):
        self.service = service
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/features":
            return await self.app(scope, receive, send)
        if scope["method"] != "POST":
            response = _status_error(405, headers={"allow": "POST"})
        else:
            body = await _body(receive)
            authorization = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
            response = _status_error(413) if body is None else await self.service.features(body, authorization)
        await response(scope, receive, send)


async def _body(receive) -> bytes | None:
    """The request body, or None once it passes MAX_BODY_BYTES."""
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def create_app(service: FeatureService):
    """The ASGI app of `service`: routes, JSON errors, and the latency histogram around everything."""
    app = Starlette(
        routes=[
            Route("/healthz", service.healthz, methods=["GET"]),
            Route("/metrics", service.metrics, methods=["GET"]),
            Route("/openapi.json", service.openapi_json, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error},
        lifespan=service.lifespan,
    )
    return TimedRequests(FeaturesFirst(service, app), service.latency)


def worker_app():
    """The app of one worker process of `featctl serve --workers N`: uvicorn imports this factory in each
    worker it starts. Settings come from FP_* as usual; the parent passes the Redis URL it resolved (maybe a
    Redis it started) and the directory where the workers share their metrics."""
    from assets.registry import load_registry
    from infra.settings import load_settings

    settings = load_settings()
    service = FeatureService.from_settings(settings, load_registry(settings.registry_dir), os.environ[WORKER_REDIS_URL],
                                           SharedMetrics(Path(os.environ[WORKER_METRICS_DIR])))
    return create_app(service)


def run_workers(workers: int, port: int, host: str, redis_url: str, metrics_dir: Path) -> None:
    """Serve on host:port with `workers` processes (uvicorn's supervisor: one listening socket, accepted by
    whichever worker is free) until interrupted; their metrics are summed on every /metrics."""
    import uvicorn

    shutil.rmtree(metrics_dir, ignore_errors=True)
    os.environ.update({WORKER_REDIS_URL: redis_url, WORKER_METRICS_DIR: str(metrics_dir)})
    uvicorn.run("serving.service:worker_app", factory=True, host=host, port=port, workers=workers, **UVICORN_OPTIONS)


def uvicorn_server(service: FeatureService, port: int, host: str = "127.0.0.1"):
    """A uvicorn server for `service` (uvloop + httptools, no access log); `.run()` blocks until stopped."""
    import uvicorn

    config = uvicorn.Config(create_app(service), host=host, port=port, **UVICORN_OPTIONS)
    return uvicorn.Server(config)
