"""The brief's case, end to end through the API, the real Twilio SDK against the fake, and
signed webhooks, with a controllable clock for the escalation:

the guard finds Mr. Wang by unit and reports him found; the son gets an SMS and a call in his
language and does not answer; two minutes later the daughter is called and presses 1; nothing
else goes out except the "coming" notice; the guard resolves it as handed over; the timeline
shows every step."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from api.app import create_app
from notifications.dispatcher import Dispatcher
from notifications.twilio.client import TwilioChannel
from tests.api.test_webhooks import BASE, post
from tests.api.test_webhooks import TOKEN as AUTH_TOKEN
from tests.notifications.fake_twilio import FakeTwilio
from welfare.db import make_engine, make_sessionmaker
from welfare.incidents import service as incidents
from welfare.incidents.models import Incident
from welfare.outbox.models import OutboxMessage
from welfare.residents.models import Contact, Resident
from welfare.settings import Settings
from welfare.sites.models import Site

ACCOUNT = "AC" + "7" * 32
SON, DAUGHTER = "+85291234567", "+85261234567"


def test_mr_wang_is_found_and_his_daughter_comes(
    settings: Settings,
    db: Session,
    site: Site,
    make_household: Callable[..., Any],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
    make_user: Callable[..., Any],
) -> None:
    wang = make_resident(
        household=make_household("1", "1609"),
        full_name="Wang Jianguo",
        preferred_name="Mr. Wang",
        languages=["zh-CN"],
        approach="Talk about his grandson.",
    )
    make_consent(wang)
    make_contact(wang, name="Wang Lei", relationship="son", phone="9123 4567", language="zh-CN")
    make_contact(
        wang, name="Wang Mei", relationship="daughter", phone="6123 4567", language="zh-CN"
    )
    guard_user = make_user("guard", [site])
    live = settings.model_copy(
        update={
            "twilio_account_sid": ACCOUNT,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_from_number": "+15005550006",
        }
    )
    fake = FakeTwilio(ACCOUNT, AUTH_TOKEN)
    engine = make_engine(settings.database_url)
    dispatcher = Dispatcher(make_sessionmaker(engine), TwilioChannel(live, fake), live)
    app = create_app(live)

    def requests_to(number: str) -> list[str]:
        return [
            resource
            for resource in ("Messages", "Calls")
            for r in fake.sent(resource)
            if r.form.get("To") == number
        ]

    with TestClient(app, base_url=BASE) as client:
        token = client.post(
            "/api/v1/auth/token",
            data={"username": guard_user.username, "password": "correct horse battery"},
        )
        guard = {"Authorization": f"Bearer {token.json()['access_token']}"}
        client.cookies.clear()

        # The guard finds him by unit and sees the minimal card.
        cards = client.get("/api/v1/lookup", headers=guard, params={"q": "1-1609"}).json()
        card = cards["items"][0]
        assert card["preferred_name"] == "Mr. Wang" and card["unit"] == "1-1609"
        assert "medical_notes" not in card

        incident_id = client.post(
            "/api/v1/incidents",
            headers=guard,
            json={
                "resident_id": card["resident_id"],
                "location": "Building 1, 3/F meter box",
                "condition": "well",
                "client_request_id": uuid.uuid4().hex,
            },
        ).json()["id"]

        # At once: SMS and call to the son, in Chinese.
        dispatcher.run_once()
        assert sorted(requests_to(SON)) == ["Calls", "Messages"]
        sms = next(r for r in fake.sent("Messages") if r.form.get("To") == SON)
        assert "编号" in sms.form["Body"] and "Wang" not in sms.form["Body"]
        son_call = next(r for r in fake.sent("Calls") if r.form.get("To") == SON)
        assert 'language="cmn-CN"' in son_call.form["Twiml"]

        # The son does not answer.
        db.expire_all()
        son_call_row = db.exec(
            select(OutboxMessage).where(
                OutboxMessage.to_phone == SON, OutboxMessage.kind == "voice"
            )
        ).one()
        db.rollback()
        path = f"/webhooks/twilio/call-status?message_id={son_call_row.id}"
        assert (
            post(
                client, path, {"CallSid": son_call_row.provider_id or "", "CallStatus": "no-answer"}
            ).status_code
            == 200
        )

        # Two minutes later the daughter is called.
        incident = db.get(Incident, uuid.UUID(incident_id))
        assert incident is not None
        start = dt.datetime.fromisoformat(incident.escalation["started_at"])
        db.rollback()
        with make_sessionmaker(engine)() as session:
            current = session.get(Incident, uuid.UUID(incident_id))
            incidents.advance(
                session=session,
                incident=current,  # type: ignore[arg-type]
                now=start + dt.timedelta(seconds=120),
            )
            session.commit()
        dispatcher.run_once(now=start + dt.timedelta(seconds=120))
        assert sorted(requests_to(DAUGHTER)) == ["Calls", "Messages"]

        # She presses 1.
        db.expire_all()
        daughter_call = db.exec(
            select(OutboxMessage).where(
                OutboxMessage.to_phone == DAUGHTER, OutboxMessage.kind == "voice"
            )
        ).one()
        db.rollback()
        gather = post(
            client,
            f"/webhooks/twilio/gather?message_id={daughter_call.id}&attempt=1",
            {"CallSid": daughter_call.provider_id or "", "Digits": "1"},
        )
        assert gather.status_code == 200 and "<Hangup" in gather.text

        # Nothing more goes out except the son's "coming" notice, however long we wait.
        dispatcher.run_once()
        with make_sessionmaker(engine)() as session:
            current = session.get(Incident, uuid.UUID(incident_id))
            incidents.advance(
                session=session,
                incident=current,  # type: ignore[arg-type]
                now=start + dt.timedelta(hours=2),
            )
            session.commit()
        dispatcher.run_once()
        assert sorted(requests_to(SON)) == ["Calls", "Messages", "Messages"]
        assert sorted(requests_to(DAUGHTER)) == ["Calls", "Messages"]
        notice = [r for r in fake.sent("Messages") if r.form.get("To") == SON][-1]
        assert "女儿" in notice.form["Body"]

        # The guard sees it confirmed and hands him over.
        seen = client.get(f"/api/v1/incidents/{incident_id}", headers=guard).json()
        assert seen["status"] == "confirmed" and seen["confirmed_via"] == "keypress"
        done = client.post(
            f"/api/v1/incidents/{incident_id}/resolve",
            headers=guard,
            json={"outcome": "handed_over", "handed_to": "daughter"},
        ).json()
    app.state.engine.dispose()
    engine.dispose()

    assert done["status"] == "resolved"
    types = [e["type"] for e in done["timeline"]]
    for step in (
        "reported",
        "escalation_step",
        "queued",
        "sent",
        "no_answer",
        "key_pressed",
        "confirmed",
        "handed_over",
        "resolved",
    ):
        assert step in types, (step, types)
    assert types.index("no_answer") < types.index("key_pressed") < types.index("confirmed")
    assert "Wang" not in str([e["detail"] for e in done["timeline"]])
