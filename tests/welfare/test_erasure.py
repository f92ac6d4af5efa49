"""The erasure plan (welfare/erasure.py) is the one rule: what it says a withdrawal erases is
what the withdrawal then erases, figure by figure."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image
from sqlmodel import Session, col, func, select

from tests.conftest import ALL_SCOPES, SYSTEM
from welfare import consents, erasure
from welfare.audit.models import AuditEntry
from welfare.consent.models import Consent, ConsentScope
from welfare.db import utcnow
from welfare.errors import NotFound
from welfare.incidents.models import Incident, IncidentKind, IncidentStatus
from welfare.residents import service as residents
from welfare.residents.models import Contact, Resident
from welfare.settings import Settings
from welfare.tags.models import ResidentTag
from welfare.tags.service import issue_tag

Photographed = Callable[..., Incident]


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (50, 50), (10, 120, 30)).save(out, format="JPEG")
    return out.getvalue()


@pytest.fixture
def photographed(db: Session) -> Photographed:
    """An incident about the resident with a guard's photo on it (running unless closed)."""

    def make(resident: Resident, *, closed: bool = False) -> Incident:
        incident = Incident(
            reference=uuid.uuid4().hex[:8].upper(),
            site_id=resident.site_id,
            resident_id=resident.id,
            kind=IncidentKind.missing,
            status=IncidentStatus.resolved if closed else IncidentStatus.open,
            closed_at=utcnow() if closed else None,
            photo_file=f"{uuid.uuid4().hex}.jpg",
            thumbnail_file=f"{uuid.uuid4().hex}.jpg",
        )
        db.add(incident)
        db.commit()
        return incident

    return make


def _count(db: Session, query: Any) -> int:
    return int(db.exec(query).one())


def _contacts(db: Session, resident: Resident) -> int:
    return _count(db, select(func.count()).where(col(Contact.resident_id) == resident.id))


def _incident_photos(db: Session, resident: Resident) -> int:
    return _count(
        db,
        select(func.count()).where(
            Incident.resident_id == resident.id, col(Incident.photo_file).is_not(None)
        ),
    )


def _withdraw(db: Session, settings: Settings, consent: Consent) -> list[str]:
    """Withdraw and return what the audit says was erased."""
    consents.withdraw_consent(
        session=db,
        actor=SYSTEM,
        settings=settings,
        resident_id=consent.resident_id,
        consent_id=consent.id,
    )
    db.commit()
    entry = db.exec(
        select(AuditEntry).where(
            AuditEntry.action == "consent.withdraw", AuditEntry.entity_id == str(consent.id)
        )
    ).one()
    return list(entry.detail["erased"])


def _plan(db: Session, consent: Consent) -> erasure.ErasurePlan:
    plan = erasure.erasure_plan(
        session=db, actor=SYSTEM, resident_id=consent.resident_id, consent_id=consent.id
    )
    db.commit()
    return plan


def test_the_record_plan_counts_what_the_withdrawal_erases(
    db: Session,
    settings: Settings,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Consent],
    make_contact: Callable[..., Contact],
    photographed: Photographed,
) -> None:
    resident = make_resident()
    consent = make_consent(resident)
    make_contact(resident)
    make_contact(resident, name="Wang Mei", phone="9123 4568")
    issue_tag(session=db, actor=SYSTEM, resident_id=resident.id)
    residents.set_photo(
        session=db, actor=SYSTEM, settings=settings, resident_id=resident.id, data=_jpeg()
    )
    db.commit()
    running = photographed(resident)
    photographed(resident, closed=True)

    plan = _plan(db, consent)
    assert plan.erases == "record" and plan.record and not plan.photo
    assert plan.lost == sorted(ConsentScope(s) for s in ALL_SCOPES)
    assert (plan.contacts, plan.tag, plan.incidents_open, plan.incident_photos) == (2, True, 1, 2)

    assert _withdraw(db, settings, consent) == plan.erased == ["record"]
    db.expire_all()
    assert plan.contacts == 2 and _contacts(db, resident) == 0
    assert db.exec(select(ResidentTag).where(ResidentTag.resident_id == resident.id)).all() == []
    assert plan.incident_photos == 2 and _incident_photos(db, resident) == 0
    cancelled = db.get(Incident, running.id)
    assert cancelled is not None and cancelled.status == IncidentStatus.cancelled
    erased = db.get(Resident, resident.id)
    assert erased is not None and erased.erased_at is not None and erased.photo_file is None


def test_the_photo_plan_counts_what_the_withdrawal_erases(
    db: Session,
    settings: Settings,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Consent],
    make_contact: Callable[..., Contact],
    photographed: Photographed,
) -> None:
    resident = make_resident()
    make_consent(resident, scopes=["registry", "lost_person_response"])
    photo_consent = make_consent(resident, scopes=["photo"])
    make_contact(resident)
    residents.set_photo(
        session=db, actor=SYSTEM, settings=settings, resident_id=resident.id, data=_jpeg()
    )
    db.commit()
    photographed(resident, closed=True)

    plan = _plan(db, photo_consent)
    assert plan.erases == "photo" and plan.photo and not plan.record
    assert plan.lost == [ConsentScope.photo]
    assert (plan.contacts, plan.tag, plan.incidents_open, plan.incident_photos) == (0, False, 0, 1)

    assert _withdraw(db, settings, photo_consent) == plan.erased == ["photo", "incident photos"]
    db.expire_all()
    kept = db.get(Resident, resident.id)
    assert kept is not None and kept.erased_at is None and kept.photo_file is None
    assert _incident_photos(db, resident) == 0 and _contacts(db, resident) == 1


def test_a_consent_another_one_covers_erases_nothing(
    db: Session,
    settings: Settings,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Consent],
    photographed: Photographed,
) -> None:
    resident = make_resident()
    make_consent(resident)
    second = make_consent(resident)
    residents.set_photo(
        session=db, actor=SYSTEM, settings=settings, resident_id=resident.id, data=_jpeg()
    )
    db.commit()
    photographed(resident, closed=True)

    plan = _plan(db, second)
    assert plan.erases == "nothing" and plan.lost == [] and plan.incident_photos == 0

    assert _withdraw(db, settings, second) == plan.erased == []
    db.expire_all()
    kept = db.get(Resident, resident.id)
    assert kept is not None and kept.photo_file is not None
    assert _incident_photos(db, resident) == 1


def test_the_plan_is_only_for_the_residents_own_consent(
    db: Session, make_resident: Callable[..., Resident], make_consent: Callable[..., Consent]
) -> None:
    resident = make_resident()
    other = make_consent(make_resident(full_name="Li Mei"))
    with pytest.raises(NotFound):
        erasure.erasure_plan(session=db, actor=SYSTEM, resident_id=resident.id, consent_id=other.id)
