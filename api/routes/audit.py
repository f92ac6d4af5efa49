from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from sqlmodel import col, select

from api.deps import ActorDep, PageDep, SessionDep, TransactionRoute
from api.schemas import ListResponse
from welfare.audit.models import AuditPublic
from welfare.audit.service import list_entries
from welfare.times import Instant
from welfare.users.models import User

router = APIRouter(route_class=TransactionRoute, prefix="/api/v1/audit", tags=["audit"])


class AuditRow(AuditPublic):
    actor_username: str | None


@router.get("", response_model=ListResponse[AuditRow])
def read_audit(
    session: SessionDep,
    actor: ActorDep,
    page: PageDep,
    resident_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    since: Instant | None = None,
    until: Instant | None = None,
    action: Annotated[
        str | None, Query(max_length=64, description="prefix, e.g. resident.")
    ] = None,
) -> ListResponse[AuditRow]:
    """Who did what, when and why: e.g. `?resident_id=...&since=2026-11-01T00:00:00Z` answers
    "who looked at this resident's record this month". Managers and admins only."""
    rows, total = list_entries(
        session,
        actor=actor,
        resident_id=resident_id,
        user_id=user_id,
        since=since,
        until=until,
        action=action,
        limit=page.limit,
        offset=page.offset,
    )
    ids = {r.actor_id for r in rows if r.actor_id}
    names = (
        dict(session.exec(select(User.id, User.username).where(col(User.id).in_(ids))).all())
        if ids
        else {}
    )
    items = [
        AuditRow.model_validate(r, update={"actor_username": names.get(r.actor_id)}) for r in rows
    ]
    return ListResponse(items=items, total=total, limit=page.limit, offset=page.offset)
