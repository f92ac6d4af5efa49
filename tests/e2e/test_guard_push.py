"""A guard turns on alerts in Chromium, and a missing-resident alert arrives as a notification.

What runs for real: the guard app's button (permission asked on the tap, granted by the browser
context), the service worker's registration, the POST of the subscription to the server, the
escalation queueing a push instead of the SMS, the worker's pywebpush request (encrypted, VAPID
signed) to a local push-service stand-in over https, and the service worker's `push` handler
showing the notification with the resident's thumbnail fetched with the guard's session.

What is stood in: Chromium's own push service is not reachable offline (and Playwright's
contexts are incognito, where Chrome has no Push API), so `PushManager.subscribe` is replaced by
a script that answers with a subscription whose keys the test holds and whose endpoint is the
stand-in; and the stand-in's payload, decrypted with those keys as the phone would, is handed to
the service worker through CDP's `ServiceWorker.deliverPushMessage` (the browser's own
decryption and the push service's delivery to the phone are what is not exercised). Tapping the
notification is not exercised (no browser API clicks one).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from tests.conftest import SYSTEM
from tests.e2e.conftest import PHONE
from tests.e2e.test_guard_flow import portrait
from tests.notifications.fake_push_service import BrowserKeys, FakePushService, unb64url
from welfare.channels import ChannelKind
from welfare.db import utcnow
from welfare.incidents import service as incidents
from welfare.incidents.models import IncidentCreate, IncidentKind
from welfare.outbox.models import OutboxMessage, OutboxStatus
from welfare.push import service as push
from welfare.push.models import PushSubscription
from welfare.residents import service as residents
from welfare.residents.models import Resident
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.users.models import User

Reader = Callable[[Any], list[Any]]

# Chromium's PushManager, answered by the test: the subscription the browser would make, with
# the keys the test holds. It records the applicationServerKey the page passed.
STUB_PUSH_MANAGER = """
(() => {
  const subscription = %s;
  let current = null;
  const made = {
    endpoint: subscription.endpoint,
    expirationTime: null,
    toJSON() { return subscription; },
    unsubscribe() { current = null; return Promise.resolve(true); },
  };
  PushManager.prototype.subscribe = function (options) {
    window.pushSubscribeOptions = {
      userVisibleOnly: options.userVisibleOnly,
      key: Array.from(new Uint8Array(options.applicationServerKey)),
    };
    current = made;
    return Promise.resolve(made);
  };
  PushManager.prototype.getSubscription = function () { return Promise.resolve(current); };
})();
"""

SHOWN = """async () => {
  const registration = await navigator.serviceWorker.ready;
  return (await registration.getNotifications()).map((n) => ({
    title: n.title, body: n.body, image: n.image, icon: n.icon, tag: n.tag, data: n.data,
  }));
}"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The push service stand-in runs on 127.0.0.1, which no real deployment allows."""
    hosts = f"{settings.push_service_hosts},127.0.0.1"
    return settings.model_copy(update={"push_service_hosts": hosts})


@pytest.fixture
def push_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePushService]:
    service = FakePushService(tls_dir=tmp_path)
    assert service.ca_file is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(service.ca_file))  # the worker trusts it
    yield service
    service.close()


def _until(page: Any, check: Callable[[], Any], what: str, seconds: float = 10) -> Any:
    """Poll `check` until it gives something; the page's wait lets Playwright deliver the CDP
    events meanwhile (a plain sleep would hold them back)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        page.wait_for_timeout(100)
    raise AssertionError(f"waited {seconds} s for {what}")


def _deliver(context: Any, page: Any, origin: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Hand `data` to the service worker's push handler as the browser does when a push
    arrives (CDP), and return the notifications it then shows."""
    cdp = context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda event: registrations.extend(event["registrations"]),
    )
    cdp.send("ServiceWorker.enable")
    _until(page, lambda: registrations, "the service worker's registration")
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {
            "origin": origin,
            "registrationId": registrations[0]["registrationId"],
            "data": json.dumps(data),
        },
    )
    return _until(page, lambda: page.evaluate(SHOWN), "the notification")  # type: ignore[no-any-return]


def test_guard_turns_on_alerts_and_a_missing_alert_shows_as_a_notification_with_the_photo(
    browser: Any,
    live_server: str,
    db: Session,
    reader: Reader,
    settings: Settings,
    site: Site,
    make_user: Callable[..., User],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    sign_in: Callable[..., None],
    push_service: FakePushService,
) -> None:
    guard = make_user("guard", [site], phone="9345 1609")
    guard.on_duty_since = utcnow()
    db.add(guard)
    db.commit()
    keys = BrowserKeys()
    context = browser.new_context(base_url=live_server, **PHONE)
    context.set_default_timeout(10_000)
    context.add_init_script(
        STUB_PUSH_MANAGER % json.dumps(keys.subscription(push_service.endpoint("chromium")))
    )
    context.grant_permissions(["notifications"], origin=live_server)
    page = context.new_page()
    try:
        sign_in(page, guard)
        page.goto("/guard")
        page.get_by_role("button", name="Turn on alerts on this phone").wait_for()
        assert reader(select(PushSubscription)) == []  # nothing before the tap
        page.get_by_role("button", name="Turn on alerts on this phone").click()
        page.get_by_text("Alerts are on for this phone").wait_for()
        assert page.get_by_role("button", name="Turn off alerts on this phone").is_visible()
        [row] = reader(select(PushSubscription))
        assert row.user_id == guard.id and row.endpoint.startswith(push_service.base_url)
        assert row.p256dh == keys.p256dh and "Chrom" in (row.user_agent or "")
        options = page.evaluate("window.pushSubscribeOptions")
        public_key = push.vapid_keys(db, settings).public_key
        db.commit()
        assert options["userVisibleOnly"] is True
        assert bytes(options["key"]) == unb64url(public_key)

        # A resident goes missing: the guard's alert goes by push, not SMS.
        resident = make_resident()
        make_consent(resident)
        residents.set_photo(
            session=db, actor=SYSTEM, settings=settings, resident_id=resident.id, data=portrait()
        )
        opened = incidents.open_incident(
            session=db,
            actor=SYSTEM,
            data=IncidentCreate(
                kind=IncidentKind.missing, resident_id=resident.id, client_request_id="push-e2e"
            ),
        )
        db.commit()
        incident_id = opened.incident.id
        request = _until(page, lambda: push_service.requests, "the push at the push service")[0]
        payload = keys.decrypt(request.body)
        assert payload["url"] == f"/guard/alerts/{incident_id}"
        assert payload["image"] == f"/api/v1/lookup/{resident.id}/photo"
        sent = _until(
            page,
            lambda: reader(
                select(OutboxMessage).where(
                    OutboxMessage.incident_id == incident_id,
                    col(OutboxMessage.status) == OutboxStatus.sent,
                )
            ),
            "the push row sent",
        )
        assert [(m.kind, m.user_id) for m in sent] == [(ChannelKind.push, guard.id)]

        # The phone gets it: the service worker's push handler shows the notification.
        [shown] = _deliver(context, page, live_server, payload)
        assert shown["title"] == "Resident missing"
        assert shown["body"].startswith(site.name) and resident.full_name not in shown["body"]
        assert shown["data"] == {"url": f"/guard/alerts/{incident_id}"}
        assert shown["tag"] == str(incident_id)
        assert shown["image"].startswith("data:image/jpeg;base64,")  # fetched signed in
        assert shown["icon"].endswith("/static/icons/icon-192.png")

        # Turned off: the server forgets the phone, alerts come by SMS again.
        page.get_by_role("button", name="Turn off alerts on this phone").click()
        page.get_by_text("Alerts for this phone are off").wait_for()
        assert reader(select(PushSubscription)) == []
    finally:
        context.close()


def test_a_phone_signed_out_shows_the_notification_with_the_icon_instead_of_the_photo(
    browser: Any, live_server: str, site: Site, make_user: Callable[..., User], sign_in: Any
) -> None:
    context = browser.new_context(base_url=live_server, **PHONE)
    context.set_default_timeout(10_000)
    context.grant_permissions(["notifications"], origin=live_server)
    page = context.new_page()
    try:
        sign_in(page, make_user("guard", [site]))
        page.goto("/guard")
        page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        context.clear_cookies()  # the photo is behind sign-in: the fetch is refused
        alert = str(uuid.uuid4())
        data = {
            "title": "Resident missing",
            "body": "Harbour View: a resident has been reported missing.",
            "url": f"/guard/alerts/{alert}",
            "image": f"/api/v1/lookup/{uuid.uuid4()}/photo",
            "tag": alert,
        }
        [shown] = _deliver(context, page, live_server, data)
        assert shown["image"] == "" and shown["icon"].endswith("/static/icons/icon-192.png")
    finally:
        context.close()
