"""A contact test's link `/v/{token}`: no sign-in, the token is the credential.

Opening it confirms the number (welfare/contact_checks.py `verify_by_link`) and says
so, in the contact's language, with the site's name and nothing else about anyone. Opening it
again says the same. Unknown, malformed and expired tokens all get the same 404 page; requests
share the answer page's rate limits (per client address and per token, api/pages/answer.py).
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import SessionDep, TransactionRoute, client_addr
from api.pages.answer import Token, gone_page, limits_of, private_link_headers
from api.pages.i18n import ui_language
from api.pages.rendering import render
from notifications.messages import pick_language
from welfare import contact_checks

router = APIRouter(route_class=TransactionRoute, include_in_schema=False)


@router.get("/v/{token}")
def contact_test_page(request: Request, token: Token, session: SessionDep) -> Response:
    """The number is confirmed: thank you."""
    wait = limits_of(request).wait(client_addr(request), token)
    if wait > 0:
        return gone_page(request, 429, wait, test_link=True)
    page = contact_checks.verify_by_link(session, token)
    if page is None:
        return gone_page(request, test_link=True)
    language = ui_language(request.query_params.get("lang")) or pick_language(page.language)
    response = render(
        request,
        "public/contact_test.html",
        {"page": page, "token_path": f"/v/{quote(token, safe='')}"},
        language=language,
    )
    return private_link_headers(response)
