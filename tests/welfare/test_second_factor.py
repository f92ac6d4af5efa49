"""Two-factor sign-in in the services: TOTP codes within a small clock window and accepted once,
recovery codes once, wrong codes throttled like wrong passwords, the seed sealed at rest, the
pending sign-in step, the per-site requirement, enrolment, disabling and an admin's reset.
The race of one code used twice at once runs on PostgreSQL with real connections."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from tests.conftest import PASSWORD, TotpEnrolment
from welfare.audit.models import AuditEntry
from welfare.authz import Actor, Role
from welfare.db import utcnow
from welfare.errors import Conflict, InvalidInput, NotAuthenticated, Throttled
from welfare.sealed import SealBroken, unseal
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.users import second_factor, session_rules, totp
from welfare.users import service as users
from welfare.users.models import AuthSession, RecoveryCode, SignInChallenge, User

ADDR = "198.51.100.7"
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOON = dt.datetime(2026, 12, 2, 12, 0, 5, tzinfo=dt.UTC)


def _sign_in(db: Session, settings: Settings, user: User | str, **codes: Any) -> AuthSession:
    _token, auth_session, _user = users.authenticate(
        session=db,
        settings=settings,
        username=user if isinstance(user, str) else user.username,
        password=PASSWORD,
        client_addr=ADDR,
        **codes,
    )
    db.commit()
    return auth_session


def _actor(user: User, session_id: Any = None) -> Actor:
    return Actor(user_id=user.id, role=user.role, client_addr=ADDR, session_id=session_id)


# --- the codes themselves (pure) ----------------------------------------------------------------


def test_a_code_of_the_step_before_or_after_is_accepted_but_not_two_steps_away() -> None:
    step = totp.step_at(NOON)
    for offset in (-1, 0, 1):
        code = totp.code_at(SECRET, NOON + dt.timedelta(seconds=30 * offset))
        assert totp.matching_step(SECRET, code, NOON) == step + offset
    for offset in (-2, 2):
        code = totp.code_at(SECRET, NOON + dt.timedelta(seconds=30 * offset))
        assert totp.matching_step(SECRET, code, NOON) is None


def test_a_code_may_be_typed_with_a_space_but_not_with_letters_or_the_wrong_length() -> None:
    code = totp.code_at(SECRET, NOON)
    assert totp.matching_step(SECRET, f"{code[:3]} {code[3:]}", NOON) == totp.step_at(NOON)
    assert totp.matching_step(SECRET, code[:5], NOON) is None
    assert totp.matching_step(SECRET, code + "0", NOON) is None
    assert totp.matching_step(SECRET, "12345a", NOON) is None
    assert totp.matching_step(SECRET, "١٢٣٤٥٦", NOON) is None  # digits, but not ASCII


def test_recovery_codes_are_ten_distinct_and_read_regardless_of_case_and_dashes() -> None:
    codes = totp.new_recovery_codes()
    assert len(set(codes)) == totp.RECOVERY_CODE_COUNT == 10
    code = codes[0]
    assert totp.hash_recovery_code(code.lower().replace("-", " ")) == totp.hash_recovery_code(code)
    assert totp.hash_recovery_code(code[:-1]) is None


# --- who must have one (pure) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "own_sites", "any_site", "required"),
    [
        (Role.staff, [(True, False)], True, True),
        (Role.staff, [(False, True)], True, False),
        (Role.manager, [(False, False), (True, False)], False, True),
        (Role.guard, [(True, False)], True, False),
        (Role.guard, [(False, True)], False, True),
        (Role.admin, [], True, True),  # any site requiring it of staff binds every admin
        (Role.admin, [], False, False),
        (Role.admin, [(False, True)], False, False),
    ],
)
def test_who_needs_a_second_factor(
    role: Role, own_sites: list[tuple[bool, bool]], any_site: bool, required: bool
) -> None:
    assert session_rules.second_factor_required(role, own_sites, any_site) is required


def test_only_a_session_opened_with_a_second_factor_satisfies_the_requirement() -> None:
    assert session_rules.satisfies_second_factor("totp")
    assert session_rules.satisfies_second_factor("recovery")
    assert not session_rules.satisfies_second_factor(None)
    assert not session_rules.satisfies_second_factor("password")


# --- sign-in ------------------------------------------------------------------------------------


def test_the_seed_is_stored_sealed_and_opens_only_with_the_secret_key(
    db: Session,
    settings: Settings,
    make_user: Callable[..., User],
    enrol_totp: Callable[[User], TotpEnrolment],
) -> None:
    user = make_user("staff")
    enrolment = enrol_totp(user)
    stored = db.get(User, user.id)
    assert stored is not None and stored.totp_secret_sealed
    assert enrolment.secret not in stored.totp_secret_sealed
    assert unseal(settings.secret_key, stored.totp_secret_sealed) == enrolment.secret
    with pytest.raises(SealBroken):
        unseal("another-secret-key-of-enough-length-000000", stored.totp_secret_sealed)


def test_a_password_alone_is_refused_with_mfa_required_once_totp_is_on(
    db: Session,
    settings: Settings,
    make_user: Callable[..., User],
    enrol_totp: Callable[[User], TotpEnrolment],
) -> None:
    user = make_user("staff")
    enrol_totp(user)
    with pytest.raises(users.SecondFactorRequired) as refused:
        _sign_in(db, settings, user)
    assert refused.value.detail == "mfa_required"


def test_a_code_signs_in_once_and_the_session_records_it(
    db: Session,
    settings: Settings,
    make_user: Callable[..., User],
    enrol_totp: Callable[[User], TotpEnrolment],
) -> None:
    user = make_user("staff")
    enrolment = enrol_totp(user)
    code = enrolment.code()
    assert _sign_in(db, settings, user, otp=code).second_factor == "totp"
    with pytest.raises(NotAuthenticated) as replayed:
        _sign_in(db, settings, user, otp=code)
    assert replayed.value.detail == "wrong code"


def test_an_older_code_is_refused_after_a_newer_one_was_used(
    db: Session,
    settings: Settings,
    make_user: Callable[..., User],
    enrol_totp: Callable[[User], TotpEnrolment],
) -> None:
    user = make_user("staff")
    enrolment = enrol_totp(user)
    now = utcnow()
    stored = db.get(User, user.id)
    assert stored is not None
    newer = enrolment.code(now + dt.timedelta(seconds=30))
    older = enrolment.code(now)
    assert users.use_totp_code(db, settings, stored, newer, now)
    assert not users.use_totp_code(db, settings, stored, older, now)


def test_a_recovery_code_signs_in_once_and_is_audited_without_the_code(
    db: Session,
    settings: Settings,
    make_user: Callable[..., User],
    enrol_totp: Callable[[User], TotpEnrolment],
) -> None:
    user = make_user("staff")
    enrolment = enrol_totp(user)
    code = enrolment.recovery_codes[3]
    assert _sign_in(db, settings, user, recovery_code=code).second_factor == "recovery"
    with pytest.raises(NotAuthenticated):
        _sign_in(db, settings, user, recovery_code=code)
    # Another one still works.
    assert _sign_in(db, settings, user, recovery_code=enrolment.recovery_codes[4]).second_factor
    entries = db.exec(
        select(AuditEntry).where(AuditEntry.action == "auth.recovery_code_used")
    ).all()
    assert [e.detail for e in entries] == [
        {"recovery_codes_left": 9},
        {"recovery_codes_left": 8},
    ]
    assert all(code not in str(e.model_dump()) for e in entries)


def test_recovery_codes_are_stored_only_as_hashes(
    db: Session, make_user: Callable[..., User], enrol_totp: Callable[[User], TotpEnrolment]
) -> None:
    user = make_user("staff")
    enrolment = enrol_totp(user)
    rows = db.exec(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).all()
    assert len(rows) == 10
    stored = " ".join(r.code_hash for r in rows)
    for code in enrolment.recovery_codes:
        assert code not in stored and code.replace("-", "") not in stored


def test_wrong_codes_are_throttled_like_wrong_passwords_even_with_the_right_password(
    db: Session,
    settings: Settings,
    make_user: Callable[..., User],
    enrol_totp: Callable[[User], TotpEnrolment],
) -> None:
    user = make_user("staff")
    enrolment = enrol_totp(user)
    right = enrolment.code()
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(settings.login_max_failures_per_account):
        with pytest.raises(NotAuthenticated):
            _sign_in(db, settings, user, otp=wrong)
    # The right password did not clear the count, and now the right code waits too.
    with pytest.raises(Throttled):
        _sign_in(db, settings, user, otp=right)


def test_the_pending_sign_in_is_single_use_and_opens_no_session_by_itself(
    db: Session,
    settings: Settings,
    make_user: Callable[..., User],
    enrol_totp: Callable[[User], TotpEnrolment],
) -> None:
    user = make_user("staff")
    enrolment = enrol_totp(user)
    first = users.begin_sign_in(
        session=db, settings=settings, username=user.username, password=PASSWORD, client_addr=ADDR
    )
    db.commit()
    assert first.token is None and first.pending_token
    assert db.exec(select(AuthSession).where(AuthSession.user_id == user.id)).all() == []
    pending = first.pending_token
    _token, auth_session, _user = users.complete_sign_in(
        session=db, settings=settings, pending_token=pending, client_addr=ADDR, otp=enrolment.code()
    )
    db.commit()
    assert auth_session.second_factor == "totp"
    # Used: even with a fresh code it opens nothing again.
    with pytest.raises(NotAuthenticated) as again:
        users.complete_sign_in(
            session=db,
            settings=settings,
            pending_token=pending,
            client_addr=ADDR,
            recovery_code=enrolment.recovery_codes[0],
        )
    assert again.value.detail == users.SIGN_IN_EXPIRED


def test_a_forged_or_expired_pending_sign_in_is_refused(
    db: Session,
    settings: Settings,
    make_user: Callable[..., User],
    enrol_totp: Callable[[User], TotpEnrolment],
) -> None:
    user = make_user("staff")
    enrolment = enrol_totp(user)
    pending = users.begin_sign_in(
        session=db, settings=settings, username=user.username, password=PASSWORD, client_addr=ADDR
    ).pending_token
    db.commit()
    assert pending is not None
    challenge_id, _, signature = pending.partition(".")
    forged = f"{challenge_id}.{'0' * len(signature)}"
    for token in (forged, "nonsense", "", challenge_id):
        with pytest.raises(NotAuthenticated):
            users.complete_sign_in(
                session=db, settings=settings, pending_token=token, client_addr=ADDR, otp="123456"
            )
    db.exec(update(SignInChallenge).values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    db.commit()
    with pytest.raises(NotAuthenticated) as expired:
        users.complete_sign_in(
            session=db,
            settings=settings,
            pending_token=pending,
            client_addr=ADDR,
            otp=enrolment.code(),
        )
    assert expired.value.detail == users.SIGN_IN_EXPIRED


# --- the requirement, per session ---------------------------------------------------------------


def test_a_required_user_without_a_second_factor_is_signed_in_only_to_enrol(
    db: Session,
    settings: Settings,
    make_site: Callable[..., Site],
    make_user: Callable[..., User],
) -> None:
    strict = make_site(require_second_factor_staff=True)
    staff = make_user("staff", [strict])
    guard = make_user("guard", [strict])
    token, _session, _user = users.authenticate(
        session=db, settings=settings, username=staff.username, password=PASSWORD, client_addr=ADDR
    )
    guard_token, _session, _user = users.authenticate(
        session=db, settings=settings, username=guard.username, password=PASSWORD, client_addr=ADDR
    )
    db.commit()
    assert users.actor_for_token(db, token, ADDR, settings=settings).enrolment_only
    assert not users.actor_for_token(db, guard_token, ADDR, settings=settings).enrolment_only


def test_an_admin_must_enrol_when_any_site_requires_it_of_staff(
    db: Session,
    settings: Settings,
    make_site: Callable[..., Site],
    make_user: Callable[..., User],
) -> None:
    admin = make_user("admin", [])
    token, _session, _user = users.authenticate(
        session=db, settings=settings, username=admin.username, password=PASSWORD, client_addr=ADDR
    )
    db.commit()
    assert not users.actor_for_token(db, token, ADDR, settings=settings).enrolment_only
    make_site(require_second_factor_staff=True)  # a site the admin does not even belong to
    assert users.actor_for_token(db, token, ADDR, settings=settings).enrolment_only


def test_enrolling_makes_this_session_a_two_factor_one_and_signs_out_the_others(
    db: Session,
    settings: Settings,
    make_site: Callable[..., Site],
    make_user: Callable[..., User],
) -> None:
    staff = make_user("staff", [make_site(require_second_factor_staff=True)])
    tokens = []
    for _ in range(2):
        token, _session, _user = users.authenticate(
            session=db,
            settings=settings,
            username=staff.username,
            password=PASSWORD,
            client_addr=ADDR,
        )
        tokens.append(token)
    db.commit()
    here = users.actor_for_token(db, tokens[0], ADDR, settings=settings)
    second_factor.start_enrolment(session=db, settings=settings, actor=here)
    stored = db.get(User, staff.id)
    assert stored is not None and stored.totp_secret_sealed
    secret = unseal(settings.secret_key, stored.totp_secret_sealed)
    with pytest.raises(InvalidInput):
        second_factor.confirm_enrolment(session=db, settings=settings, actor=here, code="000000")
    codes = second_factor.confirm_enrolment(
        session=db, settings=settings, actor=here, code=totp.code_at(secret, utcnow())
    )
    db.commit()
    assert len(codes) == 10
    assert not users.actor_for_token(db, tokens[0], ADDR, settings=settings).enrolment_only
    with pytest.raises(NotAuthenticated):
        users.actor_for_token(db, tokens[1], ADDR, settings=settings)
    entry = db.exec(select(AuditEntry).where(AuditEntry.action == "user.second_factor_enrol")).one()
    assert secret not in str(entry.detail) and entry.detail["sessions_signed_out"] == 1


def test_turning_it_off_needs_a_current_code_and_is_refused_where_required(
    db: Session,
    settings: Settings,
    make_site: Callable[..., Site],
    make_user: Callable[..., User],
    enrol_totp: Callable[[User], TotpEnrolment],
) -> None:
    relaxed = make_site()
    user = make_user("staff", [relaxed])
    enrolment = enrol_totp(user)
    actor = _actor(user)
    with pytest.raises(InvalidInput):
        second_factor.disable_own(session=db, settings=settings, actor=actor, code="000000")
    db.exec(update(Site).where(col(Site.id) == relaxed.id).values(require_second_factor_staff=True))
    db.commit()
    with pytest.raises(Conflict):
        second_factor.disable_own(session=db, settings=settings, actor=actor, code=enrolment.code())
    db.exec(update(Site).values(require_second_factor_staff=False))
    db.commit()
    second_factor.disable_own(session=db, settings=settings, actor=actor, code=enrolment.code())
    db.commit()
    db.expire_all()
    stored = db.get(User, user.id)
    assert stored is not None and stored.totp_secret_sealed is None
    assert not users.has_second_factor(stored)
    assert db.exec(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).all() == []


def test_new_recovery_codes_void_the_old_ones(
    db: Session,
    settings: Settings,
    make_user: Callable[..., User],
    enrol_totp: Callable[[User], TotpEnrolment],
) -> None:
    user = make_user("staff")
    enrolment = enrol_totp(user)
    fresh = second_factor.regenerate_recovery_codes(
        session=db, settings=settings, actor=_actor(user), code=enrolment.code()
    )
    db.commit()
    assert set(fresh).isdisjoint(enrolment.recovery_codes)
    with pytest.raises(NotAuthenticated):
        _sign_in(db, settings, user, recovery_code=enrolment.recovery_codes[0])
    assert _sign_in(db, settings, user, recovery_code=fresh[0]).second_factor == "recovery"


def test_an_admin_reset_removes_the_second_factor_signs_out_and_is_audited(
    db: Session,
    settings: Settings,
    make_user: Callable[..., User],
    enrol_totp: Callable[[User], TotpEnrolment],
) -> None:
    user = make_user("staff")
    enrolment = enrol_totp(user)
    _sign_in(db, settings, user, otp=enrolment.code())
    admin = make_user("admin")
    with pytest.raises(Exception, match="may not"):
        second_factor.admin_reset(session=db, actor=_actor(make_user("manager")), user_id=user.id)
    assert second_factor.admin_reset(session=db, actor=_actor(admin), user_id=user.id) == 1
    db.commit()
    db.expire_all()
    stored = db.get(User, user.id)
    assert stored is not None and not users.has_second_factor(stored)
    assert _sign_in(db, settings, user).second_factor is None  # the password alone, again
    entry = db.exec(select(AuditEntry).where(AuditEntry.action == "user.second_factor_reset")).one()
    assert entry.detail == {"had_second_factor": True, "sessions_signed_out": 1}


# --- the race (PostgreSQL, real connections) ----------------------------------------------------


def test_the_same_code_used_twice_at_once_signs_in_once(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    writers: sessionmaker[Session],
    db: Session,
    settings: Settings,
    make_user: Callable[..., User],
    enrol_totp: Callable[[User], TotpEnrolment],
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite takes its write lock before the check: no such race there")
    user = make_user("staff")
    enrolment = enrol_totp(user)
    code = enrolment.code()
    # Read here: the racers must not share the test's session (it is not thread-safe).
    username, user_id = user.username, user.id
    racers = 3
    # Every racer has matched the code before any records its step: the window in which a
    # read-then-write check would let each of them in.
    barrier = threading.Barrier(racers, timeout=30)
    matching_step = totp.matching_step

    def matched_then_wait(*args: Any) -> int | None:
        step = matching_step(*args)
        barrier.wait()
        return step

    monkeypatch.setattr(totp, "matching_step", matched_then_wait)

    def sign_in(_: int) -> str:
        with writers() as session:
            try:
                _sign_in(session, settings, username, otp=code)
            except NotAuthenticated:
                return "refused"
            return "signed in"

    with ThreadPoolExecutor(max_workers=racers) as pool:
        outcomes = sorted(pool.map(sign_in, range(racers)))

    assert outcomes == ["refused"] * (racers - 1) + ["signed in"]
    db.expire_all()
    opened = db.exec(select(AuthSession).where(AuthSession.user_id == user_id)).all()
    assert len(opened) == 1


def test_the_same_recovery_code_used_twice_at_once_signs_in_once(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    writers: sessionmaker[Session],
    db: Session,
    settings: Settings,
    make_user: Callable[..., User],
    enrol_totp: Callable[[User], TotpEnrolment],
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite takes its write lock before the check: no such race there")
    user = make_user("staff")
    code = enrol_totp(user).recovery_codes[0]
    username = user.username
    racers = 3
    barrier = threading.Barrier(racers, timeout=30)
    hash_code = totp.hash_recovery_code

    def hashed_then_wait(raw: str) -> str | None:
        hashed = hash_code(raw)
        barrier.wait()
        return hashed

    monkeypatch.setattr(totp, "hash_recovery_code", hashed_then_wait)

    def sign_in(_: int) -> str:
        with writers() as session:
            try:
                _sign_in(session, settings, username, recovery_code=code)
            except NotAuthenticated:
                return "refused"
            return "signed in"

    with ThreadPoolExecutor(max_workers=racers) as pool:
        outcomes = sorted(pool.map(sign_in, range(racers)))

    assert outcomes == ["refused"] * (racers - 1) + ["signed in"]
