"""Alerts: residents a member of the public found, for a guard to go to."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import SessionDep, TransactionRoute
from api.pages.deps import CsrfField, PageUser, PageUserDep, check_form_csrf
from api.pages.guard.frame import guard_context
from api.pages.rendering import render, see_other
from welfare.incidents import alerts, guard_view, responders

router = APIRouter(route_class=TransactionRoute, include_in_schema=False)


def _timezone(session: SessionDep, page_user: PageUser) -> str | None:
    """The guard's site timezone for showing times (UTC when they work at several sites)."""
    site_ids = sorted(page_user.actor.site_ids, key=str)
    if len(site_ids) != 1:
        return None
    return guard_view.site_of(session, site_ids[0]).timezone


@router.get("/guard/alerts")
def guard_alerts(request: Request, session: SessionDep, page_user: PageUserDep) -> Response:
    cards = alerts.open_alerts(session=session, actor=page_user.actor)
    return render(
        request,
        "guard/alerts.html",
        {
            **guard_context(page_user),
            "alerts": cards,
            "timezone": _timezone(session, page_user),
            "active": "alerts",
        },
    )


@router.get("/guard/alerts/{incident_id}")
def guard_alert(
    request: Request, incident_id: uuid.UUID, session: SessionDep, page_user: PageUserDep
) -> Response:
    card = alerts.alert(session=session, actor=page_user.actor, incident_id=incident_id)
    return render(
        request,
        "guard/alert.html",
        {**guard_context(page_user), "alert": card, "active": "alerts"},
    )


@router.post("/guard/alerts/{incident_id}/going")
def guard_going(
    incident_id: uuid.UUID,
    session: SessionDep,
    page_user: PageUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    """A guard takes on a resident a member of the public found (the finder's page then says a
    guard is coming), and gets the live incident."""
    check_form_csrf(page_user, csrf_token)
    alerts.alert(session=session, actor=page_user.actor, incident_id=incident_id)
    responders.claim(session=session, actor=page_user.actor, incident_id=incident_id)
    return see_other(f"/guard/incidents/{incident_id}")
