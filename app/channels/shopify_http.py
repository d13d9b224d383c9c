"""HTTP to one shop's Admin API: bounded retries, rate limits, errors with reasons.

`AdminTransport.graphql(...)` posts to `{base}/graphql.json`, `AdminTransport.rest_get(...)` gets
`{base}/<resource>?<query>`; both send `X-Shopify-Access-Token` and answer with parsed JSON or
raise `ShopifyApiError` (a `ChannelApiError` with `retryable`, plus the HTTP `status`).

GraphQL cost is a leaky bucket per app and shop; every response carries
`extensions.cost.throttleStatus {maximumAvailable, currentlyAvailable, restoreRate}` and
`requestedQueryCost`. Before a request the transport estimates what the bucket holds now (the
last `currentlyAvailable` plus `restoreRate` per second since it was read) and, if that is below
the operation's expected cost (its last `requestedQueryCost`, 50 until known), sleeps
`(cost - available) / restoreRate`; then it counts the cost as spent until the reply says
otherwise, so threads sharing the transport do not all start at once. A THROTTLED error (Shopify
answers it with HTTP 200; 429 is handled the same way) is retried after the larger of that wait
and a doubling backoff (1, 2, 4, 8 s), up to `max_attempts` requests in all, then raised as
retryable. REST honours 429 `Retry-After` and keeps two calls of headroom in
`X-Shopify-Shop-Api-Call-Limit: used/limit`, assumed to drain 2 calls a second (Standard plan).

Timeouts, connection errors and 5xx are retried the same bounded way, except for mutations:
a mutation that may have reached Shopify is never repeated here (the caller decides, after
reading the current state), only one refused before it was sent or THROTTLED.

`admin_session(base_url)` is the `requests.Session` a client uses unless given one: it reads the
environment's proxy and CA bundle settings once, when it is made (see there).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from app.channels.base import ChannelApiError
from app.metrics import CHANNEL_API_ERRORS, CHANNEL_API_THROTTLES

logger = logging.getLogger(__name__)

CHANNEL = "shopify"  # the channel label of its metrics
DEFAULT_QUERY_COST = 50.0
MAX_WAIT_SECONDS = 60.0
REST_LEAK_PER_SECOND = 2.0
REST_HEADROOM = 2


class ShopifyApiError(ChannelApiError):
    """A failed Admin API call; `status` is the HTTP status when there was one."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message, retryable=retryable)
        self.status = status


@dataclass
class _Bucket:
    maximum: float
    available: float
    restore_rate: float
    at: float


def admin_session(base_url: str) -> requests.Session:
    """A session for one Admin API base URL that honours HTTPS_PROXY / HTTP_PROXY / NO_PROXY
    and REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE as they are when it is made.

    With `trust_env` on, requests reads them again on every request (and ~/.netrc too), which
    was a fifth of the client's time in a catalogue's stock sync. The base URL is fixed, so
    whether NO_PROXY exempts it is decided here once. ~/.netrc is not read: the access token
    header is the only credential."""
    session = requests.Session()
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False
    return session


class AdminTransport:
    """Requests to one Admin API base URL with one access token (never logged or raised)."""

    def __init__(self, base_url: str, access_token: str, *, api_version: str,
                 session: requests.Session, timeout: tuple[float, float],
                 clock: Callable[[], float], sleep: Callable[[float], None],
                 max_attempts: int) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self._token = access_token
        self._session = session
        self._timeout = timeout
        self._clock = clock
        self._sleep = sleep
        self._max_attempts = max(1, max_attempts)
        self._lock = threading.Lock()
        self._bucket: _Bucket | None = None
        self._costs: dict[str, float] = {}
        self._rest_calls: tuple[float, float, float] | None = None  # used, limit, read at
        self._version_warned = False

    def close(self) -> None:
        self._session.close()

    @property
    def _headers(self) -> dict[str, str]:
        return {"X-Shopify-Access-Token": self._token, "Accept": "application/json",
                "User-Agent": "OrderHub"}

    # ------------------------------------------------------------------ GraphQL

    def graphql(self, op: str, query: str, variables: Mapping[str, Any], *, scope_hint: str,
                mutation: bool = False) -> dict[str, Any]:
        """`data` of a GraphQL call named `op`; `scope_hint` names the scope a 403 points to."""
        url = f"{self.base_url}/graphql.json"
        body: dict[str, Any] = {"query": query, "variables": dict(variables)}
        failure: ShopifyApiError | None = None
        floor = 0.0
        for attempt in range(1, self._max_attempts + 1):
            if failure is not None:
                self._pause(op, max(floor, self._bucket_wait(op)), failure, attempt)
            self._take_from_bucket(op)
            try:
                response = self._session.post(url, json=body, headers=self._headers,
                                              timeout=self._timeout)
            except requests.RequestException as exc:
                failure, floor = self._transport_error(op, exc), backoff(attempt)
                # Only a connection that timed out before it was made surely never reached
                # Shopify; anything else may have created the fulfillment.
                if mutation and not isinstance(exc, requests.ConnectTimeout):
                    raise failure from None
                continue
            self._check_version(response)
            payload = _json(response)
            self._note_cost(op, payload)
            if response.status_code == 429 or has_error_code(payload, "THROTTLED"):
                CHANNEL_API_THROTTLES.labels(CHANNEL).inc()
                failure = ShopifyApiError(f"Shopify throttled {op} (query cost rate limit)",
                                          retryable=True, status=response.status_code)
                floor = _retry_after(response) or backoff(attempt)
                continue
            if response.status_code >= 500 or (payload is None and response.ok):
                failure, floor = self._server_error(op, response, payload), backoff(attempt)
                if mutation:
                    raise failure
                continue
            if not response.ok:
                raise self._http_error(op, response, payload, scope_hint)
            assert payload is not None
            if payload.get("errors"):
                if has_error_code(payload, "INTERNAL_SERVER_ERROR") and not mutation:
                    CHANNEL_API_ERRORS.labels(CHANNEL, "server").inc()
                    failure = ShopifyApiError(
                        f"Shopify failed {op}: {self._detail(payload['errors'])}",
                        retryable=True)
                    floor = backoff(attempt)
                    continue
                raise self._graphql_error(op, payload, scope_hint)
            data = payload.get("data")
            if not isinstance(data, dict):
                CHANNEL_API_ERRORS.labels(CHANNEL, "rejected").inc()
                raise ShopifyApiError(f"Shopify answered {op} without data", retryable=False)
            return data
        raise self._gave_up(failure)

    # ------------------------------------------------------------------ REST

    def rest_get(self, resource: str, query: str, *,
                 scope_hint: str) -> tuple[requests.Response, dict[str, Any]]:
        """The response and its JSON object for GET `{base}/{resource}?{query}`."""
        url = f"{self.base_url}/{resource}?{query}"
        op = f"GET {resource}"
        failure: ShopifyApiError | None = None
        floor = 0.0
        for attempt in range(1, self._max_attempts + 1):
            wait = self._rest_wait()
            if failure is not None:
                self._pause(op, max(wait, floor), failure, attempt)
            elif wait > 0:
                logger.info("shopify %s: REST call limit nearly reached, waiting %.2fs", op, wait)
                self._sleep(wait)
            try:
                response = self._session.get(url, headers=self._headers, timeout=self._timeout)
            except requests.RequestException as exc:
                failure, floor = self._transport_error(op, exc), backoff(attempt)
                continue
            self._check_version(response)
            self._note_call_limit(response)
            payload = _json(response)
            if response.status_code == 429:
                CHANNEL_API_THROTTLES.labels(CHANNEL).inc()
                failure = ShopifyApiError(f"Shopify rate-limited {op} (HTTP 429)",
                                          retryable=True, status=429)
                floor = _retry_after(response) or backoff(attempt)
                continue
            if response.status_code >= 500 or (payload is None and response.ok):
                failure, floor = self._server_error(op, response, payload), backoff(attempt)
                continue
            if not response.ok:
                raise self._http_error(op, response, payload, scope_hint)
            assert payload is not None
            return response, payload
        raise self._gave_up(failure)

    def _pause(self, op: str, wait: float, failure: ShopifyApiError, attempt: int) -> None:
        wait = min(wait, MAX_WAIT_SECONDS)
        logger.warning("shopify %s: %s; retrying in %.2fs (attempt %d of %d)", op,
                       failure.message, wait, attempt, self._max_attempts)
        if wait > 0:
            self._sleep(wait)

    def _gave_up(self, failure: ShopifyApiError | None) -> ShopifyApiError:
        assert failure is not None
        return ShopifyApiError(f"{failure.message} (gave up after {self._max_attempts} attempts)",
                               retryable=True, status=failure.status)

    # ------------------------------------------------------------------ GraphQL cost bucket

    def _bucket_wait(self, op: str) -> float:
        with self._lock:
            bucket = self._bucket
            if bucket is None or bucket.restore_rate <= 0:
                return 0.0
            needed = min(self._costs.get(op, DEFAULT_QUERY_COST), bucket.maximum)
            available = self._available(bucket)
        if available >= needed - 0.01:  # float crumbs after an exact wait are no reason to wait
            return 0.0
        return min((needed - available) / bucket.restore_rate, MAX_WAIT_SECONDS)

    def _take_from_bucket(self, op: str) -> None:
        wait = self._bucket_wait(op)
        if wait > 0:
            logger.info("shopify %s: query cost bucket low, waiting %.2fs", op, wait)
            self._sleep(wait)
        with self._lock:
            if self._bucket is not None:
                needed = self._costs.get(op, DEFAULT_QUERY_COST)
                self._bucket.available = max(0.0, self._available(self._bucket) - needed)
                self._bucket.at = self._clock()

    def _available(self, bucket: _Bucket) -> float:
        elapsed = max(0.0, self._clock() - bucket.at)
        return min(bucket.maximum, bucket.available + elapsed * bucket.restore_rate)

    def _note_cost(self, op: str, payload: dict[str, Any] | None) -> None:
        cost = json_object(json_object(payload).get("extensions")).get("cost")
        if not isinstance(cost, dict):
            return
        status = json_object(cost.get("throttleStatus"))
        requested = _as_float(cost.get("requestedQueryCost"))
        maximum = _as_float(status.get("maximumAvailable"))
        available = _as_float(status.get("currentlyAvailable"))
        rate = _as_float(status.get("restoreRate"))
        with self._lock:
            if requested is not None:
                self._costs[op] = requested
            if maximum is not None and available is not None and rate is not None:
                self._bucket = _Bucket(maximum, available, rate, self._clock())

    # ------------------------------------------------------------------ REST call limit

    def _note_call_limit(self, response: requests.Response) -> None:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*",
                             response.headers.get("X-Shopify-Shop-Api-Call-Limit", ""))
        if match:
            with self._lock:
                self._rest_calls = (float(match[1]), float(match[2]), self._clock())

    def _rest_wait(self) -> float:
        with self._lock:
            if self._rest_calls is None:
                return 0.0
            used, limit, at = self._rest_calls
            used = max(0.0, used - (self._clock() - at) * REST_LEAK_PER_SECOND)
        over = used - (limit - REST_HEADROOM)
        return min(over / REST_LEAK_PER_SECOND, MAX_WAIT_SECONDS) if over > 0 else 0.0

    # ------------------------------------------------------------------ errors

    def _detail(self, value: Any) -> str:
        """Shopify's words for a message: one line, bounded, and never the token."""
        if isinstance(value, list):
            text = "; ".join(str(v.get("message") or v) if isinstance(v, dict) else str(v)
                             for v in value)
        elif isinstance(value, dict):
            text = "; ".join(f"{k}: {v}" for k, v in value.items())
        else:
            text = str(value)
        return " ".join(text.replace(self._token, "[redacted]").split())[:300]

    def _transport_error(self, op: str, exc: requests.RequestException) -> ShopifyApiError:
        CHANNEL_API_ERRORS.labels(CHANNEL, "network").inc()
        kind = ("timed out" if isinstance(exc, requests.Timeout)
                else "could not connect" if isinstance(exc, requests.ConnectionError)
                else "failed")
        return ShopifyApiError(f"Shopify {op} {kind} ({type(exc).__name__})", retryable=True)

    def _server_error(self, op: str, response: requests.Response,
                      payload: dict[str, Any] | None) -> ShopifyApiError:
        CHANNEL_API_ERRORS.labels(CHANNEL, "server").inc()
        status = response.status_code
        what = f"HTTP {status}" if status >= 500 else f"a non-JSON answer (HTTP {status})"
        errors = json_object(payload).get("errors")
        detail = f": {self._detail(errors)}" if errors else ""
        return ShopifyApiError(f"Shopify answered {op} with {what}{detail}", retryable=True,
                               status=status)

    def _http_error(self, op: str, response: requests.Response, payload: dict[str, Any] | None,
                    scope_hint: str) -> ShopifyApiError:
        CHANNEL_API_ERRORS.labels(CHANNEL, "refused").inc()
        status = response.status_code
        errors = json_object(payload).get("errors")
        said = f" (Shopify said: {self._detail(errors)})" if errors else ""
        if status == 401:
            reason = (f"Shopify rejected the access token for {op} (HTTP 401): "
                      "SHOPIFY_ACCESS_TOKEN is wrong, revoked, or belongs to another shop")
        elif status == 403:
            reason = (f"Shopify refused {op} (HTTP 403): the app most likely lacks the "
                      f"{scope_hint} access scope; grant it to the app and install it again")
        elif status == 404:
            reason = (f"Shopify answered 404 Not Found for {op}: check SHOPIFY_SHOP_DOMAIN, "
                      f"SHOPIFY_API_BASE_URL and SHOPIFY_API_VERSION ({self.base_url})")
        elif status == 402:
            reason = f"Shopify refused {op} (HTTP 402): the shop is frozen (unpaid plan)"
        elif status == 423:
            reason = f"Shopify refused {op} (HTTP 423): the shop is locked"
        else:
            reason = f"Shopify refused {op} (HTTP {status})"
        return ShopifyApiError(reason + said, retryable=False, status=status)

    def _graphql_error(self, op: str, payload: dict[str, Any],
                       scope_hint: str) -> ShopifyApiError:
        CHANNEL_API_ERRORS.labels(CHANNEL, "rejected").inc()
        detail = self._detail(payload.get("errors"))
        if has_error_code(payload, "ACCESS_DENIED"):
            return ShopifyApiError(f"Shopify denied {op}: the app most likely lacks the "
                                   f"{scope_hint} access scope (Shopify said: {detail})",
                                   retryable=False)
        return ShopifyApiError(f"Shopify rejected {op}: {detail}", retryable=False)

    def _check_version(self, response: requests.Response) -> None:
        # Shopify serves the oldest supported version when asked for one it no longer has.
        served = response.headers.get("X-Shopify-API-Version")
        if served and served != self.api_version and not self._version_warned:
            self._version_warned = True
            logger.warning("shopify: asked for API version %s, Shopify answered with %s; "
                           "update SHOPIFY_API_VERSION", self.api_version, served)


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt`: 1, 2, 4, 8, ... at most 30."""
    return float(min(2 ** (attempt - 1), 30))


def has_error_code(payload: dict[str, Any] | None, code: str) -> bool:
    """Whether a GraphQL answer has an error with `extensions.code == code`."""
    errors = json_object(payload).get("errors")
    return isinstance(errors, list) and any(
        json_object(json_object(e).get("extensions")).get("code") == code for e in errors)


def json_object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def json_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _json(response: requests.Response) -> dict[str, Any] | None:
    try:
        payload = response.json()
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _retry_after(response: requests.Response) -> float | None:
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return min(seconds, MAX_WAIT_SECONDS) if seconds >= 0 else None


def _as_float(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
