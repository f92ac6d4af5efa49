"""Raising a missing-resident alert from the console (issue 16, item 13).

Two steps: the confirmation page shows the alert exactly as guards will get it (the card is
built by `welfare.incidents.alerts.card_of` and drawn by the guard app's own partial; the SMS by
the dispatcher's own text), with fields for where the resident was last seen and what they
wore; confirming opens the incident through the same service call as `POST /api/v1/incidents`.
A running incident of the resident is reused, as there.

And the other way round, what members of the public reported (issue 20): the latest finders'
reports, each with a "false alarm" close for a report that was not real, which stops everything
(`public_reports.false_alarm`).
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from api.deps import SessionDep, SettingsDep
from api.pages.console.fields import RequestId
from api.pages.console.frame import ConsoleUserDep, CsrfField, console_render, new_request_id
from api.pages.console.words import OUTCOME_LABELS, STATUS_LABELS, label
from api.pages.deps import PageUser, check_form_csrf
from api.pages.form_errors import FormError, PageRoute
from api.pages.forms import refused_words
from api.pages.guard.frame import language_label
from api.pages.i18n import N_, gettext
from api.pages.rendering import local_time, see_other
from notifications.dispatcher import guard_alert_url
from notifications.messages import missing_alert_sms
from welfare.errors import InvalidInput
from welfare.incidents import alerts, public_reports
from welfare.incidents import service as incidents
from welfare.incidents.models import IncidentCreate, IncidentKind
from welfare.residents import service as residents
from welfare.settings import Settings

router = APIRouter(route_class=PageRoute, prefix="/console", include_in_schema=False)

PlaceField = Annotated[str, Form(max_length=300)]
NoteField = Annotated[str, Form(max_length=2000)]
SEARCH_LIMIT = 20
# What the alert form says of a refused field, and how to put it right.
ALERT_FIELDS = {
    "resident_id": N_(
        "This resident is not in the registry of your sites any more: open the registry and"
        " choose them again."
    ),
}
NO_CONSENT = N_(
    "This resident has no lost-person consent: guards cannot be alerted about them. Phone the "
    "family and the police."
)


def _clean(text: str) -> str | None:
    return text.replace("\x00", "").strip() or None


def _sms_previews(settings: Settings, preview: alerts.AlertPreview) -> list[str]:
    """The SMS each guard on duty gets, once per language. The alert's id is made on sending:
    the text is fitted with an id of the same length, then the id is shown as "…"."""
    stand_in = uuid.UUID(int=0)
    link = guard_alert_url(settings, stand_in)
    languages = dict.fromkeys(preview.guard_languages)
    return [
        missing_alert_sms(lang, site_name=preview.site.name, link=link).replace(str(stand_in), "…")
        for lang in languages
    ]


def _confirm_page(
    request: Request,
    session: SessionDep,
    settings: Settings,
    page_user: PageUser,
    resident_id: uuid.UUID,
    *,
    form: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    typed = form or {}
    preview = alerts.preview(
        session=session,
        actor=page_user.actor,
        resident_id=resident_id,
        last_seen=_clean(typed.get("last_seen", "")),
        last_seen_clothing=_clean(typed.get("clothing", "")),
        note=_clean(typed.get("note", "")),
    )
    context: dict[str, Any] = {
        "alert": preview.card,
        "site": preview.site,
        "guards_on_duty": len(preview.guard_languages),
        "sms_texts": _sms_previews(settings, preview),
        "form": typed,
        "error": error,
        "request_id": typed.get("request_id") or new_request_id(),
        "langname": lambda code: language_label(code, page_user.language),
        "may_raise": preview.may_raise,
        "no_consent": NO_CONSENT,
    }
    return console_render(
        request,
        page_user,
        "console/missing.html",
        context,
        status_code=status_code,
        section="/console",
    )


@router.get("/missing")
def missing_search(
    request: Request,
    session: SessionDep,
    page_user: ConsoleUserDep,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """From the board: find the resident first (name or unit), then their confirmation page."""
    found = []
    if q.strip():
        found, _total = residents.list_residents(
            session=session, actor=page_user.actor, limit=SEARCH_LIMIT, offset=0, q=q
        )
    rows = [
        {"resident": r, "unit": residents.unit_label(session, r)}
        for r in found
        if r.erased_at is None
    ]
    return console_render(
        request,
        page_user,
        "console/missing_search.html",
        {"q": q, "rows": rows},
        section="/console",
    )


@router.get("/residents/{resident_id}/missing")
def missing_confirm(
    request: Request,
    resident_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
) -> Response:
    return _confirm_page(request, session, settings, page_user, resident_id)


@router.post("/residents/{resident_id}/missing")
def missing_raise(
    request: Request,
    resident_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
    request_id: RequestId,
    last_seen: PlaceField = "",
    clothing: PlaceField = "",
    note: NoteField = "",
    action: Annotated[str, Form(max_length=10)] = "send",
    csrf_token: CsrfField = None,
) -> Response:
    """`action=preview` redraws the preview with what was typed; `send` raises the alert."""
    check_form_csrf(page_user, csrf_token)
    typed = {"last_seen": last_seen, "clothing": clothing, "note": note, "request_id": request_id}
    if action != "send":
        return _confirm_page(request, session, settings, page_user, resident_id, form=typed)
    try:
        opened = incidents.open_incident(
            session=session,
            actor=page_user.actor,
            data=IncidentCreate(
                kind=IncidentKind.missing,
                resident_id=resident_id,
                location=_clean(last_seen),
                description=_clean(clothing),
                note=_clean(note),
                client_request_id=request_id,
            ),
        )
    except InvalidInput as exc:
        if "consent" in exc.message:
            error = gettext(page_user.language, NO_CONSENT)
        else:
            error = refused_words(page_user.language, exc, ALERT_FIELDS)[0]
        redraw = partial(
            _confirm_page, request, session, settings, page_user, resident_id, form=typed
        )
        raise FormError(redraw, error=error) from exc
    done = "missing" if opened.created else "missing_running"
    return see_other(f"/console/incidents/{opened.incident.id}?done={done}")


@router.get("/public-reports")
def public_report_list(
    request: Request, session: SessionDep, page_user: ConsoleUserDep
) -> Response:
    """What members of the public reported from a tag's page, newest first."""
    language = page_user.language
    rows = [
        {
            "at": local_time(row.at, row.timezone),
            "reference": row.incident.reference,
            "url": f"/console/incidents/{row.incident.id}",
            "incident_id": row.incident.id,
            "status": row.incident.status.value,
            "status_label": label(language, STATUS_LABELS, row.incident.status.value),
            "outcome_label": label(language, OUTCOME_LABELS, row.incident.outcome.value)
            if row.incident.outcome
            else "",
            "running": row.running,
        }
        for row in public_reports.public_reports_of(session=session, actor=page_user.actor)
    ]
    return console_render(
        request,
        page_user,
        "console/public_reports.html",
        {"rows": rows, "done": request.query_params.get("done") == "false_alarm"},
        section="/console/public-reports",
    )


@router.post("/incidents/{incident_id}/false-alarm")
def public_report_false_alarm(
    incident_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    """A finder's report was not real: close it as a false alarm; everything stops."""
    check_form_csrf(page_user, csrf_token)
    public_reports.false_alarm(session=session, actor=page_user.actor, incident_id=incident_id)
    return see_other("/console/public-reports?done=false_alarm")
