"""Request ids, request metrics and the database figures behind `GET /metrics`.

- `RequestContext` (ASGI middleware): takes a sane `X-Request-ID` from the client or makes one,
  puts it in `welfare.logs.request_id_var` for every log line of the request, echoes it in the
  response, and observes the request's latency by route template (never the concrete path:
  `/api/v1/residents/{resident_id}`, so no ids and no searched words become label values).
- The process-wide metrics live in prometheus_client's default registry (request latency,
  time to confirmation, and the dispatcher's counters in notifications/metrics.py). The database
  figures are collected per app at scrape time by `DatabaseCollector` in the app's own registry.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from welfare import hooks, stats
from welfare.logs import request_id_var, sane_request_id

log = logging.getLogger("welfare.api")

REQUEST_ID_HEADER = b"x-request-id"

REQUEST_SECONDS = Histogram(
    "welfare_http_request_duration_seconds",
    "HTTP request latency by route template, method and status class",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CONFIRMATION_SECONDS = Histogram(
    "welfare_incident_time_to_confirmation_seconds",
    "From an incident's opening to a contact's (or staff's) confirmation",
    ["kind"],
    buckets=(5, 10, 20, 30, 60, 90, 120, 180, 300, 600, 900, 1800, 3600),
)


def _observe_confirmation(kind: str, seconds: float) -> None:
    CONFIRMATION_SECONDS.labels(kind=kind).observe(seconds)


hooks.on_incident_confirmed(_observe_confirmation)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestContext:
    """Request id in, request id out, latency observed. Outermost middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope.get("headers", []):
            if name == REQUEST_ID_HEADER:
                given = sane_request_id(value.decode("latin-1"))
                break
        request_id = given or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != REQUEST_ID_HEADER
                ]
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_SECONDS.labels(
                route=_route_template(scope),
                method=scope.get("method", "?"),
                status=f"{status // 100}xx",
            ).observe(time.perf_counter() - started)
            request_id_var.reset(token)


class DatabaseCollector(Collector):
    """Outbox depth and lateness, open incidents and the worker's last heartbeat, read from the
    database when Prometheus scrapes. A database that does not answer gives `..._up 0`."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def collect(self) -> Any:
        up = GaugeMetricFamily(
            "welfare_metrics_database_up", "1 when the database answered this scrape"
        )
        try:
            with self.factory() as session:
                figures = stats.collect(session)
        except Exception:
            log.exception("metrics: database figures unavailable")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        outbox = GaugeMetricFamily(
            "welfare_outbox_messages",
            "Outbox rows waiting (pending) or being handed to the provider (sending)",
            labels=["status"],
        )
        for status, count in sorted(figures.outbox.items()):
            outbox.add_metric([status], count)
        yield outbox
        yield GaugeMetricFamily(
            "welfare_outbox_due_messages",
            "Pending outbox rows whose send time has come",
            value=figures.outbox_due,
        )
        yield GaugeMetricFamily(
            "welfare_outbox_oldest_pending_age_seconds",
            "How long the longest-waiting due outbox row has been due (0 when none is)",
            value=figures.oldest_due_age_seconds,
        )
        incidents = GaugeMetricFamily(
            "welfare_incidents_open",
            "Incidents not yet resolved or cancelled, by status",
            labels=["status"],
        )
        for status, count in sorted(figures.incidents.items()):
            incidents.add_metric([status], count)
        yield incidents
        if figures.worker_last_seen_age_seconds is not None:
            yield GaugeMetricFamily(
                "welfare_worker_heartbeat_age_seconds",
                "Seconds since any worker last wrote its heartbeat",
                value=figures.worker_last_seen_age_seconds,
            )


def app_registry(factory: sessionmaker[Session]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(factory))
    return registry


def exposition(app_registry: CollectorRegistry) -> bytes:
    """The process-wide metrics, then this app's database figures (distinct names)."""
    return generate_latest(REGISTRY) + generate_latest(app_registry)
