"""The visits API, the managers' reports, CSV exports and the iCalendar feed."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
import zoneinfo
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from icalendar import Calendar
from sqlmodel import Session, col, select

from welfare.audit.models import AuditEntry
from welfare.db import utcnow
from welfare.incidents.models import Incident
from welfare.reports import exports
from welfare.residents.models import Resident
from welfare.sites.models import Site
from welfare.users.models import User
from welfare.visits.models import CalendarToken, Visit, VisitSchedule, VisitStatus

BODY: dict[str, Any] = {
    "kind": "home_visit",
    "rrule": "FREQ=WEEKLY;BYDAY=MO,TH",
    "window_start": "10:00",
    "window_end": "11:00",
    # Beyond the two weeks generated on saving: these tests add the visits they look at.
    "start_date": (dt.date.today() + dt.timedelta(days=60)).isoformat(),
}


@pytest.fixture
def consenting(
    make_resident: Callable[..., Resident], make_consent: Callable[..., Any]
) -> Callable[..., Resident]:
    def make(**overrides: Any) -> Resident:
        resident = make_resident(**overrides)
        make_consent(resident)
        return resident

    return make


def _add_visit(
    db: Session,
    schedule_id: Any,
    start: dt.datetime,
    *,
    status: VisitStatus = VisitStatus.scheduled,
    assignee: Any = None,
    notes: str | None = None,
) -> Visit:
    schedule = db.get(VisitSchedule, uuid.UUID(str(schedule_id)))
    assert schedule is not None
    visit = Visit(
        schedule_id=schedule.id,
        site_id=schedule.site_id,
        resident_id=schedule.resident_id,
        kind=schedule.kind,
        assignee_user_id=assignee,
        window_start=start,
        window_end=start + dt.timedelta(hours=1),
        status=status,
        notes=notes,
    )
    db.add(visit)
    db.commit()
    return visit


def test_a_new_schedule_lists_its_coming_visits_at_once(
    client: TestClient,
    headers_for: Callable[..., dict[str, str]],
    consenting: Callable[..., Resident],
) -> None:
    manager = headers_for("manager")
    resident = consenting()
    today = dt.date.today()
    created = client.post(
        "/api/v1/visit-schedules",
        headers=manager,
        json={
            **BODY,
            "resident_id": str(resident.id),
            "rrule": "FREQ=DAILY",
            "start_date": today.isoformat(),
        },
    )
    assert created.status_code == 201, created.text
    listed = client.get(
        "/api/v1/visits", headers=manager, params={"resident_id": str(resident.id), "limit": 100}
    ).json()
    # Today's window may have passed already: the rest of the fortnight is there.
    assert 13 <= listed["total"] <= 14
    assert {v["schedule_id"] for v in listed["items"]} == {created.json()["id"]}
    assert all(v["status"] == "scheduled" for v in listed["items"])
    now = utcnow()
    assert all(dt.datetime.fromisoformat(v["window_start"]) > now for v in listed["items"])

    # A change of rule replaces the coming visits at once, too.
    changed = client.patch(
        f"/api/v1/visit-schedules/{created.json()['id']}",
        headers=manager,
        json={"rrule": "FREQ=WEEKLY;BYDAY=WE"},
    )
    assert changed.status_code == 200, changed.text
    again = client.get(
        "/api/v1/visits", headers=manager, params={"resident_id": str(resident.id)}
    ).json()
    hong_kong = zoneinfo.ZoneInfo("Asia/Hong_Kong")
    days = {
        dt.datetime.fromisoformat(v["window_start"]).astimezone(hong_kong).strftime("%a")
        for v in again["items"]
    }
    assert days == {"Wed"} and 2 <= again["total"] <= 3


def test_a_manager_schedules_and_staff_record(
    client: TestClient,
    db: Session,
    site: Site,
    headers_for: Callable[..., dict[str, str]],
    make_user: Callable[..., User],
    consenting: Callable[..., Resident],
) -> None:
    manager = headers_for("manager")
    staff_user = make_user("staff", [site])
    resident = consenting()
    created = client.post(
        "/api/v1/visit-schedules",
        headers=manager,
        json={**BODY, "resident_id": str(resident.id), "assignee_user_id": str(staff_user.id)},
    )
    assert created.status_code == 201, created.text
    schedule = created.json()
    assert schedule["timezone"] == "Asia/Hong_Kong" and schedule["rrule"] == BODY["rrule"]
    db.rollback()

    start = utcnow() - dt.timedelta(hours=2)
    first = _add_visit(db, schedule["id"], start, assignee=staff_user.id)
    second = _add_visit(db, schedule["id"], start + dt.timedelta(days=3), assignee=staff_user.id)
    staff = headers_for("staff")
    listed = client.get(
        "/api/v1/visits",
        headers=staff,
        params={"assignee_user_id": str(staff_user.id), "status": "scheduled", "limit": 1},
    ).json()
    assert listed["total"] == 2 and [v["id"] for v in listed["items"]] == [str(first.id)]
    ranged = client.get(
        "/api/v1/visits",
        headers=staff,
        params={"start_from": (start + dt.timedelta(days=1)).isoformat()},
    ).json()
    assert [v["id"] for v in ranged["items"]] == [str(second.id)]

    recorded = client.post(
        f"/api/v1/visits/{first.id}/record",
        headers=staff,
        json={"outcome": "well", "notes": "made tea", "follow_up": True},
    )
    assert recorded.status_code == 200, recorded.text
    assert recorded.json()["status"] == "completed"
    assert recorded.json()["incident_id"] is not None  # a follow-up is an incident for staff
    again = client.post(
        f"/api/v1/visits/{first.id}/record", headers=staff, json={"outcome": "well"}
    )
    assert again.status_code == 409
    early = client.post(
        f"/api/v1/visits/{second.id}/record", headers=staff, json={"outcome": "well"}
    )
    assert early.status_code == 422
    bad = client.post(f"/api/v1/visits/{second.id}/record", headers=staff, json={"outcome": "fine"})
    assert bad.status_code == 422


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rrule": "FREQ=SECONDLY"}, "rrule"),
        ({"rrule": "not a rule"}, "rrule"),
        ({"window_end": "09:00"}, "window_end"),
        ({"end_date": "2026-01-01"}, "end_date"),
        ({"kind": "automated_call"}, "kind"),
        ({"assignee_user_id": str(uuid.uuid4())}, "assignee_user_id"),
    ],
)
def test_bad_schedules_get_a_clear_422(
    client: TestClient,
    headers_for: Callable[..., dict[str, str]],
    consenting: Callable[..., Resident],
    change: dict[str, Any],
    field: str,
) -> None:
    resident = consenting()
    response = client.post(
        "/api/v1/visit-schedules",
        headers=headers_for("manager"),
        json={**BODY, "resident_id": str(resident.id), **change},
    )
    assert response.status_code == 422, response.text
    assert field in response.text


def test_no_schedule_for_a_resident_without_welfare_visits_consent(
    client: TestClient,
    headers_for: Callable[..., dict[str, str]],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
) -> None:
    resident = make_resident()
    make_consent(resident, scopes=["registry", "lost_person_response"])
    response = client.post(
        "/api/v1/visit-schedules",
        headers=headers_for("manager"),
        json={**BODY, "resident_id": str(resident.id)},
    )
    assert response.status_code == 422 and "welfare visits" in response.text


def test_completion_report_per_assignee_and_resident(
    client: TestClient,
    db: Session,
    site: Site,
    headers_for: Callable[..., dict[str, str]],
    make_user: Callable[..., User],
    consenting: Callable[..., Resident],
) -> None:
    visitor = make_user("staff", [site], display_name="Ms. Chan")
    one, two = consenting(), consenting()
    s1 = client.post(
        "/api/v1/visit-schedules",
        headers=headers_for("manager"),
        json={**BODY, "resident_id": str(one.id)},
    ).json()["id"]
    s2 = client.post(
        "/api/v1/visit-schedules",
        headers=headers_for("manager"),
        json={**BODY, "resident_id": str(two.id)},
    ).json()["id"]
    db.rollback()
    base = utcnow() - dt.timedelta(days=5)
    _add_visit(db, s1, base, status=VisitStatus.completed, assignee=visitor.id)
    _add_visit(db, s1, base + dt.timedelta(days=1), status=VisitStatus.missed, assignee=visitor.id)
    _add_visit(db, s2, base, status=VisitStatus.completed)
    _add_visit(db, s2, base + dt.timedelta(days=30), assignee=visitor.id)  # not due yet
    report = client.get("/api/v1/reports/visit-completion", headers=headers_for("manager")).json()
    assert report["total"] == {"due": 3, "completed": 2, "missed": 1, "rate": 0.6667}
    by_assignee = {row["assignee"]: row for row in report["by_assignee"]}
    assert by_assignee["Ms. Chan"]["rate"] == 0.5 and by_assignee["site staff"]["rate"] == 1.0
    by_resident = {row["resident_id"]: row for row in report["by_resident"]}
    assert by_resident[str(one.id)]["due"] == 2 and by_resident[str(two.id)]["completed"] == 1


def test_completion_counts_the_windows_that_end_in_the_period_at_its_edges(
    client: TestClient,
    db: Session,
    site: Site,
    headers_for: Callable[..., dict[str, str]],
    consenting: Callable[..., Resident],
) -> None:
    resident = consenting()
    schedule_id = client.post(
        "/api/v1/visit-schedules",
        headers=headers_for("manager"),
        json={**BODY, "resident_id": str(resident.id)},
    ).json()["id"]
    db.rollback()
    start = dt.datetime(2026, 11, 2, 0, 0, tzinfo=dt.UTC)
    end = start + dt.timedelta(days=7)
    # Begun before the period, ended in it: counted. Ended at its very end, or before it began:
    # not. Windows are an hour long (_add_visit).
    _add_visit(db, schedule_id, start - dt.timedelta(minutes=30), status=VisitStatus.completed)
    _add_visit(db, schedule_id, start - dt.timedelta(minutes=61), status=VisitStatus.completed)
    _add_visit(db, schedule_id, start + dt.timedelta(days=3), status=VisitStatus.missed)
    _add_visit(db, schedule_id, end - dt.timedelta(minutes=61), status=VisitStatus.missed)
    _add_visit(db, schedule_id, end - dt.timedelta(hours=1), status=VisitStatus.missed)
    report = client.get(
        "/api/v1/reports/visit-completion",
        headers=headers_for("manager"),
        params={"start": start.isoformat(), "end": end.isoformat()},
    ).json()
    assert report["total"] == {"due": 3, "completed": 1, "missed": 2, "rate": 0.3333}


def test_response_times_median_and_p90_per_month(
    client: TestClient,
    db: Session,
    site: Site,
    headers_for: Callable[..., dict[str, str]],
) -> None:
    opened = dt.datetime(2026, 10, 5, 4, 0, tzinfo=dt.UTC)
    for i, seconds in enumerate([10, 20, 30, 40, 100]):
        at = opened + dt.timedelta(days=i)
        db.add(
            Incident(
                reference=f"R{i}",
                site_id=site.id,
                kind="found",
                status="resolved",
                opened_at=at,
                first_sent_at=at + dt.timedelta(seconds=seconds),
                confirmed_at=at + dt.timedelta(seconds=seconds * 10) if i < 4 else None,
                handed_over_at=at + dt.timedelta(hours=1) if i == 0 else None,
            )
        )
    db.add(
        Incident(reference="NOV", site_id=site.id, kind="found", opened_at=opened.replace(month=11))
    )
    db.commit()
    report = client.get(
        "/api/v1/reports/response-times",
        headers=headers_for("manager"),
        params={"start": "2026-10-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
    ).json()
    october, november = report["months"]
    assert october["month"] == "2026-10" and october["incidents"] == 5
    assert october["to_first_message"] == {"count": 5, "median_seconds": 30.0, "p90_seconds": 76.0}
    assert october["to_confirmation"]["median_seconds"] == 250.0
    assert october["to_hand_over"] == {"count": 1, "median_seconds": 3600.0, "p90_seconds": 3600.0}
    assert november["incidents"] == 1 and november["to_first_message"]["count"] == 0
    bad = client.get(
        "/api/v1/reports/response-times",
        headers=headers_for("manager"),
        params={"start": "2026-12-01T00:00:00Z", "end": "2026-10-01T00:00:00Z"},
    )
    assert bad.status_code == 422


def test_csv_exports_carry_no_notes_and_defuse_formulas(
    client: TestClient,
    db: Session,
    site: Site,
    headers_for: Callable[..., dict[str, str]],
    make_user: Callable[..., User],
    consenting: Callable[..., Resident],
) -> None:
    sneaky = make_user("staff", [site], display_name='=HYPERLINK("http://x")')
    resident = consenting()
    schedule = client.post(
        "/api/v1/visit-schedules",
        headers=headers_for("manager"),
        json={**BODY, "resident_id": str(resident.id)},
    ).json()["id"]
    db.rollback()
    visit = _add_visit(
        db, schedule, utcnow() - dt.timedelta(days=1), assignee=sneaky.id, notes="insulin at 9"
    )
    hong_kong = visit.window_start.astimezone(zoneinfo.ZoneInfo("Asia/Hong_Kong"))
    db.add(
        Incident(
            reference="+ABC",
            site_id=site.id,
            kind="found",
            note="diabetic, confused",
            location="-1 car park",
            opened_at=utcnow() - dt.timedelta(days=1),
        )
    )
    db.commit()
    manager = headers_for("manager")
    visits_csv = client.get("/api/v1/reports/visits.csv", headers=manager)
    assert visits_csv.status_code == 200
    assert visits_csv.headers["content-type"].startswith("text/csv")
    assert "insulin" not in visits_csv.text
    (row,) = list(csv.DictReader(io.StringIO(visits_csv.text)))
    assert row["assignee"] == '\'=HYPERLINK("http://x")'
    assert row["window_start_local"] == hong_kong.strftime("%Y-%m-%d %H:%M")
    incidents_csv = client.get("/api/v1/reports/incidents.csv", headers=manager).text
    assert "diabetic" not in incidents_csv and "car park" not in incidents_csv
    (incident_row,) = list(csv.DictReader(io.StringIO(incidents_csv)))
    assert incident_row["reference"] == "'+ABC"


@pytest.mark.parametrize("value", ["=1+2", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"])
def test_csv_cells_that_look_like_formulas_are_quoted(value: str) -> None:
    assert exports.csv_cell(value) == "'" + value
    assert exports.csv_cell("plain") == "plain"


def test_calendar_feed_behind_a_revocable_secret(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    login: Callable[..., dict[str, str]],
    headers_for: Callable[..., dict[str, str]],
    consenting: Callable[..., Resident],
) -> None:
    visitor = make_user("staff", [site])
    resident = consenting(full_name="Kim Young-hee")
    schedule = client.post(
        "/api/v1/visit-schedules",
        headers=headers_for("manager"),
        json={**BODY, "resident_id": str(resident.id), "assignee_user_id": str(visitor.id)},
    ).json()["id"]
    db.rollback()
    visit = _add_visit(db, schedule, utcnow() + dt.timedelta(days=1), assignee=visitor.id)
    mine = login(visitor)

    issued = client.post(f"/api/v1/users/{visitor.id}/calendar-token", headers=mine)
    assert issued.status_code == 201
    token = issued.json()["token"]
    assert issued.json()["url"].endswith(f"/calendar/{token}.ics")
    db.rollback()
    stored = db.get(CalendarToken, visitor.id)
    assert stored is not None and token not in stored.token_hash and len(stored.token_hash) == 64
    db.rollback()

    feed = client.get(f"/calendar/{token}.ics")
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")
    assert "Kim" not in feed.text
    # The schedule starts 60 days ahead: whatever it plans by then is tentative.
    events = [
        c for c in Calendar.from_ical(feed.content).walk("VEVENT") if c["status"] != "TENTATIVE"
    ]
    start = visit.window_start
    assert [str(e["uid"]) for e in events] == [f"{schedule}-{start:%Y%m%dT%H%M%SZ}@welfare"]
    assert events[0].decoded("dtstart") == start.replace(microsecond=0)
    assert str(events[0]["url"]).endswith(f"/api/v1/visits/{visit.id}")

    # Re-issuing revokes the old URL; revoking ends the new one.
    newer = client.post(f"/api/v1/users/{visitor.id}/calendar-token", headers=mine).json()
    assert client.get(f"/calendar/{token}.ics").status_code == 404
    assert client.get(f"/calendar/{newer['token']}.ics").status_code == 200
    assert (
        client.delete(f"/api/v1/users/{visitor.id}/calendar-token", headers=mine).status_code == 204
    )
    assert client.get(f"/calendar/{newer['token']}.ics").status_code == 404
    assert client.get("/calendar/guess.ics").status_code == 404


def test_the_feed_carries_on_past_the_window_with_the_schedules_planned_visits(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    login: Callable[..., dict[str, str]],
    headers_for: Callable[..., dict[str, str]],
    consenting: Callable[..., Resident],
) -> None:
    visitor = make_user("staff", [site])
    resident = consenting()
    today = dt.date.today().isoformat()
    schedule = client.post(
        "/api/v1/visit-schedules",
        headers=headers_for("manager"),
        json={**BODY, "start_date": today, "resident_id": str(resident.id)},
    ).json()["id"]
    mine = login(visitor)
    token = client.post(f"/api/v1/users/{visitor.id}/calendar-token", headers=mine).json()
    feed = client.get(f"/calendar/{token['token']}.ics")
    events = list(Calendar.from_ical(feed.content).walk("VEVENT"))
    db.rollback()
    rows = db.exec(select(Visit).where(Visit.schedule_id == uuid.UUID(schedule))).all()
    # Unassigned: the site's staff see it. Two weeks of visits, then what the rule plans, up
    # to 60 days ahead, each occurrence once.
    confirmed = [e for e in events if e["status"] == "CONFIRMED"]
    planned = [e for e in events if e["status"] == "TENTATIVE"]
    assert len(confirmed) == len(rows) >= 3
    assert len(planned) >= 10
    assert max(e.decoded("dtstart") for e in confirmed) < min(e.decoded("dtstart") for e in planned)
    assert len({str(e["uid"]) for e in events}) == len(events)
    assert all(str(e["url"]).endswith(f"/api/v1/visit-schedules/{schedule}") for e in planned)
    assert all(e.decoded("dtstart") < utcnow() + dt.timedelta(days=60) for e in planned)


def test_the_calendar_lists_visits_then_the_schedules_planned_occurrences(
    client: TestClient,
    db: Session,
    site: Site,
    headers_for: Callable[..., dict[str, str]],
    consenting: Callable[..., Resident],
) -> None:
    manager = headers_for("manager")
    resident = consenting()
    today = dt.date.today().isoformat()
    schedule = client.post(
        "/api/v1/visit-schedules",
        headers=manager,
        json={**BODY, "start_date": today, "resident_id": str(resident.id)},
    ).json()["id"]
    now = utcnow()
    span = {"start_from": now.isoformat(), "start_to": (now + dt.timedelta(days=60)).isoformat()}
    answer = client.get("/api/v1/visits/calendar", params=span, headers=manager)
    assert answer.status_code == 200, answer.text
    items, more = answer.json()["items"], answer.json()["more"]
    db.rollback()
    rows = db.exec(select(Visit).where(Visit.schedule_id == uuid.UUID(schedule))).all()
    visits = [i for i in items if not i["planned"]]
    planned = [i for i in items if i["planned"]]
    assert {i["visit_id"] for i in visits} == {str(r.id) for r in rows} and not more
    assert all(i["status"] == "scheduled" for i in visits)
    assert planned and all(i["visit_id"] is None and i["status"] is None for i in planned)
    assert all(i["schedule_id"] == schedule for i in items)
    starts = [i["window_start"] for i in items]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert max(i["window_start"] for i in visits) < min(i["window_start"] for i in planned)

    first = client.get("/api/v1/visits/calendar", params={**span, "limit": 2}, headers=manager)
    assert [i["window_start"] for i in first.json()["items"]] == starts[:2]
    assert first.json()["more"] is True
    completed = client.get(
        "/api/v1/visits/calendar", params={**span, "status": "completed"}, headers=manager
    )
    assert completed.json() == {"items": [], "more": False}
    # Bad ranges are refused, saying why.
    for bad in (
        {"start_from": span["start_to"], "start_to": span["start_from"]},
        {**span, "start_to": (now + dt.timedelta(days=500)).isoformat()},
        {"start_from": span["start_from"]},
        {**span, "limit": 1001},
    ):
        refused = client.get("/api/v1/visits/calendar", params=bad, headers=manager)
        assert refused.status_code == 422, bad


def test_ending_a_schedule_keeps_recorded_visits(
    client: TestClient,
    db: Session,
    headers_for: Callable[..., dict[str, str]],
    consenting: Callable[..., Resident],
) -> None:
    manager = headers_for("manager")
    schedule = client.post(
        "/api/v1/visit-schedules",
        headers=manager,
        json={**BODY, "resident_id": str(consenting().id)},
    ).json()["id"]
    db.rollback()
    past = _add_visit(db, schedule, utcnow() - dt.timedelta(days=2), status=VisitStatus.completed)
    future = _add_visit(db, schedule, utcnow() + dt.timedelta(days=2))
    assert client.delete(f"/api/v1/visit-schedules/{schedule}", headers=manager).status_code == 204
    db.rollback()
    left = db.exec(select(Visit.id)).all()
    assert left == [past.id], (left, past.id, future.id)
    assert (
        client.get(f"/api/v1/visit-schedules/{schedule}", headers=manager).json()["active"] is False
    )
    assert db.exec(select(VisitSchedule)).one().active is False


def test_a_residents_own_phone_is_validated_and_stored_in_e164(
    client: TestClient,
    headers_for: Callable[..., dict[str, str]],
    consenting: Callable[..., Resident],
) -> None:
    staff = headers_for("staff")
    resident = consenting()
    bad = client.patch(f"/api/v1/residents/{resident.id}", headers=staff, json={"phone": "12"})
    assert bad.status_code == 422 and "phone" in bad.text
    good = client.patch(
        f"/api/v1/residents/{resident.id}", headers=staff, json={"phone": "9876 5432"}
    )
    assert good.status_code == 200 and good.json()["phone"] == "+85298765432"
    cleared = client.patch(f"/api/v1/residents/{resident.id}", headers=staff, json={"phone": None})
    assert cleared.status_code == 200 and cleared.json()["phone"] is None


def test_csv_exports_name_the_resident_for_managers_only_and_are_audited(
    client: TestClient,
    db: Session,
    site: Site,
    headers_for: Callable[..., dict[str, str]],
    make_household: Callable[..., Any],
    consenting: Callable[..., Resident],
) -> None:
    household = make_household(building="2", unit="1203")
    resident = consenting(household=household, full_name="Chan Tai Man")
    schedule = client.post(
        "/api/v1/visit-schedules",
        headers=headers_for("manager"),
        json={**BODY, "resident_id": str(resident.id)},
    ).json()["id"]
    db.rollback()
    _add_visit(db, schedule, utcnow() - dt.timedelta(days=1))
    db.add(Incident(reference="W-2", site_id=site.id, resident_id=resident.id, kind="found"))
    db.commit()
    staff = headers_for("staff")
    assert client.get("/api/v1/reports/visits.csv", headers=staff).status_code == 403
    assert client.get("/api/v1/reports/incidents.csv", headers=staff).status_code == 403

    manager = headers_for("manager")
    for kind in ("visits", "incidents"):
        exported = client.get(f"/api/v1/reports/{kind}.csv", headers=manager)
        assert exported.status_code == 200
        (row,) = list(csv.DictReader(io.StringIO(exported.text)))
        assert row["resident_id"] == str(resident.id)
        assert (row["resident_name"], row["unit"]) == ("Chan Tai Man", household.unit_label)
    db.rollback()
    entries = db.exec(
        select(AuditEntry).where(AuditEntry.action == "report.export").order_by(col(AuditEntry.id))
    ).all()
    assert [(e.detail, e.entity) for e in entries] == [
        ({"kind": "visits", "rows": 1}, "report"),
        ({"kind": "incidents", "rows": 1}, "report"),
    ]
    assert all(e.resident_id is None for e in entries)
    assert "Chan" not in repr([e.detail for e in entries])


def test_recording_before_the_window_opens_needs_confirm_early(
    client: TestClient,
    db: Session,
    headers_for: Callable[..., dict[str, str]],
    consenting: Callable[..., Resident],
) -> None:
    schedule = client.post(
        "/api/v1/visit-schedules",
        headers=headers_for("manager"),
        json={**BODY, "resident_id": str(consenting().id)},
    ).json()["id"]
    db.rollback()
    soon = _add_visit(db, schedule, utcnow() + dt.timedelta(hours=2))
    tomorrow = _add_visit(db, schedule, utcnow() + dt.timedelta(days=1))
    staff = headers_for("staff")
    asked = client.post(f"/api/v1/visits/{soon.id}/record", headers=staff, json={"outcome": "well"})
    assert asked.status_code == 409
    body = asked.json()
    assert body["confirm_field"] == "confirm_early"
    assert "has not opened yet" in body["detail"] and "confirm_early" in body["detail"]
    assert dt.datetime.fromisoformat(body["window_start"]) == soon.window_start
    db.rollback()
    assert db.get(Visit, soon.id).status is VisitStatus.scheduled  # type: ignore[union-attr]
    confirmed = client.post(
        f"/api/v1/visits/{soon.id}/record",
        headers=staff,
        json={"outcome": "well", "confirm_early": True},
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "completed"
    # More than 12 hours ahead it is refused whatever the flag says, as before.
    refused = client.post(
        f"/api/v1/visits/{tomorrow.id}/record",
        headers=staff,
        json={"outcome": "well", "confirm_early": True},
    )
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["msg"] == "this visit has not started yet"
