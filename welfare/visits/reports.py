"""The manager's figures: visit completion, incident response times, CSV exports, iCalendar.

Everything here reads; the pages draw the JSON. Exports are for managers: they carry ids,
times, statuses and outcomes, and the resident's name and unit next to the resident's id so a
row can be read without the console; never notes, places or health data. Each export is in the
access audit (its kind and row count, no personal data).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from sqlmodel import Session, col, select

from welfare.audit.service import record as audit_record
from welfare.authz import Actor, Permission, visible_site_ids
from welfare.errors import InvalidInput
from welfare.incidents.models import Incident
from welfare.residents.models import Resident
from welfare.sites.models import Household, Site
from welfare.times import check_timezone, zone
from welfare.users.models import User
from welfare.visits.models import Visit, VisitKind, VisitOutcome, VisitStatus
from welfare.visits.service import visit_filters

MAX_EXPORT_ROWS = 100_000
KIND_WORDS = {
    VisitKind.home_visit: "Home visit",
    VisitKind.phone_checkin: "Phone check-in",
    VisitKind.automated_call: "Automated check-in call",
}


def _range(
    start: dt.datetime | None, end: dt.datetime | None, now: dt.datetime, default_days: int
) -> tuple[dt.datetime, dt.datetime]:
    end = end or now
    start = start or end - dt.timedelta(days=default_days)
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("start", "give times with a timezone, e.g. 2026-11-01T00:00:00Z")
    if end <= start:
        raise InvalidInput("end", "the range ends before it starts")
    if end - start > dt.timedelta(days=800):
        raise InvalidInput("start", "ask for at most 800 days at a time")
    return start, end


def _rate(done: int, due: int) -> float | None:
    return round(done / due, 4) if due else None


def visit_completion(
    *,
    session: Session,
    actor: Actor,
    now: dt.datetime,
    site_id: uuid.UUID | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> dict[str, Any]:
    """Visits whose window ended in [start, end): how many were due, completed, missed, per
    assignee (None = the site's staff) and per resident."""
    start, end = _range(start, end, now, 30)
    rows = session.exec(
        select(Visit.assignee_user_id, Visit.resident_id, Visit.status).where(
            *visit_filters(actor, site_id=site_id, permission=Permission.reports_read),
            col(Visit.window_end) >= start,
            col(Visit.window_end) < min(end, now),
        )
    ).all()
    by_assignee: dict[uuid.UUID | None, list[int]] = defaultdict(lambda: [0, 0, 0])
    by_resident: dict[uuid.UUID, list[int]] = defaultdict(lambda: [0, 0, 0])
    for assignee, resident, status in rows:
        for bucket in (by_assignee[assignee], by_resident[resident]):
            bucket[0] += 1
            bucket[1] += status == VisitStatus.completed
            bucket[2] += status == VisitStatus.missed
    names = dict(
        session.exec(
            select(User.id, User.display_name).where(
                col(User.id).in_([a for a in by_assignee if a is not None])
            )
        ).all()
    )

    def figures(counts: list[int]) -> dict[str, Any]:
        due, done, missed = counts
        return {"due": due, "completed": done, "missed": missed, "rate": _rate(done, due)}

    total = [sum(c[i] for c in by_assignee.values()) for i in range(3)]
    return {
        "start": start,
        "end": end,
        "site_id": site_id,
        "total": figures(total),
        "by_assignee": [
            {
                "assignee_user_id": a,
                "assignee": names.get(a, "site staff") if a else "site staff",
                **figures(c),
            }
            for a, c in sorted(by_assignee.items(), key=lambda kv: str(kv[0]))
        ],
        "by_resident": [
            {"resident_id": r, **figures(c)}
            for r, c in sorted(by_resident.items(), key=lambda kv: str(kv[0]))
        ],
    }


def percentile(values: list[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _summary(values: list[float]) -> dict[str, Any]:
    median, p90 = percentile(values, 0.5), percentile(values, 0.9)
    return {
        "count": len(values),
        "median_seconds": None if median is None else round(median, 1),
        "p90_seconds": None if p90 is None else round(p90, 1),
    }


def response_times(
    *,
    session: Session,
    actor: Actor,
    now: dt.datetime,
    site_id: uuid.UUID | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    timezone: str = "UTC",
) -> dict[str, Any]:
    """Per month of opening (in `timezone`): median and 90th percentile of the time from
    opening to the first message handed to the provider, to a confirmation, to the hand-over."""
    start, end = _range(start, end, now, 365)
    try:
        tz = zone(check_timezone(timezone))
    except ValueError as exc:
        raise InvalidInput("timezone", str(exc)) from None
    sites = visible_site_ids(actor, Permission.reports_read)
    query = select(
        Incident.opened_at, Incident.first_sent_at, Incident.confirmed_at, Incident.handed_over_at
    ).where(col(Incident.opened_at) >= start, col(Incident.opened_at) < end)
    if sites is not None:
        query = query.where(col(Incident.site_id).in_(sites))
    if site_id:
        query = query.where(Incident.site_id == site_id)
    months: dict[str, dict[str, list[float]]] = defaultdict(
        lambda: {"first_sent": [], "confirmed": [], "handed_over": [], "_n": []}
    )
    for opened, first_sent, confirmed, handed_over in session.exec(query).all():
        bucket = months[opened.astimezone(tz).strftime("%Y-%m")]
        bucket["_n"].append(1)
        for name, at in (
            ("first_sent", first_sent),
            ("confirmed", confirmed),
            ("handed_over", handed_over),
        ):
            if at is not None:
                bucket[name].append(max((at - opened).total_seconds(), 0.0))
    return {
        "start": start,
        "end": end,
        "site_id": site_id,
        "timezone": timezone,
        "months": [
            {
                "month": month,
                "incidents": len(values["_n"]),
                "to_first_message": _summary(values["first_sent"]),
                "to_confirmation": _summary(values["confirmed"]),
                "to_hand_over": _summary(values["handed_over"]),
            }
            for month, values in sorted(months.items())
        ],
    }


# --- CSV ----------------------------------------------------------------------------------------

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
    start, end = _range(start, end, now, 30)
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
    start, end = _range(start, end, now, 365)
    sites = visible_site_ids(actor, Permission.reports_read)
    query = select(Incident).where(col(Incident.opened_at) >= start, col(Incident.opened_at) < end)
    if sites is not None:
        query = query.where(col(Incident.site_id).in_(sites))
    if site_id:
        query = query.where(Incident.site_id == site_id)
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


# --- iCalendar ----------------------------------------------------------------------------------


def ical_feed(user: User, visits: list[Visit], base_url: str, now: dt.datetime) -> bytes:
    """The assignee's visits as an iCalendar feed. Events name the kind and link to the visit
    (behind sign-in); no resident name, unit or note leaves in the feed."""
    from icalendar import Calendar, Event

    calendar = Calendar()
    calendar.add("prodid", "-//welfare//visits//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", "Welfare visits")
    for visit in visits:
        event = Event()
        event.add("uid", f"{visit.id}@welfare")
        event.add("dtstamp", now)
        event.add("dtstart", visit.window_start)
        event.add("dtend", visit.window_end)
        event.add("summary", KIND_WORDS[visit.kind])
        event.add("status", "CANCELLED" if visit.status == VisitStatus.missed else "CONFIRMED")
        link = f"{base_url.rstrip('/')}/api/v1/visits/{visit.id}"
        state = visit.status.value + (
            f" ({visit.outcome.value})" if isinstance(visit.outcome, VisitOutcome) else ""
        )
        event.add("description", f"Status: {state}. Details: {link}")
        event.add("url", link)
        calendar.add_component(event)
    return bytes(calendar.to_ical())
