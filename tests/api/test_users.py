"""Users admin (`/api/v1/users`) and one's own profile (`/api/v1/me`)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import col, select

from tests.conftest import PASSWORD
from welfare.audit.models import AuditEntry
from welfare.sites.models import Site
from welfare.users.models import User, UserSite

USERS = "/api/v1/users"
ME = "/api/v1/me"


def new_user(site: Site, **overrides: Any) -> dict[str, Any]:
    return {
        "username": f"joyce-{uuid.uuid4().hex[:6]}",
        "display_name": "Joyce Ng",
        "role": "staff",
        "password": "a long enough password",
        "site_ids": [str(site.id)],
    } | overrides


@pytest.fixture
def admin(headers_for) -> dict[str, str]:
    return headers_for("admin")


# --- who may manage users ---------------------------------------------------------------------


@pytest.mark.parametrize("role", ["guard", "staff", "manager"])
def test_only_admins_may_list_create_or_update_users(
    client: TestClient, headers_for, make_user, site: Site, role: str
) -> None:
    headers = headers_for(role)
    other = make_user("staff", [site])
    assert client.get(USERS, headers=headers).status_code == 403
    assert client.get(f"{USERS}/{other.id}", headers=headers).status_code == 403
    response = client.post(USERS, json=new_user(site), headers=headers)
    assert response.status_code == 403
    assert response.json()["detail"] == f"the {role} role may not do this (users_manage)"
    patch = client.patch(f"{USERS}/{other.id}", json={"role": "admin"}, headers=headers)
    assert patch.status_code == 403


def test_users_admin_requires_sign_in(client: TestClient, site: Site) -> None:
    assert client.get(USERS).status_code == 401
    assert client.post(USERS, json=new_user(site)).status_code == 401


# --- creating ---------------------------------------------------------------------------------


def test_admin_creates_a_user_who_can_then_sign_in(
    client: TestClient, admin, site: Site, db
) -> None:
    body = new_user(site, username="  Joyce.Ng  ", phone="9123 4567", language="zh-CN")
    response = client.post(USERS, json=body, headers=admin)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["username"] == "joyce.ng"
    assert created["role"] == "staff"
    assert created["site_ids"] == [str(site.id)]
    assert created["phone"] == "+85291234567"  # read against the site's region (HK)
    assert created["language"] == "zh-CN"
    assert created["is_active"] is True
    assert "password" not in created and "password_hash" not in created
    stored = db.exec(select(User).where(User.username == "joyce.ng")).one()
    assert stored.password_hash.startswith("$argon2")
    assert "a long enough password" not in stored.password_hash
    db.rollback()
    token = client.post(
        "/api/v1/auth/token", data={"username": "JOYCE.NG", "password": body["password"]}
    )
    assert token.status_code == 200


def test_user_creation_is_audited_without_the_password(
    client: TestClient, admin, site: Site, db
) -> None:
    response = client.post(USERS, json=new_user(site), headers=admin)
    assert response.status_code == 201
    entry = db.exec(
        select(AuditEntry).where(
            AuditEntry.action == "user.create", AuditEntry.entity_id == response.json()["id"]
        )
    ).one()
    db.rollback()
    assert entry.detail == {"role": "staff"}
    assert entry.actor_role == "admin"


def test_duplicate_username_is_409_whatever_the_case(
    client: TestClient, admin, make_user, site: Site
) -> None:
    existing = make_user("staff", [site])
    response = client.post(
        USERS, json=new_user(site, username=existing.username.upper()), headers=admin
    )
    assert response.status_code == 409
    assert response.json() == {"detail": f"username {existing.username!r} is taken"}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"password": "short"}, "password"),
        ({"username": "a"}, "username"),
        ({"username": "has space"}, "username"),
        ({"username": "Ünïcode"}, "username"),
        ({"role": "superuser"}, "role"),
        ({"language": "fr"}, "language"),
        ({"display_name": ""}, "display_name"),
    ],
    ids=["short-password", "short-name", "space", "non-ascii", "role", "language", "no-name"],
)
def test_invalid_user_fields_are_422_naming_the_field(
    client: TestClient, admin, site: Site, overrides: dict[str, Any], field: str
) -> None:
    response = client.post(USERS, json=new_user(site, **overrides), headers=admin)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", field]
    assert "input" not in error  # nothing (such as a password) is echoed back


def test_unknown_site_id_is_422_and_creates_nothing(
    client: TestClient, admin, site: Site, db
) -> None:
    missing = uuid.uuid4()
    body = new_user(site, site_ids=[str(site.id), str(missing)])
    response = client.post(USERS, json=body, headers=admin)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "site_ids"]
    assert str(missing) in error["msg"]
    assert db.exec(select(User).where(User.username == body["username"])).first() is None
    db.rollback()


def test_invalid_phone_is_422_naming_phone(client: TestClient, admin, site: Site) -> None:
    response = client.post(USERS, json=new_user(site, phone="12"), headers=admin)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "phone"]


# --- listing and reading ----------------------------------------------------------------------


def test_admin_lists_users_sorted_with_paging_and_site_filter(
    client: TestClient, admin, make_user, make_site, site: Site
) -> None:
    elsewhere = make_site(name="Elsewhere")
    make_user("staff", [site], username="bravo")
    make_user("guard", [site], username="alpha")
    make_user("guard", [elsewhere], username="charlie")
    response = client.get(USERS, params={"limit": 2, "offset": 1}, headers=admin)
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 4  # three plus the admin ("admin-...", sorted first)
    assert body["limit"] == 2 and body["offset"] == 1
    assert [u["username"] for u in body["items"]] == ["alpha", "bravo"]
    in_site = client.get(USERS, params={"site_id": str(elsewhere.id)}, headers=admin).json()
    assert [u["username"] for u in in_site["items"]] == ["charlie"]
    assert in_site["total"] == 1
    assert in_site["items"][0]["site_ids"] == [str(elsewhere.id)]


def test_reading_an_unknown_user_is_404(client: TestClient, admin) -> None:
    response = client.get(f"{USERS}/{uuid.uuid4()}", headers=admin)
    assert response.status_code == 404
    assert response.json() == {"detail": "user not found"}
    assert client.get(f"{USERS}/not-a-uuid", headers=admin).status_code == 422


# --- updating ---------------------------------------------------------------------------------


def test_admin_updates_role_sites_and_activity(
    client: TestClient, admin, make_user, make_site, site: Site, db
) -> None:
    other_site = make_site(name="Second compound")
    user = make_user("guard", [site])
    response = client.patch(
        f"{USERS}/{user.id}",
        json={"role": "manager", "site_ids": [str(other_site.id)], "is_active": False},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["role"] == "manager"
    assert body["site_ids"] == [str(other_site.id)]
    assert body["is_active"] is False
    links = db.exec(select(UserSite.site_id).where(col(UserSite.user_id) == user.id)).all()
    db.rollback()
    assert links == [other_site.id]


def test_update_with_an_unknown_site_is_422_and_changes_nothing(
    client: TestClient, admin, make_user, site: Site
) -> None:
    user = make_user("guard", [site])
    response = client.patch(
        f"{USERS}/{user.id}",
        json={"role": "staff", "site_ids": [str(uuid.uuid4())]},
        headers=admin,
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "site_ids"]
    after = client.get(f"{USERS}/{user.id}", headers=admin).json()
    assert after["role"] == "guard"
    assert after["site_ids"] == [str(site.id)]


def test_update_of_an_unknown_user_is_404(client: TestClient, admin) -> None:
    response = client.patch(f"{USERS}/{uuid.uuid4()}", json={"role": "staff"}, headers=admin)
    assert response.status_code == 404


@pytest.mark.parametrize(
    "change",
    [{"role": "manager"}, {"is_active": False}, {"role": None}],
    ids=["demote", "deactivate", "null-role"],
)
def test_admin_cannot_demote_or_deactivate_themselves(
    client: TestClient, make_user, login, site: Site, change: dict[str, Any]
) -> None:
    me = make_user("admin", [site])
    headers = login(me)
    response = client.patch(f"{USERS}/{me.id}", json=change, headers=headers)
    if change == {"role": None}:
        # An explicit null changes nothing; it is not a demotion.
        assert response.status_code == 200
        assert response.json()["role"] == "admin"
    else:
        assert response.status_code == 409
        assert response.json() == {
            "detail": "admins cannot demote or deactivate themselves; ask another admin"
        }
    assert client.get(ME, headers=headers).json()["role"] == "admin"


def test_admin_may_update_their_own_harmless_fields(
    client: TestClient, make_user, login, site: Site
) -> None:
    me = make_user("admin", [site])
    headers = login(me)
    response = client.patch(
        f"{USERS}/{me.id}", json={"role": "admin", "display_name": "Ada"}, headers=headers
    )
    assert response.status_code == 200
    assert response.json()["display_name"] == "Ada"


def test_another_admin_may_demote_an_admin(
    client: TestClient, admin, make_user, site: Site
) -> None:
    other = make_user("admin", [site])
    response = client.patch(f"{USERS}/{other.id}", json={"role": "staff"}, headers=admin)
    assert response.status_code == 200
    assert response.json()["role"] == "staff"


# --- one's own profile ------------------------------------------------------------------------


def test_me_shows_the_user_without_secrets(client: TestClient, make_user, login, site) -> None:
    user = make_user("guard", [site], phone="9345 1609")
    response = client.get(ME, headers=login(user))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(user.id)
    assert body["username"] == user.username
    assert body["role"] == "guard"
    assert body["site_ids"] == [str(site.id)]
    assert body["phone"] == "+85293451609"
    assert not {"password", "password_hash"} & set(body)


@pytest.mark.parametrize("language", ["en", "zh-CN", "ko-KR"])
def test_patch_me_accepts_the_supported_languages(
    client: TestClient, headers_for, language: str
) -> None:
    headers = headers_for("staff")
    response = client.patch(ME, json={"language": language}, headers=headers)
    assert response.status_code == 200
    assert response.json()["language"] == language
    assert client.get(ME, headers=headers).json()["language"] == language


@pytest.mark.parametrize("language", ["fr", "zh", "ko", "EN", ""])
def test_patch_me_refuses_other_languages(client: TestClient, headers_for, language: str) -> None:
    headers = headers_for("staff")
    response = client.patch(ME, json={"language": language}, headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "language"]
    assert client.get(ME, headers=headers).json()["language"] == "en"


def test_patch_me_validates_and_normalises_the_phone(client: TestClient, headers_for) -> None:
    headers = headers_for("staff")
    bad = client.patch(ME, json={"phone": "not a phone"}, headers=headers)
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "phone"]
    good = client.patch(ME, json={"phone": "+852 9123 4567"}, headers=headers)
    assert good.status_code == 200
    assert good.json()["phone"] == "+85291234567"
    cleared = client.patch(ME, json={"phone": None}, headers=headers)
    assert cleared.status_code == 200
    assert cleared.json()["phone"] is None


def test_patch_me_cannot_change_role_or_activity(client: TestClient, headers_for) -> None:
    headers = headers_for("guard")
    response = client.patch(
        ME, json={"role": "admin", "is_active": False, "display_name": "G"}, headers=headers
    )
    assert response.status_code == 200
    body = response.json()
    assert body["role"] == "guard"
    assert body["is_active"] is True
    assert body["display_name"] == "G"


def test_me_after_password_change_still_signs_in_with_the_new_one(
    client: TestClient, make_user, login, site
) -> None:
    user = make_user("staff", [site])
    headers = login(user)
    response = client.post(
        f"{ME}/password",
        json={"current_password": PASSWORD, "new_password": "new long password"},
        headers=headers,
    )
    assert response.status_code == 204
    login(user, "new long password")


def test_nul_character_in_a_name_is_422_not_a_server_error(
    client: TestClient, admin, site: Site, headers_for
) -> None:
    response = client.post(USERS, json=new_user(site, display_name="Joyce\x00Ng"), headers=admin)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "display_name"]
    me = client.patch(ME, json={"display_name": "\x00"}, headers=headers_for("staff"))
    assert me.status_code == 422


def test_letters_in_a_users_phone_are_422_never_keypad_digits(
    client: TestClient, admin, site: Site
) -> None:
    response = client.post(USERS, json=new_user(site, phone="+852 9abc 1234"), headers=admin)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "phone"]
    assert error["msg"].startswith("letters are not allowed in a phone number")
