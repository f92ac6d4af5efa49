"""Schemathesis against /openapi.json: every operation, as each role, a bounded number of
generated requests each. Zero 5xx, and every documented answer matches its schema.

Half the examples of an operation with path parameters use ids of real rows (a resident with a
consent, a contact, a tag, an incident...), so the fuzzer gets past 404 into the services; the
other half use whatever schemathesis draws. Generation is derandomized so CI is repeatable; set
`WELFARE_FUZZ_SEED` to explore other inputs and `WELFARE_FUZZ_EXAMPLES` for more of them.

Runs once, on SQLite: its point is the HTTP layer and the services, not the database (the
database-specific bugs it found have their own regression tests on both databases).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import traceback
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)
from sqlmodel import Session

from api.app import create_app
from tests.conftest import SYSTEM
from welfare.authz import Role
from welfare.db import utcnow
from welfare.heartbeat import service as heartbeats
from welfare.incidents import service as incidents
from welfare.incidents.models import IncidentCreate
from welfare.residents.models import Resident
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.tags import service as tags
from welfare.users.models import AuthSession, User
from welfare.users.service import hash_token

MAX_EXAMPLES = int(os.environ.get("WELFARE_FUZZ_EXAMPLES", "5"))
SEED = os.environ.get("WELFARE_FUZZ_SEED")
ROLES = ("none", "guard", "staff", "manager", "admin")
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def _token(db: Session, user: User) -> str:
    """A fresh session per request: a generated logout must not sign the next request out."""
    token = secrets.token_urlsafe(32)
    db.add(
        AuthSession(
            user_id=user.id,
            token_hash=hash_token(token),
            expires_at=utcnow() + dt.timedelta(hours=1),
        )
    )
    db.commit()
    return token


def _known_ids(
    db: Session,
    site: Site,
    users: dict[str, User],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Any],
) -> dict[str, str]:
    resident = make_resident()
    consent = make_consent(resident)
    contact = make_contact(resident)
    tags.issue_tag(session=db, actor=SYSTEM, resident_id=resident.id)
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(
            kind="found", resident_id=resident.id, location="lobby", client_request_id="fuzz-0001"
        ),
    )
    db.commit()
    return {
        "site_id": str(site.id),
        "household_id": str(resident.household_id),
        "resident_id": str(resident.id),
        "consent_id": str(consent.id),
        "contact_id": str(contact.id),
        "incident_id": str(opened.incident.id),
        "user_id": str(users["guard"].id),
    }


def _runner(strategy: st.SearchStrategy[Any], db: Session | None, user: User | None) -> Any:
    @hypothesis_settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=SEED is None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        headers = {}
        if user is not None and db is not None:
            headers["Authorization"] = f"Bearer {_token(db, user)}"
        case.call_and_validate(headers=headers, checks=CHECKS)

    return run


def test_every_operation_as_every_role_gives_no_5xx_and_matches_the_schema(
    settings: Settings,
    database_url: str,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Any],
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the fuzz run is bounded to one database (SQLite) to keep CI short")
    users = {role: make_user(Role(role), [site]) for role in ROLES if role != "none"}
    known = _known_ids(db, site, users, make_resident, make_consent, make_contact)
    # A worker heartbeat that stays fresh for the whole run, so /readyz may answer 200.
    heartbeats.beat(db, heartbeats.WorkerIdentity())
    db.commit()
    app = create_app(settings.model_copy(update={"worker_heartbeat_max_age_seconds": 3600}))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)

    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40  # the whole API, not a filtered few
    for operation in operations:
        names = [p.name for p in operation.path_parameters]
        strategy = operation.as_strategy()
        if names and all(name in known for name in names):
            real = operation.as_strategy(path_parameters={n: known[n] for n in names})
            strategy = st.one_of(strategy, real)
        for role in ROLES:
            run = _runner(strategy, db, users.get(role))
            if SEED is not None:
                run = seed(int(SEED))(run)
            try:
                run()
            except (Exception, BaseExceptionGroup) as exc:
                summary = "".join(traceback.format_exception_only(exc)).strip()[:2000]
                failures.append(f"{operation.label} as {role}: {summary}")
    app.state.engine.dispose()
    assert not failures, "\n\n".join(failures)


def test_the_harness_reports_a_5xx_and_an_answer_that_breaks_its_schema() -> None:
    """The checks above are live: a toy app with one crashing and one lying route fails both."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel

    class Count(BaseModel):
        count: int

    toy = FastAPI()

    @toy.get("/boom")
    def boom(q: str = "") -> dict[str, str]:
        raise RuntimeError("crash")

    @toy.get("/liar", response_model=Count)
    def liar() -> JSONResponse:
        return JSONResponse({"count": "many"})

    schema = schemathesis.openapi.from_asgi("/openapi.json", toy)
    outcomes = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        try:
            _runner(operation.as_strategy(), None, None)()
            outcomes[operation.path] = "passed"
        except (Exception, BaseExceptionGroup) as exc:
            outcomes[operation.path] = type(exc).__name__
    assert outcomes["/boom"] != "passed"
    assert outcomes["/liar"] != "passed"
