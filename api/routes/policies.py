from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from api.deps import ActorDep, SessionDep, TransactionRoute
from welfare.incidents import policies
from welfare.incidents.policies import PolicyBody, PolicyPublic

router = APIRouter(route_class=TransactionRoute, prefix="/api/v1", tags=["escalation policies"])


@router.get("/sites/{site_id}/escalation-policy", response_model=PolicyPublic)
def read_site_policy(site_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> PolicyPublic:
    return policies.effective_policy(session=session, actor=actor, site_id=site_id)


@router.put("/sites/{site_id}/escalation-policy", response_model=PolicyPublic)
def set_site_policy(
    site_id: uuid.UUID, body: PolicyBody, session: SessionDep, actor: ActorDep
) -> PolicyPublic:
    """Managers. Incidents already running keep the steps they opened with."""
    return policies.set_policy(session=session, actor=actor, body=body, site_id=site_id)


@router.get("/residents/{resident_id}/escalation-policy", response_model=PolicyPublic)
def read_resident_policy(
    resident_id: uuid.UUID, session: SessionDep, actor: ActorDep
) -> PolicyPublic:
    """The policy that applies to this resident: their own, else the site's, else the default."""
    return policies.effective_policy(session=session, actor=actor, resident_id=resident_id)


@router.put("/residents/{resident_id}/escalation-policy", response_model=PolicyPublic)
def set_resident_policy(
    resident_id: uuid.UUID, body: PolicyBody, session: SessionDep, actor: ActorDep
) -> PolicyPublic:
    return policies.set_policy(session=session, actor=actor, body=body, resident_id=resident_id)


@router.delete("/residents/{resident_id}/escalation-policy", status_code=status.HTTP_204_NO_CONTENT)
def clear_resident_policy(resident_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Response:
    policies.clear_resident_policy(session=session, actor=actor, resident_id=resident_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
