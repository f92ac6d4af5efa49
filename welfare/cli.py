"""The `welfare` command: demo, serve, worker-less admin tasks. An entry point: it wires `api`."""

from __future__ import annotations

import getpass
import sys
import time
import uuid
from pathlib import Path

import click
from pydantic import ValidationError
from sqlmodel import Session, select

from welfare.authz import Actor, Role
from welfare.db import make_engine, make_sessionmaker, session_scope, upgrade_database
from welfare.errors import DomainError
from welfare.logs import configure_json_logging, logging_config
from welfare.process import freeze_startup_objects
from welfare.settings import Settings, UnsafeSettingsError, get_settings
from welfare.sites.models import Site
from welfare.users import service as users
from welfare.users.models import UserCreate


def _sessions(settings: Settings):
    return make_sessionmaker(make_engine(settings.database_url))


@click.group()
def main() -> None:
    """welfare: resident welfare registry and found-resident response."""


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION."""
    settings = get_settings()
    upgrade_database(settings.database_url, revision)
    click.echo(f"database at {revision}")


def _serve(settings: Settings, host: str, port: int, *, demo: bool) -> None:
    import uvicorn

    from api.app import create_app

    try:
        app = create_app(settings, demo=demo)
    except UnsafeSettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    # JSON lines with the request id; the demo keeps uvicorn's readable console output.
    log_config = None if demo else logging_config(settings.log_level.upper())
    freeze_startup_objects()
    uvicorn.run(
        app,
        host=host,
        port=port,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1" if demo else settings.forwarded_allow_ips,
        log_level="info",
        **({"log_config": log_config} if log_config else {}),
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def demo(host: str, port: int) -> None:
    """Create or reuse a SQLite demo database, seed the demo site and serve it.

    Without WELFARE_PUBLIC_BASE_URL, links (tags, labels, calendar feeds, SMS) are issued on
    --host and --port; with --host 0.0.0.0, on this machine's address on the local network."""
    from welfare.demo import DEMO_USERS, seed_demo
    from welfare.demo_address import banner, demo_base_url

    settings = get_settings()
    configured = (
        settings.public_base_url if "public_base_url" in settings.model_fields_set else None
    )
    base_url = demo_base_url(host=host, port=port, configured=configured)
    settings = settings.model_copy(update={"public_base_url": base_url})
    upgrade_database(settings.database_url)
    with session_scope(_sessions(settings)) as session:
        site, created = seed_demo(session, settings=settings)
    click.echo(
        banner(
            site_name=site.name,
            created=created,
            database_url=settings.database_url,
            channel=settings.channel_name,
            base_url=base_url,
            users=[(u.username, u.password, u.role.value) for u in DEMO_USERS],
        )
    )
    _serve(settings, host, port, demo=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Serve the API (migrations must be applied: `welfare db upgrade`)."""
    _serve(get_settings(), host, port, demo=False)


@main.command()
def worker() -> None:
    """Run the background worker until SIGTERM or Ctrl-C."""
    import logging
    import signal
    import threading

    from notifications.runtime import worker_jobs
    from welfare.worker import run_worker

    settings = get_settings()
    configure_json_logging(settings.log_level.upper())
    if settings.worker_metrics_port:
        # The dispatcher's counters (provider errors, sends) live in this process.
        from prometheus_client import start_http_server

        start_http_server(settings.worker_metrics_port)
        logging.getLogger("welfare.worker").info(
            "worker metrics on port %d", settings.worker_metrics_port
        )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        factory = _sessions(settings)
        dispatch_round, on_stop = worker_jobs(settings, factory)
        freeze_startup_objects()
        run_worker(settings, factory, stop, dispatch_round, on_stop=on_stop)
    except KeyboardInterrupt:
        stop.set()


@main.group()
def user() -> None:
    """User accounts."""


def _find_site(session: Session, ref: str) -> Site:
    try:
        found = session.get(Site, uuid.UUID(ref))
    except ValueError:
        found = session.exec(select(Site).where(Site.name == ref)).first()
    if found is None:
        raise click.ClickException(f"no site {ref!r} (give its name or id)")
    return found


@user.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--site", "site_refs", multiple=True, help="site name or id; repeatable")
@click.option("--display-name", default=None)
def user_add(name: str, role: str, site_refs: tuple[str, ...], display_name: str | None) -> None:
    """Add a user. The password is read from stdin when it is not a terminal, else prompted."""
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise click.ClickException("the passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    settings = get_settings()
    try:
        with session_scope(_sessions(settings)) as session:
            site_ids = [_find_site(session, ref).id for ref in site_refs]
            data = UserCreate(
                username=name,
                display_name=display_name or name,
                role=Role(role),
                password=password,
                site_ids=site_ids,
            )
            created = users.create_user(session=session, actor=Actor.system(), data=data)
            click.echo(f"added {created.username} ({created.role.value}) id {created.id}")
    except DomainError as exc:
        raise click.ClickException(exc.detail) from exc
    except ValidationError as exc:
        # Name the fields and the rules, never the input: it may be the password.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise click.ClickException(problems) from exc


@main.command()
@click.option("--residents", "count", required=True, type=click.IntRange(1, 5_000_000))
def seed(count: int) -> None:
    """Bulk-seed COUNT residents into a benchmark site (fast; for benchmarks)."""
    from welfare.seed import seed_residents

    settings = get_settings()
    started = time.perf_counter()
    with session_scope(_sessions(settings)) as session:
        site = seed_residents(session, count)
    click.echo(
        f"seeded {count} residents into {site.name!r} in {time.perf_counter() - started:.1f} s"
    )


@main.group()
def audit() -> None:
    """The tamper-evident access audit."""


@audit.command("verify")
@click.option(
    "--anchor",
    "anchor_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="also check that the chain still holds every head anchored in this file "
    "(from `welfare audit anchor` or the worker's log)",
)
def audit_verify(anchor_file: Path | None) -> None:
    """Check the hash chain; name the first broken entry and exit 1 if there is one. With
    --anchor, also say how many entries are newer than the file's last anchor."""
    from welfare.audit.anchor import verify_anchors
    from welfare.audit.service import verify_chain

    settings = get_settings()
    if anchor_file is not None:
        text = anchor_file.read_text(encoding="utf-8", errors="replace")
        with session_scope(_sessions(settings)) as session:
            anchors = verify_anchors(session, text, settings.secret_key)
        if anchors.ok:
            newer = anchors.unanchored
            click.echo(
                f"audit chain intact: {anchors.chain_entries} entries, "
                f"holding all {anchors.anchors} anchored heads; "
                + (
                    f"{newer} {'entry' if newer == 1 else 'entries'} newer than the last "
                    "anchor (not protected by an anchor yet)"
                    if newer
                    else "no entries newer than the last anchor"
                )
            )
            return
        for problem in anchors.problems:
            where = f"{anchor_file}:{problem.line}: " if problem.line else ""
            click.echo(f"audit anchor FAILED: {where}{problem.reason}", err=True)
        sys.exit(1)
    with session_scope(_sessions(settings)) as session:
        report = verify_chain(session)
    if report.ok:
        click.echo(f"audit chain intact: {report.checked} entries")
        return
    click.echo(
        f"audit chain BROKEN at entry {report.first_broken_id}: {report.reason} "
        f"({report.checked} entries before it are intact)",
        err=True,
    )
    sys.exit(1)


@audit.command("anchor")
@click.option(
    "--append",
    "append_to",
    type=click.Path(dir_okay=False, path_type=Path),
    help="also append the line to this file (keep it where the database's writers cannot reach)",
)
def audit_anchor(append_to: Path | None) -> None:
    """Print the chain's head (entry count, last id, last hash, time), signed with
    WELFARE_SECRET_KEY, as one JSON line to keep outside the database. `welfare audit verify
    --anchor FILE` later detects a cut or rewritten chain."""
    from welfare.audit.anchor import anchor_line, current_head

    settings = get_settings()
    try:
        settings.ensure_safe_for_serving()  # a head signed with a public key proves nothing
    except UnsafeSettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    with session_scope(_sessions(settings)) as session:
        line = anchor_line(current_head(session), settings.secret_key)
    if append_to is not None:
        with append_to.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
    click.echo(line)
