"""The staff console's board (open incidents, polled), its JSON, and the closed incidents.

Thin over the read model `welfare/incidents/staff_view.py`, which lists the rows and decides
which are overdue; this module puts its codes into the desk's language.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlmodel import Session

from api.deps import SessionDep
from api.pages.console.frame import ConsoleUserDep, console_render
from api.pages.console.words import (
    CONDITION_LABELS,
    FOUND_BY_PUBLIC,
    KIND_LABELS,
    OUTCOME_LABELS,
    STATUS_LABELS,
    label,
)
from api.pages.deps import PageUser
from api.pages.form_errors import PageRoute
from api.pages.i18n import gettext
from api.pages.rendering import local_time
from welfare.incidents import staff_view
from welfare.incidents.staff_view import CLOSED_PAGE, Who

router = APIRouter(route_class=PageRoute, prefix="/console", include_in_schema=False)

POLL_SECONDS = 3


@dataclass(frozen=True)
class BoardRow:
    id: str
    reference: str
    kind: str
    kind_label: str
    status: str
    status_label: str
    condition_label: str
    who: str
    unit: str
    opened_at: str
    minutes_open: int
    overdue: bool
    url: str
    # Where a member of the public who found them is waiting (their shared location), if shared.
    map_url: str | None = None


@dataclass(frozen=True)
class ClosedRow:
    reference: str
    who: str
    unit: str
    kind_label: str
    status: str
    status_label: str
    outcome_label: str
    opened_at: str
    closed_at: str
    minutes_to_confirm: int | None
    minutes_open: int
    url: str


def who_words(language: str, who: Who, name: str) -> str:
    if who is Who.unknown:
        return gettext(language, "Unknown person")
    if who is Who.erased:
        return gettext(language, "Erased record")
    return name


def board_rows(session: Session, page_user: PageUser) -> list[BoardRow]:
    """The read model's board, in words. Only the name card's fields: no health data."""
    language = page_user.language
    return [
        BoardRow(
            id=str(row.id),
            reference=row.reference,
            kind=row.kind.value,
            kind_label=gettext(language, FOUND_BY_PUBLIC)
            if row.public_finder
            else label(language, KIND_LABELS, row.kind.value),
            status=row.status.value,
            status_label=label(language, STATUS_LABELS, row.status.value),
            condition_label=label(language, CONDITION_LABELS, row.condition.value),
            who=who_words(language, row.who, row.name),
            unit=row.unit,
            opened_at=local_time(row.opened_at, row.timezone),
            minutes_open=row.minutes_open,
            overdue=row.overdue,
            url=f"/console/incidents/{row.id}",
            map_url=row.map_url,
        )
        for row in staff_view.board(session=session, actor=page_user.actor)
    ]


def closed_rows(
    session: Session, page_user: PageUser, *, offset: int
) -> tuple[list[ClosedRow], int]:
    """The read model's closed incidents, in words: how each one ended."""
    language = page_user.language
    rows, total = staff_view.closed(session=session, actor=page_user.actor, offset=offset)
    out = [
        ClosedRow(
            reference=row.reference,
            who=who_words(language, row.who, row.name),
            unit=row.unit,
            kind_label=label(language, KIND_LABELS, row.kind.value),
            status=row.status.value,
            status_label=label(language, STATUS_LABELS, row.status.value),
            outcome_label=label(language, OUTCOME_LABELS, row.outcome.value) if row.outcome else "",
            opened_at=local_time(row.opened_at, row.timezone),
            closed_at=local_time(row.closed_at, row.timezone) if row.closed_at else "",
            minutes_to_confirm=row.minutes_to_confirm,
            minutes_open=row.minutes_open,
            url=f"/console/incidents/{row.id}",
        )
        for row in rows
    ]
    return out, total


@router.get("")
def board(request: Request, session: SessionDep, page_user: ConsoleUserDep) -> Response:
    rows = board_rows(session, page_user)
    return console_render(
        request,
        page_user,
        "console/board.html",
        {"rows": rows, "poll_seconds": POLL_SECONDS},
        section="/console",
    )


@router.get("/incidents")
def closed_incidents(
    request: Request,
    session: SessionDep,
    page_user: ConsoleUserDep,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    rows, total = closed_rows(session, page_user, offset=offset)
    return console_render(
        request,
        page_user,
        "console/closed.html",
        {"rows": rows, "total": total, "offset": offset, "page_size": CLOSED_PAGE},
        section="/console",
    )


@router.get("/board.json")
def board_json(session: SessionDep, page_user: ConsoleUserDep) -> JSONResponse:
    """What the board polls: the same rows, already translated."""
    rows = board_rows(session, page_user)
    return JSONResponse(
        {"items": [row.__dict__ for row in rows], "total": len(rows)},
        headers={"Cache-Control": "no-store"},
    )
