"""Console pages of a resident's tag: issue (or re-issue) and revoke."""

from __future__ import annotations

import uuid
from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import SessionDep, SettingsDep
from api.pages.console.frame import ConsoleUserDep, CsrfField
from api.pages.console.residents import resident_page
from api.pages.deps import check_form_csrf
from api.pages.form_errors import FormError, PageRoute
from api.pages.i18n import gettext
from api.pages.rendering import see_other
from welfare.errors import Conflict, NotFound
from welfare.tags import service as tags

router = APIRouter(route_class=PageRoute, prefix="/console", include_in_schema=False)


@router.post("/residents/{resident_id}/tag")
def tag_issue(
    request: Request,
    resident_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    try:
        tags.issue_tag(session=session, actor=page_user.actor, resident_id=resident_id)
    except Conflict as exc:
        raise FormError(
            partial(resident_page, request, session, settings, page_user, resident_id),
            error=gettext(page_user.language, "Record a lost-person consent before issuing a tag."),
            status_code=409,
        ) from exc
    return see_other(f"/console/residents/{resident_id}?done=tag#tag")


@router.post("/residents/{resident_id}/tag/revoke")
def tag_revoke(
    request: Request,
    resident_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    try:
        tags.revoke_tag(session=session, actor=page_user.actor, resident_id=resident_id)
    except NotFound as exc:
        raise FormError(
            partial(resident_page, request, session, settings, page_user, resident_id),
            error=gettext(page_user.language, "There is no tag to revoke."),
            status_code=409,
        ) from exc
    return see_other(f"/console/residents/{resident_id}?done=tag_revoked#tag")
