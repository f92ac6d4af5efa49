"""The photo on an incident: one picture the guard took of the person found.

Checked and re-encoded like a resident's photo (`welfare.residents.photos`: content sniffing,
size and pixel limits, no EXIF or GPS, a thumbnail) and stored under random names. It is
personal data, so:

- who may add or replace it: the guard who reported the incident (or whose repeated report was
  folded into it, or who claimed it) and staff of the site, while the incident is open;
- who may see it: staff of the site, and those guards while the incident is open; every read is
  audited with the incident as its purpose;
- how long it is kept: until `incident_photo_retention_days` (default 30) after the incident
  closes, when the worker's housekeeping deletes the files (`expire_photos`), or at once when
  the resident withdraws consent: the registry scope (`scrub_for_erasure`) or the photo scope
  (`erase_for_resident`). The rule is the same
  for a registered resident and an unknown person: an unknown person never consented at all,
  so the photo lives only as long as the response needs it.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlmodel import Session, col, select

from welfare.audit.service import record as audit_record
from welfare.authz import Actor, Permission
from welfare.db import on_commit, utcnow
from welfare.errors import Conflict, NotFound, PermissionDenied
from welfare.incidents import timeline
from welfare.incidents.models import CLOSED, Incident, IncidentEvent
from welfare.incidents.responders import is_responder, load_for_guard
from welfare.residents.photos import PhotoStore, store_photo
from welfare.settings import Settings


def photo_url(incident: Incident) -> str | None:
    return f"/api/v1/incidents/{incident.id}/photo" if incident.photo_file else None


def is_guard_on_it(session: Session, actor: Actor, incident: Incident) -> bool:
    """Reported it, claimed it, or reported the same person again (folded into this one)."""
    if is_responder(session, actor, incident):
        return True
    if actor.user_id is None:
        return False
    repeated = session.exec(
        select(IncidentEvent.id).where(
            IncidentEvent.incident_id == incident.id,
            IncidentEvent.type == "report_repeated",
            IncidentEvent.actor_id == actor.user_id,
        )
    ).first()
    return repeated is not None


def may_see_photo(session: Session, actor: Actor, incident: Incident) -> bool:
    """Staff of the site always (until the photo is deleted); the guards on it while open."""
    if not actor.in_site(incident.site_id):
        return False
    if actor.can(Permission.registry_read):
        return True
    return incident.status not in CLOSED and is_guard_on_it(session, actor, incident)


def _audit(
    session: Session, actor: Actor, action: str, incident: Incident, **detail: object
) -> None:
    audit_record(
        session,
        actor=actor,
        action=action,
        entity="incident",
        entity_id=incident.id,
        resident_id=incident.resident_id,
        site_id=incident.site_id,
        purpose=f"incident {incident.id}",
        detail=dict(detail) or None,
    )


def set_photo(
    *, session: Session, actor: Actor, settings: Settings, incident_id: uuid.UUID, data: bytes
) -> Incident:
    """Store (or replace) the incident's photo. Nothing is written before the image passes."""
    incident = load_for_guard(session, actor, incident_id)
    if not (actor.can(Permission.registry_write) or is_guard_on_it(session, actor, incident)):
        raise PermissionDenied("only the guard who reported this incident or staff may add a photo")
    if incident.status in CLOSED:
        raise Conflict(f"the incident is already {incident.status.value}")
    replaced = incident.photo_file is not None
    processed = store_photo(session, settings, incident, data)
    incident.photo_added_at = incident.updated_at = utcnow()
    session.add(incident)
    timeline.record(
        session,
        incident,
        "photo_added",
        actor=actor,
        replaced=replaced,
        width=processed.width,
        height=processed.height,
    )
    _audit(
        session,
        actor,
        "incident.photo_set",
        incident,
        width=processed.width,
        height=processed.height,
    )
    return incident


def read_photo(
    *,
    session: Session,
    actor: Actor,
    settings: Settings,
    incident_id: uuid.UUID,
    thumbnail: bool = False,
) -> bytes:
    incident = load_for_guard(session, actor, incident_id)
    if not may_see_photo(session, actor, incident):
        raise PermissionDenied(
            "only staff, and the guard who reported or claimed the open incident, may see this"
        )
    name = incident.thumbnail_file if thumbnail else incident.photo_file
    if not name:
        raise NotFound("photo")
    try:
        data = PhotoStore(settings.media_dir).read(name)
    except FileNotFoundError as exc:
        raise NotFound("photo") from exc
    _audit(session, actor, "incident.photo_read", incident, thumbnail=thumbnail)
    return data


def erase_photo(session: Session, settings: Settings, incident: Incident, reason: str) -> bool:
    """Forget the photo; its files are deleted once the transaction commits. False if none."""
    if not (incident.photo_file or incident.thumbnail_file):
        return False
    store = PhotoStore(settings.media_dir)
    names = (incident.photo_file, incident.thumbnail_file)
    on_commit(session, lambda: [store.delete(name) for name in names])
    incident.photo_file = incident.thumbnail_file = incident.photo_added_at = None
    incident.updated_at = utcnow()
    session.add(incident)
    timeline.record(session, incident, "photo_deleted", reason=reason)
    return True


def erase_for_resident(
    session: Session, settings: Settings, resident_id: uuid.UUID, reason: str
) -> int:
    """The resident withdrew the photo scope: the photos guards took of them go too."""
    rows = session.exec(
        select(Incident).where(
            Incident.resident_id == resident_id, col(Incident.photo_file).is_not(None)
        )
    ).all()
    return sum(erase_photo(session, settings, incident, reason) for incident in rows)


def expire_photos(
    session: Session, settings: Settings, now: dt.datetime | None = None, limit: int = 500
) -> int:
    """Housekeeping: delete the photos of incidents closed longer than the retention period."""
    now = now or utcnow()
    cutoff = now - dt.timedelta(days=settings.incident_photo_retention_days)
    rows = session.exec(
        select(Incident)
        .where(
            col(Incident.photo_file).is_not(None),
            col(Incident.status).in_(CLOSED),
            col(Incident.closed_at) <= cutoff,
        )
        .order_by(col(Incident.closed_at))
        .limit(limit)
    ).all()
    for incident in rows:
        erase_photo(session, settings, incident, "retention")
        _audit(
            session,
            Actor.system(),
            "incident.photo_delete",
            incident,
            reason="retention",
        )
    return len(rows)
