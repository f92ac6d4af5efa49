"""Passkeys over HTTP: the account page adds one, the sign-in page signs in with it (the same
session cookie as a password), the JSON API lists and removes them, admins act on other users'
(audited), and every bad request is a 4xx in the reader's language."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session, select

from api.deps import SESSION_COOKIE
from tests.conftest import PASSWORD, form_csrf
from tests.soft_authenticator import SoftAuthenticator
from welfare.audit.models import AuditEntry
from welfare.db import utcnow
from welfare.sites.models import Site
from welfare.users.models import AuthSession, Passkey, User

ORIGIN = "https://welfare.test"
JSON = {"accept": "application/json"}


@pytest.fixture
def authenticator() -> SoftAuthenticator:
    return SoftAuthenticator(origin=ORIGIN)


def _add_passkey(client: TestClient, csrf: str, authenticator: SoftAuthenticator) -> Any:
    headers = JSON | {"x-csrf-token": csrf}
    options = client.post("/account/passkeys/options", headers=headers, json={})
    assert options.status_code == 200, options.text
    assert options.headers["cache-control"] == "no-store"
    added = client.post(
        "/account/passkeys",
        headers=headers,
        json={"name": "Front desk PC", "credential": authenticator.create(options.json())},
    )
    assert added.status_code == 201, added.text
    return added.json()


def _login_csrf(client: TestClient) -> str:
    return form_csrf(client.get("/login").text)


def _passkey_sign_in(client: TestClient, authenticator: SoftAuthenticator, **body: Any) -> Any:
    csrf = _login_csrf(client)
    headers = JSON | {"x-csrf-token": csrf}
    options = client.post("/login/passkey/options", headers=headers)
    assert options.status_code == 200, options.text
    return client.post(
        "/login/passkey",
        headers=headers,
        json={"credential": authenticator.get(options.json())} | body,
    )


def test_staff_adds_a_passkey_on_the_account_page_and_signs_in_with_it(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    authenticator: SoftAuthenticator,
) -> None:
    staff = make_user("staff", [site])
    csrf = page_login(staff)
    added = _add_passkey(client, csrf, authenticator)
    assert added["name"] == "Front desk PC"
    assert set(added) == {"id", "name", "created_at", "last_used_at", "transports", "backed_up"}
    page = client.get("/account")
    assert "Front desk PC" in page.text and "Not used yet" in page.text
    assert '<script src="/static/passkeys.js?v=' in page.text

    client.cookies.clear()
    signed_in = _passkey_sign_in(client, authenticator, next="/account")
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json() == {"redirect": "/account"}
    cookie = signed_in.headers["set-cookie"]
    assert "welfare_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    account = client.get("/account")
    assert account.status_code == 200
    assert "Not used yet" not in account.text  # last used: just now
    token = client.cookies.get(SESSION_COOKIE)
    assert token
    newest = db.exec(
        select(AuthSession)
        .where(AuthSession.user_id == staff.id)
        .order_by(
            AuthSession.created_at.desc()  # type: ignore[attr-defined]
        )
    ).first()
    assert newest is not None and newest.second_factor == "passkey"


def test_a_passkey_sign_in_lands_where_a_password_one_would(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    authenticator: SoftAuthenticator,
) -> None:
    guard = make_user("guard", [site])
    _add_passkey(client, page_login(guard), authenticator)
    client.cookies.clear()
    signed_in = _passkey_sign_in(client, authenticator, next="//evil.example/")
    assert signed_in.json() == {"redirect": "/guard"}


def test_the_passkey_calls_want_their_csrf_token(
    client: TestClient, make_user: Callable[..., User], site: Site, page_login: Callable[..., str]
) -> None:
    page_login(make_user("staff", [site]))
    for path in ("/account/passkeys/options", "/account/passkeys"):
        response = client.post(path, headers=JSON, json={"credential": {}})
        assert response.status_code == 403, (path, response.text)
    client.cookies.clear()
    _login_csrf(client)
    for path in ("/login/passkey/options", "/login/passkey"):
        response = client.post(
            path, headers=JSON | {"x-csrf-token": "wrong"}, json={"credential": {}}
        )
        assert response.status_code == 403, (path, response.text)


def test_a_refusal_is_explained_in_the_readers_language(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    authenticator: SoftAuthenticator,
) -> None:
    staff = make_user("staff", [site], language="zh-CN")
    csrf = page_login(staff)
    _add_passkey(client, csrf, authenticator)
    again = client.post(
        "/account/passkeys", headers=JSON | {"x-csrf-token": csrf}, json={"credential": {}}
    )
    assert again.status_code == 422
    assert again.json() == {"detail": "浏览器没有发送通行密钥。请重试。"}
    client.cookies.clear()
    copied = SoftAuthenticator(origin=ORIGIN, key=authenticator.key)  # a stranger's key
    copied.credential_id = b"not registered anywhere"
    refused = _passkey_sign_in(client, copied, lang="ko-KR")
    assert refused.status_code == 401
    assert refused.json()["detail"] == (
        "이 패스키는 여기에 등록되어 있지 않습니다. 제거되었을 수 있습니다."
    )
    assert SESSION_COOKIE not in client.cookies


def test_adding_a_passkey_late_in_a_session_wants_the_password(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    authenticator: SoftAuthenticator,
) -> None:
    staff = make_user("staff", [site])
    csrf = page_login(staff)
    assert (
        'name="password" type="password" autocomplete="current-password" required'
        not in (client.get("/account").text.split('id="passkeys"')[1].split("</section>")[0])
    )
    db.exec(update(AuthSession).values(created_at=utcnow() - dt.timedelta(minutes=10)))
    db.commit()
    section = client.get("/account").text.split('id="passkeys"')[1].split("</section>")[0]
    assert "Your password, to confirm it is you" in section
    headers = JSON | {"x-csrf-token": csrf}
    refused = client.post("/account/passkeys/options", headers=headers, json={})
    assert refused.status_code == 422
    assert refused.json()["detail"] == "Enter your current password to add a passkey."
    allowed = client.post("/account/passkeys/options", headers=headers, json={"password": PASSWORD})
    assert allowed.status_code == 200, allowed.text


def test_removing_a_passkey_on_the_account_page(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    authenticator: SoftAuthenticator,
) -> None:
    csrf = page_login(make_user("staff", [site]))
    added = _add_passkey(client, csrf, authenticator)
    removed = client.post(
        f"/account/passkeys/{added['id']}/remove",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert removed.status_code == 303
    assert removed.headers["location"] == "/account?saved=passkey-removed#passkeys"
    assert db.exec(select(Passkey)).all() == []
    client.cookies.clear()
    assert _passkey_sign_in(client, authenticator).status_code == 401


def test_the_json_api_lists_and_removes_ones_own_passkeys_only(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    login: Callable[..., dict[str, str]],
    authenticator: SoftAuthenticator,
) -> None:
    owner = make_user("guard", [site])
    added = _add_passkey(client, page_login(owner), authenticator)
    client.cookies.clear()
    mine = login(owner)
    listed = client.get("/api/v1/me/passkeys", headers=mine)
    assert [p["id"] for p in listed.json()] == [added["id"]]
    someone = login(make_user("manager", [site]))
    assert client.get("/api/v1/me/passkeys", headers=someone).json() == []
    assert client.delete(f"/api/v1/me/passkeys/{added['id']}", headers=someone).status_code == 404
    assert client.delete(f"/api/v1/me/passkeys/{added['id']}", headers=mine).status_code == 204
    assert client.get("/api/v1/me/passkeys", headers=mine).json() == []


def test_an_admin_lists_and_removes_another_users_passkey_audited(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    login: Callable[..., dict[str, str]],
    authenticator: SoftAuthenticator,
) -> None:
    owner = make_user("staff", [site])
    added = _add_passkey(client, page_login(owner), authenticator)
    client.cookies.clear()
    admin_user = make_user("admin", [site])
    admin = login(admin_user)
    listed = client.get(f"/api/v1/users/{owner.id}/passkeys", headers=admin)
    assert [p["name"] for p in listed.json()] == ["Front desk PC"]
    path = f"/api/v1/users/{owner.id}/passkeys/{added['id']}"
    assert client.delete(path, headers=login(make_user("manager", [site]))).status_code == 403
    assert client.delete(path, headers=admin).status_code == 204
    assert client.delete(path, headers=admin).status_code == 404
    entries = db.exec(select(AuditEntry).where(AuditEntry.actor_id == admin_user.id)).all()
    assert [(e.action, e.entity_id) for e in entries if e.action != "auth.sign_in"] == [
        ("user.list_passkeys", str(owner.id)),
        ("passkey.remove", added["id"]),
    ]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"credential": "x"},
        {"credential": {"id": "AA", "rawId": "AA", "type": "public-key", "response": {}}},
        {"credential": {"response": {"clientDataJSON": "////"}}},
        {"credential": {}, "next": "\x00"},
    ],
)
def test_garbage_to_the_sign_in_answer_is_a_4xx(client: TestClient, body: dict) -> None:
    csrf = _login_csrf(client)
    response = client.post("/login/passkey", headers=JSON | {"x-csrf-token": csrf}, json=body)
    assert 400 <= response.status_code < 500, response.text
    form = client.post("/login/passkey", headers={"x-csrf-token": csrf}, data={"credential": "x"})
    assert 400 <= form.status_code < 500


def test_the_sign_in_page_offers_passkeys_only_where_browsers_allow_them(
    client: TestClient, app: Any
) -> None:
    page = client.get("/login")
    assert "Sign in with a passkey" in page.text
    assert "data-passkey-supported hidden" in page.text  # shown by the script, if WebAuthn
    app.state.settings = app.state.settings.model_copy(
        update={"public_base_url": "http://127.0.0.1:8000"}
    )
    page = client.get("/login")
    assert "Sign in with a passkey" not in page.text
    assert "passkeys.js" not in page.text
    csrf = form_csrf(page.text)
    refused = client.post("/login/passkey/options", headers=JSON | {"x-csrf-token": csrf})
    assert refused.status_code == 409
