"""Two-factor sign-in over HTTP: the token endpoint's `mfa_required`, the sign-in page's code
step, enrolment on the account page, a session that may only enrol, the admin's reset, and the
sites' settings (JSON API and the admin's page)."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from tests.conftest import PASSWORD, TotpEnrolment, form_csrf
from welfare.audit.models import AuditEntry
from welfare.db import utcnow
from welfare.sites.models import Site
from welfare.users import totp
from welfare.users.models import AuthSession, User

HTML = {"accept": "text/html"}
SECRET_ON_PAGE = re.compile(r"data-secret>([A-Z2-7 ]+)</code>")
RECOVERY_ON_PAGE = re.compile(r"<li><code>([A-Z0-9-]{19})</code></li>")


def _token(client: TestClient, user: User, **extra: str) -> tuple[int, dict[str, object]]:
    response = client.post(
        "/api/v1/auth/token", data={"username": user.username, "password": PASSWORD, **extra}
    )
    client.cookies.clear()
    return response.status_code, response.json()


# --- the JSON token endpoint ------------------------------------------------------------------


def test_the_token_endpoint_answers_mfa_required_without_a_code_and_401_for_a_wrong_one(
    client: TestClient,
    make_user: Callable[..., User],
    enrol_totp: Callable[[User], TotpEnrolment],
) -> None:
    user = make_user("staff")
    enrolment = enrol_totp(user)
    assert _token(client, user) == (401, {"detail": "mfa_required"})
    wrong = "000000" if enrolment.code() != "000000" else "111111"
    assert _token(client, user, otp=wrong) == (401, {"detail": "wrong code"})
    status, body = _token(client, user, otp=enrolment.code())
    assert status == 200 and body["access_token"]
    status, body = _token(client, user, recovery_code=enrolment.recovery_codes[0])
    assert status == 200
    me = client.get(
        "/api/v1/me/second-factor", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.json() == {
        "enabled": True,
        "enabled_at": me.json()["enabled_at"],
        "recovery_codes_left": 9,
        "required": False,
    }


def test_a_wrong_password_with_a_right_code_is_still_a_wrong_password(
    client: TestClient,
    make_user: Callable[..., User],
    enrol_totp: Callable[[User], TotpEnrolment],
) -> None:
    user = make_user("staff")
    enrolment = enrol_totp(user)
    response = client.post(
        "/api/v1/auth/token",
        data={"username": user.username, "password": "not the password", "otp": enrolment.code()},
    )
    assert response.status_code == 401
    assert response.json() == {"detail": "wrong username or password"}


def test_an_account_without_totp_ignores_a_code_it_was_sent(
    client: TestClient, make_user: Callable[..., User]
) -> None:
    status, _body = _token(client, make_user("guard"), otp="123456")
    assert status == 200


# --- a session that must first enrol --------------------------------------------------------------


def test_a_required_user_without_a_second_factor_gets_only_enrolment(
    client: TestClient, make_site: Callable[..., Site], make_user: Callable[..., User]
) -> None:
    staff = make_user("staff", [make_site(require_second_factor_staff=True)])
    status, body = _token(client, staff)
    assert status == 200
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    refused = client.get("/api/v1/residents", headers=bearer)
    assert refused.status_code == 403
    assert refused.json() == {"detail": "mfa_enrolment_required"}
    assert client.get("/api/v1/me", headers=bearer).status_code == 200
    status_now = client.get("/api/v1/me/second-factor", headers=bearer).json()
    assert status_now["required"] is True and status_now["enabled"] is False
    assert client.post("/api/v1/auth/logout", headers=bearer).status_code == 204


def test_enrolment_on_the_account_page_unlocks_the_console(
    client: TestClient,
    db: Session,
    make_site: Callable[..., Site],
    make_user: Callable[..., User],
) -> None:
    staff = make_user("staff", [make_site(require_second_factor_staff=True)])
    login_page = client.get("/login")
    signed_in = client.post(
        "/login",
        data={
            "username": staff.username,
            "password": PASSWORD,
            "csrf_token": form_csrf(login_page.text),
        },
        follow_redirects=False,
    )
    assert signed_in.status_code == 303
    # Every page but the enrolment page sends the user there.
    for path in ("/console", "/account", "/console/residents"):
        sent = client.get(path, headers=HTML, follow_redirects=False)
        assert (sent.status_code, sent.headers["location"]) == (303, "/account/two-factor"), path
    page = client.get("/account/two-factor", headers=HTML)
    assert page.status_code == 200
    assert "Your site requires two-factor sign-in" in page.text
    csrf = form_csrf(page.text)
    started = client.post(
        "/account/two-factor/start", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert started.status_code == 303
    page = client.get("/account/two-factor", headers=HTML)
    found = SECRET_ON_PAGE.search(page.text)
    assert found, "the key for typing in by hand is on the page"
    assert 'src="data:image/svg+xml;base64,' in page.text
    secret = found.group(1).replace(" ", "")
    wrong = client.post("/account/two-factor/confirm", data={"csrf_token": csrf, "code": "12"})
    assert wrong.status_code == 422
    confirmed = client.post(
        "/account/two-factor/confirm",
        data={"csrf_token": csrf, "code": totp.code_at(secret, utcnow())},
    )
    assert confirmed.status_code == 200
    assert confirmed.headers["cache-control"] == "no-store"
    codes = RECOVERY_ON_PAGE.findall(confirmed.text)
    assert len(codes) == 10
    assert client.get("/console", headers=HTML).status_code == 200
    session_row = db.exec(select(AuthSession).where(AuthSession.user_id == staff.id)).one()
    assert session_row.second_factor == "totp"
    entries = db.exec(
        select(AuditEntry).where(AuditEntry.action == "user.second_factor_enrol")
    ).all()
    assert len(entries) == 1
    assert all(code not in str(entries[0].detail) for code in codes)


# --- the sign-in page's code step ---------------------------------------------------------------


def _password_step(client: TestClient, user: User, lang: str | None = None) -> str:
    client.cookies.clear()
    login_page = client.get("/login" + (f"?lang={lang}" if lang else ""))
    data = {
        "username": user.username,
        "password": PASSWORD,
        "csrf_token": form_csrf(login_page.text),
    }
    if lang:
        data["lang"] = lang
    step = client.post("/login", data=data, follow_redirects=False)
    assert step.status_code == 200, step.text
    assert "welfare_session" not in step.headers.get("set-cookie", "")
    return step.text


def _code_step(client: TestClient, page: str, **code: str) -> object:
    pending = re.search(r'name="pending" value="([^"]+)"', page)
    assert pending
    return client.post(
        "/login/code",
        data={"csrf_token": form_csrf(page), "pending": pending.group(1), **code},
        follow_redirects=False,
    )


def test_the_sign_in_page_asks_for_the_code_before_any_session_exists(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    enrol_totp: Callable[[User], TotpEnrolment],
) -> None:
    user = make_user("staff")
    enrolment = enrol_totp(user)
    page = _password_step(client, user)
    assert "Enter the six-digit code from your authenticator app" in page
    assert "Use a recovery code" in page
    assert db.exec(select(AuthSession).where(AuthSession.user_id == user.id)).all() == []
    wrong = _code_step(client, page, otp="000000" if enrolment.code() != "000000" else "111111")
    assert wrong.status_code == 401  # type: ignore[attr-defined]
    assert "That code is not right" in wrong.text  # type: ignore[attr-defined]
    done = _code_step(client, wrong.text, otp=enrolment.code())  # type: ignore[attr-defined]
    assert done.status_code == 303  # type: ignore[attr-defined]
    assert done.headers["location"] == "/console"  # type: ignore[attr-defined]
    assert "welfare_session=" in done.headers["set-cookie"]  # type: ignore[attr-defined]
    # The pending sign-in is used up: sent again (with a valid CSRF pair) it opens nothing.
    fresh = client.get("/login").text
    pending = re.search(r'name="pending" value="([^"]+)"', page)
    assert pending
    again = client.post(
        "/login/code",
        data={
            "csrf_token": form_csrf(fresh),
            "pending": pending.group(1),
            "recovery_code": enrolment.recovery_codes[0],
        },
    )
    assert again.status_code == 401  # type: ignore[attr-defined]
    assert "That sign-in expired" in again.text  # type: ignore[attr-defined]


def test_a_recovery_code_signs_in_through_the_page_in_chinese(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    enrol_totp: Callable[[User], TotpEnrolment],
) -> None:
    user = make_user("staff")
    enrolment = enrol_totp(user)
    page = _password_step(client, user, lang="zh-CN")
    assert "输入身份验证器应用中的六位数验证码" in page
    done = _code_step(client, page, recovery_code=enrolment.recovery_codes[0].lower())
    assert done.status_code == 303  # type: ignore[attr-defined]
    db.commit()  # end the read begun before the request: its snapshot predates the session
    row = db.exec(select(AuthSession).where(AuthSession.user_id == user.id)).one()
    assert row.second_factor == "recovery"


def test_the_code_step_refuses_a_missing_csrf_token(
    client: TestClient,
    make_user: Callable[..., User],
    enrol_totp: Callable[[User], TotpEnrolment],
) -> None:
    user = make_user("staff")
    enrolment = enrol_totp(user)
    page = _password_step(client, user)
    pending = re.search(r'name="pending" value="([^"]+)"', page)
    assert pending
    response = client.post(
        "/login/code", data={"pending": pending.group(1), "otp": enrolment.code()}
    )
    assert response.status_code == 403


# --- the admin's reset and the sites' settings --------------------------------------------------


def test_an_admin_resets_a_users_second_factor_over_the_api_and_the_page(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    login: Callable[..., dict[str, str]],
    page_login: Callable[..., str],
    enrol_totp: Callable[[User], TotpEnrolment],
) -> None:
    user = make_user("staff")
    enrol_totp(user)
    admin = make_user("admin")
    reset = client.post(f"/api/v1/users/{user.id}/second-factor/reset", headers=login(admin))
    assert reset.status_code == 200
    assert _token(client, user)[0] == 200  # the password alone, again
    enrol_totp(user)
    csrf = page_login(admin)
    page = client.get(f"/console/users/{user.id}", headers=HTML)
    assert "Reset two-factor sign-in" in page.text and "Two-factor sign-in is on." in page.text
    done = client.post(
        f"/console/users/{user.id}/second-factor/reset",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"].endswith("?done=second-factor")
    db.commit()  # end the fixture's read: its snapshot predates the page's reset
    actions = db.exec(
        select(AuditEntry.action).where(AuditEntry.action == "user.second_factor_reset")
    ).all()
    assert len(actions) == 2


def test_new_sites_require_a_second_factor_of_staff_and_the_api_changes_it(
    client: TestClient, make_user: Callable[..., User], login: Callable[..., dict[str, str]]
) -> None:
    admin_headers = login(make_user("admin"))
    created = client.post(
        "/api/v1/sites",
        headers=admin_headers,
        json={"name": "Strict Court", "timezone": "Europe/London", "phone_region": "GB"},
    )
    assert created.status_code == 201
    body = created.json()
    assert body["require_second_factor_staff"] is True
    assert body["require_second_factor_guards"] is False
    # The admin now needs one too: this session may only enrol.
    changed = client.patch(
        f"/api/v1/sites/{body['id']}",
        headers=admin_headers,
        json={"require_second_factor_staff": False},
    )
    assert changed.status_code == 403
    assert changed.json() == {"detail": "mfa_enrolment_required"}


def test_the_sites_page_lets_an_admin_change_the_requirement(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: Callable[..., str],
) -> None:
    csrf = page_login(make_user("admin"))
    page = client.get("/console/sites", headers=HTML)
    assert page.status_code == 200
    assert "Require two-factor sign-in of guards" in page.text
    saved = client.post(
        f"/console/sites/{site.id}/sign-in",
        data={"csrf_token": csrf, "require_second_factor_guards": "true"},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    db.expire_all()
    stored = db.get(Site, site.id)
    assert stored is not None
    assert stored.require_second_factor_guards is True
    assert stored.require_second_factor_staff is False
    staff_csrf = page_login(make_user("staff", [site]))
    assert client.get("/console/sites", headers=HTML).status_code == 403
    refused = client.post(
        f"/console/sites/{site.id}/sign-in",
        data={"csrf_token": staff_csrf, "require_second_factor_staff": "true"},
    )
    assert refused.status_code == 403
