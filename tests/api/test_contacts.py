"""Emergency contacts: ordered by priority, phones validated against the site's region."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from welfare.db import utcnow
from welfare.residents.models import Contact, Resident
from welfare.sites.models import Household, Site

Headers = Callable[..., dict[str, str]]
MakeResident = Callable[..., Resident]
MakeContact = Callable[..., Contact]


@pytest.fixture
def staff(headers_for: Headers) -> dict[str, str]:
    return headers_for("staff")


@pytest.fixture
def resident(make_resident: MakeResident) -> Resident:
    return make_resident()


def _url(resident: Resident, contact_id: Any = None) -> str:
    base = f"/api/v1/residents/{resident.id}/contacts"
    return base if contact_id is None else f"{base}/{contact_id}"


def _loc(response: Any) -> list[list[Any]]:
    return [error["loc"] for error in response.json()["detail"]]


def _names(client: TestClient, resident: Resident, headers: dict[str, str]) -> list[str]:
    body = client.get(_url(resident), headers=headers).json()
    assert [c["priority"] for c in body["items"]] == list(range(1, len(body["items"]) + 1))
    assert body["total"] == len(body["items"])
    return [c["name"] for c in body["items"]]


def _post(client: TestClient, resident: Resident, headers: dict[str, str], **fields: Any) -> Any:
    body = {"name": "Wang Lei", "relationship": "son", "phone": "9123 4567"} | fields
    return client.post(_url(resident), json=body, headers=headers)


# --- create and read ----------------------------------------------------------------------------


def test_local_number_at_hk_site_is_stored_in_e164_as_mobile(
    client: TestClient, staff: dict[str, str], resident: Resident
) -> None:
    response = _post(client, resident, staff, language="zh-cn")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["phone"] == "+85291234567"
    assert body["phone_line_type"] == "mobile"
    assert body["priority"] == 1
    assert body["language"] == "zh-CN"
    assert body["channels"] == ["sms", "voice"]
    assert body["sms_opted_out"] is False
    assert body["consent_to_contact"] is True
    assert body["can_collect"] is True
    assert body["lives_in_household"] is False
    assert body["secondary_phone"] is None
    assert body["resident_id"] == str(resident.id)
    read = client.get(_url(resident, body["id"]), headers=staff)
    assert read.status_code == 200
    assert read.json() == body


@pytest.mark.parametrize("raw", ["2345 6789", "3123 4567", "+852 2345 6789"])
def test_hk_fixed_line_is_typed_landline(
    client: TestClient, staff: dict[str, str], resident: Resident, raw: str
) -> None:
    response = _post(client, resident, staff, phone=raw)
    assert response.status_code == 201
    assert response.json()["phone_line_type"] == "landline"
    assert response.json()["phone"].startswith("+852")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("+44 7911 123456", "+447911123456"), ("+82 10-1234-5678", "+821012345678")],
)
def test_foreign_number_in_plus_form_is_accepted(
    client: TestClient, staff: dict[str, str], resident: Resident, raw: str, expected: str
) -> None:
    response = _post(client, resident, staff, phone=raw, secondary_phone="6123 4567")
    assert response.status_code == 201, response.text
    assert response.json()["phone"] == expected
    assert response.json()["phone_line_type"] == "mobile"
    assert response.json()["secondary_phone"] == "+85261234567"


@pytest.mark.parametrize("raw", ["1234", "not a number", "+44 1234", "07911 123456", "+"])
def test_contact_phone_invalid_for_region_is_422_naming_the_field(
    client: TestClient, staff: dict[str, str], resident: Resident, raw: str
) -> None:
    response = _post(client, resident, staff, phone=raw)
    assert response.status_code == 422
    assert _loc(response) == [["body", "phone"]]
    assert client.get(_url(resident), headers=staff).json()["total"] == 0


@pytest.mark.parametrize("raw", ["12", "+44 1", "hello"])
def test_contact_secondary_phone_invalid_is_422_naming_secondary_phone(
    client: TestClient, staff: dict[str, str], resident: Resident, raw: str
) -> None:
    response = _post(client, resident, staff, secondary_phone=raw)
    assert response.status_code == 422
    assert _loc(response) == [["body", "secondary_phone"]]


def test_contact_phone_validated_against_the_residents_site_region(
    client: TestClient,
    headers_for: Headers,
    make_site: Callable[..., Site],
    make_household: Callable[..., Household],
    make_resident: MakeResident,
) -> None:
    london = make_site(name="London", phone_region="GB", office_phone=None, timezone="UTC")
    resident = make_resident(make_household(site_=london))
    headers = headers_for("staff", [london])
    assert _post(client, resident, headers, phone="9123 4567").status_code == 422
    response = _post(client, resident, headers, phone="07911 123456")
    assert response.status_code == 201
    assert response.json()["phone"] == "+447911123456"
    landline = _post(client, resident, headers, name="Office", phone="020 7946 0018")
    assert landline.json()["phone_line_type"] == "landline"


def test_contact_empty_secondary_phone_is_stored_as_none(
    client: TestClient, staff: dict[str, str], resident: Resident
) -> None:
    response = _post(client, resident, staff, secondary_phone="")
    assert response.status_code == 201
    assert response.json()["secondary_phone"] is None


def test_sms_opted_out_and_line_type_are_not_settable_by_the_api(
    client: TestClient, staff: dict[str, str], resident: Resident
) -> None:
    created = _post(client, resident, staff, sms_opted_out=True, phone_line_type="landline")
    assert created.status_code == 201
    assert created.json()["sms_opted_out"] is False
    assert created.json()["phone_line_type"] == "mobile"
    patched = client.patch(
        _url(resident, created.json()["id"]),
        json={"sms_opted_out": True, "phone_line_type": "landline"},
        headers=staff,
    )
    assert patched.status_code == 200
    assert patched.json()["sms_opted_out"] is False
    assert patched.json()["phone_line_type"] == "mobile"


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"name": ""}, ["body", "name"]),
        ({"name": "n" * 201}, ["body", "name"]),
        ({"relationship": ""}, ["body", "relationship"]),
        ({"relationship": None}, ["body", "relationship"]),
        ({"phone": None}, ["body", "phone"]),
        ({"phone": ""}, ["body", "phone"]),
        ({"phone": "9" * 33}, ["body", "phone"]),
        ({"phone": 91234567}, ["body", "phone"]),
        ({"secondary_phone": "9" * 33}, ["body", "secondary_phone"]),
        ({"language": "Cantonese"}, ["body", "language"]),
        ({"language": "x" * 36}, ["body", "language"]),
        ({"channels": []}, ["body", "channels"]),
        ({"channels": ["fax"]}, ["body", "channels", 0]),
        ({"channels": "sms"}, ["body", "channels"]),
        ({"channels": ["sms", "voice", "whatsapp", "sms"]}, ["body", "channels"]),
        ({"priority": 0}, ["body", "priority"]),
        ({"priority": 101}, ["body", "priority"]),
        ({"priority": "first"}, ["body", "priority"]),
        ({"lives_in_household": "perhaps"}, ["body", "lives_in_household"]),
        ({"name": "Wang\x00Lei"}, ["body"]),
        ({"quiet_hours_start": "25:00", "quiet_hours_end": "07:00"}, ["body", "quiet_hours_start"]),
    ],
)
def test_contact_bad_field_is_422_naming_it(
    client: TestClient,
    staff: dict[str, str],
    resident: Resident,
    fields: dict[str, Any],
    loc: list[Any],
) -> None:
    response = _post(client, resident, staff, **fields)
    assert response.status_code == 422, response.text
    assert loc in _loc(response)


def test_channels_are_deduplicated(
    client: TestClient, staff: dict[str, str], resident: Resident
) -> None:
    response = _post(client, resident, staff, channels=["voice", "voice"])
    assert response.status_code == 201
    assert response.json()["channels"] == ["voice"]
    patched = client.patch(
        _url(resident, response.json()["id"]), json={"channels": ["sms", "sms"]}, headers=staff
    )
    assert patched.status_code == 200
    assert patched.json()["channels"] == ["sms"]


# --- quiet hours --------------------------------------------------------------------------------


def test_quiet_hours_as_a_pair_are_stored(
    client: TestClient, staff: dict[str, str], resident: Resident
) -> None:
    response = _post(client, resident, staff, quiet_hours_start="22:00", quiet_hours_end="07:00")
    assert response.status_code == 201
    assert (response.json()["quiet_hours_start"], response.json()["quiet_hours_end"]) == (
        "22:00:00",
        "07:00:00",
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"quiet_hours_start": "22:00"},
        {"quiet_hours_end": "07:00"},
        {"quiet_hours_start": "22:00", "quiet_hours_end": None},
        {"quiet_hours_start": "22:00", "quiet_hours_end": "22:00"},
    ],
)
def test_quiet_hours_must_come_as_a_distinct_pair(
    client: TestClient, staff: dict[str, str], resident: Resident, fields: dict[str, Any]
) -> None:
    response = _post(client, resident, staff, **fields)
    assert response.status_code == 422
    assert re.search("quiet.hours", response.json()["detail"][0]["msg"])


def test_patch_quiet_hours_half_a_pair_is_422_and_clearing_both_is_fine(
    client: TestClient, staff: dict[str, str], resident: Resident, make_contact: MakeContact
) -> None:
    contact = make_contact(resident)
    url = _url(resident, contact.id)
    half = client.patch(url, json={"quiet_hours_start": "21:00"}, headers=staff)
    assert half.status_code == 422
    assert _loc(half) == [["body", "quiet_hours_start"]]
    pair = client.patch(
        url, json={"quiet_hours_start": "21:00", "quiet_hours_end": "06:30"}, headers=staff
    )
    assert pair.status_code == 200
    assert pair.json()["quiet_hours_end"] == "06:30:00"
    moved = client.patch(url, json={"quiet_hours_end": "08:00"}, headers=staff)
    assert moved.status_code == 200
    assert moved.json()["quiet_hours_start"] == "21:00:00"
    assert moved.json()["quiet_hours_end"] == "08:00:00"
    drop_one = client.patch(url, json={"quiet_hours_end": None}, headers=staff)
    assert drop_one.status_code == 422
    cleared = client.patch(
        url, json={"quiet_hours_start": None, "quiet_hours_end": None}, headers=staff
    )
    assert cleared.status_code == 200
    assert cleared.json()["quiet_hours_start"] is None
    assert cleared.json()["quiet_hours_end"] is None


# --- ordering -----------------------------------------------------------------------------------


def test_contacts_are_listed_by_priority_in_order_of_creation(
    client: TestClient, staff: dict[str, str], resident: Resident
) -> None:
    for name in ("A", "B", "C"):
        response = _post(client, resident, staff, name=name)
        assert response.status_code == 201
    assert _names(client, resident, staff) == ["A", "B", "C"]


def test_inserting_at_priority_1_shifts_the_others(
    client: TestClient, staff: dict[str, str], resident: Resident, make_contact: MakeContact
) -> None:
    for name in ("A", "B", "C"):
        make_contact(resident, name=name)
    first = _post(client, resident, staff, name="D", priority=1)
    assert first.status_code == 201
    assert first.json()["priority"] == 1
    assert _names(client, resident, staff) == ["D", "A", "B", "C"]
    middle = _post(client, resident, staff, name="E", priority=3)
    assert middle.json()["priority"] == 3
    assert _names(client, resident, staff) == ["D", "A", "E", "B", "C"]


def test_priority_beyond_the_end_appends(
    client: TestClient, staff: dict[str, str], resident: Resident, make_contact: MakeContact
) -> None:
    make_contact(resident, name="A")
    response = _post(client, resident, staff, name="B", priority=99)
    assert response.json()["priority"] == 2
    assert _names(client, resident, staff) == ["A", "B"]


def test_patch_priority_reorders(
    client: TestClient, staff: dict[str, str], resident: Resident, make_contact: MakeContact
) -> None:
    a, _, c, d = (make_contact(resident, name=name) for name in "ABCD")
    up = client.patch(_url(resident, c.id), json={"priority": 1}, headers=staff)
    assert up.status_code == 200
    assert up.json()["priority"] == 1
    assert _names(client, resident, staff) == ["C", "A", "B", "D"]
    down = client.patch(_url(resident, c.id), json={"priority": 3}, headers=staff)
    assert down.json()["priority"] == 3
    assert _names(client, resident, staff) == ["A", "B", "C", "D"]
    last = client.patch(_url(resident, a.id), json={"priority": 100}, headers=staff)
    assert last.json()["priority"] == 4
    assert _names(client, resident, staff) == ["B", "C", "D", "A"]
    same = client.patch(_url(resident, d.id), json={"priority": 3, "name": "D2"}, headers=staff)
    assert same.json()["priority"] == 3
    assert _names(client, resident, staff) == ["B", "C", "D2", "A"]


def test_delete_renumbers_the_rest(
    client: TestClient, staff: dict[str, str], resident: Resident, make_contact: MakeContact
) -> None:
    a, b, c = (make_contact(resident, name=name) for name in "ABC")
    response = client.delete(_url(resident, a.id), headers=staff)
    assert response.status_code == 204
    assert _names(client, resident, staff) == ["B", "C"]
    assert client.get(_url(resident, a.id), headers=staff).status_code == 404
    client.delete(_url(resident, c.id), headers=staff)
    assert _names(client, resident, staff) == ["B"]
    assert client.get(_url(resident, b.id), headers=staff).json()["priority"] == 1


def test_contacts_of_one_resident_do_not_touch_anothers_order(
    client: TestClient,
    staff: dict[str, str],
    make_resident: MakeResident,
    make_contact: MakeContact,
) -> None:
    one, two = make_resident(), make_resident()
    make_contact(one, name="A")
    make_contact(two, name="X")
    _post(client, one, staff, name="B", priority=1)
    assert _names(client, one, staff) == ["B", "A"]
    assert _names(client, two, staff) == ["X"]


# --- update -------------------------------------------------------------------------------------


def test_patch_phone_to_landline_changes_line_type(
    client: TestClient, staff: dict[str, str], resident: Resident, make_contact: MakeContact
) -> None:
    contact = make_contact(resident)
    response = client.patch(
        _url(resident, contact.id),
        json={"phone": "2345 6789", "language": "yue-hk", "can_collect": False},
        headers=staff,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["phone"] == "+85223456789"
    assert body["phone_line_type"] == "landline"
    assert body["language"] == "yue-HK"
    assert body["can_collect"] is False
    assert body["name"] == "Wang Lei"


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"phone": "123"}, ["body", "phone"]),
        ({"phone": None}, ["body", "phone"]),
        ({"phone": ""}, ["body", "phone"]),
        ({"secondary_phone": "123"}, ["body", "secondary_phone"]),
        ({"name": None}, ["body", "name"]),
        ({"language": None}, ["body", "language"]),
        ({"language": "klingon please"}, ["body", "language"]),
        ({"channels": None}, ["body", "channels"]),
        ({"channels": []}, ["body", "channels"]),
        ({"consent_to_contact": None}, ["body", "consent_to_contact"]),
        ({"priority": 0}, ["body", "priority"]),
    ],
)
def test_patch_contact_bad_value_is_422_naming_the_field(
    client: TestClient,
    staff: dict[str, str],
    resident: Resident,
    make_contact: MakeContact,
    fields: dict[str, Any],
    loc: list[Any],
) -> None:
    contact = make_contact(resident)
    response = client.patch(_url(resident, contact.id), json=fields, headers=staff)
    assert response.status_code == 422, response.text
    assert loc in _loc(response)
    unchanged = client.get(_url(resident, contact.id), headers=staff).json()
    assert unchanged["phone"] == "+85291234567"
    assert unchanged["name"] == "Wang Lei"


def test_patch_secondary_phone_null_clears_it(
    client: TestClient, staff: dict[str, str], resident: Resident, make_contact: MakeContact
) -> None:
    contact = make_contact(resident, secondary_phone="6123 4567")
    assert contact.secondary_phone == "+85261234567"
    response = client.patch(
        _url(resident, contact.id), json={"secondary_phone": None}, headers=staff
    )
    assert response.status_code == 200
    assert response.json()["secondary_phone"] is None


# --- access and addressing ----------------------------------------------------------------------


def test_contact_of_another_resident_is_404(
    client: TestClient,
    staff: dict[str, str],
    make_resident: MakeResident,
    make_contact: MakeContact,
) -> None:
    one, two = make_resident(), make_resident()
    contact = make_contact(one)
    assert client.get(_url(two, contact.id), headers=staff).status_code == 404
    patch = client.patch(_url(two, contact.id), json={"name": "x"}, headers=staff)
    assert patch.status_code == 404
    assert client.delete(_url(two, contact.id), headers=staff).status_code == 404
    assert client.get(_url(one, contact.id), headers=staff).json()["name"] == "Wang Lei"


def test_unknown_and_malformed_contact_ids(
    client: TestClient, staff: dict[str, str], resident: Resident
) -> None:
    missing = client.get(_url(resident, uuid.uuid4()), headers=staff)
    assert missing.status_code == 404
    assert missing.json() == {"detail": "contact not found"}
    malformed = client.get(_url(resident, "first"), headers=staff)
    assert malformed.status_code == 422
    assert malformed.json()["detail"][0]["loc"] == ["path", "contact_id"]
    unknown_resident = client.get(f"/api/v1/residents/{uuid.uuid4()}/contacts", headers=staff)
    assert unknown_resident.status_code == 404
    assert unknown_resident.json() == {"detail": "resident not found"}
    post = client.post(
        f"/api/v1/residents/{uuid.uuid4()}/contacts",
        json={"name": "A", "relationship": "son", "phone": "9123 4567"},
        headers=staff,
    )
    assert post.status_code == 404


def test_staff_of_another_site_gets_404_for_contacts(
    client: TestClient,
    headers_for: Headers,
    make_site: Callable[..., Site],
    resident: Resident,
    make_contact: MakeContact,
) -> None:
    contact = make_contact(resident)
    headers = headers_for("staff", [make_site(name="Other")])
    assert client.get(_url(resident), headers=headers).status_code == 404
    assert client.get(_url(resident, contact.id), headers=headers).status_code == 404
    assert _post(client, resident, headers).status_code == 404
    patch = client.patch(_url(resident, contact.id), json={"name": "x"}, headers=headers)
    assert patch.status_code == 404
    assert client.delete(_url(resident, contact.id), headers=headers).status_code == 404


def test_guard_gets_403_on_contacts(
    client: TestClient, headers_for: Headers, resident: Resident, make_contact: MakeContact
) -> None:
    contact = make_contact(resident)
    guard = headers_for("guard")
    listing = client.get(_url(resident), headers=guard)
    assert listing.status_code == 403
    assert "+852" not in listing.text
    assert client.get(_url(resident, contact.id), headers=guard).status_code == 403
    assert _post(client, resident, guard).status_code == 403
    assert client.delete(_url(resident, contact.id), headers=guard).status_code == 403


def test_contacts_need_sign_in(client: TestClient, resident: Resident) -> None:
    assert client.get(_url(resident)).status_code == 401
    assert client.post(_url(resident), json={}).status_code == 401


def test_no_new_contact_for_an_erased_resident(
    client: TestClient, staff: dict[str, str], resident: Resident, db: Session
) -> None:
    stored = db.get(Resident, resident.id)
    assert stored is not None
    stored.erased_at = utcnow()
    db.add(stored)
    db.commit()
    response = _post(client, resident, staff)
    assert response.status_code == 409
    assert "erased" in response.json()["detail"]


# --- letters in a phone number ------------------------------------------------------------------

LETTERS_MESSAGE = (
    "letters are not allowed in a phone number, not even for an extension:"
    " type only the digits, such as +852 5123 4567"
)


@pytest.mark.parametrize("field", ["phone", "secondary_phone"])
@pytest.mark.parametrize("raw", ["+852 9abc 1234", "9123 4567 ext 12"])
def test_letters_in_a_contact_phone_are_422_naming_the_field_never_keypad_digits(
    client: TestClient, staff: dict[str, str], resident: Resident, field: str, raw: str
) -> None:
    # phonenumbers alone would store "+852 9abc 1234" as +85292221234: a stranger's phone.
    created = _post(client, resident, staff, **{field: raw})
    assert created.status_code == 422
    assert created.json()["detail"] == [
        {"loc": ["body", field], "msg": LETTERS_MESSAGE, "type": "value_error"}
    ]
    contact = _post(client, resident, staff)
    assert contact.status_code == 201, contact.text
    updated = client.patch(_url(resident, contact.json()["id"]), json={field: raw}, headers=staff)
    assert updated.status_code == 422
    assert updated.json()["detail"][0]["loc"] == ["body", field]
    assert updated.json()["detail"][0]["msg"] == LETTERS_MESSAGE
    assert client.get(_url(resident), headers=staff).json()["items"][0]["phone"] == "+85291234567"


def test_an_unknown_language_is_422_saying_what_a_language_code_looks_like(
    client: TestClient, staff: dict[str, str], resident: Resident
) -> None:
    response = _post(client, resident, staff, language="klingon")
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "language"]
    assert "unknown language 'klingon': use a code such as ko, zh-CN, en" in error["msg"]


def test_a_bad_phone_is_422_saying_how_to_write_one(
    client: TestClient, staff: dict[str, str], resident: Resident
) -> None:
    response = _post(client, resident, staff, phone="12")
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "phone"]
    assert error["msg"] == (
        "not a valid phone number for region HK: check the number of digits, or start with +"
        " and the country code, such as +852 5123 4567"
    )


def test_quiet_hours_given_by_half_are_422_saying_how_to_give_them(
    client: TestClient, staff: dict[str, str], resident: Resident
) -> None:
    response = _post(client, resident, staff, quiet_hours_start="22:00")
    assert response.status_code == 422
    assert "give both, such as 22:00 and 07:00, or neither" in response.json()["detail"][0]["msg"]
    contact = _post(client, resident, staff).json()
    same = client.patch(
        _url(resident, contact["id"]),
        json={"quiet_hours_start": "22:00", "quiet_hours_end": "22:00"},
        headers=staff,
    )
    assert same.status_code == 422
    assert same.json()["detail"][0]["loc"] == ["body", "quiet_hours_start"]
    assert "such as 22:00 to 07:00" in same.json()["detail"][0]["msg"]
