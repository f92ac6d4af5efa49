from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from api.deps import ActorDep, SessionDep, SettingsDep, TransactionRoute
from api.schemas import ListResponse
from welfare import consents
from welfare.consent.models import Consent, ConsentCreate, ConsentPublic, ConsentWithdraw
from welfare.db import utcnow

router = APIRouter(
    route_class=TransactionRoute,
    prefix="/api/v1/residents/{resident_id}/consents",
    tags=["consent"],
)


def _public(consent: Consent) -> ConsentPublic:
    return ConsentPublic.model_validate(
        consent, update={"state": consents.derive_state([consent], utcnow()).value}
    )


@router.get("", response_model=ListResponse[ConsentPublic])
def list_consents(
    resident_id: uuid.UUID, session: SessionDep, actor: ActorDep
) -> ListResponse[ConsentPublic]:
    rows = consents.list_consents(session=session, actor=actor, resident_id=resident_id)
    return ListResponse(
        items=[_public(c) for c in rows], total=len(rows), limit=len(rows), offset=0
    )


@router.post("", response_model=ConsentPublic, status_code=status.HTTP_201_CREATED)
def record_consent(
    resident_id: uuid.UUID, data: ConsentCreate, session: SessionDep, actor: ActorDep
) -> ConsentPublic:
    """Review falls due 12 months after `given_at` unless `review_due` says otherwise."""
    return _public(
        consents.record_consent(session=session, actor=actor, resident_id=resident_id, data=data)
    )


@router.post("/{consent_id}/withdraw", response_model=ConsentPublic)
def withdraw_consent(
    resident_id: uuid.UUID,
    consent_id: uuid.UUID,
    data: ConsentWithdraw,
    session: SessionDep,
    actor: ActorDep,
    settings: SettingsDep,
) -> ConsentPublic:
    """Withdrawing erases what the remaining consents no longer cover: without the registry
    scope the resident's personal data, contacts and photo are deleted, leaving a tombstone."""
    consent = consents.withdraw_consent(
        session=session,
        actor=actor,
        settings=settings,
        resident_id=resident_id,
        consent_id=consent_id,
        reason=data.reason,
    )
    return _public(consent)
