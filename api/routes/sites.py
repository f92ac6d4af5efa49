from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.deps import ActorDep, PageDep, SessionDep, TransactionRoute
from api.schemas import ListResponse
from welfare.residents import service as residents
from welfare.sites import service as sites
from welfare.sites.models import (
    Household,
    HouseholdCreate,
    HouseholdPublic,
    HouseholdUpdate,
    SiteCreate,
    SitePublic,
    SiteUpdate,
)

router = APIRouter(route_class=TransactionRoute, prefix="/api/v1", tags=["sites and households"])


@router.get("/sites", response_model=ListResponse[SitePublic])
def list_sites(session: SessionDep, actor: ActorDep, page: PageDep) -> ListResponse[SitePublic]:
    rows, total = sites.list_sites(
        session=session, actor=actor, limit=page.limit, offset=page.offset
    )
    return ListResponse(
        items=[SitePublic.model_validate(s) for s in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post("/sites", response_model=SitePublic, status_code=status.HTTP_201_CREATED)
def create_site(data: SiteCreate, session: SessionDep, actor: ActorDep) -> SitePublic:
    return SitePublic.model_validate(sites.create_site(session=session, actor=actor, data=data))


@router.get("/sites/{site_id}", response_model=SitePublic)
def read_site(site_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> SitePublic:
    return SitePublic.model_validate(sites.get_site(session=session, actor=actor, site_id=site_id))


@router.patch("/sites/{site_id}", response_model=SitePublic)
def update_site(
    site_id: uuid.UUID, data: SiteUpdate, session: SessionDep, actor: ActorDep
) -> SitePublic:
    site = sites.update_site(session=session, actor=actor, site_id=site_id, data=data)
    return SitePublic.model_validate(site)


def _household(household: Household) -> HouseholdPublic:
    return HouseholdPublic.model_validate(household, update={"unit_label": household.unit_label})


@router.get("/households", response_model=ListResponse[HouseholdPublic])
def list_households(
    session: SessionDep,
    actor: ActorDep,
    page: PageDep,
    site_id: uuid.UUID | None = None,
    q: Annotated[
        str | None, Query(max_length=200, description="building, unit or '1-1609'")
    ] = None,
) -> ListResponse[HouseholdPublic]:
    rows, total = sites.list_households(
        session=session, actor=actor, limit=page.limit, offset=page.offset, site_id=site_id, q=q
    )
    return ListResponse(
        items=[_household(h) for h in rows], total=total, limit=page.limit, offset=page.offset
    )


@router.post("/households", response_model=HouseholdPublic, status_code=status.HTTP_201_CREATED)
def create_household(
    data: HouseholdCreate, session: SessionDep, actor: ActorDep
) -> HouseholdPublic:
    return _household(sites.create_household(session=session, actor=actor, data=data))


@router.get("/households/{household_id}", response_model=HouseholdPublic)
def read_household(
    household_id: uuid.UUID, session: SessionDep, actor: ActorDep
) -> HouseholdPublic:
    return _household(sites.get_household(session=session, actor=actor, household_id=household_id))


@router.patch("/households/{household_id}", response_model=HouseholdPublic)
def update_household(
    household_id: uuid.UUID, data: HouseholdUpdate, session: SessionDep, actor: ActorDep
) -> HouseholdPublic:
    household = sites.update_household(
        session=session, actor=actor, household_id=household_id, data=data
    )
    return _household(household)


@router.delete("/households/{household_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_household(household_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Response:
    residents.delete_household(session=session, actor=actor, household_id=household_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
