"""The console's access audit for managers: who read or changed what, and when."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlmodel import Session

from api.deps import SessionDep
from api.pages.console.fields import PAGE_SIZE, ROLE_LABELS
from api.pages.console.frame import ConsoleUserDep, console_render
from api.pages.deps import PageUser
from api.pages.form_errors import PageRoute
from api.pages.i18n import N_, gettext
from welfare.audit.service import list_entries, verify_chain
from welfare.authz import Permission, require
from welfare.residents import service as residents
from welfare.residents.models import Resident
from welfare.sites import service as sites
from welfare.times import parse_day, zone
from welfare.users import service as users
from welfare.users.models import User

router = APIRouter(route_class=PageRoute, prefix="/console", include_in_schema=False)

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
    return zone(sites.viewer_timezone(session, page_user.actor) or "UTC")


def _day(value: str, tz: ZoneInfo) -> dt.datetime | None:
    return dt.datetime.combine(parse_day(value), dt.time(0), tz) if value else None


def _chosen_resident(
    session: Session, page_user: PageUser, resident: str, resident_id: str, errors: list[str]
) -> tuple[Resident | None, list[Resident]]:
    """The resident the filter names (by id, or the one a search finds) and, when the search
    finds several, the ones to choose from; a message in `errors` when none."""
    language = page_user.language
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
    return chosen, choices


def _filter_user(session: Session, language: str, user: str, errors: list[str]) -> User | None:
    """The user the filter names by username; a message in `errors` when there is none."""
    user_row: User | None = None
    if user.strip():
        user_row = users.find_by_username(session, user)
        if user_row is None:
            errors.append(gettext(language, "No user has that username."))
    return user_row


def _period(
    since: str, until: str, tz: ZoneInfo, language: str, errors: list[str]
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """From the start of `since` to the end of `until`, days in `tz`; a message in `errors`
    when a date is not one."""
    try:
        since_at = _day(since, tz)
        until_day = _day(until, tz)
    except ValueError:
        since_at = until_day = None
        errors.append(gettext(language, "Dates look like 2026-11-01."))
    return since_at, until_day + dt.timedelta(days=1) if until_day else None


def _entries(
    session: Session,
    page_user: PageUser,
    who: tuple[uuid.UUID | None, uuid.UUID | None],
    period: tuple[dt.datetime | None, dt.datetime | None],
    action: str,
    offset: int,
) -> tuple[list[Any], int]:
    """One page of the entries the filter selects: of the resident and by the user in `who`,
    within `period`, of the action typed."""
    resident_id, user_id = who
    since, until = period
    return list_entries(
        session,
        actor=page_user.actor,
        resident_id=resident_id,
        user_id=user_id,
        since=since,
        until=until,
        action=action.strip() or None,
        limit=PAGE_SIZE,
        offset=offset,
    )


def _entry_rows(session: Session, language: str, rows: list[Any]) -> list[dict[str, Any]]:
    """The audit entries as the page shows them: who, what and in which role."""
    actor_ids = {r.actor_id for r in rows if r.actor_id}
    usernames = users.usernames(session, actor_ids)
    return [
        {
            "entry": r,
            "who": usernames.get(r.actor_id, gettext(language, "system")),
            "action_label": _action_label(language, r.action, r.detail),
            "role_label": gettext(language, ROLE_LABELS[r.actor_role])
            if r.actor_role in ROLE_LABELS
            else r.actor_role,
        }
        for r in rows
    ]


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
    chosen, choices = _chosen_resident(session, page_user, resident, resident_id, errors)
    user_row = _filter_user(session, language, user, errors)
    since_at, until_at = _period(since, until, tz, language, errors)
    rows: list[Any] = []
    total = 0
    if not errors and not choices:
        who = (chosen.id if chosen else None, user_row.id if user_row else None)
        rows, total = _entries(session, page_user, who, (since_at, until_at), action, offset)
    entry_rows = _entry_rows(session, language, rows)
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
            "rows": entry_rows,
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
