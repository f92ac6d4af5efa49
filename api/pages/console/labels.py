"""The console's printable label sheet of a site's tags."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.deps import SessionDep, SettingsDep
from api.pages.console.fields import chosen_site, visible_sites
from api.pages.console.frame import ConsoleUserDep, console_render
from api.pages.form_errors import PageRoute
from welfare.phones import display_phone
from welfare.sites.models import Site
from welfare.tags.sheet import label_sheet

router = APIRouter(route_class=PageRoute, prefix="/console", include_in_schema=False)

# --- the label sheet ----------------------------------------------------------------------------


@router.get("/labels")
def labels_sheet(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
    site_id: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    site_list = visible_sites(session, page_user)
    chosen = chosen_site(site_list, site_id)
    site: Site | None = None
    labels: list[Any] = []
    if chosen is not None:
        site, labels = label_sheet(
            session=session,
            actor=page_user.actor,
            site_id=chosen,
            base_url=settings.public_base_url,
        )
    return console_render(
        request,
        page_user,
        "console/labels.html",
        {
            "sites": site_list,
            "site": site,
            "labels": labels,
            "office_phone": display_phone(site.office_phone)
            if site and site.office_phone
            else None,
        },
        section="/console/labels",
    )
