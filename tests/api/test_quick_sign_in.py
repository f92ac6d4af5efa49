"""Quick sign-in for guards on a shared phone: a PIN set after a full sign-in, bound to it."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from tests.conftest import PASSWORD, SYSTEM, form_csrf
from welfare.audit.models import AuditEntry
from welfare.errors import InvalidInput, NotAuthenticated, Throttled
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.users import quick_sign_in
from welfare.users import service as users
from welfare.users.models import DevicePin, LoginFailure, User, UserUpdate

HTML = {"accept": "text/html"}
PIN = "480215"
DEVICE = "welfare_device"


def _set_pin(client: TestClient, csrf: str, pin: str = PIN, **overrides: str) -> object:
    data = {"pin": pin, "pin_again": pin, "current_password": PASSWORD, "csrf_token": csrf}
    return client.post("/account/quick-sign-in", data=data | overrides, follow_redirects=False)


def _pin_choices(html: str) -> list[str]:
    return re.findall(r'name="pin_id" value="([^"]+)"', html)


def _sign_in_with_pin(client: TestClient, pin: str, pin_id: str | None = None) -> object:
    page = client.get("/login/pin", headers=HTML, follow_redirects=False)
    if pin_id is None:
        pin_id = _pin_choices(page.text)[0]
    return client.post(
        "/login/pin",
        data={"pin_id": pin_id, "pin": pin, "csrf_token": form_csrf(page.text)},
        follow_redirects=False,
    )


@pytest.fixture
def shared_phone(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
) -> tuple[User, str]:
    """A guard who signed in fully on the shared phone and set a PIN there; signed out again.
    Returns the guard and the phone's token (the cookie the phone keeps)."""
    guard = make_user("guard", [site], display_name="Chan Tai Man")
    csrf = page_login(guard)
    response = _set_pin(client, csrf)
    assert response.status_code == 303, response.text
    device_token = client.cookies.get(DEVICE)
    assert device_token
    signed_out = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert signed_out.headers["location"] == "/login/pin"  # the next guard types a PIN
    return guard, device_token


def test_the_next_shift_signs_in_with_a_pin_on_that_phone_and_nowhere_else(
    client: TestClient,
    app: object,
    db: Session,
    shared_phone: tuple[User, str],
) -> None:
    guard, _ = shared_phone
    login_page = client.get("/login", headers=HTML)
    assert 'href="/login/pin"' in login_page.text
    page = client.get("/login/pin", headers=HTML)
    assert "Chan Tai Man" in page.text and 'inputmode="numeric"' in page.text
    response = _sign_in_with_pin(client, PIN)
    assert response.status_code == 303 and response.headers["location"] == "/guard"
    assert client.get("/guard", headers=HTML, follow_redirects=False).status_code == 200
    db.rollback()
    entry = db.exec(
        select(AuditEntry)
        .where(AuditEntry.action == "auth.sign_in", AuditEntry.actor_id == guard.id)
        .order_by(col(AuditEntry.id).desc())
    ).first()
    assert entry is not None and (entry.detail or {}).get("method") == "pin"
    assert PIN not in str(entry.detail)

    # The same PIN from another browser, which is not the phone, opens nothing.
    pin_id = _pin_choices(page.text)[0]
    with TestClient(app) as elsewhere:  # type: ignore[arg-type]
        assert elsewhere.get("/login/pin", follow_redirects=False).status_code == 303
        form = elsewhere.get("/login", headers=HTML)
        elsewhere.cookies.set(DEVICE, "not-the-phone")
        refused = elsewhere.post(
            "/login/pin",
            data={"pin_id": pin_id, "pin": PIN, "csrf_token": form_csrf(form.text)},
            follow_redirects=False,
        )
        assert refused.status_code == 401
        assert "not set up on this phone" in refused.text


@pytest.mark.parametrize(
    ("pin", "again", "password", "expected"),
    [
        ("111111", "111111", PASSWORD, "without repeats or runs"),
        ("123456", "123456", PASSWORD, "without repeats or runs"),
        ("987654", "987654", PASSWORD, "without repeats or runs"),
        ("48021", "48021", PASSWORD, "6 to 8 digits"),
        ("48a215", "48a215", PASSWORD, "6 to 8 digits"),
        ("480215", "480216", PASSWORD, "not the same"),
        ("480215", "480215", "not the password", "current password is not right"),
    ],
)
def test_weak_or_mismatched_pins_and_a_wrong_password_set_nothing(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    pin: str,
    again: str,
    password: str,
    expected: str,
) -> None:
    guard = make_user("guard", [site])
    csrf = page_login(guard)
    response = _set_pin(client, csrf, pin, pin_again=again, current_password=password)
    assert response.status_code == 422
    assert expected in response.text
    assert DEVICE not in client.cookies
    db.rollback()
    assert db.exec(select(DevicePin).where(DevicePin.user_id == guard.id)).first() is None


def test_staff_cannot_set_a_pin(
    client: TestClient, make_user: Callable[..., User], site: Site, page_login: Callable[..., str]
) -> None:
    csrf = page_login(make_user("staff", [site]))
    response = _set_pin(client, csrf)
    assert response.status_code == 403
    assert "for guards on shared phones" in response.text
    assert DEVICE not in client.cookies


def test_five_wrong_pins_lock_it_until_a_full_sign_in_sets_it_again(
    client: TestClient,
    db: Session,
    shared_phone: tuple[User, str],
    page_login: Callable[..., str],
) -> None:
    guard, device_token = shared_phone
    pin_id = _pin_choices(client.get("/login/pin", headers=HTML).text)[0]
    for tries_left in (4, 3, 2, 1):
        wrong = _sign_in_with_pin(client, "999000", pin_id)
        assert wrong.status_code == 401
        assert f"{tries_left} more tries" in wrong.text
    locked = _sign_in_with_pin(client, "999000", pin_id)
    assert locked.status_code == 401 and "no longer works" in locked.text
    # The right PIN no longer helps; the phone sends the guard to the password.
    assert client.get("/login/pin", follow_redirects=False).headers["location"] == "/login"
    db.rollback()
    locks = db.exec(select(AuditEntry).where(AuditEntry.action == "auth.pin_locked")).all()
    assert len(locks) == 1
    # A full sign-in (after the throttle window the wrong PINs opened) sets it again.
    db.exec(delete(LoginFailure))
    db.commit()
    csrf = page_login(guard)
    client.cookies.set(DEVICE, device_token)
    assert _set_pin(client, csrf, "602817").status_code == 303
    client.post("/logout", data={"csrf_token": csrf})
    assert _sign_in_with_pin(client, "602817").status_code == 303


def test_removing_a_pin_or_an_admin_ending_them_stops_it_at_once(
    client: TestClient,
    db: Session,
    shared_phone: tuple[User, str],
    page_login: Callable[..., str],
    login: Callable[..., dict[str, str]],
    make_user: Callable[..., User],
    site: Site,
) -> None:
    guard, device_token = shared_phone
    assert _sign_in_with_pin(client, PIN).status_code == 303
    own = client.get("/api/v1/me/quick-sign-in", headers=login(guard))
    assert own.status_code == 200 and [p["this_device"] for p in own.json()] == [False]
    admin = login(make_user("admin", [site]))
    client.cookies.set(DEVICE, device_token)
    listed = client.get(f"/api/v1/users/{guard.id}/quick-sign-in", headers=admin)
    assert listed.status_code == 200 and len(listed.json()) == 1
    assert "pin_hash" not in listed.text
    ended = client.post(f"/api/v1/users/{guard.id}/quick-sign-in/revoke", headers=admin)
    assert ended.json() == {"revoked": 1}
    client.cookies.set(DEVICE, device_token)
    assert client.get("/login/pin", follow_redirects=False).headers["location"] == "/login"

    # The guard's own removal, from the account page.
    csrf = page_login(guard)
    client.cookies.set(DEVICE, device_token)
    assert _set_pin(client, csrf).status_code == 303
    page = client.get("/account/quick-sign-in", headers=HTML)
    assert "this phone" in page.text
    pin_id = re.findall(r'action="/account/quick-sign-in/([^/"]+)/remove"', page.text)[0]
    removed = client.post(
        f"/account/quick-sign-in/{pin_id}/remove",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert removed.status_code == 303
    assert "None yet." in client.get("/account/quick-sign-in", headers=HTML).text
    db.rollback()
    actions = set(db.exec(select(AuditEntry.action)).all())
    assert {"auth.pin_set", "user.pins_revoked", "auth.pin_removed"} <= actions


def test_a_disabled_guard_cannot_sign_in_with_the_pin(
    client: TestClient, db: Session, shared_phone: tuple[User, str]
) -> None:
    guard, _ = shared_phone
    users.update_user(session=db, actor=SYSTEM, user_id=guard.id, data=UserUpdate(is_active=False))
    db.commit()
    assert client.get("/login/pin", follow_redirects=False).headers["location"] == "/login"


def test_the_pin_rules_refuse_repeats_runs_and_other_lengths() -> None:
    for pin in (
        "000000",
        "234567",
        "876543",
        "90123456",
        "12345",
        "123456789",
        "\uff14\uff18\uff10\uff12\uff11\uff15",
    ):
        with pytest.raises(InvalidInput):
            quick_sign_in.check_pin(pin)
    for pin in ("480215", "13572468", "1122334"):
        quick_sign_in.check_pin(pin)


def test_wrong_pins_racing_each_count_and_lock_the_pin_once(
    database_url: str,
    writers: sessionmaker[Session],
    settings: Settings,
    shared_phone: tuple[User, str],
    db: Session,
) -> None:
    """Eight wrong PINs at once, on real connections: none is lost, one locks."""
    if not database_url.startswith("postgresql"):
        pytest.skip("races need PostgreSQL's concurrent writers; SQLite queues them")
    guard, device_token = shared_phone
    db.rollback()
    pin_id = db.exec(select(DevicePin.id).where(DevicePin.user_id == guard.id)).one()
    racers = 8
    barrier = threading.Barrier(racers, timeout=30)
    outcomes: list[str] = []

    def guess(n: int) -> None:
        with writers() as session:
            barrier.wait()
            try:
                quick_sign_in.sign_in(
                    session=session,
                    settings=settings.model_copy(update={"login_max_failures_per_account": 99}),
                    device_token=device_token,
                    pin_id=pin_id,
                    pin=f"90{n}317",
                    client_addr=f"10.0.0.{n}",
                    user_agent=None,
                )
                outcomes.append("signed in")
            except (NotAuthenticated, Throttled) as exc:
                outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert "signed in" not in outcomes and len(outcomes) == racers
    db.rollback()
    row = db.get(DevicePin, pin_id)
    assert row is not None and row.revoked_at is not None
    assert row.failures == racers
    locks = db.exec(select(AuditEntry).where(AuditEntry.action == "auth.pin_locked")).all()
    assert len(locks) == 1
