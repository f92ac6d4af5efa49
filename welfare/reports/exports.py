"""CSV exports for managers: ids, times, statuses and outcomes, and the resident's name and unit
next to the resident's id so a row can be read without the console; never notes, places or
health data. Each export is in the access audit (its kind and row count, no personal data)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from sqlmodel import Session, col, select

from welfare.audit.service import record as audit_record
from welfare.authz import Actor, Permission
from welfare.incidents.models import Incident
from welfare.reports.periods import incidents_opened, report_range
from welfare.residents.models import Resident
from welfare.sites.models import Household, Site
from welfare.times import zone
from welfare.users.models import User
from welfare.visits.models import Visit
from welfare.visits.service import visit_filters

MAX_EXPORT_ROWS = 100_000
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """A cell a spreadsheet will not run: text starting like a formula gets a leading quote
    (OWASP's CSV injection advice)."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    text = str(value.value if hasattr(value, "value") else value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv(header: list[str], rows: Iterable[list[Any]]) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    yield out.getvalue()
    for row in rows:
        out.seek(0)
        out.truncate()
        writer.writerow([csv_cell(v) for v in row])
        yield out.getvalue()


def _names_and_units(
    session: Session, resident_ids: Iterable[uuid.UUID | None]
) -> dict[uuid.UUID, tuple[str, str]]:
    """Each resident's name and unit, two queries for the whole export; an erased record has
    neither."""
    ids = {i for i in resident_ids if i is not None}
    if not ids:
        return {}
    people = session.exec(select(Resident).where(col(Resident.id).in_(ids))).all()
    household_ids = {r.household_id for r in people if r.household_id}
    units = (
        {
            h.id: h.unit_label
            for h in session.exec(select(Household).where(col(Household.id).in_(household_ids)))
        }
        if household_ids
        else {}
    )
    return {
        r.id: ("", "")
        if r.erased_at is not None
        else (r.full_name or "", units.get(r.household_id, "") if r.household_id else "")
        for r in people
    }


def _audit_export(session: Session, actor: Actor, kind: str, rows: int, site_id: Any) -> None:
    """Who took which export and how big it was; nothing of what it holds."""
    audit_record(
        session,
        actor=actor,
        action="report.export",
        entity="report",
        site_id=site_id,
        detail={"kind": kind, "rows": rows},
    )


VISIT_COLUMNS = [
    "visit_id",
    "site_id",
    "resident_id",
    "resident_name",
    "unit",
    "schedule_id",
    "kind",
    "assignee_user_id",
    "assignee",
    "window_start_utc",
    "window_end_utc",
    "window_start_local",
    "status",
    "outcome",
    "follow_up",
    "recorded_at_utc",
    "incident_id",
]


def visits_csv(
    *,
    session: Session,
    actor: Actor,
    now: dt.datetime,
    site_id: uuid.UUID | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> Iterator[str]:
    """Visits with windows starting in [start, end) (default: the last 30 days); no notes.
    Audited as an export of `len(visits)` rows."""
    start, end = report_range(start, end, now, 30)
    conditions = visit_filters(
        actor, site_id=site_id, start_from=start, start_to=end, permission=Permission.reports_read
    )
    visits = session.exec(
        select(Visit)
        .where(*conditions)
        .order_by(col(Visit.window_start), col(Visit.id))
        .limit(MAX_EXPORT_ROWS)
    ).all()
    zones = {s.id: zone(s.timezone) for s in session.exec(select(Site)).all()}
    names = dict(session.exec(select(User.id, User.display_name)).all())
    people = _names_and_units(session, (v.resident_id for v in visits))
    _audit_export(session, actor, "visits", len(visits), site_id)
    rows = (
        [
            v.id,
            v.site_id,
            v.resident_id,
            *people.get(v.resident_id, ("", "")),
            v.schedule_id,
            v.kind,
            v.assignee_user_id,
            names.get(v.assignee_user_id, "") if v.assignee_user_id else "site staff",
            v.window_start,
            v.window_end,
            v.window_start.astimezone(zones[v.site_id]).strftime("%Y-%m-%d %H:%M"),
            v.status,
            v.outcome,
            "yes" if v.follow_up else "no",
            v.recorded_at,
            v.incident_id,
        ]
        for v in visits
    )
    return _csv(VISIT_COLUMNS, rows)


INCIDENT_COLUMNS = [
    "incident_id",
    "reference",
    "site_id",
    "resident_id",
    "resident_name",
    "unit",
    "kind",
    "status",
    "opened_at_utc",
    "first_sent_at_utc",
    "confirmed_at_utc",
    "confirmed_via",
    "handed_over_at_utc",
    "closed_at_utc",
    "outcome",
]


def incidents_csv(
    *,
    session: Session,
    actor: Actor,
    now: dt.datetime,
    site_id: uuid.UUID | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> Iterator[str]:
    """Incidents opened in [start, end) (default: the last 365 days): times and outcomes only,
    no notes, descriptions, places, condition or who it was handed to. Audited as an export."""
    start, end = report_range(start, end, now, 365)
    query = select(Incident).where(*incidents_opened(actor, site_id=site_id, start=start, end=end))
    incidents = session.exec(
        query.order_by(col(Incident.opened_at), col(Incident.id)).limit(MAX_EXPORT_ROWS)
    ).all()
    people = _names_and_units(session, (i.resident_id for i in incidents))
    _audit_export(session, actor, "incidents", len(incidents), site_id)
    rows = (
        [
            i.id,
            i.reference,
            i.site_id,
            i.resident_id,
            *people.get(i.resident_id, ("", "")),
            i.kind,
            i.status,
            i.opened_at,
            i.first_sent_at,
            i.confirmed_at,
            i.confirmed_via,
            i.handed_over_at,
            i.closed_at,
            i.outcome,
        ]
        for i in incidents
    )
    return _csv(INCIDENT_COLUMNS, rows)
