"""Which consent scopes hold for a resident: read by the services that enforce consent."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable

from sqlmodel import Session, col, select

from welfare.consent.models import Consent, ConsentScope, ConsentState


def derive_state(consents: Iterable[Consent], now: dt.datetime) -> ConsentState:
    """active: a live consent within its review date; unverified: live but overdue for review
    (still usable in an emergency); withdrawn: every consent withdrawn; none: nothing recorded."""
    consents = list(consents)
    live = [c for c in consents if c.withdrawn_at is None]
    if not live:
        return ConsentState.withdrawn if consents else ConsentState.none
    if any(c.review_due > now for c in live):
        return ConsentState.active
    return ConsentState.unverified


def live_scopes(consents: Iterable[Consent]) -> set[ConsentScope]:
    """Scopes covered by consents not withdrawn (overdue review still counts: unverified)."""
    return {ConsentScope(s) for c in consents if c.withdrawn_at is None for s in c.scopes}


def consents_of(session: Session, resident_id: uuid.UUID) -> list[Consent]:
    return list(
        session.exec(
            select(Consent)
            .where(Consent.resident_id == resident_id)
            .order_by(col(Consent.given_at), col(Consent.id))
        ).all()
    )


def has_scope(session: Session, resident_id: uuid.UUID, scope: ConsentScope) -> bool:
    return scope in live_scopes(consents_of(session, resident_id))
