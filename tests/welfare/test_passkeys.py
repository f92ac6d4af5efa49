"""Passkeys in the domain: registration and sign-in verified on real signatures (a software
authenticator), and every way an answer is refused: another origin or relying party, a spent
or stolen challenge, a counter going backwards, a removed key, a disabled account."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import update
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from tests.conftest import PASSWORD, SYSTEM
from tests.soft_authenticator import SoftAuthenticator
from welfare.audit.models import AuditEntry
from welfare.authz import Actor
from welfare.db import utcnow
from welfare.errors import Throttled
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.users import passkeys
from welfare.users import service as users
from welfare.users.models import (
    AuthSession,
    LoginFailure,
    Passkey,
    User,
    UserUpdate,
    WebAuthnChallenge,
)
from welfare.users.passkeys import PasskeyRefused
from welfare.worker import housekeeping

ORIGIN = "https://welfare.test"  # the tests' WELFARE_PUBLIC_BASE_URL
LOGIN_COOKIE = "the-sign-in-page-cookie"


def _signed_in(db: Session, settings: Settings, user: User) -> Actor:
    _token, auth_session, _user = users.authenticate(
        session=db,
        settings=settings,
        username=user.username,
        password=PASSWORD,
        client_addr="10.0.0.1",
    )
    db.commit()
    return Actor(
        user_id=user.id, role=user.role, client_addr="10.0.0.1", session_id=auth_session.id
    )


def _register(
    db: Session,
    settings: Settings,
    actor: Actor,
    authenticator: SoftAuthenticator,
    **answer: object,
) -> Passkey:
    options = passkeys.registration_options(
        session=db, settings=settings, actor=actor, password=PASSWORD
    )
    db.commit()
    passkey = passkeys.register_passkey(
        session=db,
        settings=settings,
        actor=actor,
        credential=authenticator.create(options, **answer),  # type: ignore[arg-type]
        name="Office laptop",
    )
    db.commit()
    return passkey


def _sign_in_options(db: Session, settings: Settings, cookie: str = LOGIN_COOKIE) -> str:
    options = passkeys.sign_in_options(
        session=db, settings=settings, login_cookie=cookie, client_addr="10.0.0.2"
    )
    db.commit()
    return options


def _sign_in(
    db: Session, settings: Settings, credential: dict, cookie: str = LOGIN_COOKIE
) -> tuple[str, AuthSession, User]:
    result = passkeys.authenticate(
        session=db,
        settings=settings,
        credential=credential,
        login_cookie=cookie,
        client_addr="10.0.0.2",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0",
    )
    db.commit()
    return result


@pytest.fixture
def staff(make_user: Callable[..., User], site: Site) -> User:
    return make_user("staff", [site])


@pytest.fixture
def authenticator() -> SoftAuthenticator:
    return SoftAuthenticator(origin=ORIGIN)


def test_a_registered_passkey_signs_in_without_a_username_and_marks_the_session(
    db: Session, settings: Settings, staff: User, authenticator: SoftAuthenticator
) -> None:
    actor = _signed_in(db, settings, staff)
    passkey = _register(db, settings, actor, authenticator)
    assert passkey.user_id == staff.id
    assert passkey.name == "Office laptop"
    assert passkey.transports == "internal,hybrid"

    token, auth_session, user = _sign_in(
        db, settings, authenticator.get(_sign_in_options(db, settings))
    )

    assert user.id == staff.id
    assert auth_session.second_factor == "passkey"
    # The same sessions as a password sign-in: the token works for requests.
    found = users.actor_for_token(db, token, "10.0.0.2", settings=settings)
    assert found.user_id == staff.id and found.session_id == auth_session.id
    db.refresh(passkey)
    assert passkey.sign_count == 1 and passkey.last_used_at is not None


def test_the_audit_records_adding_and_signing_in_without_key_material(
    db: Session, settings: Settings, staff: User, authenticator: SoftAuthenticator
) -> None:
    actor = _signed_in(db, settings, staff)
    passkey = _register(db, settings, actor, authenticator)
    _sign_in(db, settings, authenticator.get(_sign_in_options(db, settings)))
    entries = db.exec(select(AuditEntry).order_by(col(AuditEntry.id))).all()
    added = [e for e in entries if e.action == "passkey.add"]
    assert [e.entity_id for e in added] == [str(passkey.id)]
    sign_ins = [e for e in entries if e.action == "auth.sign_in"]
    assert sign_ins[-1].detail == {
        "method": "passkey",
        "passkey_id": str(passkey.id),
        "second_factor": "passkey",
    }
    assert "method" not in sign_ins[0].detail  # the password sign-in before it
    text = json.dumps([e.detail for e in entries])
    assert passkey.credential_id not in text
    assert authenticator.credential_id.hex() not in text


@pytest.mark.parametrize(
    "answer",
    [{"origin": "https://evil.example"}, {"rp_id": "evil.example"}, {"verify_user": False}],
    ids=["another-origin", "another-relying-party", "user-not-verified"],
)
def test_a_registration_for_another_site_or_without_user_verification_is_refused(
    db: Session,
    settings: Settings,
    staff: User,
    authenticator: SoftAuthenticator,
    answer: dict,
) -> None:
    actor = _signed_in(db, settings, staff)
    with pytest.raises(PasskeyRefused) as refused:
        _register(db, settings, actor, authenticator, **answer)
    assert refused.value.reason == "invalid"
    db.rollback()
    assert db.exec(select(Passkey)).all() == []


@pytest.mark.parametrize(
    "answer",
    [{"origin": "https://evil.example"}, {"rp_id": "evil.example"}, {"verify_user": False}],
    ids=["another-origin", "another-relying-party", "user-not-verified"],
)
def test_a_sign_in_for_another_site_or_without_user_verification_is_refused(
    db: Session,
    settings: Settings,
    staff: User,
    authenticator: SoftAuthenticator,
    answer: dict,
) -> None:
    _register(db, settings, _signed_in(db, settings, staff), authenticator)
    sessions_before = len(db.exec(select(AuthSession)).all())
    with pytest.raises(PasskeyRefused) as refused:
        _sign_in(db, settings, authenticator.get(_sign_in_options(db, settings), **answer))
    assert refused.value.reason == "invalid" and refused.value.status_hint == 401
    db.rollback()
    assert len(db.exec(select(AuthSession)).all()) == sessions_before
    # Counted like a wrong password, against the passkey's account.
    failures = db.exec(select(LoginFailure)).all()
    assert [f.username for f in failures] == [staff.username]


def test_a_sign_in_challenge_is_answered_once(
    db: Session, settings: Settings, staff: User, authenticator: SoftAuthenticator
) -> None:
    _register(db, settings, _signed_in(db, settings, staff), authenticator)
    options = _sign_in_options(db, settings)
    _sign_in(db, settings, authenticator.get(options))
    replay = authenticator.get(options)  # a fresh signature over the same challenge
    with pytest.raises(PasskeyRefused) as refused:
        _sign_in(db, settings, replay)
    assert refused.value.reason == "expired"


def test_a_failed_answer_spends_the_challenge_too(
    db: Session, settings: Settings, staff: User, authenticator: SoftAuthenticator
) -> None:
    _register(db, settings, _signed_in(db, settings, staff), authenticator)
    options = _sign_in_options(db, settings)
    with pytest.raises(PasskeyRefused):
        _sign_in(db, settings, authenticator.get(options, verify_user=False))
    db.rollback()  # as the request does after the error: the spending was committed before it
    with pytest.raises(PasskeyRefused) as refused:
        _sign_in(db, settings, authenticator.get(options))
    assert refused.value.reason == "expired"


def test_a_registration_challenge_is_answered_once(
    db: Session, settings: Settings, staff: User, authenticator: SoftAuthenticator
) -> None:
    actor = _signed_in(db, settings, staff)
    options = passkeys.registration_options(
        session=db, settings=settings, actor=actor, password=PASSWORD
    )
    db.commit()
    answer = authenticator.create(options)
    passkeys.register_passkey(
        session=db, settings=settings, actor=actor, credential=answer, name=None
    )
    db.commit()
    second = SoftAuthenticator(origin=ORIGIN).create(options)
    with pytest.raises(PasskeyRefused) as refused:
        passkeys.register_passkey(
            session=db, settings=settings, actor=actor, credential=second, name=None
        )
    assert refused.value.reason == "expired"


def test_a_challenge_from_another_browser_or_session_is_refused(
    db: Session,
    settings: Settings,
    staff: User,
    make_user: Callable[..., User],
    site: Site,
    authenticator: SoftAuthenticator,
) -> None:
    actor = _signed_in(db, settings, staff)
    _register(db, settings, actor, authenticator)
    # Sign-in: options fetched by one sign-in page, answered from another.
    options = _sign_in_options(db, settings, cookie="browser-one")
    with pytest.raises(PasskeyRefused) as refused:
        _sign_in(db, settings, authenticator.get(options), cookie="browser-two")
    assert refused.value.reason == "expired"
    # Registration: options for one session, answered in another session of the same user.
    options = passkeys.registration_options(
        session=db, settings=settings, actor=actor, password=PASSWORD
    )
    db.commit()
    other = _signed_in(db, settings, staff)
    with pytest.raises(PasskeyRefused) as refused:
        passkeys.register_passkey(
            session=db,
            settings=settings,
            actor=other,
            credential=SoftAuthenticator(origin=ORIGIN).create(options),
            name=None,
        )
    assert refused.value.reason == "expired"


def test_an_expired_challenge_is_refused(
    db: Session, settings: Settings, staff: User, authenticator: SoftAuthenticator
) -> None:
    _register(db, settings, _signed_in(db, settings, staff), authenticator)
    options = _sign_in_options(db, settings)
    db.exec(update(WebAuthnChallenge).values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    db.commit()
    with pytest.raises(PasskeyRefused) as refused:
        _sign_in(db, settings, authenticator.get(options))
    assert refused.value.reason == "expired"


def test_challenges_are_stored_hashed_and_one_per_browser(db: Session, settings: Settings) -> None:
    first = json.loads(_sign_in_options(db, settings))["challenge"]
    second = json.loads(_sign_in_options(db, settings))["challenge"]
    rows = db.exec(select(WebAuthnChallenge)).all()
    assert len(rows) == 1  # the second request replaced the first
    assert rows[0].challenge_hash not in (first, second)
    assert rows[0].expires_at - rows[0].created_at == passkeys.CHALLENGE_TTL


def test_a_counter_that_goes_backwards_is_refused_as_a_copied_key(
    db: Session, settings: Settings, staff: User, authenticator: SoftAuthenticator
) -> None:
    passkey = _register(db, settings, _signed_in(db, settings, staff), authenticator)
    for _ in range(3):
        _sign_in(db, settings, authenticator.get(_sign_in_options(db, settings)))
    # The copy still says 2, the original has reached 3.
    copied = authenticator.get(_sign_in_options(db, settings), sign_count=2)
    with pytest.raises(PasskeyRefused) as refused:
        _sign_in(db, settings, copied)
    assert refused.value.reason == "cloned"
    assert "may have been copied" in refused.value.detail
    db.rollback()
    db.refresh(passkey)
    assert passkey.sign_count == 3
    flagged = db.exec(
        select(AuditEntry).where(AuditEntry.action == "passkey.counter_regressed")
    ).one()
    assert flagged.detail == {"stored": 3, "presented": 2}


def test_a_synced_passkey_that_never_counts_signs_in_again_and_again(
    db: Session, settings: Settings, staff: User
) -> None:
    synced = SoftAuthenticator(origin=ORIGIN, counts=False)
    _register(db, settings, _signed_in(db, settings, staff), synced)
    for _ in range(2):
        _token, auth_session, _user = _sign_in(
            db, settings, synced.get(_sign_in_options(db, settings))
        )
        assert auth_session.second_factor == "passkey"


def test_a_removed_passkey_signs_nobody_in(
    db: Session, settings: Settings, staff: User, authenticator: SoftAuthenticator
) -> None:
    actor = _signed_in(db, settings, staff)
    passkey = _register(db, settings, actor, authenticator)
    passkeys.remove_own_passkey(session=db, actor=actor, passkey_id=passkey.id)
    db.commit()
    with pytest.raises(PasskeyRefused) as refused:
        _sign_in(db, settings, authenticator.get(_sign_in_options(db, settings)))
    assert refused.value.reason == "unknown"
    removed = db.exec(select(AuditEntry).where(AuditEntry.action == "passkey.remove")).one()
    assert removed.entity_id == str(passkey.id)


def test_a_disabled_account_is_refused_with_its_passkey(
    db: Session, settings: Settings, staff: User, authenticator: SoftAuthenticator
) -> None:
    _register(db, settings, _signed_in(db, settings, staff), authenticator)
    users.update_user(session=db, actor=SYSTEM, user_id=staff.id, data=UserUpdate(is_active=False))
    db.commit()
    with pytest.raises(PasskeyRefused) as refused:
        _sign_in(db, settings, authenticator.get(_sign_in_options(db, settings)))
    assert refused.value.reason == "disabled"


def test_passkey_failures_and_wrong_passwords_share_the_accounts_throttle(
    db: Session, settings: Settings, staff: User, authenticator: SoftAuthenticator
) -> None:
    _register(db, settings, _signed_in(db, settings, staff), authenticator)
    for _ in range(settings.login_max_failures_per_account):
        with pytest.raises(PasskeyRefused):
            _sign_in(
                db, settings, authenticator.get(_sign_in_options(db, settings), verify_user=False)
            )
    # The account is now throttled for passwords and passkeys alike.
    with pytest.raises(Throttled):
        users.authenticate(
            session=db,
            settings=settings,
            username=staff.username,
            password=PASSWORD,
            client_addr="10.9.9.9",
        )
    with pytest.raises(Throttled):
        _sign_in(db, settings, authenticator.get(_sign_in_options(db, settings)))


def test_a_successful_passkey_sign_in_clears_the_accounts_failures(
    db: Session, settings: Settings, staff: User, authenticator: SoftAuthenticator
) -> None:
    _register(db, settings, _signed_in(db, settings, staff), authenticator)
    with pytest.raises(PasskeyRefused):
        _sign_in(db, settings, authenticator.get(_sign_in_options(db, settings), verify_user=False))
    db.rollback()
    assert db.exec(select(LoginFailure)).all() != []
    _sign_in(db, settings, authenticator.get(_sign_in_options(db, settings)))
    assert db.exec(select(LoginFailure).where(LoginFailure.username == staff.username)).all() == []


def test_adding_a_passkey_wants_the_password_unless_signed_in_just_now(
    db: Session, settings: Settings, staff: User
) -> None:
    actor = _signed_in(db, settings, staff)
    # Signed in just now: no password needed.
    assert not passkeys.needs_password(session=db, actor=actor)
    passkeys.registration_options(session=db, settings=settings, actor=actor, password=None)
    db.commit()
    # Six minutes later, it is.
    db.exec(
        update(AuthSession)
        .where(col(AuthSession.id) == actor.session_id)
        .values(created_at=utcnow() - dt.timedelta(minutes=6))
    )
    db.commit()
    assert passkeys.needs_password(session=db, actor=actor)
    for password in (None, "not the password"):
        with pytest.raises(PasskeyRefused) as refused:
            passkeys.registration_options(
                session=db, settings=settings, actor=actor, password=password
            )
        assert refused.value.reason == "password"
        db.rollback()
    # The wrong one counted as a failed sign-in of the account; the missing one did not.
    assert [f.username for f in db.exec(select(LoginFailure)).all()] == [staff.username]
    passkeys.registration_options(session=db, settings=settings, actor=actor, password=PASSWORD)


def test_the_same_authenticator_cannot_be_registered_twice(
    db: Session, settings: Settings, staff: User, authenticator: SoftAuthenticator
) -> None:
    actor = _signed_in(db, settings, staff)
    passkey = _register(db, settings, actor, authenticator)
    options = json.loads(
        passkeys.registration_options(session=db, settings=settings, actor=actor, password=PASSWORD)
    )
    db.commit()
    # The browser is told to skip it...
    assert [c["id"] for c in options["excludeCredentials"]] == [passkey.credential_id]
    # ...and if it does not, the server refuses.
    with pytest.raises(PasskeyRefused) as refused:
        passkeys.register_passkey(
            session=db,
            settings=settings,
            actor=actor,
            credential=authenticator.create(options),
            name=None,
        )
    assert refused.value.reason == "duplicate"


@pytest.mark.parametrize(
    "garbage",
    [{}, {"id": 5}, {"id": "x", "rawId": "x", "type": "public-key", "response": {}}, "nonsense"],
)
def test_garbage_is_refused_as_malformed(
    db: Session, settings: Settings, staff: User, garbage: object
) -> None:
    with pytest.raises(PasskeyRefused) as refused:
        passkeys.authenticate(
            session=db,
            settings=settings,
            credential=garbage,
            login_cookie="c",
            client_addr="1.2.3.4",
        )
    assert refused.value.reason == "malformed"
    actor = _signed_in(db, settings, staff)
    with pytest.raises(PasskeyRefused) as refused:
        passkeys.register_passkey(
            session=db, settings=settings, actor=actor, credential=garbage, name=None
        )
    assert refused.value.reason == "malformed"


@pytest.mark.parametrize(
    ("base_url", "rp_id", "origin"),
    [
        ("https://welfare.example.org", "welfare.example.org", "https://welfare.example.org"),
        (
            "https://Welfare.Example.org:8443/app",
            "welfare.example.org",
            "https://welfare.example.org:8443",
        ),
        ("http://localhost:8000", "localhost", "http://localhost:8000"),
        ("http://127.0.0.1:8000", None, None),
        ("https://[::1]:8443", None, None),
        ("http://welfare.example.org", None, None),
    ],
)
def test_the_relying_party_is_the_public_base_urls_host(
    settings: Settings, base_url: str, rp_id: str | None, origin: str | None
) -> None:
    party = passkeys.relying_party(settings.model_copy(update={"public_base_url": base_url}))
    if rp_id is None:
        assert party is None
    else:
        assert party is not None and (party.id, party.origin) == (rp_id, origin)


def test_where_browsers_refuse_passkeys_none_are_offered(db: Session, settings: Settings) -> None:
    on_an_ip = settings.model_copy(update={"public_base_url": "http://127.0.0.1:8000"})
    with pytest.raises(PasskeyRefused) as refused:
        passkeys.sign_in_options(
            session=db, settings=on_an_ip, login_cookie="c", client_addr="1.2.3.4"
        )
    assert refused.value.reason == "unavailable" and refused.value.status_hint == 409


def test_two_answers_racing_with_one_challenge_sign_in_once(
    writers: sessionmaker[Session],
    db: Session,
    settings: Settings,
    staff: User,
    authenticator: SoftAuthenticator,
) -> None:
    _register(db, settings, _signed_in(db, settings, staff), authenticator)
    options = _sign_in_options(db, settings)
    answers = [authenticator.get(options, sign_count=5), authenticator.get(options, sign_count=5)]
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def answer(credential: dict) -> None:
        with writers() as session:
            start.wait()
            try:
                passkeys.authenticate(
                    session=session,
                    settings=settings,
                    credential=credential,
                    login_cookie=LOGIN_COOKIE,
                    client_addr="10.0.0.3",
                )
                session.commit()
                outcomes.append("signed in")
            except PasskeyRefused as exc:
                session.rollback()
                outcomes.append(exc.reason)

    threads = [threading.Thread(target=answer, args=(a,)) for a in answers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["expired", "signed in"]


def test_housekeeping_drops_challenges_nobody_answered(db: Session, settings: Settings) -> None:
    _sign_in_options(db, settings, cookie="left-open")
    _sign_in_options(db, settings, cookie="answered-soon")
    db.exec(
        update(WebAuthnChallenge)
        .where(col(WebAuthnChallenge.binding_hash) == passkeys._binding_for_login("left-open"))
        .values(expires_at=utcnow() - dt.timedelta(seconds=1))
    )
    db.commit()
    assert housekeeping(db, settings).passkey_challenges == 1
    db.commit()
    assert len(db.exec(select(WebAuthnChallenge)).all()) == 1
