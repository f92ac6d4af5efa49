"""Residents, their emergency contacts and photos."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import delete, exists, literal, or_
from sqlmodel import Session, col, select

from welfare import hooks
from welfare.audit.service import audit_resident
from welfare.audit.service import record as audit_record
from welfare.authz import Actor, Permission, require_site, visible_site_ids
from welfare.consent.models import ConsentScope
from welfare.consent.scopes import has_scope
from welfare.db import json_array_elements, on_commit, utcnow
from welfare.errors import Conflict, InvalidInput, NotFound
from welfare.pagination import paginate
from welfare.phones import InvalidPhone, PhoneProblem, example_phone, line_type, normalise_phone
from welfare.residents.models import (
    Contact,
    ContactCreate,
    ContactTestLink,
    ContactUpdate,
    Resident,
    ResidentCreate,
    ResidentUpdate,
)
from welfare.residents.photos import PhotoStore, store_photo
from welfare.settings import Settings
from welfare.sites.models import Household, Site
from welfare.sites.service import get_household, household_label

# Fields whose reading is audited: anything beyond the name card.
SENSITIVE_FIELDS = (
    "care_needs",
    "medical_notes",
    "approach",
    "routines",
    "places",
    "wandering_history",
    "distinguishing_marks",
)


def _household_in_site(session: Session, actor: Actor, household_id: uuid.UUID) -> Household:
    household = session.get(Household, household_id)
    if household is None or not actor.in_site(household.site_id):
        raise InvalidInput(
            "household_id",
            "unknown household: give the id of a household at one of your sites,"
            " as GET /api/v1/households lists them",
        )
    return household


def _name_key(name: str) -> str:
    # Compared in Python: SQLite's lower() only folds ASCII ('ZOË' would not match 'Zoë').
    return " ".join(name.split()).casefold()


def find_duplicate(
    session: Session, household_id: uuid.UUID, full_name: str, except_id: uuid.UUID | None = None
) -> Resident | None:
    key = _name_key(full_name)
    query = select(Resident).where(Resident.household_id == household_id)
    for resident in session.exec(query).all():
        if resident.id != except_id and resident.full_name and _name_key(resident.full_name) == key:
            return resident
    return None


def _resident_phone(session: Session, site_id: uuid.UUID, raw: str) -> str:
    site = session.get(Site, site_id)
    assert site is not None
    return normalise_phone(raw, site.phone_region, "phone")


def create_resident(
    *, session: Session, actor: Actor, data: ResidentCreate, allow_duplicate: bool = False
) -> Resident:
    household = _household_in_site(session, actor, data.household_id)
    require_site(actor, Permission.registry_write, household.site_id, "household")
    if not allow_duplicate:
        duplicate = find_duplicate(session, household.id, data.full_name)
        if duplicate:
            raise Conflict(
                "a resident with this name is already registered at this household; "
                "pass allow_duplicate=true if this is a different person",
                existing_id=str(duplicate.id),
            )
    values = data.model_dump(mode="json")
    values.update(household_id=household.id, site_id=household.site_id)
    if data.phone:
        values["phone"] = _resident_phone(session, household.site_id, data.phone)
    if data.birth_date:
        values["birth_date"] = data.birth_date
    resident = Resident.model_validate(values)
    resident.birth_date = data.birth_date
    session.add(resident)
    session.flush()
    hooks.resident_changed(session, resident.id)  # lookup index: keep in step
    audit_resident(
        session,
        actor,
        "resident.create",
        resident,
        detail={"fields": sorted(data.model_fields_set)},
    )
    return resident


def load_resident(
    session: Session, actor: Actor, resident_id: uuid.UUID, permission: Permission
) -> Resident:
    """The resident if the actor holds `permission` at its site; 404 otherwise."""
    resident = session.get(Resident, resident_id)
    if resident is None:
        raise NotFound("resident")
    require_site(actor, permission, resident.site_id, "resident")
    return resident


def get_resident(
    *, session: Session, actor: Actor, resident_id: uuid.UUID, purpose: str | None = None
) -> Resident:
    """The full record (health data included), for staff. Every read is audited."""
    resident = load_resident(session, actor, resident_id, Permission.registry_read)
    audit_resident(
        session,
        actor,
        "resident.read",
        resident,
        purpose=purpose,
        detail={"fields": list(SENSITIVE_FIELDS)},
    )
    return resident


def _alias_contains(session: Session, term: str) -> Any:
    """True where one alias contains `term`; each element is searched on its own, so the JSON
    list's punctuation ('"', ',', '[') never matches."""
    elements = json_array_elements(session, col(Resident.aliases))
    return exists(
        select(literal(1))
        .select_from(elements)
        .where(elements.c.value.icontains(term, autoescape=True))
    )


def list_residents(
    *,
    session: Session,
    actor: Actor,
    limit: int,
    offset: int,
    q: str | None = None,
    site_id: uuid.UUID | None = None,
    household_id: uuid.UUID | None = None,
) -> tuple[list[Resident], int]:
    sites = visible_site_ids(actor, Permission.registry_read)
    query = select(Resident).where(col(Resident.erased_at).is_(None))
    if sites is not None:
        query = query.where(col(Resident.site_id).in_(sites))
    if site_id:
        query = query.where(Resident.site_id == site_id)
    if household_id:
        query = query.where(Resident.household_id == household_id)
    term = (q or "").replace("\x00", "").strip()
    if term:
        query = query.outerjoin(Household, col(Household.id) == Resident.household_id).where(
            or_(
                col(Resident.full_name).icontains(term, autoescape=True),
                col(Resident.preferred_name).icontains(term, autoescape=True),
                _alias_contains(session, term),
                household_label().icontains(term, autoescape=True),
            )
        )
    rows, total = paginate(
        session,
        query,
        limit=limit,
        offset=offset,
        order_by=[col(Resident.full_name), col(Resident.id)],
    )
    audit_record(
        session,
        actor=actor,
        action="resident.list",
        entity="resident",
        site_id=site_id,
        detail={"returned": [str(r.id) for r in rows], "searched": bool(term)},
    )
    return rows, total


def update_resident(
    *, session: Session, actor: Actor, resident_id: uuid.UUID, data: ResidentUpdate
) -> Resident:
    resident = load_resident(session, actor, resident_id, Permission.registry_write)
    if resident.erased_at is not None:
        raise Conflict("this record was erased after consent was withdrawn")
    changes = data.model_dump(exclude_unset=True, mode="json")
    if "household_id" in changes:
        if data.household_id is None:
            raise InvalidInput("household_id", "a resident must belong to a household")
        household = _household_in_site(session, actor, data.household_id)
        require_site(actor, Permission.registry_write, household.site_id, "household")
        if household.site_id != resident.site_id:
            # Consent, contacts' phone region and escalation policy all belong to the site.
            raise InvalidInput(
                "household_id",
                "a resident cannot move to another site's household; register them there",
            )
        resident.household_id = household.id
    if "full_name" in changes and not data.full_name:
        raise InvalidInput("full_name", "the full name cannot be blank: type it, e.g. Wang Jianguo")
    for name, value in changes.items():
        if name == "household_id":
            continue
        if name == "birth_date":
            value = data.birth_date
        if value is None and name in ("aliases", "languages", "places", "wandering_history"):
            value = []
        if value is None and name in ("sex", "risk_level"):
            raise InvalidInput(name, "cannot be emptied: leave the field out to keep its value")
        if name == "phone" and value:
            value = _resident_phone(session, resident.site_id, value)
        setattr(resident, name, value)
    if (
        resident.birth_year
        and resident.birth_date
        and resident.birth_date.year != resident.birth_year
    ):
        raise InvalidInput(
            "birth_date",
            "birth_year and birth_date disagree: give the year of the date, or only one of them",
        )
    if resident.birth_date and resident.birth_date > dt.date.today():
        raise InvalidInput(
            "birth_date", "birth_date is in the future: give a past date like 1940-05-01"
        )
    if (
        resident.full_name
        and resident.household_id
        and ("full_name" in changes or "household_id" in changes)
    ):
        duplicate = find_duplicate(session, resident.household_id, resident.full_name, resident.id)
        if duplicate:
            raise Conflict(
                "another resident with this name is registered at this household",
                existing_id=str(duplicate.id),
            )
    resident.updated_at = utcnow()
    session.add(resident)
    hooks.resident_changed(session, resident.id)  # lookup index: keep in step
    audit_resident(
        session,
        actor,
        "resident.update",
        resident,
        detail={"fields": sorted(changes)},
    )
    return resident


def unit_label(session: Session, resident: Resident) -> str | None:
    if resident.household_id is None:
        return None
    household = session.get(Household, resident.household_id)
    return household.unit_label if household else None


# --- photos -------------------------------------------------------------------------------------


def set_photo(
    *,
    session: Session,
    actor: Actor,
    settings: Settings,
    resident_id: uuid.UUID,
    data: bytes,
    illustration: bool = False,
) -> Resident:
    """Store the resident's photo; `illustration` marks a drawn portrait (the demo's), which
    the pages call an illustration."""
    resident = load_resident(session, actor, resident_id, Permission.registry_write)
    if resident.erased_at is not None:
        raise Conflict("this record was erased after consent was withdrawn")
    if not has_scope(session, resident.id, ConsentScope.photo):
        raise Conflict("record a consent with the photo scope before storing a photo")
    processed = store_photo(session, settings, resident, data)
    resident.photo_updated_at = resident.updated_at = utcnow()
    resident.photo_illustration = illustration
    session.add(resident)
    audit_resident(
        session,
        actor,
        "resident.photo_set",
        resident,
        detail={"width": processed.width, "height": processed.height},
    )
    return resident


def read_photo(
    *,
    session: Session,
    actor: Actor,
    settings: Settings,
    resident_id: uuid.UUID,
    thumbnail: bool = False,
    purpose: str | None = None,
) -> bytes:
    resident = load_resident(session, actor, resident_id, Permission.registry_read)
    name = resident.thumbnail_file if thumbnail else resident.photo_file
    # Withdrawing the photo scope deletes the files; this guards any window before that.
    if not name or not has_scope(session, resident.id, ConsentScope.photo):
        raise NotFound("photo")
    try:
        data = PhotoStore(settings.media_dir).read(name)
    except FileNotFoundError as exc:
        raise NotFound("photo") from exc
    audit_resident(
        session,
        actor,
        "resident.photo_read",
        resident,
        purpose=purpose,
        detail={"thumbnail": thumbnail},
    )
    return data


def delete_photo(
    *, session: Session, actor: Actor, settings: Settings, resident_id: uuid.UUID
) -> None:
    resident = load_resident(session, actor, resident_id, Permission.registry_write)
    if not resident.photo_file:
        raise NotFound("photo")
    store = PhotoStore(settings.media_dir)
    old = (resident.photo_file, resident.thumbnail_file)
    on_commit(session, lambda: [store.delete(name) for name in old])
    resident.photo_file = resident.thumbnail_file = resident.photo_updated_at = None
    resident.photo_illustration = None
    resident.updated_at = utcnow()
    session.add(resident)
    audit_resident(
        session,
        actor,
        "resident.photo_delete",
        resident,
    )


# --- contacts -----------------------------------------------------------------------------------


def _contacts(session: Session, resident_id: uuid.UUID) -> list[Contact]:
    return list(
        session.exec(
            select(Contact)
            .where(Contact.resident_id == resident_id)
            .order_by(col(Contact.priority), col(Contact.created_at))
        ).all()
    )


def _renumber(session: Session, ordered: list[Contact]) -> None:
    for position, contact in enumerate(ordered, start=1):
        if contact.priority != position:
            contact.priority = position
            session.add(contact)


def _phones(session: Session, resident: Resident, values: dict[str, Any]) -> dict[str, Any]:
    site = session.get(Site, resident.site_id)
    assert site is not None
    out: dict[str, Any] = {}
    if "phone" in values:
        if not values["phone"]:
            example = example_phone(site.phone_region)
            raise InvalidPhone(
                "phone",
                PhoneProblem.missing,
                f"a contact needs a phone number: type one such as {example}",
                example,
            )
        out["phone"] = normalise_phone(values["phone"], site.phone_region, "phone")
        out["phone_line_type"] = line_type(out["phone"]).value
    if "secondary_phone" in values:
        raw = values["secondary_phone"]
        out["secondary_phone"] = (
            normalise_phone(raw, site.phone_region, "secondary_phone") if raw else None
        )
    return out


def list_contacts(*, session: Session, actor: Actor, resident_id: uuid.UUID) -> list[Contact]:
    resident = load_resident(session, actor, resident_id, Permission.registry_read)
    contacts = _contacts(session, resident.id)
    audit_resident(
        session,
        actor,
        "contact.list",
        resident,
        detail={"contacts": [str(c.id) for c in contacts]},
    )
    return contacts


def create_contact(
    *, session: Session, actor: Actor, resident_id: uuid.UUID, data: ContactCreate
) -> Contact:
    resident = load_resident(session, actor, resident_id, Permission.registry_write)
    if resident.erased_at is not None:
        raise Conflict("this record was erased after consent was withdrawn")
    values = data.model_dump(mode="json", exclude={"priority"})
    values.update(_phones(session, resident, values))
    for name in ("quiet_hours_start", "quiet_hours_end"):
        values[name] = getattr(data, name)
    existing = _contacts(session, resident.id)
    contact = Contact.model_validate(
        {**values, "resident_id": resident.id, "priority": len(existing) + 1}
    )
    contact.quiet_hours_start, contact.quiet_hours_end = (
        data.quiet_hours_start,
        data.quiet_hours_end,
    )
    session.add(contact)
    position = min(data.priority or len(existing) + 1, len(existing) + 1)
    _renumber(session, [*existing[: position - 1], contact, *existing[position - 1 :]])
    session.flush()
    audit_resident(
        session,
        actor,
        "contact.create",
        resident,
        entity="contact",
        entity_id=contact.id,
    )
    return contact


def _load_contact(
    session: Session,
    actor: Actor,
    resident_id: uuid.UUID,
    contact_id: uuid.UUID,
    permission: Permission,
) -> tuple[Resident, Contact]:
    resident = load_resident(session, actor, resident_id, permission)
    contact = session.get(Contact, contact_id)
    if contact is None or contact.resident_id != resident.id:
        raise NotFound("contact")
    return resident, contact


def get_contact(
    *, session: Session, actor: Actor, resident_id: uuid.UUID, contact_id: uuid.UUID
) -> Contact:
    resident, contact = _load_contact(
        session, actor, resident_id, contact_id, Permission.registry_read
    )
    audit_resident(
        session,
        actor,
        "contact.read",
        resident,
        entity="contact",
        entity_id=contact.id,
    )
    return contact


def update_contact(
    *,
    session: Session,
    actor: Actor,
    resident_id: uuid.UUID,
    contact_id: uuid.UUID,
    data: ContactUpdate,
) -> Contact:
    resident, contact = _load_contact(
        session, actor, resident_id, contact_id, Permission.registry_write
    )
    changes = data.model_dump(exclude_unset=True, mode="json")
    changes.update(_phones(session, resident, changes))
    for name in ("quiet_hours_start", "quiet_hours_end"):
        if name in changes:
            changes[name] = getattr(data, name)
    start = changes.get("quiet_hours_start", contact.quiet_hours_start)
    end = changes.get("quiet_hours_end", contact.quiet_hours_end)
    if (start is None) != (end is None) or (start is not None and start == end):
        raise InvalidInput(
            "quiet_hours_start", "quiet hours need a distinct start and end, such as 22:00 to 07:00"
        )
    # A new number is unverified: what a test proved was about the old one.
    new_number = "phone" in changes and changes["phone"] != contact.phone
    if new_number:
        _forget_verification(session, contact)
    for name, value in changes.items():
        if name == "priority":
            continue
        if value is None and name not in (
            "secondary_phone",
            "quiet_hours_start",
            "quiet_hours_end",
        ):
            raise InvalidInput(name, "cannot be emptied: leave the field out to keep its value")
        setattr(contact, name, value)
    contact.updated_at = utcnow()
    session.add(contact)
    if changes.get("priority"):
        others = [c for c in _contacts(session, resident.id) if c.id != contact.id]
        position = min(changes["priority"], len(others) + 1)
        _renumber(session, [*others[: position - 1], contact, *others[position - 1 :]])
    audit_resident(
        session,
        actor,
        "contact.update",
        resident,
        entity="contact",
        entity_id=contact.id,
        detail={"fields": sorted(changes)} | ({"verification_cleared": True} if new_number else {}),
    )
    return contact


def _forget_verification(session: Session, contact: Contact) -> None:
    """The contact's number changes: not verified any more, and the test links sent to the old
    number die (a tap on one must not verify the new number)."""
    contact.verified_at = contact.verified_via = None
    for link in session.exec(
        select(ContactTestLink).where(ContactTestLink.contact_id == contact.id)
    ).all():
        session.delete(link)


def delete_contact(
    *, session: Session, actor: Actor, resident_id: uuid.UUID, contact_id: uuid.UUID
) -> None:
    resident, contact = _load_contact(
        session, actor, resident_id, contact_id, Permission.registry_write
    )
    session.delete(contact)
    session.flush()
    _renumber(session, _contacts(session, resident.id))
    audit_resident(
        session,
        actor,
        "contact.delete",
        resident,
        entity="contact",
        entity_id=contact.id,
    )


# --- households ---------------------------------------------------------------------------------


def delete_household(*, session: Session, actor: Actor, household_id: uuid.UUID) -> None:
    """A household goes only while no resident is registered there (a rule about residents,
    so it lives with them rather than in the sites service)."""
    household = get_household(
        session=session,
        actor=actor,
        household_id=household_id,
        permission=Permission.registry_write,
    )
    occupied = session.exec(
        select(Resident.id).where(Resident.household_id == household.id).limit(1)
    ).first()
    if occupied:
        raise Conflict("the household still has registered residents; move them first")
    session.delete(household)
    audit_record(
        session,
        actor=actor,
        action="household.delete",
        entity="household",
        entity_id=household.id,
        site_id=household.site_id,
    )


# --- erasure (the flow is welfare/erasure.py) ---------------------------------------------------


def erase_photo(session: Session, settings: Settings, resident: Resident) -> None:
    """The photo consent went: the photo and its thumbnail are deleted (the files on commit)."""
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


def scrub_for_erasure(session: Session, settings: Settings, resident: Resident) -> None:
    """The registry consent went: personal fields, the photo and the contacts (with their
    numbers) are deleted, not hidden. A tombstone (id, site, dates) remains."""
    erase_photo(session, settings, resident)
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
    session.exec(delete(Contact).where(col(Contact.resident_id) == resident.id))
