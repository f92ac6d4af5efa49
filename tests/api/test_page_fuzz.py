"""Property-based requests against every HTML page route, as the JSON API gets from schemathesis.

Each page route (GET and form POST) is read from the page routers themselves, with its query
parameters, form fields and path parameters. Hypothesis draws values for them — text with NUL,
emoji and control characters, huge and negative numbers, days from year 1 to 9999, datetimes
with and without offsets, real ids of rows in the database and random ones — and sends them as
each role (signed out, guard, staff, manager, admin) with a valid session and CSRF token most of
the time. No answer may be a 5xx, and no request may raise inside the app.

Every request gets a fresh session, so a generated sign-out or password change cannot sign the
next one out. Generation is derandomized so CI is repeatable; `WELFARE_PAGE_FUZZ_SEED` explores
other inputs and `WELFARE_PAGE_FUZZ_EXAMPLES` sets the examples per route (default 30).

Runs once, on SQLite, like the schemathesis run: its point is the pages and the services.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import pkgutil
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlmodel import Session, select

import api.pages
from api.app import create_app
from api.deps import SESSION_COOKIE, csrf_token_for
from tests.api.test_fuzz import _token
from tests.conftest import SYSTEM
from welfare.authz import Role
from welfare.db import utcnow
from welfare.identity import service as identity
from welfare.identity.models import IdentityProviderCreate
from welfare.incidents import service as incidents
from welfare.incidents.models import IncidentCreate
from welfare.residents.models import Resident
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.tags import service as tags
from welfare.users.models import User
from welfare.visits import service as visits
from welfare.visits.models import ScheduleCreate, Visit
from welfare.visits.scheduler import generate_ahead

MAX_EXAMPLES = int(os.environ.get("WELFARE_PAGE_FUZZ_EXAMPLES", "30"))
SEED = os.environ.get("WELFARE_PAGE_FUZZ_SEED")
ROLES = ("none", "guard", "staff", "manager", "admin")
SWEEP_ROLES = ("guard", "admin")  # the guard's pages, and every other page
# Every module of api/pages with a router: a new page module is fuzzed without being listed.
PAGE_MODULES = tuple(
    module
    for info in pkgutil.walk_packages(api.pages.__path__, "api.pages.")
    if hasattr(module := importlib.import_module(info.name), "router")
)
FILE_FIELDS = {"photo"}

# Text as people and attackers type it: any printable or control character (lone surrogates
# cannot be sent as UTF-8 at all), NUL included.
_chars = st.characters(blacklist_categories=("Cs",))
_numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**63 - 1, 2**63, 2**64, 10**30]),
).map(str)
_days = st.one_of(
    st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)).map(str),
    # The edges of Python's dates, where a week or a timezone added overflows.
    st.sampled_from(["0001-01-01", "0001-01-02", "9999-12-31", "9999-12-28", "2026-02-30"]),
)
_datetimes = st.one_of(
    st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)).map(
        dt.datetime.isoformat
    ),
    st.datetimes(
        min_value=dt.datetime(1, 1, 2),
        max_value=dt.datetime(9999, 12, 30),
        timezones=st.just(dt.UTC),
    ).map(dt.datetime.isoformat),
)
_tricky = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "\U0001f600" * 64,
        "../../etc/passwd",
        "<script>alert(1)</script>",
        "' OR 1=1 --",
        "%00",
        "NaN",
        "inf",
        "-0",
        "1e309",
        "true",
        "on",
        "24:00",
        "23:59:60",
        "FREQ=WEEKLY;BYDAY=MO\x00",
        "FREQ=SECONDLY",
        "FREQ=DAILY;COUNT=99999999999999999999",
        "Asia/Hong_Kong",
        "x" * 5000,
    ]
)


# A plausible value for each field a page form or query takes, so that a request can get past the
# fields it does not fuzz and reach the code behind the one it does. Ids come from the database.
PLAUSIBLE = {
    "action": "resident.",
    "active": "true",
    "approach": "speak slowly",
    "building": "Tower 2",
    "can_collect": "true",
    "care_needs": "dementia",
    "channel": "sms",
    "client_request_id": "page-fuzz-request",
    "condition": "well",
    "confirm": "true",
    "consent_to_contact": "true",
    "current_password": "a wrong password",
    "date": "2026-12-01",
    "days": "30",
    "description": "grey coat, about 80",
    "display_name": "Fuzz Person",
    "end": "2026-12-31",
    "end_date": "2027-06-30",
    "every_days": "2",
    "evidence": "form 12",
    "full_name": "Chan Tai Man",
    "given_by_kind": "resident",
    "given_by_name": "Chan Tai Man",
    "given_on": "2026-11-01",
    "handed_to": "son",
    "kind": "home_visit",
    "language": "en",
    "languages": "yue",
    "latitude": "22.3",
    "location": "lobby",
    "longitude": "114.2",
    "method": "written",
    "month_day": "15",
    "name": "Chan Siu Ming",
    "new_password": "a new long password",
    "note": "sitting by the gate",
    "notes": "all well",
    "offset": "0",
    "outcome": "well",
    "page": "1",
    "password": "a long enough password",
    "phone": "+852 9123 4567",
    "preset": "weekly",
    "q": "chan",
    "reason": "moved away",
    "relationship": "son",
    "role": "staff",
    "rrule_raw": "FREQ=WEEKLY;BYDAY=MO",
    "scopes": "registry",
    "show": "all",
    "since": "2026-11-01",
    "sms": "true",
    "start": "2026-11-01",
    "start_date": "2026-12-01",
    "status": "scheduled",
    "text": "called the son",
    "unit": "12A",
    "until": "2026-12-31",
    "username": "page-fuzz-user",
    "view": "week",
    "visibility": "staff",
    "voice": "true",
    "weekdays": "MO",
    "window_end": "11:00",
    "window_start": "10:00",
}
# One bad value at a time, each at every field: what once gave a 500 and its relatives.
EDGE_VALUES = [
    "",
    "\x00",
    "a\x00b",
    "\U0001f600" * 64,
    "0001-01-01",
    "9999-12-31",
    "2026-02-30",
    "2026-01-01T10:00:00",
    "9999-12-31T23:59:59Z",
    "-1",
    str(2**63),
    str(10**30),
    "NaN",
    "x" * 5000,
    "../../etc/passwd",
    "FREQ=WEEKLY;BYDAY=MO\x00",
]

DAY_NAMES = {"date", "since", "until", "start", "end", "given_on", "start_date", "end_date"}


def _value(known: list[str], name: str = "") -> st.SearchStrategy[str]:
    # Real ids first: hypothesis favours the first options, and an id gets past 404.
    options = [st.sampled_from(known)] if known else []
    options += [_days, _numbers, _tricky, _datetimes, st.text(_chars, max_size=60)]
    if name in DAY_NAMES:
        return st.one_of(_days, *options)
    return st.one_of(*options)


def page_routes() -> list[APIRoute]:
    routes = [r for module in PAGE_MODULES for r in module.router.routes]
    return [r for r in routes if isinstance(r, APIRoute) and r.methods & {"GET", "POST"}]


def _params(route: APIRoute) -> dict[str, list[str]]:
    """Query, form and path parameter names of a route, its dependencies' included."""
    found: dict[str, list[str]] = {"query": [], "body": [], "path": []}

    def walk(dependant: Any) -> None:
        for kind in found:
            for field in getattr(dependant, f"{kind}_params"):
                if field.alias not in found[kind]:
                    found[kind].append(field.alias)
        for sub in dependant.dependencies:
            walk(sub)

    walk(route.dependant)
    return found


def _known_ids(
    db: Session,
    settings: Settings,
    site: Site,
    users: dict[str, User],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Any],
) -> dict[str, list[str]]:
    resident = make_resident()
    consent = make_consent(resident)
    contact = make_contact(resident)
    tag = tags.issue_tag(session=db, actor=SYSTEM, resident_id=resident.id)
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(
            kind="found", resident_id=resident.id, location="lobby", client_request_id="pages-01"
        ),
    )
    schedule = visits.create_schedule(
        session=db,
        actor=SYSTEM,
        data=ScheduleCreate(
            resident_id=resident.id,
            kind="home_visit",
            rrule="FREQ=DAILY",
            window_start=dt.time(10),
            window_end=dt.time(11),
            start_date=utcnow().date() - dt.timedelta(days=3),
        ),
    )
    # A provider on a closed local port: company sign-in pages reach "provider unreachable"
    # at once, never the network.
    provider = identity.create_provider(
        session=db,
        settings=settings,
        actor=SYSTEM,
        data=IdentityProviderCreate(
            display_name="Sign in with Fuzz",
            issuer="http://127.0.0.1:9",
            client_id="fuzz",
            client_secret="fuzz-secret",
            site_ids=[site.id],
        ),
    )
    db.commit()
    generate_ahead(db, utcnow())
    db.commit()
    visit = db.exec(select(Visit)).first()
    ids = {
        "site_id": [str(site.id)],
        "household_id": [str(resident.household_id)],
        "resident_id": [str(resident.id)],
        "consent_id": [str(consent.id)],
        "contact_id": [str(contact.id)],
        "incident_id": [str(opened.incident.id)],
        "user_id": [str(u.id) for u in users.values()],
        "assignee": [str(users["staff"].id), "site"],
        "code": [tag.code, tag.code.lower()],
        "schedule_id": [str(schedule.id)],
        "visit_id": [str(visit.id)] if visit else [],
        "provider_id": [str(provider.id)],
    }
    ids["site_ids"] = ids["site_id"]
    return ids


def _plausible(name: str, known: dict[str, list[str]]) -> str | None:
    return known[name][0] if known.get(name) else PLAUSIBLE.get(name)


@st.composite
def _field(draw: st.DrawFn, name: str, known: dict[str, list[str]]) -> str | list[str] | None:
    """Half the time the plausible value (so the request reaches deep), else absent or fuzzed,
    now and then as a repeated field."""
    plausible = _plausible(name, known)
    choice = draw(st.sampled_from(["plausible", "plausible", "absent", "fuzzed"]))
    if choice == "plausible" and plausible is not None:
        return plausible
    if choice == "absent":
        return None
    if draw(st.integers(0, 4)) == 0:
        return draw(st.lists(_value(known.get(name, []), name), min_size=1, max_size=4))
    return draw(_value(known.get(name, []), name))


def _path(route: APIRoute, values: dict[str, str]) -> str:
    path = route.path
    for name, value in values.items():
        # Percent-encoded as a browser sends it, so "/" or "?" stay inside this parameter.
        path = path.replace("{" + name + "}", quote(value, safe="") or "x")
    return path


@st.composite
def _requests(
    draw: st.DrawFn, route: APIRoute, params: dict[str, list[str]], known: dict[str, list[str]]
) -> dict[str, Any]:
    path_values = {
        name: draw(st.one_of(st.sampled_from(known.get(name) or ["x"]), _value([])))
        for name in params["path"]
    }
    query = {name: draw(_field(name, known)) for name in params["query"]}
    form: dict[str, Any] = {}
    files: dict[str, Any] = {}
    for name in params["body"]:
        if name == "csrf_token":
            continue
        if name in FILE_FIELDS:
            if draw(st.booleans()):
                start = draw(
                    st.sampled_from([b"", b"GIF89a", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"])
                )
                files[name] = ("photo.jpg", start + draw(st.binary(max_size=64)), "image/jpeg")
            continue
        form[name] = draw(_field(name, known))
    return {
        "method": draw(st.sampled_from(sorted(route.methods & {"GET", "POST"}))),
        "path": _path(route, path_values),
        "query": {k: v for k, v in query.items() if v is not None},
        "form": {k: v for k, v in form.items() if v is not None},
        "files": files,
        # Signed out is one role in eight: the others reach the handlers.
        "role": draw(st.sampled_from(ROLES + ROLES[2:])),
        "csrf": draw(st.sampled_from(["valid"] * 5 + ["missing", "wrong"])),
        "html": draw(st.booleans()),
    }


def _sweep(
    route: APIRoute, params: dict[str, list[str]], known: dict[str, list[str]], role: str
) -> Iterator[dict[str, Any]]:
    """Every field of the route set to each edge value in turn, the others plausible."""
    path_values = {name: _plausible(name, known) or "x" for name in params["path"]}
    query = {n: v for n in params["query"] if (v := _plausible(n, known)) is not None}
    fields = [n for n in params["body"] if n not in FILE_FIELDS | {"csrf_token"}]
    form = {n: v for n in fields if (v := _plausible(n, known)) is not None}
    method = "POST" if "POST" in route.methods else "GET"

    def case(path_values: dict[str, str], query: dict[str, str], form: dict[str, str]) -> Any:
        return {
            "method": method,
            "path": _path(route, path_values),
            "query": query,
            "form": form,
            "files": {},
            "role": role,
            "csrf": "valid",
            "html": True,
        }

    for edge in EDGE_VALUES:
        for name in params["path"]:
            yield case(path_values | {name: edge}, query, form)
        for name in params["query"]:
            yield case(path_values, query | {name: edge}, form)
        for name in fields:
            yield case(path_values, query, form | {name: edge})


@pytest.fixture
def fuzz_client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    # Exceptions inside the app propagate to the test, so a 500 shows its traceback.
    with TestClient(app, base_url="https://welfare.test", follow_redirects=False) as client:
        yield client
    app.state.engine.dispose()
    app.state.read_engine.dispose()


def _send(
    client: TestClient,
    db: Session,
    settings: Settings,
    users: dict[str, User],
    case: dict[str, Any],
) -> int:
    client.cookies.clear()
    form = dict(case["form"])
    user = users.get(case["role"])
    if user is not None:
        token = _token(db, user)
        client.cookies.set(SESSION_COOKIE, token, domain="welfare.test")
        if case["csrf"] == "valid":
            form["csrf_token"] = csrf_token_for(settings, token)
        elif case["csrf"] == "wrong":
            form["csrf_token"] = "0" * 64
    headers = {"accept": "text/html"} if case["html"] else {}
    if case["method"] == "GET":
        response = client.get(case["path"], params=case["query"], headers=headers)
    else:
        response = client.post(
            case["path"],
            params=case["query"],
            data=form,
            files=case["files"] or None,
            headers=headers,
        )
    return response.status_code


@pytest.fixture
def world(
    database_url: str,
    db: Session,
    settings: Settings,
    site: Site,
    make_user: Callable[..., User],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Any],
) -> tuple[dict[str, User], dict[str, list[str]]]:
    if not database_url.startswith("sqlite"):
        pytest.skip("the page fuzz run is bounded to one database (SQLite) to keep CI short")
    users = {role: make_user(Role(role), [site]) for role in ROLES if role != "none"}
    return users, _known_ids(db, settings, site, users, make_resident, make_consent, make_contact)


def _check(statuses: dict[int, int], failures: list[str], routes: list[APIRoute]) -> None:
    assert not failures, "\n\n".join(failures[:30])
    # The run reached past sign-in and CSRF into the handlers: successes and refusals both.
    assert statuses.get(200, 0) > len(routes) and statuses.get(422, 0) > len(routes), statuses


def test_every_page_route_as_every_role_gives_no_5xx(
    settings: Settings,
    db: Session,
    world: tuple[dict[str, User], dict[str, list[str]]],
    fuzz_client: TestClient,
) -> None:
    users, known = world
    routes = page_routes()
    assert len(routes) > 70 and {m.__name__ for m in PAGE_MODULES} >= {
        "api.pages.console.missing",
        "api.pages.guard.reports",
    }  # every page, not a filtered few
    statuses: dict[int, int] = {}
    failures: list[str] = []
    for route in routes:

        @hypothesis_settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=SEED is None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=_requests(route, _params(route), known))
        def run(case: dict[str, Any]) -> None:
            status = _send(fuzz_client, db, settings, users, case)
            statuses[status] = statuses.get(status, 0) + 1
            assert status < 500, case

        if SEED is not None:
            run = seed(int(SEED))(run)
        try:
            run()
        except Exception as exc:  # every route is tried; all failures are reported
            failures.append(f"{sorted(route.methods)} {route.path}: {type(exc).__name__}: {exc}")
    _check(statuses, failures, routes)


def test_each_edge_value_in_each_field_of_each_page_gives_no_5xx(
    settings: Settings,
    db: Session,
    world: tuple[dict[str, User], dict[str, list[str]]],
    fuzz_client: TestClient,
) -> None:
    """One field at a time, the others plausible: reaches the code behind each field, which
    random values for every field at once rarely do."""
    users, known = world
    routes = page_routes()
    statuses: dict[int, int] = {}
    failures: list[str] = []
    for route in routes:
        for role in SWEEP_ROLES:
            for case in _sweep(route, _params(route), known, role):
                try:
                    status = _send(fuzz_client, db, settings, users, case)
                except Exception as exc:  # every case is tried; all failures are reported
                    failures.append(f"{type(exc).__name__}: {exc} for {case}"[:1500])
                    continue
                statuses[status] = statuses.get(status, 0) + 1
                if status >= 500:
                    failures.append(f"{status} for {case}"[:1500])
    _check(statuses, failures, routes)
