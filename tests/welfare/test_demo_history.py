"""The demo's past (welfare.demo_history): visits of every status, incidents with timelines, and
manager reports with figures, made once and the same on every run."""

from __future__ import annotations

import datetime as dt
import io
from collections import Counter
from collections.abc import Callable

from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func
from sqlmodel import Session, col, select

from welfare.authz import Actor
from welfare.demo import seed_demo
from welfare.demo_portraits import COLOURS, draw_portrait
from welfare.incidents.models import Incident, IncidentEvent, IncidentStatus
from welfare.reports import response_times, visits
from welfare.residents.models import Resident
from welfare.settings import Settings
from welfare.users.models import User
from welfare.visits.models import Visit, VisitOutcome, VisitSchedule, VisitStatus

NOW = dt.datetime(2026, 11, 20, 6, 30, tzinfo=dt.UTC)  # 14:30 in Hong Kong, a Friday


def _shape(db: Session) -> list[tuple[object, ...]]:
    return [
        (v.window_start, v.status, v.outcome, v.notes, v.recorded_at)
        for v in db.exec(select(Visit).order_by(col(Visit.window_start), col(Visit.kind))).all()
    ]


def test_the_demo_has_past_visits_of_each_status_with_outcomes_and_notes(db: Session) -> None:
    seed_demo(db, now=NOW)
    db.commit()
    visits = db.exec(select(Visit)).all()
    past = [v for v in visits if v.window_end <= NOW]
    coming = [v for v in visits if v.window_start > NOW]
    statuses = Counter(v.status for v in past)
    assert statuses[VisitStatus.completed] > 40
    assert statuses[VisitStatus.missed] >= 3
    assert statuses[VisitStatus.overdue] == 1
    assert min(v.window_start for v in past) < NOW - dt.timedelta(days=80)
    outcomes = {v.outcome for v in past if v.status is VisitStatus.completed}
    assert {VisitOutcome.well, VisitOutcome.not_home} <= outcomes
    assert any(v.notes for v in past)
    for visit in past:
        if visit.status is VisitStatus.completed:
            assert visit.recorded_at is not None and visit.recorded_at > visit.window_start
        if visit.status is VisitStatus.missed:
            assert visit.missed_at is not None and visit.missed_at > visit.window_end
        if visit.outcome is VisitOutcome.concern:  # as recording one does: a welfare concern
            assert visit.incident_id is not None
    # The coming two weeks exist already, generated as the scheduler would.
    assert coming and all(v.status is VisitStatus.scheduled for v in coming)
    assert max(v.window_start for v in coming) > NOW + dt.timedelta(days=10)
    assert db.exec(select(func.count()).select_from(VisitSchedule)).one() == 4


def test_the_demo_has_months_of_incidents_with_timelines_in_order(db: Session) -> None:
    seed_demo(db, now=NOW)
    db.commit()
    incidents = db.exec(select(Incident)).all()
    assert len(incidents) >= 8
    assert {i.opened_at.strftime("%Y-%m") for i in incidents} >= {"2026-09", "2026-10", "2026-11"}
    assert all(i.status is IncidentStatus.resolved and i.opened_at < NOW for i in incidents)
    handed = [i for i in incidents if i.handed_over_at is not None]
    assert len(handed) >= 4
    for incident in incidents:
        events = db.exec(
            select(IncidentEvent)
            .where(IncidentEvent.incident_id == incident.id)
            .order_by(col(IncidentEvent.id))
        ).all()
        types = [e.type for e in events]
        assert types[0] == "reported" and types[-1] == "resolved"
        assert "sent" in types
        times = [e.at for e in events]
        assert times == sorted(times), types
        assert times[0] == incident.opened_at and times[-1] == incident.closed_at
        if incident.confirmed_at:
            assert "confirmed" in types
            assert incident.opened_at < incident.first_sent_at < incident.confirmed_at  # type: ignore[operator]
            # Plausible: a message within a minute or two, an answer within a quarter hour.
            assert incident.first_sent_at - incident.opened_at < dt.timedelta(minutes=2)  # type: ignore[operator]
            assert incident.confirmed_at - incident.opened_at < dt.timedelta(minutes=20)
        if incident.handed_over_at:
            assert "handed_over" in types
            assert incident.handed_over_at - incident.opened_at < dt.timedelta(hours=2)


def test_the_managers_reports_over_the_demo_show_figures(db: Session) -> None:
    site, _ = seed_demo(db, now=NOW)
    db.commit()
    actor = Actor.system()
    completion = visits.visit_completion(session=db, actor=actor, now=NOW, site_id=site.id)
    assert completion.total.due > 10
    assert 0 < completion.total.missed < completion.total.completed
    assert completion.total.rate is not None and 0.5 < completion.total.rate < 1
    assert len(completion.by_resident) == 4 and len(completion.by_assignee) == 3
    times = response_times.response_times(
        session=db, actor=actor, now=NOW, site_id=site.id, timezone=site.timezone
    )
    assert len(times.months) >= 3
    for month in times.months:
        assert month.incidents > 0
        assert (month.to_first_message.median_seconds or 0) > 0
    assert any(m.to_hand_over.count for m in times.months)


def test_the_demo_history_is_made_once_and_the_same_every_time(db: Session) -> None:
    seed_demo(db, now=NOW)
    db.commit()
    first = _shape(db)
    counts = (len(first), db.exec(select(func.count()).select_from(IncidentEvent)).one())
    _site, created = seed_demo(db, now=NOW + dt.timedelta(days=3))
    db.commit()
    assert created is False
    assert (len(_shape(db)), db.exec(select(func.count()).select_from(IncidentEvent)).one()) == (
        counts
    )
    # Seeded again at the same instant, the past is the same (a fixed seed).
    for visit in db.exec(select(Visit)).all():
        db.delete(visit)
    for schedule in db.exec(select(VisitSchedule)).all():
        db.delete(schedule)
    for event in db.exec(select(IncidentEvent)).all():
        db.delete(event)
    for incident in db.exec(select(Incident)).all():
        db.delete(incident)
    db.commit()
    seed_demo(db, now=NOW)  # the site is there without a history: it gets it again
    db.commit()
    assert _shape(db) == first


def test_demo_residents_get_illustrated_portraits_after_their_description(
    db: Session, settings: Settings, client: TestClient, page_login: Callable[..., str]
) -> None:
    seed_demo(db, now=NOW, settings=settings)
    db.commit()
    people = db.exec(select(Resident)).all()
    assert len(people) == 4
    assert all(r.photo_file and r.thumbnail_file and r.photo_illustration for r in people)
    by_name = {r.preferred_name: r for r in people}
    # Hair and clothing follow the description: Mr. Wang's white hair and grey coat, Mrs.
    # Park's purple cardigan.
    wang = Image.open(io.BytesIO(draw_portrait(by_name["Mr. Wang"])))
    assert wang.getpixel((240, 120)) == COLOURS["white"]
    assert wang.getpixel((240, 400)) == COLOURS["grey"]
    park = Image.open(io.BytesIO(draw_portrait(by_name["Mrs. Park"])))
    assert park.getpixel((240, 400)) == COLOURS["purple"]
    assert draw_portrait(by_name["Mr. Wang"]) == draw_portrait(by_name["Mr. Wang"])
    # Seeding again draws nothing new.
    files = {r.id: r.photo_file for r in people}
    seed_demo(db, now=NOW, settings=settings)
    db.commit()
    assert {r.id: r.photo_file for r in db.exec(select(Resident)).all()} == files

    # The guard's card shows it and says it is an illustration.
    guard = db.exec(select(User).where(User.username == "guard")).one()
    page_login(guard, password="guard-demo-1609")
    wang_id = by_name["Mr. Wang"].id
    card = client.get(f"/guard/residents/{wang_id}").text
    assert 'alt="Illustration of Mr. Wang, not a photograph"' in card
    assert ">Illustration</figcaption>" in card
    assert "walking stick with a red handle" in card
    photo = client.get(f"/api/v1/lookup/{wang_id}/photo")
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    staff = db.exec(select(User).where(User.username == "staff")).one()
    page_login(staff, password="staff-demo-1609")
    page = client.get(f"/console/residents/{wang_id}").text
    assert "An illustration drawn for the demo, not a photograph." in page
