from __future__ import annotations

import datetime as dt
import uuid

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import ActorDep, SessionDep, TransactionRoute
from api.schemas import ListResponse
from welfare.incidents import alerts

router = APIRouter(
    route_class=TransactionRoute, prefix="/api/v1/alerts", tags=["missing-resident alerts"]
)


class AlertCard(BaseModel):
    incident_id: uuid.UUID
    reference: str
    opened_at: dt.datetime
    last_seen: str | None
    last_seen_clothing: str | None  # what they wore when last seen (the incident's description)
    note: str | None
    resident_id: uuid.UUID
    preferred_name: str | None
    unit: str | None
    languages: list[str]
    approach: str | None
    photo_url: str | None
    height_cm: int | None
    build: str | None
    hair: str | None
    eyes: str | None
    clothing: str | None
    distinguishing_marks: str | None
    walking_aid: str | None
    places: list[str]
    # A member of the public found them and is waiting with them (at `last_seen`, and at
    # `map_url` when they shared where): go to them.
    found_by_public: bool = False
    map_url: str | None = None


@router.get("", response_model=ListResponse[AlertCard])
def list_alerts(session: SessionDep, actor: ActorDep) -> ListResponse[AlertCard]:
    """Open missing-resident alerts at the caller's sites, newest first: what a guard needs to
    recognise the person (no medical notes, no contacts)."""
    cards = [AlertCard.model_validate(c) for c in alerts.open_alerts(session=session, actor=actor)]
    return ListResponse(items=cards, total=len(cards), limit=len(cards), offset=0)


@router.get("/{incident_id}", response_model=AlertCard)
def read_alert(incident_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> AlertCard:
    return AlertCard.model_validate(
        alerts.alert(session=session, actor=actor, incident_id=incident_id)
    )
