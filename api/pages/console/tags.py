"""Console pages of a resident's tag: issue (or re-issue) and revoke."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session

from api.deps import SessionDep, SettingsDep
from api.pages.console.frame import ConsoleUserDep, CsrfField
from api.pages.console.residents import resident_page
from api.pages.deps import PageUser, check_form_csrf
from api.pages.form_errors import FormError, PageRoute
from api.pages.i18n import N_, gettext
from api.pages.rendering import see_other
from welfare.errors import Conflict, DomainError, NotFound
from welfare.settings import Settings
from welfare.tags import service as tags

router = APIRouter(route_class=PageRoute, prefix="/console", include_in_schema=False)


def _change_tag(
    change: Callable[..., object],
    refused: type[DomainError],
    words: str,
    done: str,
    request: Request,
    resident_id: uuid.UUID,
    session: Session,
    settings: Settings,
    page_user: PageUser,
    csrf_token: str | None,
) -> Response:
    """Issue or revoke the tag; `refused` is answered on the resident's page with `words`."""
    check_form_csrf(page_user, csrf_token)
    try:
        change(session=session, actor=page_user.actor, resident_id=resident_id)
    except refused as exc:
        raise FormError(
            partial(resident_page, request, session, settings, page_user, resident_id),
            error=gettext(page_user.language, words),
            status_code=409,
        ) from exc
    return see_other(f"/console/residents/{resident_id}?done={done}#tag")


@router.post("/residents/{resident_id}/tag")
def tag_issue(
    request: Request,
    resident_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    words = N_("Record a lost-person consent before issuing a tag.")
    form = (request, resident_id, session, settings, page_user, csrf_token)
    return _change_tag(tags.issue_tag, Conflict, words, "tag", *form)


@router.post("/residents/{resident_id}/tag/revoke")
def tag_revoke(
    request: Request,
    resident_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    words = N_("There is no tag to revoke.")
    form = (request, resident_id, session, settings, page_user, csrf_token)
    return _change_tag(tags.revoke_tag, NotFound, words, "tag_revoked", *form)
