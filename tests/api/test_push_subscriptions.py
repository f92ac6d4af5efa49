"""`/api/v1/me/push-subscriptions`: a signed-in user's phones that get alerts by push. The
endpoint must be https and the keys what a browser gives; one user never sees or removes
another's; the same endpoint again renews its row (and moves it, on a shared phone); and the
guard's home page offers "Turn on alerts" with the service's VAPID public key."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from tests.conftest import SYSTEM
from tests.notifications.fake_push_service import BrowserKeys
from welfare.audit.models import AuditEntry
from welfare.incidents import service as incidents
from welfare.incidents.models import IncidentCreate
from welfare.push import service as push
from welfare.push.models import PushSubscription
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.users.models import User

URL = "/api/v1/me/push-subscriptions"
ENDPOINT = "https://fcm.googleapis.com/fcm/send/abc123"


def _body(endpoint: str = ENDPOINT, keys: BrowserKeys | None = None) -> dict[str, Any]:
    return (keys or BrowserKeys()).subscription(endpoint)


def test_a_guard_subscribes_a_phone_and_sees_it_without_its_endpoint_or_keys(
    client: TestClient, db: Session, headers_for: Callable[..., dict[str, str]]
) -> None:
    guard = headers_for("guard")
    created = client.post(
        URL, headers={**guard, "User-Agent": "Mozilla/5.0 (Android)"}, json=_body()
    )
    assert created.status_code == 201, created.text
    listed = client.get(URL, headers=guard).json()
    assert listed == [created.json()]
    assert listed[0]["push_service"] == "fcm.googleapis.com"
    assert listed[0]["user_agent"] == "Mozilla/5.0 (Android)"
    assert "abc123" not in str(listed) and "keys" not in listed[0]
    entries = db.exec(select(AuditEntry).where(AuditEntry.action == "push.subscribe")).all()
    assert len(entries) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"endpoint": "http://push.example/x"}, "endpoint"),
        ({"endpoint": "javascript:alert(1)"}, "endpoint"),
        ({"endpoint": "https://push.example/" + "x" * 1000}, "endpoint"),
        ({"keys": {"p256dh": "AAAA", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}}, "p256dh"),
        ({"keys": {"p256dh": BrowserKeys().p256dh, "auth": "short"}}, "auth"),
        ({"keys": {"p256dh": "x" * 200, "auth": "AAAAAAAAAAAAAAAAAAAAAA"}}, "p256dh"),
        ({"keys": {"p256dh": BrowserKeys().p256dh}}, "auth"),
    ],
)
def test_a_bad_subscription_is_refused_in_words_that_say_what_to_send(
    client: TestClient,
    headers_for: Callable[..., dict[str, str]],
    change: dict[str, Any],
    field: str,
) -> None:
    response = client.post(URL, headers=headers_for("guard"), json=_body() | change)
    assert response.status_code == 422, response.text
    assert field in response.text
    assert client.get(URL, headers=headers_for("guard")).json() == []


def test_one_users_subscriptions_are_invisible_to_another(
    client: TestClient,
    db: Session,
    headers_for: Callable[..., dict[str, str]],
) -> None:
    owner, other = headers_for("guard"), headers_for("manager")
    created = client.post(URL, headers=owner, json=_body()).json()
    assert client.get(URL, headers=other).json() == []
    assert client.delete(f"{URL}/{created['id']}", headers=other).status_code == 404
    assert [s["id"] for s in client.get(URL, headers=owner).json()] == [created["id"]]
    assert client.delete(f"{URL}/{created['id']}", headers=owner).status_code == 204
    assert client.get(URL, headers=owner).json() == []
    assert client.delete(f"{URL}/{created['id']}", headers=owner).status_code == 404


def test_the_same_phone_subscribing_again_renews_its_row_and_a_shared_phone_follows_its_user(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    login: Callable[..., dict[str, str]],
) -> None:
    first, second = make_user("guard", [site]), make_user("guard", [site])
    keys = BrowserKeys()
    made = client.post(URL, headers=login(first), json=_body(keys=keys)).json()
    renewed = client.post(URL, headers=login(first), json=_body(keys=keys))  # a page load
    assert renewed.status_code == 201 and renewed.json()["id"] == made["id"]
    new_keys = BrowserKeys()
    again = client.post(URL, headers=login(first), json=_body(keys=new_keys))
    assert again.status_code == 201 and again.json()["id"] == made["id"]
    moved = client.post(URL, headers=login(second), json=_body(keys=new_keys)).json()
    assert moved["id"] == made["id"]
    db.expire_all()
    rows = db.exec(select(PushSubscription)).all()
    assert [(r.user_id, r.p256dh) for r in rows] == [(second.id, new_keys.p256dh)]
    assert client.get(URL, headers=login(first)).json() == []
    assert push.target_for(db, first.id) is None
    audited = db.exec(
        select(AuditEntry).where(AuditEntry.action == "push.subscribe").order_by(col(AuditEntry.id))
    ).all()
    assert [e.detail.get("from_user_id") for e in audited] == [None, None, str(first.id)]


def test_a_user_keeps_at_most_a_few_phones_the_oldest_goes(
    client: TestClient, db: Session, headers_for: Callable[..., dict[str, str]]
) -> None:
    guard = headers_for("guard")
    for n in range(push.MAX_PER_USER + 2):
        assert client.post(URL, headers=guard, json=_body(f"{ENDPOINT}/{n}")).status_code == 201
    assert len(client.get(URL, headers=guard).json()) == push.MAX_PER_USER
    db.expire_all()
    kept = {r.endpoint for r in db.exec(select(PushSubscription)).all()}
    assert f"{ENDPOINT}/0" not in kept and f"{ENDPOINT}/{push.MAX_PER_USER + 1}" in kept


def test_the_guard_home_offers_alerts_with_the_services_public_key(
    client: TestClient,
    db: Session,
    settings: Settings,
    site: Site,
    make_user: Callable[..., User],
    page_login: Callable[..., str],
) -> None:
    page_login(make_user("guard", [site]))
    page = client.get("/guard")
    assert page.status_code == 200
    key = push.vapid_keys(db, settings).public_key
    assert f'data-vapid-key="{key}"' in page.text
    assert "Turn on alerts on this phone" in page.text
    worker = client.get("/sw.js").text
    assert 'addEventListener("push"' in worker and 'addEventListener("notificationclick"' in worker


def test_a_family_contact_cannot_be_given_push_nor_sent_one_by_staff(
    client: TestClient,
    db: Session,
    headers_for: Callable[..., dict[str, str]],
    make_resident: Callable[..., Any],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Any],
) -> None:
    staff = headers_for("staff")
    resident = make_resident()
    make_consent(resident)
    url = f"/api/v1/residents/{resident.id}/contacts"
    body = {"name": "Wang Lei", "relationship": "son", "phone": "9123 4567"}
    refused = client.post(url, json=body | {"channels": ["sms", "push"]}, headers=staff)
    assert refused.status_code == 422 and "push is for staff phones only" in refused.text
    contact = make_contact(resident)
    patched = client.patch(f"{url}/{contact.id}", json={"channels": ["push"]}, headers=staff)
    assert patched.status_code == 422 and "push is for staff phones only" in patched.text
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(resident_id=resident.id, client_request_id=uuid.uuid4().hex),
    )
    db.commit()
    sent = client.post(
        f"/api/v1/incidents/{opened.incident.id}/contacts/{contact.id}/notify",
        json={"channel": "push"},
        headers=staff,
    )
    assert sent.status_code == 422 and "a contact gets an SMS, a call or WhatsApp" in sent.text


def test_an_endpoint_off_the_browser_push_services_is_refused(
    client: TestClient, headers_for: Callable[..., dict[str, str]]
) -> None:
    """The worker posts to the endpoint: never to an address of the user's choosing."""
    headers = headers_for("guard")
    for endpoint in (
        "https://127.0.0.1:8000/admin",
        "https://internal.example/push",
        "https://fcm.googleapis.com.evil.example/x",
    ):
        answer = client.post(URL, json=_body(endpoint), headers=headers)
        assert answer.status_code == 422, endpoint
        assert "browser push service" in answer.text
    ok = _body("https://web.push.apple.com/QGuard1")
    assert client.post(URL, json=ok, headers=headers).status_code == 201
