# Fixtures imported from the domain tests are parameters here, which ruff reads as redefinitions.
# ruff: noqa: F811
"""The family's answer page `/r/<token>` (issue 15): what it shows, what a tap does, the pages
an unknown or dead token and too many requests get."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from notifications.dispatcher import Dispatcher
from notifications.messages import sms_segments
from tests.conftest import SYSTEM
from tests.notifications.fake_channel import FakeChannel
from tests.welfare.test_answer_links import (  # noqa: F401  (fixtures)
    DAUGHTER,
    SON,
    family,
    sms_to,
    token_sent_to,
)
from welfare.incidents import service as incidents
from welfare.incidents import timeline
from welfare.incidents.models import Incident, IncidentStatus, Resolution

Family = tuple[uuid.UUID, uuid.UUID, uuid.UUID]
HTML = {"accept": "text/html"}
# What the page must never show: the resident's and the contacts' names, the unit, health data.
PERSONAL = ["Wang", "Jianguo", "Mr. Wang", "Lei", "Mei", "Alzheimer", "grandson"]


@pytest.fixture
def son_token(family: Family, dispatcher: Dispatcher, channel: FakeChannel) -> str:
    dispatcher.run_once()
    return token_sent_to(channel, SON)


def _status(db: Session, incident_id: uuid.UUID) -> IncidentStatus:
    db.expire_all()
    incident = db.get(Incident, incident_id)
    assert incident is not None
    status = incident.status
    db.rollback()
    return status


def test_the_sms_carries_the_link_and_fits_two_segments(
    family: Family, dispatcher: Dispatcher, channel: FakeChannel
) -> None:
    dispatcher.run_once()
    (body,) = sms_to(channel, SON)
    assert re.search(r" https://welfare\.test/r/[A-Za-z0-9_-]{16}$", body), body
    assert sms_segments(body) <= 2 and "Harbour View Gardens" in body  # in Chinese: UCS-2


def test_the_page_shows_only_what_the_sms_says_in_the_contacts_language(
    client: TestClient, son_token: str
) -> None:
    page = client.get(f"/r/{son_token}", headers=HTML)
    assert page.status_code == 200
    assert '<html lang="zh-CN">' in page.text  # the son reads Chinese
    assert "Harbour View Gardens" in page.text and "Building 1, 3/F" in page.text
    assert 'name="answer" value="coming"' in page.text
    assert 'name="answer" value="cannot"' in page.text
    assert 'href="tel:+85223456789"' in page.text
    for word in PERSONAL:
        assert word not in page.text, word
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert (
        '<script src="http' not in page.text
        and '<link rel="stylesheet" href="http' not in page.text
    )
    english = client.get(f"/r/{son_token}?lang=en", headers=HTML)
    assert '<html lang="en">' in english.text and "The resident has been found" in english.text


def test_tapping_coming_confirms_and_the_page_says_so(
    client: TestClient,
    db: Session,
    family: Family,
    son_token: str,
    dispatcher: Dispatcher,
    channel: FakeChannel,
) -> None:
    incident_id, _, _ = family
    answered = client.post(
        f"/r/{son_token}?lang=en", data={"answer": "coming"}, follow_redirects=False
    )
    assert answered.status_code == 303 and answered.headers["location"] == f"/r/{son_token}?lang=en"
    assert _status(db, incident_id) is IncidentStatus.confirmed
    page = client.get(answered.headers["location"], headers=HTML)
    assert "The staff know you are coming" in page.text
    assert 'value="coming"' not in page.text and 'value="cannot"' not in page.text
    # Again: the same page, nothing new on the timeline, nothing more sent.
    events = len(timeline.events_of(db, incident_id))
    db.rollback()
    again = client.post(f"/r/{son_token}?lang=en", data={"answer": "coming"})
    assert again.status_code == 200 and "The staff know you are coming" in again.text
    assert len(timeline.events_of(db, incident_id)) == events
    db.rollback()
    channel.sent.clear()
    dispatcher.run_once()
    assert channel.sent == []


def test_tapping_cannot_moves_to_the_next_contact_at_once(
    client: TestClient,
    db: Session,
    family: Family,
    son_token: str,
    dispatcher: Dispatcher,
    channel: FakeChannel,
) -> None:
    incident_id, _, _ = family
    page = client.post(f"/r/{son_token}?lang=en", data={"answer": "cannot"}, headers=HTML)
    assert page.status_code == 200
    assert "We are asking the next person now" in page.text
    assert "I can come after all" in page.text
    dispatcher.run_once()
    assert len(sms_to(channel, DAUGHTER)) == 1
    assert _status(db, incident_id) is IncidentStatus.notifying


def test_the_console_timeline_says_the_son_cannot_come_in_words(
    client: TestClient,
    son_token: str,
    family: Family,
    make_user: object,
    page_login: object,
    site: object,
) -> None:
    incident_id, _, _ = family
    client.get(f"/r/{son_token}", headers=HTML)
    client.post(f"/r/{son_token}", data={"answer": "cannot"})
    client.cookies.clear()
    page_login(make_user("staff", [site]))  # type: ignore[operator]
    page = client.get(f"/console/incidents/{incident_id}")
    assert "Answer link opened" in page.text
    assert "Answered on the link: cannot come" in page.text
    assert "Wang Lei (son)" in page.text  # staff see who; the family's page never does


@pytest.mark.parametrize("token", ["AAAAAAAAAAAAAAAA", "nope", "x" * 100])
def test_unknown_and_dead_tokens_get_the_same_404_page(
    client: TestClient, writers: sessionmaker[Session], family: Family, son_token: str, token: str
) -> None:
    unknown = client.get(f"/r/{token}?lang=en", headers=HTML)
    assert unknown.status_code == 404
    with writers() as session:
        incidents.cancel(session=session, actor=SYSTEM, incident_id=family[0])
        session.commit()
    dead = client.get(f"/r/{son_token}?lang=en", headers=HTML)
    assert dead.status_code == 404 and dead.text == unknown.text
    assert "This alert is closed" in dead.text and "Harbour View" not in dead.text
    posted = client.post(f"/r/{son_token}?lang=en", data={"answer": "coming"})
    assert posted.status_code == 404 and posted.text == unknown.text


def test_the_link_is_dead_after_the_incident_is_resolved(
    client: TestClient, writers: sessionmaker[Session], family: Family, son_token: str
) -> None:
    with writers() as session:
        incidents.resolve(
            session=session,
            actor=SYSTEM,
            incident_id=family[0],
            data=Resolution(outcome="handed_over"),  # type: ignore[arg-type]
        )
        session.commit()
    assert client.get(f"/r/{son_token}", headers=HTML).status_code == 404


def test_a_bad_answer_is_a_422_not_a_500(client: TestClient, son_token: str) -> None:
    assert client.post(f"/r/{son_token}", data={"answer": "maybe"}).status_code == 422
    assert client.post(f"/r/{son_token}", data={}).status_code == 422


def test_one_token_is_rate_limited_with_a_429_page(client: TestClient, son_token: str) -> None:
    codes = [client.get(f"/r/{son_token}?lang=en", headers=HTML).status_code for _ in range(21)]
    assert codes[:20] == [200] * 20 and codes[20] == 429
    page = client.get(f"/r/{son_token}?lang=en", headers=HTML)
    assert page.status_code == 429 and "Too many attempts" in page.text
    assert int(page.headers["retry-after"]) >= 1
    assert "Harbour View" not in page.text


def test_one_address_is_rate_limited_across_tokens(client: TestClient, family: Family) -> None:
    codes = [client.get(f"/r/{uuid.uuid4().hex[:16]}", headers=HTML).status_code for _ in range(31)]
    assert codes[:30] == [404] * 30 and codes[30] == 429
