"""Incidents: open (idempotently), escalate, confirm, note, resolve, cancel.

Services write their own timeline events and audit entries; outbound messages are queued as
durable outbox rows in the same transaction as the event that caused them.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from welfare import hooks, outbox
from welfare.audit.service import record as audit_record
from welfare.authz import Actor, Permission, Role, require, require_site, visible_site_ids
from welfare.channels import CONTACT_CHANNELS, WRITTEN, ChannelKind
from welfare.consent.models import ConsentScope
from welfare.consent.scopes import has_scope
from welfare.db import for_update, insert_unless_conflict, on_commit, takes_row_locks, utcnow
from welfare.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from welfare.incidents import photos as incident_photos
from welfare.incidents import timeline
from welfare.incidents.escalation import (
    EngineState,
    Policy,
    Step,
    StepKind,
    contact_declined,
    due_steps,
    next_due_at,
    plan,
)
from welfare.incidents.models import (
    CLOSED,
    RUNNING,
    EscalationPolicy,
    Incident,
    IncidentCreate,
    IncidentKind,
    IncidentStatus,
    NoteVisibility,
    Outcome,
    Resolution,
)
from welfare.outbox import queue as outbox_queue
from welfare.outbox import reach
from welfare.outbox.models import ALL_CLEAR, REACHED, OutboxMessage, OutboxStatus
from welfare.pagination import paginate
from welfare.push import service as push
from welfare.residents.models import Contact, Resident
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.tags.service import find_live_tag
from welfare.times import zone
from welfare.users.models import User, UserSite

REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read over the phone


def new_reference() -> str:
    return "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(6))


def policy_for(session: Session, site_id: uuid.UUID, resident_id: uuid.UUID | None) -> Policy:
    """The resident's own policy if there is one, else the site's, else the brief's default."""
    rows = session.exec(select(EscalationPolicy).where(EscalationPolicy.site_id == site_id)).all()
    by_resident = {row.resident_id: row for row in rows}
    chosen = by_resident.get(resident_id) if resident_id else None
    chosen = chosen or by_resident.get(None)
    return Policy.from_json(chosen.settings if chosen else None)


def contacts_of(session: Session, resident_id: uuid.UUID) -> list[Contact]:
    """The resident's contacts in the order they are called."""
    return list(
        session.exec(
            select(Contact)
            .where(Contact.resident_id == resident_id)
            .order_by(col(Contact.priority), col(Contact.created_at))
        ).all()
    )


def lock_incident(session: Session, incident: Incident) -> None:
    """Serialise work on one incident across processes (SQLite's BEGIN IMMEDIATE already does)."""
    if takes_row_locks(session):
        lock_incidents(session, [incident.id])  # reloads this very object, locked


def lock_incidents(
    session: Session, incident_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Incident]:
    """Load several incidents at once, fresh, locked on PostgreSQL as `lock_incident` locks one;
    in id order, so two batches never wait on each other in a circle."""
    ids = set(incident_ids)
    if not ids:
        return {}
    query = for_update(
        session,
        select(Incident)
        .where(col(Incident.id).in_(list(ids)))
        .order_by(col(Incident.id))
        .execution_options(populate_existing=True),
    )
    return {incident.id: incident for incident in session.exec(query).all()}


def _resolve_resident(session: Session, actor: Actor, data: IncidentCreate) -> Resident | None:
    if data.resident_id and data.tag:
        raise InvalidInput("tag", "give a resident_id or a tag, not both")
    resident: Resident | None = None
    if data.tag:
        tag = find_live_tag(session, data.tag)
        resident = session.get(Resident, tag.resident_id) if tag else None
        if resident is None:
            raise InvalidInput(
                "tag",
                "unknown or revoked tag: check the code printed on the tag, or search by flat or"
                " name",
            )
    elif data.resident_id:
        resident = session.get(Resident, data.resident_id)
        if resident is None:
            raise InvalidInput(
                "resident_id",
                "unknown resident: give the id of a resident at one of your sites,"
                " as GET /api/v1/residents lists them",
            )
    if resident is None:
        return None
    if resident.erased_at is not None or not actor.in_site(resident.site_id):
        raise InvalidInput(
            "resident_id" if data.resident_id else "tag",
            "unknown resident: give the id of a resident at one of your sites, as GET"
            " /api/v1/residents lists them",
        )
    # A guard may act on a resident only under a live lost-person consent.
    if not has_scope(session, resident.id, ConsentScope.lost_person_response):
        raise InvalidInput(
            "resident_id" if data.resident_id else "tag",
            "this resident has no lost-person consent; report an unknown person instead",
        )
    return resident


def _site_for_unknown(session: Session, actor: Actor, data: IncidentCreate) -> Site:
    if data.site_id is None:
        if len(actor.site_ids) == 1:
            site_id = next(iter(actor.site_ids))
        else:
            raise InvalidInput("site_id", "say which site the person was found at")
    else:
        site_id = data.site_id
    site = session.get(Site, site_id)
    if site is None or not actor.in_site(site.id):
        raise InvalidInput(
            "site_id",
            "unknown site: give the id of one of your sites, as GET /api/v1/sites lists them",
        )
    return site


@dataclass(frozen=True)
class Opened:
    incident: Incident
    created: bool


def open_incident(
    *,
    session: Session,
    actor: Actor,
    data: IncidentCreate,
    now: dt.datetime | None = None,
    escalate: bool = True,
) -> Opened:
    """Open an incident, or return the one this request (or an open one for the resident) made.

    Idempotent on (reporter, client_request_id): a double tap or an offline retry never opens
    two. An open incident for the same resident is reused and the repeat noted on its timeline.
    `escalate=False` opens it for staff to handle without calling the contacts (a concern a
    visitor recorded); it stays open.
    """
    require(actor, Permission.guard_ops)
    now = now or utcnow()
    earlier = _same_request(session, actor, data)
    if earlier is not None:
        return Opened(earlier, False)

    resident = _resolve_resident(session, actor, data)
    if resident is None and data.kind is not IncidentKind.found:
        raise InvalidInput("resident_id", f"a {data.kind.value} incident needs a resident")
    if resident is None and not (data.description or data.note):
        raise InvalidInput("description", "describe the person who was found")
    site = (
        session.get(Site, resident.site_id) if resident else _site_for_unknown(session, actor, data)
    )
    assert site is not None
    require_site(actor, Permission.guard_ops, site.id, "site")

    # A concurrent report can win between the look and the insert: the database refuses the
    # second running incident (or the same request twice), and the loser takes the winner's.
    for _ in range(3):
        running = running_incident(session, resident.id) if resident is not None else None
        if running is not None:
            return Opened(_report_repeated(session, running, actor, data, now), False)
        incident = _new_incident(site, resident, actor, data, now)
        if insert_unless_conflict(session, incident):
            timeline.opened_here(session, incident)
            break
        earlier = _same_request(session, actor, data)
        if earlier is not None:
            return Opened(earlier, False)
    else:  # the running incident kept closing between our tries: let the client try again
        raise Conflict("another report of this resident is being handled; try again")

    # Its plan, events and outbox rows are inserted together when the transaction flushes, not
    # by the reads in between (the policy, the contacts).
    with session.no_autoflush:
        timeline.record(
            session,
            incident,
            "reported",
            actor=actor,
            kind=incident.kind.value,
            condition=incident.condition.value,
            unknown_person=resident is None,
            gps=data.latitude is not None,
        )
        if resident is not None:
            _audit(session, actor, incident, "incident.open", kind=incident.kind.value)
            if incident.kind is IncidentKind.missing:
                alert_guards_on_duty(session, incident, now)
            elif escalate:
                start_escalation(session, incident, now)
    return Opened(incident, True)


def _audit(session: Session, actor: Actor, incident: Incident, action: str, **detail: Any) -> None:
    """Every change of an incident's state is in the hash-chained audit too (the timeline is
    the incident's story; the audit answers "who did what")."""
    audit_record(
        session,
        actor=actor,
        action=action,
        entity="incident",
        entity_id=incident.id,
        resident_id=incident.resident_id,
        site_id=incident.site_id,
        purpose=f"incident {incident.id}",
        detail=detail or None,
    )


def _same_request(session: Session, actor: Actor, data: IncidentCreate) -> Incident | None:
    """The incident this reporter's `client_request_id` already opened (a retry, a double tap)."""
    if actor.user_id is None:
        return None
    return session.exec(
        select(Incident).where(
            Incident.reported_by == actor.user_id,
            Incident.client_request_id == data.client_request_id,
        )
    ).first()


def running_incident(session: Session, resident_id: uuid.UUID) -> Incident | None:
    """The resident's one open, notifying or confirmed incident (the database allows one)."""
    return session.exec(
        select(Incident).where(
            Incident.resident_id == resident_id, col(Incident.status).in_(RUNNING)
        )
    ).first()


def answered_incident(session: Session, incident: Incident) -> Incident:
    """The incident a contact's answer to a message of `incident` confirms: the resident's
    running one (which that is, if this one closed since, e.g. duplicates cancelled by 0016)."""
    if incident.status in RUNNING or incident.resident_id is None:
        return incident
    return running_incident(session, incident.resident_id) or incident


def _new_incident(
    site: Site, resident: Resident | None, actor: Actor, data: IncidentCreate, now: dt.datetime
) -> Incident:
    return Incident(
        reference=new_reference(),
        site_id=site.id,
        resident_id=resident.id if resident else None,
        kind=data.kind,
        condition=data.condition,
        reported_by=actor.user_id,
        client_request_id=data.client_request_id,
        location=data.location,
        latitude=data.latitude,
        longitude=data.longitude,
        note=data.note,
        description=data.description,
        opened_at=now,
        updated_at=now,
    )


def _report_repeated(
    session: Session, running: Incident, actor: Actor, data: IncidentCreate, now: dt.datetime
) -> Incident:
    """Another report of a resident whose incident is running: noted on it, and a missing
    incident becomes a found one."""
    lock_incident(session, running)
    timeline.record(
        session,
        running,
        "report_repeated",
        actor=actor,
        kind=data.kind.value,
        condition=data.condition.value,
    )
    if running.kind is IncidentKind.missing and data.kind is IncidentKind.found:
        _switch_to_found(session, running, actor, data, now)
    return running


def reachable_users(session: Session, site_id: uuid.UUID, role: Role) -> list[User]:
    """Active users of `role` at the site who have a phone to be texted or called on."""
    return list(
        session.exec(
            select(User)
            .join(UserSite, col(UserSite.user_id) == User.id)
            .where(
                UserSite.site_id == site_id,
                User.role == role,
                col(User.is_active),
                col(User.phone).is_not(None),
            )
        ).all()
    )


def guards_on_duty(session: Session, site_id: uuid.UUID) -> list[User]:
    """Whom a missing alert is texted to: the site's active guards on duty with a phone."""
    return [g for g in reachable_users(session, site_id, Role.guard) if g.on_duty_since]


def alert_guards_on_duty(
    session: Session, incident: Incident, now: dt.datetime, *, template: str = "missing_alert"
) -> int:
    """Every guard on duty at the site gets an SMS pointing at the alert (photo, description and
    likely places are behind sign-in, never in the SMS), or a push instead on the phone they
    turned alerts on for (welfare/push/service.py). `template`: "missing_alert", or
    "finder_alert" for a resident a member of the public found (public_reports.py)."""
    guards = guards_on_duty(session, incident.site_id)
    for guard in guards:
        _queue_for_user(session, incident, None, guard, template, now)
    timeline.record(session, incident, "guards_alerted", guards=len(guards), template=template)
    return len(guards)


def _switch_to_found(
    session: Session, incident: Incident, actor: Actor, data: IncidentCreate, now: dt.datetime
) -> None:
    incident.kind = IncidentKind.found
    incident.condition = data.condition
    incident.location = data.location or incident.location
    incident.latitude, incident.longitude = data.latitude, data.longitude
    incident.updated_at = now
    session.add(incident)
    timeline.record(session, incident, "found", actor=actor, condition=data.condition.value)
    if not incident.escalation:
        start_escalation(session, incident, now)


def start_escalation(session: Session, incident: Incident, now: dt.datetime) -> None:
    """Snapshot the policy as concrete steps onto the incident and start what is due."""
    assert incident.resident_id is not None
    # A first plan has no step events to read back (the timeline read costs a flush).
    fresh = EngineState(stopped=False) if not incident.escalation else None
    policy = policy_for(session, incident.site_id, incident.resident_id)
    if incident.condition == "injured":
        policy = Policy(**{**policy.to_json(), "urgent": True, "channels": tuple(policy.channels)})
    # Kept referenced until the steps are started: the session's identity map holds loaded
    # rows only weakly, and `_start_step` gets each contact by id.
    contact_rows = contacts_of(session, incident.resident_id)
    contacts = [str(c.id) for c in contact_rows]
    steps = plan(policy, contacts)
    incident.escalation = {
        "policy": policy.to_json(),
        "started_at": now.isoformat(),
        "steps": [s.to_json() for s in steps],
    }
    incident.status = IncidentStatus.notifying
    session.add(incident)
    timeline.record(
        session,
        incident,
        "escalation_planned",
        steps=len(steps),
        contacts=len(contacts),
        urgent=policy.urgent,
    )
    advance(session=session, incident=incident, now=now, state=fresh)


# A contact answered "I can't come" on their answer link (incidents/answer_links.py).
CANNOT_COME_EVENT = "answer_link_cannot"


def engine_state(session: Session, incident: Incident) -> EngineState:
    state = EngineState(
        stopped=incident.status not in (IncidentStatus.open, IncidentStatus.notifying)
    )
    declined: list[tuple[str, dt.datetime]] = []
    for event in timeline.events_of(session, incident.id):
        if event.type == "escalation_step":
            state.started[int(event.detail["step"])] = event.at
        elif event.type == "step_failed" or (
            event.type == "call_missed" and event.detail.get("moves_on")
        ):
            # The first failure counts: a later one (the SMS failing after the call was missed)
            # must not push a step that fell due back.
            state.failed.setdefault(int(event.detail["step"]), event.at)
        elif event.type == CANNOT_COME_EVENT:
            declined.append((str(event.detail.get("contact_id")), event.at))
    steps = [Step.from_json(s) for s in (incident.escalation or {}).get("steps", [])]
    for contact_id, at in declined:
        contact_declined(steps, state, contact_id, at)
    return state


def advance(
    *,
    session: Session,
    incident: Incident,
    now: dt.datetime | None = None,
    state: EngineState | None = None,
) -> int:
    """Start every step that is due; return how many. Safe to call again at any time.

    `state` is for the caller that just made the plan in this transaction and so holds the
    incident (new, or locked before); otherwise the incident is locked and the state read from
    the timeline."""
    now = now or utcnow()
    if state is None:
        lock_incident(session, incident)
    if not incident.escalation:
        return 0
    steps = [Step.from_json(s) for s in incident.escalation["steps"]]
    started_at = dt.datetime.fromisoformat(incident.escalation["started_at"])
    if state is None:
        state = engine_state(session, incident)
    due = due_steps(steps, started_at, state, now)
    for step in due:
        state.started[step.index], failed_at = _start_step(session, incident, step, now)
        if failed_at is not None:  # it reached no one: the next one is pulled forward
            state.failed[step.index] = failed_at
    incident.next_step_at = next_due_at(steps, started_at, state)
    session.add(incident)
    return len(due)


# How a contact's call ended without a key (the `outcome` of a `call_missed` event).
MISSED_CALL_OUTCOMES = ("voicemail", "no_answer", "busy", "no_key", "failed", "cancelled")


def record_missed_call(
    session: Session,
    incident: Incident,
    *,
    message: OutboxMessage,
    outcome: str,
    now: dt.datetime | None = None,
) -> bool:
    """A contact's call of an escalation step ended without a key: on the timeline in words,
    and, when the incident's policy says `advance_on_miss` (the default), the next step starts
    at once instead of after the interval. An SMS delivered on the same step does not hold it
    back: a delivered SMS is not an answer. Once per call (the first news wins: a voicemail,
    then the call's "completed"); only while the escalation runs. False when nothing changed.

    The caller holds the incident's lock (the webhooks lock it with the row)."""
    if outcome not in MISSED_CALL_OUTCOMES:
        raise ValueError(f"not a missed-call outcome: {outcome}")
    if message.step_index is None or message.contact_id is None:
        return False  # not a contact's escalation call (a manager, a notice)
    if incident.status is not IncidentStatus.notifying or not incident.escalation:
        return False
    if missed_call_recorded(session, incident, message.id):
        return False
    moves_on = Policy.from_json(incident.escalation.get("policy")).advance_on_miss
    event = timeline.record(
        session,
        incident,
        "call_missed",
        channel=ChannelKind.voice.value,
        step=message.step_index,
        contact_id=message.contact_id,
        message_id=message.id,
        outcome=outcome,
        moves_on=moves_on,
    )
    if moves_on:
        # Timeline times come from the clock at writing; never ask "what is due" before them.
        advance(session=session, incident=incident, now=max(now or utcnow(), event.at))
    return True


def missed_call_recorded(session: Session, incident: Incident, message_id: uuid.UUID) -> bool:
    return any(
        event.type == "call_missed" and event.detail.get("message_id") == str(message_id)
        for event in timeline.events_of(session, incident.id)
    )


def _start_step(
    session: Session, incident: Incident, step: Step, now: dt.datetime
) -> tuple[dt.datetime, dt.datetime | None]:
    """Queue the step's messages; returns when it started and, if it reached no one, when it
    failed (the times on the timeline)."""
    started = timeline.record(
        session,
        incident,
        "escalation_step",
        step=step.index,
        target=step.kind.value,
        contact_id=step.contact_id,
        round=step.round,
    )
    site = session.get(Site, incident.site_id)
    assert site is not None
    queued = 0
    skipped: list[str] = []
    if step.kind is StepKind.contact:
        contact = session.get(Contact, uuid.UUID(step.contact_id)) if step.contact_id else None
        if contact is None:
            skipped.append("contact removed")
        elif not contact.consent_to_contact:
            skipped.append(reach.NO_CONSENT)
        elif not step.urgent and reach.in_quiet_hours(contact, now, site.timezone):
            skipped.append(reach.QUIET_HOURS)
        else:
            queued, reasons = _queue_for_contact(session, incident, step, contact, now)
            skipped += reasons
    else:
        queued = _queue_for_duty_manager(session, incident, step, site, now)
        if not queued:
            skipped.append("no manager with a phone")
    if not queued:
        failed = timeline.record(session, incident, "step_failed", step=step.index, reasons=skipped)
        return started.at, failed.at
    return started.at, None


def _queue(
    session: Session,
    incident: Incident,
    step_index: int | None,
    kind: ChannelKind,
    *,
    to: str,
    language: str,
    template: str,
    contact_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    params: dict[str, Any] | None = None,
    now: dt.datetime,
) -> OutboxMessage:
    """One incident row through `outbox.enqueue`. `step_index` is the escalation step that
    caused it, or None for messages outside the escalation (missing alerts to guards, "coming"
    notices); those are keyed by their template instead, so each is still queued at most once.
    Called under the incident's lock, so the key is new."""
    message = outbox.enqueue(
        session,
        kind=kind,
        to=to,
        language=language,
        template=template,
        key=outbox_queue.incident_key(
            incident,
            kind,
            cause=template if step_index is None else step_index,
            recipient=contact_id or user_id,
        ),
        params=params,
        incident=incident,
        step_index=step_index,
        contact_id=contact_id,
        user_id=user_id,
        now=now,
    )
    assert message is not None  # without `once`, enqueue always adds the row
    return message


def step_carries(step: Step, kind: ChannelKind) -> bool:
    """Whether a step sends `kind`: the policy's "sms" means every written channel the contact
    takes (SMS and WhatsApp: someone abroad may read only WhatsApp)."""
    if kind.value in step.channels:
        return True
    return kind in WRITTEN and ChannelKind.sms.value in step.channels


def _queue_for_contact(
    session: Session, incident: Incident, step: Step, contact: Contact, now: dt.datetime
) -> tuple[int, list[str]]:
    reasons: list[str] = []
    template = f"{incident.kind.value}_alert"
    kinds: list[ChannelKind] = []
    for kind in CONTACT_CHANNELS:
        if not step_carries(step, kind) or kind.value not in contact.channels:
            continue
        why = reach.refusal(contact, kind)
        if why is None:
            kinds.append(kind)
        else:
            reasons.append(why)
    for kind in kinds:
        _queue(
            session,
            incident,
            step.index,
            kind,
            to=contact.phone,
            language=contact.language,
            template=template,
            contact_id=contact.id,
            now=now,
        )
    return len(kinds), reasons


def _queue_for_duty_manager(
    session: Session, incident: Incident, step: Step, site: Site, now: dt.datetime
) -> int:
    managers = reachable_users(session, site.id, Role.manager)
    on_duty = [m for m in managers if m.on_duty_since is not None] or list(managers)
    for manager in on_duty:
        assert manager.phone is not None
        _queue_for_user(session, incident, step.index, manager, "manager_escalation", now)
        _queue(
            session,
            incident,
            step.index,
            ChannelKind.voice,
            to=manager.phone,
            language=manager.language,
            template="manager_escalation",
            user_id=manager.id,
            now=now,
        )
    return 2 * len(on_duty)


def _queue_for_user(
    session: Session,
    incident: Incident,
    step_index: int | None,
    user: User,
    template: str,
    now: dt.datetime,
) -> OutboxMessage:
    """A staff member's written message: a push to the phone they turned alerts on for, else
    the SMS. The push row keeps their number for the SMS it falls back to when it fails."""
    assert user.phone is not None
    target = push.target_for(session, user.id)
    return _queue(
        session,
        incident,
        step_index,
        ChannelKind.push if target else ChannelKind.sms,
        to=user.phone,
        language=user.language,
        template=template,
        user_id=user.id,
        params={"subscription_id": target.id} if target else None,
        now=now,
    )


# --- confirmation and staff actions ------------------------------------------------------------


def confirm(
    *,
    session: Session,
    incident: Incident,
    via: str,
    actor: Actor | None = None,
    contact_id: uuid.UUID | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """Someone is coming: stop every pending step at once. False if already confirmed/closed."""
    now = now or utcnow()
    lock_incident(session, incident)
    if incident.status not in (IncidentStatus.open, IncidentStatus.notifying):
        return False
    incident.status = IncidentStatus.confirmed
    incident.confirmed_at = now
    incident.confirmed_via = via
    incident.confirmed_contact_id = contact_id
    incident.updated_at = now
    session.add(incident)
    cancelled = _stop(session, incident, now)
    timeline.record(
        session,
        incident,
        "confirmed",
        actor=actor,
        label=None if actor else "contact",
        via=via,
        contact_id=contact_id,
        cancelled_messages=cancelled,
    )
    _audit(
        session,
        actor or Actor.system(),
        incident,
        "incident.confirm",
        via=via,
        contact_id=str(contact_id) if contact_id else None,
    )
    _queue_coming_notices(session, incident, contact_id, now)
    seconds = max((now - incident.opened_at).total_seconds(), 0.0)
    on_commit(session, partial(hooks.incident_confirmed, incident.kind.value, seconds))
    return True


def _queue_coming_notices(
    session: Session, incident: Incident, confirmer: uuid.UUID | None, now: dt.datetime
) -> None:
    """Contacts already reached get a short '<relationship> is coming' text (SMS, or WhatsApp
    for a contact who takes only that)."""
    reached = reached_contacts(session, incident)
    coming = session.get(Contact, confirmer) if confirmer else None
    for contact_id in sorted(set(reached) - {confirmer}, key=str):
        contact = session.get(Contact, contact_id)
        kind = reach.written_channel(contact) if contact is not None else None
        if contact is None or kind is None:
            continue
        _queue(
            session,
            incident,
            None,
            kind,
            to=contact.phone,
            language=contact.language,
            template="coming_notice",
            contact_id=contact.id,
            params={"relationship": coming.relationship if coming else "staff"},
            now=now,
        )


def reached_contacts(session: Session, incident: Incident) -> list[uuid.UUID]:
    """The contacts sent anything for this incident, each once: an SMS or a call handed to the
    provider ('sent', 'sending', or possibly sent: 'unknown'). Guards and managers are users, not
    contacts; rows never handed over (cancelled, failed, waiting) reached no one."""
    return sorted(
        set(
            session.exec(
                select(OutboxMessage.contact_id).where(
                    OutboxMessage.incident_id == incident.id,
                    col(OutboxMessage.status).in_(REACHED),
                    col(OutboxMessage.contact_id).is_not(None),
                )
            ).all()
        ),
        key=str,
    )


def _queue_all_clears(session: Session, incident: Incident, now: dt.datetime) -> int:
    """The incident closed: every contact sent anything for it gets one short text saying so,
    by SMS if they may be texted, else by WhatsApp if they take it (`reach.written_channel`).
    "safe" with the hand-over time when the resident was handed over; a neutral "closed"
    otherwise (cancelled, or resolved another way: nothing about their health). The row's
    unique idempotency key (incident, template, contact) lets the database refuse a second
    all-clear to anyone, whatever races; the refused one is skipped. Returns how many were
    queued."""
    safe = incident.status is IncidentStatus.resolved and incident.outcome == "handed_over"
    wording = "safe" if safe else "closed"
    at = (incident.handed_over_at if safe else incident.closed_at) or now
    queued = 0
    for contact_id in reached_contacts(session, incident):
        contact = session.get(Contact, contact_id)
        kind = reach.written_channel(contact) if contact is not None else None
        if contact is None or kind is None:
            continue
        message = outbox.enqueue(
            session,
            kind=kind,
            to=contact.phone,
            language=contact.language,
            template=ALL_CLEAR,
            # One all-clear per contact whatever the channel: the key names SMS for both.
            key=outbox_queue.incident_key(
                incident, ChannelKind.sms, cause=ALL_CLEAR, recipient=contact.id
            ),
            params={"wording": wording, "at": at.isoformat()},
            incident=incident,
            contact_id=contact.id,
            event="all_clear_queued",
            once=True,  # a second all-clear to anyone is refused by the database
            now=now,
        )
        queued += message is not None
    return queued


def _load(session: Session, actor: Actor, incident_id: uuid.UUID, perm: Permission) -> Incident:
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFound("incident")
    require_site(actor, perm, incident.site_id, "incident")
    return incident


def get_incident(*, session: Session, actor: Actor, incident_id: uuid.UUID) -> Incident:
    return _load(session, actor, incident_id, Permission.guard_ops)


def list_incidents(
    *,
    session: Session,
    actor: Actor,
    limit: int,
    offset: int,
    open_only: bool = False,
    closed_only: bool = False,
    site_id: uuid.UUID | None = None,
) -> tuple[list[Incident], int]:
    sites = visible_site_ids(actor, Permission.guard_ops)
    query = select(Incident)
    if sites is not None:
        query = query.where(col(Incident.site_id).in_(sites))
    if site_id:
        query = query.where(Incident.site_id == site_id)
    if open_only:
        query = query.where(col(Incident.status).not_in(CLOSED))
    if closed_only:
        query = query.where(col(Incident.status).in_(CLOSED))
    # Closed ones newest-closed first: what the office looks back on is what just ended.
    newest = col(Incident.closed_at).desc() if closed_only else col(Incident.opened_at).desc()
    return paginate(session, query, limit=limit, offset=offset, order_by=[newest, col(Incident.id)])


def acknowledge(
    *, session: Session, actor: Actor, incident_id: uuid.UUID, contact_id: uuid.UUID | None = None
) -> Incident:
    """Staff reached the family by phone: the same as a keypress."""
    incident = _load(session, actor, incident_id, Permission.registry_write)
    if contact_id is not None:
        contact = session.get(Contact, contact_id)
        if contact is None or contact.resident_id != incident.resident_id:
            raise InvalidInput(
                "contact_id", "not a contact of this resident: give the id of one of their contacts"
            )
    if not confirm(
        session=session, incident=incident, via="staff", actor=actor, contact_id=contact_id
    ):
        raise Conflict(f"the incident is already {incident.status.value}")
    return incident


def add_note(
    *,
    session: Session,
    actor: Actor,
    incident_id: uuid.UUID,
    note: str,
    visibility: NoteVisibility | None = None,
) -> Incident:
    """A note on the timeline. Staff's notes are for staff unless they say otherwise (they may
    hold health data); a guard's note is for everyone on the incident."""
    incident = _load(session, actor, incident_id, Permission.guard_ops)
    staff = actor.can(Permission.registry_read)
    if visibility is None:
        visibility = NoteVisibility.staff if staff else NoteVisibility.everyone
    elif visibility is NoteVisibility.staff and not staff:
        raise PermissionDenied("a guard's note is seen by everyone on the incident")
    # The note's words stay on the incident (erased with it), the timeline keeps its id.
    timeline.record(session, incident, "note", actor=actor, text=note, visibility=visibility.value)
    _audit(session, actor, incident, "incident.note", visibility=visibility.value)
    return incident


def may_close(session: Session, actor: Actor, incident: Incident) -> bool:
    """Closing stops the family's escalation and takes a missing alert off every guard's
    phone: staff and above, or a guard on the incident (reported it, the same person again, or
    claimed it)."""
    if actor.can(Permission.registry_write):
        return True
    return incident_photos.is_guard_on_it(session, actor, incident)


def _require_may_close(session: Session, actor: Actor, incident: Incident, verb: str) -> None:
    if not may_close(session, actor, incident):
        raise PermissionDenied(
            f"only the guard who reported or claimed this incident, or office staff, may {verb} it"
        )


def resolve(
    *, session: Session, actor: Actor, incident_id: uuid.UUID, data: Resolution
) -> Incident:
    incident = _load(session, actor, incident_id, Permission.guard_ops)
    _require_may_close(session, actor, incident, "resolve")
    lock_incident(session, incident)
    if incident.status in CLOSED:
        raise Conflict(f"the incident is already {incident.status.value}")
    now = utcnow()
    _stop(session, incident, now)
    incident.status = IncidentStatus.resolved
    incident.outcome = data.outcome
    incident.handed_to = data.handed_to
    incident.closed_at = incident.updated_at = now
    _erase_finder_location(session, incident)
    if data.outcome == "handed_over":
        incident.handed_over_at = now
        timeline.record(session, incident, "handed_over", actor=actor)
    session.add(incident)
    timeline.record(session, incident, "resolved", actor=actor, outcome=data.outcome.value)
    _audit(session, actor, incident, "incident.resolve", outcome=data.outcome.value)
    if data.note:
        visibility = NoteVisibility.staff
        if not actor.can(Permission.registry_read):
            visibility = NoteVisibility.everyone
        timeline.record(
            session, incident, "note", actor=actor, text=data.note, visibility=visibility.value
        )
    if incident.resident_id and incident.kind is IncidentKind.found:
        _add_wandering_history(session, incident, now)
    _queue_all_clears(session, incident, now)
    return incident


def _add_wandering_history(session: Session, incident: Incident, now: dt.datetime) -> None:
    resident = session.get(Resident, incident.resident_id)
    if resident is None or resident.erased_at is not None:
        return
    site = session.get(Site, incident.site_id)
    local_day = now.astimezone(zone(site.timezone if site else "UTC")).date()
    entry = {
        "occurred_on": local_day.isoformat(),
        "location": incident.location or "unknown",
        "note": f"found; {incident.outcome.value if incident.outcome else 'resolved'}",
        "incident_id": str(incident.id),
    }
    resident.wandering_history = [*resident.wandering_history, entry]
    resident.updated_at = now
    session.add(resident)
    stale = resident.photo_updated_at is None or resident.photo_updated_at < now - dt.timedelta(
        days=182
    )
    if stale:
        timeline.record(session, incident, "photo_refresh_due", resident_id=resident.id)


def cancel(
    *,
    session: Session,
    actor: Actor,
    incident_id: uuid.UUID,
    outcome: Outcome | None = None,
) -> Incident:
    """Close without a resolution: everything pending stops, contacts reached get a neutral
    all-clear. `outcome` false_alarm: a member of the public's report was not real."""
    incident = _load(session, actor, incident_id, Permission.guard_ops)
    _require_may_close(session, actor, incident, "cancel")
    lock_incident(session, incident)
    if incident.status in CLOSED:
        raise Conflict(f"the incident is already {incident.status.value}")
    now = utcnow()
    _stop(session, incident, now)
    incident.status = IncidentStatus.cancelled
    incident.outcome = outcome
    incident.closed_at = incident.updated_at = now
    _erase_finder_location(session, incident)
    session.add(incident)
    said = {"outcome": outcome.value} if outcome else {}
    timeline.record(session, incident, "cancelled", actor=actor, **said)
    _audit(session, actor, incident, "incident.cancel", **said)
    _queue_all_clears(session, incident, now)
    return incident


def _erase_finder_location(session: Session, incident: Incident) -> None:
    """A member of the public's coordinates stay on the incident only while it runs."""
    if incident.public_finder and incident.latitude is not None:
        incident.latitude = incident.longitude = None
        timeline.record(session, incident, "finder_location_erased")


def _stop(session: Session, incident: Incident, now: dt.datetime) -> int:
    """Cancel every message not yet handed over (pending or claimed); return how many.

    Messages handed over whose answer is not recorded ('sending': in flight, or left by a
    worker that died) become 'unknown', possibly sent, and are never resent; an answer that
    still comes back records what the provider said."""
    cancelled = session.exec(  # type: ignore[call-overload]
        update(OutboxMessage)
        .where(
            col(OutboxMessage.incident_id) == incident.id,
            # Claimed rows too: a dispatcher holding one finds it cancelled at its gate.
            col(OutboxMessage.status).in_((OutboxStatus.pending, OutboxStatus.claimed)),
        )
        .values(status=OutboxStatus.cancelled, updated_at=now)
    ).rowcount
    session.exec(  # type: ignore[call-overload]
        update(OutboxMessage)
        .where(
            col(OutboxMessage.incident_id) == incident.id,
            col(OutboxMessage.status) == OutboxStatus.sending,
        )
        .values(status=OutboxStatus.unknown, updated_at=now)
    )
    return cancelled


def due_incident_ids(session: Session, now: dt.datetime | None = None) -> list[uuid.UUID]:
    """Incidents with an escalation step due (for the worker's round); a null `next_step_at`
    (not worked out yet) counts as due, and `advance` works it out."""
    now = now or utcnow()
    return list(
        session.exec(
            select(Incident.id).where(
                Incident.status == IncidentStatus.notifying,
                or_(col(Incident.next_step_at).is_(None), col(Incident.next_step_at) <= now),
            )
        ).all()
    )


def scrub_for_erasure(session: Session, resident_id: uuid.UUID, *, settings: Settings) -> int:
    """Consent withdrawn: incidents keep their ids, times and event types, nothing personal.

    Free text (location, notes, descriptions, who it was handed to), the photo a guard took
    (its files are deleted on commit), the phone numbers on outbox rows and note texts on the
    timeline go; a running response stops.
    """
    now = utcnow()
    rows = session.exec(select(Incident).where(Incident.resident_id == resident_id)).all()
    for incident in rows:
        if incident.status not in CLOSED:
            _stop(session, incident, now)
            incident.status = IncidentStatus.cancelled
            incident.closed_at = now
            timeline.record(session, incident, "cancelled", reason="consent withdrawn")
        incident.location = incident.note = incident.description = incident.handed_to = None
        incident.latitude = incident.longitude = None
        incident.updated_at = now
        session.add(incident)
        incident_photos.erase_photo(session, settings, incident, "consent withdrawn")
        for event in timeline.events_of(session, incident.id):
            if "text" in event.detail:
                event.detail = {k: v for k, v in event.detail.items() if k != "text"}
                session.add(event)
        session.exec(  # type: ignore[call-overload]
            update(OutboxMessage)
            .where(col(OutboxMessage.incident_id) == incident.id)
            .values(to_phone=None, updated_at=now)
        )
    return len(rows)
