"""A contact test's link `/v/{token}`: no sign-in, the token is the credential.

Opening it confirms the number (welfare/residents/contact_checks.py `verify_by_link`) and says
so, in the contact's language, with the site's name and nothing else about anyone. Opening it
again says the same. Unknown, malformed and expired tokens all get the same 404 page; requests
share the answer page's rate limits (per client address and per token, api/pages/answer.py).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from api.deps import SessionDep, TransactionRoute, client_addr
from api.pages.answer import limits_of, private_link_headers
from api.pages.deps import request_language
from api.pages.i18n import ui_language
from api.pages.rendering import render
from notifications.messages import pick_language
from welfare.residents import contact_checks

router = APIRouter(route_class=TransactionRoute, include_in_schema=False)

Token = Annotated[str, Path(max_length=100)]


def _gone(request: Request, status_code: int = 404, retry_after: float = 0) -> Response:
    response = render(
        request,
        "public/contact_test_gone.html",
        {"throttled": status_code == 429},
        status_code=status_code,
        language=request_language(request),
    )
    if retry_after:
        response.headers["Retry-After"] = str(max(int(retry_after) + 1, 1))
    return private_link_headers(response)


@router.get("/v/{token}")
def contact_test_page(request: Request, token: Token, session: SessionDep) -> Response:
    """The number is confirmed: thank you."""
    wait = limits_of(request).wait(client_addr(request), token)
    if wait > 0:
        return _gone(request, 429, wait)
    page = contact_checks.verify_by_link(session, token)
    if page is None:
        return _gone(request)
    language = ui_language(request.query_params.get("lang")) or pick_language(page.language)
    response = render(
        request,
        "public/contact_test.html",
        {"page": page, "token_path": f"/v/{quote(token, safe='')}"},
        language=language,
    )
    return private_link_headers(response)
