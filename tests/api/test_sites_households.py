"""Sites (admin only) and households (staff, within their own sites)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from welfare.sites.models import Household, Site

Headers = Callable[..., dict[str, str]]


def _loc(response: Any) -> list[list[Any]]:
    return [error["loc"] for error in response.json()["detail"]]


# --- sites --------------------------------------------------------------------------------------


def test_admin_creates_site_with_office_phone_normalised_to_e164(
    client: TestClient, headers_for: Headers
) -> None:
    response = client.post(
        "/api/v1/sites",
        json={
            "name": "  Lakeside Court ",
            "timezone": "Asia/Hong_Kong",
            "phone_region": "hk",
            "office_phone": "2345 6789",
            "address": "1 Lakeside Road",
        },
        headers=headers_for("admin"),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "Lakeside Court"
    assert body["timezone"] == "Asia/Hong_Kong"
    assert body["phone_region"] == "HK"
    assert body["office_phone"] == "+85223456789"
    assert body["address"] == "1 Lakeside Road"
    uuid.UUID(body["id"])


def test_site_unknown_timezone_is_422_naming_timezone(
    client: TestClient, headers_for: Headers
) -> None:
    response = client.post(
        "/api/v1/sites",
        json={"name": "X", "timezone": "Asia/Atlantis", "phone_region": "HK"},
        headers=headers_for("admin"),
    )
    assert response.status_code == 422
    assert _loc(response) == [["body", "timezone"]]


@pytest.mark.parametrize("timezone", ["../../etc/passwd", "", "/etc/localtime", "x" * 64])
def test_site_timezone_path_tricks_are_422(
    client: TestClient, headers_for: Headers, timezone: str
) -> None:
    response = client.post(
        "/api/v1/sites",
        json={"name": "X", "timezone": timezone, "phone_region": "HK"},
        headers=headers_for("admin"),
    )
    assert response.status_code == 422
    assert _loc(response) == [["body", "timezone"]]


def test_site_unknown_region_is_422_naming_phone_region(
    client: TestClient, headers_for: Headers
) -> None:
    response = client.post(
        "/api/v1/sites",
        json={"name": "X", "timezone": "UTC", "phone_region": "XX"},
        headers=headers_for("admin"),
    )
    assert response.status_code == 422
    assert _loc(response) == [["body", "phone_region"]]


def test_site_invalid_office_phone_is_422_naming_office_phone(
    client: TestClient, headers_for: Headers
) -> None:
    response = client.post(
        "/api/v1/sites",
        json={"name": "X", "phone_region": "HK", "office_phone": "1234"},
        headers=headers_for("admin"),
    )
    assert response.status_code == 422
    assert _loc(response) == [["body", "office_phone"]]


def test_site_name_with_nul_character_is_422_on_every_database(
    client: TestClient, headers_for: Headers
) -> None:
    response = client.post(
        "/api/v1/sites",
        json={"name": "Bad\x00Name", "phone_region": "HK"},
        headers=headers_for("admin"),
    )
    assert response.status_code == 422
    assert "NUL" in response.json()["detail"][0]["msg"]


def test_site_blank_name_is_422(client: TestClient, headers_for: Headers) -> None:
    response = client.post(
        "/api/v1/sites", json={"name": "   ", "phone_region": "HK"}, headers=headers_for("admin")
    )
    assert response.status_code == 422
    assert _loc(response) == [["body", "name"]]


@pytest.mark.parametrize("role", ["guard", "staff", "manager"])
def test_only_admin_creates_sites(client: TestClient, headers_for: Headers, role: str) -> None:
    response = client.post(
        "/api/v1/sites", json={"name": "X", "phone_region": "HK"}, headers=headers_for(role)
    )
    assert response.status_code == 403
    assert "detail" in response.json()


def test_admin_updates_site_and_office_phone_follows_new_region(
    client: TestClient, headers_for: Headers, site: Site
) -> None:
    response = client.patch(
        f"/api/v1/sites/{site.id}",
        json={
            "phone_region": "gb",
            "office_phone": "020 7946 0018",
            "timezone": "Europe/London",
            "name": "Renamed",
        },
        headers=headers_for("admin"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["phone_region"] == "GB"
    assert body["office_phone"] == "+442079460018"
    assert body["timezone"] == "Europe/London"
    assert body["name"] == "Renamed"


def test_site_update_clears_office_phone_with_null(
    client: TestClient, headers_for: Headers, site: Site
) -> None:
    response = client.patch(
        f"/api/v1/sites/{site.id}", json={"office_phone": None}, headers=headers_for("admin")
    )
    assert response.status_code == 200
    assert response.json()["office_phone"] is None
    assert response.json()["name"] == "Harbour View Gardens"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"phone_region": "QQ"}, "phone_region"),
        ({"office_phone": "12"}, "office_phone"),
        ({"name": "   "}, "name"),
        ({"name": ""}, "name"),
    ],
)
def test_site_update_bad_value_is_422_naming_the_field(
    client: TestClient, headers_for: Headers, site: Site, body: dict[str, Any], field: str
) -> None:
    response = client.patch(f"/api/v1/sites/{site.id}", json=body, headers=headers_for("admin"))
    assert response.status_code == 422
    assert _loc(response) == [["body", field]]


def test_staff_cannot_update_site(client: TestClient, headers_for: Headers, site: Site) -> None:
    response = client.patch(
        f"/api/v1/sites/{site.id}", json={"name": "Mine"}, headers=headers_for("staff")
    )
    assert response.status_code == 403


def test_staff_sees_only_own_sites(
    client: TestClient, headers_for: Headers, site: Site, make_site: Callable[..., Site]
) -> None:
    other = make_site(name="Other Place")
    headers = headers_for("staff")
    listing = client.get("/api/v1/sites", headers=headers)
    assert listing.status_code == 200
    assert [s["id"] for s in listing.json()["items"]] == [str(site.id)]
    assert listing.json()["total"] == 1
    assert client.get(f"/api/v1/sites/{other.id}", headers=headers).status_code == 404
    assert client.get(f"/api/v1/sites/{site.id}", headers=headers).status_code == 200


def test_admin_lists_every_site_by_name(
    client: TestClient, headers_for: Headers, site: Site, make_site: Callable[..., Site]
) -> None:
    make_site(name="Aardvark Estate")
    response = client.get("/api/v1/sites", headers=headers_for("admin"))
    assert response.status_code == 200
    assert [s["name"] for s in response.json()["items"]] == [
        "Aardvark Estate",
        "Harbour View Gardens",
    ]


def test_unknown_site_is_404(client: TestClient, headers_for: Headers) -> None:
    response = client.get(f"/api/v1/sites/{uuid.uuid4()}", headers=headers_for("admin"))
    assert response.status_code == 404
    assert response.json() == {"detail": "site not found"}


def test_malformed_site_id_is_422(client: TestClient, headers_for: Headers) -> None:
    response = client.get("/api/v1/sites/not-a-uuid", headers=headers_for("admin"))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "site_id"]


def test_sites_need_sign_in(client: TestClient) -> None:
    assert client.get("/api/v1/sites").status_code == 401
    assert client.post("/api/v1/sites", json={"name": "X"}).status_code == 401


# --- households ---------------------------------------------------------------------------------


def test_staff_creates_household_in_own_site_with_landline_normalised(
    client: TestClient, headers_for: Headers, site: Site
) -> None:
    response = client.post(
        "/api/v1/households",
        json={"site_id": str(site.id), "building": " 1 ", "unit": "1609", "landline": "2345 6789"},
        headers=headers_for("staff"),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["building"] == "1"
    assert body["unit"] == "1609"
    assert body["unit_label"] == "1-1609"
    assert body["landline"] == "+85223456789"
    assert body["site_id"] == str(site.id)


def test_household_same_building_and_unit_twice_is_409_with_existing_id(
    client: TestClient, headers_for: Headers, site: Site
) -> None:
    headers = headers_for("staff")
    body = {"site_id": str(site.id), "building": "2", "unit": "301"}
    first = client.post("/api/v1/households", json=body, headers=headers)
    assert first.status_code == 201
    second = client.post("/api/v1/households", json=body | {"unit": " 301 "}, headers=headers)
    assert second.status_code == 409
    assert second.json()["existing_id"] == first.json()["id"]
    assert "already exists" in second.json()["detail"]


def test_same_unit_at_another_site_is_allowed(
    client: TestClient, headers_for: Headers, site: Site, make_site: Callable[..., Site]
) -> None:
    other = make_site(name="Other")
    headers = headers_for("staff", [site, other])
    for s in (site, other):
        response = client.post(
            "/api/v1/households",
            json={"site_id": str(s.id), "building": "1", "unit": "1"},
            headers=headers,
        )
        assert response.status_code == 201


@pytest.mark.parametrize("landline", ["1234", "not a phone", "+44 1"])
def test_household_invalid_landline_is_422_naming_landline(
    client: TestClient, headers_for: Headers, site: Site, landline: str
) -> None:
    response = client.post(
        "/api/v1/households",
        json={"site_id": str(site.id), "building": "1", "unit": "2", "landline": landline},
        headers=headers_for("staff"),
    )
    assert response.status_code == 422
    assert _loc(response) == [["body", "landline"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"building": "", "unit": "1"}, "building"),
        ({"building": "1", "unit": ""}, "unit"),
        ({"building": "1", "unit": "x" * 51}, "unit"),
        ({"building": "1"}, "unit"),
        ({"building": 1, "unit": "1"}, "building"),
        ({"building": "1", "unit": "1", "notes": "n" * 2001}, "notes"),
    ],
    ids=["empty-building", "empty-unit", "long-unit", "no-unit", "int-building", "long-notes"],
)
def test_household_bad_fields_are_422_naming_the_field(
    client: TestClient, headers_for: Headers, site: Site, body: dict[str, Any], field: str
) -> None:
    response = client.post(
        "/api/v1/households", json={"site_id": str(site.id)} | body, headers=headers_for("staff")
    )
    assert response.status_code == 422
    assert ["body", field] in _loc(response)


def test_household_blank_unit_is_422(client: TestClient, headers_for: Headers, site: Site) -> None:
    response = client.post(
        "/api/v1/households",
        json={"site_id": str(site.id), "building": "1", "unit": "   "},
        headers=headers_for("staff"),
    )
    assert response.status_code == 422
    assert _loc(response) == [["body", "unit"]]


def test_household_unknown_site_is_422(client: TestClient, headers_for: Headers) -> None:
    response = client.post(
        "/api/v1/households",
        json={"site_id": str(uuid.uuid4()), "building": "1", "unit": "1"},
        headers=headers_for("staff"),
    )
    assert response.status_code == 422
    assert _loc(response) == [["body", "site_id"]]


def test_household_malformed_site_id_is_422(client: TestClient, headers_for: Headers) -> None:
    response = client.post(
        "/api/v1/households",
        json={"site_id": "1", "building": "1", "unit": "1"},
        headers=headers_for("staff"),
    )
    assert response.status_code == 422
    assert _loc(response) == [["body", "site_id"]]


def test_staff_cannot_create_household_at_another_site(
    client: TestClient, headers_for: Headers, make_site: Callable[..., Site]
) -> None:
    other = make_site(name="Other")
    response = client.post(
        "/api/v1/households",
        json={"site_id": str(other.id), "building": "1", "unit": "1"},
        headers=headers_for("staff"),
    )
    assert response.status_code == 404


def test_guard_cannot_create_or_list_households(
    client: TestClient, headers_for: Headers, site: Site
) -> None:
    headers = headers_for("guard")
    response = client.post(
        "/api/v1/households",
        json={"site_id": str(site.id), "building": "1", "unit": "1"},
        headers=headers,
    )
    assert response.status_code == 403
    assert client.get("/api/v1/households", headers=headers).status_code == 403


def test_staff_of_another_site_gets_404_for_household(
    client: TestClient,
    headers_for: Headers,
    make_household: Callable[..., Household],
    make_site: Callable[..., Site],
) -> None:
    household = make_household()
    other = make_site(name="Other")
    headers = headers_for("staff", [other])
    assert client.get(f"/api/v1/households/{household.id}", headers=headers).status_code == 404
    patch = client.patch(f"/api/v1/households/{household.id}", json={"notes": "x"}, headers=headers)
    assert patch.status_code == 404
    assert client.delete(f"/api/v1/households/{household.id}", headers=headers).status_code == 404
    listing = client.get("/api/v1/households", headers=headers)
    assert listing.json()["total"] == 0


def test_household_update_changes_unit_and_landline(
    client: TestClient, headers_for: Headers, make_household: Callable[..., Household]
) -> None:
    household = make_household(building="3", unit="100")
    response = client.patch(
        f"/api/v1/households/{household.id}",
        json={"unit": "101", "landline": "3123 4567", "notes": "dog"},
        headers=headers_for("staff"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["building"], body["unit"], body["unit_label"]) == ("3", "101", "3-101")
    assert body["landline"] == "+85231234567"
    assert body["notes"] == "dog"


def test_household_update_to_taken_unit_is_409_with_existing_id(
    client: TestClient, headers_for: Headers, make_household: Callable[..., Household]
) -> None:
    taken = make_household(building="3", unit="100")
    household = make_household(building="3", unit="200")
    response = client.patch(
        f"/api/v1/households/{household.id}", json={"unit": "100"}, headers=headers_for("staff")
    )
    assert response.status_code == 409
    assert response.json()["existing_id"] == str(taken.id)


def test_household_update_blank_building_is_422(
    client: TestClient, headers_for: Headers, make_household: Callable[..., Household]
) -> None:
    household = make_household()
    response = client.patch(
        f"/api/v1/households/{household.id}", json={"building": "  "}, headers=headers_for("staff")
    )
    assert response.status_code == 422
    assert _loc(response) == [["body", "building"]]


def test_household_update_invalid_landline_is_422(
    client: TestClient, headers_for: Headers, make_household: Callable[..., Household]
) -> None:
    household = make_household()
    response = client.patch(
        f"/api/v1/households/{household.id}", json={"landline": "999"}, headers=headers_for("staff")
    )
    assert response.status_code == 422
    assert _loc(response) == [["body", "landline"]]


def test_household_delete_refused_with_409_while_residents_live_there(
    client: TestClient,
    headers_for: Headers,
    make_household: Callable[..., Household],
    make_resident: Callable[..., Any],
) -> None:
    household = make_household()
    make_resident(household)
    headers = headers_for("staff")
    response = client.delete(f"/api/v1/households/{household.id}", headers=headers)
    assert response.status_code == 409
    assert "residents" in response.json()["detail"]
    assert client.get(f"/api/v1/households/{household.id}", headers=headers).status_code == 200


def test_empty_household_delete_is_204_then_404(
    client: TestClient, headers_for: Headers, make_household: Callable[..., Household]
) -> None:
    household = make_household()
    headers = headers_for("staff")
    response = client.delete(f"/api/v1/households/{household.id}", headers=headers)
    assert response.status_code == 204
    assert response.content == b""
    assert client.get(f"/api/v1/households/{household.id}", headers=headers).status_code == 404
    assert client.delete(f"/api/v1/households/{household.id}", headers=headers).status_code == 404


def test_household_pagination_limit_offset_and_total(
    client: TestClient, headers_for: Headers, make_household: Callable[..., Household]
) -> None:
    for unit in ("105", "101", "104", "102", "103"):
        make_household(building="7", unit=unit)
    headers = headers_for("staff")
    page = client.get("/api/v1/households?limit=2&offset=1", headers=headers)
    assert page.status_code == 200
    body = page.json()
    assert body["total"] == 5
    assert (body["limit"], body["offset"]) == (2, 1)
    assert [h["unit"] for h in body["items"]] == ["102", "103"]
    last = client.get("/api/v1/households?limit=2&offset=4", headers=headers).json()
    assert [h["unit"] for h in last["items"]] == ["105"]
    beyond = client.get("/api/v1/households?offset=50", headers=headers).json()
    assert beyond["items"] == []
    assert beyond["total"] == 5


def test_household_search_by_unit(
    client: TestClient, headers_for: Headers, make_household: Callable[..., Household]
) -> None:
    make_household(building="1", unit="1609")
    make_household(building="2", unit="0300")
    response = client.get("/api/v1/households?q=160", headers=headers_for("staff"))
    assert [h["unit_label"] for h in response.json()["items"]] == ["1-1609"]


def test_household_search_by_unit_label_building_dash_unit(
    client: TestClient, headers_for: Headers, make_household: Callable[..., Household]
) -> None:
    make_household(building="1", unit="1609")
    make_household(building="2", unit="1609")
    response = client.get("/api/v1/households?q=1-1609", headers=headers_for("staff"))
    assert [h["unit_label"] for h in response.json()["items"]] == ["1-1609"]


def test_household_search_over_200_characters_is_422(
    client: TestClient, headers_for: Headers
) -> None:
    response = client.get(
        "/api/v1/households", params={"q": "1" * 201}, headers=headers_for("staff")
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "q"]


def test_household_list_filters_by_site(
    client: TestClient,
    headers_for: Headers,
    site: Site,
    make_site: Callable[..., Site],
    make_household: Callable[..., Household],
) -> None:
    other = make_site(name="Other")
    make_household(unit="1")
    theirs = make_household(unit="2", site_=other)
    headers = headers_for("staff", [site, other])
    response = client.get(f"/api/v1/households?site_id={other.id}", headers=headers)
    assert [h["id"] for h in response.json()["items"]] == [str(theirs.id)]
    assert client.get("/api/v1/households", headers=headers).json()["total"] == 2


@pytest.mark.parametrize("q", ["%", "_", "\\", "'", "%_\\"])
def test_household_search_wildcards_match_literally(
    client: TestClient, headers_for: Headers, make_household: Callable[..., Household], q: str
) -> None:
    make_household(building="1", unit="1609")
    response = client.get("/api/v1/households", params={"q": q}, headers=headers_for("staff"))
    assert response.status_code == 200
    assert response.json()["total"] == 0


@pytest.mark.parametrize(
    "query",
    ["limit=201", "limit=0", "limit=-1", "offset=-1", "limit=abc", "offset=1.5", "limit=1e99"],
)
def test_household_bad_pagination_is_422(
    client: TestClient, headers_for: Headers, query: str
) -> None:
    response = client.get(f"/api/v1/households?{query}", headers=headers_for("staff"))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "query"


def test_household_limit_200_is_allowed(client: TestClient, headers_for: Headers) -> None:
    response = client.get("/api/v1/households?limit=200", headers=headers_for("staff"))
    assert response.status_code == 200
    assert response.json()["limit"] == 200


def test_unknown_and_malformed_household_ids(client: TestClient, headers_for: Headers) -> None:
    headers = headers_for("staff")
    missing = client.get(f"/api/v1/households/{uuid.uuid4()}", headers=headers)
    assert missing.status_code == 404
    assert missing.json() == {"detail": "household not found"}
    malformed = client.get("/api/v1/households/1-1609", headers=headers)
    assert malformed.status_code == 422
    assert malformed.json()["detail"][0]["loc"] == ["path", "household_id"]


def test_household_body_not_json_is_422(client: TestClient, headers_for: Headers) -> None:
    response = client.post(
        "/api/v1/households",
        content=b"building=1",
        headers=headers_for("staff") | {"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert "detail" in response.json()


def test_letters_in_a_site_office_phone_are_422_never_keypad_digits(
    client: TestClient, headers_for: Headers, site: Site
) -> None:
    admin = headers_for("admin")
    created = client.post(
        "/api/v1/sites",
        json={"name": "X", "phone_region": "HK", "office_phone": "+852 2abc 6789"},
        headers=admin,
    )
    assert created.status_code == 422 and _loc(created) == [["body", "office_phone"]]
    assert created.json()["detail"][0]["msg"].startswith("letters are not allowed")
    updated = client.patch(
        f"/api/v1/sites/{site.id}", json={"office_phone": "2345 67B9"}, headers=admin
    )
    assert updated.status_code == 422 and _loc(updated) == [["body", "office_phone"]]


def test_letters_in_a_household_landline_are_422_never_keypad_digits(
    client: TestClient, headers_for: Headers, site: Site
) -> None:
    response = client.post(
        "/api/v1/households",
        json={"site_id": str(site.id), "building": "1", "unit": "2", "landline": "2345 6789 x1"},
        headers=headers_for("staff"),
    )
    assert response.status_code == 422 and _loc(response) == [["body", "landline"]]
    assert response.json()["detail"][0]["msg"].startswith("letters are not allowed")
