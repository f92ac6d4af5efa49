from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from api.deps import ActorDep, SessionDep, SettingsDep, TransactionRoute
from welfare.settings import Settings
from welfare.tags import service as tags
from welfare.tags.models import ResidentTag, TagPublic

router = APIRouter(
    route_class=TransactionRoute, prefix="/api/v1/residents/{resident_id}", tags=["tags"]
)


def _public(tag: ResidentTag, settings: Settings) -> TagPublic:
    return TagPublic(
        resident_id=tag.resident_id,
        code=tag.code,
        url=tags.tag_url(settings.public_base_url, tag.code),
        label_url=f"/api/v1/residents/{tag.resident_id}/tag.png",
        issued_at=tag.issued_at,
    )


@router.post("/tag", response_model=TagPublic, status_code=status.HTTP_201_CREATED)
def issue_tag(
    resident_id: uuid.UUID, session: SessionDep, actor: ActorDep, settings: SettingsDep
) -> TagPublic:
    """Issue a tag, or re-issue one: the earlier code stops working at once."""
    return _public(tags.issue_tag(session=session, actor=actor, resident_id=resident_id), settings)


@router.get("/tag", response_model=TagPublic)
def read_tag(
    resident_id: uuid.UUID, session: SessionDep, actor: ActorDep, settings: SettingsDep
) -> TagPublic:
    return _public(tags.get_tag(session=session, actor=actor, resident_id=resident_id), settings)


@router.delete("/tag", status_code=status.HTTP_204_NO_CONTENT)
def revoke_tag(resident_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Response:
    tags.revoke_tag(session=session, actor=actor, resident_id=resident_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/tag.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "QR label"}},
)
def tag_label(
    resident_id: uuid.UUID, session: SessionDep, actor: ActorDep, settings: SettingsDep
) -> Response:
    """A printable QR label of the tag URL; the URL and label carry no personal data."""
    png = tags.label_png(
        session=session, actor=actor, resident_id=resident_id, base_url=settings.public_base_url
    )
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, no-store"})
