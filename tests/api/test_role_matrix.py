"""Every route, every role: the expected status, from one table.

A route missing from the table fails `test_every_route_is_in_the_matrix`, so a new endpoint cannot
ship without a decision about who may call it. Columns: no token, guard, staff, manager, admin
(all members of the site), and `other`: staff of a different site.
"""

from __future__ import annotations

import datetime as dt
import io
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import Session, select

from tests.conftest import PASSWORD, SYSTEM
from tests.notifications.fake_push_service import BrowserKeys
from welfare import consents
from welfare.authz import Actor, Role
from welfare.consent.models import ConsentCreate
from welfare.db import utcnow
from welfare.heartbeat import service as heartbeats
from welfare.identity import service as identity
from welfare.identity.models import IdentityProviderCreate
from welfare.incidents import photos as incident_photos
from welfare.incidents import policies, responders
from welfare.incidents import service as incidents
from welfare.incidents.models import IncidentCreate
from welfare.incidents.policies import PolicyBody
from welfare.push.models import PushSubscription
from welfare.residents import service as residents
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.tags import service as tags
from welfare.users.models import AuthSession, DevicePin, Passkey, SharedDevice, User
from welfare.users.service import hash_token
from welfare.visits import service as visits
from welfare.visits.models import ScheduleCreate, Visit, VisitSchedule

COLUMNS = ("none", "guard", "staff", "manager", "admin", "other")


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(out, format="JPEG")
    return out.getvalue()


@dataclass
class World:
    """Fresh objects per request, so destructive calls never disturb each other."""

    db: Session
    settings: Settings
    site: Site
    make_household: Callable[..., Any]
    make_resident: Callable[..., Any]
    make_contact: Callable[..., Any]
    make_user: Callable[..., User]
    make_consent: Callable[..., Any]
    guard: User | None = None  # the matrix's guard, for incidents that guard reported or claimed

    def heartbeat(self) -> dict[str, Any]:
        """A worker alive just now (readiness wants one)."""
        heartbeats.beat(self.db, heartbeats.WorkerIdentity())
        self.db.commit()
        return {}

    def session_of(self, user: User) -> uuid.UUID:
        token = _open_session(self.db, user)
        found = self.db.exec(
            select(AuthSession.id).where(AuthSession.token_hash == hash_token(token))
        ).one()
        self.db.commit()  # end the read: on SQLite it holds the write lock
        return found

    def user_and_session(self) -> dict[str, Any]:
        user = self.make_user("guard", [self.site])
        return {"user_id": user.id, "session_id": self.session_of(user)}

    def pin_of(self, user: User) -> uuid.UUID:
        """A quick-sign-in PIN of `user` on a shared phone of their own."""
        device = SharedDevice(token_hash=hash_token(secrets.token_urlsafe(16)))
        self.db.add(device)
        self.db.flush()
        pin = DevicePin(device_id=device.id, user_id=user.id, pin_hash="not a real hash")
        self.db.add(pin)
        self.db.commit()
        return pin.id

    def push_subscription_of_someone_else(self) -> uuid.UUID:
        user = self.make_user("guard", [self.site])
        body = BrowserKeys().subscription(f"https://push.example/{_unique()}")
        row = PushSubscription(user_id=user.id, endpoint=body["endpoint"], **body["keys"])
        self.db.add(row)
        self.db.commit()
        return row.id

    def identity_provider(self) -> dict[str, Any]:
        provider = identity.create_provider(
            session=self.db,
            settings=self.settings,
            actor=SYSTEM,
            data=IdentityProviderCreate(**_provider_body(self)),
        )
        self.db.commit()
        return {"provider_id": provider.id}

    def user_and_passkey(self) -> dict[str, Any]:
        """A guard of the site with a passkey (a row as registration leaves it)."""
        user = self.make_user("guard", [self.site])
        passkey = Passkey(
            user_id=user.id,
            credential_id=secrets.token_urlsafe(32),
            public_key=b"not a real key",
            aaguid="00000000-0000-0000-0000-000000000000",
            name="Phone",
        )
        self.db.add(passkey)
        self.db.commit()
        return {"user_id": user.id, "passkey_id": passkey.id}

    def household(self) -> Any:
        return self.make_household(unit=f"u{uuid.uuid4().hex[:8]}")

    def resident(self, photo: bool = False, consent: bool = True) -> Any:
        resident = self.make_resident(household=self.household())
        if consent:
            self.make_consent(resident)
        if photo:
            residents.set_photo(
                session=self.db,
                actor=SYSTEM,
                settings=self.settings,
                resident_id=resident.id,
                data=_jpeg(),
            )
            self.db.commit()
        return resident


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    expected: tuple[int, int, int, int, int, int]  # in COLUMNS order
    params: Callable[[World], dict[str, Any]] = lambda w: {}
    json: Callable[[World], Any] | None = None
    form: dict[str, str] | None = None
    files: bool = False
    query: Callable[[World], dict[str, Any]] | None = None  # the query string


def _unique() -> str:
    return uuid.uuid4().hex[:8]


def _provider_body(w: World) -> dict[str, Any]:
    return {
        "display_name": f"Sign in with {_unique()}",
        "issuer": "https://login.acme.example",
        "client_id": "welfare",
        "client_secret": "provider-secret",
        "site_ids": [str(w.site.id)],
    }


CASES: list[Case] = [
    Case("GET", "/healthz", (200, 200, 200, 200, 200, 200)),
    Case("GET", "/readyz", (200, 200, 200, 200, 200, 200), params=lambda w: w.heartbeat()),
    Case("GET", "/metrics", (200, 200, 200, 200, 200, 200)),
    Case("POST", "/api/v1/auth/token", (422, 422, 422, 422, 422, 422), form={}),
    Case("POST", "/api/v1/auth/logout", (401, 204, 204, 204, 204, 204)),
    Case("POST", "/api/v1/auth/logout-everywhere", (401, 204, 204, 204, 204, 204)),
    Case("GET", "/api/v1/me", (401, 200, 200, 200, 200, 200)),
    Case(
        "PATCH",
        "/api/v1/me",
        (401, 200, 200, 200, 200, 200),
        json=lambda w: {"display_name": "Renamed"},
    ),
    Case(
        "POST",
        "/api/v1/me/password",
        (401, 204, 204, 204, 204, 204),
        json=lambda w: {"current_password": PASSWORD, "new_password": "a brand new secret"},
    ),
    Case("GET", "/api/v1/me/sessions", (401, 200, 200, 200, 200, 200)),
    # Someone else's session is not found, whoever asks (revoking one's own: test_sessions.py).
    Case(
        "DELETE",
        "/api/v1/me/sessions/{session_id}",
        (401, 404, 404, 404, 404, 404),
        params=lambda w: {"session_id": w.session_of(w.make_user("guard", [w.site]))},
    ),
    Case("POST", "/api/v1/me/sessions/revoke-others", (401, 200, 200, 200, 200, 200)),
    Case("GET", "/api/v1/me/quick-sign-in", (401, 200, 200, 200, 200, 200)),
    # Someone else's PIN is not found, whoever asks (removing one's own: test_quick_sign_in.py).
    Case(
        "DELETE",
        "/api/v1/me/quick-sign-in/{pin_id}",
        (401, 404, 404, 404, 404, 404),
        params=lambda w: {"pin_id": w.pin_of(w.make_user("guard", [w.site]))},
    ),
    Case("GET", "/api/v1/me/second-factor", (401, 200, 200, 200, 200, 200)),
    # Everyone signed in manages their own passkeys; someone else's is not found.
    Case("GET", "/api/v1/me/passkeys", (401, 200, 200, 200, 200, 200)),
    Case(
        "DELETE",
        "/api/v1/me/passkeys/{passkey_id}",
        (401, 404, 404, 404, 404, 404),
        params=lambda w: w.user_and_passkey(),
    ),
    # Everyone signed in manages the phones that get their alerts by push; someone else's is
    # not found (validation and isolation: test_push_subscriptions.py).
    Case("GET", "/api/v1/me/push-subscriptions", (401, 200, 200, 200, 200, 200)),
    Case(
        "POST",
        "/api/v1/me/push-subscriptions",
        (401, 201, 201, 201, 201, 201),
        json=lambda w: BrowserKeys().subscription(
            f"https://fcm.googleapis.com/fcm/send/{_unique()}"
        ),
    ),
    Case(
        "DELETE",
        "/api/v1/me/push-subscriptions/{subscription_id}",
        (401, 404, 404, 404, 404, 404),
        params=lambda w: {"subscription_id": w.push_subscription_of_someone_else()},
    ),
    # users: admins only
    Case("GET", "/api/v1/users", (401, 403, 403, 403, 200, 403)),
    Case(
        "POST",
        "/api/v1/users",
        (401, 403, 403, 403, 201, 403),
        json=lambda w: {
            "username": f"new-{_unique()}",
            "display_name": "New",
            "role": "guard",
            "password": "long enough password",
            "site_ids": [str(w.site.id)],
        },
    ),
    Case(
        "GET",
        "/api/v1/users/{user_id}",
        (401, 403, 403, 403, 200, 403),
        params=lambda w: {"user_id": w.make_user("guard", [w.site]).id},
    ),
    Case(
        "PATCH",
        "/api/v1/users/{user_id}",
        (401, 403, 403, 403, 200, 403),
        params=lambda w: {"user_id": w.make_user("guard", [w.site]).id},
        json=lambda w: {"display_name": "Changed"},
    ),
    Case(
        "POST",
        "/api/v1/users/{user_id}/revoke-sessions",
        (401, 403, 403, 403, 200, 403),
        params=lambda w: {"user_id": w.make_user("guard", [w.site]).id},
    ),
    Case(
        "POST",
        "/api/v1/users/{user_id}/second-factor/reset",
        (401, 403, 403, 403, 200, 403),
        params=lambda w: {"user_id": w.make_user("guard", [w.site]).id},
    ),
    Case(
        "GET",
        "/api/v1/users/{user_id}/sessions",
        (401, 403, 403, 403, 200, 403),
        params=lambda w: {"user_id": w.make_user("guard", [w.site]).id},
    ),
    Case(
        "DELETE",
        "/api/v1/users/{user_id}/sessions/{session_id}",
        (401, 403, 403, 403, 204, 403),
        params=lambda w: w.user_and_session(),
    ),
    Case(
        "GET",
        "/api/v1/users/{user_id}/quick-sign-in",
        (401, 403, 403, 403, 200, 403),
        params=lambda w: {"user_id": w.make_user("guard", [w.site]).id},
    ),
    Case(
        "POST",
        "/api/v1/users/{user_id}/quick-sign-in/revoke",
        (401, 403, 403, 403, 200, 403),
        params=lambda w: {"user_id": w.make_user("guard", [w.site]).id},
    ),
    # company identity providers: admins only
    Case("GET", "/api/v1/identity-providers", (401, 403, 403, 403, 200, 403)),
    Case(
        "POST",
        "/api/v1/identity-providers",
        (401, 403, 403, 403, 201, 403),
        json=_provider_body,
    ),
    Case(
        "GET",
        "/api/v1/identity-providers/{provider_id}",
        (401, 403, 403, 403, 200, 403),
        params=lambda w: w.identity_provider(),
    ),
    Case(
        "PATCH",
        "/api/v1/identity-providers/{provider_id}",
        (401, 403, 403, 403, 200, 403),
        params=lambda w: w.identity_provider(),
        json=lambda w: {"enforces_two_factor": True},
    ),
    Case(
        "DELETE",
        "/api/v1/identity-providers/{provider_id}",
        (401, 403, 403, 403, 204, 403),
        params=lambda w: w.identity_provider(),
    ),
    Case(
        "GET",
        "/api/v1/users/{user_id}/passkeys",
        (401, 403, 403, 403, 200, 403),
        params=lambda w: w.user_and_passkey(),
    ),
    Case(
        "DELETE",
        "/api/v1/users/{user_id}/passkeys/{passkey_id}",
        (401, 403, 403, 403, 204, 403),
        params=lambda w: w.user_and_passkey(),
    ),
    # sites: everyone sees their own; admins manage
    Case("GET", "/api/v1/sites", (401, 200, 200, 200, 200, 200)),
    Case(
        "POST",
        "/api/v1/sites",
        (401, 403, 403, 403, 201, 403),
        json=lambda w: {
            "name": f"New {_unique()}",
            "timezone": "Europe/London",
            "phone_region": "GB",
        },
    ),
    Case(
        "GET",
        "/api/v1/sites/{site_id}",
        (401, 200, 200, 200, 200, 404),
        params=lambda w: {"site_id": w.site.id},
    ),
    Case(
        "PATCH",
        "/api/v1/sites/{site_id}",
        (401, 403, 403, 403, 200, 403),
        params=lambda w: {"site_id": w.site.id},
        json=lambda w: {"address": "2 Harbour Road"},
    ),
    # households: the registry of one's own sites
    Case("GET", "/api/v1/households", (401, 403, 200, 200, 200, 200)),
    Case(
        "POST",
        "/api/v1/households",
        (401, 403, 201, 201, 201, 404),
        json=lambda w: {"site_id": str(w.site.id), "building": "9", "unit": _unique()},
    ),
    Case(
        "GET",
        "/api/v1/households/{household_id}",
        (401, 403, 200, 200, 200, 404),
        params=lambda w: {"household_id": w.household().id},
    ),
    Case(
        "PATCH",
        "/api/v1/households/{household_id}",
        (401, 403, 200, 200, 200, 404),
        params=lambda w: {"household_id": w.household().id},
        json=lambda w: {"notes": "gate B"},
    ),
    Case(
        "DELETE",
        "/api/v1/households/{household_id}",
        (401, 403, 204, 204, 204, 404),
        params=lambda w: {"household_id": w.household().id},
    ),
    # residents
    Case("GET", "/api/v1/residents", (401, 403, 200, 200, 200, 200)),
    Case(
        "POST",
        "/api/v1/residents",
        (401, 403, 201, 201, 201, 422),
        json=lambda w: {"household_id": str(w.household().id), "full_name": "Park Soon-ja"},
    ),
    Case(
        "GET",
        "/api/v1/residents/{resident_id}",
        (401, 403, 200, 200, 200, 404),
        params=lambda w: {"resident_id": w.resident().id},
    ),
    Case(
        "PATCH",
        "/api/v1/residents/{resident_id}",
        (401, 403, 200, 200, 200, 404),
        params=lambda w: {"resident_id": w.resident().id},
        json=lambda w: {"risk_level": "high"},
    ),
    Case(
        "GET",
        "/api/v1/residents/{resident_id}/photo",
        (401, 403, 200, 200, 200, 404),
        params=lambda w: {"resident_id": w.resident(photo=True).id},
    ),
    Case(
        "PUT",
        "/api/v1/residents/{resident_id}/photo",
        (401, 403, 200, 200, 200, 404),
        params=lambda w: {"resident_id": w.resident().id},
        files=True,
    ),
    Case(
        "DELETE",
        "/api/v1/residents/{resident_id}/photo",
        (401, 403, 204, 204, 204, 404),
        params=lambda w: {"resident_id": w.resident(photo=True).id},
    ),
    Case(
        "GET",
        "/api/v1/residents/{resident_id}/contacts",
        (401, 403, 200, 200, 200, 404),
        params=lambda w: {"resident_id": w.resident().id},
    ),
    Case(
        "POST",
        "/api/v1/residents/{resident_id}/contacts",
        (401, 403, 201, 201, 201, 404),
        params=lambda w: {"resident_id": w.resident().id},
        json=lambda w: {"name": "Wang Mei", "relationship": "daughter", "phone": "6123 4567"},
    ),
    Case(
        "GET",
        "/api/v1/residents/{resident_id}/contacts/{contact_id}",
        (401, 403, 200, 200, 200, 404),
        params=lambda w: _contact_params(w),
    ),
    Case(
        "PATCH",
        "/api/v1/residents/{resident_id}/contacts/{contact_id}",
        (401, 403, 200, 200, 200, 404),
        params=lambda w: _contact_params(w),
        json=lambda w: {"priority": 1},
    ),
    Case(
        "DELETE",
        "/api/v1/residents/{resident_id}/contacts/{contact_id}",
        (401, 403, 204, 204, 204, 404),
        params=lambda w: _contact_params(w),
    ),
]


CONSENT_BODY = {
    "given_by_kind": "guardian",
    "given_by_name": "Wang Lei",
    "given_by_relationship": "son, lasting power of attorney",
    "method": "written",
    "scopes": ["registry", "lost_person_response", "photo"],
}
CASES += [
    Case(
        "GET",
        "/api/v1/residents/{resident_id}/consents",
        (401, 403, 200, 200, 200, 404),
        params=lambda w: {"resident_id": w.resident().id},
    ),
    Case(
        "POST",
        "/api/v1/residents/{resident_id}/consents",
        (401, 403, 201, 201, 201, 404),
        params=lambda w: {"resident_id": w.resident().id},
        json=lambda w: CONSENT_BODY,
    ),
    Case(
        "POST",
        "/api/v1/residents/{resident_id}/consents/{consent_id}/withdraw",
        (401, 403, 200, 200, 200, 404),
        params=lambda w: _consent_params(w),
        json=lambda w: {"reason": "family asked"},
    ),
]


def _tagged(world: World) -> dict[str, Any]:
    resident = world.resident()
    tags.issue_tag(session=world.db, actor=SYSTEM, resident_id=resident.id)
    world.db.commit()
    return {"resident_id": resident.id}


CASES += [
    Case(
        "POST",
        "/api/v1/residents/{resident_id}/tag",
        (401, 403, 201, 201, 201, 404),
        params=lambda w: {"resident_id": w.resident().id},
    ),
    Case(
        "GET", "/api/v1/residents/{resident_id}/tag", (401, 403, 200, 200, 200, 404), params=_tagged
    ),
    Case(
        "DELETE",
        "/api/v1/residents/{resident_id}/tag",
        (401, 403, 204, 204, 204, 404),
        params=_tagged,
    ),
    Case(
        "GET",
        "/api/v1/residents/{resident_id}/tag.png",
        (401, 403, 200, 200, 200, 404),
        params=_tagged,
    ),
]


CASES += [Case("GET", "/api/v1/audit", (401, 403, 403, 200, 200, 403))]


def _incident(world: World) -> dict[str, Any]:
    resident = world.resident()
    world.make_contact(resident)
    opened = incidents.open_incident(
        session=world.db,
        actor=SYSTEM,
        data=IncidentCreate(resident_id=resident.id, client_request_id=uuid.uuid4().hex),
    )
    world.db.commit()
    return {"incident_id": opened.incident.id}


def _guard_actor(world: World) -> Actor:
    assert world.guard is not None
    return Actor(user_id=world.guard.id, role=Role.guard, site_ids=frozenset({world.site.id}))


def _incident_reported_by_guard(world: World) -> dict[str, Any]:
    resident = world.resident()
    world.make_contact(resident)
    opened = incidents.open_incident(
        session=world.db,
        actor=_guard_actor(world),
        data=IncidentCreate(resident_id=resident.id, client_request_id=uuid.uuid4().hex),
    )
    world.db.commit()
    return {"incident_id": opened.incident.id}


def _incident_claimed_by_guard(world: World) -> dict[str, Any]:
    params = _incident(world)
    responders.claim(session=world.db, actor=_guard_actor(world), incident_id=params["incident_id"])
    world.db.commit()
    return params


CASES += [
    Case(
        "POST",
        "/api/v1/incidents",
        (401, 201, 201, 201, 201, 422),
        json=lambda w: {"resident_id": str(w.resident().id), "client_request_id": uuid.uuid4().hex},
    ),
    Case("GET", "/api/v1/incidents", (401, 200, 200, 200, 200, 200)),
    Case(
        "GET", "/api/v1/incidents/{incident_id}", (401, 200, 200, 200, 200, 404), params=_incident
    ),
    Case(
        "POST",
        "/api/v1/incidents/{incident_id}/acknowledge",
        (401, 403, 200, 200, 200, 404),
        params=_incident,
        json=lambda w: {},
    ),
    Case(
        "POST",
        "/api/v1/incidents/{incident_id}/notes",
        (401, 200, 200, 200, 200, 404),
        params=_incident,
        json=lambda w: {"text": "son on his way"},
    ),
    # Closing stops the family's escalation: staff and above, or the guard who reported or
    # claimed the incident; any other guard of the site gets 403.
    *[
        Case(
            "POST",
            f"/api/v1/incidents/{{incident_id}}/{verb}",
            (401, guard_status, 200, 200, 200, 404),
            params=make,
            json=(lambda w: {"outcome": "handed_over", "handed_to": "son"})
            if verb == "resolve"
            else None,
        )
        for verb in ("resolve", "cancel")
        for make, guard_status in (
            (_incident, 403),
            (_incident_reported_by_guard, 200),
            (_incident_claimed_by_guard, 200),
        )
    ],
    # Break-glass: anyone of the site may claim; the card is for responders (a guard who did
    # not report or claim gets 403) and for staff, who hold the registry anyway.
    Case(
        "POST",
        "/api/v1/incidents/{incident_id}/claim",
        (401, 201, 201, 201, 201, 404),
        params=_incident,
    ),
    Case(
        "GET",
        "/api/v1/incidents/{incident_id}/resident",
        (401, 403, 200, 200, 200, 404),
        params=_incident,
    ),
    Case(
        "GET",
        "/api/v1/incidents/{incident_id}/events",
        (401, 200, 200, 200, 200, 404),
        params=_incident,
        query=lambda w: {"max_seconds": 0.1},
    ),
    # The photo a guard took: the reporting guard (here the incident was opened by the system,
    # so the site's guard is not it: 403) and staff may add it while open; staff may read it.
    Case(
        "PUT",
        "/api/v1/incidents/{incident_id}/photo",
        (401, 403, 200, 200, 200, 404),
        params=_incident,
        files=True,
    ),
    Case(
        "GET",
        "/api/v1/incidents/{incident_id}/photo",
        (401, 403, 200, 200, 200, 404),
        params=lambda w: _incident_with_photo(w),
    ),
]


def _incident_with_photo(world: World) -> dict[str, Any]:
    params = _incident(world)
    incident_photos.set_photo(
        session=world.db,
        actor=SYSTEM,
        settings=world.settings,
        incident_id=params["incident_id"],
        data=_jpeg(),
    )
    world.db.commit()
    return params


def _incident_contact(world: World) -> dict[str, Any]:
    resident = world.resident()
    contact = world.make_contact(resident)
    opened = incidents.open_incident(
        session=world.db,
        actor=SYSTEM,
        data=IncidentCreate(resident_id=resident.id, client_request_id=uuid.uuid4().hex),
    )
    world.db.commit()
    return {"incident_id": opened.incident.id, "contact_id": contact.id}


# Staff send an SMS or place a call to one contact now: staff and up, of the incident's site.
CASES += [
    Case(
        "POST",
        "/api/v1/incidents/{incident_id}/contacts/{contact_id}/notify",
        (401, 403, 202, 202, 202, 404),
        params=_incident_contact,
        json=lambda w: {"channel": "sms"},
    ),
]


def _resident_contact(world: World) -> dict[str, Any]:
    resident = world.resident()
    return {"resident_id": resident.id, "contact_id": world.make_contact(resident).id}


# Test a contact's number (a test SMS or call), and the site's unverified contacts: staff and up.
CASES += [
    Case(
        "POST",
        "/api/v1/residents/{resident_id}/contacts/{contact_id}/test",
        (401, 403, 202, 202, 202, 404),
        params=_resident_contact,
        json=lambda w: {"channel": "sms"},
    ),
    Case(
        "GET",
        "/api/v1/contacts/unverified",
        (401, 403, 200, 200, 200, 404),
        query=lambda w: {"site_id": str(w.site.id)},
    ),
]


# The guard lookup: everyone of the site; staff of another site get 200 with no cards.
CASES += [
    Case(
        "GET",
        "/api/v1/lookup",
        (401, 200, 200, 200, 200, 200),
        query=lambda w: {"q": w.resident().full_name},
    ),
    Case(
        "GET",
        "/api/v1/lookup/{resident_id}/photo",
        (401, 200, 200, 200, 200, 404),
        params=lambda w: {"resident_id": w.resident(photo=True).id},
    ),
]


def _missing(world: World) -> dict[str, Any]:
    opened = incidents.open_incident(
        session=world.db,
        actor=SYSTEM,
        data=IncidentCreate(
            kind="missing", resident_id=world.resident().id, client_request_id=uuid.uuid4().hex
        ),
    )
    world.db.commit()
    return {"incident_id": opened.incident.id}


def _guard_actor(world: World) -> Actor:
    assert world.guard is not None
    return Actor(user_id=world.guard.id, role=Role.guard, site_ids=frozenset({world.site.id}))


def _incident_reported_by_guard(world: World) -> dict[str, Any]:
    resident = world.resident()
    world.make_contact(resident)
    opened = incidents.open_incident(
        session=world.db,
        actor=_guard_actor(world),
        data=IncidentCreate(resident_id=resident.id, client_request_id=uuid.uuid4().hex),
    )
    world.db.commit()
    return {"incident_id": opened.incident.id}


def _incident_claimed_by_guard(world: World) -> dict[str, Any]:
    params = _incident(world)
    responders.claim(session=world.db, actor=_guard_actor(world), incident_id=params["incident_id"])
    world.db.commit()
    return params


CASES += [
    Case(
        "POST", "/api/v1/me/duty", (401, 200, 200, 200, 200, 200), json=lambda w: {"on_duty": True}
    ),
    Case("GET", "/api/v1/alerts", (401, 200, 200, 200, 200, 200)),
    Case("GET", "/api/v1/alerts/{incident_id}", (401, 200, 200, 200, 200, 404), params=_missing),
]


# Twilio webhooks take no bearer token: only Twilio's signature. The test settings configure no
# auth token, so every request here is refused (signed requests: tests/api/test_webhooks.py).
CASES += [
    Case(
        "POST",
        f"/webhooks/twilio/{name}",
        (403, 403, 403, 403, 403, 403),
        form={"AccountSid": "AC0"},
    )
    for name in (
        "message-status",
        "call-status",
        "gather",
        "inbound-sms",
        "answered-by",
        "finder/voice",
        "finder/reference",
        "finder/dialled",
    )
]


def _resident_with_policy(world: World) -> dict[str, Any]:
    resident = world.resident()
    policies.set_policy(session=world.db, actor=SYSTEM, body=PolicyBody(), resident_id=resident.id)
    world.db.commit()
    return {"resident_id": resident.id}


POLICY = {"contact_interval_seconds": 60, "manager_after_seconds": 300}
CASES += [
    Case(
        "GET",
        "/api/v1/sites/{site_id}/escalation-policy",
        (401, 403, 200, 200, 200, 404),
        params=lambda w: {"site_id": w.site.id},
    ),
    Case(
        "PUT",
        "/api/v1/sites/{site_id}/escalation-policy",
        (401, 403, 403, 200, 200, 403),
        params=lambda w: {"site_id": w.site.id},
        json=lambda w: POLICY,
    ),
    Case(
        "GET",
        "/api/v1/residents/{resident_id}/escalation-policy",
        (401, 403, 200, 200, 200, 404),
        params=lambda w: {"resident_id": w.resident().id},
    ),
    Case(
        "PUT",
        "/api/v1/residents/{resident_id}/escalation-policy",
        (401, 403, 403, 200, 200, 403),
        params=lambda w: {"resident_id": w.resident().id},
        json=lambda w: POLICY,
    ),
    Case(
        "DELETE",
        "/api/v1/residents/{resident_id}/escalation-policy",
        (401, 403, 403, 204, 204, 403),
        params=_resident_with_policy,
    ),
]


def _schedule_params(world: World) -> dict[str, Any]:
    schedule = visits.create_schedule(
        session=world.db,
        actor=SYSTEM,
        data=ScheduleCreate(**SCHEDULE_BODY, resident_id=world.resident().id),
    )
    world.db.commit()
    return {"schedule_id": schedule.id}


def _visit_params(world: World) -> dict[str, Any]:
    """A visit whose window started an hour ago, ready to be recorded."""
    schedule_id = _schedule_params(world)["schedule_id"]
    schedule = world.db.get(VisitSchedule, schedule_id)
    assert schedule is not None
    start = utcnow() - dt.timedelta(hours=1)
    visit = Visit(
        schedule_id=schedule.id,
        site_id=schedule.site_id,
        resident_id=schedule.resident_id,
        kind=schedule.kind,
        window_start=start,
        window_end=start + dt.timedelta(hours=1),
    )
    world.db.add(visit)
    world.db.commit()
    return {"visit_id": visit.id}


def _calendar_user(world: World) -> dict[str, Any]:
    return {"user_id": world.make_user("staff", [world.site]).id}


def _calendar_token(world: World) -> dict[str, Any]:
    user_id = _calendar_user(world)["user_id"]
    token = visits.issue_calendar_token(session=world.db, actor=SYSTEM, user_id=user_id)
    world.db.commit()
    return {"user_id": user_id, "token": token}


SCHEDULE_BODY: dict[str, Any] = {
    "kind": "home_visit",
    "rrule": "FREQ=WEEKLY;BYDAY=MO,TH",
    "window_start": "10:00",
    "window_end": "11:00",
    "start_date": "2026-12-01",
}
CASES += [
    Case(
        "POST",
        "/api/v1/visit-schedules",
        (401, 403, 403, 201, 201, 403),
        json=lambda w: {**SCHEDULE_BODY, "resident_id": str(w.resident().id)},
    ),
    Case("GET", "/api/v1/visit-schedules", (401, 403, 200, 200, 200, 200)),
    Case(
        "GET",
        "/api/v1/visit-schedules/{schedule_id}",
        (401, 403, 200, 200, 200, 404),
        params=_schedule_params,
    ),
    Case(
        "PATCH",
        "/api/v1/visit-schedules/{schedule_id}",
        (401, 403, 403, 200, 200, 403),
        params=_schedule_params,
        json=lambda w: {"window_end": "11:30"},
    ),
    Case(
        "DELETE",
        "/api/v1/visit-schedules/{schedule_id}",
        (401, 403, 403, 204, 204, 403),
        params=_schedule_params,
    ),
    Case("GET", "/api/v1/visits", (401, 403, 200, 200, 200, 200)),
    Case(
        "GET",
        "/api/v1/visits/calendar",
        (401, 403, 200, 200, 200, 200),
        query=lambda w: {
            "start_from": "2026-11-02T00:00:00Z",
            "start_to": "2026-12-07T00:00:00Z",
        },
    ),
    Case("GET", "/api/v1/visits/{visit_id}", (401, 403, 200, 200, 200, 404), params=_visit_params),
    Case(
        "POST",
        "/api/v1/visits/{visit_id}/record",
        (401, 403, 200, 200, 200, 404),
        params=_visit_params,
        json=lambda w: {"outcome": "well"},
    ),
    # Calendar feeds: users issue their own; managers for users of their sites.
    Case(
        "POST",
        "/api/v1/users/{user_id}/calendar-token",
        (401, 403, 403, 201, 201, 403),
        params=_calendar_user,
    ),
    Case(
        "DELETE",
        "/api/v1/users/{user_id}/calendar-token",
        (401, 403, 403, 204, 204, 403),
        params=_calendar_token,
    ),
    # Public behind the secret token (the token is the credential).
    Case("GET", "/calendar/{token}.ics", (200, 200, 200, 200, 200, 200), params=_calendar_token),
    Case("GET", "/api/v1/reports/visit-completion", (401, 403, 403, 200, 200, 403)),
    Case("GET", "/api/v1/reports/response-times", (401, 403, 403, 200, 200, 403)),
    Case("GET", "/api/v1/reports/visits.csv", (401, 403, 403, 200, 200, 403)),
    Case("GET", "/api/v1/reports/incidents.csv", (401, 403, 403, 200, 200, 403)),
]


def _consent_params(world: World) -> dict[str, Any]:
    resident = world.resident()
    consent = consents.record_consent(
        session=world.db, actor=SYSTEM, resident_id=resident.id, data=ConsentCreate(**CONSENT_BODY)
    )
    world.db.commit()
    return {"resident_id": resident.id, "consent_id": consent.id}


def _contact_params(world: World) -> dict[str, Any]:
    resident = world.resident()
    contact = world.make_contact(resident)
    return {"resident_id": resident.id, "contact_id": contact.id}


def _open_session(db: Session, user: User) -> str:
    """A signed-in session without the cost of argon2 per request. It was opened with a second
    factor: a site the matrix creates requires one of staff and admins, and this table is about
    roles (a session that must first enrol: test_two_factor.py)."""
    token = secrets.token_urlsafe(32)
    db.add(
        AuthSession(
            user_id=user.id,
            token_hash=hash_token(token),
            expires_at=utcnow() + dt.timedelta(hours=1),
            second_factor="totp",
        )
    )
    db.commit()
    return token


def test_every_route_is_in_the_matrix(app: Any) -> None:
    # Read from the OpenAPI document: every route of ours is in it (none is hidden).
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    table = {(case.method, case.path) for case in CASES}
    assert routes - table == set(), "routes without an access rule in the matrix"
    assert table - routes == set(), "matrix rows for routes that do not exist"


def test_the_openapi_document_asks_for_the_bearer_token_exactly_where_sign_in_is_needed(
    app: Any,
) -> None:
    document = app.openapi()
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert scheme["type"] == "oauth2"
    assert scheme["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"
    declared = {
        (method.upper(), path): operation.get("security")
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    for case in CASES:
        security = declared[(case.method, case.path)]
        if case.expected[COLUMNS.index("none")] == 401:  # signed out: refused
            assert security == [{"bearer": []}], (case.method, case.path)
        else:
            assert security is None, (case.method, case.path)


def test_role_matrix(
    client: TestClient,
    db: Session,
    settings: Settings,
    site: Site,
    make_site: Callable[..., Site],
    make_user: Callable[..., User],
    make_household: Callable[..., Any],
    make_resident: Callable[..., Any],
    make_contact: Callable[..., Any],
    make_consent: Callable[..., Any],
) -> None:
    other_site = make_site(name="Elsewhere Court")
    users = {role.value: make_user(role, [site]) for role in Role}
    users["other"] = make_user(Role.staff, [other_site])
    world = World(
        db,
        settings,
        site,
        make_household,
        make_resident,
        make_contact,
        make_user,
        make_consent,
        guard=users["guard"],
    )
    failures = []
    for case in CASES:
        for column, expected in zip(COLUMNS, case.expected, strict=True):
            headers = {}
            if column != "none":
                headers["Authorization"] = f"Bearer {_open_session(db, users[column])}"
            path = case.path.format(**case.params(world))
            kwargs: dict[str, Any] = {"headers": headers}
            if case.json is not None:
                kwargs["json"] = case.json(world)
            if case.form is not None:
                kwargs["data"] = case.form
            if case.files:
                kwargs["files"] = {"file": ("face.jpg", _jpeg(), "image/jpeg")}
            if case.query is not None:
                kwargs["params"] = case.query(world)
            client.cookies.clear()
            response = client.request(case.method, path, **kwargs)
            if response.status_code != expected:
                failures.append(
                    f"{case.method} {case.path} as {column}: "
                    f"{response.status_code} != {expected} ({response.text[:120]})"
                )
    assert failures == [], "\n".join(failures)
