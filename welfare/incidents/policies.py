"""Escalation policies: per site, optionally overridden per resident. Managers set them; a
running incident keeps the steps it was opened with."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from sqlmodel import Session, col, select

from welfare.audit.service import audit_resident
from welfare.audit.service import record as audit_record
from welfare.authz import Actor, Permission, require_site
from welfare.db import utcnow
from welfare.errors import NotFound
from welfare.incidents.escalation import Policy
from welfare.incidents.models import EscalationPolicy
from welfare.residents.models import Resident
from welfare.sites.models import Site


class PolicyBody(BaseModel):
    contact_interval_seconds: int = Field(default=120, ge=30, le=3600)
    manager_after_seconds: int = Field(default=600, ge=0, le=24 * 3600)
    # "sms" means every written channel the contact takes (SMS, WhatsApp); "whatsapp" alone
    # means WhatsApp only for those who take it.
    channels: list[Literal["sms", "voice", "whatsapp"]] = Field(
        default=["sms", "voice"], min_length=1
    )
    repeat_list: int = Field(default=1, ge=0, le=3)
    urgent: bool = False
    # A contact's call that ends without a key (voicemail, no answer, busy, hung up) starts the
    # next contact's step at once instead of after the interval.
    advance_on_miss: bool = True

    @field_validator("channels")
    @classmethod
    def _dedupe(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class PolicyPublic(PolicyBody):
    site_id: uuid.UUID
    resident_id: uuid.UUID | None
    source: Literal["resident", "site", "default"]


def _row(
    session: Session, site_id: uuid.UUID, resident_id: uuid.UUID | None
) -> EscalationPolicy | None:
    query = select(EscalationPolicy).where(EscalationPolicy.site_id == site_id)
    query = query.where(
        EscalationPolicy.resident_id == resident_id
        if resident_id
        else EscalationPolicy.resident_id.is_(None)  # type: ignore[union-attr]
    )
    return session.exec(query).first()


def _scope(
    session: Session,
    actor: Actor,
    site_id: uuid.UUID | None,
    resident_id: uuid.UUID | None,
    permission: Permission,
) -> tuple[uuid.UUID, Resident | None]:
    if resident_id is not None:
        resident = session.get(Resident, resident_id)
        if resident is None or resident.erased_at is not None:
            raise NotFound("resident")
        require_site(actor, permission, resident.site_id, "resident")
        return resident.site_id, resident
    assert site_id is not None
    if session.get(Site, site_id) is None:
        raise NotFound("site")
    require_site(actor, permission, site_id, "site")
    return site_id, None


def effective_policy(
    *,
    session: Session,
    actor: Actor,
    site_id: uuid.UUID | None = None,
    resident_id: uuid.UUID | None = None,
) -> PolicyPublic:
    """The policy a new incident would snapshot, and where it comes from."""
    site, resident = _scope(session, actor, site_id, resident_id, Permission.registry_read)
    row = _row(session, site, resident.id) if resident else None
    source: Literal["resident", "site", "default"] = "resident"
    if row is None:
        row, source = _row(session, site, None), "site"
    if row is None:
        source = "default"
    policy = Policy.from_json(row.settings if row else None)
    return PolicyPublic(
        site_id=site,
        resident_id=resident.id if resident else None,
        source=source,
        **{**policy.to_json()},
    )


def resident_overrides(
    *, session: Session, actor: Actor, site_id: uuid.UUID
) -> list[EscalationPolicy]:
    """The site's residents who have a policy of their own (the site's policy page lists them)."""
    site, _ = _scope(session, actor, site_id, None, Permission.registry_read)
    return list(
        session.exec(
            select(EscalationPolicy).where(
                EscalationPolicy.site_id == site, col(EscalationPolicy.resident_id).is_not(None)
            )
        ).all()
    )


def set_policy(
    *,
    session: Session,
    actor: Actor,
    body: PolicyBody,
    site_id: uuid.UUID | None = None,
    resident_id: uuid.UUID | None = None,
) -> PolicyPublic:
    site, resident = _scope(session, actor, site_id, resident_id, Permission.escalation_policy)
    row = _row(session, site, resident.id if resident else None)
    if row is None:
        row = EscalationPolicy(site_id=site, resident_id=resident.id if resident else None)
    row.settings = body.model_dump()
    row.updated_at, row.updated_by = utcnow(), actor.user_id
    session.add(row)
    session.flush()
    if resident is not None:
        audit_resident(
            session,
            actor,
            "policy.set",
            resident,
            entity="escalation_policy",
            entity_id=row.id,
            detail=body.model_dump(),
        )
    else:
        audit_record(
            session,
            actor=actor,
            action="policy.set",
            entity="escalation_policy",
            entity_id=row.id,
            site_id=site,
            detail=body.model_dump(),
        )
    return effective_policy(session=session, actor=actor, site_id=site_id, resident_id=resident_id)


def clear_resident_policy(*, session: Session, actor: Actor, resident_id: uuid.UUID) -> None:
    site, resident = _scope(session, actor, None, resident_id, Permission.escalation_policy)
    row = _row(session, site, resident_id)
    if row is None:
        raise NotFound("resident policy")
    session.delete(row)
    assert resident is not None
    audit_resident(
        session, actor, "policy.clear", resident, entity="escalation_policy", entity_id=row.id
    )
