"""The FastAPI app factory: `uvicorn --factory api.app:create_app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from starlette.middleware.gzip import GZipMiddleware

from api import assets, docs
from api.errors import install_error_handlers
from api.logs import install_access_log_filter
from api.middleware import BodySizeLimit
from api.observability import RequestContext, app_registry
from api.pages import answer as answer_pages
from api.pages import company_sign_in as company_sign_in_pages
from api.pages import contact_test as contact_test_pages
from api.pages import guard_pwa as guard_pwa_pages
from api.pages import public as public_pages
from api.pages import quick_sign_in as quick_sign_in_pages
from api.pages.account import passkeys as account_passkey_pages
from api.pages.account import profile as account_profile_pages
from api.pages.account import sign_in as sign_in_pages
from api.pages.account import two_factor as account_two_factor_pages
from api.pages.console import audit as console_audit_pages
from api.pages.console import board as console_board_pages
from api.pages.console import consents as console_consent_pages
from api.pages.console import contacts as console_contact_pages
from api.pages.console import households as console_household_pages
from api.pages.console import identity as console_identity_pages
from api.pages.console import incidents as console_incident_pages
from api.pages.console import labels as console_label_pages
from api.pages.console import missing as console_missing_pages
from api.pages.console import resident_edit as console_resident_edit_pages
from api.pages.console import residents as console_resident_pages
from api.pages.console import sites as console_site_pages
from api.pages.console import tags as console_tag_pages
from api.pages.console import users as console_user_pages
from api.pages.guard import alerts as guard_alert_pages
from api.pages.guard import home as guard_home_pages
from api.pages.guard import incident as guard_incident_pages
from api.pages.guard import reports as guard_report_pages
from api.pages.manager import calendar as manager_calendar_pages
from api.pages.manager import policy as manager_policy_pages
from api.pages.manager import reports as manager_report_pages
from api.pages.manager import schedules as manager_schedule_pages
from api.pages.manager import visits as manager_visit_pages
from api.pages.rendering import STATIC_DIR
from api.routes import (
    alerts,
    audit,
    auth,
    consents,
    contact_tests,
    health,
    identity_providers,
    incident_contacts,
    incidents,
    lookup,
    policies,
    reports,
    residents,
    sites,
    tags,
    users,
    visits,
    webhooks,
)
from api.routes import push as push_routes
from notifications.runtime import worker_jobs
from notifications.twilio.client import TwilioChannel
from welfare.db import WalCheckpointer, head_revision, make_engine, make_sessionmaker
from welfare.settings import Settings, get_settings
from welfare.wakeup import PgListener
from welfare.worker import start_in_thread

# Everything but photos is small JSON; photos have their own, lower, limit in the service.
BODY_LIMIT_SLACK = 256 * 1024
# Below about a kilobyte gzip saves less than its header and the CPU costs; level 6 is zlib's
# default, most of level 9's gain for far less work on a small server.
GZIP_MINIMUM_BYTES = 1024
GZIP_LEVEL = 6


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """Put `router`'s routes on the app as they are: each was built (its dependencies read,
    its parameters' validators made) once, when its module was imported. `include_router`
    would wrap them and build every one again for each app on its first request (FastAPI
    0.140 and later: about 0.35 s per app, and the tests make one app per test). Our routers
    carry their prefix, tags and route class themselves and are included without options, so
    the routes, the OpenAPI schema and the answers are the same."""
    app.router.routes.extend(router.routes)


def create_app(settings: Settings | None = None, *, demo: bool = False) -> FastAPI:
    settings = settings or get_settings()
    if not demo:
        settings.ensure_safe_for_serving()
    engine = make_engine(settings.database_url)

    app = FastAPI(
        title="welfare",
        version="0.1.0",
        summary="Resident welfare registry and found-resident response",
        # /docs is our own route (api/docs.py): Swagger UI from this package, not a CDN.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    # Live views (event streams) only read, from a pool of their own: on SQLite they must not
    # take the write lock (BEGIN IMMEDIATE), and a hundred open streams must never leave the
    # requests waiting for a connection.
    app.state.read_engine = make_engine(settings.database_url, immediate_transactions=False)
    app.state.read_sessionmaker = make_sessionmaker(app.state.read_engine)
    app.state.head_revision = head_revision(settings.database_url)
    app.state.metrics_registry = app_registry(app.state.sessionmaker)
    app.state.worker = None
    # The answering-machine webhook changes live calls (a voicemail) through Twilio's API.
    app.state.call_control = TwilioChannel(settings) if settings.twilio_configured else None
    # The family's answer link is rate-limited per client address and per token, here.
    app.state.answer_limits = answer_pages.AnswerLimits()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # PostgreSQL: other processes' commits reach this one's live views by NOTIFY.
        listener = (
            PgListener(engine, on_outbox=False).start()
            if engine.dialect.name == "postgresql"
            else None
        )
        checkpointer = WalCheckpointer(engine).start() if engine.dialect.name == "sqlite" else None
        if settings.worker_in_process:
            # SQLite: one process does everything. Elsewhere `welfare worker` runs separately.
            factory = app.state.sessionmaker
            dispatch_round, on_stop = worker_jobs(settings, factory, show_sends=demo)
            app.state.worker = start_in_thread(settings, factory, dispatch_round, on_stop)
        yield
        if app.state.worker is not None:
            app.state.worker.stop()
        if listener is not None:
            listener.close()
        if checkpointer is not None:
            checkpointer.close()

    app.router.lifespan_context = lifespan

    install_access_log_filter()
    install_error_handlers(app)
    for module in (
        health,
        auth,
        users,
        identity_providers,
        sites,
        residents,
        consents,
        tags,
        audit,
        incidents,
        incident_contacts,
        contact_tests,
        alerts,
        policies,
        visits,
        reports,
        push_routes,
    ):
        add_routes(app, module.router)
    add_routes(app, lookup.router)
    add_routes(app, webhooks.router)
    add_routes(app, docs.router)
    add_routes(app, assets.router)
    # Pages: each area is its own router module under api/pages.
    for page_module in (
        sign_in_pages,
        account_profile_pages,
        account_two_factor_pages,
        account_passkey_pages,
        company_sign_in_pages,
        guard_home_pages,
        guard_report_pages,
        guard_incident_pages,
        guard_alert_pages,
        guard_pwa_pages,
        public_pages,
        answer_pages,
        contact_test_pages,
        console_board_pages,
        console_incident_pages,
        # /console/residents/new (residents) before /console/residents/{resident_id}: the
        # routes are tried in this order.
        console_resident_pages,
        console_resident_edit_pages,
        console_contact_pages,
        console_consent_pages,
        console_tag_pages,
        console_household_pages,
        console_label_pages,
        console_user_pages,
        console_site_pages,
        console_audit_pages,
        console_identity_pages,
        console_missing_pages,
        manager_visit_pages,
        manager_schedule_pages,
        manager_report_pages,
        manager_calendar_pages,
        manager_policy_pages,
        quick_sign_in_pages,
    ):
        add_routes(app, page_module.router)
    app.mount("/static", assets.StaticAssets(directory=STATIC_DIR), name="static")
    # Pages, JSON and static files go out gzip-encoded when the browser asks. Starlette leaves
    # text/event-stream (the live incident stream) and images alone, and flushes each streamed
    # chunk, so a CSV export still streams.
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_BYTES, compresslevel=GZIP_LEVEL)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_photo_bytes + BODY_LIMIT_SLACK)
    # Added last, so outermost: the request id covers every log line, 413s included.
    app.add_middleware(RequestContext)
    return app
