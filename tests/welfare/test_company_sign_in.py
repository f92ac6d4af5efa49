"""Company sign-in in the domain: the flow against a local OpenID Connect provider."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from tests.conftest import SYSTEM
from tests.oidc_provider import LocalOidcProvider
from welfare.audit.models import AuditEntry
from welfare.authz import Role
from welfare.identity import oidc
from welfare.identity.models import IdentityProvider, OidcLogin, UserIdentity
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.users import service as users
from welfare.users.models import AuthSession, User, UserUpdate


def _sign_in(
    writers: sessionmaker[Session],
    settings: Settings,
    provider: LocalOidcProvider,
    configured: IdentityProvider,
    *,
    browser: str | None = None,
    replay: bool = False,
) -> oidc.CompletedSignIn:
    with writers() as session:
        started = oidc.begin_sign_in(session=session, settings=settings, provider_id=configured.id)
        session.commit()
    query = parse_qs(urlsplit(provider.follow(started.authorization_url)).query)
    with writers() as session:
        done = oidc.complete_sign_in(
            session=session,
            settings=settings,
            provider_id=configured.id,
            state=query["state"][0],
            code=(query.get("code") or [None])[0],
            error=(query.get("error") or [None])[0],
            browser_secret=started.browser_secret if browser is None else browser,
            client_addr="203.0.113.7",
        )
        session.commit()
    return done


@pytest.fixture
def acme(
    oidc_provider: LocalOidcProvider, make_identity_provider: Callable[..., Any]
) -> IdentityProvider:
    return make_identity_provider(oidc_provider)


def test_first_sign_in_creates_a_guard_with_no_sites(
    writers: sessionmaker[Session],
    db: Session,
    settings: Settings,
    oidc_provider: LocalOidcProvider,
    acme: IdentityProvider,
) -> None:
    done = _sign_in(writers, settings, oidc_provider, acme)
    user = db.get(User, done.user.id)
    assert user is not None
    assert (user.role, user.email, user.display_name) == (Role.guard, "li.na@acme.example", "Li Na")
    assert users.site_ids_of(db, user.id) == []
    session_row = db.exec(
        select(AuthSession).where(AuthSession.token_hash == users.hash_token(done.token))
    ).one()
    assert session_row.user_id == user.id
    actions = [
        e.action for e in db.exec(select(AuditEntry).where(AuditEntry.entity_id == str(user.id)))
    ]
    assert "user.create_company" in actions
    created = db.exec(select(AuditEntry).where(AuditEntry.action == "user.create_company")).one()
    assert created.detail["provider"] == "Sign in with Acme"
    assert db.exec(select(AuditEntry).where(AuditEntry.action == "auth.sign_in_company")).one()


def test_the_password_of_a_created_user_is_unusable(
    writers: sessionmaker[Session],
    settings: Settings,
    oidc_provider: LocalOidcProvider,
    acme: IdentityProvider,
) -> None:
    done = _sign_in(writers, settings, oidc_provider, acme)
    assert not users.password_hasher.verify("", done.user.password_hash)


def test_a_user_is_matched_by_verified_email_then_by_subject(
    writers: sessionmaker[Session],
    db: Session,
    settings: Settings,
    site: Site,
    make_user: Callable[..., User],
    oidc_provider: LocalOidcProvider,
    acme: IdentityProvider,
) -> None:
    staff = make_user(Role.staff, [site], email="Li.Na@ACME.example")
    first = _sign_in(writers, settings, oidc_provider, acme)
    assert first.user.id == staff.id
    link = db.exec(select(UserIdentity)).one()
    assert (link.subject, link.user_id) == ("acme-0001", staff.id)
    # The e-mail changes at the provider (or here): the link by `sub` still finds the user.
    users.update_user(session=db, actor=SYSTEM, user_id=staff.id, data=UserUpdate(email=None))
    db.commit()
    oidc_provider.sign_in_as(sub="acme-0001", email="na.li@acme.example", email_verified=True)
    second = _sign_in(writers, settings, oidc_provider, acme)
    assert second.user.id == staff.id
    assert db.exec(select(User).where(User.email == "na.li@acme.example")).first() is None


def test_the_two_factor_flag_comes_from_the_provider_setting_only(
    writers: sessionmaker[Session],
    settings: Settings,
    oidc_provider: LocalOidcProvider,
    make_identity_provider: Callable[..., Any],
) -> None:
    plain = make_identity_provider(oidc_provider)
    strict = make_identity_provider(oidc_provider, enforces_two_factor=True)
    assert not _sign_in(writers, settings, oidc_provider, plain).two_factor_satisfied
    assert _sign_in(writers, settings, oidc_provider, strict).two_factor_satisfied


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("signature", "bad_token"),
        ("nonce", "bad_token"),
        ("expired", "bad_token"),
        ("audience", "bad_token"),
        ("issuer", "bad_token"),
    ],
)
def test_a_forged_or_stale_id_token_is_refused(
    writers: sessionmaker[Session],
    db: Session,
    settings: Settings,
    oidc_provider: LocalOidcProvider,
    acme: IdentityProvider,
    tamper: str,
    reason: str,
) -> None:
    oidc_provider.tamper = {tamper}
    with pytest.raises(oidc.SignInRefused) as refused:
        _sign_in(writers, settings, oidc_provider, acme)
    assert refused.value.reason == reason
    assert db.exec(select(User)).all() == []


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"email_verified": False}, "email_unverified"),
        ({"email_verified": None}, "email_unverified"),
        ({"email": None}, "email_unverified"),
        ({"email": "li.na@elsewhere.example"}, "domain_not_allowed"),
    ],
)
def test_unverified_or_foreign_email_is_refused(
    writers: sessionmaker[Session],
    db: Session,
    settings: Settings,
    oidc_provider: LocalOidcProvider,
    make_identity_provider: Callable[..., Any],
    claims: dict[str, Any],
    reason: str,
) -> None:
    configured = make_identity_provider(oidc_provider, allowed_domains=["acme.example"])
    wanted = oidc_provider.claims | claims
    oidc_provider.sign_in_as(**{k: v for k, v in wanted.items() if v is not None})
    with pytest.raises(oidc.SignInRefused) as refused:
        _sign_in(writers, settings, oidc_provider, configured)
    assert refused.value.reason == reason
    assert db.exec(select(User)).all() == []


def test_an_allowed_domain_signs_in(
    writers: sessionmaker[Session],
    settings: Settings,
    oidc_provider: LocalOidcProvider,
    make_identity_provider: Callable[..., Any],
) -> None:
    configured = make_identity_provider(oidc_provider, allowed_domains=["ACME.example"])
    assert _sign_in(writers, settings, oidc_provider, configured).user.email == "li.na@acme.example"


def test_a_state_is_used_once(
    writers: sessionmaker[Session],
    db: Session,
    settings: Settings,
    oidc_provider: LocalOidcProvider,
    acme: IdentityProvider,
) -> None:
    with writers() as session:
        started = oidc.begin_sign_in(session=session, settings=settings, provider_id=acme.id)
        session.commit()
    query = parse_qs(urlsplit(oidc_provider.follow(started.authorization_url)).query)
    arguments = {
        "settings": settings,
        "provider_id": acme.id,
        "state": query["state"][0],
        "code": query["code"][0],
        "error": None,
        "browser_secret": started.browser_secret,
        "client_addr": "203.0.113.7",
    }
    with writers() as session:
        oidc.complete_sign_in(session=session, **arguments)
        session.commit()
    assert db.exec(select(OidcLogin)).all() == []
    with writers() as session, pytest.raises(oidc.SignInRefused) as refused:
        oidc.complete_sign_in(session=session, **arguments)
    assert refused.value.reason == "bad_state"


def test_a_callback_from_another_browser_is_refused_and_uses_the_state_up(
    writers: sessionmaker[Session],
    db: Session,
    settings: Settings,
    oidc_provider: LocalOidcProvider,
    acme: IdentityProvider,
) -> None:
    with pytest.raises(oidc.SignInRefused) as refused:
        _sign_in(writers, settings, oidc_provider, acme, browser="someone-else")
    assert refused.value.reason == "bad_state"
    assert db.exec(select(OidcLogin)).all() == []
    assert oidc_provider.token_requests == []  # the code was never even exchanged


def test_the_token_request_proves_the_pkce_verifier_and_the_client_secret(
    writers: sessionmaker[Session],
    settings: Settings,
    oidc_provider: LocalOidcProvider,
    acme: IdentityProvider,
) -> None:
    _sign_in(writers, settings, oidc_provider, acme)
    sent = oidc_provider.authorize_requests[0]
    assert sent["code_challenge_method"] == "S256"
    assert sent["nonce"] and sent["state"] and sent["code_challenge"]
    assert sent["redirect_uri"] == f"https://welfare.test/login/oidc/{acme.id}/callback"
    assert [(r.client_authenticated, r.verifier_matched) for r in oidc_provider.token_requests] == [
        (True, True)
    ]


def test_a_wrong_pkce_verifier_is_refused_by_the_provider(
    writers: sessionmaker[Session],
    db: Session,
    settings: Settings,
    oidc_provider: LocalOidcProvider,
    acme: IdentityProvider,
) -> None:
    with writers() as session:
        started = oidc.begin_sign_in(session=session, settings=settings, provider_id=acme.id)
        session.commit()
    row = db.exec(select(OidcLogin)).one()
    row.code_verifier = "x" * 60  # as if an attacker who stole the code had to guess it
    db.add(row)
    db.commit()
    query = parse_qs(urlsplit(oidc_provider.follow(started.authorization_url)).query)
    with writers() as session, pytest.raises(oidc.SignInRefused) as refused:
        oidc.complete_sign_in(
            session=session,
            settings=settings,
            provider_id=acme.id,
            state=query["state"][0],
            code=query["code"][0],
            error=None,
            browser_secret=started.browser_secret,
            client_addr="203.0.113.7",
        )
    assert refused.value.reason == "bad_token"
    assert oidc_provider.token_requests[0].verifier_matched is False


def test_access_denied_at_the_provider_is_refused(
    writers: sessionmaker[Session],
    settings: Settings,
    oidc_provider: LocalOidcProvider,
    acme: IdentityProvider,
) -> None:
    oidc_provider.deny = True
    with pytest.raises(oidc.SignInRefused) as refused:
        _sign_in(writers, settings, oidc_provider, acme)
    assert refused.value.reason == "access_denied"
    assert refused.value.status_hint == 403


def test_a_provider_that_is_down_is_refused_with_a_4xx(
    writers: sessionmaker[Session],
    settings: Settings,
    oidc_provider: LocalOidcProvider,
    acme: IdentityProvider,
) -> None:
    oidc_provider.down = True
    with writers() as session, pytest.raises(oidc.SignInRefused) as refused:
        oidc.begin_sign_in(session=session, settings=settings, provider_id=acme.id)
    assert refused.value.reason == "provider_unavailable"
    assert 400 <= refused.value.status_hint < 500


def test_a_deactivated_user_is_refused(
    writers: sessionmaker[Session],
    db: Session,
    settings: Settings,
    site: Site,
    make_user: Callable[..., User],
    oidc_provider: LocalOidcProvider,
    acme: IdentityProvider,
) -> None:
    make_user(Role.staff, [site], email="li.na@acme.example", is_active=False)
    with pytest.raises(oidc.SignInRefused) as refused:
        _sign_in(writers, settings, oidc_provider, acme)
    assert refused.value.reason == "account_disabled"
    assert db.exec(select(UserIdentity)).all() == []  # refused: not even linked


def test_an_admin_signs_in_with_a_password_only(
    writers: sessionmaker[Session],
    settings: Settings,
    site: Site,
    make_user: Callable[..., User],
    oidc_provider: LocalOidcProvider,
    acme: IdentityProvider,
) -> None:
    make_user(Role.admin, [site], email="li.na@acme.example")
    with pytest.raises(oidc.SignInRefused) as refused:
        _sign_in(writers, settings, oidc_provider, acme)
    assert refused.value.reason == "admin_local_only"


def test_a_user_of_a_site_the_provider_does_not_cover_is_refused(
    writers: sessionmaker[Session],
    settings: Settings,
    make_site: Callable[..., Site],
    make_user: Callable[..., User],
    oidc_provider: LocalOidcProvider,
    acme: IdentityProvider,
) -> None:
    elsewhere = make_site(name="Other Company Court")
    make_user(Role.staff, [elsewhere], email="li.na@acme.example")
    with pytest.raises(oidc.SignInRefused) as refused:
        _sign_in(writers, settings, oidc_provider, acme)
    assert refused.value.reason == "outside_sites"


def test_an_inactive_provider_starts_nothing(
    writers: sessionmaker[Session],
    settings: Settings,
    oidc_provider: LocalOidcProvider,
    make_identity_provider: Callable[..., Any],
) -> None:
    off = make_identity_provider(oidc_provider, is_active=False)
    with writers() as session, pytest.raises(oidc.SignInRefused) as refused:
        oidc.begin_sign_in(session=session, settings=settings, provider_id=off.id)
    assert refused.value.reason == "unknown_provider"


# --- at the same time (real connections: on PostgreSQL these race for real) ---------------------


def _started(
    writers: sessionmaker[Session],
    settings: Settings,
    provider: LocalOidcProvider,
    configured: IdentityProvider,
) -> dict[str, Any]:
    with writers() as session:
        started = oidc.begin_sign_in(session=session, settings=settings, provider_id=configured.id)
        session.commit()
    query = parse_qs(urlsplit(provider.follow(started.authorization_url)).query)
    return {
        "settings": settings,
        "provider_id": configured.id,
        "state": query["state"][0],
        "code": query["code"][0],
        "error": None,
        "browser_secret": started.browser_secret,
        "client_addr": "203.0.113.7",
    }


def _race(writers: sessionmaker[Session], calls: list[dict[str, Any]]) -> list[Any]:
    """Each call's complete_sign_in in a thread and a connection of its own, started together;
    the outcome of each (a CompletedSignIn or the SignInRefused)."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        with writers() as session:
            barrier.wait()
            try:
                outcomes[index] = oidc.complete_sign_in(session=session, **calls[index])
                session.commit()
            except oidc.SignInRefused as exc:
                session.rollback()
                outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_two_callbacks_with_one_state_at_once_sign_in_once(
    writers: sessionmaker[Session],
    db: Session,
    settings: Settings,
    oidc_provider: LocalOidcProvider,
    acme: IdentityProvider,
) -> None:
    call = _started(writers, settings, oidc_provider, acme)
    outcomes = _race(writers, [call, dict(call)])
    refused = [o for o in outcomes if isinstance(o, oidc.SignInRefused)]
    signed_in = [o for o in outcomes if isinstance(o, oidc.CompletedSignIn)]
    assert len(signed_in) == 1 and [r.reason for r in refused] == ["bad_state"]
    assert len(db.exec(select(AuthSession)).all()) == 1


def test_two_first_sign_ins_of_one_person_at_once_make_one_user(
    writers: sessionmaker[Session],
    db: Session,
    settings: Settings,
    oidc_provider: LocalOidcProvider,
    acme: IdentityProvider,
) -> None:
    calls = [_started(writers, settings, oidc_provider, acme) for _ in range(2)]
    outcomes = _race(writers, calls)
    assert all(isinstance(o, oidc.CompletedSignIn) for o in outcomes), outcomes
    assert len({o.user.id for o in outcomes}) == 1
    assert len(db.exec(select(User)).all()) == 1
    assert len(db.exec(select(UserIdentity)).all()) == 1
