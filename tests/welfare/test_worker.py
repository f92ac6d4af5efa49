from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from welfare.db import utcnow
from welfare.identity.models import OidcLogin
from welfare.settings import Settings
from welfare.users.models import AuthSession, LoginFailure, SignInChallenge, User
from welfare.webhooks.models import WebhookReceipt
from welfare.worker import housekeeping, run_worker


def test_housekeeping_drops_old_failures_and_long_expired_sessions(
    db: Session, settings: Settings, make_user: Callable[..., User]
) -> None:
    user = make_user("guard")
    now = utcnow()
    db.add(LoginFailure(username="x", client_addr="1.2.3.4", at=now - dt.timedelta(hours=2)))
    db.add(LoginFailure(username="y", client_addr="1.2.3.4", at=now))
    db.add(
        AuthSession(user_id=user.id, token_hash="a" * 64, expires_at=now - dt.timedelta(days=40))
    )
    db.add(AuthSession(user_id=user.id, token_hash="b" * 64, expires_at=now - dt.timedelta(days=1)))
    db.add(WebhookReceipt(key="status:SMold:delivered", received_at=now - dt.timedelta(days=31)))
    db.add(WebhookReceipt(key="status:SMnew:delivered", received_at=now))
    db.commit()

    result = housekeeping(db, settings)
    db.commit()

    assert (result.login_failures, result.sessions, result.webhook_receipts) == (1, 1, 1)
    assert [r.key for r in db.exec(select(WebhookReceipt)).all()] == ["status:SMnew:delivered"]
    assert [f.username for f in db.exec(select(LoginFailure)).all()] == ["y"]
    assert [s.token_hash for s in db.exec(select(AuthSession)).all()] == ["b" * 64]


def test_housekeeping_drops_sign_ins_left_half_way_once_they_expire(
    db: Session,
    settings: Settings,
    make_user: Callable[..., User],
    make_identity_provider: Callable[..., Any],
) -> None:
    user = make_user("staff")
    provider = make_identity_provider(
        SimpleNamespace(issuer="https://id.example.com", client_id="welfare", client_secret="s")
    )
    now = utcnow()
    for minutes, state in ((-1, "old"), (5, "new")):
        db.add(SignInChallenge(user_id=user.id, expires_at=now + dt.timedelta(minutes=minutes)))
        db.add(
            OidcLogin(
                state_hash=state.ljust(64, "0"),
                browser_hash="b" * 64,
                provider_id=provider.id,
                nonce="n",
                code_verifier="v",
                expires_at=now + dt.timedelta(minutes=minutes),
            )
        )
    db.commit()

    assert housekeeping(db, settings).pending_sign_ins == 2
    db.commit()
    assert len(db.exec(select(SignInChallenge)).all()) == 1
    assert [row.state_hash[:3] for row in db.exec(select(OidcLogin)).all()] == ["new"]


def test_worker_loop_runs_a_round_and_stops_when_asked(
    db: Session, settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    db.add(LoginFailure(username="x", client_addr="h", at=utcnow() - dt.timedelta(days=1)))
    db.commit()
    stop = threading.Event()
    thread = threading.Thread(target=run_worker, args=(settings, session_factory, stop))
    thread.start()
    deadline = utcnow() + dt.timedelta(seconds=10)
    while utcnow() < deadline:
        with session_factory() as check:
            if not check.exec(select(LoginFailure)).all():
                break
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    with session_factory() as check:
        assert check.exec(select(LoginFailure)).all() == []


def test_database_errors_do_not_quote_their_parameters(settings: Settings) -> None:
    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from welfare.db import make_engine

    engine = make_engine(settings.database_url)
    try:
        with pytest.raises(DBAPIError) as caught, engine.connect() as connection:
            connection.execute(
                text("SELECT * FROM no_such_table WHERE name = :n"), {"n": "Wang Jianguo"}
            )
    finally:
        engine.dispose()
    assert "Wang" not in str(caught.value)
