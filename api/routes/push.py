"""The signed-in user's push subscriptions: the phones that get their alerts by push
(docs/web-push.md). The guard app posts `PushSubscription.toJSON()` after the user turned
alerts on."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, status

from api.deps import ActorDep, SessionDep, SettingsDep, TransactionRoute
from welfare.push import service as push
from welfare.push.models import SubscriptionCreate, SubscriptionPublic

router = APIRouter(
    route_class=TransactionRoute, prefix="/api/v1/me/push-subscriptions", tags=["auth"]
)


@router.get("", response_model=list[SubscriptionPublic])
def list_my_push_subscriptions(session: SessionDep, actor: ActorDep) -> list[SubscriptionPublic]:
    """Your phones that get alerts by push, newest first (never their endpoints or keys)."""
    return push.list_own(session=session, actor=actor)


@router.post("", response_model=SubscriptionPublic, status_code=status.HTTP_201_CREATED)
def add_my_push_subscription(
    data: SubscriptionCreate,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    settings: SettingsDep,
) -> SubscriptionPublic:
    """This phone gets your missing-resident alerts and "an incident needs you" by push instead
    of SMS (SMS stays the fallback). The endpoint must be https; posting the same endpoint again
    renews it (and moves it to you, on a shared phone)."""
    row = push.subscribe(
        session=session,
        actor=actor,
        data=data,
        user_agent=request.headers.get("user-agent"),
        allowed_hosts=settings.push_service_hosts,
    )
    return push.to_public(row)


@router.delete("/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_my_push_subscription(
    subscription_id: uuid.UUID, session: SessionDep, actor: ActorDep
) -> None:
    """That phone's alerts come by SMS again. 404 when not yours."""
    push.remove_own(session=session, actor=actor, subscription_id=subscription_id)
