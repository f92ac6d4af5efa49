"""GET /api/v1/lookup: the guard's minimal cards over HTTP, and the card's thumbnail."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import Session, col, select

from tests.conftest import SYSTEM
from welfare import consents
from welfare.audit.models import AuditEntry
from welfare.consent.models import ConsentCreate
from welfare.residents import service as residents
from welfare.residents.models import Resident
from welfare.settings import Settings
from welfare.sites.models import Household, Site
from welfare.tags import service as tags

CARD_FIELDS = {
    "resident_id",
    "site_id",
    "preferred_name",
    "unit",
    "languages",
    "approach",
    # How to recognise them: what a description search looks in, never health data.
    "height_cm",
    "build",
    "hair",
    "eyes",
    "clothing",
    "distinguishing_marks",
    "walking_aid",
    "photo_url",
    "photo_illustration",
    "consent_state",
    "unverified",
    "score",
    "matched",
    "matched_terms",
}
URL = "/api/v1/lookup"


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(out, format="JPEG")
    return out.getvalue()


@pytest.fixture
def wang(
    db: Session,
    make_household: Callable[..., Household],
    make_resident: Callable[..., Resident],
    make_contact: Callable[..., Any],
) -> Resident:
    """Mr. Wang of 1-1609, with medical notes, care needs and a son's phone on record."""
    resident = make_resident(
        household=make_household(building="1", unit="1609"),
        care_needs="Needs help with stairs",
        medical_notes="Alzheimer's disease, on donepezil",
        clothing="grey coat",
    )
    consents.record_consent(
        session=db,
        actor=SYSTEM,
        resident_id=resident.id,
        data=ConsentCreate(
            given_by_kind="resident",
            given_by_name="Wang Jianguo",
            method="written",
            scopes=["registry", "lost_person_response"],
        ),
    )
    db.commit()
    make_contact(resident, name="Wang Lei", phone="9123 4567")
    return resident


def test_a_guard_gets_minimal_cards_and_nothing_else(
    client: TestClient, headers_for: Callable[..., dict[str, str]], wang: Resident
) -> None:
    response = client.get(URL, params={"q": "1-1609"}, headers=headers_for("guard"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"items", "total"}
    assert body["total"] == 1
    [card] = body["items"]
    assert set(card) == CARD_FIELDS
    assert card["resident_id"] == str(wang.id)
    assert card["preferred_name"] == "Mr. Wang"
    assert card["unit"] == "1-1609"
    assert card["languages"] == ["zh-CN"]
    assert card["approach"] == "Talk about his grandson."
    assert card["photo_url"] is None
    assert card["clothing"] == "grey coat"
    assert (card["consent_state"], card["unverified"]) == ("active", False)
    for secret in (
        "Alzheimer",
        "donepezil",
        "stairs",
        "Wang Lei",
        "91234567",
        "9123 4567",
        "+852",
        "medical",
    ):
        assert secret not in response.text


@pytest.mark.parametrize(
    "query",
    [
        {"q": "1609"},
        {"q": "B1-1609"},
        {"q": "Building 1 1609"},
        {"q": "wang jianguo"},
        {"q": "Wnag Jianguo"},
        {"q": "grey coat"},
    ],
)
def test_every_kind_of_query_finds_mr_wang(
    client: TestClient,
    headers_for: Callable[..., dict[str, str]],
    wang: Resident,
    query: dict[str, str],
) -> None:
    response = client.get(URL, params=query, headers=headers_for("guard"))
    assert [c["resident_id"] for c in response.json()["items"]] == [str(wang.id)]


def test_the_card_thumbnail_is_served_to_a_guard_only_with_the_photo_consent(
    client: TestClient,
    db: Session,
    settings: Settings,
    headers_for: Callable[..., dict[str, str]],
    wang: Resident,
) -> None:
    guard = headers_for("guard")
    consents.record_consent(
        session=db,
        actor=SYSTEM,
        resident_id=wang.id,
        data=ConsentCreate(
            given_by_kind="resident", given_by_name="W", method="written", scopes=["photo"]
        ),
    )
    residents.set_photo(
        session=db, actor=SYSTEM, settings=settings, resident_id=wang.id, data=_jpeg()
    )
    db.commit()
    [card] = client.get(URL, params={"q": "1-1609"}, headers=guard).json()["items"]
    assert card["photo_url"] == f"/api/v1/lookup/{wang.id}/photo"
    photo = client.get(card["photo_url"], headers=guard)
    assert photo.status_code == 200
    assert photo.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(photo.content)).size[0] <= settings.thumbnail_side
    # The full photo stays with staff.
    assert client.get(f"/api/v1/residents/{wang.id}/photo", headers=guard).status_code == 403
    read = db.exec(select(AuditEntry).where(AuditEntry.action == "lookup.photo")).one()
    assert read.resident_id == wang.id


def test_no_thumbnail_for_a_resident_a_guard_cannot_look_up(
    client: TestClient,
    db: Session,
    settings: Settings,
    headers_for: Callable[..., dict[str, str]],
    make_resident: Callable[..., Resident],
) -> None:
    resident = make_resident()
    consents.record_consent(
        session=db,
        actor=SYSTEM,
        resident_id=resident.id,
        data=ConsentCreate(
            given_by_kind="resident",
            given_by_name="W",
            method="written",
            scopes=["registry", "photo"],
        ),
    )
    residents.set_photo(
        session=db, actor=SYSTEM, settings=settings, resident_id=resident.id, data=_jpeg()
    )
    db.commit()
    response = client.get(f"{URL}/{resident.id}/photo", headers=headers_for("guard"))
    assert response.status_code == 404


@pytest.mark.parametrize("role", ["staff", "manager", "admin"])
def test_staff_managers_and_admins_of_the_site_may_look_up(
    client: TestClient, headers_for: Callable[..., dict[str, str]], wang: Resident, role: str
) -> None:
    response = client.get(URL, params={"q": "Mr. Wang"}, headers=headers_for(role))
    assert response.status_code == 200
    assert [c["resident_id"] for c in response.json()["items"]] == [str(wang.id)]


def test_another_sites_guard_gets_an_empty_answer(
    client: TestClient,
    headers_for: Callable[..., dict[str, str]],
    make_site: Callable[..., Site],
    wang: Resident,
) -> None:
    elsewhere = headers_for("guard", [make_site(name="Elsewhere Court")])
    for query in ({"q": "1-1609"}, {"q": "Wang Jianguo"}, {"q": "grey coat"}):
        response = client.get(URL, params=query, headers=elsewhere)
        assert response.status_code == 200
        assert response.json() == {"items": [], "total": 0}
    response = client.get(f"{URL}/{wang.id}/photo", headers=elsewhere)
    assert response.status_code == 404


def _mistyped(code: str) -> str:
    """The code with its check character replaced by another one."""
    return code[:-1] + ("2" if code[-1] != "2" else "3")


def test_a_typed_tag_code_finds_the_resident_and_a_mistyped_one_says_check_the_code(
    client: TestClient, db: Session, headers_for: Callable[..., dict[str, str]], wang: Resident
) -> None:
    code = tags.issue_tag(session=db, actor=SYSTEM, resident_id=wang.id).code
    db.commit()
    guard = headers_for("guard")
    for typed in (code, code.lower().replace("-", " "), code.replace("-", "").lower()):
        response = client.get(URL, params={"tag": typed}, headers=guard)
        assert response.status_code == 200, typed
        assert [c["resident_id"] for c in response.json()["items"]] == [str(wang.id)]
    response = client.get(URL, params={"tag": _mistyped(code).lower()}, headers=guard)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"][-1] == "tag" and "check the code" in error["msg"]
    assert "Wang" not in response.text


@pytest.mark.parametrize(
    "params",
    [{}, {"q": "1609", "tag": "abcdef"}, {"q": ""}, {"q": "   "}, {"q": "x" * 201}, {"limit": 0}],
)
def test_bad_queries_are_422(
    client: TestClient, headers_for: Callable[..., dict[str, str]], params: dict[str, Any]
) -> None:
    response = client.get(URL, params=params, headers=headers_for("guard"))
    assert response.status_code == 422
    assert "detail" in response.json()


def test_without_a_token_it_is_401(client: TestClient) -> None:
    assert client.get(URL, params={"q": "1609"}).status_code == 401


def test_the_audit_entry_names_the_kind_and_the_results_not_the_words(
    client: TestClient, db: Session, headers_for: Callable[..., dict[str, str]], wang: Resident
) -> None:
    client.get(URL, params={"q": "Wang Jianguo"}, headers=headers_for("guard"))
    entry = db.exec(
        select(AuditEntry)
        .where(AuditEntry.action == "lookup.search")
        .order_by(col(AuditEntry.id).desc())
    ).first()
    assert entry is not None
    assert entry.detail == {"kind": "name", "rank": 1, "shown": 1}
    assert entry.resident_id == wang.id
    assert entry.client_addr is not None
    assert "Wang" not in str(entry.model_dump())


def test_every_resident_a_lookup_showed_is_found_by_the_audit_filter(
    client: TestClient,
    db: Session,
    headers_for: Callable[..., dict[str, str]],
    make_household: Callable[..., Household],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
) -> None:
    shown = []
    for unit, name in (
        ("1609", "Wang Jianguo"),
        ("1610", "Wang Meiling"),
        ("1611", "Park Soon-ja"),
    ):
        resident = make_resident(
            household=make_household(building="1", unit=unit), full_name=name, preferred_name=None
        )
        make_consent(resident)
        shown.append(resident)
    response = client.get(URL, params={"q": "wang"}, headers=headers_for("guard"))
    assert {c["resident_id"] for c in response.json()["items"]} == {
        str(shown[0].id),
        str(shown[1].id),
    }
    manager = headers_for("manager")
    lookups = []
    for resident in shown:
        body = client.get(
            "/api/v1/audit",
            headers=manager,
            params={"resident_id": str(resident.id), "action": "lookup."},
        ).json()
        lookups.append(body["items"])
    first, second, third = lookups
    assert len(first) == 1 and len(second) == 1 and third == []  # Mrs. Park was not shown
    assert first[0]["entity_id"] == second[0]["entity_id"]  # one lookup
    assert {first[0]["detail"]["rank"], second[0]["detail"]["rank"]} == {1, 2}


def test_a_description_match_says_which_words_matched(
    client: TestClient, headers_for: Callable[..., dict[str, str]], wang: Resident
) -> None:
    body = client.get(URL, params={"q": "the GREY coat"}, headers=headers_for("guard")).json()
    [card] = body["items"]
    assert card["matched"] == "description"
    assert card["matched_terms"] == ["grey", "coat"]  # folded, the stopword left out
    named = client.get(URL, params={"q": "Wnag"}, headers=headers_for("guard")).json()
    assert [c["matched_terms"] for c in named["items"]] == [[]]  # a typo is not highlighted
