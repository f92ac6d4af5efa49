"""The guard's lookup: `GET /api/v1/lookup?q=...` or `?tag=...`, and the card's thumbnail."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import ActorDep, SessionDep, SettingsDep, TransactionRoute
from welfare.lookup import service as lookups
from welfare.lookup.models import LookupResponse

router = APIRouter(route_class=TransactionRoute, prefix="/api/v1/lookup", tags=["lookup"])


@router.get("", response_model=LookupResponse)
def lookup(
    session: SessionDep,
    actor: ActorDep,
    q: Annotated[
        str | None, Query(max_length=200, description="flat ('1-1609'), name or description")
    ] = None,
    tag: Annotated[str | None, Query(max_length=64, description="the code on a tag")] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> LookupResponse:
    """Minimal cards, best match first: never health data, contacts or phone numbers."""
    cards = lookups.lookup(session=session, actor=actor, q=q, tag=tag, limit=limit)
    return LookupResponse(items=cards, total=len(cards))


@router.get(
    "/{resident_id}/photo",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "JPEG thumbnail"}},
)
def lookup_photo(
    resident_id: uuid.UUID, session: SessionDep, actor: ActorDep, settings: SettingsDep
) -> Response:
    data = lookups.lookup_photo(
        session=session, actor=actor, settings=settings, resident_id=resident_id
    )
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})
