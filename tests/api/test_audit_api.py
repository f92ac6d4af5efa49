from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from fastapi.testclient import TestClient

from welfare.db import utcnow
from welfare.residents.models import Resident
from welfare.sites.models import Site
from welfare.users.models import User

Headers = Callable[..., dict[str, str]]


def _month_start() -> str:
    now = utcnow()
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0).isoformat()


def test_manager_sees_who_looked_at_a_resident_this_month(
    client: TestClient,
    make_resident: Callable[..., Resident],
    make_user: Callable[..., User],
    login: Callable[..., dict[str, str]],
    site: Site,
    headers_for: Headers,
) -> None:
    park = make_resident(full_name="Park Soon-ja", preferred_name="Mrs. Park")
    other = make_resident(full_name="Someone Else")
    joyce = make_user("staff", [site], username="joyce")
    staff = login(joyce)
    assert client.get(f"/api/v1/residents/{park.id}", headers=staff).status_code == 200
    assert client.get(f"/api/v1/residents/{other.id}", headers=staff).status_code == 200

    response = client.get(
        "/api/v1/audit",
        headers=headers_for("manager"),
        params={"resident_id": str(park.id), "since": _month_start(), "action": "resident.read"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 1
    (entry,) = body["items"]
    assert entry["actor_username"] == "joyce" and entry["resident_id"] == str(park.id)
    assert entry["actor_role"] == "staff" and entry["client_addr"]
    assert "Park" not in str(entry)  # ids, never the person's data


def test_audit_filters_by_user_and_date_range(
    client: TestClient,
    make_resident: Callable[..., Resident],
    make_user: Callable[..., User],
    login: Callable[..., dict[str, str]],
    site: Site,
    headers_for: Headers,
) -> None:
    resident = make_resident()
    reader = make_user("staff", [site])
    client.get(f"/api/v1/residents/{resident.id}", headers=login(reader))
    manager = headers_for("manager")
    mine = client.get(
        "/api/v1/audit", headers=manager, params={"user_id": str(reader.id), "action": "resident."}
    ).json()
    assert [e["action"] for e in mine["items"]] == ["resident.read"]
    past = (utcnow() - dt.timedelta(days=1)).isoformat()
    old = client.get(
        "/api/v1/audit", headers=manager, params={"user_id": str(reader.id), "until": past}
    ).json()
    assert old["total"] == 0


def test_manager_of_another_site_sees_nothing_of_this_site(
    client: TestClient,
    make_resident: Callable[..., Resident],
    make_site: Callable[..., Site],
    headers_for: Headers,
) -> None:
    resident = make_resident()
    client.get(f"/api/v1/residents/{resident.id}", headers=headers_for("staff"))
    elsewhere = headers_for("manager", [make_site(name="Elsewhere")])
    body = client.get(
        "/api/v1/audit", headers=elsewhere, params={"resident_id": str(resident.id)}
    ).json()
    assert body == {"items": [], "total": 0, "limit": 50, "offset": 0}


def test_sign_ins_are_visible_to_admins_not_to_managers(
    client: TestClient, headers_for: Headers
) -> None:
    headers_for("guard")  # a sign-in: an entry tied to no site
    admin = client.get(
        "/api/v1/audit", headers=headers_for("admin"), params={"action": "auth.sign_in"}
    ).json()
    manager = client.get(
        "/api/v1/audit", headers=headers_for("manager"), params={"action": "auth.sign_in"}
    ).json()
    assert admin["total"] >= 2 and manager["total"] == 0


def test_reading_the_audit_is_itself_audited(client: TestClient, headers_for: Headers) -> None:
    admin = headers_for("admin")
    client.get("/api/v1/audit", headers=admin)
    body = client.get("/api/v1/audit", headers=admin, params={"action": "audit.read"}).json()
    assert body["total"] >= 1


def test_naive_dates_and_bad_ids_are_422(client: TestClient, headers_for: Headers) -> None:
    manager = headers_for("manager")
    for params in (
        {"since": "2026-11-01T00:00:00"},
        {"resident_id": "not-a-uuid"},
        {"until": "yesterday"},
        {"limit": "500"},
    ):
        assert client.get("/api/v1/audit", headers=manager, params=params).status_code == 422
