"""What the manager's visit pages show beside the visits themselves: the sites a user may pick,
who a visit can be assigned to, the names that go with ids, the residents a schedule can be for,
a schedule's coming visits. Reads only (the services they sit beside audit what names people:
these give display names for rows the user already sees)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable

from sqlmodel import Session, col, select

from welfare.authz import Actor, Permission, Role, visible_site_ids
from welfare.residents.models import Resident
from welfare.sites.models import Site
from welfare.users.models import User, UserSite
from welfare.visits.models import CalendarToken, Visit, VisitSchedule

# Whom visits can be assigned to at a site.
ASSIGNABLE = (Role.staff, Role.manager, Role.admin)
SCHEDULE_RESIDENTS = 2000  # the schedule form's choice list


def visible_sites(session: Session, actor: Actor) -> list[Site]:
    """The sites whose registry the user may read, by name."""
    visible = visible_site_ids(actor, Permission.registry_read)
    query = select(Site).order_by(col(Site.name), col(Site.id))
    if visible is not None:
        query = query.where(col(Site.id).in_(list(visible)))
    return list(session.exec(query).all())


def site_assignees(session: Session, site_id: uuid.UUID) -> list[User]:
    """The site's active staff, managers and admins, by name."""
    return list(
        session.exec(
            select(User)
            .join(UserSite, col(UserSite.user_id) == User.id)
            .where(
                UserSite.site_id == site_id,
                col(User.role).in_(ASSIGNABLE),
                col(User.is_active),
            )
            .order_by(col(User.display_name), col(User.id))
        ).all()
    )


def resident_names(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Each resident's preferred name, else full name, else a dash (an erased record)."""
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = session.exec(
        select(Resident.id, Resident.preferred_name, Resident.full_name).where(
            col(Resident.id).in_(wanted)
        )
    ).all()
    return {rid: (preferred or full or "—") for rid, preferred, full in rows}


def user_names(session: Session, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    wanted = list({i for i in ids if i is not None})
    if not wanted:
        return {}
    rows = session.exec(select(User.id, User.display_name).where(col(User.id).in_(wanted))).all()
    return {user_id: name for user_id, name in rows}


def schedule_residents(session: Session, site_id: uuid.UUID) -> list[Resident]:
    """The residents a new schedule at the site can be for (not erased), by name."""
    return list(
        session.exec(
            select(Resident)
            .where(Resident.site_id == site_id, col(Resident.erased_at).is_(None))
            .order_by(col(Resident.preferred_name), col(Resident.full_name), col(Resident.id))
            .limit(SCHEDULE_RESIDENTS)
        ).all()
    )


def coming_visits(
    session: Session, schedule_id: uuid.UUID, now: dt.datetime, limit: int
) -> list[Visit]:
    """A schedule's next visits whose window has not ended."""
    return list(
        session.exec(
            select(Visit)
            .where(Visit.schedule_id == schedule_id, col(Visit.window_end) > now)
            .order_by(col(Visit.window_start))
            .limit(limit)
        ).all()
    )


def site_of(session: Session, site_id: uuid.UUID) -> Site | None:
    return session.get(Site, site_id)


def schedule_of(session: Session, visit: Visit) -> VisitSchedule | None:
    return session.get(VisitSchedule, visit.schedule_id)


def calendar_token(session: Session, user_id: uuid.UUID) -> CalendarToken | None:
    """The user's calendar feed, if one was issued (the token itself is kept only hashed)."""
    return session.get(CalendarToken, user_id)
