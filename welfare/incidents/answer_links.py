"""The answer link every alert SMS to a family contact carries: `/r/<token>`.

Two-way SMS does not reach everyone (carriers in mainland China drop replies), so the SMS also
carries a short link. Opened without signing in, it shows only what the SMS already says (the
reference, the site, where the resident was found) and three answers: "I'm coming" (the same
confirmation as key 1), "I can't come" (the escalation moves to the next contact at once), and a
call to the office. One link per (incident, contact), reused by every later SMS to that contact;
it dies when the incident is resolved or cancelled (or the contact is removed).

The token. 96 bits (16 URL-safe characters), stored only as its SHA-256, as session tokens
are: a database dump gives nobody a working link. The raw token is derived when the SMS is
rendered, as an HMAC of `WELFARE_SECRET_KEY` and the link's random id, instead of being drawn
at random and kept (sealed) for the renders to come: it then exists nowhere but in the texts
sent, a dispatcher that crashes and resends renders the very same link, and there is nothing to
wipe when the incident closes. Whoever holds the secret key and the database could derive live
links, which is also true of a sealed copy. A rotated secret key gives later SMS a new link
(`token_for` re-keys the row) and kills the ones sent before.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Enum, UniqueConstraint
from sqlmodel import Field, Session, SQLModel, select

from welfare.db import UTCDateTime, insert_unless_conflict, utcnow
from welfare.incidents import service as incidents
from welfare.incidents import timeline
from welfare.incidents.models import CLOSED, Incident, IncidentKind, IncidentStatus
from welfare.residents.models import Contact
from welfare.sites.models import Site
from welfare.users.service import hash_token

TOKEN_BYTES = 12  # 96 bits, 16 characters
_PURPOSE = b"welfare-answer-link-v1:"
# What a token can look like: anything else is refused before a database read.
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16}")
# Timeline event types (each has words on the console: api/pages/console/words.py EVENT_LABELS; the
# calls below spell them out, as tests/api/test_pages_console_words.py reads them there).
OPENED_EVENT = "answer_link_opened"
COMING_EVENT = "answer_link_coming"
# The escalation reads this one (`service.engine_state`): the contact's latest step failed.
CANNOT_EVENT = incidents.CANNOT_COME_EVENT


class Answer(StrEnum):
    coming = "coming"
    cannot = "cannot"


class AnswerLink(SQLModel, table=True):
    """One contact's link for one incident. No token here: only its hash."""

    __tablename__ = "answer_link"
    __table_args__ = (UniqueConstraint("incident_id", "contact_id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    incident_id: uuid.UUID = Field(foreign_key="incident.id", index=True, ondelete="CASCADE")
    # A removed contact takes their link with them.
    contact_id: uuid.UUID = Field(foreign_key="contact.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, unique=True)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    opened_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    answer: Answer | None = Field(default=None, sa_type=Enum(Answer, native_enum=False, length=10))
    answered_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


def derive_token(secret_key: str, link_id: uuid.UUID, purpose: bytes = _PURPOSE) -> str:
    """The link's raw token: 96 bits of HMAC-SHA256 under the secret key (see the docstring).
    Another kind of link (a contact test's) passes its own `purpose`, so no token of one kind
    is ever a token of the other."""
    digest = hmac.new(secret_key.encode(), purpose + link_id.bytes, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:TOKEN_BYTES]).decode("ascii")


def _find(session: Session, incident_id: uuid.UUID, contact_id: uuid.UUID) -> AnswerLink | None:
    return session.exec(
        select(AnswerLink).where(
            AnswerLink.incident_id == incident_id, AnswerLink.contact_id == contact_id
        )
    ).first()


def token_for(
    session: Session, *, incident_id: uuid.UUID, contact_id: uuid.UUID, secret_key: str
) -> str | None:
    """The token of the contact's link for the incident, made on first use (the dispatcher's
    gate calls this while rendering the SMS, under the incident's lock). None when the contact
    no longer exists."""
    link = _find(session, incident_id, contact_id)
    if link is None:
        if session.get(Contact, contact_id) is None:
            return None
        link = AnswerLink(incident_id=incident_id, contact_id=contact_id, token_hash="")
        link.token_hash = hash_token(derive_token(secret_key, link.id))
        if not insert_unless_conflict(session, link):  # made meanwhile: use that one
            link = _find(session, incident_id, contact_id)
            if link is None:
                return None
    token = derive_token(secret_key, link.id)
    if link.token_hash != hash_token(token):  # the secret key was rotated since
        link.token_hash = hash_token(token)
        session.add(link)
    return token


# --- the page ----------------------------------------------------------------------------------


class State(StrEnum):
    open = "open"  # nobody has confirmed: the answers are offered
    declined = "declined"  # this contact said they cannot come; others are being asked
    you_are_coming = "you_are_coming"  # this contact said they are coming
    on_the_way = "on_the_way"  # someone has confirmed (another contact, staff): no names


@dataclass(frozen=True)
class AnswerPage:
    """What the page may show: only what the SMS already says. No name, no health data."""

    kind: IncidentKind
    reference: str
    site_name: str
    location: str | None
    office_phone: str | None
    phone_region: str | None
    language: str
    state: State


def _live(session: Session, token: str) -> tuple[AnswerLink, Incident, Contact] | None:
    """The link behind a token, while its incident runs; None for anything else (unknown,
    malformed, dead), all alike."""
    if not TOKEN_SHAPE.fullmatch(token):
        return None
    link = session.exec(
        select(AnswerLink).where(AnswerLink.token_hash == hash_token(token))
    ).first()
    if link is None:
        return None
    incident = session.get(Incident, link.incident_id)
    contact = session.get(Contact, link.contact_id)
    if incident is None or contact is None or incident.status in CLOSED:
        return None
    return link, incident, contact


def is_live(session: Session, token: str) -> bool:
    return _live(session, token) is not None


def _page(session: Session, link: AnswerLink, incident: Incident, contact: Contact) -> AnswerPage:
    site = session.get(Site, incident.site_id)
    assert site is not None
    if incident.status is IncidentStatus.confirmed:
        state = State.you_are_coming if link.answer is Answer.coming else State.on_the_way
    elif link.answer is Answer.cannot:
        state = State.declined
    else:
        state = State.open
    return AnswerPage(
        kind=incident.kind,
        reference=incident.reference,
        site_name=site.name,
        # The SMS names the place the guard typed, or the site: nothing more.
        location=incident.location,
        office_phone=site.office_phone,
        phone_region=site.phone_region,
        language=contact.language,
        state=state,
    )


def open_page(*, session: Session, token: str) -> AnswerPage | None:
    """The page behind a token; None for an unknown or dead one. The first opening is on the
    timeline (later ones are not: a family reloading the page would bury the story)."""
    found = _live(session, token)
    if found is None:
        return None
    link, incident, contact = found
    if link.opened_at is None:
        incidents.lock_incident(session, incident)
        session.refresh(link)
        if link.opened_at is None:
            link.opened_at = utcnow()
            session.add(link)
            timeline.record(
                session, incident, "answer_link_opened", label="contact", contact_id=contact.id
            )
    return _page(session, link, incident, contact)


def answer(*, session: Session, token: str, value: Answer) -> AnswerPage | None:
    """The contact's answer; None for an unknown or dead token. Idempotent: the same answer
    twice changes nothing (the page says the same). Under the incident's lock, so two taps at
    once confirm once.

    - coming: the confirmation key 1 gives (`service.confirm`): every pending step stops, the
      contacts already reached get the "coming" notice, nothing else goes out.
    - cannot: on the timeline, and the contact's latest step counts as failed from now, so the
      next contact's step falls due at once (`service.engine_state`). Once someone is coming it
      is moot (the page no longer offers it) and nothing is recorded.
    """
    found = _live(session, token)
    if found is None:
        return None
    link, incident, contact = found
    incidents.lock_incident(session, incident)
    session.refresh(link)
    if incident.status in CLOSED:  # closed while we waited for the lock
        return None
    moot = value is Answer.cannot and incident.status is IncidentStatus.confirmed
    if link.answer == value or moot:
        return _page(session, link, incident, contact)
    now = utcnow()
    link.answer, link.answered_at = value, now
    if link.opened_at is None:
        link.opened_at = now
    session.add(link)
    if value is Answer.coming:
        timeline.record(
            session, incident, "answer_link_coming", label="contact", contact_id=contact.id
        )
        incidents.confirm(
            session=session,
            incident=incident,
            via="answer_link",
            contact_id=contact.id,
            now=now,
        )
    else:
        # The type `service.engine_state` reads as "their step failed" (CANNOT_EVENT).
        event = timeline.record(
            session, incident, "answer_link_cannot", label="contact", contact_id=contact.id
        )
        if incident.status in (IncidentStatus.open, IncidentStatus.notifying):
            # Timeline times come from the clock at writing; never ask "what is due" before them.
            incidents.advance(session=session, incident=incident, now=max(now, event.at))
    return _page(session, link, incident, contact)
