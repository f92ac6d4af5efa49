"""Residents: the staff registry (create, read, search, update) and who may see what."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from welfare.audit.models import AuditEntry
from welfare.residents.models import Resident
from welfare.sites.models import Household, Site

Headers = Callable[..., dict[str, str]]
MakeHousehold = Callable[..., Household]
MakeResident = Callable[..., Resident]

SUMMARY_KEYS = {
    "id",
    "site_id",
    "household_id",
    "unit",
    "full_name",
    "preferred_name",
    "aliases",
    "languages",
    "risk_level",
    "consent_state",
    "has_photo",
    "photo_url",
}


@pytest.fixture
def staff(headers_for: Headers) -> dict[str, str]:
    return headers_for("staff")


def _loc(response: Any) -> list[list[Any]]:
    return [error["loc"] for error in response.json()["detail"]]


def _full_body(household: Household) -> dict[str, Any]:
    return {
        "household_id": str(household.id),
        "full_name": "  Wang Jianguo ",
        "preferred_name": "Mr. Wang",
        "aliases": ["王建国", "Old Wang"],
        "birth_year": 1942,
        "birth_date": "1942-03-05",
        "sex": "male",
        "languages": ["zh-cn", "yue_hk", "EN-gb", "zh-CN"],
        "height_cm": 168,
        "build": "slim",
        "hair": "white, short",
        "eyes": "brown",
        "distinguishing_marks": "scar on the left hand",
        "clothing": "grey cardigan",
        "care_needs": "needs reading glasses",
        "medical_notes": "Alzheimer's disease; donepezil 10 mg",
        "approach": "Speak Mandarin slowly; mention his grandson",
        "routines": "walks to the park at 7am",
        "places": ["Tai Po market", "Sun Yat Sen park"],
        "wandering_history": [
            {"occurred_on": "2024-05-01", "location": "MTR station", "note": "found by a guard"}
        ],
        "risk_level": "high",
    }


# --- create and read ----------------------------------------------------------------------------


def test_create_resident_with_every_field_and_read_it_back_in_full(
    client: TestClient, staff: dict[str, str], site: Site, make_household: MakeHousehold
) -> None:
    household = make_household(building="1", unit="1609")
    created = client.post("/api/v1/residents", json=_full_body(household), headers=staff)
    assert created.status_code == 201, created.text
    resident_id = created.json()["id"]
    read = client.get(f"/api/v1/residents/{resident_id}", headers=staff)
    assert read.status_code == 200
    for body in (created.json(), read.json()):
        assert body["household_id"] == str(household.id)
        assert body["site_id"] == str(site.id)
        assert body["unit"] == "1-1609"
        assert body["full_name"] == "Wang Jianguo"
        assert body["preferred_name"] == "Mr. Wang"
        assert body["aliases"] == ["王建国", "Old Wang"]
        assert body["birth_year"] == 1942
        assert body["birth_date"] == "1942-03-05"
        assert body["sex"] == "male"
        assert body["languages"] == ["zh-CN", "yue-HK", "en-GB"]
        assert body["height_cm"] == 168
        assert (body["build"], body["hair"], body["eyes"]) == ("slim", "white, short", "brown")
        assert body["distinguishing_marks"] == "scar on the left hand"
        assert body["clothing"] == "grey cardigan"
        assert body["care_needs"] == "needs reading glasses"
        assert body["medical_notes"] == "Alzheimer's disease; donepezil 10 mg"
        assert body["approach"] == "Speak Mandarin slowly; mention his grandson"
        assert body["routines"] == "walks to the park at 7am"
        assert body["places"] == ["Tai Po market", "Sun Yat Sen park"]
        assert body["wandering_history"] == [
            {
                "occurred_on": "2024-05-01",
                "location": "MTR station",
                "note": "found by a guard",
                "incident_id": None,
            }
        ]
        assert body["risk_level"] == "high"
        assert body["consent_state"] == "none"
        assert body["has_photo"] is False
        assert body["photo_url"] is None
        assert body["erased_at"] is None


def test_create_resident_minimal_uses_defaults(
    client: TestClient, staff: dict[str, str], make_household: MakeHousehold
) -> None:
    household = make_household()
    response = client.post(
        "/api/v1/residents",
        json={"household_id": str(household.id), "full_name": "Park Soon-ja"},
        headers=staff,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["sex"] == "unknown"
    assert body["risk_level"] == "medium"
    assert body["aliases"] == body["languages"] == body["places"] == []
    assert body["wandering_history"] == []
    assert body["birth_year"] is None and body["birth_date"] is None


def test_read_resident_is_audited_with_the_reader(
    client: TestClient,
    make_user: Callable[..., Any],
    login: Callable[..., dict[str, str]],
    site: Site,
    make_resident: MakeResident,
    db: Session,
) -> None:
    resident = make_resident()
    user = make_user("staff", [site])
    assert client.get(f"/api/v1/residents/{resident.id}", headers=login(user)).status_code == 200
    db.expire_all()
    reads = db.exec(
        select(AuditEntry).where(
            AuditEntry.action == "resident.read", AuditEntry.resident_id == resident.id
        )
    ).all()
    assert [entry.actor_id for entry in reads] == [user.id]
    assert "medical_notes" in reads[0].detail["fields"]


@pytest.mark.parametrize(
    ("birth_year", "birth_date"),
    [(1942, "1943-01-01"), (1950, "1949-12-31")],
)
def test_birth_year_and_date_disagreeing_is_422(
    client: TestClient,
    staff: dict[str, str],
    make_household: MakeHousehold,
    birth_year: int,
    birth_date: str,
) -> None:
    response = client.post(
        "/api/v1/residents",
        json={
            "household_id": str(make_household().id),
            "full_name": "A",
            "birth_year": birth_year,
            "birth_date": birth_date,
        },
        headers=staff,
    )
    assert response.status_code == 422
    assert "disagree" in response.json()["detail"][0]["msg"]


def test_birth_date_in_the_future_is_422(
    client: TestClient, staff: dict[str, str], make_household: MakeHousehold
) -> None:
    tomorrow = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    response = client.post(
        "/api/v1/residents",
        json={"household_id": str(make_household().id), "full_name": "A", "birth_date": tomorrow},
        headers=staff,
    )
    assert response.status_code == 422
    assert "future" in response.json()["detail"][0]["msg"]


def test_birth_date_alone_is_accepted(
    client: TestClient, staff: dict[str, str], make_household: MakeHousehold
) -> None:
    response = client.post(
        "/api/v1/residents",
        json={
            "household_id": str(make_household().id),
            "full_name": "A",
            "birth_date": "1930-01-31",
        },
        headers=staff,
    )
    assert response.status_code == 201
    assert response.json()["birth_date"] == "1930-01-31"


@pytest.mark.parametrize(("height", "status"), [(39, 422), (40, 201), (250, 201), (251, 422)])
def test_height_bounds(
    client: TestClient,
    staff: dict[str, str],
    make_household: MakeHousehold,
    height: int,
    status: int,
) -> None:
    response = client.post(
        "/api/v1/residents",
        json={"household_id": str(make_household().id), "full_name": "A", "height_cm": height},
        headers=staff,
    )
    assert response.status_code == status
    if status == 422:
        assert _loc(response) == [["body", "height_cm"]]
    else:
        assert response.json()["height_cm"] == height


@pytest.mark.parametrize(
    ("extra", "loc"),
    [
        ({"full_name": ""}, ["body", "full_name"]),
        ({"full_name": "   "}, ["body", "full_name"]),
        ({"full_name": "x" * 201}, ["body", "full_name"]),
        ({"full_name": None}, ["body", "full_name"]),
        ({"full_name": 12}, ["body", "full_name"]),
        ({"preferred_name": "x" * 201}, ["body", "preferred_name"]),
        ({"medical_notes": "x" * 4001}, ["body", "medical_notes"]),
        ({"care_needs": "x" * 4001}, ["body", "care_needs"]),
        ({"height_cm": "tall"}, ["body", "height_cm"]),
        ({"height_cm": 10**30}, ["body", "height_cm"]),
        ({"birth_year": 1700}, ["body", "birth_year"]),
        ({"birth_date": "05/03/1942"}, ["body", "birth_date"]),
        ({"sex": "yes"}, ["body", "sex"]),
        ({"risk_level": "extreme"}, ["body", "risk_level"]),
        ({"languages": "zh-CN"}, ["body", "languages"]),
        ({"languages": ["Mandarin"]}, ["body", "languages", 0]),
        ({"languages": ["en"] * 11}, ["body", "languages"]),
        ({"aliases": ["x"] * 21}, ["body", "aliases"]),
        ({"aliases": [""]}, ["body", "aliases", 0]),
        ({"aliases": ["x" * 201]}, ["body", "aliases", 0]),
        ({"places": [""]}, ["body", "places", 0]),
        ({"places": ["p" * 301]}, ["body", "places", 0]),
        (
            {"wandering_history": [{"location": "park"}]},
            ["body", "wandering_history", 0, "occurred_on"],
        ),
        (
            {"wandering_history": [{"occurred_on": "2024-13-01", "location": "park"}]},
            ["body", "wandering_history", 0, "occurred_on"],
        ),
        (
            {"wandering_history": [{"occurred_on": "2024-01-01", "location": ""}]},
            ["body", "wandering_history", 0, "location"],
        ),
        (
            {"wandering_history": [{"occurred_on": "2024-01-01", "location": "x" * 301}]},
            ["body", "wandering_history", 0, "location"],
        ),
        ({"household_id": "1-1609"}, ["body", "household_id"]),
        ({"household_id": None}, ["body", "household_id"]),
    ],
)
def test_create_resident_bad_field_is_422_naming_it(
    client: TestClient,
    staff: dict[str, str],
    make_household: MakeHousehold,
    extra: dict[str, Any],
    loc: list[Any],
) -> None:
    body = {"household_id": str(make_household().id), "full_name": "Wang Jianguo"} | extra
    response = client.post("/api/v1/residents", json=body, headers=staff)
    assert response.status_code == 422, response.text
    assert loc in _loc(response)
    for error in response.json()["detail"]:
        assert "input" not in error  # submitted personal data is never echoed back


def test_create_resident_in_unknown_household_is_422(
    client: TestClient, staff: dict[str, str]
) -> None:
    response = client.post(
        "/api/v1/residents",
        json={"household_id": str(uuid.uuid4()), "full_name": "A"},
        headers=staff,
    )
    assert response.status_code == 422
    assert _loc(response) == [["body", "household_id"]]


def test_create_resident_in_another_sites_household_is_422(
    client: TestClient,
    staff: dict[str, str],
    make_site: Callable[..., Site],
    make_household: MakeHousehold,
) -> None:
    other = make_site(name="Other")
    response = client.post(
        "/api/v1/residents",
        json={"household_id": str(make_household(site_=other).id), "full_name": "A"},
        headers=staff,
    )
    assert response.status_code == 422
    assert _loc(response) == [["body", "household_id"]]


def test_create_resident_body_not_an_object_is_422(
    client: TestClient, staff: dict[str, str]
) -> None:
    for body in ([], "x", 1, None):
        response = client.post("/api/v1/residents", json=body, headers=staff)
        assert response.status_code == 422
        assert "detail" in response.json()


def test_server_owned_fields_in_the_body_are_ignored(
    client: TestClient,
    staff: dict[str, str],
    site: Site,
    make_site: Callable[..., Site],
    make_household: MakeHousehold,
) -> None:
    other = make_site(name="Other")
    planted = str(uuid.uuid4())
    owned = {
        "id": planted,
        "site_id": str(other.id),
        "photo_file": "../../../etc/passwd",
        "erased_at": "2020-01-01T00:00:00Z",
        "consent_state": "active",
    }
    response = client.post(
        "/api/v1/residents",
        json={"household_id": str(make_household().id), "full_name": "A"} | owned,
        headers=staff,
    )
    assert response.status_code == 201
    body = response.json()
    assert body["id"] != planted
    assert body["site_id"] == str(site.id)
    assert (body["has_photo"], body["erased_at"], body["consent_state"]) == (False, None, "none")
    patched = client.patch(f"/api/v1/residents/{body['id']}", json=owned, headers=staff)
    assert patched.status_code == 200
    assert patched.json()["site_id"] == str(site.id)
    assert patched.json()["has_photo"] is False
    assert patched.json()["erased_at"] is None


# --- duplicates ---------------------------------------------------------------------------------


def test_duplicate_name_at_same_household_is_409_with_existing_id(
    client: TestClient, staff: dict[str, str], make_household: MakeHousehold
) -> None:
    household = make_household()
    body = {"household_id": str(household.id), "full_name": "Wang Jianguo"}
    first = client.post("/api/v1/residents", json=body, headers=staff)
    assert first.status_code == 201
    again = client.post(
        "/api/v1/residents", json=body | {"full_name": " WANG jianguo "}, headers=staff
    )
    assert again.status_code == 409
    assert again.json()["existing_id"] == first.json()["id"]
    assert "allow_duplicate" in again.json()["detail"]


def test_duplicate_check_ignores_case_of_non_ascii_names(
    client: TestClient, staff: dict[str, str], make_household: MakeHousehold
) -> None:
    household = make_household()
    first = client.post(
        "/api/v1/residents",
        json={"household_id": str(household.id), "full_name": "Zoë Åberg"},
        headers=staff,
    )
    again = client.post(
        "/api/v1/residents",
        json={"household_id": str(household.id), "full_name": "ZOË ÅBERG"},
        headers=staff,
    )
    assert again.status_code == 409
    assert again.json()["existing_id"] == first.json()["id"]


def test_duplicate_name_allowed_with_allow_duplicate_true(
    client: TestClient, staff: dict[str, str], make_household: MakeHousehold
) -> None:
    household = make_household()
    body = {"household_id": str(household.id), "full_name": "Wang Jianguo"}
    assert client.post("/api/v1/residents", json=body, headers=staff).status_code == 201
    response = client.post("/api/v1/residents?allow_duplicate=true", json=body, headers=staff)
    assert response.status_code == 201
    listing = client.get(f"/api/v1/residents?household_id={household.id}", headers=staff)
    assert listing.json()["total"] == 2


def test_same_name_at_another_household_is_not_a_duplicate(
    client: TestClient, staff: dict[str, str], make_household: MakeHousehold
) -> None:
    for household in (make_household(), make_household()):
        response = client.post(
            "/api/v1/residents",
            json={"household_id": str(household.id), "full_name": "Wang Jianguo"},
            headers=staff,
        )
        assert response.status_code == 201


def test_allow_duplicate_not_a_boolean_is_422(
    client: TestClient, staff: dict[str, str], make_household: MakeHousehold
) -> None:
    response = client.post(
        "/api/v1/residents?allow_duplicate=maybe",
        json={"household_id": str(make_household().id), "full_name": "A"},
        headers=staff,
    )
    assert response.status_code == 422
    assert _loc(response) == [["query", "allow_duplicate"]]


# --- list and search ----------------------------------------------------------------------------


def test_list_rows_carry_no_health_data(
    client: TestClient, staff: dict[str, str], make_resident: MakeResident
) -> None:
    make_resident(care_needs="insulin twice a day", routines="park at 7")
    response = client.get("/api/v1/residents", headers=staff)
    assert response.status_code == 200
    (row,) = response.json()["items"]
    assert set(row) == SUMMARY_KEYS
    assert "Alzheimer" not in response.text
    assert "insulin" not in response.text
    assert "grandson" not in response.text


@pytest.fixture
def three_residents(make_household: MakeHousehold, make_resident: MakeResident) -> list[Resident]:
    return [
        make_resident(
            make_household(building="1", unit="1609"),
            full_name="Wang Jianguo",
            preferred_name="Mr. Wang",
            aliases=["王建国", "Old Wang"],
        ),
        make_resident(
            make_household(building="2", unit="0801"),
            full_name="Park Soon-ja",
            preferred_name="Mrs. Park",
            aliases=["박순자"],
            languages=["ko-KR"],
        ),
        make_resident(
            make_household(building="3", unit="1203"),
            full_name="Margaret Lee",
            preferred_name="Maggie",
            aliases=[],
            languages=["en-GB"],
        ),
    ]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("wang", ["Wang Jianguo"]),
        ("JIANGUO", ["Wang Jianguo"]),
        ("王建国", ["Wang Jianguo"]),
        ("建国", ["Wang Jianguo"]),
        ("박순자", ["Park Soon-ja"]),
        ("old wang", ["Wang Jianguo"]),
        ("maggie", ["Margaret Lee"]),
        ("1609", ["Wang Jianguo"]),
        ("1-1609", ["Wang Jianguo"]),
        ("0801", ["Park Soon-ja"]),
        ("  park  ", ["Park Soon-ja"]),
        ("ar", ["Margaret Lee", "Park Soon-ja"]),
        ("a", ["Margaret Lee", "Park Soon-ja", "Wang Jianguo"]),
        (",", []),
        ('", "', []),
        ("nobody", []),
        ("%", []),
        ("_", []),
        ("\\", []),
        ('"', []),
        ("'", []),
    ],
)
def test_search_by_name_alias_and_unit(
    client: TestClient,
    staff: dict[str, str],
    three_residents: list[Resident],
    q: str,
    expected: list[str],
) -> None:
    response = client.get("/api/v1/residents", params={"q": q}, headers=staff)
    assert response.status_code == 200, response.text
    assert [row["full_name"] for row in response.json()["items"]] == expected
    assert response.json()["total"] == len(expected)


def test_list_is_ordered_by_name_and_paginated(
    client: TestClient, staff: dict[str, str], three_residents: list[Resident]
) -> None:
    response = client.get("/api/v1/residents?limit=2&offset=1", headers=staff)
    body = response.json()
    assert [row["full_name"] for row in body["items"]] == ["Park Soon-ja", "Wang Jianguo"]
    assert (body["total"], body["limit"], body["offset"]) == (3, 2, 1)


def test_list_row_shows_unit_label(
    client: TestClient, staff: dict[str, str], three_residents: list[Resident]
) -> None:
    response = client.get("/api/v1/residents?q=Margaret", headers=staff)
    (row,) = response.json()["items"]
    assert row["unit"] == "3-1203"
    assert row["languages"] == ["en-GB"]
    assert row["preferred_name"] == "Maggie"


@pytest.mark.parametrize(
    "query", ["limit=201", "offset=-1", "limit=0", "q=" + "x" * 201, "site_id=x", "household_id=1"]
)
def test_list_bad_query_is_422(client: TestClient, staff: dict[str, str], query: str) -> None:
    response = client.get(f"/api/v1/residents?{query}", headers=staff)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "query"


def test_list_shows_only_own_sites_residents(
    client: TestClient,
    headers_for: Headers,
    make_site: Callable[..., Site],
    make_household: MakeHousehold,
    make_resident: MakeResident,
) -> None:
    mine = make_resident(full_name="Mine")
    other = make_site(name="Other")
    make_resident(make_household(site_=other), full_name="Theirs")
    response = client.get("/api/v1/residents", headers=headers_for("staff"))
    assert [row["id"] for row in response.json()["items"]] == [str(mine.id)]
    filtered = client.get(f"/api/v1/residents?site_id={other.id}", headers=headers_for("staff"))
    assert filtered.json() == {"items": [], "total": 0, "limit": 50, "offset": 0}


# --- update -------------------------------------------------------------------------------------


def test_patch_changes_only_the_fields_sent(
    client: TestClient, staff: dict[str, str], make_resident: MakeResident
) -> None:
    resident = make_resident(height_cm=170, aliases=["Old Wang"])
    response = client.patch(
        f"/api/v1/residents/{resident.id}",
        json={"preferred_name": "Grandpa Wang", "languages": ["yue-hk", "zh-cn"]},
        headers=staff,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["preferred_name"] == "Grandpa Wang"
    assert body["languages"] == ["yue-HK", "zh-CN"]
    assert body["full_name"] == "Wang Jianguo"
    assert body["height_cm"] == 170
    assert body["aliases"] == ["Old Wang"]
    assert body["medical_notes"] == "Alzheimer's disease"
    read = client.get(f"/api/v1/residents/{resident.id}", headers=staff).json()
    assert read["preferred_name"] == "Grandpa Wang"
    assert read["updated_at"] > read["created_at"]


def test_patch_null_clears_optional_text_and_lists(
    client: TestClient, staff: dict[str, str], make_resident: MakeResident
) -> None:
    resident = make_resident(aliases=["Old Wang"], places=["market"])
    response = client.patch(
        f"/api/v1/residents/{resident.id}",
        json={"medical_notes": None, "aliases": None, "places": [], "wandering_history": None},
        headers=staff,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["medical_notes"] is None
    assert body["aliases"] == body["places"] == body["wandering_history"] == []


def test_patch_wandering_history_and_risk(
    client: TestClient, staff: dict[str, str], make_resident: MakeResident
) -> None:
    resident = make_resident()
    incident = str(uuid.uuid4())
    entries = [
        {"occurred_on": "2024-01-02", "location": "bus stop", "incident_id": incident},
        {"occurred_on": "2024-03-04", "location": "park"},
    ]
    response = client.patch(
        f"/api/v1/residents/{resident.id}",
        json={"wandering_history": entries, "risk_level": "low", "sex": "male"},
        headers=staff,
    )
    assert response.status_code == 200
    history = client.get(f"/api/v1/residents/{resident.id}", headers=staff).json()
    assert history["wandering_history"] == [
        {
            "occurred_on": "2024-01-02",
            "location": "bus stop",
            "note": None,
            "incident_id": incident,
        },
        {"occurred_on": "2024-03-04", "location": "park", "note": None, "incident_id": None},
    ]
    assert (history["risk_level"], history["sex"]) == ("low", "male")


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"full_name": None}, ["body", "full_name"]),
        ({"full_name": ""}, ["body", "full_name"]),
        ({"sex": None}, ["body", "sex"]),
        ({"risk_level": None}, ["body", "risk_level"]),
        ({"height_cm": 251}, ["body", "height_cm"]),
        ({"languages": ["not a tag"]}, ["body", "languages", 0]),
        ({"household_id": None}, ["body", "household_id"]),
        ({"household_id": "nope"}, ["body", "household_id"]),
        ({"medical_notes": "x" * 4001}, ["body", "medical_notes"]),
        ({"hair": "grey\x00"}, ["body"]),
        ({"aliases": ["ok", "bad\x00"]}, ["body"]),
    ],
)
def test_patch_bad_value_is_422_naming_the_field(
    client: TestClient,
    staff: dict[str, str],
    make_resident: MakeResident,
    body: dict[str, Any],
    loc: list[Any],
) -> None:
    resident = make_resident()
    response = client.patch(f"/api/v1/residents/{resident.id}", json=body, headers=staff)
    assert response.status_code == 422, response.text
    assert loc in _loc(response)
    unchanged = client.get(f"/api/v1/residents/{resident.id}", headers=staff).json()
    assert unchanged["full_name"] == "Wang Jianguo"
    assert unchanged["sex"] == "unknown"


def test_patch_birth_year_disagreeing_with_stored_date_is_422(
    client: TestClient, staff: dict[str, str], make_resident: MakeResident
) -> None:
    resident = make_resident(birth_date=dt.date(1942, 3, 5))
    response = client.patch(
        f"/api/v1/residents/{resident.id}", json={"birth_year": 1950}, headers=staff
    )
    assert response.status_code == 422
    assert _loc(response) == [["body", "birth_date"]]
    ok = client.patch(
        f"/api/v1/residents/{resident.id}",
        json={"birth_year": 1950, "birth_date": "1950-06-01"},
        headers=staff,
    )
    assert ok.status_code == 200
    assert (ok.json()["birth_year"], ok.json()["birth_date"]) == (1950, "1950-06-01")


def test_patch_birth_date_in_the_future_is_422(
    client: TestClient, staff: dict[str, str], make_resident: MakeResident
) -> None:
    resident = make_resident()
    future = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    response = client.patch(
        f"/api/v1/residents/{resident.id}", json={"birth_date": future}, headers=staff
    )
    assert response.status_code == 422
    assert _loc(response) == [["body", "birth_date"]]


def test_patch_moves_resident_to_another_household_of_the_site(
    client: TestClient,
    staff: dict[str, str],
    make_household: MakeHousehold,
    make_resident: MakeResident,
) -> None:
    resident = make_resident(make_household(building="1", unit="100"))
    target = make_household(building="2", unit="200")
    response = client.patch(
        f"/api/v1/residents/{resident.id}", json={"household_id": str(target.id)}, headers=staff
    )
    assert response.status_code == 200
    assert response.json()["household_id"] == str(target.id)
    assert response.json()["unit"] == "2-200"


def test_patch_move_to_household_with_same_name_is_409(
    client: TestClient,
    staff: dict[str, str],
    make_household: MakeHousehold,
    make_resident: MakeResident,
) -> None:
    resident = make_resident()
    target = make_household()
    existing = make_resident(target)
    response = client.patch(
        f"/api/v1/residents/{resident.id}", json={"household_id": str(target.id)}, headers=staff
    )
    assert response.status_code == 409
    assert response.json()["existing_id"] == str(existing.id)


def test_patch_rename_to_housemates_name_is_409(
    client: TestClient,
    staff: dict[str, str],
    make_household: MakeHousehold,
    make_resident: MakeResident,
) -> None:
    household = make_household()
    wang = make_resident(household)
    li = make_resident(household, full_name="Li Mei")
    response = client.patch(
        f"/api/v1/residents/{li.id}", json={"full_name": "wang jianguo"}, headers=staff
    )
    assert response.status_code == 409
    assert response.json()["existing_id"] == str(wang.id)
    same = client.patch(
        f"/api/v1/residents/{wang.id}", json={"full_name": "WANG Jianguo"}, headers=staff
    )
    assert same.status_code == 200  # a resident is not a duplicate of themself


def test_patch_move_to_another_sites_household_is_refused(
    client: TestClient,
    headers_for: Headers,
    site: Site,
    make_site: Callable[..., Site],
    make_household: MakeHousehold,
    make_resident: MakeResident,
) -> None:
    resident = make_resident()
    other = make_site(name="Other")
    elsewhere = make_household(site_=other)
    for headers in (headers_for("staff"), headers_for("staff", [site, other])):
        response = client.patch(
            f"/api/v1/residents/{resident.id}",
            json={"household_id": str(elsewhere.id)},
            headers=headers,
        )
        assert response.status_code == 422
        assert _loc(response) == [["body", "household_id"]]
    stays = client.get(f"/api/v1/residents/{resident.id}", headers=headers_for("staff")).json()
    assert stays["site_id"] == str(site.id)
    assert stays["household_id"] == str(resident.household_id)


# --- who may see what ---------------------------------------------------------------------------


def test_staff_of_another_site_gets_404(
    client: TestClient,
    headers_for: Headers,
    make_site: Callable[..., Site],
    make_resident: MakeResident,
) -> None:
    resident = make_resident()
    headers = headers_for("staff", [make_site(name="Other")])
    read = client.get(f"/api/v1/residents/{resident.id}", headers=headers)
    assert read.status_code == 404
    assert read.json() == {"detail": "resident not found"}
    patch = client.patch(f"/api/v1/residents/{resident.id}", json={"hair": "x"}, headers=headers)
    assert patch.status_code == 404
    assert client.get("/api/v1/residents", headers=headers).json()["total"] == 0


def test_admin_outside_the_site_cannot_read_health_data(
    client: TestClient,
    headers_for: Headers,
    make_site: Callable[..., Site],
    make_resident: MakeResident,
) -> None:
    resident = make_resident()
    headers = headers_for("admin", [make_site(name="Head office")])
    assert client.get(f"/api/v1/residents/{resident.id}", headers=headers).status_code == 404


@pytest.mark.parametrize("role", ["manager", "admin"])
def test_manager_and_admin_of_the_site_read_everything(
    client: TestClient, headers_for: Headers, make_resident: MakeResident, role: str
) -> None:
    resident = make_resident()
    response = client.get(f"/api/v1/residents/{resident.id}", headers=headers_for(role))
    assert response.status_code == 200
    assert response.json()["medical_notes"] == "Alzheimer's disease"


def test_guard_gets_403_on_the_registry(
    client: TestClient,
    headers_for: Headers,
    make_household: MakeHousehold,
    make_resident: MakeResident,
) -> None:
    resident = make_resident()
    guard = headers_for("guard")
    assert client.get("/api/v1/residents", headers=guard).status_code == 403
    assert client.get("/api/v1/residents?q=wang", headers=guard).status_code == 403
    read = client.get(f"/api/v1/residents/{resident.id}", headers=guard)
    assert read.status_code == 403
    assert "Alzheimer" not in read.text
    patch = client.patch(f"/api/v1/residents/{resident.id}", json={"hair": "x"}, headers=guard)
    assert patch.status_code == 403
    create = client.post(
        "/api/v1/residents",
        json={"household_id": str(make_household().id), "full_name": "A"},
        headers=guard,
    )
    assert create.status_code == 403


def test_unauthenticated_gets_401(client: TestClient, make_resident: MakeResident) -> None:
    resident = make_resident()
    for response in (
        client.get("/api/v1/residents"),
        client.get(f"/api/v1/residents/{resident.id}"),
        client.patch(f"/api/v1/residents/{resident.id}", json={"hair": "x"}),
        client.post("/api/v1/residents", json={}),
        client.get(f"/api/v1/residents/{resident.id}", headers={"Authorization": "Bearer nope"}),
    ):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "detail" in response.json()


def test_unknown_and_malformed_resident_ids(client: TestClient, staff: dict[str, str]) -> None:
    missing = client.get(f"/api/v1/residents/{uuid.uuid4()}", headers=staff)
    assert missing.status_code == 404
    assert missing.json() == {"detail": "resident not found"}
    patch = client.patch(f"/api/v1/residents/{uuid.uuid4()}", json={"hair": "x"}, headers=staff)
    assert patch.status_code == 404
    for bad in ("123", "not-a-uuid", "' OR 1=1 --", "x" * 500):
        response = client.get(f"/api/v1/residents/{bad}", headers=staff)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["path", "resident_id"]


def test_nul_character_in_text_is_a_4xx_not_a_500(
    client: TestClient, staff: dict[str, str], make_household: MakeHousehold
) -> None:
    household = make_household()
    response = client.post(
        "/api/v1/residents",
        json={"household_id": str(household.id), "full_name": "Wang\x00Jianguo"},
        headers=staff,
    )
    assert response.status_code == 422
    assert "detail" in response.json()
    search = client.get("/api/v1/residents", params={"q": "a\x00b"}, headers=staff)
    assert search.status_code == 200
    assert search.json()["total"] == 0
    patch = client.post(
        "/api/v1/residents",
        json={
            "household_id": str(household.id),
            "full_name": "Wang",
            "wandering_history": [{"occurred_on": "2024-01-01", "location": "x\x00"}],
        },
        headers=staff,
    )
    assert patch.status_code == 422


def test_letters_in_the_residents_phone_are_422_never_keypad_digits(
    client: TestClient, staff: dict[str, str], make_household: MakeHousehold
) -> None:
    household = make_household()
    body = {"household_id": str(household.id), "full_name": "Wang Jianguo"}
    refused = client.post(
        "/api/v1/residents", json=body | {"phone": "+852 9abc 1234"}, headers=staff
    )
    assert refused.status_code == 422
    [error] = refused.json()["detail"]
    assert error["loc"] == ["body", "phone"]
    assert error["msg"].startswith("letters are not allowed in a phone number")
    created = client.post("/api/v1/residents", json=body, headers=staff)
    assert created.status_code == 201, created.text
    patched = client.patch(
        f"/api/v1/residents/{created.json()['id']}", json={"phone": "9123 4S67"}, headers=staff
    )
    assert patched.status_code == 422
    assert patched.json()["detail"][0]["loc"] == ["body", "phone"]


def test_an_unknown_language_is_422_naming_it_and_saying_what_a_code_looks_like(
    client: TestClient, staff: dict[str, str], make_household: MakeHousehold
) -> None:
    body = {"household_id": str(make_household().id), "full_name": "Wang Jianguo"}
    response = client.post(
        "/api/v1/residents", json=body | {"languages": ["en", "klingon"]}, headers=staff
    )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "languages", 1]
    assert "unknown language 'klingon': use a code such as ko, zh-CN, en" in error["msg"]
