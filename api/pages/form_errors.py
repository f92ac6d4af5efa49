"""One way to answer a form the person must put right: the handler raises `FormError` with the
page to draw again, what they typed, what to change and the status, and `PageRoute` rolls the
request's changes back and draws it.

The answer is drawn inside the endpoint's own trip to the thread pool, not by an exception
handler registered on the app: drawing the form again reads the database (the lists, the
record), and `TransactionRoute` ends every transaction inside that trip (see its docstring). An
app-level handler runs after the request's session is closed, on the event loop."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from fastapi import Response
from sqlmodel import Session

from api.deps import TransactionRoute


class FormError(Exception):
    """A form the person must put right. After the request's changes are rolled back its page
    is drawn again: `redraw(status_code=..., **messages)`, where `redraw` already holds the
    values typed (`functools.partial`) and `messages` say what to change (`error=`, `errors=`,
    as the page's function names them)."""

    def __init__(
        self, redraw: Callable[..., Response], *, status_code: int = 422, **messages: Any
    ) -> None:
        super().__init__("the form is drawn again with what to change")
        self.redraw = redraw
        self.status_code = status_code
        self.messages = messages


def _redraw(error: FormError, kwargs: dict[str, Any]) -> Response:
    for session in (value for value in kwargs.values() if isinstance(value, Session)):
        session.rollback()
    return error.redraw(status_code=error.status_code, **error.messages)


def _answering_form_errors(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(endpoint):

        @functools.wraps(endpoint)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await endpoint(*args, **kwargs)
            except FormError as error:
                return _redraw(error, kwargs)

        return run_async

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return endpoint(*args, **kwargs)
        except FormError as error:
            return _redraw(error, kwargs)

    return run


class PageRoute(TransactionRoute):
    """A page route: a `FormError` from the endpoint is answered with the form drawn again in
    the endpoint's trip; `TransactionRoute` then commits what the redraw did (its reads, the
    audit of what it shows), as when each handler drew the page itself."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, _answering_form_errors(endpoint), **kwargs)
