"""Console pages for admins (users) and managers (the access audit)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session, select

from tests.conftest import PASSWORD
from welfare.residents.models import Resident
from welfare.sites.models import Site
from welfare.users.models import AuthSession, User

HTML = {"accept": "text/html"}


def _settle(db: Session) -> None:
    db.expunge_all()
    db.rollback()


def _user(db: Session, username: str) -> User | None:
    _settle(db)
    user = db.exec(select(User).where(User.username == username)).first()
    _settle(db)
    return user


# --- users ----------------------------------------------------------------------------------------


def test_only_admins_open_user_administration(
    client: TestClient, make_user: Callable[..., User], site: Site, page_login: Callable[..., str]
) -> None:
    for role in ("staff", "manager"):
        csrf = page_login(make_user(role, [site]))
        assert client.get("/console/users", headers=HTML).status_code == 403, role
        response = client.post(
            "/console/users",
            data={"csrf_token": csrf, "username": "sneaky", "role": "admin"},
            headers=HTML,
        )
        assert response.status_code == 403, role
        assert 'href="/console/users"' not in client.get("/console").text
    page_login(make_user("admin", [site]))
    page = client.get("/console/users")
    assert page.status_code == 200 and 'href="/console/users"' in page.text


def test_admin_creates_a_user_and_bad_input_comes_back_without_the_password(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
) -> None:
    csrf = page_login(make_user("admin", [site]))
    form = {
        "csrf_token": csrf,
        "username": "Bad Name!",
        "display_name": "Chan Tai Man",
        "role": "guard",
        "language": "zh-CN",
        "password": "a secret long enough",
        "site_ids": [str(site.id)],
    }
    bad = client.post("/console/users", data=form)
    assert bad.status_code == 422
    assert "Username: 2-63" in bad.text and 'value="Chan Tai Man"' in bad.text
    assert "a secret long enough" not in bad.text
    short = client.post("/console/users", data={**form, "username": "chan", "password": "short"})
    assert short.status_code == 422 and "at least 10 characters" in short.text
    ok = client.post("/console/users", data={**form, "username": "chan"}, follow_redirects=False)
    assert ok.status_code == 303
    created = _user(db, "chan")
    assert created is not None and created.role.value == "guard" and created.language == "zh-CN"
    taken = client.post("/console/users", data={**form, "username": "chan"})
    assert taken.status_code == 409 and "That username is taken." in taken.text
    bad_site = client.post(
        "/console/users", data={**form, "username": "chan2", "site_ids": ["nope"]}
    )
    assert bad_site.status_code == 422


def test_admin_changes_role_deactivates_resets_password_and_signs_out(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    make_site: Callable[..., Site],
    site: Site,
    page_login: Callable[..., str],
    login: Callable[..., dict[str, str]],
) -> None:
    other = make_site(name="Other Court")
    guard = make_user("guard", [site])
    admin = make_user("admin", [site])
    guard_id, admin_id = guard.id, admin.id
    bearer = login(guard)  # a live session of the guard's
    csrf = page_login(admin)
    url = f"/console/users/{guard_id}"
    assert client.get(url).status_code == 200
    form = {
        "csrf_token": csrf,
        "display_name": "Guard Lee",
        "role": "staff",
        "language": "en",
        "site_ids": [str(site.id), str(other.id)],
        "is_active": "true",
    }
    assert client.post(url, data=form, follow_redirects=False).status_code == 303
    changed = _user(db, guard.username)
    assert changed is not None and changed.role.value == "staff"
    assert client.get("/api/v1/me", headers=bearer).status_code == 401  # role change signs out
    bad_phone = client.post(url, data={**form, "phone": "12"})
    assert bad_phone.status_code == 422 and 'value="Guard Lee"' in bad_phone.text
    short = client.post(f"{url}/password", data={"csrf_token": csrf, "password": "short"})
    assert short.status_code == 422
    reset = client.post(
        f"{url}/password",
        data={"csrf_token": csrf, "password": "another long secret"},
        follow_redirects=False,
    )
    assert reset.status_code == 303
    signed = client.post(f"{url}/sessions", data={"csrf_token": csrf}, follow_redirects=False)
    assert signed.status_code == 303 and "done=sessions" in signed.headers["location"]
    deactivate = {**form, "is_active": ""}
    assert client.post(url, data=deactivate, follow_redirects=False).status_code == 303
    gone = _user(db, guard.username)
    assert gone is not None and gone.is_active is False
    # An admin cannot lock themselves out.
    self_demote = client.post(
        f"/console/users/{admin_id}", data={**form, "role": "staff", "is_active": "true"}
    )
    assert self_demote.status_code == 409
    assert "You cannot demote or deactivate yourself" in self_demote.text
    sessions = db.exec(select(AuthSession).where(AuthSession.user_id == guard_id)).all()
    _settle(db)
    assert all(s.revoked_at is not None for s in sessions)
    assert PASSWORD  # the guard's old password no longer signs in:
    response = client.post(
        "/api/v1/auth/token", data={"username": guard.username, "password": PASSWORD}
    )
    assert response.status_code == 401


# --- the access audit -----------------------------------------------------------------------------


def test_audit_is_for_managers_and_answers_who_looked_at_a_record(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
) -> None:
    park = make_resident(full_name="Park Mi-ja", preferred_name="Mrs. Park")
    wang = make_resident()
    make_resident(full_name="Wang Fang", preferred_name="Ms. Wang")
    park_id, wang_id = park.id, wang.id
    for resident in (park, wang):
        make_consent(resident)
    nosy = make_user("staff", [site], username="nosy-staff")
    page_login(nosy)
    assert client.get(f"/console/residents/{park_id}").status_code == 200
    assert client.get(f"/console/residents/{wang_id}").status_code == 200
    assert client.get("/console/audit", headers=HTML).status_code == 403
    page_login(make_user("manager", [site]))
    page = client.get("/console/audit?resident=Park")
    assert page.status_code == 200
    assert "Showing entries about: Park Mi-ja" in page.text
    assert "nosy-staff" in page.text and "Read the full record" in page.text
    by_user = client.get("/console/audit?user=nosy-staff&action=resident.read")
    assert by_user.text.count("Read the full record") == 2
    ambiguous = client.get("/console/audit?resident=Wang")
    assert "Which resident?" in ambiguous.text
    assert "Wang Jianguo" in ambiguous.text and "Wang Fang" in ambiguous.text
    assert "Read the full record" not in ambiguous.text  # no entries until one is chosen
    nobody = client.get("/console/audit?user=nobody-here")
    assert nobody.status_code == 422 and "No user has that username." in nobody.text
    bad_date = client.get("/console/audit?since=yesterday")
    assert bad_date.status_code == 422 and "Dates look like 2026-11-01." in bad_date.text
    future = client.get("/console/audit?since=2199-01-01&user=nosy-staff")
    assert future.status_code == 200 and "No entries." in future.text


def test_audit_tamper_check_reports_an_intact_then_a_broken_chain(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
) -> None:
    page_login(make_user("manager", [site]))
    page = client.get("/console/audit?verify=true")
    assert "The chain is intact" in page.text
    db.exec(  # type: ignore[call-overload]
        text(
            "UPDATE audit_entry SET purpose = 'edited' WHERE id = (SELECT MIN(id) FROM audit_entry)"
        )
    )
    db.commit()
    _settle(db)
    broken = client.get("/console/audit?verify=true")
    assert "The chain is broken at entry" in broken.text


def test_letters_in_a_users_phone_are_refused_with_why_never_keypad_digits(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
) -> None:
    csrf = page_login(make_user("admin", [site]))
    form = {
        "csrf_token": csrf,
        "username": "chan",
        "display_name": "Chan Tai Man",
        "role": "guard",
        "language": "en",
        "password": "a secret long enough",
        "site_ids": [str(site.id)],
        "phone": "+852 9abc 1234",
    }
    bad = client.post("/console/users", data=form)
    assert bad.status_code == 422
    assert "Letters are not allowed in a phone number" in bad.text
    assert "e.g. +852 5123 4567." in bad.text
    assert _user(db, "chan") is None
