# Fixtures imported from the domain tests are parameters here, which ruff reads as redefinitions.
# ruff: noqa: F811
"""Testing a family contact (issue 15 item 5) through the API, the console, the public `/v/`
page, the test call's keypress webhook and the consent review reminder."""

from __future__ import annotations

import datetime as dt
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from notifications.dispatcher import Dispatcher
from notifications.messages import sms_segments
from tests.api.test_webhooks import post, signed_settings, twilio  # noqa: F401  (fixtures)
from tests.notifications.fake_channel import FakeChannel
from tests.welfare.test_contact_checks import (  # noqa: F401  (fixtures)
    fresh,
    resident,
    son,
)
from welfare.audit.models import AuditEntry
from welfare.authz import Role
from welfare.consent.models import Consent
from welfare.outbox.models import OutboxMessage
from welfare.residents.models import Contact, Resident, VerifiedVia
from welfare.sites.models import Site
from welfare.users.models import User
from welfare.visits import scheduler

HTML = {"accept": "text/html"}
SON = "+85291234567"
LINK = re.compile(r"https://welfare\.test/v/([A-Za-z0-9_-]+)")
PERSONAL = ["Wang", "Jianguo", "Lei", "Alzheimer", "grandson"]


def contact_test_url(resident: Resident, contact: Contact) -> str:
    return f"/api/v1/residents/{resident.id}/contacts/{contact.id}/test"


def send_test_sms(
    client: TestClient,
    headers: dict[str, str],
    resident: Resident,
    son: Contact,
    dispatcher: Dispatcher,
) -> None:
    """Staff ask for a test SMS through the API, and the dispatcher sends it."""
    queued = client.post(contact_test_url(resident, son), json={"channel": "sms"}, headers=headers)
    assert queued.status_code == 202, queued.text
    dispatcher.run_once()


def sent_link(channel: FakeChannel) -> str:
    bodies = [content for kind, to, content in channel.sent if kind == "sms" and to == SON]
    found = LINK.search(bodies[-1])
    assert found, bodies
    return found.group(1)


# --- the API -----------------------------------------------------------------------------------


def test_the_api_queues_a_test_sms_once_per_request_id_and_the_link_verifies_the_contact(
    client: TestClient,
    db: Session,
    headers_for: Callable[..., dict[str, str]],
    resident: Resident,
    son: Contact,
    dispatcher: Dispatcher,
    channel: FakeChannel,
) -> None:
    headers = headers_for("staff")
    body = {"channel": "sms", "request_id": "api-test-0001"}
    first = client.post(contact_test_url(resident, son), json=body, headers=headers)
    assert first.status_code == 202, first.text
    answer = first.json()
    assert answer["contact_id"] == str(son.id) and answer["channel"] == "sms"
    assert answer["status"] == "pending"
    again = client.post(contact_test_url(resident, son), json=body, headers=headers)
    assert again.status_code == 202 and again.json()["message_id"] == answer["message_id"]
    contact = client.get(f"/api/v1/residents/{resident.id}/contacts/{son.id}", headers=headers)
    assert contact.json()["verified_at"] is None
    dispatcher.run_once()
    assert len(channel.sent) == 1
    page = client.get(f"/v/{sent_link(channel)}", headers=HTML)
    assert page.status_code == 200
    contact = client.get(f"/api/v1/residents/{resident.id}/contacts/{son.id}", headers=headers)
    assert contact.json()["verified_at"] is not None
    assert contact.json()["verified_via"] == "sms_link"


def test_the_api_refuses_what_the_contact_rule_refuses_in_words(
    client: TestClient,
    db: Session,
    headers_for: Callable[..., dict[str, str]],
    resident: Resident,
    make_contact: Callable[..., Contact],
) -> None:
    headers = headers_for("staff")
    landline = make_contact(resident, phone="2345 6780")
    refused = client.post(
        contact_test_url(resident, landline), json={"channel": "sms"}, headers=headers
    )
    assert refused.status_code == 422 and "landline" in refused.text
    unwilling = make_contact(resident, phone="6123 4567", consent_to_contact=False)
    refused = client.post(
        contact_test_url(resident, unwilling), json={"channel": "voice"}, headers=headers
    )
    assert refused.status_code == 409 and "not agreed" in refused.json()["detail"]
    bad = client.post(
        contact_test_url(resident, landline), json={"channel": "fax"}, headers=headers
    )
    assert bad.status_code == 422
    other = f"/api/v1/residents/{uuid.uuid4()}/contacts/{landline.id}/test"
    assert client.post(other, json={"channel": "voice"}, headers=headers).status_code == 404
    assert db.exec(select(OutboxMessage)).all() == []


def test_the_unverified_list_names_the_sites_contacts_not_verified(
    client: TestClient,
    db: Session,
    headers_for: Callable[..., dict[str, str]],
    site: Site,
    resident: Resident,
    son: Contact,
    make_contact: Callable[..., Contact],
) -> None:
    daughter = make_contact(resident, name="Wang Mei", relationship="daughter", phone="6123 4567")
    stored = fresh(db, daughter.id)
    stored.verified_at, stored.verified_via = dt.datetime.now(dt.UTC), VerifiedVia.keypress
    db.add(stored)
    db.commit()
    headers = headers_for("staff")
    listed = client.get(
        "/api/v1/contacts/unverified", params={"site_id": str(site.id)}, headers=headers
    )
    assert listed.status_code == 200
    answer = listed.json()
    assert answer["total"] == 1 and len(answer["items"]) == 1
    (item,) = answer["items"]
    assert item["contact_id"] == str(son.id) and item["verified_at"] is None
    assert item["resident_name"] == "Wang Jianguo"
    missing = client.get("/api/v1/contacts/unverified", headers=headers)
    assert missing.status_code == 422
    unknown = client.get(
        "/api/v1/contacts/unverified", params={"site_id": str(uuid.uuid4())}, headers=headers
    )
    assert unknown.status_code == 404


# --- the public page ---------------------------------------------------------------------------


def test_the_page_thanks_in_the_contacts_language_with_nothing_personal_and_twice_is_fine(
    client: TestClient,
    db: Session,
    site: Site,
    resident: Resident,
    son: Contact,
    headers_for: Callable[..., dict[str, str]],
    dispatcher: Dispatcher,
    channel: FakeChannel,
) -> None:
    send_test_sms(client, headers_for("staff"), resident, son, dispatcher)
    (body,) = [content for _, _, content in channel.sent]
    assert sms_segments(body) <= 2
    token = sent_link(channel)
    client.cookies.clear()
    page = client.get(f"/v/{token}", headers=HTML)
    assert page.status_code == 200
    assert '<html lang="zh-CN">' in page.text and "Harbour View Gardens" in page.text
    for word in PERSONAL:
        assert word not in page.text, word
    assert page.headers["referrer-policy"] == "no-referrer"
    english = client.get(f"/v/{token}?lang=en", headers=HTML)
    assert english.status_code == 200
    assert "Thank you: this number is confirmed for Harbour View Gardens" in english.text
    korean = client.get(f"/v/{token}?lang=ko-KR", headers=HTML)
    assert "Harbour View Gardens" in korean.text and '<html lang="ko-KR">' in korean.text
    verified = db.exec(select(AuditEntry).where(AuditEntry.action == "contact.verified")).all()
    assert len(verified) == 1


def test_unknown_malformed_and_expired_links_get_the_same_404(
    client: TestClient,
    db: Session,
    resident: Resident,
    son: Contact,
    headers_for: Callable[..., dict[str, str]],
    dispatcher: Dispatcher,
    channel: FakeChannel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    send_test_sms(client, headers_for("staff"), resident, son, dispatcher)
    token = sent_link(channel)
    client.cookies.clear()
    unknown = client.get("/v/AAAAAAAAAAAAAAAA", headers=HTML)
    malformed = client.get("/v/nope", headers=HTML)
    from welfare import contact_checks

    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=8)
    monkeypatch.setattr(contact_checks, "utcnow", lambda: later)
    expired = client.get(f"/v/{token}", headers=HTML)
    pages = [unknown, malformed, expired]
    assert [p.status_code for p in pages] == [404, 404, 404]
    assert unknown.text == malformed.text == expired.text
    assert "This link is not valid" in unknown.text
    assert fresh(db, son.id).verified_at is None


def test_the_page_is_rate_limited_like_the_answer_page(client: TestClient) -> None:
    statuses = [client.get("/v/AAAAAAAAAAAAAAAA", headers=HTML).status_code for _ in range(35)]
    assert 429 in statuses and statuses[0] == 404


# --- the console -------------------------------------------------------------------------------


def test_the_console_sends_test_sms_and_calls_and_shows_who_is_verified(
    client: TestClient,
    db: Session,
    site: Site,
    resident: Resident,
    son: Contact,
    make_user: Callable[..., User],
    page_login: Callable[..., str],
    dispatcher: Dispatcher,
    channel: FakeChannel,
) -> None:
    csrf = page_login(make_user(Role.staff, [site]))
    page = client.get(f"/console/residents/{resident.id}", headers=HTML)
    assert "Send test SMS" in page.text and "Test call" in page.text
    assert 'data-verified="no"' in page.text and "Never verified" in page.text
    request_id = re.search(r'name="request_id" value="([^"]+-s1)"', page.text)
    assert request_id
    url = f"/console/residents/{resident.id}/contacts/{son.id}/test"
    form = {"csrf_token": csrf, "channel": "sms", "request_id": request_id.group(1)}
    sent = client.post(url, data=form, follow_redirects=False)
    assert sent.status_code == 303 and "done=test_sms" in sent.headers["location"]
    assert client.post(url, data=form, follow_redirects=False).status_code == 303
    assert len(db.exec(select(OutboxMessage)).all()) == 1
    forged = client.post(url, data=form | {"csrf_token": "forged"}, follow_redirects=False)
    assert forged.status_code == 403
    dispatcher.run_once()
    assert client.get(f"/v/{sent_link(channel)}", headers=HTML).status_code == 200
    page = client.get(f"/console/residents/{resident.id}", headers=HTML)
    assert 'data-verified="yes"' in page.text and "Verified on" in page.text
    call = client.post(
        url,
        data={"csrf_token": csrf, "channel": "voice", "request_id": "console-call-1"},
        follow_redirects=False,
    )
    assert call.status_code == 303 and "done=test_call" in call.headers["location"]


def test_the_console_says_why_a_test_is_refused(
    client: TestClient,
    db: Session,
    site: Site,
    resident: Resident,
    make_contact: Callable[..., Contact],
    make_user: Callable[..., User],
    page_login: Callable[..., str],
) -> None:
    landline = make_contact(resident, phone="2345 6780")
    csrf = page_login(make_user(Role.staff, [site]))
    refused = client.post(
        f"/console/residents/{resident.id}/contacts/{landline.id}/test",
        data={"csrf_token": csrf, "channel": "sms", "request_id": "console-sms-1"},
        follow_redirects=False,
    )
    assert refused.status_code == 422
    assert "This number is a landline: call it instead." in refused.text


def test_the_unverified_page_names_them_in_the_users_language_and_is_in_the_menu(
    client: TestClient,
    site: Site,
    resident: Resident,
    son: Contact,
    make_user: Callable[..., User],
    page_login: Callable[..., str],
) -> None:
    page_login(make_user(Role.staff, [site]))
    page = client.get("/console/contacts/unverified", headers=HTML)
    assert page.status_code == 200
    assert 'href="/console/contacts/unverified"' in page.text
    assert "Wang Lei" in page.text and "Wang Jianguo" in page.text
    assert "1 contacts not verified at Harbour View Gardens" in page.text
    chinese = client.get("/console/contacts/unverified?lang=zh-CN", headers=HTML)
    assert chinese.status_code == 200
    unknown = client.get(f"/console/contacts/unverified?site_id={uuid.uuid4()}", headers=HTML)
    assert unknown.status_code == 404


# --- the test call's key -----------------------------------------------------------------------


def test_key_1_on_the_test_call_verifies_the_contact_once_and_says_thanks(
    twilio: TestClient,
    db: Session,
    site: Site,
    resident: Resident,
    son: Contact,
    headers_for: Callable[..., dict[str, str]],
    dispatcher: Dispatcher,
    channel: FakeChannel,
) -> None:
    stored = fresh(db, son.id)
    stored.language = "en"
    db.add(stored)
    db.commit()
    queued = twilio.post(
        contact_test_url(resident, son), json={"channel": "voice"}, headers=headers_for("staff")
    )
    assert queued.status_code == 202
    dispatcher.run_once()
    db.rollback()
    row = db.get(OutboxMessage, uuid.UUID(queued.json()["message_id"]))
    assert row is not None and row.provider_id
    path = f"/webhooks/twilio/gather?message_id={row.id}&attempt=1"
    wrong = post(twilio, path, {"CallSid": row.provider_id, "Digits": "7"})
    assert wrong.status_code == 200 and fresh(db, son.id).verified_at is None
    assert "Press 1 to confirm this number." in wrong.text
    form = {"CallSid": row.provider_id, "Digits": "1"}
    pressed = post(twilio, path, form)
    assert pressed.status_code == 200
    said = " ".join(s.text or "" for s in ET.fromstring(pressed.text).iter("Say"))
    assert "this number is confirmed" in said and "<Hangup" in pressed.text
    verified = fresh(db, son.id)
    assert verified.verified_via is VerifiedVia.keypress and verified.verified_at is not None
    db.rollback()
    assert post(twilio, path, form).status_code == 200  # Twilio retries: taken once
    db.rollback()
    entries = db.exec(select(AuditEntry).where(AuditEntry.action == "contact.verified")).all()
    assert len(entries) == 1
    unsigned = twilio.post(path, data=form)
    assert unsigned.status_code == 403


# --- the consent review reminder ---------------------------------------------------------------


@pytest.mark.parametrize("verified", [False, True])
def test_the_consent_reminder_counts_unverified_contacts_and_links_to_their_list(
    db: Session,
    site: Site,
    resident: Resident,
    son: Contact,
    make_user: Callable[..., User],
    dispatcher: Dispatcher,
    channel: FakeChannel,
    writers: sessionmaker[Session],
    verified: bool,
) -> None:
    make_user(Role.staff, [site], phone="+85298765432")
    if verified:
        stored = fresh(db, son.id)
        stored.verified_at, stored.verified_via = dt.datetime.now(dt.UTC), VerifiedVia.sms_link
        db.add(stored)
        db.commit()
    consent = db.exec(select(Consent).where(Consent.resident_id == resident.id)).one()
    now = consent.review_due - dt.timedelta(days=20)
    db.rollback()
    with writers() as session:
        assert scheduler.consent_reviews(session, now) == 1
        session.commit()
    dispatcher.run_once(now=now)
    (body,) = [content for kind, _, content in channel.sent if kind == "sms"]
    assert sms_segments(body) <= 2
    for word in PERSONAL:
        assert word not in body
    if verified:
        assert "not verified" not in body
        assert body.endswith(f"/api/v1/residents/{resident.id}/consents")
    else:
        assert "1 contacts not verified" in body
        assert body.endswith("https://welfare.test/console/contacts/unverified")
