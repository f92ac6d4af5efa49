"""The guard's start page (duty), search, scan, a resident's card and the offline shell."""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from api.deps import SessionDep, SettingsDep, TransactionRoute
from api.pages.deps import CsrfField, PageUser, PageUserDep, check_form_csrf
from api.pages.guard.frame import CHECK_THE_CODE, guard_context
from api.pages.i18n import gettext
from api.pages.rendering import render, see_other
from welfare.errors import InvalidInput
from welfare.incidents import alerts, guard_view
from welfare.lookup import service as lookups
from welfare.lookup.models import LookupCard
from welfare.push import service as push
from welfare.tags import codes
from welfare.users import service as users

router = APIRouter(route_class=TransactionRoute, include_in_schema=False)


def _on_duty(session: SessionDep, page_user: PageUser) -> bool:
    user = users.current_user(session=session, actor=page_user.actor)
    return user.on_duty_since is not None


@router.get("/guard")
def guard_home(
    request: Request, session: SessionDep, settings: SettingsDep, page_user: PageUserDep
) -> Response:
    open_alerts = alerts.open_alerts(session=session, actor=page_user.actor)
    return render(
        request,
        "guard/home.html",
        {
            **guard_context(page_user),
            "on_duty": _on_duty(session, page_user),
            "alert_count": len(open_alerts),
            "active": "home",
            "vapid_public_key": push.vapid_keys(session, settings).public_key,
        },
    )


@router.post("/guard/duty")
def guard_duty(
    session: SessionDep,
    page_user: PageUserDep,
    on_duty: Annotated[str, Form(max_length=5)],
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    if on_duty not in ("true", "false"):
        raise InvalidInput("on_duty", "true or false")
    users.set_duty(session=session, actor=page_user.actor, on_duty=on_duty == "true")
    return see_other("/guard")


@router.get("/guard/search")
def guard_search(
    request: Request,
    session: SessionDep,
    page_user: PageUserDep,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    cards: list[LookupCard] = []
    error = None
    if q.strip():
        cards = lookups.lookup(session=session, actor=page_user.actor, q=q, limit=10)
    else:
        error = gettext(page_user.language, "Type a flat, a name or a few words of description.")
    return render(
        request,
        "guard/search.html",
        {**guard_context(page_user), "q": q, "cards": cards, "error": error, "active": "home"},
        status_code=422 if error else 200,
    )


def tag_code_from(text: str) -> str:
    """A typed code, or the code inside a scanned tag URL (".../t/<code>")."""
    text = text.strip()
    path = urlsplit(text).path if "://" in text else text
    if "/t/" in path:
        path = path.rsplit("/t/", 1)[1]
    return path.strip("/ ")


@router.get("/guard/scan")
def guard_scan(
    request: Request,
    page_user: PageUserDep,
    code: Annotated[str | None, Query(max_length=300)] = None,
) -> Response:
    if code is not None:
        tag = tag_code_from(code)
        typed = codes.read_typed(tag)
        if typed.printed:
            return see_other("/t/" + typed.printed)
        if typed.mistyped:
            error = gettext(page_user.language, CHECK_THE_CODE)
        elif tag and len(tag) <= 64 and "/" not in tag:  # a token issued before printed codes
            return see_other("/t/" + quote(tag, safe=""))
        else:
            error = gettext(page_user.language, "That is not a tag code. Check it and try again.")
        return render(
            request,
            "guard/scan.html",
            {**guard_context(page_user), "error": error, "code": code, "active": "scan"},
            status_code=422,
        )
    return render(request, "guard/scan.html", {**guard_context(page_user), "active": "scan"})


def card_page(
    request: Request, session: SessionDep, page_user: PageUser, card: LookupCard
) -> Response:
    site = guard_view.site_of(session, card.site_id)
    return render(
        request,
        "guard/card.html",
        {
            **guard_context(page_user),
            "card": card,
            "emergency": guard_view.emergency_number(site.phone_region),
            "active": "home",
        },
    )


@router.get("/guard/residents/{resident_id}")
def guard_card(
    request: Request,
    resident_id: uuid.UUID,
    session: SessionDep,
    page_user: PageUserDep,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """The card; `q` (the search that led here) is highlighted where the card shows it."""
    card = guard_view.card_for(session=session, actor=page_user.actor, resident_id=resident_id)
    card.matched_terms = lookups.query_terms(q)
    return card_page(request, session, page_user, card)


@router.get("/guard/offline")
def guard_offline(request: Request, page_user: PageUserDep) -> Response:
    """The offline shell the service worker keeps: no personal data, the queue of reports."""
    return render(request, "guard/offline.html", {**guard_context(page_user), "active": ""})
