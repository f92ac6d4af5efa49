"""The family's answer link on a 360 x 740 phone (issue 15): open it, tap "I'm coming", see the
answered page; every target at least 44 px, nothing past the right edge, nothing fetched from
another origin."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlmodel import Session, select

from tests.conftest import SYSTEM, TEST_SECRET
from tests.e2e.conftest import Screenshot
from tests.e2e.test_guard_tap_targets import MEASURE
from welfare.incidents import answer_links
from welfare.incidents import service as incidents
from welfare.incidents.models import Incident, IncidentCreate, IncidentStatus
from welfare.residents.models import Contact, Resident


def _son_token(
    db: Session,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> tuple[uuid.UUID, str]:
    """Mr. Wang found; the token of his son's link (made here, or by the worker rendering the
    SMS first: the same link either way)."""
    resident = make_resident()
    make_consent(resident)
    son = make_contact(resident, name="Wang Lei", relationship="son", phone="9123 4567")
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(
            resident_id=resident.id,
            location="Building 1, 3/F stairwell by the meter box",
            client_request_id=uuid.uuid4().hex,
        ),
    )
    db.commit()
    token = answer_links.token_for(
        db, incident_id=opened.incident.id, contact_id=son.id, secret_key=TEST_SECRET
    )
    db.commit()
    assert token is not None
    return opened.incident.id, token


def _check_layout(page: Any) -> None:
    found = page.evaluate(MEASURE)
    assert found["small"] == [], found["small"]
    assert found["overflowing"] == [] and found["scroll"] <= 0, found


def test_the_son_opens_the_link_taps_coming_and_sees_it_answered(
    phone: Any,
    live_server: str,
    db: Session,
    reader: Callable[[Any], list[Any]],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
    screenshot: Screenshot,
) -> None:
    incident_id, token = _son_token(db, make_resident, make_consent, make_contact)
    elsewhere: list[str] = []
    phone.on(
        "request",
        lambda request: (
            None if request.url.startswith(live_server) else elsewhere.append(request.url)
        ),
    )

    phone.goto(f"/r/{token}?lang=en")
    phone.get_by_role("heading", name="The resident has been found").wait_for()
    _check_layout(phone)
    screenshot(phone, "answer-link-en")

    phone.goto(f"/r/{token}")  # the son's own language: Chinese
    phone.get_by_role("heading", name="居民已被找到").wait_for()
    _check_layout(phone)
    screenshot(phone, "answer-link-zh")

    phone.get_by_role("button", name="我会过来").click()
    phone.locator("[data-answered=coming]").wait_for()
    assert "工作人员已知道您会前来" in phone.locator("main").inner_text()
    assert phone.get_by_role("button", name="我会过来").count() == 0
    _check_layout(phone)
    screenshot(phone, "answer-link-zh-answered")

    (status,) = reader(select(Incident.status).where(Incident.id == incident_id))
    assert status is IncidentStatus.confirmed
    assert elsewhere == []
