"""The family's answer link `/r/{token}`: no sign-in, the token is the credential.

`GET` shows what the SMS already says (reference, site, the place the guard typed; never a
name or health data) and the answers: "I'm coming", "I can't come" and a call to the office.
`POST` takes the answer and sends the browser back to the page (so a reload never answers
twice); the answers themselves are idempotent in the domain (welfare/incidents/answer_links.py).
There is no CSRF token: there is no session to ride on, and a forged post would need the token,
which is the whole credential anyway. A link preview that fetches the page only opens it.

Unknown, malformed and dead (closed incident) tokens get the same 404 page. Requests are
rate-limited per client address and per token, with the dispatcher's token buckets
(notifications/ratelimit.py), in this process's memory: each API process allows its own share.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import SessionDep, TransactionRoute, client_addr
from api.pages.deps import request_language
from api.pages.i18n import ui_language
from api.pages.rendering import render
from notifications.messages import pick_language
from notifications.ratelimit import SenderRateLimit
from welfare.incidents import answer_links
from welfare.phones import display_phone

router = APIRouter(route_class=TransactionRoute, include_in_schema=False)

Token = Annotated[str, Path(max_length=100)]
# Per client address: 30 requests at once, then one every 2 seconds (a family passing one phone
# around reloads a few times; a script guessing tokens gets nowhere: 96 bits). Per token: 20 at
# once, then one every 6 seconds.
ADDRESS_BURST, ADDRESS_PER_SECOND = 30.0, 0.5
TOKEN_BURST, TOKEN_PER_SECOND = 20.0, 1 / 6
# Past this many remembered visitors, the ones whose allowance has refilled are forgotten.
MAX_REMEMBERED = 10_000


class AnswerLimits:
    """The two buckets a request must pass. Tokens are remembered by their hash only."""

    def __init__(self) -> None:
        self.per_address = SenderRateLimit(ADDRESS_PER_SECOND, burst=ADDRESS_BURST)
        self.per_token = SenderRateLimit(TOKEN_PER_SECOND, burst=TOKEN_BURST)

    def wait(self, address: str, token: str) -> float:
        """0.0 when the request may go ahead; else the seconds to wait."""
        for limit in (self.per_address, self.per_token):
            if limit.keys > MAX_REMEMBERED:
                limit.forget_idle()
        waited = self.per_address.acquire(address)
        if waited > 0:
            return waited
        return self.per_token.acquire(hashlib.sha256(token.encode()).hexdigest())


def limits_of(request: Request) -> AnswerLimits:
    limits: AnswerLimits | None = getattr(request.app.state, "answer_limits", None)
    if limits is None:  # an app built without create_app (a test's own)
        limits = request.app.state.answer_limits = AnswerLimits()
    return limits


def private_link_headers(response: Response) -> Response:
    # The token is in the URL: never sent on as a referrer, never indexed.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def gone_page(
    request: Request, status_code: int = 404, retry_after: float = 0, *, test_link: bool = False
) -> Response:
    """The same page for an unknown, malformed or dead token (and, with 429, for too many
    requests): nothing in it tells one from another. `test_link`: the words for a contact
    test's link (api/pages/contact_test.py)."""
    language = request_language(request)
    response = render(
        request,
        "public/answer_gone.html",
        {"throttled": status_code == 429, "test_link": test_link},
        status_code=status_code,
        language=language,
    )
    if retry_after:
        response.headers["Retry-After"] = str(max(int(retry_after) + 1, 1))
    return private_link_headers(response)


def _language(request: Request, page: answer_links.AnswerPage) -> str:
    """?lang= when it names an offered language, else the contact's own."""
    return ui_language(request.query_params.get("lang")) or pick_language(page.language)


def _target(request: Request, token: str) -> str:
    """The page's own address, keeping a language chosen with ?lang=."""
    target = f"/r/{quote(token, safe='')}"
    chosen = ui_language(request.query_params.get("lang"))
    return f"{target}?lang={quote(chosen)}" if chosen else target


def _throttled(request: Request, token: str) -> Response | None:
    wait = limits_of(request).wait(client_addr(request), token)
    return gone_page(request, 429, wait) if wait > 0 else None


@router.get("/r/{token}")
def answer_page(request: Request, token: Token, session: SessionDep) -> Response:
    """The contact's page: the alert in a few words and the three answers, or what has
    happened since (someone is on the way; they said they cannot come)."""
    throttled = _throttled(request, token)
    if throttled is not None:
        return throttled
    page = answer_links.open_page(session=session, token=token)
    if page is None:
        return gone_page(request)
    language = _language(request, page)
    office = page.office_phone
    response = render(
        request,
        "public/answer.html",
        {
            "page": page,
            "state": page.state.value,
            "place": page.location or page.site_name,
            "office_phone": office,
            "office_display": display_phone(office) if office else None,
            "action": _target(request, token),
            "token_path": f"/r/{quote(token, safe='')}",
        },
        language=language,
    )
    return private_link_headers(response)


@router.post("/r/{token}")
def answer(
    request: Request,
    token: Token,
    session: SessionDep,
    value: Annotated[Literal["coming", "cannot"], Form(alias="answer")],
) -> Response:
    """Take the answer, then show the page again (303: a reload does not post it twice)."""
    throttled = _throttled(request, token)
    if throttled is not None:
        return throttled
    page = answer_links.answer(session=session, token=token, value=answer_links.Answer(value))
    if page is None:
        return gone_page(request)
    return private_link_headers(RedirectResponse(_target(request, token), status_code=303))
