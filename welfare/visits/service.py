"""Visit schedules and visits: create, change, list, record an outcome, confirm a check-in call.

Services check authorization, write the audit, and queue outbound notices as outbox rows in the
caller's transaction (the dispatcher renders them; rows carry ids, never names or notes).
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from welfare import outbox
from welfare.audit.service import audit_resident
from welfare.audit.service import record as audit_record
from welfare.authz import Actor, Permission, Role, require, require_site, visible_site_ids
from welfare.channels import ChannelKind
from welfare.consent.models import ConsentScope
from welfare.consent.scopes import has_scope
from welfare.db import upsert, utcnow
from welfare.errors import ConfirmationRequired, Conflict, InvalidInput, NotFound
from welfare.incidents import service as incidents
from welfare.incidents import timeline
from welfare.incidents.models import Condition, IncidentCreate, IncidentKind
from welfare.outbox.models import OutboxMessage, OutboxStatus
from welfare.pagination import paginate
from welfare.residents.models import Resident
from welfare.sites.models import Site
from welfare.users.models import User, UserSite
from welfare.users.service import hash_token
from welfare.visits.models import (
    OPEN_STATUSES,
    CalendarToken,
    JobMark,
    ScheduleCreate,
    SchedulePublic,
    ScheduleUpdate,
    Visit,
    VisitKind,
    VisitOutcome,
    VisitRecord,
    VisitSchedule,
    VisitStatus,
)
from welfare.visits.recurrence import validate_rule

# A visit may be recorded this long before its window opens (a resident met the day before),
# and then only with VisitRecord.confirm_early; further ahead not at all.
EARLY_RECORD_LIMIT = dt.timedelta(hours=12)

# Fields whose change invalidates the occurrences generated ahead.
_SHAPE_FIELDS = {
    "kind",
    "rrule",
    "window_start",
    "window_end",
    "assignee_user_id",
    "start_date",
    "end_date",
    "active",
}


# --- notices (outbox rows not tied to an incident) ----------------------------------------------


def users_at_site(session: Session, site_id: uuid.UUID, roles: Iterable[Role]) -> list[User]:
    """Active users of `roles` at the site who have a phone to be texted on."""
    return list(
        session.exec(
            select(User)
            .join(UserSite, col(UserSite.user_id) == User.id)
            .where(
                UserSite.site_id == site_id,
                col(User.role).in_(list(roles)),
                col(User.is_active),
                col(User.phone).is_not(None),
            )
            .order_by(col(User.id))
        ).all()
    )


def queue_notice(
    session: Session,
    *,
    key: str,
    user: User,
    template: str,
    params: dict[str, Any],
    now: dt.datetime,
) -> bool:
    """An SMS to a user, once per `key` (a rerun, or a racing tick, queues nothing)."""
    assert user.phone is not None
    queued = outbox.enqueue(
        session,
        kind=ChannelKind.sms,
        to=user.phone,
        language=user.language,
        template=template,
        key=key,
        params={name: str(value) for name, value in params.items()},
        user_id=user.id,
        once=True,
        now=now,
    )
    return queued is not None


def visit_params(visit: Visit) -> dict[str, Any]:
    return {
        "visit_id": visit.id,
        "site_id": visit.site_id,
        "kind": visit.kind.value,
        "window_start": visit.window_start.isoformat(),
    }


def alert_managers(
    session: Session, visit: Visit, template: str, now: dt.datetime, key_suffix: str = ""
) -> int:
    managers = users_at_site(session, visit.site_id, (Role.manager,))
    queued = 0
    for manager in managers:
        key = f"visit:{visit.id}:{template}{key_suffix}:{manager.id}"
        queued += queue_notice(
            session,
            key=key,
            user=manager,
            template=template,
            params=visit_params(visit),
            now=now,
        )
    return queued


def assignees_of(session: Session, visit: Visit) -> list[User]:
    """The assignee if they have a phone, else the site's staff."""
    if visit.assignee_user_id is not None:
        user = session.get(User, visit.assignee_user_id)
        if user is not None and user.is_active and user.phone:
            return [user]
    return users_at_site(session, visit.site_id, (Role.staff,))


def mark_once(session: Session, key: str, now: dt.datetime) -> bool:
    """Insert the job mark `key`; False if it was there already (also under a race)."""
    insert = upsert(session)
    statement = (
        insert(JobMark)
        .values(key=key, at=now)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(col(JobMark.key))
    )
    return session.connection().execute(statement).first() is not None


# --- schedules ----------------------------------------------------------------------------------


def _site(session: Session, site_id: uuid.UUID) -> Site:
    site = session.get(Site, site_id)
    assert site is not None
    return site


def public_schedule(session: Session, schedule: VisitSchedule) -> SchedulePublic:
    return SchedulePublic.model_validate(
        {**schedule.model_dump(), "timezone": _site(session, schedule.site_id).timezone}
    )


def _check_assignee(session: Session, site_id: uuid.UUID, user_id: uuid.UUID | None) -> None:
    if user_id is None:
        return
    user = session.get(User, user_id)
    member = session.get(UserSite, (user_id, site_id)) if user else None
    if user is None or member is None or not user.is_active:
        raise InvalidInput(
            "assignee_user_id",
            "not an active user of this site: choose an active staff member or manager of the site",
        )
    if user.role == Role.guard:
        raise InvalidInput("assignee_user_id", "visits are assigned to staff or managers")


def _check_shape(session: Session, schedule: VisitSchedule, resident: Resident) -> None:
    schedule.rrule = validate_rule(schedule.rrule)
    if schedule.window_end <= schedule.window_start:
        raise InvalidInput("window_end", "the window must end after it starts, the same day")
    if schedule.end_date is not None and schedule.end_date < schedule.start_date:
        raise InvalidInput("end_date", "the end date is before the start date")
    _check_assignee(session, schedule.site_id, schedule.assignee_user_id)
    if schedule.kind is VisitKind.automated_call and not resident.phone:
        raise InvalidInput("kind", "automated check-in calls need the resident's own phone")


def _resident_for_visits(session: Session, actor: Actor, resident_id: uuid.UUID) -> Resident:
    resident = session.get(Resident, resident_id)
    if resident is None or resident.erased_at is not None:
        raise InvalidInput(
            "resident_id",
            "unknown resident: give the id of a resident at one of your sites,"
            " as GET /api/v1/residents lists them",
        )
    require_site(actor, Permission.visits_schedule, resident.site_id, "resident")
    if not has_scope(session, resident.id, ConsentScope.welfare_visits):
        raise InvalidInput("resident_id", "this resident has not consented to welfare visits")
    return resident


def create_schedule(*, session: Session, actor: Actor, data: ScheduleCreate) -> VisitSchedule:
    resident = _resident_for_visits(session, actor, data.resident_id)
    schedule = VisitSchedule(
        **data.model_dump(exclude={"resident_id"}),
        site_id=resident.site_id,
        resident_id=resident.id,
        created_by=actor.user_id,
    )
    _check_shape(session, schedule, resident)
    session.add(schedule)
    session.flush()
    audit_resident(
        session,
        actor,
        "visit_schedule.create",
        resident,
        entity="visit_schedule",
        entity_id=schedule.id,
        detail={"kind": schedule.kind.value, "rrule": schedule.rrule},
    )
    return schedule


def _load_schedule(
    session: Session, actor: Actor, schedule_id: uuid.UUID, permission: Permission
) -> VisitSchedule:
    schedule = session.get(VisitSchedule, schedule_id)
    if schedule is None:
        raise NotFound("visit schedule")
    require_site(actor, permission, schedule.site_id, "visit schedule")
    return schedule


def get_schedule(*, session: Session, actor: Actor, schedule_id: uuid.UUID) -> VisitSchedule:
    return _load_schedule(session, actor, schedule_id, Permission.registry_read)


def list_schedules(
    *,
    session: Session,
    actor: Actor,
    limit: int,
    offset: int,
    site_id: uuid.UUID | None = None,
    resident_id: uuid.UUID | None = None,
    assignee_user_id: uuid.UUID | None = None,
    active: bool | None = None,
) -> tuple[list[VisitSchedule], int]:
    sites = visible_site_ids(actor, Permission.registry_read)
    query = select(VisitSchedule)
    if sites is not None:
        query = query.where(col(VisitSchedule.site_id).in_(sites))
    if site_id:
        query = query.where(VisitSchedule.site_id == site_id)
    if resident_id:
        query = query.where(VisitSchedule.resident_id == resident_id)
    if assignee_user_id:
        query = query.where(VisitSchedule.assignee_user_id == assignee_user_id)
    if active is not None:
        query = query.where(VisitSchedule.active == active)
    return paginate(
        session,
        query,
        limit=limit,
        offset=offset,
        order_by=[col(VisitSchedule.created_at), col(VisitSchedule.id)],
    )


def _drop_future(session: Session, schedule: VisitSchedule, now: dt.datetime) -> int:
    """Forget occurrences not yet begun and not yet touched: the generator makes them anew."""
    return session.exec(  # type: ignore[call-overload]
        delete(Visit).where(
            col(Visit.schedule_id) == schedule.id,
            col(Visit.status) == VisitStatus.scheduled,
            col(Visit.window_start) > now,
            col(Visit.call_attempts) == 0,
        )
    ).rowcount


def update_schedule(
    *,
    session: Session,
    actor: Actor,
    schedule_id: uuid.UUID,
    data: ScheduleUpdate,
    now: dt.datetime | None = None,
) -> VisitSchedule:
    now = now or utcnow()
    schedule = _load_schedule(session, actor, schedule_id, Permission.visits_schedule)
    changes = data.model_dump(exclude_unset=True)
    for name in ("kind", "rrule", "window_start", "window_end", "start_date", "active"):
        if name in changes and changes[name] is None:
            raise InvalidInput(name, "cannot be emptied: leave the field out to keep its value")
    resident = session.get(Resident, schedule.resident_id)
    assert resident is not None
    if changes.get("active") and not has_scope(session, resident.id, ConsentScope.welfare_visits):
        raise InvalidInput("active", "this resident has not consented to welfare visits")
    for name, value in changes.items():
        setattr(schedule, name, value)
    _check_shape(session, schedule, resident)
    if _SHAPE_FIELDS & set(changes):
        _drop_future(session, schedule, now)
        schedule.generated_until = None
    schedule.updated_at = now
    session.add(schedule)
    audit_resident(
        session,
        actor,
        "visit_schedule.update",
        resident,
        entity="visit_schedule",
        entity_id=schedule.id,
        detail={"fields": sorted(changes)},
    )
    return schedule


def end_schedule(
    *, session: Session, actor: Actor, schedule_id: uuid.UUID, now: dt.datetime | None = None
) -> None:
    """DELETE: the schedule stops and its future visits go; past visits stay for the record."""
    now = now or utcnow()
    schedule = _load_schedule(session, actor, schedule_id, Permission.visits_schedule)
    schedule.active = False
    schedule.generated_until = None
    schedule.updated_at = now
    session.add(schedule)
    dropped = _drop_future(session, schedule, now)
    audit_record(
        session,
        actor=actor,
        action="visit_schedule.end",
        entity="visit_schedule",
        entity_id=schedule.id,
        resident_id=schedule.resident_id,
        site_id=schedule.site_id,
        detail={"future_visits_removed": dropped},
    )


# --- visits -------------------------------------------------------------------------------------


def _load_visit(
    session: Session, actor: Actor, visit_id: uuid.UUID, permission: Permission
) -> Visit:
    visit = session.get(Visit, visit_id)
    if visit is None:
        raise NotFound("visit")
    require_site(actor, permission, visit.site_id, "visit")
    return visit


def get_visit(*, session: Session, actor: Actor, visit_id: uuid.UUID) -> Visit:
    return _load_visit(session, actor, visit_id, Permission.registry_read)


def visit_filters(
    actor: Actor,
    *,
    site_id: uuid.UUID | None = None,
    assignee_user_id: uuid.UUID | None = None,
    resident_id: uuid.UUID | None = None,
    statuses: list[VisitStatus] | None = None,
    start_from: dt.datetime | None = None,
    start_to: dt.datetime | None = None,
    unassigned: bool = False,
    permission: Permission = Permission.registry_read,
) -> list[Any]:
    """WHERE conditions on Visit: the actor's sites (checking `permission`) and the filters;
    `unassigned`: only the visits of the site's staff as a whole (no assignee)."""
    sites = visible_site_ids(actor, permission)
    conditions: list[Any] = []
    if sites is not None:
        conditions.append(col(Visit.site_id).in_(sites))
    if site_id:
        conditions.append(col(Visit.site_id) == site_id)
    if assignee_user_id:
        conditions.append(col(Visit.assignee_user_id) == assignee_user_id)
    if unassigned:
        conditions.append(col(Visit.assignee_user_id).is_(None))
    if resident_id:
        conditions.append(col(Visit.resident_id) == resident_id)
    if statuses:
        conditions.append(col(Visit.status).in_(statuses))
    if start_from:
        conditions.append(col(Visit.window_start) >= start_from)
    if start_to:
        conditions.append(col(Visit.window_start) < start_to)
    return conditions


def list_visits(
    *, session: Session, actor: Actor, limit: int, offset: int, **filters: Any
) -> tuple[list[Visit], int]:
    start_from, start_to = filters.get("start_from"), filters.get("start_to")
    if start_from and start_to and start_to <= start_from:
        raise InvalidInput("start_to", "the range ends before it starts")
    return paginate(
        session,
        select(Visit).where(*visit_filters(actor, **filters)),
        limit=limit,
        offset=offset,
        order_by=[col(Visit.window_start), col(Visit.id)],
    )


def _previous_outcome(session: Session, visit: Visit) -> VisitOutcome | None:
    """The outcome of the schedule's last recorded visit before this one."""
    return session.exec(
        select(Visit.outcome)
        .where(
            Visit.schedule_id == visit.schedule_id,
            col(Visit.window_start) < visit.window_start,
            col(Visit.outcome).is_not(None),
        )
        .order_by(col(Visit.window_start).desc())
        .limit(1)
    ).first()


def _open_concern(
    session: Session, actor: Actor, visit: Visit, *, escalate: bool, now: dt.datetime
) -> uuid.UUID | None:
    """A welfare_concern incident for the visit's resident; None when the resident has no
    lost-person consent (the incident engine's rule): the manager is alerted instead."""
    if not has_scope(session, visit.resident_id, ConsentScope.lost_person_response):
        alert_managers(session, visit, "visit_concern", now)
        return None
    opened = incidents.open_incident(
        session=session,
        actor=actor,
        data=IncidentCreate(
            kind=IncidentKind.welfare_concern,
            resident_id=visit.resident_id,
            condition=Condition.well,
            client_request_id=f"visit-{visit.id}",
        ),
        now=now,
        escalate=escalate,
    )
    timeline.record(
        session,
        opened.incident,
        "visit_concern",
        actor=actor,
        visit_id=visit.id,
        kind=visit.kind.value,
        outcome=visit.outcome.value if visit.outcome else "no_answer",
    )
    return opened.incident.id


def record_visit(
    *,
    session: Session,
    actor: Actor,
    visit_id: uuid.UUID,
    data: VisitRecord,
    now: dt.datetime | None = None,
) -> Visit:
    now = now or utcnow()
    visit = _load_visit(session, actor, visit_id, Permission.registry_write)
    if visit.status not in (*OPEN_STATUSES, VisitStatus.missed):
        raise Conflict(f"this visit is already {visit.status.value}")
    if visit.window_start > now + EARLY_RECORD_LIMIT:
        raise InvalidInput("visit_id", "this visit has not started yet")
    if visit.window_start > now and not data.confirm_early:
        raise ConfirmationRequired(
            "this visit's window has not opened yet: send confirm_early: true to record it "
            "as completed before its window",
            confirm_field="confirm_early",
            window_start=visit.window_start.isoformat(),
        )
    early = visit.window_start > now
    visit.status = VisitStatus.completed
    visit.outcome = data.outcome
    visit.notes = data.notes
    visit.follow_up = data.follow_up
    visit.recorded_by = actor.user_id
    visit.recorded_at = visit.updated_at = now
    session.add(visit)
    session.flush()
    if data.outcome is VisitOutcome.concern or data.follow_up:
        visit.incident_id = _open_concern(session, actor, visit, escalate=False, now=now)
        session.add(visit)
    if data.outcome is VisitOutcome.not_home and _previous_outcome(session, visit) == "not_home":
        alert_managers(session, visit, "visit_not_home", now)
    resident = session.get(Resident, visit.resident_id)
    assert resident is not None
    audit_resident(
        session,
        actor,
        "visit.record",
        resident,
        entity="visit",
        entity_id=visit.id,
        detail={
            "outcome": data.outcome.value,
            "follow_up": data.follow_up,
            **({"before_window": True} if early else {}),
        },
    )
    return visit


def confirm_checkin(
    session: Session, *, visit_id: uuid.UUID, via: str, now: dt.datetime | None = None
) -> bool:
    """The resident pressed 1 on the check-in call: the visit is completed as well, and pending
    retries are cancelled. False when nothing changed (already recorded, or unknown)."""
    now = now or utcnow()
    visit = session.get(Visit, visit_id)
    if visit is None or visit.status not in (*OPEN_STATUSES, VisitStatus.missed):
        return False
    if visit.incident_id is not None:
        return False  # the concern is running: staff close it, a late keypress is kept below
    visit.status = VisitStatus.completed
    visit.outcome = VisitOutcome.well
    visit.recorded_at = visit.updated_at = now
    session.add(visit)
    session.exec(  # type: ignore[call-overload]
        update(OutboxMessage)
        .where(
            col(OutboxMessage.idempotency_key).startswith(f"visit:{visit.id}:call:"),
            # Claimed rows have not passed the send gate yet: they are stopped too.
            col(OutboxMessage.status).in_((OutboxStatus.pending, OutboxStatus.claimed)),
        )
        .values(status=OutboxStatus.cancelled, updated_at=now)
    )
    audit_record(
        session,
        actor=Actor.system(),
        action="visit.checkin_confirmed",
        entity="visit",
        entity_id=visit.id,
        resident_id=visit.resident_id,
        site_id=visit.site_id,
        detail={"via": via},
    )
    return True


def scrub_for_erasure(session: Session, resident_id: uuid.UUID) -> None:
    """Consent withdrawn: schedules end, unrecorded visits go, recorded ones lose their notes."""
    session.exec(  # type: ignore[call-overload]
        update(VisitSchedule)
        .where(col(VisitSchedule.resident_id) == resident_id)
        .values(active=False, generated_until=None)
    )
    session.exec(  # type: ignore[call-overload]
        delete(Visit).where(
            col(Visit.resident_id) == resident_id,
            col(Visit.status) == VisitStatus.scheduled,
            col(Visit.call_attempts) == 0,
        )
    )
    session.exec(  # type: ignore[call-overload]
        update(Visit).where(col(Visit.resident_id) == resident_id).values(notes=None)
    )
    # The resident's own number on check-in call rows goes too (a pending one is cancelled).
    for visit_id in session.exec(select(Visit.id).where(Visit.resident_id == resident_id)).all():
        session.exec(  # type: ignore[call-overload]
            update(OutboxMessage)
            .where(col(OutboxMessage.idempotency_key).startswith(f"visit:{visit_id}:call:"))
            .values(to_phone=None, updated_at=utcnow())
        )


# --- calendar tokens ----------------------------------------------------------------------------


def issue_calendar_token(*, session: Session, actor: Actor, user_id: uuid.UUID) -> str:
    """A new secret feed token for the user (the old one stops working). Returned once."""
    user = _calendar_owner(session, actor, user_id)
    token = secrets.token_urlsafe(32)
    row = session.get(CalendarToken, user.id) or CalendarToken(user_id=user.id, token_hash="")
    row.token_hash = hash_token(token)
    row.created_at = utcnow()
    session.add(row)
    audit_record(
        session, actor=actor, action="calendar_token.issue", entity="user", entity_id=user.id
    )
    return token


def revoke_calendar_token(*, session: Session, actor: Actor, user_id: uuid.UUID) -> None:
    user = _calendar_owner(session, actor, user_id)
    row = session.get(CalendarToken, user.id)
    if row is None:
        raise NotFound("calendar token")
    session.delete(row)
    audit_record(
        session, actor=actor, action="calendar_token.revoke", entity="user", entity_id=user.id
    )


def _calendar_owner(session: Session, actor: Actor, user_id: uuid.UUID) -> User:
    """Users get their own feed; managers issue feeds for users of their sites."""
    require(actor, Permission.registry_read)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user")
    if actor.user_id == user.id:
        return user
    require(actor, Permission.visits_schedule)
    sites = set(session.exec(select(UserSite.site_id).where(UserSite.user_id == user.id)).all())
    if not actor.is_system and not (sites & actor.site_ids):
        raise NotFound("user")
    return user
