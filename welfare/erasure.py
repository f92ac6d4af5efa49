"""Erasure when consent is withdrawn: one plan of what goes, shown before and applied after.

A flow beside the folders (it may import any of them, none imports it but the consent flows in
welfare/consents.py): `erasure_plan` says what withdrawing a consent erases, the withdrawal
page shows it, and `withdraw` in welfare/consents.py applies exactly that plan through each
domain's own scrub function (residents, tags, lookup, incidents, visits).

Whatever the remaining consents no longer cover is erased: the photo without the photo scope
(with the photos guards took of the resident on incidents), the whole record without the
registry scope.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from dataclasses import dataclass
from typing import Literal

from sqlmodel import Session, col, func, select
from sqlmodel.sql.expression import SelectOfScalar

from welfare.authz import Actor, Permission
from welfare.consent.models import Consent, ConsentScope
from welfare.consent.scopes import consents_of, live_scopes
from welfare.db import SQLITE_BUSY_TIMEOUT_MS, on_commit
from welfare.errors import NotFound
from welfare.incidents import photos as incident_photos
from welfare.incidents import service as incidents
from welfare.incidents.models import CLOSED, Incident
from welfare.lookup import index as lookup_index
from welfare.residents import service as residents
from welfare.residents.models import Contact, Resident
from welfare.settings import Settings
from welfare.tags import service as tags
from welfare.visits import service as visits

log = logging.getLogger("welfare.consent")


@dataclass(frozen=True)
class ErasurePlan:
    """What withdrawing one consent erases (the figures are those of now, before it)."""

    lost: list[ConsentScope]  # scopes no remaining consent covers, sorted
    record: bool  # no registry scope left: the whole record goes
    photo: bool  # the registry stays, the photo scope does not: the resident's photo goes
    incident_photos: int  # incidents whose guard's photo of the resident goes
    contacts: int  # contacts deleted with the record (0 unless `record`)
    tag: bool  # a live printed tag that stops resolving (False unless `record`)
    incidents_open: int  # running incidents cancelled (0 unless `record`)

    @property
    def erases(self) -> Literal["record", "photo", "nothing"]:
        """The one word the withdrawal page leads with."""
        if self.record:
            return "record"
        return "photo" if self.photo or self.incident_photos else "nothing"

    @property
    def erased(self) -> list[str]:
        """What the audit entry of the withdrawal lists."""
        if self.record:
            return ["record"]
        return [
            *(["photo"] if self.photo else []),
            *(["incident photos"] if self.incident_photos else []),
        ]


def erasure_plan(
    *, session: Session, actor: Actor, resident_id: uuid.UUID, consent_id: uuid.UUID
) -> ErasurePlan:
    """What withdrawing this consent of this resident would erase (the withdrawal page)."""
    resident = residents.load_resident(session, actor, resident_id, Permission.registry_read)
    consent = session.get(Consent, consent_id)
    if consent is None or consent.resident_id != resident.id:
        raise NotFound("consent")
    return plan_for(session, resident, consent)


def plan_for(session: Session, resident: Resident, consent: Consent) -> ErasurePlan:
    """The plan for a resident and consent already loaded (and checked) by the caller."""
    remaining = live_scopes(c for c in consents_of(session, resident.id) if c.id != consent.id)
    lost = sorted(live_scopes([consent]) - remaining)
    record = ConsentScope.registry not in remaining
    photo = not record and ConsentScope.photo not in remaining and bool(resident.photo_file)
    photos_go = record or ConsentScope.photo in lost
    return ErasurePlan(
        lost=lost,
        record=record,
        photo=photo,
        incident_photos=_count(
            session,
            select(func.count()).where(
                Incident.resident_id == resident.id, col(Incident.photo_file).is_not(None)
            ),
        )
        if photos_go
        else 0,
        contacts=_count(
            session, select(func.count()).where(col(Contact.resident_id) == resident.id)
        )
        if record
        else 0,
        tag=record and tags.live_tag(session, resident.id) is not None,
        incidents_open=_count(
            session,
            select(func.count()).where(
                Incident.resident_id == resident.id, col(Incident.status).not_in(CLOSED)
            ),
        )
        if record
        else 0,
    )


def _count(session: Session, query: SelectOfScalar[int]) -> int:
    return session.exec(query).one()


def apply(session: Session, settings: Settings, resident: Resident, plan: ErasurePlan) -> None:
    """Erase what the plan says (the consent itself is already marked withdrawn)."""
    if plan.record:
        erase_resident(session=session, settings=settings, resident=resident)
        return
    if plan.photo:
        residents.erase_photo(session, settings, resident)
    if plan.incident_photos:
        incident_photos.erase_for_resident(session, settings, resident.id, "consent withdrawn")


def erase_resident(*, session: Session, settings: Settings, resident: Resident) -> None:
    """Delete, not hide: personal fields, contacts, photo files and every other consent's
    consenter details. A tombstone (id, site, dates) remains so past incidents still resolve."""
    residents.scrub_for_erasure(session, settings, resident)
    lookup_index.remove_resident(session, resident.id, purge=True)  # lookup index: keep in step
    tags.scrub_for_erasure(session, resident.id)
    incidents.scrub_for_erasure(session, resident.id, settings=settings)
    visits.scrub_for_erasure(session, resident.id)
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
