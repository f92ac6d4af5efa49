"""The console's frame: who may use it, its menu, how its pages are drawn, and the words for
a refused action, shared by every console page module."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import Depends, Form, HTTPException, Request
from fastapi.responses import Response

from api.pages.deps import CSRF_FIELD, PageUser, PageUserDep
from api.pages.i18n import N_, gettext
from api.pages.rendering import render
from welfare.authz import Permission, Role
from welfare.errors import Conflict, InvalidInput, PermissionDenied

CsrfField = Annotated[str | None, Form(alias=CSRF_FIELD, max_length=200)]


# --- who may use the console --------------------------------------------------------------------


def get_console_user(request: Request, page_user: PageUserDep) -> PageUser:
    """Staff, managers and admins. Guards are sent to the guard app (GET) or refused (POST)."""
    if page_user.role == Role.guard:
        if request.method == "GET":
            raise HTTPException(status_code=303, headers={"Location": "/guard"})
        raise PermissionDenied("guards use the guard app")
    return page_user


ConsoleUserDep = Annotated[PageUser, Depends(get_console_user)]


def nav_items(page_user: PageUser) -> list[tuple[str, str]]:
    """The console's menu: what this role may open (labels are translated in the template)."""
    items = [
        ("/console", N_("Incidents")),
        ("/console/residents", N_("Residents")),
        ("/console/households", N_("Households")),
        ("/console/labels", N_("QR labels")),
        ("/console/public-reports", N_("Public reports")),
        ("/console/contacts/unverified", N_("Unverified contacts")),
        ("/manage/visits", N_("Visits")),
    ]
    if page_user.actor.can(Permission.audit_read):
        items.append(("/console/audit", N_("Access audit")))
    if page_user.actor.can(Permission.users_manage):
        items.append(("/console/users", N_("Users")))
    if page_user.actor.can(Permission.sites_manage):
        items.append(("/console/sites", N_("Sites")))
        items.append(("/console/identity-providers", N_("Company sign-in")))
    return items


def console_render(
    request: Request,
    page_user: PageUser,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    section: str = "",
) -> Response:
    values = {"nav_items": nav_items(page_user), "section": section, **context}
    return render(request, template, values, status_code=status_code)


def new_request_id() -> str:
    """A one-time id put in action forms: a double click never queues two messages."""
    return secrets.token_hex(12)


def action_error(language: str, exc: Exception) -> tuple[str, int]:
    if isinstance(exc, Conflict):
        if "already" in exc.detail:
            return gettext(language, "This incident is already confirmed or closed."), 409
        if "opted out" in exc.detail:
            return gettext(language, "This contact opted out of SMS. Call instead."), 409
        if "agreed" in exc.detail:
            return gettext(language, "This contact has not agreed to be contacted."), 409
        if "missing" in exc.detail:
            return gettext(
                language,
                "A missing-resident alert goes to guards. Phone the family from the office.",
            ), 409
        return gettext(language, "That cannot be done now."), 409
    if isinstance(exc, InvalidInput):
        if "landline" in exc.message:
            return gettext(language, "This number is a landline: call it instead."), 422
        if "no SMS" in exc.message or "no calls" in exc.message:
            return gettext(language, "This contact does not take that kind of message."), 422
        return gettext(language, "Please check what you entered."), 422
    raise exc
