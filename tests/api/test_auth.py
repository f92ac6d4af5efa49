"""Sign-in, sessions (bearer and cookie), throttling and revocation."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, update
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from tests.conftest import PASSWORD
from welfare.authz import Role
from welfare.sites.models import Site
from welfare.users.models import AuthSession, LoginFailure, User

TOKEN_URL = "/api/v1/auth/token"
ME = "/api/v1/me"
WRONG = "wrong password entirely"
TESTCLIENT_ADDR = "testclient"  # what Starlette's TestClient reports as the client host


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    return client.post(TOKEN_URL, data={"username": username, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_of(client: TestClient, user: User, password: str = PASSWORD) -> str:
    response = sign_in(client, user.username, password)
    assert response.status_code == 200, response.text
    client.cookies.clear()
    return response.json()["access_token"]


def sessions_of(factory: sessionmaker[Session], user: User) -> list[AuthSession]:
    with factory() as session:
        return list(
            session.exec(
                select(AuthSession)
                .where(AuthSession.user_id == user.id)
                .order_by(col(AuthSession.created_at))
            ).all()
        )


def failures_for(factory: sessionmaker[Session], username: str) -> int:
    with factory() as session:
        return session.exec(
            select(func.count()).select_from(LoginFailure).where(LoginFailure.username == username)
        ).one()


def add_failures(
    factory: sessionmaker[Session],
    *,
    count: int,
    username: str | Callable[[int], str],
    client_addr: str = TESTCLIENT_ADDR,
    age: dt.timedelta = dt.timedelta(0),
) -> None:
    at = dt.datetime.now(dt.UTC) - age
    with factory() as session:
        for i in range(count):
            name = username(i) if callable(username) else username
            session.add(LoginFailure(username=name, client_addr=client_addr, at=at))
        session.commit()


# --- signing in --------------------------------------------------------------------------------


def test_sign_in_returns_a_bearer_token_with_its_expiry(
    client: TestClient, make_user, site: Site, settings
) -> None:
    user = make_user("staff", [site])
    before = dt.datetime.now(dt.UTC)
    response = sign_in(client, user.username)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_at"}
    assert body["token_type"] == "bearer"
    assert len(body["access_token"]) >= 40
    expires = dt.datetime.fromisoformat(body["expires_at"])
    assert expires.tzinfo is not None
    ttl = dt.timedelta(hours=settings.session_ttl_hours)
    assert (
        before + ttl - dt.timedelta(seconds=5) <= expires <= before + ttl + dt.timedelta(seconds=60)
    )
    assert response.headers["cache-control"] == "no-store"
    me = client.get(ME, headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["username"] == user.username


def test_sign_in_stores_only_the_sha256_of_the_token(
    client: TestClient, make_user, site: Site, session_factory
) -> None:
    user = make_user("staff", [site])
    token = token_of(client, user)
    [stored] = sessions_of(session_factory, user)
    assert stored.token_hash != token
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert stored.revoked_at is None
    assert stored.client_addr == TESTCLIENT_ADDR
    with session_factory() as session:
        rows = session.exec(select(AuthSession)).all()
        assert all(token not in (r.token_hash, r.user_agent, r.client_addr) for r in rows)


def test_sign_in_sets_an_httponly_samesite_lax_session_cookie(
    client: TestClient, make_user, site: Site, settings
) -> None:
    user = make_user("staff", [site])
    response = sign_in(client, user.username)
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    parts = [p.strip().lower() for p in cookie.split(";")]
    assert parts[0] == f"welfare_session={response.json()['access_token']}".lower()
    assert "httponly" in parts
    assert "samesite=lax" in parts
    assert "path=/" in parts
    assert "secure" in parts  # public_base_url is https in the test settings
    assert f"max-age={settings.session_ttl_hours * 3600}" in parts
    assert len(response.headers["x-csrf-token"]) == 86  # masked: base64url of pad + secret


def test_username_is_matched_case_insensitively(client: TestClient, make_user, site) -> None:
    user = make_user("staff", [site])
    response = sign_in(client, "  " + user.username.upper() + " ")
    assert response.status_code == 200


def test_wrong_password_and_unknown_user_get_the_same_401(
    client: TestClient, make_user, site: Site
) -> None:
    user = make_user("staff", [site])
    wrong = sign_in(client, user.username, WRONG)
    unknown = sign_in(client, "nobody-here", PASSWORD)
    assert wrong.status_code == 401
    assert unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "wrong username or password"}
    assert wrong.headers["www-authenticate"] == "Bearer"
    assert "set-cookie" not in wrong.headers


def test_inactive_user_cannot_sign_in(client: TestClient, make_user, site: Site) -> None:
    user = make_user("staff", [site], is_active=False)
    response = sign_in(client, user.username)
    assert response.status_code == 401
    assert response.json() == {"detail": "wrong username or password"}


def test_sign_in_requires_both_form_fields(client: TestClient) -> None:
    response = client.post(TOKEN_URL, data={"username": "someone"})
    assert response.status_code == 422
    response = client.post(TOKEN_URL, json={"username": "someone", "password": PASSWORD})
    assert response.status_code == 422


def test_requests_without_a_token_or_with_a_bad_one_are_401(client: TestClient) -> None:
    assert client.get(ME).status_code == 401
    response = client.get(ME, headers=bearer("not-a-real-token"))
    assert response.status_code == 401
    assert response.json() == {"detail": "not signed in"}


# --- throttling --------------------------------------------------------------------------------


def test_account_is_throttled_after_max_failures_even_with_the_right_password(
    client: TestClient, make_user, site: Site, settings, session_factory
) -> None:
    user = make_user("staff", [site])
    assert settings.login_max_failures_per_account == 5
    for _ in range(5):
        assert sign_in(client, user.username, WRONG).status_code == 401
    assert failures_for(session_factory, user.username) == 5
    response = sign_in(client, user.username)
    assert response.status_code == 429
    assert response.json() == {"detail": "too many failed sign-in attempts; try again later"}
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= settings.login_window_minutes * 60
    assert retry_after > settings.login_window_minutes * 60 - 60
    assert "set-cookie" not in response.headers


def test_throttle_applies_to_the_account_under_any_letter_case(
    client: TestClient, make_user, site: Site, session_factory
) -> None:
    user = make_user("staff", [site])
    add_failures(session_factory, count=5, username=user.username, client_addr="192.0.2.9")
    assert sign_in(client, user.username.upper()).status_code == 429


def test_four_failures_do_not_throttle_and_a_success_clears_them(
    client: TestClient, make_user, site: Site, session_factory
) -> None:
    user = make_user("staff", [site])
    add_failures(session_factory, count=3, username=user.username)
    assert sign_in(client, user.username, WRONG).status_code == 401
    assert failures_for(session_factory, user.username) == 4
    assert sign_in(client, user.username).status_code == 200
    assert failures_for(session_factory, user.username) == 0
    # The count starts again from zero: four more failures still leave the account usable.
    add_failures(session_factory, count=4, username=user.username)
    assert sign_in(client, user.username).status_code == 200


def test_failures_older_than_the_window_do_not_count(
    client: TestClient, make_user, site: Site, settings, session_factory
) -> None:
    user = make_user("staff", [site])
    old = dt.timedelta(minutes=settings.login_window_minutes, seconds=30)
    add_failures(session_factory, count=50, username=user.username, age=old)
    assert sign_in(client, user.username).status_code == 200


def test_retry_after_counts_from_the_oldest_failure_in_the_window(
    client: TestClient, make_user, site: Site, settings, session_factory
) -> None:
    user = make_user("staff", [site])
    window = settings.login_window_minutes * 60
    add_failures(session_factory, count=1, username=user.username, age=dt.timedelta(seconds=600))
    add_failures(session_factory, count=4, username=user.username)
    response = sign_in(client, user.username)
    assert response.status_code == 429
    assert window - 600 - 5 <= int(response.headers["retry-after"]) <= window - 600 + 1


def test_client_address_is_throttled_across_usernames(
    client: TestClient, make_user, site: Site, settings, session_factory
) -> None:
    assert settings.login_max_failures_per_address == 20
    user = make_user("staff", [site])
    # Four real failures against different (unknown) names, each far below the account limit...
    for i in range(4):
        assert sign_in(client, f"spray-{i}", WRONG).status_code == 401
    with session_factory() as session:
        addrs = session.exec(
            select(LoginFailure.client_addr).where(col(LoginFailure.username).like("spray-%"))
        ).all()
    assert addrs == [TESTCLIENT_ADDR] * 4
    # ...plus sixteen more from the same address make twenty.
    add_failures(session_factory, count=15, username=lambda i: f"other-{i}")
    assert sign_in(client, user.username).status_code == 200  # 19: not yet
    add_failures(session_factory, count=1, username="one-more")
    response = sign_in(client, user.username)
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1


def test_failures_from_another_address_do_not_throttle_this_one(
    client: TestClient, make_user, site: Site, session_factory
) -> None:
    user = make_user("staff", [site])
    add_failures(session_factory, count=40, username=lambda i: f"x-{i}", client_addr="192.0.2.1")
    assert sign_in(client, user.username).status_code == 200


# --- revocation -------------------------------------------------------------------------------


def test_logout_revokes_the_token(
    client: TestClient, make_user, site: Site, session_factory
) -> None:
    user = make_user("staff", [site])
    token = token_of(client, user)
    other = token_of(client, user)
    response = client.post("/api/v1/auth/logout", headers=bearer(token))
    assert response.status_code == 204
    assert client.get(ME, headers=bearer(token)).status_code == 401
    assert client.post("/api/v1/auth/logout", headers=bearer(token)).status_code == 401
    assert client.get(ME, headers=bearer(other)).status_code == 200
    revoked = [s.revoked_at is not None for s in sessions_of(session_factory, user)]
    assert revoked == [True, False]


def test_logout_everywhere_revokes_every_session_of_the_user(
    client: TestClient, make_user, site: Site
) -> None:
    user = make_user("staff", [site])
    bystander = make_user("staff", [site])
    tokens = [token_of(client, user) for _ in range(3)]
    theirs = token_of(client, bystander)
    response = client.post("/api/v1/auth/logout-everywhere", headers=bearer(tokens[0]))
    assert response.status_code == 204
    assert [client.get(ME, headers=bearer(t)).status_code for t in tokens] == [401] * 3
    assert client.get(ME, headers=bearer(theirs)).status_code == 200


def test_admin_revoke_sessions_signs_the_user_out(
    client: TestClient, make_user, site: Site
) -> None:
    admin = make_user("admin", [site])
    user = make_user("staff", [site])
    admin_token = token_of(client, admin)
    tokens = [token_of(client, user), token_of(client, user)]
    response = client.post(f"/api/v1/users/{user.id}/revoke-sessions", headers=bearer(admin_token))
    assert response.status_code == 200
    assert response.json() == {"revoked": 2}
    assert [client.get(ME, headers=bearer(t)).status_code for t in tokens] == [401, 401]
    assert client.get(ME, headers=bearer(admin_token)).status_code == 200


def test_only_admins_may_revoke_other_users_sessions(
    client: TestClient, make_user, site: Site
) -> None:
    manager = make_user("manager", [site])
    user = make_user("staff", [site])
    token = token_of(client, user)
    response = client.post(
        f"/api/v1/users/{user.id}/revoke-sessions", headers=bearer(token_of(client, manager))
    )
    assert response.status_code == 403
    assert client.get(ME, headers=bearer(token)).status_code == 200


@pytest.mark.parametrize(
    "change",
    [
        {"password": "a brand new password"},
        {"role": "manager"},
        {"site_ids": []},
        {"is_active": False},
    ],
    ids=["password", "role", "sites", "deactivated"],
)
def test_admin_patch_that_changes_access_revokes_sessions(
    client: TestClient, make_user, site: Site, change: dict[str, Any]
) -> None:
    admin = make_user("admin", [site])
    user = make_user("staff", [site])
    admin_token = token_of(client, admin)
    token = token_of(client, user)
    response = client.patch(f"/api/v1/users/{user.id}", json=change, headers=bearer(admin_token))
    assert response.status_code == 200, response.text
    assert client.get(ME, headers=bearer(token)).status_code == 401
    if "password" in change:
        assert sign_in(client, user.username).status_code == 401
        assert sign_in(client, user.username, change["password"]).status_code == 200


def test_admin_patch_that_leaves_access_unchanged_keeps_sessions(
    client: TestClient, make_user, site: Site
) -> None:
    admin = make_user("admin", [site])
    user = make_user("staff", [site])
    admin_token = token_of(client, admin)
    token = token_of(client, user)
    response = client.patch(
        f"/api/v1/users/{user.id}",
        # A form re-sending the unchanged role and sites is not a change of access.
        json={
            "display_name": "Joyce N.",
            "language": "zh-CN",
            "role": "staff",
            "site_ids": [str(site.id)],
            "is_active": True,
        },
        headers=bearer(admin_token),
    )
    assert response.status_code == 200
    assert client.get(ME, headers=bearer(token)).json()["display_name"] == "Joyce N."


def test_changing_own_password_keeps_this_session_and_ends_the_others(
    client: TestClient, make_user, site: Site
) -> None:
    user = make_user("staff", [site])
    current, other = token_of(client, user), token_of(client, user)
    new_password = "another long password"
    response = client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=bearer(current),
    )
    assert response.status_code == 204
    assert client.get(ME, headers=bearer(current)).status_code == 200
    assert client.get(ME, headers=bearer(other)).status_code == 401
    assert sign_in(client, user.username).status_code == 401
    assert sign_in(client, user.username, new_password).status_code == 200


def test_changing_password_with_a_wrong_current_password_is_422_naming_it(
    client: TestClient, make_user, site: Site
) -> None:
    user = make_user("staff", [site])
    current, other = token_of(client, user), token_of(client, user)
    response = client.post(
        "/api/v1/me/password",
        json={"current_password": WRONG, "new_password": "another long password"},
        headers=bearer(current),
    )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "current_password"]
    assert client.get(ME, headers=bearer(other)).status_code == 200
    assert sign_in(client, user.username).status_code == 200


def change_password(client: TestClient, token: str, current: str) -> Any:
    return client.post(
        "/api/v1/me/password",
        json={"current_password": current, "new_password": "another long password"},
        headers=bearer(token),
    )


def test_wrong_current_passwords_are_throttled_with_the_sign_in_limits(
    client: TestClient, make_user, site: Site, settings, session_factory
) -> None:
    user = make_user("staff", [site])
    token = token_of(client, user)
    for _ in range(settings.login_max_failures_per_account):
        assert change_password(client, token, WRONG).status_code == 422
    # The guesses are sign-in failures of the account: they outlive the 422s...
    assert failures_for(session_factory, user.username) == 5
    # ...and the next try is refused even with the right password, as sign-in would be.
    response = change_password(client, token, PASSWORD)
    assert response.status_code == 429
    assert response.json() == {"detail": "too many wrong passwords; try again later"}
    retry_after = int(response.headers["retry-after"])
    assert (
        settings.login_window_minutes * 60 - 60 < retry_after <= settings.login_window_minutes * 60
    )
    assert sign_in(client, user.username).status_code == 429
    assert sign_in(client, user.username, "another long password").status_code == 429


def test_failed_sign_ins_throttle_the_password_change_of_the_account(
    client: TestClient, make_user, site: Site, session_factory
) -> None:
    user = make_user("staff", [site])
    token = token_of(client, user)
    add_failures(session_factory, count=5, username=user.username, client_addr="192.0.2.9")
    assert change_password(client, token, PASSWORD).status_code == 429


def test_password_change_is_throttled_per_client_address_too(
    client: TestClient, make_user, site: Site, session_factory
) -> None:
    user = make_user("staff", [site])
    token = token_of(client, user)
    add_failures(session_factory, count=20, username=lambda i: f"spray-{i}")
    assert change_password(client, token, WRONG).status_code == 429
    assert failures_for(session_factory, user.username) == 0  # refused before any guess


def test_a_right_current_password_clears_the_failures_of_the_account(
    client: TestClient, make_user, site: Site, session_factory
) -> None:
    user = make_user("staff", [site])
    token = token_of(client, user)
    add_failures(session_factory, count=3, username=user.username)
    assert change_password(client, token, WRONG).status_code == 422
    assert failures_for(session_factory, user.username) == 4
    assert change_password(client, token, PASSWORD).status_code == 204
    assert failures_for(session_factory, user.username) == 0


def test_new_password_must_be_long_enough_and_different(
    client: TestClient, make_user, site: Site
) -> None:
    user = make_user("staff", [site])
    headers = bearer(token_of(client, user))
    short = client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=headers,
    )
    assert short.status_code == 422
    assert short.json()["detail"][0]["loc"] == ["body", "new_password"]
    same = client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": PASSWORD},
        headers=headers,
    )
    assert same.status_code == 422
    assert same.json()["detail"][0]["loc"] == ["body", "new_password"]


def test_expired_session_is_401(client: TestClient, make_user, site: Site, session_factory) -> None:
    user = make_user("staff", [site])
    token = token_of(client, user)
    assert client.get(ME, headers=bearer(token)).status_code == 200
    with session_factory() as session:
        session.exec(
            update(AuthSession)
            .where(col(AuthSession.token_hash) == hashlib.sha256(token.encode()).hexdigest())
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
        session.commit()
    response = client.get(ME, headers=bearer(token))
    assert response.status_code == 401
    assert response.json() == {"detail": "session expired or signed out; sign in again"}


def test_deactivated_user_with_a_live_session_is_401(
    client: TestClient, make_user, site: Site, session_factory
) -> None:
    user = make_user("staff", [site])
    token = token_of(client, user)
    with session_factory() as session:
        session.exec(update(User).where(col(User.id) == user.id).values(is_active=False))
        session.commit()
    assert client.get(ME, headers=bearer(token)).status_code == 401


# --- cookie sessions -------------------------------------------------------------------------


def cookie_sign_in(client: TestClient, user: User) -> str:
    """Sign in keeping the cookie in the client; returns the CSRF token."""
    response = sign_in(client, user.username)
    assert response.status_code == 200
    assert client.cookies.get("welfare_session") == response.json()["access_token"]
    return response.headers["x-csrf-token"]


def test_cookie_alone_authenticates_reads(client: TestClient, make_user, site: Site) -> None:
    user = make_user("staff", [site])
    cookie_sign_in(client, user)
    response = client.get(ME)
    assert response.status_code == 200
    assert response.json()["id"] == str(user.id)


def test_cookie_writes_without_the_csrf_header_are_403(
    client: TestClient, make_user, site: Site
) -> None:
    user = make_user("staff", [site])
    cookie_sign_in(client, user)
    response = client.patch(ME, json={"display_name": "Changed"})
    assert response.status_code == 403
    assert response.json() == {
        "detail": "missing or wrong CSRF token: reload the page and try again"
    }
    assert client.post("/api/v1/auth/logout").status_code == 403
    wrong = client.patch(ME, json={"display_name": "Changed"}, headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403
    assert client.get(ME).json()["display_name"] == "staff"


def test_cookie_writes_with_the_csrf_header_from_sign_in_work(
    client: TestClient, make_user, site: Site
) -> None:
    user = make_user("staff", [site])
    csrf = cookie_sign_in(client, user)
    response = client.patch(ME, json={"display_name": "Changed"}, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200
    assert response.json()["display_name"] == "Changed"
    logout = client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert logout.status_code == 204
    assert "welfare_session" not in client.cookies
    assert client.get(ME).status_code == 401


def test_csrf_token_of_one_session_does_not_fit_another(
    client: TestClient, make_user, site: Site
) -> None:
    user = make_user("staff", [site])
    first = cookie_sign_in(client, user)
    second = cookie_sign_in(client, user)
    assert first != second
    response = client.patch(ME, json={"display_name": "Changed"}, headers={"X-CSRF-Token": first})
    assert response.status_code == 403


def test_revoked_cookie_session_is_401(client: TestClient, make_user, site: Site) -> None:
    user = make_user("staff", [site])
    cookie_sign_in(client, user)
    cookie = client.cookies.get("welfare_session")
    assert cookie
    assert client.post("/api/v1/auth/logout-everywhere", headers=bearer(cookie)).status_code == 204
    client.cookies.set("welfare_session", cookie, domain="welfare.test")
    assert client.get(ME).status_code == 401


def test_role_is_read_from_the_database_at_each_request(
    client: TestClient, make_user, site: Site, session_factory
) -> None:
    user = make_user(Role.admin, [site])
    token = token_of(client, user)
    assert client.get("/api/v1/users", headers=bearer(token)).status_code == 200
    with session_factory() as session:
        session.exec(update(User).where(col(User.id) == user.id).values(role=Role.guard))
        session.commit()
    assert client.get("/api/v1/users", headers=bearer(token)).status_code == 403


def test_non_ascii_csrf_header_is_403_not_a_server_error(
    client: TestClient, make_user, site: Site
) -> None:
    user = make_user("staff", [site])
    cookie_sign_in(client, user)
    response = client.patch(ME, json={"display_name": "X"}, headers={"X-CSRF-Token": b"\xe9t\xe9"})
    assert response.status_code == 403
    assert response.json() == {
        "detail": "missing or wrong CSRF token: reload the page and try again"
    }


def test_nul_characters_in_the_sign_in_form_are_a_plain_401(
    client: TestClient, make_user, site: Site, session_factory
) -> None:
    user = make_user("staff", [site])
    response = sign_in(client, user.username + "\x00", PASSWORD)
    assert response.status_code == 401
    assert response.json() == {"detail": "wrong username or password"}
    assert sign_in(client, user.username, PASSWORD + "\x00").status_code == 401
    assert sign_in(client, user.username).status_code == 200
