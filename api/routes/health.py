"""Liveness, readiness and the Prometheus scrape."""

from __future__ import annotations

import datetime as dt
import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from api.deps import TransactionRoute
from api.observability import exposition
from welfare.db import current_revision, utcnow
from welfare.heartbeat import service as heartbeats
from welfare.worker import InProcessWorker

router = APIRouter(route_class=TransactionRoute, tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


def _worker_state(request: Request) -> str:
    """'ok', 'stopped' (the in-process thread died), 'stale' or 'missing' (no recent heartbeat
    from a separate `welfare worker`)."""
    in_process: InProcessWorker | None = getattr(request.app.state, "worker", None)
    if in_process is not None:
        return "ok" if in_process.alive else "stopped"
    settings = request.app.state.settings
    with request.app.state.sessionmaker() as session:
        last_seen = heartbeats.latest(session)
    if last_seen is None:
        return "missing"
    max_age = dt.timedelta(seconds=settings.worker_heartbeat_max_age_seconds)
    return "ok" if utcnow() - last_seen <= max_age else "stale"


@router.get(
    "/readyz",
    responses={503: {"description": "the database, its schema or the worker is not ready"}},
)
def readyz(request: Request) -> JSONResponse:
    """The database answers, its schema is at the newest migration, and a worker is alive (the
    in-process thread, or a heartbeat from `welfare worker` within
    `WELFARE_WORKER_HEARTBEAT_MAX_AGE_SECONDS`)."""
    engine = request.app.state.engine
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        current = current_revision(engine)
    except Exception:
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    head = request.app.state.head_revision
    if current != head:
        return JSONResponse(
            {"status": "unavailable", "database": "ok", "migration": current, "expected": head},
            status_code=503,
        )
    try:
        worker = _worker_state(request)
    except Exception:
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    body = {"database": "ok", "migration": current, "worker": worker}
    if worker != "ok":
        return JSONResponse({"status": "unavailable", **body}, status_code=503)
    return JSONResponse({"status": "ok", **body})


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
        401: {"description": "WELFARE_METRICS_TOKEN is set and the bearer token differs"},
    },
)
def metrics(request: Request) -> Response:
    """Prometheus metrics: request latency, outbox depth and lateness, provider errors, open
    incidents, time to confirmation. No personal data: labels are route templates, statuses,
    channels and provider codes. When `WELFARE_METRICS_TOKEN` is set, a matching bearer token
    is required."""
    token = request.app.state.settings.metrics_token
    if token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
            return JSONResponse(
                {"detail": "a metrics token is required"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
    return Response(exposition(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)
