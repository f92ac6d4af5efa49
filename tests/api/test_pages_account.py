"""Sign-in, sign-out, language and password as pages: CSRF, safe redirects, headers."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlmodel import Session

from tests.conftest import PASSWORD, form_csrf
from welfare.sites.models import Site
from welfare.users.models import User

HTML = {"accept": "text/html"}


def test_sign_in_page_has_strict_security_headers(client: TestClient) -> None:
    response = client.get("/login")
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert '<script src="/static/app.js?v=' in response.text


def test_guard_signs_in_and_lands_on_the_guard_app(
    client: TestClient, make_user: Callable[..., User], site: Site
) -> None:
    guard = make_user("guard", [site])
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"username": guard.username, "password": PASSWORD, "csrf_token": form_csrf(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/guard"
    cookie = response.headers["set-cookie"]
    assert "welfare_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_staff_lands_on_the_console_and_next_is_followed_only_when_local(
    client: TestClient, make_user: Callable[..., User], site: Site
) -> None:
    staff = make_user("staff", [site])
    for next_path, expected in [
        ("/account", "/account"),
        ("//evil.example/x", "/console"),
        ("https://evil.example/", "/console"),
        ("/\\evil.example", "/console"),
    ]:
        client.cookies.clear()
        page = client.get("/login")
        response = client.post(
            "/login",
            data={
                "username": staff.username,
                "password": PASSWORD,
                "csrf_token": form_csrf(page.text),
                "next": next_path,
            },
            follow_redirects=False,
        )
        assert response.headers["location"] == expected, next_path


def test_sign_in_without_the_form_token_is_refused(
    client: TestClient, make_user: Callable[..., User], site: Site
) -> None:
    guard = make_user("guard", [site])
    client.get("/login")
    response = client.post(
        "/login",
        data={"username": guard.username, "password": PASSWORD, "csrf_token": "forged"},
        headers=HTML,
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "welfare_session" not in response.headers.get("set-cookie", "")


def test_wrong_password_shows_the_form_again_with_a_message(
    client: TestClient, make_user: Callable[..., User], site: Site
) -> None:
    guard = make_user("guard", [site])
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"username": guard.username, "password": "not it", "csrf_token": form_csrf(page.text)},
    )
    assert response.status_code == 401
    assert "Wrong username or password." in response.text
    assert guard.username in response.text  # the name typed stays in the field


def test_pages_send_signed_out_visitors_to_sign_in_and_back(client: TestClient) -> None:
    response = client.get("/account?tab=1", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/account%3Ftab%3D1"


def test_sign_out_needs_the_form_token_and_ends_the_session(
    client: TestClient, make_user: Callable[..., User], site: Site, page_login: Callable[..., str]
) -> None:
    csrf = page_login(make_user("staff", [site]))
    refused = client.post("/logout", data={"csrf_token": "x"}, headers=HTML)
    assert refused.status_code == 403
    assert client.get("/account").status_code == 200
    cookie = client.cookies.get("welfare_session")
    done = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert done.headers["location"] == "/login"
    # The old cookie is dead on the server too, not only forgotten by this browser.
    client.cookies.set("welfare_session", cookie or "")
    assert client.get("/account", follow_redirects=False).status_code == 303
    assert client.get("/api/v1/me").status_code == 401


def test_sign_out_everywhere_ends_every_session(
    client: TestClient, make_user: Callable[..., User], site: Site, page_login: Callable[..., str]
) -> None:
    staff = make_user("staff", [site])
    other = client.post(
        "/api/v1/auth/token", data={"username": staff.username, "password": PASSWORD}
    ).json()["access_token"]
    csrf = page_login(staff)
    client.post("/logout", data={"csrf_token": csrf, "everywhere": "true"})
    client.cookies.clear()
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {other}"}).status_code == 401


def test_language_choice_changes_the_pages(
    client: TestClient, make_user: Callable[..., User], site: Site, page_login: Callable[..., str]
) -> None:
    csrf = page_login(make_user("guard", [site]))
    bad = client.post("/account/language", data={"csrf_token": csrf, "language": "xx"})
    assert bad.status_code == 422
    client.post("/account/language", data={"csrf_token": csrf, "language": "zh-CN"})
    page = client.get("/account")
    assert '<html lang="zh-CN">' in page.text
    assert "退出登录" in page.text  # "Sign out"
    assert "Sign out" not in page.text


def test_signed_out_visitors_get_their_browser_language(client: TestClient) -> None:
    page = client.get("/login", headers={"accept-language": "zh-TW;q=0.9, en;q=0.5"})
    assert '<html lang="zh-CN">' in page.text
    assert "登录" in page.text
    page = client.get("/login", headers={"accept-language": "fr-FR"})
    assert '<html lang="en">' in page.text


@pytest.mark.parametrize(
    ("asked", "shown"),
    [("ko", "ko-KR"), ("KO-kr", "ko-KR"), ("zh", "zh-CN"), ("zh-cn", "zh-CN"), ("klingon", "en")],
)
def test_a_short_or_differently_cased_language_code_is_read_as_the_offered_language(
    client: TestClient, asked: str, shown: str
) -> None:
    page = client.get("/login", params={"lang": asked}, headers={"accept-language": "en"})
    assert f'<html lang="{shown}">' in page.text


def _sign_in_from(client: TestClient, login_path: str, user: User) -> tuple[Response, Response]:
    page = client.get(login_path)
    hidden_lang = re.search(r'name="lang" value="([^"]*)"', page.text)
    data = {"username": user.username, "password": PASSWORD, "csrf_token": form_csrf(page.text)}
    if hidden_lang:
        data["lang"] = hidden_lang.group(1)
    return page, client.post("/login", data=data, follow_redirects=False)


def test_a_language_picked_on_the_sign_in_page_is_kept_after_sign_in(
    client: TestClient, make_user: Callable[..., User], site: Site, db: Session
) -> None:
    guard = make_user("guard", [site])
    page, response = _sign_in_from(client, "/login?lang=ko-KR", guard)
    assert '<html lang="ko-KR">' in page.text and "로그인" in page.text
    assert response.status_code == 303
    home = client.get("/guard")
    assert '<html lang="ko-KR">' in home.text
    assert "로그아웃" in home.text  # "Sign out"
    # It is the user's language now, on every device, and shown so on the account page.
    db.expire_all()
    assert db.get(User, guard.id).language == "ko-KR"


def test_a_failed_attempt_keeps_the_picked_language_for_the_next_one(
    client: TestClient, make_user: Callable[..., User], site: Site, db: Session
) -> None:
    staff = make_user("staff", [site])
    page = client.get("/login?lang=zh-CN")
    wrong = client.post(
        "/login",
        data={
            "username": staff.username,
            "password": "not the password",
            "csrf_token": form_csrf(page.text),
            "lang": "zh-CN",
        },
    )
    assert wrong.status_code == 401
    assert "用户名或密码错误" in wrong.text
    assert 'name="lang" value="zh-CN"' in wrong.text
    client.post(
        "/login",
        data={
            "username": staff.username,
            "password": PASSWORD,
            "csrf_token": form_csrf(wrong.text),
            "lang": "zh-CN",
        },
    )
    db.expire_all()
    assert db.get(User, staff.id).language == "zh-CN"


def test_a_language_only_remembered_by_the_device_does_not_overwrite_the_users_own(
    client: TestClient, make_user: Callable[..., User], site: Site, db: Session
) -> None:
    # A shared phone: the last person picked Korean, the next guard reads Chinese.
    client.get("/login?lang=ko-KR")
    chinese_reader = make_user("guard", [site], language="zh-CN")
    page, response = _sign_in_from(client, "/login", chinese_reader)
    assert '<html lang="ko-KR">' in page.text  # the sign-in page itself follows the cookie
    assert 'name="lang"' not in page.text
    assert response.status_code == 303
    assert '<html lang="zh-CN">' in client.get("/guard").text
    db.expire_all()
    assert db.get(User, chinese_reader.id).language == "zh-CN"


def test_an_unknown_language_on_the_sign_in_form_is_ignored(
    client: TestClient, make_user: Callable[..., User], site: Site, db: Session
) -> None:
    staff = make_user("staff", [site])
    page = client.get("/login")
    response = client.post(
        "/login",
        data={
            "username": staff.username,
            "password": PASSWORD,
            "csrf_token": form_csrf(page.text),
            "lang": "xx",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    db.expire_all()
    assert db.get(User, staff.id).language == "en"


def test_password_change_from_the_account_page(
    client: TestClient, make_user: Callable[..., User], site: Site, page_login: Callable[..., str]
) -> None:
    staff = make_user("staff", [site])
    csrf = page_login(staff)
    wrong = client.post(
        "/account/password",
        data={"csrf_token": csrf, "current_password": "nope", "new_password": "a-new-password-1"},
    )
    assert wrong.status_code == 422
    assert "The current password is not right." in wrong.text
    done = client.post(
        "/account/password",
        data={"csrf_token": csrf, "current_password": PASSWORD, "new_password": "a-new-password-1"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    client.cookies.clear()
    page = client.get("/login")
    response = client.post(
        "/login",
        data={
            "username": staff.username,
            "password": "a-new-password-1",
            "csrf_token": form_csrf(page.text),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303


def test_the_account_page_password_form_is_throttled_like_sign_in(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    settings,
) -> None:
    staff = make_user("staff", [site])
    csrf = page_login(staff)

    def attempt(current: str) -> Response:
        return client.post(
            "/account/password",
            data={"csrf_token": csrf, "current_password": current, "new_password": "a-new-pw-12"},
            follow_redirects=False,
        )

    for _ in range(settings.login_max_failures_per_account):
        assert attempt("nope").status_code == 422
    throttled = attempt(PASSWORD)
    assert throttled.status_code == 429
    assert "Too many failed attempts. Wait a few minutes and try again." in throttled.text
    assert 1 <= int(throttled.headers["retry-after"]) <= settings.login_window_minutes * 60


def test_browsers_get_error_pages_and_api_clients_get_json(client: TestClient) -> None:
    page = client.get("/no-such-page", headers=HTML)
    assert page.status_code == 404
    assert "text/html" in page.headers["content-type"]
    assert "Not found" in page.text
    api = client.get("/api/v1/no-such-thing", headers=HTML)
    assert api.status_code == 404
    assert api.json() == {"detail": "Not Found"}
