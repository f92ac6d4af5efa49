"""Console pages for admins (users, sites' sign-in settings) and managers (the access audit)."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from functools import partial
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import Session, col, select

from api.deps import SessionDep
from api.pages.console.frame import ConsoleUserDep, CsrfField, console_render
from api.pages.deps import PageUser, check_form_csrf, t, viewer_timezone
from api.pages.form_errors import FormError, PageRoute
from api.pages.forms import refused_words
from api.pages.i18n import N_, gettext
from api.pages.rendering import see_other
from welfare.audit.service import list_entries, verify_chain
from welfare.authz import Permission, Role, require
from welfare.errors import Conflict, InvalidInput, NotFound
from welfare.residents import service as residents
from welfare.residents.models import Resident
from welfare.sites import service as sites
from welfare.sites.models import Site, SiteUpdate
from welfare.times import parse_day, zone
from welfare.users import quick_sign_in, second_factor
from welfare.users import service as users
from welfare.users.models import UI_LANGUAGES, User, UserCreate, UserUpdate

router = APIRouter(route_class=PageRoute, prefix="/console", include_in_schema=False)

PAGE_SIZE = 50
ROLE_LABELS = {
    "guard": N_("Guard"),
    "staff": N_("Office staff"),
    "manager": N_("Manager"),
    "admin": N_("Admin"),
}
USER_FIELDS = {
    "username": N_("Username: 2-63 lower-case letters, digits, '.', '_' or '-'."),
    "display_name": N_("Name shown to others: 1-200 characters."),
    "password": N_("Password: at least 10 characters."),
    "phone": N_("Phone: a valid number for the user's site."),
    "email": N_("E-mail: an address such as name@example.com, or blank."),
    "role": N_("Choose a role."),
    "site_ids": N_("Choose the sites."),
    "language": N_("Choose a language."),
}


def _all_sites(session: Session, page_user: PageUser) -> list[Site]:
    rows, _ = sites.list_sites(session=session, actor=page_user.actor, limit=200, offset=0)
    return rows


def _parse_ids(values: list[str] | None) -> list[uuid.UUID]:
    out: list[uuid.UUID] = []
    for value in values or []:
        try:
            out.append(uuid.UUID(value))
        except ValueError:
            raise InvalidInput(
                "site_ids", "not a site id: choose the sites from the list"
            ) from None
    return out


# --- users --------------------------------------------------------------------------------------


def _users_page(
    request: Request,
    session: Session,
    page_user: PageUser,
    *,
    offset: int = 0,
    form: dict[str, Any] | None = None,
    errors: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    rows, total = users.list_users(
        session=session, actor=page_user.actor, limit=PAGE_SIZE, offset=offset
    )
    site_list = _all_sites(session, page_user)
    names = {s.id: s.name for s in site_list}
    return console_render(
        request,
        page_user,
        "console/users.html",
        {
            "rows": [
                {"user": u, "sites": [names.get(i, "?") for i in users.site_ids_of(session, u.id)]}
                for u in rows
            ],
            "total": total,
            "offset": offset,
            "page_size": PAGE_SIZE,
            "sites": site_list,
            "roles": [(r.value, t(page_user, ROLE_LABELS[r.value])) for r in Role],
            "role_labels": ROLE_LABELS,
            "languages": UI_LANGUAGES,
            "form": form or {},
            "errors": errors or [],
        },
        status_code=status_code,
        section="/console/users",
    )


@router.get("/users")
def users_list(
    request: Request,
    session: SessionDep,
    page_user: ConsoleUserDep,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    return _users_page(request, session, page_user, offset=offset)


@router.post("/users")
def user_create(
    request: Request,
    session: SessionDep,
    page_user: ConsoleUserDep,
    username: Annotated[str, Form(max_length=63)] = "",
    display_name: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=20)] = "",
    language: Annotated[str, Form(max_length=16)] = "en",
    phone: Annotated[str, Form(max_length=40)] = "",
    email: Annotated[str, Form(max_length=300)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    site_ids: Annotated[list[str] | None, Form(max_length=500)] = None,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    require(page_user.actor, Permission.users_manage)
    typed = {
        "username": username,
        "display_name": display_name,
        "role": role,
        "language": language,
        "phone": phone,
        "email": email,
        "site_ids": site_ids or [],
    }  # the password is never sent back
    redraw = partial(_users_page, request, session, page_user, form=typed)
    try:
        user = users.create_user(
            session=session,
            actor=page_user.actor,
            data=UserCreate(
                username=username.strip(),
                display_name=display_name.strip(),
                role=role,  # type: ignore[arg-type]
                language=language,
                phone=phone.strip() or None,
                email=email.strip() or None,
                password=password,
                site_ids=_parse_ids(site_ids),
            ),
        )
    except (ValidationError, InvalidInput) as exc:
        raise FormError(redraw, errors=refused_words(page_user.language, exc, USER_FIELDS)) from exc
    except Conflict as exc:
        message = (
            N_("That e-mail address belongs to another user.")
            if exc.extra.get("field") == "email"
            else N_("That username is taken.")
        )
        raise FormError(redraw, errors=[t(page_user, message)], status_code=409) from exc
    return see_other(f"/console/users/{user.id}?done=created")


def _user_page(
    request: Request,
    session: Session,
    page_user: PageUser,
    user_id: uuid.UUID,
    *,
    errors: list[str] | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    user = users.get_user(session=session, actor=page_user.actor, user_id=user_id)
    current = {
        "display_name": user.display_name,
        "role": user.role.value,
        "language": user.language,
        "phone": user.phone or "",
        "email": user.email or "",
        "site_ids": [str(i) for i in users.site_ids_of(session, user.id)],
        "is_active": user.is_active,
    }
    return console_render(
        request,
        page_user,
        "console/user.html",
        {
            "user": user,
            "form": form or current,
            "errors": errors or [],
            "sites": _all_sites(session, page_user),
            "roles": [(r.value, t(page_user, ROLE_LABELS[r.value])) for r in Role],
            "languages": UI_LANGUAGES,
            "is_self": str(user.id) == page_user.user_id,
            "sessions": users.admin_list_sessions(
                session=session,
                settings=request.app.state.settings,
                actor=page_user.actor,
                user_id=user.id,
            ),
            "revoke_base": f"/console/users/{user.id}/sessions/",
            "pins": quick_sign_in.admin_list(
                session=session, actor=page_user.actor, user_id=user.id
            ),
            # The admin reads times in their own timezone, whoever the user is.
            "times_zone": viewer_timezone(session, page_user),
            "second_factor": second_factor.status_of(session, user),
        },
        status_code=status_code,
        section="/console/users",
    )


@router.get("/users/{user_id}")
def user_view(
    request: Request, user_id: uuid.UUID, session: SessionDep, page_user: ConsoleUserDep
) -> Response:
    return _user_page(request, session, page_user, user_id)


@router.post("/users/{user_id}")
def user_update(
    request: Request,
    user_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    display_name: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=20)] = "",
    language: Annotated[str, Form(max_length=16)] = "en",
    phone: Annotated[str, Form(max_length=40)] = "",
    email: Annotated[str, Form(max_length=300)] = "",
    site_ids: Annotated[list[str] | None, Form(max_length=500)] = None,
    is_active: Annotated[bool, Form()] = False,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    typed = {
        "display_name": display_name,
        "role": role,
        "language": language,
        "phone": phone,
        "email": email,
        "site_ids": site_ids or [],
        "is_active": is_active,
    }
    redraw = partial(_user_page, request, session, page_user, user_id, form=typed)
    try:
        users.update_user(
            session=session,
            actor=page_user.actor,
            user_id=user_id,
            data=UserUpdate(
                display_name=display_name.strip(),
                role=role,  # type: ignore[arg-type]
                language=language,
                phone=phone.strip() or None,
                email=email.strip() or None,
                site_ids=_parse_ids(site_ids),
                is_active=is_active,
            ),
        )
    except (ValidationError, InvalidInput) as exc:
        raise FormError(redraw, errors=refused_words(page_user.language, exc, USER_FIELDS)) from exc
    except Conflict as exc:
        message = (
            N_("That e-mail address belongs to another user.")
            if exc.extra.get("field") == "email"
            else N_("You cannot demote or deactivate yourself; ask another admin.")
        )
        raise FormError(redraw, errors=[t(page_user, message)], status_code=409) from exc
    return see_other(f"/console/users/{user_id}?done=saved")


@router.post("/users/{user_id}/password")
def user_password(
    request: Request,
    user_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    password: Annotated[str, Form(max_length=256)] = "",
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    try:
        users.update_user(
            session=session,
            actor=page_user.actor,
            user_id=user_id,
            data=UserUpdate(password=password),
        )
    except ValidationError as exc:
        redraw = partial(_user_page, request, session, page_user, user_id)
        raise FormError(redraw, errors=[t(page_user, USER_FIELDS["password"])]) from exc
    return see_other(f"/console/users/{user_id}?done=password")


@router.post("/users/{user_id}/sessions")
def user_sessions(
    user_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    count = users.admin_revoke_sessions(session=session, actor=page_user.actor, user_id=user_id)
    return see_other(f"/console/users/{user_id}?done=sessions&count={count}")


@router.post("/users/{user_id}/second-factor/reset")
def user_second_factor_reset(
    user_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    second_factor.admin_reset(session=session, actor=page_user.actor, user_id=user_id)
    return see_other(f"/console/users/{user_id}?done=second-factor")


# --- sites: sign-in security --------------------------------------------------------------------


@router.get("/sites")
def sites_page(request: Request, session: SessionDep, page_user: ConsoleUserDep) -> Response:
    """Each site's sign-in settings (two-factor sign-in for staff and for guards)."""
    require(page_user.actor, Permission.sites_manage)
    rows, _total = sites.list_sites(session=session, actor=page_user.actor, limit=500, offset=0)
    return console_render(
        request, page_user, "console/sites.html", {"sites": rows}, section="/console/sites"
    )


@router.post("/sites/{site_id}/sign-in")
def site_sign_in_update(
    site_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    require_second_factor_staff: Annotated[bool, Form()] = False,
    require_second_factor_guards: Annotated[bool, Form()] = False,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    sites.update_site(
        session=session,
        actor=page_user.actor,
        site_id=site_id,
        data=SiteUpdate(
            require_second_factor_staff=require_second_factor_staff,
            require_second_factor_guards=require_second_factor_guards,
        ),
    )
    return see_other(f"/console/sites?saved={site_id}")


@router.post("/users/{user_id}/sessions/{session_id}/revoke")
def user_session_revoke(
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    """Sign one session of the user out (one already gone is no error: the list was old)."""
    check_form_csrf(page_user, csrf_token)
    with contextlib.suppress(NotFound):
        users.admin_revoke_session(
            session=session, actor=page_user.actor, user_id=user_id, session_id=session_id
        )
    return see_other(f"/console/users/{user_id}?done=session")


@router.post("/users/{user_id}/quick-sign-in/revoke")
def user_pins_revoke(
    user_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    count = quick_sign_in.admin_revoke_all(session=session, actor=page_user.actor, user_id=user_id)
    return see_other(f"/console/users/{user_id}?done=pins&count={count}")


# --- the access audit ---------------------------------------------------------------------------

ACTION_LABELS = {
    "resident.read": N_("Read the full record"),
    "resident.list": N_("Listed or searched residents"),
    "resident.create": N_("Registered"),
    "resident.update": N_("Changed the record"),
    "resident.photo_read": N_("Viewed the photo"),
    "resident.photo_set": N_("Stored a photo"),
    "resident.photo_delete": N_("Removed the photo"),
    "contact.list": N_("Read the contacts"),
    "contact.read": N_("Read a contact"),
    "contact.create": N_("Added a contact"),
    "contact.update": N_("Changed a contact"),
    "contact.delete": N_("Removed a contact"),
    "contact.test": N_("Sent a contact a test message"),
    "message.held_back": N_("Held a message back (a limit per recipient)"),
    "contact.verified": N_("Contact confirmed their number"),
    "contact.unverified_list": N_("Listed the unverified contacts"),
    "consent.list": N_("Read the consents"),
    "consent.record": N_("Recorded a consent"),
    "consent.withdraw": N_("Withdrew a consent"),
    "tag.issue": N_("Issued a tag"),
    "tag.revoke": N_("Revoked a tag"),
    "tag.label": N_("Printed a label"),
    "incident.open": N_("Opened an incident"),
    "incident.notify": N_("Sent a message by hand"),
    "lookup.search": N_("Guard searched"),
    "lookup.tag": N_("Guard scanned the tag"),
    "lookup.photo": N_("Guard viewed the photo"),
    "audit.read": N_("Read the audit"),
    "alert.preview": N_("Previewed a missing alert"),
    "alert.read": N_("Guard read a missing alert"),
    "auth.sign_in": N_("Signed in"),
    "auth.sign_in_company": N_("Signed in through %(provider)s"),
    "user.create_company": N_("Added through %(provider)s"),
    "user.link_company": N_("Linked to %(provider)s"),
    "identity_provider.create": N_("Added a sign-in provider"),
    "identity_provider.update": N_("Changed a sign-in provider"),
    "identity_provider.delete": N_("Removed a sign-in provider"),
    "auth.sign_out": N_("Signed out"),
    "auth.sign_out_everywhere": N_("Signed out on every device"),
    "calendar_token.issue": N_("Issued a calendar link"),
    "calendar_token.revoke": N_("Revoked a calendar link"),
    "consent.unverified": N_("Consent review overdue"),
    "contact.sms_opt_out": N_("Contact opted out of SMS"),
    "contact.sms_opt_in": N_("Contact opted in to SMS"),
    "household.create": N_("Added a household"),
    "household.update": N_("Changed a household"),
    "household.delete": N_("Removed a household"),
    "incident.claim": N_("Guard took on an incident"),
    "incident.confirm": N_("Confirmed an incident"),
    "incident.note": N_("Added a note to an incident"),
    "incident.resolve": N_("Resolved an incident"),
    "incident.cancel": N_("Cancelled an incident"),
    "incident.resident_read": N_("Read the resident's card for an incident"),
    "incident.photo_set": N_("Added an incident photo"),
    "incident.photo_read": N_("Viewed an incident photo"),
    "incident.photo_delete": N_("Removed an incident photo"),
    "lookup.card": N_("Guard opened a card"),
    "policy.set": N_("Set an escalation policy"),
    "policy.clear": N_("Removed an escalation policy"),
    "report.export": N_("Exported a report (CSV)"),
    "seed.residents": N_("Added sample residents"),
    "site.create": N_("Added a site"),
    "site.update": N_("Changed a site"),
    "user.create": N_("Added a user"),
    "user.update": N_("Changed a user"),
    "user.update_profile": N_("Changed their own settings"),
    "user.change_password": N_("Changed their password"),
    "user.revoke_sessions": N_("Signed a user out on every device"),
    "user.revoke_session": N_("Signed out one session of a user"),
    "auth.revoke_session": N_("Signed out one of their sessions"),
    "auth.sign_out_others": N_("Signed out their other sessions"),
    "auth.pin_set": N_("Set a quick sign-in PIN on a shared phone"),
    "auth.pin_removed": N_("Removed a quick sign-in PIN"),
    "auth.pin_locked": N_("Quick sign-in PIN locked after wrong tries"),
    "user.pins_revoked": N_("Ended a user's quick sign-in on every phone"),
    "auth.recovery_code_used": N_("Signed in with a recovery code"),
    "passkey.add": N_("Added a passkey"),
    "passkey.remove": N_("Removed a passkey"),
    "push.subscribe": N_("Turned on alerts by push on a phone"),
    "push.unsubscribe": N_("Turned off alerts by push on a phone"),
    "push.subscription_gone": N_("Removed a phone's expired push subscription"),
    "passkey.counter_regressed": N_("A passkey that may have been copied was refused"),
    "user.list_passkeys": N_("Looked at a user's passkeys"),
    "user.recovery_codes_regenerate": N_("Made new recovery codes"),
    "user.second_factor_disable": N_("Turned two-factor sign-in off"),
    "user.second_factor_enrol": N_("Turned two-factor sign-in on"),
    "user.second_factor_reset": N_("Reset a user's two-factor sign-in"),
    "user.on_duty": N_("Went on duty"),
    "user.off_duty": N_("Went off duty"),
    "visit.record": N_("Recorded a visit"),
    "visit.missed": N_("Visit missed"),
    "visit.checkin_confirmed": N_("Check-in call answered"),
    "visit_schedule.create": N_("Set up a visit schedule"),
    "visit_schedule.update": N_("Changed a visit schedule"),
    "visit_schedule.end": N_("Ended a visit schedule"),
    "visit_schedule.stopped": N_("Visit schedule stopped (no consent)"),
}


def _action_label(language: str, action: str, detail: dict[str, Any] | None) -> str:
    if action not in ACTION_LABELS:
        return action
    label = gettext(language, ACTION_LABELS[action])
    if "%(provider)s" in label:  # company sign-in: the provider's button text
        label = label.replace("%(provider)s", str((detail or {}).get("provider", "?")))
    return label


def _zone(session: Session, page_user: PageUser) -> ZoneInfo:
    """Dates typed in the filter are days in the user's (first) site's timezone."""
    for site_id in sorted(page_user.actor.site_ids, key=str):
        site = session.get(Site, site_id)
        if site is not None:
            return zone(site.timezone)
    return zone("UTC")


def _day(value: str, tz: ZoneInfo) -> dt.datetime | None:
    return dt.datetime.combine(parse_day(value), dt.time(0), tz) if value else None


@router.get("/audit")
def audit_page(
    request: Request,
    session: SessionDep,
    page_user: ConsoleUserDep,
    resident: Annotated[str, Query(max_length=200)] = "",
    resident_id: Annotated[str, Query(max_length=40)] = "",
    user: Annotated[str, Query(max_length=63)] = "",
    since: Annotated[str, Query(max_length=10)] = "",
    until: Annotated[str, Query(max_length=10)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    verify: bool = False,
) -> Response:
    require(page_user.actor, Permission.audit_read)
    language = page_user.language
    errors: list[str] = []
    tz = _zone(session, page_user)
    chosen: Resident | None = None
    choices: list[Resident] = []
    if resident_id:
        try:
            chosen = residents.load_resident(
                session, page_user.actor, uuid.UUID(resident_id), Permission.registry_read
            )
        except ValueError:
            errors.append(gettext(language, "Unknown resident."))
    elif resident.strip():
        found, _ = residents.list_residents(
            session=session, actor=page_user.actor, limit=20, offset=0, q=resident
        )
        if len(found) == 1:
            chosen = found[0]
        elif found:
            choices = list(found)
        else:
            errors.append(gettext(language, "No resident matches."))
    user_row: User | None = None
    if user.strip():
        user_row = session.exec(select(User).where(User.username == user.strip().lower())).first()
        if user_row is None:
            errors.append(gettext(language, "No user has that username."))
    try:
        since_at = _day(since, tz)
        until_day = _day(until, tz)
    except ValueError:
        since_at = until_day = None
        errors.append(gettext(language, "Dates look like 2026-11-01."))
    until_at = until_day + dt.timedelta(days=1) if until_day else None
    rows: list[Any] = []
    total = 0
    if not errors and not choices:
        rows, total = list_entries(
            session,
            actor=page_user.actor,
            resident_id=chosen.id if chosen else None,
            user_id=user_row.id if user_row else None,
            since=since_at,
            until=until_at,
            action=action.strip() or None,
            limit=PAGE_SIZE,
            offset=offset,
        )
    actor_ids = {r.actor_id for r in rows if r.actor_id}
    usernames = (
        dict(session.exec(select(User.id, User.username).where(col(User.id).in_(actor_ids))).all())
        if actor_ids
        else {}
    )
    report = verify_chain(session) if verify else None
    query = {
        "resident": resident,
        "resident_id": str(chosen.id) if chosen else "",
        "user": user,
        "since": since,
        "until": until,
        "action": action,
    }
    return console_render(
        request,
        page_user,
        "console/audit.html",
        {
            "rows": [
                {
                    "entry": r,
                    "who": usernames.get(r.actor_id, gettext(language, "system")),
                    "action_label": _action_label(language, r.action, r.detail),
                    "role_label": gettext(language, ROLE_LABELS[r.actor_role])
                    if r.actor_role in ROLE_LABELS
                    else r.actor_role,
                }
                for r in rows
            ],
            "total": total,
            "offset": offset,
            "page_size": PAGE_SIZE,
            "query": query,
            "chosen": chosen,
            "choices": choices,
            "errors": errors,
            "report": report,
            "timezone": str(tz),
        },
        status_code=422 if errors else 200,
        section="/console/audit",
    )
