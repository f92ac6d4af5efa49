"""A browser's push subscription (one per phone and user) and the service's VAPID key pair."""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlmodel import Field, SQLModel

from welfare.db import UTCDateTime, utcnow

ENDPOINT_MAX = 1000  # push services' endpoints are 150-500 characters
USER_AGENT_MAX = 300
# base64url of a P-256 public key (65 bytes) and of the 16-byte auth secret, with some slack
# for padding.
P256DH_MAX, AUTH_MAX = 100, 40


class PushSubscription(SQLModel, table=True):
    """Where the push service delivers to one browser: the endpoint is the browser's address at
    its push service (unique: a phone that subscribes again, or for another user, replaces its
    row), the keys encrypt the payload for it alone."""

    __tablename__ = "push_subscription"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    endpoint: str = Field(max_length=ENDPOINT_MAX, unique=True)
    p256dh: str = Field(max_length=P256DH_MAX)
    auth: str = Field(max_length=AUTH_MAX)
    user_agent: str | None = Field(default=None, max_length=USER_AGENT_MAX)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_success_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class VapidKey(SQLModel, table=True):
    """The one VAPID key pair the service signs pushes with (row `id` 1), made at first start
    when the settings name none. The private key is sealed (`welfare/sealed.py`)."""

    __tablename__ = "vapid_key"

    id: int = Field(default=1, primary_key=True)
    private_key_sealed: str = Field(max_length=500)
    public_key: str = Field(max_length=100)  # base64url, uncompressed P-256 point
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SubscriptionKeys(BaseModel):
    model_config = ConfigDict(extra="ignore")

    p256dh: str = PydanticField(min_length=1, max_length=P256DH_MAX)
    auth: str = PydanticField(min_length=1, max_length=AUTH_MAX)


class SubscriptionCreate(BaseModel):
    """What the browser's `PushSubscription.toJSON()` gives (`expirationTime` is ignored)."""

    model_config = ConfigDict(extra="ignore")

    endpoint: str = PydanticField(min_length=1, max_length=ENDPOINT_MAX)
    keys: SubscriptionKeys


class SubscriptionPublic(BaseModel):
    """A subscription as its owner sees it: the push service's host, never the endpoint (it is
    the key to send to the phone) nor the keys."""

    id: uuid.UUID
    push_service: str
    user_agent: str | None
    created_at: dt.datetime
    last_success_at: dt.datetime | None
