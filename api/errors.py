"""Domain errors to JSON with a clear `detail`; nothing internal leaks into a response."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from welfare.errors import DomainError, InvalidInput, NotAuthenticated, Throttled

log = logging.getLogger("welfare.api")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        headers: dict[str, str] = {}
        body: dict[str, object] = {"detail": exc.detail}
        if isinstance(exc, InvalidInput):
            body["detail"] = [
                {"loc": ["body", *exc.loc], "msg": exc.message, "type": "value_error"}
            ]
        if isinstance(exc, Throttled):
            headers["Retry-After"] = str(exc.retry_after_seconds)
        if isinstance(exc, NotAuthenticated):
            headers["WWW-Authenticate"] = "Bearer"
        extra = getattr(exc, "extra", None)
        if extra:
            body.update(extra)
        return JSONResponse(body, status_code=exc.status_hint, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Echoing the input back could copy personal data into logs and proxies: drop it.
        errors = [
            {k: v for k, v in e.items() if k not in ("input", "ctx", "url")} for e in exc.errors()
        ]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        log.warning("integrity error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "conflicts with existing data"}, status_code=409)

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        # A value the database refuses (text with NUL, a number out of range): the input's fault.
        log.warning("data error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"detail": "a value was refused by the database (out of range or a NUL character)"},
            status_code=422,
        )

    @app.exception_handler(OperationalError)
    async def _operational(request: Request, exc: OperationalError) -> JSONResponse:
        # The driver's message only ("database is locked"), never the SQL or its parameters.
        reason = str(exc.orig.args[0])[:200] if exc.orig is not None and exc.orig.args else "?"
        log.error("database unavailable on %s %s: %s", request.method, request.url.path, reason)
        return JSONResponse(
            {"detail": "database unavailable, try again"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
