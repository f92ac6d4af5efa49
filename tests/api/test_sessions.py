"""Sessions people can see: last use, idle sign-out, listing and ending sessions (API, pages)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from tests.conftest import PASSWORD
from welfare.audit.models import AuditEntry
from welfare.authz import Role
from welfare.errors import NotAuthenticated
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.users import service as users
from welfare.users import session_rules
from welfare.users.models import AuthSession, User
from welfare.users.service import hash_token
from welfare.users.session_rules import describe_device

PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Mobile Safari/537.36"
)
DESK_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"


def _token(client: TestClient, user: User, user_agent: str = DESK_UA) -> str:
    response = client.post(
        "/api/v1/auth/token",
        data={"username": user.username, "password": PASSWORD},
        headers={"user-agent": user_agent},
    )
    assert response.status_code == 200, response.text
    client.cookies.clear()
    return response.json()["access_token"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _row(factory: sessionmaker[Session], token: str) -> AuthSession:
    with factory() as session:
        return session.exec(
            select(AuthSession).where(AuthSession.token_hash == hash_token(token))
        ).one()


def _set(factory: sessionmaker[Session], token: str, **values: Any) -> None:
    with factory() as session:
        session.exec(
            update(AuthSession)
            .where(col(AuthSession.token_hash) == hash_token(token))
            .values(**values)
        )
        session.commit()


def _set_last_seen(factory: sessionmaker[Session], token: str, at: dt.datetime) -> None:
    _set(factory, token, last_seen_at=at)


def _resolve(
    factory: sessionmaker[Session], settings: Settings, token: str, now: dt.datetime
) -> Any:
    with factory() as reader:
        return users.actor_for_token(reader, token, None, settings=settings, now=now)


def _audit(factory: sessionmaker[Session], action: str) -> list[AuditEntry]:
    with factory() as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.action == action)).all())


# --- last seen ---------------------------------------------------------------------------------


def test_last_seen_is_written_at_most_once_a_minute(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    make_user: Callable[..., User],
    site: Site,
) -> None:
    token = _token(client, make_user("staff", [site]))
    start = _row(session_factory, token).last_seen_at
    _resolve(session_factory, settings, token, start + dt.timedelta(seconds=59))
    assert _row(session_factory, token).last_seen_at == start  # within the minute: no write
    first = start + dt.timedelta(seconds=61)
    _resolve(session_factory, settings, token, first)
    assert _row(session_factory, token).last_seen_at == first
    _resolve(session_factory, settings, token, first + dt.timedelta(seconds=30))
    assert _row(session_factory, token).last_seen_at == first
    later = first + dt.timedelta(minutes=5)
    _resolve(session_factory, settings, token, later)
    assert _row(session_factory, token).last_seen_at == later


def test_a_request_does_not_wait_for_a_locked_session_row(
    client: TestClient,
    session_factory: sessionmaker[Session],
    writers: sessionmaker[Session],
    settings: Settings,
    make_user: Callable[..., User],
    site: Site,
) -> None:
    """Another transaction holds the row (PostgreSQL) or the write lock (SQLite): the last-seen
    write is skipped at once, and the request is still let through."""
    token = _token(client, make_user("staff", [site]))
    start = _row(session_factory, token).last_seen_at
    with writers() as holder:
        holder.exec(
            select(AuthSession).where(AuthSession.token_hash == hash_token(token)).with_for_update()
        ).one()
        began = time.monotonic()
        actor = _resolve(session_factory, settings, token, start + dt.timedelta(minutes=2))
        waited = time.monotonic() - began
        holder.rollback()
    assert actor.session_id == _row(session_factory, token).id
    assert waited < 2
    assert _row(session_factory, token).last_seen_at == start


def test_requests_through_the_app_record_the_last_use(
    client: TestClient,
    session_factory: sessionmaker[Session],
    make_user: Callable[..., User],
    site: Site,
) -> None:
    token = _token(client, make_user("guard", [site]))
    an_hour_ago = _row(session_factory, token).last_seen_at - dt.timedelta(hours=1)
    _set_last_seen(session_factory, token, an_hour_ago)
    assert client.get("/api/v1/me", headers=_bearer(token)).status_code == 200
    assert _row(session_factory, token).last_seen_at > an_hour_ago + dt.timedelta(minutes=59)


# --- idle sign-out -------------------------------------------------------------------------------


def test_staff_are_signed_out_after_30_idle_minutes_and_guards_after_12_hours(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    make_user: Callable[..., User],
    site: Site,
) -> None:
    staff = _token(client, make_user("staff", [site]))
    guard = _token(client, make_user("guard", [site]))
    base = _row(session_factory, staff).last_seen_at
    # Half an hour and a bit: the guard is still signed in, office staff are not.
    soon = base + dt.timedelta(minutes=31)
    with pytest.raises(NotAuthenticated):
        _resolve(session_factory, settings, staff, soon)
    assert _row(session_factory, staff).revoked_at == soon  # marked, not just refused
    guard_base = _row(session_factory, guard).last_seen_at
    # A sign-in lasting long enough that only idleness can end it here.
    _set(session_factory, guard, expires_at=guard_base + dt.timedelta(days=3))
    _resolve(session_factory, settings, guard, guard_base + dt.timedelta(minutes=31))
    # The guard's use just now moved the clock: 12 hours idle from there.
    seen = _row(session_factory, guard).last_seen_at
    _resolve(session_factory, settings, guard, seen + dt.timedelta(hours=11, minutes=59))
    seen = _row(session_factory, guard).last_seen_at
    with pytest.raises(NotAuthenticated):
        _resolve(session_factory, settings, guard, seen + dt.timedelta(hours=12, minutes=1))
    assert _row(session_factory, guard).revoked_at is not None


def test_the_idle_limits_are_settings(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    make_user: Callable[..., User],
    site: Site,
) -> None:
    token = _token(client, make_user("manager", [site]))
    base = _row(session_factory, token).last_seen_at
    longer = settings.model_copy(update={"idle_timeout_minutes_staff": 120})
    _resolve(session_factory, longer, token, base + dt.timedelta(minutes=90))


def test_an_idle_session_is_refused_like_an_expired_one_by_the_api_and_the_pages(
    client: TestClient,
    session_factory: sessionmaker[Session],
    make_user: Callable[..., User],
    page_login: Callable[..., str],
    site: Site,
) -> None:
    staff = make_user("staff", [site])
    token = _token(client, staff)
    _set_last_seen(session_factory, token, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=45))
    response = client.get("/api/v1/me", headers=_bearer(token))
    assert response.status_code == 401
    page_login(staff)
    cookie = client.cookies.get("welfare_session")
    assert cookie
    _set_last_seen(session_factory, cookie, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=45))
    page = client.get("/account", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert _row(session_factory, cookie).revoked_at is not None


# --- one's own sessions: API ---------------------------------------------------------------------


def test_a_user_lists_their_sessions_and_signs_one_out(
    client: TestClient,
    session_factory: sessionmaker[Session],
    make_user: Callable[..., User],
    site: Site,
) -> None:
    guard = make_user("guard", [site])
    desk = _token(client, guard, DESK_UA)
    phone = _token(client, guard, PHONE_UA)
    listed = client.get("/api/v1/me/sessions", headers=_bearer(desk))
    assert listed.status_code == 200
    rows = {row["device"]: row for row in listed.json()}
    assert set(rows) == {"Firefox · Windows", "Chrome · Android"}
    assert rows["Firefox · Windows"]["current"] and not rows["Chrome · Android"]["current"]
    assert "token_hash" not in rows["Chrome · Android"]
    phone_id = rows["Chrome · Android"]["id"]

    assert (
        client.delete(f"/api/v1/me/sessions/{phone_id}", headers=_bearer(desk)).status_code == 204
    )
    assert client.get("/api/v1/me", headers=_bearer(phone)).status_code == 401  # at once
    assert [r["id"] for r in client.get("/api/v1/me/sessions", headers=_bearer(desk)).json()] == [
        rows["Firefox · Windows"]["id"]
    ]
    # Gone already, or never there: 404.
    assert (
        client.delete(f"/api/v1/me/sessions/{phone_id}", headers=_bearer(desk)).status_code == 404
    )
    assert (
        client.delete(f"/api/v1/me/sessions/{uuid.uuid4()}", headers=_bearer(desk)).status_code
        == 404
    )
    [entry] = _audit(session_factory, "auth.revoke_session")
    assert entry.entity_id == phone_id and entry.actor_id == guard.id


def test_nobody_signs_out_a_session_of_someone_else_through_their_own_list(
    client: TestClient,
    session_factory: sessionmaker[Session],
    make_user: Callable[..., User],
    site: Site,
) -> None:
    victim = _token(client, make_user("staff", [site]))
    other = _token(client, make_user("staff", [site]))
    victim_id = _row(session_factory, victim).id
    assert (
        client.delete(f"/api/v1/me/sessions/{victim_id}", headers=_bearer(other)).status_code == 404
    )
    assert client.get("/api/v1/me", headers=_bearer(victim)).status_code == 200


def test_revoke_others_keeps_only_this_session(
    client: TestClient,
    session_factory: sessionmaker[Session],
    make_user: Callable[..., User],
    site: Site,
) -> None:
    user = make_user("manager", [site])
    tokens = [_token(client, user) for _ in range(3)]
    response = client.post("/api/v1/me/sessions/revoke-others", headers=_bearer(tokens[0]))
    assert response.json() == {"revoked": 2}
    assert client.get("/api/v1/me", headers=_bearer(tokens[0])).status_code == 200
    assert [client.get("/api/v1/me", headers=_bearer(t)).status_code for t in tokens[1:]] == [
        401,
        401,
    ]
    [entry] = _audit(session_factory, "auth.sign_out_others")
    assert entry.entity_id == str(user.id) and entry.detail == {"sessions": 2}


# --- an admin and someone else's sessions: API -----------------------------------------------


def test_an_admin_lists_and_ends_a_users_session_and_the_next_request_is_refused(
    client: TestClient,
    session_factory: sessionmaker[Session],
    make_user: Callable[..., User],
    site: Site,
) -> None:
    admin = _token(client, make_user("admin", [site]))
    guard = make_user("guard", [site])
    phone = _token(client, guard, PHONE_UA)
    listed = client.get(f"/api/v1/users/{guard.id}/sessions", headers=_bearer(admin)).json()
    assert [(r["device"], r["current"]) for r in listed] == [("Chrome · Android", False)]
    session_id = listed[0]["id"]
    assert client.get("/api/v1/me", headers=_bearer(phone)).status_code == 200
    response = client.delete(
        f"/api/v1/users/{guard.id}/sessions/{session_id}", headers=_bearer(admin)
    )
    assert response.status_code == 204
    assert client.get("/api/v1/me", headers=_bearer(phone)).status_code == 401
    assert client.get(f"/api/v1/users/{guard.id}/sessions", headers=_bearer(admin)).json() == []
    [entry] = _audit(session_factory, "user.revoke_session")
    # Ids only: no address, no device.
    assert entry.entity_id == session_id and entry.detail == {"user_id": str(guard.id)}
    # A session of another user under this user's address is not found.
    other = make_user("staff", [site])
    other_id = _row(session_factory, _token(client, other)).id
    response = client.delete(
        f"/api/v1/users/{guard.id}/sessions/{other_id}", headers=_bearer(admin)
    )
    assert response.status_code == 404


# --- pages ---------------------------------------------------------------------------------------


def test_the_account_page_lists_sessions_and_signs_one_or_all_others_out(
    client: TestClient,
    session_factory: sessionmaker[Session],
    make_user: Callable[..., User],
    page_login: Callable[..., str],
    site: Site,
) -> None:
    staff = make_user("staff", [site])
    phone = _token(client, staff, PHONE_UA)
    tablet = _token(client, staff, PHONE_UA)
    csrf = page_login(staff)
    page = client.get("/account")
    assert "Chrome · Android" in page.text and "this device" in page.text
    phone_id = _row(session_factory, phone).id
    # Without the CSRF token: refused, nothing signed out.
    refused = client.post(f"/account/sessions/{phone_id}/revoke", follow_redirects=False)
    assert refused.status_code == 403
    assert client.get("/api/v1/me", headers=_bearer(phone)).status_code == 200
    done = client.post(
        f"/account/sessions/{phone_id}/revoke", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"] == "/account?saved=session"
    assert client.get("/api/v1/me", headers=_bearer(phone)).status_code == 401
    assert client.get("/account").status_code == 200  # this browser is still signed in
    others = client.post(
        "/account/sessions/revoke-others", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert others.headers["location"] == "/account?saved=others"
    assert client.get("/api/v1/me", headers=_bearer(tablet)).status_code == 401
    assert client.get("/account").status_code == 200
    assert len(_audit(session_factory, "auth.revoke_session")) == 1
    assert len(_audit(session_factory, "auth.sign_out_others")) == 1


def test_the_console_user_page_lists_a_users_sessions_and_ends_one(
    client: TestClient,
    session_factory: sessionmaker[Session],
    make_user: Callable[..., User],
    page_login: Callable[..., str],
    site: Site,
) -> None:
    guard = make_user("guard", [site])
    phone = _token(client, guard, PHONE_UA)
    desk = _token(client, guard, DESK_UA)
    csrf = page_login(make_user("admin", [site]))
    page = client.get(f"/console/users/{guard.id}")
    assert "Chrome · Android" in page.text and "Firefox · Windows" in page.text
    phone_id = _row(session_factory, phone).id
    assert f"/console/users/{guard.id}/sessions/{phone_id}/revoke" in page.text
    response = client.post(
        f"/console/users/{guard.id}/sessions/{phone_id}/revoke",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert client.get("/api/v1/me", headers=_bearer(phone)).status_code == 401
    assert client.get("/api/v1/me", headers=_bearer(desk)).status_code == 200
    page = client.get(response.headers["location"])
    assert "Chrome · Android" not in page.text and "That session was signed out." in page.text
    assert len(_audit(session_factory, "user.revoke_session")) == 1


def test_staff_cannot_end_a_users_session_from_the_console(
    client: TestClient,
    session_factory: sessionmaker[Session],
    make_user: Callable[..., User],
    page_login: Callable[..., str],
    site: Site,
) -> None:
    guard = make_user("guard", [site])
    phone = _token(client, guard, PHONE_UA)
    csrf = page_login(make_user("staff", [site]))
    phone_id = _row(session_factory, phone).id
    response = client.post(
        f"/console/users/{guard.id}/sessions/{phone_id}/revoke",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert client.get("/api/v1/me", headers=_bearer(phone)).status_code == 200


# --- devices -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_agent", "device"),
    [
        (PHONE_UA, "Chrome · Android"),
        (DESK_UA, "Firefox · Windows"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "Safari · iPhone",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0 Safari/537.36 Edg/126.0",
            "Edge · Windows",
        ),
        ("python-httpx/0.27", "python-httpx/0.27"),
        ("x" * 300, "x" * 59 + "…"),
        (None, None),
        ("  ", None),
    ],
)
def test_the_device_is_a_short_description_of_the_user_agent(
    user_agent: str | None, device: str | None
) -> None:
    assert describe_device(user_agent) == device


def test_the_timing_rules_are_pure() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    now = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
    assert session_rules.idle_limit(Role.guard, settings) == dt.timedelta(hours=12)
    for role in (Role.staff, Role.manager, Role.admin):
        assert session_rules.idle_limit(role, settings) == dt.timedelta(minutes=30)
    assert not session_rules.is_idle(now - dt.timedelta(minutes=30), Role.staff, settings, now)
    assert session_rules.is_idle(now - dt.timedelta(minutes=31), Role.staff, settings, now)
    assert not session_rules.needs_touch(now - dt.timedelta(seconds=59), now)
    assert session_rules.needs_touch(now - dt.timedelta(seconds=60), now)
