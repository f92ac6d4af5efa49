"""Company sign-in over HTTP: the sign-in page's buttons, the flow's pages, the admin's API
and console pages for providers, and the e-mail on users."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from tests.conftest import TEST_SECRET
from tests.oidc_provider import LocalOidcProvider
from welfare.authz import Role
from welfare.identity.models import IdentityProvider
from welfare.sealed import unseal
from welfare.sites.models import Site
from welfare.users.models import User

BASE = "https://welfare.test"


@pytest.fixture
def acme(
    oidc_provider: LocalOidcProvider, make_identity_provider: Callable[..., Any]
) -> IdentityProvider:
    return make_identity_provider(oidc_provider)


def _through_provider(
    client: TestClient, provider: LocalOidcProvider, provider_id: Any, query: str = ""
) -> Any:
    """Press the button, let the provider redirect back, and answer the callback."""
    started = client.get(f"/login/oidc/{provider_id}/start{query}", follow_redirects=False)
    assert started.status_code == 303, started.text
    back = provider.follow(started.headers["location"])
    assert back.startswith(f"{BASE}/login/oidc/{provider_id}/callback?")
    return client.get(back.removeprefix(BASE), follow_redirects=False), back


# --- the sign-in page and the flow ---------------------------------------------------------------


def test_the_sign_in_page_shows_a_button_per_active_provider(
    client: TestClient,
    oidc_provider: LocalOidcProvider,
    make_identity_provider: Callable[..., Any],
) -> None:
    on = make_identity_provider(oidc_provider, display_name="Sign in with Acme")
    make_identity_provider(oidc_provider, display_name="Sign in with Retired", is_active=False)
    page = client.get("/login")
    assert f'href="/login/oidc/{on.id}/start?next=' in page.text
    assert "Sign in with Acme" in page.text
    assert "Sign in with Retired" not in page.text


def test_the_sign_in_page_without_providers_shows_no_company_section(client: TestClient) -> None:
    assert "company-sign-in" not in client.get("/login").text


def test_signing_in_through_the_provider_lands_signed_in(
    client: TestClient, db: Session, oidc_provider: LocalOidcProvider, acme: IdentityProvider
) -> None:
    answer, _ = _through_provider(client, oidc_provider, acme.id)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/guard"  # created as a guard
    me = client.get("/api/v1/me")  # the same session cookie as a password sign-in
    assert me.status_code == 200
    assert me.json()["site_ids"] == []
    assert me.json()["email"] == "li.na@acme.example"
    assert client.get("/guard").status_code == 200


def test_a_local_next_path_is_followed_after_company_sign_in(
    client: TestClient,
    site: Site,
    make_user: Callable[..., User],
    oidc_provider: LocalOidcProvider,
    acme: IdentityProvider,
) -> None:
    make_user(Role.staff, [site], email="li.na@acme.example")
    answer, _ = _through_provider(client, oidc_provider, acme.id, "?next=/console/residents")
    assert answer.headers["location"] == "/console/residents"
    answer, _ = _through_provider(client, oidc_provider, acme.id, "?next=//evil.example/")
    assert answer.headers["location"] == "/console"


def test_a_replayed_callback_gets_a_clear_page(
    client: TestClient, oidc_provider: LocalOidcProvider, acme: IdentityProvider
) -> None:
    first, back = _through_provider(client, oidc_provider, acme.id)
    assert first.status_code == 303
    again = client.get(back.removeprefix(BASE), headers={"accept": "text/html"})
    assert again.status_code == 400
    assert 'data-reason="bad_state"' in again.text
    assert "expired or was already used" in again.text


def test_a_callback_in_another_browser_is_refused(
    client: TestClient, oidc_provider: LocalOidcProvider, acme: IdentityProvider
) -> None:
    started = client.get(f"/login/oidc/{acme.id}/start", follow_redirects=False)
    back = oidc_provider.follow(started.headers["location"])
    client.cookies.clear()  # the link opened elsewhere: no cookie from the start
    answer = client.get(back.removeprefix(BASE))
    assert answer.status_code == 400
    assert 'data-reason="bad_state"' in answer.text
    assert client.get("/api/v1/me").status_code == 401


@pytest.mark.parametrize(
    ("setup", "status", "reason"),
    [
        ({"deny": True}, 403, "access_denied"),
        ({"tamper": {"signature"}}, 400, "bad_token"),
        ({"tamper": {"nonce"}}, 400, "bad_token"),
        ({"tamper": {"expired"}}, 400, "bad_token"),
        (
            {"claims": {"sub": "x", "email": "a@acme.example", "email_verified": False}},
            403,
            "email_unverified",
        ),
    ],
)
def test_refusals_answer_a_4xx_page_and_sign_nobody_in(
    client: TestClient,
    db: Session,
    oidc_provider: LocalOidcProvider,
    acme: IdentityProvider,
    setup: dict[str, Any],
    status: int,
    reason: str,
) -> None:
    for name, value in setup.items():
        setattr(oidc_provider, name, value)
    answer, _ = _through_provider(client, oidc_provider, acme.id)
    assert answer.status_code == status
    assert f'data-reason="{reason}"' in answer.text
    assert "set-cookie" not in answer.headers or "welfare_session=" not in str(
        answer.headers.get("set-cookie")
    )
    assert db.exec(select(User)).all() == []


def test_a_domain_outside_the_allowed_ones_is_refused(
    client: TestClient,
    oidc_provider: LocalOidcProvider,
    make_identity_provider: Callable[..., Any],
) -> None:
    configured = make_identity_provider(oidc_provider, allowed_domains=["acme.example"])
    oidc_provider.sign_in_as(sub="x-1", email="li.na@gmail.example", email_verified=True)
    answer, _ = _through_provider(client, oidc_provider, configured.id)
    assert answer.status_code == 403
    assert 'data-reason="domain_not_allowed"' in answer.text


def test_a_refusal_is_worded_in_the_visitors_language(
    client: TestClient, oidc_provider: LocalOidcProvider, acme: IdentityProvider
) -> None:
    oidc_provider.deny = True
    client.cookies.set("welfare_lang", "ko-KR", domain="welfare.test")
    answer, _ = _through_provider(client, oidc_provider, acme.id)
    assert answer.status_code == 403
    assert 'lang="ko-KR"' in answer.text or 'lang="ko"' in answer.text
    assert "Company sign-in did not work" not in answer.text


def test_a_provider_that_is_down_answers_a_4xx_page(
    client: TestClient, oidc_provider: LocalOidcProvider, acme: IdentityProvider
) -> None:
    oidc_provider.down = True
    answer = client.get(f"/login/oidc/{acme.id}/start", follow_redirects=False)
    assert answer.status_code == 400
    assert 'data-reason="provider_unavailable"' in answer.text


def test_an_unknown_provider_is_not_found(client: TestClient) -> None:
    answer = client.get("/login/oidc/00000000-0000-0000-0000-000000000000/start")
    assert answer.status_code == 404
    assert 'data-reason="unknown_provider"' in answer.text


def test_refusals_are_logged_without_personal_data(
    client: TestClient,
    oidc_provider: LocalOidcProvider,
    acme: IdentityProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    oidc_provider.sign_in_as(
        sub="acme-secret-sub", email="li.na@acme.example", email_verified=False
    )
    with caplog.at_level("WARNING", logger="welfare.identity"):
        _through_provider(client, oidc_provider, acme.id)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "email_unverified" in logged
    assert "li.na" not in logged and "acme-secret-sub" not in logged


# --- the admin's API -----------------------------------------------------------------------------


def _provider_body(site: Site, **overrides: Any) -> dict[str, Any]:
    return {
        "display_name": "Sign in with Acme",
        "issuer": "https://login.acme.example/",
        "client_id": "welfare",
        "client_secret": "s3cret-from-acme",
        "allowed_domains": ["Acme.example", "@acme.example", "hk.acme.example"],
        "site_ids": [str(site.id)],
    } | overrides


def test_an_admin_configures_a_provider_and_never_reads_the_secret_back(
    client: TestClient,
    db: Session,
    site: Site,
    headers_for: Callable[..., dict[str, str]],
) -> None:
    admin = headers_for("admin")
    created = client.post("/api/v1/identity-providers", json=_provider_body(site), headers=admin)
    assert created.status_code == 201, created.text
    body = created.json()
    assert "client_secret" not in body and "client_secret_sealed" not in body
    assert body["has_client_secret"] is True
    assert body["issuer"] == "https://login.acme.example"
    assert body["allowed_domains"] == ["acme.example", "hk.acme.example"]
    assert body["redirect_uri"] == f"{BASE}/login/oidc/{body['id']}/callback"
    assert (
        "s3cret" not in client.get(f"/api/v1/identity-providers/{body['id']}", headers=admin).text
    )
    stored = db.exec(select(IdentityProvider)).one()
    assert "s3cret" not in stored.client_secret_sealed
    assert unseal(TEST_SECRET, stored.client_secret_sealed) == "s3cret-from-acme"


def test_a_patch_without_a_secret_keeps_it_and_with_one_replaces_it(
    client: TestClient,
    db: Session,
    site: Site,
    headers_for: Callable[..., dict[str, str]],
) -> None:
    admin = headers_for("admin")
    made = client.post("/api/v1/identity-providers", json=_provider_body(site), headers=admin)
    url = f"/api/v1/identity-providers/{made.json()['id']}"
    kept = client.patch(url, json={"enforces_two_factor": True}, headers=admin)
    assert kept.json()["enforces_two_factor"] is True
    assert unseal(TEST_SECRET, db.exec(select(IdentityProvider)).one().client_secret_sealed) == (
        "s3cret-from-acme"
    )
    client.patch(url, json={"client_secret": "rotated-secret"}, headers=admin)
    db.commit()  # end the read: a new one sees what the app wrote
    db.expire_all()
    assert unseal(TEST_SECRET, db.exec(select(IdentityProvider)).one().client_secret_sealed) == (
        "rotated-secret"
    )
    assert client.delete(url, headers=admin).status_code == 204
    assert client.get(url, headers=admin).status_code == 404


@pytest.mark.parametrize(
    "change",
    [
        {"issuer": "http://login.acme.example"},  # plain http off this machine
        {"issuer": "not a url"},
        {"issuer": "https://login.acme.example/?x=1"},
        {"client_id": "has spaces in it"},
        {"allowed_domains": ["not a domain"]},
        {"site_ids": []},
        {"site_ids": ["00000000-0000-0000-0000-000000000000"]},
        {"display_name": "\x00"},
        {"client_secret": ""},
    ],
)
def test_a_bad_provider_setting_is_a_422(
    client: TestClient,
    site: Site,
    headers_for: Callable[..., dict[str, str]],
    change: dict[str, Any],
) -> None:
    answer = client.post(
        "/api/v1/identity-providers",
        json=_provider_body(site, **change),
        headers=headers_for("admin"),
    )
    assert answer.status_code == 422, answer.text


# --- the admin's console pages -------------------------------------------------------------------


def test_an_admin_adds_a_provider_on_the_console_and_sees_the_redirect_uri(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: Callable[..., str],
) -> None:
    csrf = page_login(make_user(Role.admin, [site]))
    answer = client.post(
        "/console/identity-providers",
        data={
            "csrf_token": csrf,
            "display_name": "Sign in with Acme",
            "issuer": "https://login.acme.example",
            "client_id": "welfare",
            "client_secret": "s3cret-from-acme",
            "allowed_domains": "acme.example, hk.acme.example",
            "site_ids": [str(site.id)],
            "enforces_two_factor": "true",
            "is_active": "true",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    page = client.get(answer.headers["location"])
    provider = db.exec(select(IdentityProvider)).one()
    assert f"{BASE}/login/oidc/{provider.id}/callback" in page.text
    assert "s3cret" not in page.text
    assert provider.enforces_two_factor and provider.allowed_domains == [
        "acme.example",
        "hk.acme.example",
    ]
    # Saved again without a secret: the stored one stays.
    client.post(
        f"/console/identity-providers/{provider.id}",
        data={
            "csrf_token": csrf,
            "display_name": "Acme staff",
            "issuer": "https://login.acme.example",
            "client_id": "welfare",
            "client_secret": "",
            "site_ids": [str(site.id)],
            "is_active": "true",
        },
    )
    db.commit()  # end the read: a new one sees what the app wrote
    db.expire_all()
    saved = db.exec(select(IdentityProvider)).one()
    assert saved.display_name == "Acme staff" and not saved.enforces_two_factor
    assert unseal(TEST_SECRET, saved.client_secret_sealed) == "s3cret-from-acme"


def test_a_bad_console_provider_form_answers_422_with_the_fields_words(
    client: TestClient, site: Site, make_user: Callable[..., User], page_login: Callable[..., str]
) -> None:
    csrf = page_login(make_user(Role.admin, [site]))
    answer = client.post(
        "/console/identity-providers",
        data={
            "csrf_token": csrf,
            "display_name": "Acme",
            "issuer": "ftp://x",
            "client_id": "w",
            "client_secret": "s",
            "site_ids": [str(site.id)],
        },
    )
    assert answer.status_code == 422
    assert "Issuer URL: the provider" in answer.text


def test_a_manager_cannot_open_the_provider_pages(
    client: TestClient, site: Site, make_user: Callable[..., User], page_login: Callable[..., str]
) -> None:
    page_login(make_user(Role.manager, [site]))
    assert client.get("/console/identity-providers").status_code == 403
    assert "/console/identity-providers" not in client.get("/console").text


# --- the e-mail on users -------------------------------------------------------------------------


def test_an_admin_sets_and_clears_a_users_email_which_stays_unique(
    client: TestClient, site: Site, headers_for: Callable[..., dict[str, str]]
) -> None:
    admin = headers_for("admin")
    body = {
        "username": "li-na",
        "display_name": "Li Na",
        "role": "staff",
        "password": "long enough password",
        "email": " Li.Na@Acme.example ",
        "site_ids": [str(site.id)],
    }
    made = client.post("/api/v1/users", json=body, headers=admin)
    assert made.status_code == 201, made.text
    assert made.json()["email"] == "li.na@acme.example"
    twin = client.post(
        "/api/v1/users",
        json=body | {"username": "li-na-2", "email": "LI.NA@acme.example"},
        headers=admin,
    )
    assert twin.status_code == 409
    url = f"/api/v1/users/{made.json()['id']}"
    assert client.patch(url, json={"email": "nope"}, headers=admin).status_code == 422
    assert client.patch(url, json={"email": ""}, headers=admin).json()["email"] is None
    again = client.post("/api/v1/users", json=body | {"username": "li-na-3"}, headers=admin)
    assert again.status_code == 201


def test_an_admin_edits_the_email_on_the_users_page(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: Callable[..., str],
) -> None:
    csrf = page_login(make_user(Role.admin, [site]))
    staff = make_user(Role.staff, [site])
    make_user(Role.staff, [site], email="taken@acme.example")
    form = {
        "csrf_token": csrf,
        "display_name": "Staff",
        "role": "staff",
        "language": "en",
        "site_ids": [str(site.id)],
        "is_active": "true",
    }
    saved = client.post(
        f"/console/users/{staff.id}",
        data=form | {"email": "Staff@Acme.example"},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    db.commit()  # end the read: a new one sees what the app wrote
    db.expire_all()
    assert db.get(User, staff.id).email == "staff@acme.example"  # type: ignore[union-attr]
    assert 'value="staff@acme.example"' in client.get(f"/console/users/{staff.id}").text
    taken = client.post(f"/console/users/{staff.id}", data=form | {"email": "taken@acme.example"})
    assert taken.status_code == 409
    assert "belongs to another user" in taken.text
