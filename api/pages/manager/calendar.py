"""Manager pages: the user's own iCalendar feed of their visits (issue, show once, revoke)."""

from __future__ import annotations

import contextlib
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlmodel import Session

from api.deps import SessionDep, SettingsDep
from api.pages.deps import PageUser, check_form_csrf
from api.pages.form_errors import PageRoute
from api.pages.manager.frame import (
    CsrfField,
    StaffUserDep,
)
from api.pages.rendering import render, see_other
from welfare.errors import InvalidInput, NotFound
from welfare.visits import manager_view
from welfare.visits import service as visits

router = APIRouter(route_class=PageRoute, prefix="/manage", include_in_schema=False)

ShortText = Annotated[str, Form(max_length=100)]

# --- the user's own calendar feed ---------------------------------------------------------------


def _feed_page(
    request: Request,
    session: Session,
    page_user: PageUser,
    *,
    url: str | None = None,
    message: str | None = None,
) -> Response:
    user_id = page_user.actor.user_id
    assert user_id is not None
    token = manager_view.calendar_token(session, user_id)
    return render(
        request,
        "manager/calendar_feed.html",
        {
            "has_feed": token is not None,
            "issued_at": token.created_at if token else None,
            "url": url,
            "message": message,
        },
    )


@router.get("/calendar-feed")
def calendar_feed_page(request: Request, session: SessionDep, page_user: StaffUserDep) -> Response:
    return _feed_page(request, session, page_user)


@router.post("/calendar-feed")
def calendar_feed_change(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    page_user: StaffUserDep,
    action: ShortText = "",
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    user_id = page_user.actor.user_id
    assert user_id is not None
    if action == "issue":
        token = visits.issue_calendar_token(session=session, actor=page_user.actor, user_id=user_id)
        session.flush()
        url = f"{settings.public_base_url.rstrip('/')}/calendar/{token}.ics"
        # Shown once: this answer is not stored (no-store) and the token is kept only hashed.
        return _feed_page(request, session, page_user, url=url)
    if action == "revoke":
        with contextlib.suppress(NotFound):  # nothing to revoke: what the user wanted anyway
            visits.revoke_calendar_token(session=session, actor=page_user.actor, user_id=user_id)
        return see_other("/manage/calendar-feed?revoked=1")
    raise InvalidInput("action", "issue or revoke")
