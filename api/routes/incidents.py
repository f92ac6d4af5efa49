from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from fastapi import APIRouter, Response, status
from pydantic import BaseModel
from sqlmodel import Session, col, select

from api.deps import ActorDep, PageDep, SessionDep
from api.schemas import ListResponse
from welfare.incidents import responders, timeline
from welfare.incidents import service as incidents
from welfare.incidents.models import Incident, IncidentCreate, NoteCreate, Resolution
from welfare.outbox.models import OutboxMessage

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])


class TimelineEvent(BaseModel):
    at: dt.datetime
    type: str
    actor: str
    detail: dict[str, Any]


class NotificationStatus(BaseModel):
    message_id: uuid.UUID
    contact_id: uuid.UUID | None
    user_id: uuid.UUID | None
    channel: str
    status: str
    provider_status: str | None
    provider_error: str | None
    step: int | None
    attempts: int


class IncidentSummary(BaseModel):
    id: uuid.UUID
    reference: str
    kind: str
    status: str
    site_id: uuid.UUID
    resident_id: uuid.UUID | None
    condition: str
    location: str | None
    opened_at: dt.datetime
    confirmed_at: dt.datetime | None
    closed_at: dt.datetime | None
    outcome: str | None


class IncidentDetail(IncidentSummary):
    latitude: float | None
    longitude: float | None
    note: str | None
    description: str | None
    handed_to: str | None
    confirmed_via: str | None
    confirmed_contact_id: uuid.UUID | None
    timeline: list[TimelineEvent]
    notifications: list[NotificationStatus]


class AcknowledgeBody(BaseModel):
    contact_id: uuid.UUID | None = None


def _summary(incident: Incident) -> dict[str, Any]:
    return IncidentSummary.model_validate(incident, from_attributes=True).model_dump()


def detail_of(session: Session, incident: Incident) -> IncidentDetail:
    events = [
        TimelineEvent(at=e.at, type=e.type, actor=e.actor, detail=e.detail)
        for e in timeline.events_of(session, incident.id)
    ]
    messages = session.exec(
        select(OutboxMessage)
        .where(OutboxMessage.incident_id == incident.id)
        .order_by(col(OutboxMessage.created_at), col(OutboxMessage.id))
    ).all()
    notifications = [
        NotificationStatus(
            message_id=m.id,
            contact_id=m.contact_id,
            user_id=m.user_id,
            channel=m.kind.value,
            status=m.status.value,
            provider_status=m.provider_status,
            provider_error=m.error_reason,
            step=m.step_index,
            attempts=m.attempts,
        )
        for m in messages
    ]
    return IncidentDetail.model_validate(
        {
            **_summary(incident),
            **{
                k: getattr(incident, k)
                for k in (
                    "latitude",
                    "longitude",
                    "note",
                    "description",
                    "handed_to",
                    "confirmed_via",
                    "confirmed_contact_id",
                )
            },
            "timeline": events,
            "notifications": notifications,
        }
    )


@router.post(
    "",
    response_model=IncidentDetail,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {
            "model": IncidentDetail,
            "description": "the same request again, or reused open incident",
        }
    },
)
def open_incident(
    data: IncidentCreate, response: Response, session: SessionDep, actor: ActorDep
) -> IncidentDetail:
    """Report found (or missing). Repeating a `client_request_id` returns the same incident with
    200; an open incident for the same resident is reused."""
    opened = incidents.open_incident(session=session, actor=actor, data=data)
    if not opened.created:
        response.status_code = status.HTTP_200_OK
    return detail_of(session, opened.incident)


@router.get("", response_model=ListResponse[IncidentSummary])
def list_incidents(
    session: SessionDep,
    actor: ActorDep,
    page: PageDep,
    open_only: bool = False,
    site_id: uuid.UUID | None = None,
) -> ListResponse[IncidentSummary]:
    rows, total = incidents.list_incidents(
        session=session,
        actor=actor,
        limit=page.limit,
        offset=page.offset,
        open_only=open_only,
        site_id=site_id,
    )
    return ListResponse(
        items=[IncidentSummary.model_validate(_summary(r)) for r in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/{incident_id}", response_model=IncidentDetail)
def read_incident(incident_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> IncidentDetail:
    return detail_of(
        session, incidents.get_incident(session=session, actor=actor, incident_id=incident_id)
    )


@router.post("/{incident_id}/acknowledge", response_model=IncidentDetail)
def acknowledge(
    incident_id: uuid.UUID, body: AcknowledgeBody, session: SessionDep, actor: ActorDep
) -> IncidentDetail:
    """Staff reached the family by phone: confirms and stops every pending step."""
    incident = incidents.acknowledge(
        session=session, actor=actor, incident_id=incident_id, contact_id=body.contact_id
    )
    return detail_of(session, incident)


@router.post("/{incident_id}/notes", response_model=IncidentDetail)
def add_note(
    incident_id: uuid.UUID, body: NoteCreate, session: SessionDep, actor: ActorDep
) -> IncidentDetail:
    incident = incidents.add_note(
        session=session, actor=actor, incident_id=incident_id, note=body.text
    )
    return detail_of(session, incident)


@router.post("/{incident_id}/resolve", response_model=IncidentDetail)
def resolve(
    incident_id: uuid.UUID, body: Resolution, session: SessionDep, actor: ActorDep
) -> IncidentDetail:
    incident = incidents.resolve(session=session, actor=actor, incident_id=incident_id, data=body)
    return detail_of(session, incident)


@router.post("/{incident_id}/cancel", response_model=IncidentDetail)
def cancel(incident_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> IncidentDetail:
    return detail_of(
        session, incidents.cancel(session=session, actor=actor, incident_id=incident_id)
    )


@router.post(
    "/{incident_id}/claim",
    response_model=IncidentDetail,
    responses={201: {"model": IncidentDetail, "description": "claimed now"}},
)
def claim(
    incident_id: uuid.UUID, response: Response, session: SessionDep, actor: ActorDep
) -> IncidentDetail:
    """A guard of the site takes the incident on; from then until it closes they may read the
    resident's card and household (`GET .../resident`). Claiming again answers 200."""
    incident, created = responders.claim(session=session, actor=actor, incident_id=incident_id)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return detail_of(session, incident)


class HouseholdView(BaseModel):
    building: str | None
    unit: str | None
    unit_label: str | None
    site_name: str | None
    address: str | None


class ContactName(BaseModel):
    name: str
    relationship: str
    priority: int
    lives_in_household: bool
    can_collect: bool


class ResidentForResponder(BaseModel):
    incident_id: uuid.UUID
    resident_id: uuid.UUID
    preferred_name: str | None
    full_name: str | None
    languages: list[str]
    approach: str | None
    photo_url: str | None
    places: list[str]
    household: HouseholdView
    contacts: list[ContactName]


@router.get("/{incident_id}/resident", response_model=ResidentForResponder)
def read_resident(
    incident_id: uuid.UUID, session: SessionDep, actor: ActorDep
) -> ResidentForResponder:
    """Break-glass: the resident's approach card and household (no phone numbers, no health
    data) for the guard who reported or claimed the incident, while it is open. Audited."""
    return ResidentForResponder.model_validate(
        responders.resident_view(session=session, actor=actor, incident_id=incident_id)
    )
