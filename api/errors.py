"""Domain errors to JSON with a clear `detail`; nothing internal leaks into a response."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.deps import CsrfRefused
from api.pages.deps import (
    ENROLMENT_PATH,
    EnrolmentRequired,
    LoginRequired,
    login_url,
    request_language,
)
from api.pages.forms import page_value_problem, value_problem
from api.pages.i18n import N_, gettext
from api.pages.rendering import render
from welfare.errors import DomainError, InvalidInput, NotAuthenticated, Throttled

log = logging.getLogger("welfare.api")


# Titles and explanations for error pages, translated when shown.
ERROR_PAGES = {
    400: (N_("Something is wrong with that request"), N_("Go back and try again.")),
    401: (N_("Please sign in"), N_("Your session has ended. Sign in again.")),
    403: (N_("Not allowed"), N_("Your account may not do this.")),
    404: (N_("Not found"), N_("This page does not exist, or it is not yours to see.")),
    409: (N_("Already changed"), N_("Someone else changed this first. Reload and look again.")),
    413: (N_("Too large"), N_("That file is too large.")),
    415: (N_("Unsupported file"), N_("That kind of file is not accepted.")),
    422: (N_("Please check what you entered"), N_("Some of the values are not valid.")),
    429: (N_("Too many attempts"), N_("Wait a few minutes and try again.")),
    503: (N_("Try again shortly"), N_("The service is busy or restarting.")),
}
CSRF_PAGE = (
    N_("This form has expired"),
    N_("The page was open too long or in another session. Reload it and send the form again."),
)
NOT_PAGES = ("/api/", "/webhooks/", "/static/", "/docs", "/openapi.json", "/metrics")


def wants_html(request: Request) -> bool:
    """A person's browser asking for a page, as opposed to an API client."""
    if request.url.path.startswith(NOT_PAGES):
        return False
    return "text/html" in request.headers.get("accept", "")


def error_page(
    request: Request,
    status_code: int,
    headers: dict[str, str] | None = None,
    words: tuple[str, str] | None = None,
    problems: list[tuple[str, str]] | None = None,
) -> Response:
    language = getattr(request.state, "language", None) or request_language(request)
    fallback = (N_("Something went wrong"), N_("Try again."))
    title, message = words or ERROR_PAGES.get(status_code, fallback)
    response = render(
        request,
        "error.html",
        {
            "title": gettext(language, title),
            "message": gettext(language, message),
            "problems": problems or [],
        },
        status_code=status_code,
        language=language,
    )
    response.headers.update(headers or {})
    return response


def _problems(request: Request, errors: Sequence[Any]) -> list[tuple[str, str]]:
    """Each refused field of a form (named as the form names it) and what to give instead, in
    the reader's language; the error page lists them."""
    language = getattr(request.state, "language", None) or request_language(request)
    found: dict[str, str] = {}
    for error in errors:
        loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")]
        found.setdefault(loc[-1] if loc else "", page_value_problem(language, error))
    return list(found.items())


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(login_url(exc.next_path), status_code=303)

    @app.exception_handler(EnrolmentRequired)
    async def _enrolment_required(request: Request, exc: EnrolmentRequired) -> Response:
        return RedirectResponse(ENROLMENT_PATH, status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if wants_html(request):
            return error_page(request, exc.status_code, headers)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        headers: dict[str, str] = {}
        body: dict[str, object] = {"detail": exc.detail}
        if isinstance(exc, InvalidInput):
            body["detail"] = [
                {"loc": ["body", *exc.loc], "msg": exc.message, "type": "value_error"}
            ]
        if isinstance(exc, Throttled):
            headers["Retry-After"] = str(exc.retry_after_seconds)
        if wants_html(request):
            words = CSRF_PAGE if isinstance(exc, CsrfRefused) else None
            return error_page(request, exc.status_hint, headers, words)
        if isinstance(exc, NotAuthenticated):
            headers["WWW-Authenticate"] = "Bearer"
        extra = getattr(exc, "extra", None)
        if extra:
            body.update(extra)
        return JSONResponse(body, status_code=exc.status_hint, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        if wants_html(request):
            return error_page(request, 422, problems=_problems(request, exc.errors()))
        # Echoing the input back could copy personal data into logs and proxies: drop it. The
        # message says what to give instead, not only that the value is wrong.
        errors = [
            {k: v for k, v in e.items() if k not in ("input", "ctx", "url")}
            | {"msg": value_problem("en", e)}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    @app.exception_handler(ValidationError)
    async def _model_validation(request: Request, exc: ValidationError) -> Response:
        # A domain model that a route built from the request's values refused one of them: the
        # input's fault, answered like a refused request body (and without the input).
        log.warning("model validation error on %s %s", request.method, request.url.path)
        if wants_html(request):
            return error_page(request, 422, problems=_problems(request, exc.errors()))
        errors = [
            {"loc": list(e["loc"]), "msg": value_problem("en", e), "type": e["type"]}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

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
