"""Sites (compounds) and households (building + unit)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import Session, col, func, select

from welfare import hooks
from welfare.audit.service import record as audit_record
from welfare.authz import Actor, Permission, require, require_site, visible_site_ids
from welfare.errors import Conflict, InvalidInput, NotFound
from welfare.pagination import paginate
from welfare.phones import normalise_phone, valid_region
from welfare.sites.models import (
    Household,
    HouseholdCreate,
    HouseholdUpdate,
    Site,
    SiteCreate,
    SiteUpdate,
    check_office_hours,
)


def _site_name(raw: str) -> str:
    name = raw.strip()
    if not name:
        raise InvalidInput("name", "the site name must not be blank")
    return name


def create_site(*, session: Session, actor: Actor, data: SiteCreate) -> Site:
    require(actor, Permission.sites_manage)
    region = valid_region(data.phone_region)
    site = Site(
        name=_site_name(data.name),
        timezone=data.timezone,
        phone_region=region,
        office_phone=normalise_phone(data.office_phone, region, "office_phone")
        if data.office_phone
        else None,
        address=data.address,
        voice_number=normalise_phone(data.voice_number, region, "voice_number")
        if data.voice_number
        else None,
        office_opens=data.office_opens,
        office_closes=data.office_closes,
        require_second_factor_staff=data.require_second_factor_staff,
        require_second_factor_guards=data.require_second_factor_guards,
    )
    session.add(site)
    session.flush()
    audit_record(
        session,
        actor=actor,
        action="site.create",
        entity="site",
        entity_id=site.id,
        site_id=site.id,
    )
    return site


def get_site(*, session: Session, actor: Actor, site_id: uuid.UUID) -> Site:
    site = session.get(Site, site_id)
    if site is None or not (actor.can(Permission.sites_manage) or actor.in_site(site.id)):
        raise NotFound("site")
    return site


def list_sites(
    *, session: Session, actor: Actor, limit: int, offset: int
) -> tuple[list[Site], int]:
    query = select(Site)
    if not actor.can(Permission.sites_manage):
        query = query.where(col(Site.id).in_(actor.site_ids))
    return paginate(session, query, limit=limit, offset=offset, order_by=[col(Site.name)])


def sites_of(session: Session, actor: Actor) -> list[Site]:
    """The sites the actor belongs to (an admin's own, not every site), by name."""
    if not actor.site_ids:
        return []
    return list(
        session.exec(
            select(Site).where(col(Site.id).in_(actor.site_ids)).order_by(col(Site.name))
        ).all()
    )


def viewer_timezone(session: Session, actor: Actor) -> str | None:
    """The timezone a user reads times in: their site's (the first by name when several), or
    None (UTC) for a user with no site."""
    if not actor.site_ids:
        return None
    return session.exec(
        select(Site.timezone)
        .where(col(Site.id).in_(actor.site_ids))
        .order_by(col(Site.name))
        .limit(1)
    ).first()


def update_site(*, session: Session, actor: Actor, site_id: uuid.UUID, data: SiteUpdate) -> Site:
    require(actor, Permission.sites_manage)
    site = get_site(session=session, actor=actor, site_id=site_id)
    changes = data.model_dump(exclude_unset=True)
    if changes.get("phone_region"):
        site.phone_region = valid_region(changes["phone_region"])
    if changes.get("name") is not None:
        changes["name"] = _site_name(changes["name"])
    for name in ("name", "timezone", "address"):
        if name in changes and (changes[name] is not None or name == "address"):
            setattr(site, name, changes[name])
    for name in ("require_second_factor_staff", "require_second_factor_guards"):
        if changes.get(name) is not None:
            setattr(site, name, changes[name])
    for name in ("office_phone", "voice_number"):
        if name in changes:
            raw = changes[name]
            setattr(site, name, normalise_phone(raw, site.phone_region, name) if raw else None)
    if "office_opens" in changes or "office_closes" in changes:
        opens = changes.get("office_opens", site.office_opens)
        closes = changes.get("office_closes", site.office_closes)
        try:
            check_office_hours(opens, closes)
        except ValueError as exc:
            raise InvalidInput("office_opens", str(exc)) from exc
        site.office_opens, site.office_closes = opens, closes
    session.add(site)
    audit_record(
        session,
        actor=actor,
        action="site.update",
        entity="site",
        entity_id=site.id,
        site_id=site.id,
        detail={"fields": sorted(changes)},
    )
    return site


# --- households ---------------------------------------------------------------------------------


def _landline(raw: str | None, site: Site) -> str | None:
    return normalise_phone(raw, site.phone_region, "landline") if raw and raw.strip() else None


def _ensure_unit_free(
    session: Session, site_id: uuid.UUID, building: str, unit: str, except_id: uuid.UUID | None
) -> None:
    existing = session.exec(
        select(Household).where(
            Household.site_id == site_id, Household.building == building, Household.unit == unit
        )
    ).first()
    if existing and existing.id != except_id:
        raise Conflict(
            f"household {building}-{unit} already exists at this site", existing_id=str(existing.id)
        )


def create_household(*, session: Session, actor: Actor, data: HouseholdCreate) -> Household:
    site = session.get(Site, data.site_id)
    if site is None:
        raise InvalidInput(
            "site_id",
            "unknown site: give the id of one of your sites, as GET /api/v1/sites lists them",
        )
    require_site(actor, Permission.registry_write, site.id, "site")
    building, unit = data.building.strip(), data.unit.strip()
    if not building:
        raise InvalidInput("building", "type the building, e.g. 1 or Block A")
    if not unit:
        raise InvalidInput("unit", "type the unit, e.g. 1609")
    _ensure_unit_free(session, site.id, building, unit, None)
    household = Household(
        site_id=site.id,
        building=building,
        unit=unit,
        landline=_landline(data.landline, site),
        notes=data.notes,
    )
    session.add(household)
    session.flush()
    audit_record(
        session,
        actor=actor,
        action="household.create",
        entity="household",
        entity_id=household.id,
        site_id=site.id,
    )
    return household


def get_household(
    *,
    session: Session,
    actor: Actor,
    household_id: uuid.UUID,
    permission: Permission = Permission.registry_read,
) -> Household:
    household = session.get(Household, household_id)
    if household is None:
        raise NotFound("household")
    require_site(actor, permission, household.site_id, "household")
    return household


def find_household(
    *, session: Session, actor: Actor, site_id: uuid.UUID, building: str, unit: str
) -> Household | None:
    """The site's household at this building and unit as a person types them (spaces around
    and letter case do not matter), or None when there is none yet."""
    require_site(actor, Permission.registry_read, site_id, "site")
    return session.exec(
        select(Household).where(
            Household.site_id == site_id,
            func.lower(Household.building) == building.strip().lower(),
            func.lower(Household.unit) == unit.strip().lower(),
        )
    ).first()


def household_label() -> Any:
    """SQL for the unit label people type, such as '1-1609' (building-unit)."""
    return col(Household.building) + "-" + col(Household.unit)


def list_households(
    *,
    session: Session,
    actor: Actor,
    limit: int,
    offset: int,
    site_id: uuid.UUID | None = None,
    q: str | None = None,
) -> tuple[list[Household], int]:
    sites = visible_site_ids(actor, Permission.registry_read)
    query = select(Household)
    if sites is not None:
        query = query.where(col(Household.site_id).in_(sites))
    if site_id:
        query = query.where(Household.site_id == site_id)
    if q and q.strip():
        # The label '1-1609' covers building and unit; '%', '_' and '\\' match literally.
        query = query.where(household_label().icontains(q.strip(), autoescape=True))
    return paginate(
        session,
        query,
        limit=limit,
        offset=offset,
        order_by=[col(Household.building), col(Household.unit)],
    )


def update_household(
    *, session: Session, actor: Actor, household_id: uuid.UUID, data: HouseholdUpdate
) -> Household:
    household = get_household(
        session=session,
        actor=actor,
        household_id=household_id,
        permission=Permission.registry_write,
    )
    site = session.get(Site, household.site_id)
    assert site is not None
    changes = data.model_dump(exclude_unset=True)
    building = (changes.get("building") or household.building).strip()
    unit = (changes.get("unit") or household.unit).strip()
    if not building:
        raise InvalidInput("building", "type the building, e.g. 1 or Block A")
    if not unit:
        raise InvalidInput("unit", "type the unit, e.g. 1609")
    _ensure_unit_free(session, site.id, building, unit, household.id)
    household.building, household.unit = building, unit
    if "landline" in changes:
        household.landline = _landline(changes["landline"], site)
    if "notes" in changes:
        household.notes = changes["notes"]
    session.add(household)
    hooks.household_changed(session, household.id)  # lookup index: keep in step
    audit_record(
        session,
        actor=actor,
        action="household.update",
        entity="household",
        entity_id=household.id,
        site_id=site.id,
        detail={"fields": sorted(changes)},
    )
    return household
