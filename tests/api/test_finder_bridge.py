"""The finder's call (issue 20, "talk without numbers"): signed Twilio webhooks only, a Gather
for the tag's call reference, then a Dial with the site's voice number as caller id: the office
during its hours, else the family's contacts in order (finder_alerts consent), every leg on the
incident's timeline, no phone number in a URL or on the timeline."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from tests.api.test_webhooks import BASE, post, signed_settings, twilio  # noqa: F401
from tests.conftest import ALL_SCOPES, SYSTEM
from welfare.incidents import public_reports
from welfare.incidents.models import Incident, IncidentEvent
from welfare.residents.models import Resident
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.tags import service as tags
from welfare.times import zone

VOICE = "+85230001234"
OFFICE = "+85223456789"
SON = "+85291234567"
DAUGHTER = "+85261234567"
FINDER = "+85255550000"
PATH = "/webhooks/twilio/finder"


@pytest.fixture
def called(
    db: Session,
    site: Site,
    signed_settings: Settings,  # noqa: F811
    make_household: Callable[..., Any],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Any],
) -> Callable[..., str]:
    """Mr. Wang with a tag and two contacts; the site's voice line and office hours set so the
    office is open or not now. Returns the tag's call reference."""

    def make(*, office_open: bool, scopes: tuple[str, ...] = ("finder_alerts",)) -> str:
        resident = make_resident(make_household("1", "1609"))
        make_consent(resident, scopes=[*ALL_SCOPES, *scopes])
        make_contact(resident, phone="9123 4567", name="Wang Lei")
        make_contact(resident, phone="6123 4567", name="Wang Mei", relationship="daughter")
        code = tags.issue_tag(session=db, actor=SYSTEM, resident_id=resident.id).code
        local = dt.datetime.now(zone(site.timezone))
        shift = dt.timedelta(hours=-1 if office_open else 2)
        site.voice_number = VOICE
        site.office_opens = (local + shift).time().replace(second=0, microsecond=0)
        site.office_closes = (local + shift + dt.timedelta(hours=2 if office_open else 1)).time()
        db.add(site)
        db.commit()
        return public_reports.call_reference(signed_settings.secret_key, code)

    return make


def twiml(response: Any) -> ET.Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    return ET.fromstring(response.text)


def dialled_numbers(root: ET.Element) -> list[tuple[str | None, str]]:
    return [
        (dial.get("callerId"), number.text or "")
        for dial in root.iter("Dial")
        for number in dial.iter("Number")
    ]


def finder_calls(db: Session) -> list[dict[str, Any]]:
    db.rollback()
    rows = db.exec(
        select(IncidentEvent)
        .where(IncidentEvent.type == public_reports.FINDER_CALL_EVENT)
        .order_by(IncidentEvent.id)  # type: ignore[arg-type]
    ).all()
    out = [row.detail for row in rows]
    db.rollback()
    return out


def test_unsigned_and_forged_finder_calls_are_refused(twilio: TestClient) -> None:  # noqa: F811
    form = {"From": FINDER, "To": VOICE, "Digits": "12345678"}
    for step in ("voice", "reference", "dialled"):
        assert post(twilio, f"{PATH}/{step}", form, signature="").status_code == 403
        forged = post(twilio, f"{PATH}/{step}", form, token="someone-elses-token")
        assert forged.status_code == 403
        wrong_url = post(twilio, f"{PATH}/{step}", form, signed_url=BASE + "/elsewhere")
        assert wrong_url.status_code == 403


def test_the_call_is_answered_with_a_gather_for_the_reference(
    twilio: TestClient,  # noqa: F811
) -> None:
    root = twiml(post(twilio, f"{PATH}/voice", {"From": FINDER, "To": VOICE}))
    [gather] = list(root.iter("Gather"))
    assert gather.get("numDigits") == str(public_reports.CALL_REFERENCE_DIGITS)
    assert gather.get("action") == f"{BASE}{PATH}/reference?attempt=1"
    assert {say.get("language") for say in gather.iter("Say")} >= {"en-GB", "cmn-CN", "ko-KR"}


def test_during_office_hours_the_finder_is_put_through_to_the_office_behind_the_site_number(
    twilio: TestClient,  # noqa: F811
    db: Session,
    called: Callable[..., str],
) -> None:
    reference = called(office_open=True)
    form = {"From": FINDER, "To": VOICE, "Digits": reference}
    root = twiml(post(twilio, f"{PATH}/reference?attempt=1", form))
    assert dialled_numbers(root) == [(VOICE, OFFICE)]
    assert FINDER not in ET.tostring(root, encoding="unicode")
    # The call is a report: the incident is open, and the call is on its timeline.
    db.rollback()
    [incident] = db.exec(select(Incident)).all()
    assert incident.public_finder
    db.rollback()
    assert finder_calls(db) == [
        {"leg": 0, "target": "office", "contact_id": None, "status": "dialling"}
    ]


def test_after_hours_the_family_is_rung_in_order_and_every_leg_is_on_the_timeline(
    twilio: TestClient,  # noqa: F811
    db: Session,
    called: Callable[..., str],
) -> None:
    reference = called(office_open=False)
    form = {"From": FINDER, "To": VOICE, "Digits": reference}
    first = twiml(post(twilio, f"{PATH}/reference?attempt=1", form))
    assert dialled_numbers(first) == [(VOICE, SON)]
    [dial] = list(first.iter("Dial"))
    action = dial.get("action") or ""
    assert action == f"{BASE}{PATH}/dialled?reference={reference}&leg=0"
    assert SON not in action and FINDER not in action
    missed = twiml(
        post(twilio, action.removeprefix(BASE), {"DialCallStatus": "no-answer", "From": FINDER})
    )
    assert dialled_numbers(missed) == [(VOICE, DAUGHTER)]
    [dial] = list(missed.iter("Dial"))
    answered = twiml(
        post(
            twilio,
            (dial.get("action") or "").removeprefix(BASE),
            {"DialCallStatus": "completed", "From": FINDER},
        )
    )
    assert dialled_numbers(answered) == [] and answered.find("Hangup") is not None
    calls = finder_calls(db)
    assert [(c["leg"], c["target"], c["status"]) for c in calls] == [
        (0, "contact", "dialling"),
        (0, "contact", "no-answer"),
        (1, "contact", "dialling"),
        (1, "contact", "completed"),
    ]
    for detail in calls:
        assert not any(phone in str(detail) for phone in (SON, DAUGHTER, FINDER, "9123", "6123"))


def test_after_hours_without_finder_alerts_the_office_is_rung_not_the_family(
    twilio: TestClient,  # noqa: F811
    called: Callable[..., str],
) -> None:
    reference = called(office_open=False, scopes=())
    form = {"From": FINDER, "To": VOICE, "Digits": reference}
    root = twiml(post(twilio, f"{PATH}/reference?attempt=1", form))
    assert dialled_numbers(root) == [(VOICE, OFFICE)]


def test_an_unknown_reference_gets_one_more_try_then_a_goodbye(
    twilio: TestClient,  # noqa: F811
    db: Session,
    called: Callable[..., str],
) -> None:
    reference = called(office_open=True)
    wrong = str((int(reference) + 1) % 10**8).zfill(8)
    form = {"From": FINDER, "To": VOICE, "Digits": wrong}
    again = twiml(post(twilio, f"{PATH}/reference?attempt=1", form))
    assert dialled_numbers(again) == []
    [gather] = list(again.iter("Gather"))
    assert gather.get("action") == f"{BASE}{PATH}/reference?attempt=2"
    last = twiml(post(twilio, f"{PATH}/reference?attempt=2", form))
    assert list(last.iter("Gather")) == [] and last.find("Hangup") is not None
    db.rollback()
    assert db.exec(select(Incident)).all() == []


def test_without_a_number_to_show_as_caller_id_nobody_is_rung(
    twilio: TestClient,  # noqa: F811
    db: Session,
    site: Site,
    called: Callable[..., str],
) -> None:
    reference = called(office_open=True)
    site.voice_number = None  # and the test settings have no Twilio from-number
    db.add(site)
    db.commit()
    form = {"From": FINDER, "To": VOICE, "Digits": reference}
    root = twiml(post(twilio, f"{PATH}/reference?attempt=1", form))
    assert dialled_numbers(root) == [] and root.find("Hangup") is not None


def test_a_site_gets_its_voice_number_and_office_hours_through_the_api(
    client: TestClient, site: Site, headers_for: Callable[..., dict[str, str]]
) -> None:
    admin = headers_for("admin")
    url = f"/api/v1/sites/{site.id}"
    saved = client.patch(
        url,
        headers=admin,
        json={"voice_number": "2300 1234", "office_opens": "09:00", "office_closes": "18:00"},
    )
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert body["voice_number"] == "+85223001234"
    assert (body["office_opens"], body["office_closes"]) == ("09:00:00", "18:00:00")
    half = client.patch(url, headers=admin, json={"office_opens": None})
    assert half.status_code == 422 and "go together" in half.text
    assert client.patch(url, headers=admin, json={"voice_number": "12"}).status_code == 422
