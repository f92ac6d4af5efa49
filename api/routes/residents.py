from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, Query, Response, UploadFile, status
from sqlmodel import Session

from api.deps import ActorDep, PageDep, SessionDep, SettingsDep, TransactionRoute
from api.schemas import ListResponse
from welfare import consents
from welfare.errors import InvalidInput
from welfare.residents import service as residents
from welfare.residents.models import (
    Contact,
    ContactCreate,
    ContactPublic,
    ContactUpdate,
    Resident,
    ResidentCreate,
    ResidentPublic,
    ResidentSummary,
    ResidentUpdate,
)

router = APIRouter(route_class=TransactionRoute, prefix="/api/v1/residents", tags=["residents"])


def _derived(session: Session, resident: Resident) -> dict[str, object]:
    has_photo = resident.photo_file is not None
    return {
        "unit": residents.unit_label(session, resident),
        "consent_state": consents.state_of(session, resident),
        "has_photo": has_photo,
        "photo_url": f"/api/v1/residents/{resident.id}/photo" if has_photo else None,
    }


def resident_public(session: Session, resident: Resident) -> ResidentPublic:
    return ResidentPublic.model_validate(resident, update=_derived(session, resident))


def resident_summary(session: Session, resident: Resident) -> ResidentSummary:
    """A list row, built field by field: health data never reaches it."""
    return ResidentSummary.model_validate(resident, update=_derived(session, resident))


@router.get("", response_model=ListResponse[ResidentSummary])
def list_residents(
    session: SessionDep,
    actor: ActorDep,
    page: PageDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    site_id: uuid.UUID | None = None,
    household_id: uuid.UUID | None = None,
) -> ListResponse[ResidentSummary]:
    """Search by name, alias or unit (`q`); rows carry no health data."""
    rows, total = residents.list_residents(
        session=session,
        actor=actor,
        limit=page.limit,
        offset=page.offset,
        q=q,
        site_id=site_id,
        household_id=household_id,
    )
    return ListResponse(
        items=[resident_summary(session, r) for r in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post(
    "",
    response_model=ResidentPublic,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "same name already registered at the household"}},
)
def create_resident(
    data: ResidentCreate, session: SessionDep, actor: ActorDep, allow_duplicate: bool = False
) -> ResidentPublic:
    resident = residents.create_resident(
        session=session, actor=actor, data=data, allow_duplicate=allow_duplicate
    )
    return resident_public(session, resident)


@router.get("/{resident_id}", response_model=ResidentPublic)
def read_resident(resident_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ResidentPublic:
    resident = residents.get_resident(session=session, actor=actor, resident_id=resident_id)
    return resident_public(session, resident)


@router.patch("/{resident_id}", response_model=ResidentPublic)
def update_resident(
    resident_id: uuid.UUID, data: ResidentUpdate, session: SessionDep, actor: ActorDep
) -> ResidentPublic:
    resident = residents.update_resident(
        session=session, actor=actor, resident_id=resident_id, data=data
    )
    return resident_public(session, resident)


# --- photo --------------------------------------------------------------------------------------

IMAGE_RESPONSE = {200: {"content": {"image/jpeg": {}}, "description": "JPEG"}}


@router.get("/{resident_id}/photo", response_class=Response, responses=IMAGE_RESPONSE)
def read_photo(
    resident_id: uuid.UUID,
    session: SessionDep,
    actor: ActorDep,
    settings: SettingsDep,
    size: Annotated[str, Query(pattern="^(full|thumbnail)$")] = "full",
) -> Response:
    data = residents.read_photo(
        session=session,
        actor=actor,
        settings=settings,
        resident_id=resident_id,
        thumbnail=size == "thumbnail",
    )
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})


@router.put(
    "/{resident_id}/photo",
    response_model=ResidentPublic,
    responses={413: {"description": "too large"}, 415: {"description": "not an image"}},
)
def upload_photo(
    resident_id: uuid.UUID,
    file: Annotated[UploadFile, File()],
    session: SessionDep,
    actor: ActorDep,
    settings: SettingsDep,
) -> ResidentPublic:
    """JPEG, PNG or WebP under the size limit; re-encoded as JPEG without EXIF/GPS, with a
    thumbnail. The content decides the type, not the file name or declared type."""
    data = file.file.read(settings.max_photo_bytes + 1)
    if not data:
        raise InvalidInput("file", "the file is empty: choose the photo again")
    resident = residents.set_photo(
        session=session, actor=actor, settings=settings, resident_id=resident_id, data=data
    )
    return resident_public(session, resident)


@router.delete("/{resident_id}/photo", status_code=status.HTTP_204_NO_CONTENT)
def delete_photo(
    resident_id: uuid.UUID, session: SessionDep, actor: ActorDep, settings: SettingsDep
) -> Response:
    residents.delete_photo(session=session, actor=actor, settings=settings, resident_id=resident_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- contacts -----------------------------------------------------------------------------------


def _contact(contact: Contact) -> ContactPublic:
    return ContactPublic.model_validate(contact)


@router.get("/{resident_id}/contacts", response_model=ListResponse[ContactPublic])
def list_contacts(
    resident_id: uuid.UUID, session: SessionDep, actor: ActorDep
) -> ListResponse[ContactPublic]:
    rows = residents.list_contacts(session=session, actor=actor, resident_id=resident_id)
    return ListResponse(
        items=[_contact(c) for c in rows], total=len(rows), limit=len(rows), offset=0
    )


@router.post(
    "/{resident_id}/contacts", response_model=ContactPublic, status_code=status.HTTP_201_CREATED
)
def create_contact(
    resident_id: uuid.UUID, data: ContactCreate, session: SessionDep, actor: ActorDep
) -> ContactPublic:
    """Phones are validated against the site's region and stored in E.164."""
    return _contact(
        residents.create_contact(session=session, actor=actor, resident_id=resident_id, data=data)
    )


@router.get("/{resident_id}/contacts/{contact_id}", response_model=ContactPublic)
def read_contact(
    resident_id: uuid.UUID, contact_id: uuid.UUID, session: SessionDep, actor: ActorDep
) -> ContactPublic:
    return _contact(
        residents.get_contact(
            session=session, actor=actor, resident_id=resident_id, contact_id=contact_id
        )
    )


@router.patch("/{resident_id}/contacts/{contact_id}", response_model=ContactPublic)
def update_contact(
    resident_id: uuid.UUID,
    contact_id: uuid.UUID,
    data: ContactUpdate,
    session: SessionDep,
    actor: ActorDep,
) -> ContactPublic:
    """Setting `priority` moves the contact and renumbers the others (1 = called first)."""
    return _contact(
        residents.update_contact(
            session=session, actor=actor, resident_id=resident_id, contact_id=contact_id, data=data
        )
    )


@router.delete("/{resident_id}/contacts/{contact_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_contact(
    resident_id: uuid.UUID, contact_id: uuid.UUID, session: SessionDep, actor: ActorDep
) -> Response:
    residents.delete_contact(
        session=session, actor=actor, resident_id=resident_id, contact_id=contact_id
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
