"""Console pages for admins: each site's sign-in settings (two-factor sign-in)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from api.deps import SessionDep
from api.pages.console.frame import ConsoleUserDep, CsrfField, console_render
from api.pages.deps import check_form_csrf
from api.pages.form_errors import PageRoute
from api.pages.rendering import see_other
from welfare.authz import Permission, require
from welfare.sites import service as sites
from welfare.sites.models import SiteUpdate

router = APIRouter(route_class=PageRoute, prefix="/console", include_in_schema=False)

# --- sites: sign-in security --------------------------------------------------------------------


@router.get("/sites")
def sites_page(request: Request, session: SessionDep, page_user: ConsoleUserDep) -> Response:
    """Each site's sign-in settings (two-factor sign-in for staff and for guards)."""
    require(page_user.actor, Permission.sites_manage)
    rows, _total = sites.list_sites(session=session, actor=page_user.actor, limit=500, offset=0)
    return console_render(
        request, page_user, "console/sites.html", {"sites": rows}, section="/console/sites"
    )


@router.post("/sites/{site_id}/sign-in")
def site_sign_in_update(
    site_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    require_second_factor_staff: Annotated[bool, Form()] = False,
    require_second_factor_guards: Annotated[bool, Form()] = False,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    sites.update_site(
        session=session,
        actor=page_user.actor,
        site_id=site_id,
        data=SiteUpdate(
            require_second_factor_staff=require_second_factor_staff,
            require_second_factor_guards=require_second_factor_guards,
        ),
    )
    return see_other(f"/console/sites?saved={site_id}")
