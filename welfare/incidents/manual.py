"""Staff send an SMS or place a call to one contact now, outside the escalation's timing.

The message is an outbox row like every other (durable before it is sent, rendered in the
contact's language by the dispatcher), with a timeline event and an audit entry. It never goes
out once someone has confirmed or the incident is closed.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlmodel import Session, select

from welfare import outbox
from welfare.audit.service import audit_resident
from welfare.authz import Actor, Permission, require_site
from welfare.channels import ChannelKind
from welfare.db import utcnow
from welfare.errors import Conflict, NotFound
from welfare.incidents.models import Incident, IncidentKind, IncidentStatus
from welfare.incidents.service import lock_incident
from welfare.outbox import reach
from welfare.outbox.models import OutboxMessage
from welfare.residents.models import Contact, Resident

# Outbox rows of staff sends carry this step index: no escalation step, so a failure here never
# moves the escalation on (only steps >= 0 do).
MANUAL_STEP = -3
MANUAL_TEMPLATES = {
    IncidentKind.found: "found_alert",
    IncidentKind.welfare_concern: "welfare_concern_alert",
}


def notify_contact(
    *,
    session: Session,
    actor: Actor,
    incident_id: uuid.UUID,
    contact_id: uuid.UUID,
    channel: ChannelKind,
    request_id: str | None = None,
    now: dt.datetime | None = None,
) -> OutboxMessage:
    """Queue one SMS or call to a contact of the incident's resident, at once.

    `request_id` makes a repeated submission (a double click, a retried request) queue nothing
    twice: the same id returns the row already queued.
    """
    now = now or utcnow()
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFound("incident")
    require_site(actor, Permission.registry_write, incident.site_id, "incident")
    lock_incident(session, incident)
    contact = session.get(Contact, contact_id)
    if (
        contact is None
        or incident.resident_id is None
        or contact.resident_id != incident.resident_id
    ):
        raise NotFound("contact")
    key = f"{incident.id}:manual:{request_id or uuid.uuid4().hex}"
    earlier = session.exec(
        select(OutboxMessage).where(OutboxMessage.idempotency_key == key)
    ).first()
    if earlier is not None:
        if earlier.contact_id != contact.id or earlier.kind is not channel:
            raise Conflict("this request id was already used for another message")
        return earlier
    if incident.status not in (IncidentStatus.open, IncidentStatus.notifying):
        raise Conflict(f"the incident is already {incident.status.value}: nothing more goes out")
    template = MANUAL_TEMPLATES.get(incident.kind)
    if template is None:
        raise Conflict("a missing-resident alert goes to guards; call the family from the office")
    reach.refuse_if_barred(contact, channel)
    message = outbox.enqueue(
        session,
        kind=channel,
        to=contact.phone,
        language=contact.language,
        template=template,
        key=key,
        incident=incident,
        step_index=MANUAL_STEP,
        contact_id=contact.id,
        actor=actor,
        event_detail={"manual": True},
        now=now,
    )
    assert message is not None
    resident = session.get(Resident, incident.resident_id)
    assert resident is not None
    audit_resident(
        session,
        actor,
        "incident.notify",
        resident,
        entity="incident",
        entity_id=incident.id,
        purpose=f"incident {incident.id}",
        detail={"contact_id": str(contact.id), "channel": channel.value},
    )
    return message
