"""Console pages of the households: the list and adding one."""

from __future__ import annotations

from functools import partial
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import Session

from api.deps import SessionDep
from api.pages.console.fields import PAGE_SIZE, Text2000, refused_fields, visible_sites
from api.pages.console.frame import ConsoleUserDep, CsrfField, console_render
from api.pages.deps import PageUser, check_form_csrf
from api.pages.form_errors import FormError, PageRoute
from api.pages.i18n import gettext
from api.pages.rendering import see_other
from welfare.authz import Permission
from welfare.errors import Conflict, InvalidInput
from welfare.phones import display_phone
from welfare.sites import service as sites
from welfare.sites.models import HouseholdCreate

router = APIRouter(route_class=PageRoute, prefix="/console", include_in_schema=False)

# --- households ---------------------------------------------------------------------------------


def _households_page(
    request: Request,
    session: Session,
    page_user: PageUser,
    *,
    q: str = "",
    offset: int = 0,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    rows, total = sites.list_households(
        session=session, actor=page_user.actor, limit=PAGE_SIZE, offset=offset, q=q or None
    )
    site_list = visible_sites(session, page_user)
    names = {s.id: s.name for s in site_list}
    return console_render(
        request,
        page_user,
        "console/households.html",
        {
            "households": rows,
            "total": total,
            "q": q,
            "offset": offset,
            "page_size": PAGE_SIZE,
            "sites": site_list,
            "site_names": names,
            "form": form or {},
            "errors": errors or {},
            "error": error,
            "show_phone": display_phone,
            "can_write": page_user.actor.can(Permission.registry_write),
        },
        status_code=status_code,
        section="/console/households",
    )


@router.get("/households")
def households_list(
    request: Request,
    session: SessionDep,
    page_user: ConsoleUserDep,
    q: Annotated[str, Query(max_length=100)] = "",
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    return _households_page(request, session, page_user, q=q, offset=offset)


@router.post("/households")
def household_create(
    request: Request,
    session: SessionDep,
    page_user: ConsoleUserDep,
    site_id: Annotated[str, Form(max_length=40)] = "",
    building: Annotated[str, Form(max_length=50)] = "",
    unit: Annotated[str, Form(max_length=50)] = "",
    landline: Annotated[str, Form(max_length=40)] = "",
    notes: Text2000 = "",
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    typed = {
        "site_id": site_id,
        "building": building,
        "unit": unit,
        "landline": landline,
        "notes": notes,
    }
    try:
        household = sites.create_household(
            session=session,
            actor=page_user.actor,
            data=HouseholdCreate(
                site_id=site_id or None,  # type: ignore[arg-type]
                building=building,
                unit=unit,
                landline=landline.strip() or None,
                notes=notes.strip() or None,
            ),
        )
    except (ValidationError, InvalidInput) as exc:
        redraw = partial(_households_page, request, session, page_user, form=typed)
        raise refused_fields(page_user, exc, redraw) from exc
    except Conflict as exc:
        taken = gettext(page_user.language, "This building and unit already exist at the site.")
        raise FormError(
            partial(_households_page, request, session, page_user, form=typed),
            errors={"unit": taken},
            error=taken,
            status_code=409,
        ) from exc
    return see_other(f"/console/households?q={quote(household.unit_label)}&done=created")
