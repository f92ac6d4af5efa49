"""Security: site isolation for guards, hostile strings on every text field.

Elsewhere: forged, wrongly signed and replayed webhooks (tests/api/test_webhooks.py), password
guessing and tokens after logout (tests/api/test_auth.py), oversized and disguised photos
(tests/api/test_photos.py), and no personal data in the logs of a whole incident
(tests/api/test_incident_logs.py).
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import Session

from api.deps import SESSION_COOKIE, csrf_secret_for
from tests.conftest import SYSTEM, form_csrf
from welfare.incidents import service as incidents
from welfare.incidents.models import IncidentCreate
from welfare.residents import service as residents
from welfare.residents.models import Contact, Resident
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.tags import service as tags

# --- a guard of site A reaches nothing of site B -------------------------------------------


@dataclass
class Elsewhere:
    site: Site
    resident: Resident
    contact: Contact
    tag_code: str
    incident_id: uuid.UUID
    missing_id: uuid.UUID
    unit: str


@pytest.fixture
def elsewhere(
    db: Session,
    settings: Settings,
    make_site: Callable[..., Site],
    make_household: Callable[..., Any],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> Elsewhere:
    """Site B, with a registered resident (consent, contact, tag, photo) and two incidents."""
    site_b = make_site(name="Elsewhere Court")
    household = make_household(building="7", unit="7707", site_=site_b)
    resident = make_resident(
        household=household, full_name="Park Soon-ja", preferred_name="Mrs. Park"
    )
    make_consent(resident)
    contact = make_contact(resident, name="Park Min-jun", phone="6987 6543")
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 120, 10)).save(out, format="JPEG")
    residents.set_photo(
        session=db, actor=SYSTEM, settings=settings, resident_id=resident.id, data=out.getvalue()
    )
    tag = tags.issue_tag(session=db, actor=SYSTEM, resident_id=resident.id)
    found = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(resident_id=resident.id, client_request_id="elsewhere-1"),
    )
    missing = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(
            kind="missing", resident_id=resident.id, client_request_id="elsewhere-2"
        ),
    )
    db.commit()
    return Elsewhere(
        site=site_b,
        resident=resident,
        contact=contact,
        tag_code=tag.code,
        incident_id=found.incident.id,
        missing_id=missing.incident.id,
        unit="7707",
    )


def test_a_guard_of_site_a_reaches_nothing_of_site_b(
    client: TestClient, headers_for: Callable[..., dict[str, str]], elsewhere: Elsewhere
) -> None:
    guard = headers_for("guard")  # a guard of the `site` fixture only
    rid, iid, cid = elsewhere.resident.id, elsewhere.incident_id, elsewhere.contact.id
    # 403: a guard may never do this, at any site (the role is refused before any lookup).
    # 404: a guard may, but not at site B, whose records are not there for them at all.
    reads = {
        f"/api/v1/residents/{rid}": 403,
        f"/api/v1/residents/{rid}/photo": 403,
        f"/api/v1/residents/{rid}/contacts": 403,
        f"/api/v1/residents/{rid}/contacts/{cid}": 403,
        f"/api/v1/residents/{rid}/consents": 403,
        f"/api/v1/residents/{rid}/tag": 403,
        f"/api/v1/residents/{rid}/tag.png": 403,
        f"/api/v1/residents/{rid}/escalation-policy": 403,
        f"/api/v1/lookup/{rid}/photo": 404,
        f"/api/v1/incidents/{iid}": 404,
        f"/api/v1/incidents/{elsewhere.missing_id}": 404,
        f"/api/v1/alerts/{elsewhere.missing_id}": 404,
        f"/api/v1/sites/{elsewhere.site.id}": 404,
        f"/api/v1/households/{elsewhere.resident.household_id}": 403,
    }
    leaks = ("Park", "7707", "6987", elsewhere.tag_code)
    for path, expected in reads.items():
        response = client.get(path, headers=guard)
        assert response.status_code == expected, (path, response.status_code)
        assert not any(word in response.text for word in leaks), path

    # By search (name, unit, tag code): nothing comes back.
    for params in ({"q": "Park Soon-ja"}, {"q": "Mrs. Park"}, {"q": "7-7707"}, {"q": "7707"}):
        response = client.get("/api/v1/lookup", params=params, headers=guard)
        assert response.status_code == 200, params
        assert response.json()["items"] == [], params
    response = client.get("/api/v1/lookup", params={"tag": elsewhere.tag_code}, headers=guard)
    assert response.status_code == 200  # a tag lookup answers like a search: no cards
    assert response.json()["items"] == []
    assert not any(word in response.text for word in leaks)

    # Lists show nothing of site B (households are the registry's: not for guards at all).
    lists = {
        "/api/v1/incidents": 200,
        "/api/v1/alerts": 200,
        "/api/v1/sites": 200,
        "/api/v1/households": 403,
    }
    for path, expected in lists.items():
        response = client.get(path, headers=guard)
        assert response.status_code == expected, path
        assert str(iid) not in response.text and str(elsewhere.missing_id) not in response.text
        assert str(elsewhere.site.id) not in response.text, path

    # Opening an incident by site B's resident id or tag is refused as an unknown resident,
    # and joins nothing.
    for field, body in (
        ("resident_id", {"resident_id": str(rid)}),
        ("tag", {"tag": elsewhere.tag_code}),
    ):
        body = body | {"client_request_id": uuid.uuid4().hex, "location": "lobby"}
        response = client.post("/api/v1/incidents", json=body, headers=guard)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"][0]["loc"] == ["body", field]
        assert response.json()["detail"][0]["msg"].startswith("unknown resident: give the id")
        assert str(iid) not in response.text

    # Acting on site B's incident is refused: staff actions by role, guard actions (closing
    # included: a guard on an incident may close it) by site.
    actions = [
        ("acknowledge", {}, 403),
        ("notes", {"text": "seen"}, 404),
        ("resolve", {"outcome": "false_alarm"}, 404),
        ("cancel", None, 404),
    ]
    for action, body, expected in actions:
        response = client.post(f"/api/v1/incidents/{iid}/{action}", json=body, headers=guard)
        assert response.status_code == expected, (action, response.status_code)
    detail = client.get(f"/api/v1/incidents/{iid}", headers=headers_for("staff", [elsewhere.site]))
    assert detail.json()["status"] == "notifying"  # untouched


# --- hostile strings on every text field -----------------------------------------------------

HOSTILE = {
    "very-long": "A" * 100_000,
    "nul": "before\x00after",
    "rtl-override": "\u202egnp.exe\u202c Wang",
    "sql": "'; DROP TABLE resident; --",
    "emoji": "\U0001f9d3\U0001f3fd\u200d\u2642\ufe0f \U0001f3e0 "
    "\u0627\u0644\u0633\u0644\u0627\u0645",
    "markup": "<script>alert(1)</script>{{7*7}}%s%n",
}


@dataclass(frozen=True)
class Target:
    method: str
    path: Callable[[Any], str]
    body: Callable[[Any], dict[str, Any]]
    role: str
    schema: str  # the request body component in the OpenAPI document


def _string_fields(openapi: dict[str, Any], component: str) -> list[str]:
    """Top-level properties of a request body that take a string (plain, optional or list)."""
    props = openapi["components"]["schemas"][component]["properties"]
    names = []
    for name, prop in props.items():
        options = prop.get("anyOf", [prop])
        for option in options:
            if option.get("type") == "string" and not option.get("enum") and "format" not in option:
                names.append(name)
                break
            if "$ref" in option:
                break
            items = option.get("items", {})
            if option.get("type") == "array" and items.get("type") == "string":
                names.append(name)
                break
    return names


class World:
    def __init__(self, db: Session, site: Site, make: dict[str, Callable[..., Any]]) -> None:
        self.db, self.site, self.make = db, site, make

    def resident(self) -> Resident:
        self.last_resident = resident = self.make["resident"](
            household=self.make["household"](unit=uuid.uuid4().hex[:12])
        )
        self.make["consent"](resident)
        self.make["contact"](resident)
        return resident

    def consent(self) -> uuid.UUID:
        return self.make["consent"](self.last_resident).id

    def contact(self) -> Contact:
        self.last_contact = self.make["contact"](self.resident())
        return self.last_contact

    def user(self) -> Any:
        return self.make["user"]("guard", [self.site])

    def incident(self) -> uuid.UUID:
        opened = incidents.open_incident(
            session=self.db,
            actor=SYSTEM,
            data=IncidentCreate(resident_id=self.resident().id, client_request_id=uuid.uuid4().hex),
        )
        self.db.commit()
        return opened.incident.id


CONSENT = {"given_by_kind": "resident", "given_by_name": "self", "method": "written"}
TARGETS = [
    Target(
        "POST",
        lambda w: "/api/v1/sites",
        lambda w: {"name": uuid.uuid4().hex},
        "admin",
        "SiteCreate",
    ),
    Target("PATCH", lambda w: f"/api/v1/sites/{w.site.id}", lambda w: {}, "admin", "SiteUpdate"),
    Target(
        "POST",
        lambda w: "/api/v1/households",
        lambda w: {"site_id": str(w.site.id), "building": "1", "unit": uuid.uuid4().hex[:6]},
        "staff",
        "HouseholdCreate",
    ),
    Target(
        "POST",
        lambda w: "/api/v1/residents",
        lambda w: {
            "household_id": str(w.make["household"](unit=uuid.uuid4().hex[:6]).id),
            "full_name": "Chan Tai Man",
        },
        "staff",
        "ResidentCreate",
    ),
    Target(
        "PATCH",
        lambda w: f"/api/v1/residents/{w.resident().id}",
        lambda w: {},
        "staff",
        "ResidentUpdate",
    ),
    Target(
        "POST",
        lambda w: f"/api/v1/residents/{w.resident().id}/contacts",
        lambda w: {"name": "Chan Siu Ming", "relationship": "son", "phone": "9123 4567"},
        "staff",
        "ContactCreate",
    ),
    Target(
        "POST",
        lambda w: f"/api/v1/residents/{w.resident().id}/consents",
        lambda w: CONSENT | {"scopes": ["registry"]},
        "staff",
        "ConsentCreate",
    ),
    Target(
        "POST",
        lambda w: "/api/v1/incidents",
        lambda w: {"resident_id": str(w.resident().id), "client_request_id": uuid.uuid4().hex},
        "guard",
        "IncidentCreate",
    ),
    Target(
        "POST",
        lambda w: f"/api/v1/incidents/{w.incident()}/notes",
        lambda w: {"text": "x"},
        "staff",
        "NoteCreate",
    ),
    Target(
        "POST",
        lambda w: f"/api/v1/incidents/{w.incident()}/resolve",
        lambda w: {"outcome": "handed_over"},
        "staff",
        "Resolution",
    ),
    Target(
        "POST",
        lambda w: f"/api/v1/residents/{w.resident().id}/consents/{w.consent()}/withdraw",
        lambda w: {},
        "staff",
        "ConsentWithdraw",
    ),
    Target(
        "PATCH",
        lambda w: f"/api/v1/residents/{w.contact().resident_id}/contacts/{w.last_contact.id}",
        lambda w: {},
        "staff",
        "ContactUpdate",
    ),
    Target(
        "PATCH",
        lambda w: f"/api/v1/households/{w.make['household'](unit=uuid.uuid4().hex[:6]).id}",
        lambda w: {},
        "staff",
        "HouseholdUpdate",
    ),
    Target("PATCH", lambda w: f"/api/v1/users/{w.user().id}", lambda w: {}, "admin", "UserUpdate"),
    Target("PATCH", lambda w: "/api/v1/me", lambda w: {}, "staff", "ProfileUpdate"),
    Target(
        "POST",
        lambda w: "/api/v1/users",
        lambda w: {
            "username": f"u{uuid.uuid4().hex[:8]}",
            "display_name": "New",
            "role": "guard",
            "password": "a long enough password",
        },
        "admin",
        "UserCreate",
    ),
]


def test_hostile_strings_in_every_text_field_are_refused_or_stored_exactly(
    app: Any,
    client: TestClient,
    db: Session,
    site: Site,
    headers_for: Callable[..., dict[str, str]],
    make_household: Callable[..., Any],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
    make_user: Callable[..., Any],
) -> None:
    openapi = app.openapi()
    world = World(
        db,
        site,
        {
            "household": make_household,
            "resident": make_resident,
            "consent": make_consent,
            "contact": make_contact,
            "user": make_user,
        },
    )
    headers = {role: headers_for(role) for role in ("guard", "staff", "admin")}
    problems: list[str] = []
    tried = 0
    for target in TARGETS:
        fields = _string_fields(openapi, target.schema)
        assert fields, target.schema
        for field in fields:
            for label, hostile in HOSTILE.items():
                body = target.body(world)
                listy = openapi["components"]["schemas"][target.schema]["properties"][field]
                is_list = any(o.get("type") == "array" for o in listy.get("anyOf", [listy]))
                body[field] = [hostile] if is_list else hostile
                response = client.request(
                    target.method, target.path(world), json=body, headers=headers[target.role]
                )
                tried += 1
                where = f"{target.method} {target.schema}.{field} <- {label}"
                if response.status_code >= 500:
                    problems.append(f"{where}: {response.status_code}")
                    continue
                if response.status_code >= 400:
                    assert response.status_code in (400, 403, 404, 409, 413, 422), where
                    # The refusal does not echo the hostile value back.
                    if len(hostile) > 50:
                        assert hostile not in response.text, where
                    continue
                stored = response.json().get(field)
                if stored is not None and stored != body[field]:
                    problems.append(f"{where}: stored as {str(stored)[:80]!r}")
                if label in ("nul", "very-long") and stored == body[field]:
                    problems.append(f"{where}: accepted a {label} string")
    assert tried > 100
    assert not problems, "\n".join(problems)
    # Everything stored still lists and renders.
    for path in ("/api/v1/residents", "/api/v1/incidents", "/api/v1/households"):
        assert client.get(path, headers=headers["staff"]).status_code == 200


@pytest.mark.parametrize("label", sorted(HOSTILE))
def test_hostile_search_words_are_a_clear_answer(
    client: TestClient, headers_for: Callable[..., dict[str, str]], label: str
) -> None:
    words = HOSTILE[label][:20_000]  # the test client refuses URLs over 64 KiB
    for path, role in (("/api/v1/lookup", "guard"), ("/api/v1/residents", "staff")):
        response = client.get(path, params={"q": words}, headers=headers_for(role))
        # Too long a search is refused in words; any other string is searched for.
        expected = 422 if label == "very-long" else 200
        assert response.status_code == expected, (path, response.status_code)


def test_a_body_far_over_the_limit_is_413_before_it_is_read(
    client: TestClient, headers_for: Callable[..., dict[str, str]], settings: Settings
) -> None:
    huge = "A" * (settings.max_photo_bytes + 512 * 1024)
    response = client.post(
        "/api/v1/incidents/" + str(uuid.uuid4()) + "/notes",
        json={"text": huge},
        headers=headers_for("staff"),
    )
    assert response.status_code == 413


def test_nul_in_a_consent_or_its_withdrawal_is_422(
    client: TestClient,
    headers_for: Callable[..., dict[str, str]],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
) -> None:
    """Regression: consents took NUL on SQLite (and were a database error on PostgreSQL)."""
    staff = headers_for("staff")
    resident = make_resident()
    body = CONSENT | {"scopes": ["registry"], "given_by_name": "Wang\x00Lei"}
    response = client.post(f"/api/v1/residents/{resident.id}/consents", json=body, headers=staff)
    assert response.status_code == 422
    consent = make_consent(resident)
    response = client.post(
        f"/api/v1/residents/{resident.id}/consents/{consent.id}/withdraw",
        json={"reason": "moved\x00away"},
        headers=staff,
    )
    assert response.status_code == 422


def test_a_jpeg_carrying_a_script_is_re_encoded_without_it(
    client: TestClient,
    headers_for: Callable[..., dict[str, str]],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
) -> None:
    """A polyglot: a real JPEG with HTML in a comment segment and after its end marker."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 90, 200)).save(
        out, format="JPEG", comment=b"<script>x</script>"
    )
    payload = out.getvalue() + b"<html><script>alert(document.cookie)</script></html>"
    resident = make_resident()
    make_consent(resident)
    staff = headers_for("staff")
    files = {"file": ("face.jpg", payload, "image/jpeg")}
    response = client.put(f"/api/v1/residents/{resident.id}/photo", files=files, headers=staff)
    assert response.status_code == 200, response.text  # a PUT replaces the one photo
    stored = client.get(f"/api/v1/residents/{resident.id}/photo", headers=staff)
    assert stored.status_code == 200
    assert stored.headers["content-type"] == "image/jpeg"
    assert stored.content.startswith(b"\xff\xd8") and b"<script>" not in stored.content


# --- BREACH: the CSRF token is masked afresh in every response -------------------------------


def _signed_in_staff(client: TestClient, page_login: Callable[..., str], make_user, site: Site):
    user = make_user("staff", [site])
    page_login(user)
    return user


def _change_language(client: TestClient, token: str, language: str = "ko-KR") -> Any:
    return client.post(
        "/account/language",
        data={"language": language, "csrf_token": token},
        headers={"Accept": "text/html"},
        follow_redirects=False,
    )


def test_two_renders_of_a_page_carry_different_csrf_tokens_and_both_are_accepted(
    client: TestClient, page_login: Callable[..., str], make_user, site: Site
) -> None:
    _signed_in_staff(client, page_login, make_user, site)
    first = form_csrf(client.get("/account").text)
    second = form_csrf(client.get("/account").text)
    assert first != second
    assert _change_language(client, first, "ko-KR").status_code == 303
    assert _change_language(client, second, "en").status_code == 303
    # The header check (the pages' scripts send the meta tag's token) takes masked ones too.
    meta = re.search(r'<meta name="csrf-token" content="([^"]+)"', client.get("/account").text)
    assert meta and meta.group(1) != first
    changed = client.patch(
        "/api/v1/me", json={"display_name": "Masked"}, headers={"X-CSRF-Token": meta.group(1)}
    )
    assert changed.status_code == 200, changed.text


def test_the_session_secret_itself_never_appears_in_a_page(
    client: TestClient, page_login: Callable[..., str], make_user, site: Site, settings: Settings
) -> None:
    _signed_in_staff(client, page_login, make_user, site)
    cookie = client.cookies.get(SESSION_COOKIE)
    assert cookie
    secret = csrf_secret_for(settings, cookie)
    page = client.get("/account", headers={"Accept-Encoding": "gzip"})
    assert page.headers.get("content-encoding") == "gzip"
    assert secret not in page.text
    # Still taken when sent bare: a guard phone's offline shell cached before masking sends it.
    assert _change_language(client, secret).status_code == 303


def test_a_csrf_token_of_another_session_is_refused(
    client: TestClient, page_login: Callable[..., str], make_user, site: Site
) -> None:
    _signed_in_staff(client, page_login, make_user, site)
    other_token = form_csrf(client.get("/account").text)
    _signed_in_staff(client, page_login, make_user, site)  # a second user, a new session
    refused = _change_language(client, other_token)
    assert refused.status_code == 403
    assert "This form has expired" in refused.text
    assert "Reload it and send the form again" in refused.text


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1],  # one character short
        lambda t: t[:10] + ("A" if t[10] != "A" else "B") + t[11:],  # one character changed
        lambda t: t + "==",
        lambda t: "!" * len(t),  # not base64url at all
        lambda t: "",
    ],
    ids=["short", "changed", "padded", "not-base64", "empty"],
)
def test_a_mangled_csrf_token_is_refused_with_words_saying_to_reload(
    client: TestClient, page_login: Callable[..., str], make_user, site: Site, mangle
) -> None:
    _signed_in_staff(client, page_login, make_user, site)
    token = form_csrf(client.get("/account").text)
    refused = _change_language(client, mangle(token))
    assert refused.status_code == 403
    assert "This form has expired" in refused.text
    api = client.patch(
        "/api/v1/me", json={"display_name": "X"}, headers={"X-CSRF-Token": mangle(token)}
    )
    assert api.status_code == 403
    assert api.json() == {"detail": "missing or wrong CSRF token: reload the page and try again"}
