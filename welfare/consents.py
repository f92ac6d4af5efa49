"""Consent records: recording, listing and withdrawing a resident's consents, and the state
they add up to.

A flow beside the folders: it loads the resident (welfare/residents/), writes the consent
records (welfare/consent/, which the residents build on), keeps the lookup index in step and, on
withdrawal, applies the erasure plan (welfare/erasure.py)."""

from __future__ import annotations

import datetime as dt
import uuid

from dateutil.relativedelta import relativedelta
from sqlmodel import Session

from welfare import erasure, hooks
from welfare.audit.service import audit_resident
from welfare.authz import Actor, Permission
from welfare.consent.models import DEFAULT_REVIEW_MONTHS, Consent, ConsentCreate, ConsentState
from welfare.consent.scopes import consents_of, derive_state
from welfare.db import utcnow
from welfare.errors import Conflict, InvalidInput, NotFound
from welfare.residents.models import Resident
from welfare.residents.service import load_resident
from welfare.settings import Settings


def state_of(session: Session, resident: Resident) -> ConsentState:
    if resident.erased_at is not None:
        return ConsentState.withdrawn
    return derive_state(consents_of(session, resident.id), utcnow())


def record_consent(
    *, session: Session, actor: Actor, resident_id: uuid.UUID, data: ConsentCreate
) -> Consent:
    resident = load_resident(session, actor, resident_id, Permission.registry_write)
    if resident.erased_at is not None:
        raise Conflict("this record was erased after consent was withdrawn; register anew")
    now = utcnow()
    given_at = (data.given_at or now).astimezone(dt.UTC)
    if given_at > now + dt.timedelta(minutes=5):
        raise InvalidInput("given_at", "consent cannot be given in the future")
    review_due = data.review_due or given_at + relativedelta(months=DEFAULT_REVIEW_MONTHS)
    review_due = review_due.astimezone(dt.UTC)
    if review_due <= given_at:
        raise InvalidInput("review_due", "the review must fall after the consent was given")
    if data.given_by_kind != "resident" and not data.given_by_relationship:
        raise InvalidInput("given_by_relationship", "say how a guardian or attorney is related")
    consent = Consent(
        resident_id=resident.id,
        given_by_kind=data.given_by_kind,
        given_by_name=data.given_by_name.strip(),
        given_by_relationship=data.given_by_relationship,
        evidence=data.evidence,
        method=data.method,
        scopes=[s.value for s in data.scopes],
        recorded_by=actor.user_id,
        given_at=given_at,
        review_due=review_due,
    )
    session.add(consent)
    session.flush()
    hooks.resident_changed(session, resident.id)  # lookup index: keep in step
    audit_resident(
        session,
        actor,
        "consent.record",
        resident,
        entity="consent",
        entity_id=consent.id,
        detail={"scopes": consent.scopes},
    )
    return consent


def list_consents(*, session: Session, actor: Actor, resident_id: uuid.UUID) -> list[Consent]:
    resident = load_resident(session, actor, resident_id, Permission.registry_read)
    consents = consents_of(session, resident.id)
    audit_resident(
        session,
        actor,
        "consent.list",
        resident,
    )
    return consents


def withdraw_consent(
    *,
    session: Session,
    actor: Actor,
    settings: Settings,
    resident_id: uuid.UUID,
    consent_id: uuid.UUID,
    reason: str | None = None,
) -> Consent:
    """Withdraw one consent. Whatever the remaining consents no longer cover is erased: the
    plan `welfare.erasure.erasure_plan` shows (the photo without the photo scope, the whole
    record without the registry scope), applied exactly."""
    resident = load_resident(session, actor, resident_id, Permission.registry_write)
    consent = session.get(Consent, consent_id)
    if consent is None or consent.resident_id != resident.id:
        raise NotFound("consent")
    if consent.withdrawn_at is not None:
        raise Conflict("this consent is already withdrawn")
    plan = erasure.plan_for(session, resident, consent)  # what the withdrawal page showed
    consent.withdrawn_at = utcnow()
    consent.withdrawn_by = actor.user_id
    consent.withdrawal_reason = reason
    # The consenter's own details go too: only the bones of the record remain.
    consent.given_by_name = consent.given_by_relationship = consent.evidence = None
    session.add(consent)
    session.flush()
    erasure.apply(session, settings, resident, plan)
    hooks.resident_changed(session, resident.id)  # lookup index: keep in step
    audit_resident(
        session,
        actor,
        "consent.withdraw",
        resident,
        entity="consent",
        entity_id=consent.id,
        detail={"erased": plan.erased},
    )
    return consent
