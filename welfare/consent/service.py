"""Consent records, the state derived from them, and erasure when consent is withdrawn."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import uuid

from dateutil.relativedelta import relativedelta
from sqlalchemy import delete
from sqlmodel import Session, col

from welfare.audit.service import audit_resident
from welfare.authz import Actor, Permission
from welfare.consent.models import DEFAULT_REVIEW_MONTHS, Consent, ConsentCreate, ConsentScope
from welfare.consent.scopes import consents_of, derive_state, has_scope, live_scopes  # noqa: F401 (re-exported)
from welfare.db import SQLITE_BUSY_TIMEOUT_MS, on_commit, utcnow
from welfare.errors import Conflict, InvalidInput, NotFound
from welfare.incidents import photos as incident_photos
from welfare.incidents.service import scrub_for_erasure
from welfare.lookup import index as lookup_index
from welfare.residents.models import ConsentState, Contact, Resident
from welfare.residents.photos import PhotoStore
from welfare.residents.service import load_resident
from welfare.settings import Settings
from welfare.tags.models import ResidentTag
from welfare.visits.service import scrub_for_erasure as scrub_visits_for_erasure

log = logging.getLogger("welfare.consent")


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
    lookup_index.refresh_resident(session, resident.id)  # lookup index: keep in step
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
    photo without the photo scope, the whole record without the registry scope."""
    resident = load_resident(session, actor, resident_id, Permission.registry_write)
    consent = session.get(Consent, consent_id)
    if consent is None or consent.resident_id != resident.id:
        raise NotFound("consent")
    if consent.withdrawn_at is not None:
        raise Conflict("this consent is already withdrawn")
    consent.withdrawn_at = utcnow()
    consent.withdrawn_by = actor.user_id
    consent.withdrawal_reason = reason
    # The consenter's own details go too: only the bones of the record remain.
    consent.given_by_name = consent.given_by_relationship = consent.evidence = None
    session.add(consent)
    session.flush()
    remaining = live_scopes(consents_of(session, resident.id))
    erased: list[str] = []
    if ConsentScope.registry not in remaining:
        erase_resident(session=session, settings=settings, resident=resident)
        erased.append("record")
    elif ConsentScope.photo not in remaining and resident.photo_file:
        _erase_photo(session, settings, resident)
        erased.append("photo")
    # Photos guards took of the resident on incidents go with the photo consent too (with the
    # registry scope they already went, in `scrub_for_erasure`).
    photo_withdrawn = ConsentScope.photo in consent.scopes and ConsentScope.photo not in remaining
    if (
        photo_withdrawn
        and ConsentScope.registry in remaining
        and incident_photos.erase_for_resident(session, settings, resident.id, "consent withdrawn")
    ):
        erased.append("incident photos")
    lookup_index.refresh_resident(session, resident.id)  # lookup index: keep in step
    audit_resident(
        session,
        actor,
        "consent.withdraw",
        resident,
        entity="consent",
        entity_id=consent.id,
        detail={"erased": erased},
    )
    return consent


def _erase_photo(session: Session, settings: Settings, resident: Resident) -> None:
    store = PhotoStore(settings.media_dir)
    names = (resident.photo_file, resident.thumbnail_file)
    on_commit(session, lambda: [store.delete(n) for n in names])
    resident.photo_file = resident.thumbnail_file = resident.photo_updated_at = None
    resident.photo_illustration = None
    session.add(resident)


PERSONAL_FIELDS = (
    "full_name",
    "phone",
    "preferred_name",
    "birth_year",
    "birth_date",
    "height_cm",
    "build",
    "hair",
    "eyes",
    "distinguishing_marks",
    "clothing",
    "walking_aid",
    "care_needs",
    "medical_notes",
    "approach",
    "routines",
    "public_care_tips",
)


def erase_resident(*, session: Session, settings: Settings, resident: Resident) -> None:
    """Delete, not hide: personal fields, contacts, photo files and every other consent's
    consenter details. A tombstone (id, site, dates) remains so past incidents still resolve."""
    _erase_photo(session, settings, resident)
    for name in PERSONAL_FIELDS:
        setattr(resident, name, None)
    resident.aliases, resident.languages, resident.places, resident.wandering_history = (
        [],
        [],
        [],
        [],
    )
    resident.household_id = None
    resident.erased_at = resident.updated_at = utcnow()
    session.add(resident)
    lookup_index.remove_resident(session, resident.id, purge=True)  # lookup index: keep in step
    session.exec(delete(Contact).where(col(Contact.resident_id) == resident.id))
    # Printed labels stop resolving: a scan of an erased resident's tag finds nothing.
    session.exec(delete(ResidentTag).where(col(ResidentTag.resident_id) == resident.id))  # type: ignore[call-overload]
    scrub_for_erasure(session, resident.id, settings=settings)
    scrub_visits_for_erasure(session, resident.id)
    for other in consents_of(session, resident.id):
        other.given_by_name = other.given_by_relationship = other.evidence = None
        if other.withdrawn_at is None:
            other.withdrawn_at = resident.erased_at
        session.add(other)
    if session.get_bind().dialect.name == "sqlite":
        on_commit(session, lambda: _flush_sqlite_wal(session))


def _flush_sqlite_wal(session: Session) -> None:
    """Copy the WAL into the (secure-delete) main file and truncate it, so no old page image
    holding the erased data stays readable in the -wal file."""
    path = session.get_bind().url.database  # type: ignore[union-attr]
    if not path or path == ":memory:":
        return
    connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            log.warning("WAL checkpoint after erasure was blocked by a reader; it runs later")
    finally:
        connection.close()
