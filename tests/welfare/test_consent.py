from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import Session, select

from tests.conftest import SYSTEM
from welfare import consents
from welfare.audit.models import AuditEntry
from welfare.consent.models import Consent, ConsentCreate, ConsentState
from welfare.db import utcnow
from welfare.residents import service as residents
from welfare.residents.models import Contact, Resident
from welfare.settings import Settings

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
FULL = ["registry", "lost_person_response", "welfare_visits", "photo", "share_with_responders"]


def _consent(**overrides: Any) -> ConsentCreate:
    data = {
        "given_by_kind": "guardian",
        "given_by_name": "Wang Lei",
        "given_by_relationship": "son",
        "method": "written",
        "scopes": FULL,
    } | overrides
    return ConsentCreate(**data)


def _row(review_due: dt.datetime, withdrawn: bool = False) -> Consent:
    return Consent(
        resident_id=uuid.uuid4(),
        given_by_kind="resident",
        method="verbal",
        scopes=["registry"],
        given_at=review_due - dt.timedelta(days=365),
        review_due=review_due,
        withdrawn_at=NOW if withdrawn else None,
    )


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([], ConsentState.none),
        ([_row(NOW + dt.timedelta(days=1))], ConsentState.active),
        ([_row(NOW - dt.timedelta(days=1))], ConsentState.unverified),
        ([_row(NOW + dt.timedelta(days=1), withdrawn=True)], ConsentState.withdrawn),
        ([_row(NOW - dt.timedelta(days=1)), _row(NOW + dt.timedelta(days=9))], ConsentState.active),
        (
            [_row(NOW + dt.timedelta(days=1), withdrawn=True), _row(NOW - dt.timedelta(days=1))],
            ConsentState.unverified,
        ),
    ],
)
def test_consent_state_is_derived_from_live_consents_and_review_dates(
    rows: list[Consent], expected: ConsentState
) -> None:
    assert consents.derive_state(rows, NOW) == expected


def test_review_defaults_to_twelve_months_after_consent(
    db: Session, make_resident: Callable[..., Resident]
) -> None:
    resident = make_resident()
    given = dt.datetime(2026, 1, 31, 9, 0, tzinfo=dt.UTC)
    consent = consents.record_consent(
        session=db, actor=SYSTEM, resident_id=resident.id, data=_consent(given_at=given)
    )
    assert consent.review_due == dt.datetime(2027, 1, 31, 9, 0, tzinfo=dt.UTC)


def test_overdue_review_marks_the_resident_unverified(
    db: Session,
    make_resident: Callable[..., Resident],
    client: TestClient,
    headers_for: Callable[..., dict[str, str]],
) -> None:
    resident = make_resident()
    consents.record_consent(
        session=db,
        actor=SYSTEM,
        resident_id=resident.id,
        data=_consent(
            given_at=utcnow() - dt.timedelta(days=400), review_due=utcnow() - dt.timedelta(days=35)
        ),
    )
    db.commit()
    body = client.get(f"/api/v1/residents/{resident.id}", headers=headers_for("staff")).json()
    assert body["consent_state"] == "unverified"


def test_guardian_consent_needs_the_relationship(
    client: TestClient,
    make_resident,
    headers_for,
) -> None:
    resident = make_resident()
    response = client.post(
        f"/api/v1/residents/{resident.id}/consents",
        headers=headers_for("staff"),
        json={
            "given_by_kind": "guardian",
            "given_by_name": "Wang Lei",
            "method": "written",
            "scopes": ["registry"],
        },
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == "given_by_relationship"


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (50, 50), (10, 120, 30)).save(out, format="JPEG")
    return out.getvalue()


def test_withdrawing_the_registry_consent_erases_the_resident(
    db: Session,
    settings: Settings,
    client: TestClient,
    make_resident: Callable[..., Resident],
    make_contact: Callable[..., Contact],
    headers_for: Callable[..., dict[str, str]],
) -> None:
    resident = make_resident(full_name="Zhou Xiuying", aliases=["周秀英"], places=["bus stop"])
    make_contact(resident, name="Zhou Ping", phone="9123 4567")
    consent = consents.record_consent(
        session=db, actor=SYSTEM, resident_id=resident.id, data=_consent(given_by_name="Zhou Ping")
    )
    residents.set_photo(
        session=db, actor=SYSTEM, settings=settings, resident_id=resident.id, data=_jpeg()
    )
    db.commit()
    photos = list((settings.media_dir / "photos").iterdir())
    assert len(photos) == 2

    staff = headers_for("staff")
    response = client.post(
        f"/api/v1/residents/{resident.id}/consents/{consent.id}/withdraw",
        headers=staff,
        json={"reason": "family moved away"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["given_by_name"] is None

    db.expire_all()
    tombstone = db.get(Resident, resident.id)
    assert tombstone is not None and tombstone.erased_at is not None
    assert tombstone.full_name is None and tombstone.aliases == [] and tombstone.places == []
    assert tombstone.medical_notes is None and tombstone.household_id is None
    assert db.exec(select(Contact).where(Contact.resident_id == resident.id)).all() == []
    assert list((settings.media_dir / "photos").iterdir()) == []
    shown = client.get(f"/api/v1/residents/{resident.id}", headers=staff).json()
    assert shown["consent_state"] == "withdrawn" and shown["full_name"] is None
    for entry in db.exec(select(AuditEntry)).all():
        assert "Zhou" not in str(entry.detail) and "Zhou" not in (entry.purpose or "")


def test_withdrawing_only_the_photo_scope_deletes_the_photo_but_keeps_the_record(
    db: Session, settings: Settings, make_resident: Callable[..., Resident]
) -> None:
    resident = make_resident()
    consents.record_consent(
        session=db,
        actor=SYSTEM,
        resident_id=resident.id,
        data=_consent(scopes=["registry", "lost_person_response"]),
    )
    photo_consent = consents.record_consent(
        session=db, actor=SYSTEM, resident_id=resident.id, data=_consent(scopes=["photo"])
    )
    residents.set_photo(
        session=db, actor=SYSTEM, settings=settings, resident_id=resident.id, data=_jpeg()
    )
    db.commit()
    consents.withdraw_consent(
        session=db,
        actor=SYSTEM,
        settings=settings,
        resident_id=resident.id,
        consent_id=photo_consent.id,
    )
    db.commit()
    db.refresh(resident)
    assert resident.photo_file is None and resident.full_name == "Wang Jianguo"
    assert list((settings.media_dir / "photos").iterdir()) == []
    assert consents.state_of(db, resident) == ConsentState.active


def test_withdrawing_twice_is_a_conflict(
    db: Session,
    settings: Settings,
    make_resident: Callable[..., Resident],
    client: TestClient,
    headers_for: Callable[..., dict[str, str]],
) -> None:
    resident = make_resident()
    consent = consents.record_consent(
        session=db, actor=SYSTEM, resident_id=resident.id, data=_consent()
    )
    db.commit()
    url = f"/api/v1/residents/{resident.id}/consents/{consent.id}/withdraw"
    staff = headers_for("staff")
    assert client.post(url, headers=staff, json={}).status_code == 200
    assert client.post(url, headers=staff, json={}).status_code == 409


def test_erasure_leaves_no_readable_copy_in_the_sqlite_files(
    db: Session,
    settings: Settings,
    make_resident: Callable[..., Resident],
    make_contact: Callable[..., Contact],
) -> None:
    if not settings.is_sqlite:
        pytest.skip("the on-disk check is about SQLite's own files")
    marker = "Quixotically Unforgettable"
    resident = make_resident(
        full_name=marker, medical_notes=f"{marker} notes", approach=f"{marker} approach"
    )
    make_contact(resident, name=f"{marker} Junior")
    consent = consents.record_consent(
        session=db,
        actor=SYSTEM,
        resident_id=resident.id,
        data=_consent(given_by_name=f"{marker} Senior"),
    )
    db.commit()
    path = Path(settings.database_url.removeprefix("sqlite:///"))
    before = path.read_bytes() + (
        Path(f"{path}-wal").read_bytes() if Path(f"{path}-wal").exists() else b""
    )
    assert marker.encode() in before  # the check below can fail

    consents.withdraw_consent(
        session=db, actor=SYSTEM, settings=settings, resident_id=resident.id, consent_id=consent.id
    )
    db.commit()
    db.close()

    for suffix in ("", "-wal", "-journal"):
        file = Path(f"{path}{suffix}")
        if file.exists():
            assert marker.encode() not in file.read_bytes(), f"name left in {file.name}"


def test_no_photo_is_stored_without_the_photo_scope(
    client: TestClient,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    headers_for: Callable[..., dict[str, str]],
    settings: Settings,
) -> None:
    resident = make_resident()
    make_consent(resident, scopes=["registry", "lost_person_response"])
    response = client.put(
        f"/api/v1/residents/{resident.id}/photo",
        headers=headers_for("staff"),
        files={"file": ("face.jpg", _jpeg(), "image/jpeg")},
    )
    assert response.status_code == 409
    assert "photo scope" in response.json()["detail"]
    # Refused before the photo is even decoded: nothing was written, not even its folder.
    assert not (settings.media_dir / "photos").exists()
