"""Staff send an SMS or place a call to one contact of an incident now."""

from __future__ import annotations

import datetime as dt
import uuid

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from api.deps import ActorDep, SessionDep, TransactionRoute
from welfare.channels import ChannelKind
from welfare.incidents import manual
from welfare.outbox.models import OutboxMessage

router = APIRouter(route_class=TransactionRoute, prefix="/api/v1/incidents", tags=["incidents"])


class NotifyBody(BaseModel):
    channel: ChannelKind
    # Repeating a request id returns the message already queued (double clicks, retries).
    request_id: str | None = Field(default=None, min_length=8, max_length=64, pattern=r"^[\w-]+$")


class NotifyQueued(BaseModel):
    message_id: uuid.UUID
    contact_id: uuid.UUID
    channel: str
    status: str
    queued_at: dt.datetime

    @classmethod
    def of(cls, message: OutboxMessage) -> NotifyQueued:
        """The queued row, as a staff send's answer (also a contact test's)."""
        assert message.contact_id is not None
        return cls(
            message_id=message.id,
            contact_id=message.contact_id,
            channel=message.kind.value,
            status=message.status.value,
            queued_at=message.created_at,
        )


@router.post(
    "/{incident_id}/contacts/{contact_id}/notify",
    response_model=NotifyQueued,
    status_code=status.HTTP_202_ACCEPTED,
)
def notify_contact(
    incident_id: uuid.UUID,
    contact_id: uuid.UUID,
    body: NotifyBody,
    session: SessionDep,
    actor: ActorDep,
) -> NotifyQueued:
    """SMS or call this contact now (staff and up). Refused once the incident is confirmed or
    closed, for a contact without consent to be contacted, an SMS opt-out or an SMS to a
    landline."""
    message = manual.notify_contact(
        session=session,
        actor=actor,
        incident_id=incident_id,
        contact_id=contact_id,
        channel=body.channel,
        request_id=body.request_id,
    )
    return NotifyQueued.of(message)
