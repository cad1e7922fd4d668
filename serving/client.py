"""The Python client of GetFeatures, in two forms with one interface and the same results.

`InProcessClient` reads Redis from the caller's process (no HTTP hop: for batch scoring and services
written in Python); `HttpClient` asks the feature service over one keep-alive connection per thread. Both
ask by feature refs (`get_features`) or by a feature service's name (`get_service`), optionally with
request fields for on-demand features (`request={"time": ..., <field>: ...}`), return `FeatureRow`s and
raise the same errors: `UnknownName` / `InvalidRequest` for requests that cannot
be answered as written, `StoreUnavailable` while Redis is down.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Sequence
from typing import Protocol
from urllib.parse import urlsplit

import orjson

from assets.registry import Registry
from infra.errors import PlatformError
from serving.feature_refs import InvalidRequest, UnknownName
from serving.codec import micros_to_datetime
from serving.get_features import FeatureRow, check_ids, get_features, now_micros
from serving.online_store import STORE_ERRORS, OnlineStore, connect
from serving.request_plan import RequestPlan, RequestPlans, finish_rows
from serving.wire import rows_from_body

DEFAULT_MAX_IDS = 1000


class StoreUnavailable(PlatformError):
    """The online store (Redis) did not answer; the request can be retried once it is back."""


def store_unavailable(exc: Exception) -> StoreUnavailable:
    """The error both clients and the service report when Redis fails, naming Redis's own words."""
    return StoreUnavailable(f"online store unavailable: {type(exc).__name__}: {exc}",
                            "check that Redis is running and FP_REDIS_URL points at it; retry when it is back")


class FeatureClient(Protocol):
    """What every GetFeatures client offers."""

    def get_features(self, entity: str, ids: Sequence, features: Sequence[str],
                     request: dict | None = None) -> list[FeatureRow]:
        """Values, event times and staleness of `features` for each of `ids`, in order."""

    def get_service(self, service: str, ids: Sequence, request: dict | None = None) -> list[FeatureRow]:
        """The features of the feature service `service` for each of `ids`, in the service's order."""

    def close(self) -> None:
        """Release connections."""


class InProcessClient:
    """GetFeatures from Redis in this process: a cached read plan, one pipelined round trip, a decode."""

    def __init__(self, store: OnlineStore, plans: RequestPlans, max_ids: int = DEFAULT_MAX_IDS):
        self.store = store
        self.plans = plans
        self.max_ids = max_ids

    @classmethod
    def connect(cls, registry: Registry, redis_url: str, prefix: str, max_ids: int = DEFAULT_MAX_IDS,
                timeout_seconds: float = 1.0) -> InProcessClient:
        """A client on the Redis at `redis_url` (AUTH and TLS come from the URL: redis://user:pw@, rediss://)."""
        client = connect(redis_url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds)
        return cls(OnlineStore(client), RequestPlans(registry, prefix), max_ids)

    def _answer(self, plan: RequestPlan, ids: Sequence, request: dict | None) -> list[FeatureRow]:
        now = now_micros()
        ids = check_ids(plan.read, ids, self.max_ids)
        fields = plan.request(request, micros_to_datetime(now))
        try:
            rows = get_features(self.store, plan.read, ids, now)
        except STORE_ERRORS as exc:
            raise store_unavailable(exc) from None
        return finish_rows(plan, rows, fields)

    def get_features(self, entity: str, ids: Sequence, features: Sequence[str],
                     request: dict | None = None) -> list[FeatureRow]:
        """Values, event times and staleness of `features` for each of `ids`, in order."""
        return self._answer(self.plans.plan(entity, features), ids, request)

    def get_service(self, service: str, ids: Sequence, request: dict | None = None) -> list[FeatureRow]:
        """The features of the feature service `service` for each of `ids`, in the service's order."""
        return self._answer(self.plans.service(service), ids, request)

    def close(self) -> None:
        """Close the Redis connections."""
        self.store.client.close()


class HttpClient:
    """GetFeatures from the feature service over HTTP/1.1 keep-alive (one connection per calling thread)."""

    def __init__(self, base_url: str, token: str | None = None, timeout_seconds: float = 5.0):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PlatformError(f"{base_url!r} is not a feature service URL", "use e.g. http://127.0.0.1:8600")
        self._connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self._address = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        self._path = parts.path.rstrip("/") + "/features"
        self._headers = {"content-type": "application/json"}
        if token:
            self._headers["authorization"] = f"Bearer {token}"
        self._timeout = timeout_seconds
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connection_class(*self._address, timeout=self._timeout)
            self._local.connection = connection
        return connection

    def _post(self, body: bytes) -> tuple[int, bytes]:
        """POST /features; a keep-alive connection the server closed meanwhile is reopened once."""
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.request("POST", self._path, body, self._headers)
                response = connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise PlatformError(f"feature service at {self._address[0]}:{self._address[1]} closed the "
                                        f"connection: {exc}", "check that `featctl serve` is running") from None
            except OSError as exc:
                connection.close()
                self._local.connection = None
                raise PlatformError(f"feature service at {self._address[0]}:{self._address[1]} is unreachable: "
                                    f"{exc}", "start it with `featctl serve` or fix the URL") from None
        raise AssertionError("unreachable")

    def _ask(self, payload: dict, request: dict | None) -> list[FeatureRow]:
        if request is not None:
            payload["request"] = request
        status, body = self._post(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY))
        if status == 200:
            return rows_from_body(body)
        raise _error_from_response(status, body)

    def get_features(self, entity: str, ids: Sequence, features: Sequence[str],
                     request: dict | None = None) -> list[FeatureRow]:
        """Values, event times and staleness of `features` for each of `ids`, in order."""
        return self._ask({"entity": entity, "ids": list(ids), "features": list(features)}, request)

    def get_service(self, service: str, ids: Sequence, request: dict | None = None) -> list[FeatureRow]:
        """The features of the feature service `service` for each of `ids`, in the service's order."""
        return self._ask({"service": service, "ids": list(ids)}, request)

    def close(self) -> None:
        """Close this thread's connection."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


def _error_from_response(status: int, body: bytes) -> PlatformError:
    """The exception the in-process client would have raised for the same request."""
    try:
        error = orjson.loads(body)
        what, fix = error["error"], error.get("fix")
    except (orjson.JSONDecodeError, KeyError, TypeError):
        what, fix = f"feature service answered {status}: {body[:200]!r}", None
    if status == 404:
        return UnknownName(what, fix)
    if status == 503:
        return StoreUnavailable(what, fix)
    if 400 <= status < 500 and status not in (401, 403):
        return InvalidRequest(what, fix)
    return PlatformError(what, fix)
