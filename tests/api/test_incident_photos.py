"""The photo a guard takes on an incident: checked by content, stripped of metadata, seen only
by those on the incident, and deleted on consent withdrawal or after the retention period."""

from __future__ import annotations

import datetime as dt
import io
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image, TiffImagePlugin
from sqlmodel import Session, col, select

from api.app import create_app
from tests.conftest import SYSTEM
from welfare.audit.models import AuditEntry
from welfare.authz import Role
from welfare.consent.models import Consent
from welfare.incidents import photos as incident_photos
from welfare.incidents.models import Incident, IncidentEvent
from welfare.residents.models import Resident
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.users.models import User
from welfare.worker import housekeeping

Headers = Callable[..., dict[str, str]]
GPS_IFD = 0x8825


@pytest.fixture
def wang(make_resident: Callable[..., Resident], make_consent: Callable[..., Any]) -> Resident:
    resident = make_resident()
    make_consent(resident)
    return resident


@pytest.fixture
def guard_user(make_user: Callable[..., User], site: Site) -> User:
    return make_user(Role.guard, [site])


@pytest.fixture
def guard(login: Callable[..., dict[str, str]], guard_user: User) -> dict[str, str]:
    return login(guard_user)


def _jpeg(size: tuple[int, int] = (300, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (180, 40, 40)).save(out, format="JPEG")
    return out.getvalue()


def _jpeg_with_gps() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    exif.get_ifd(GPS_IFD).update(
        {
            1: "N",
            2: (
                TiffImagePlugin.IFDRational(22, 1),
                TiffImagePlugin.IFDRational(16, 1),
                TiffImagePlugin.IFDRational(4321, 100),
            ),
        }
    )
    out = io.BytesIO()
    Image.new("RGB", (300, 200), "blue").save(
        out, format="JPEG", exif=exif, comment=b"Block 1 meter room"
    )
    data = out.getvalue()
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(GPS_IFD)[1] == "N"
    return data


def _report(
    client: TestClient, headers: dict[str, str], resident: Resident, *, status: int = 201
) -> str:
    """Report the resident found; 201 opens an incident, 200 joins the open one."""
    response = client.post(
        "/api/v1/incidents",
        headers=headers,
        json={"resident_id": str(resident.id), "client_request_id": uuid.uuid4().hex},
    )
    assert response.status_code == status, response.text
    return str(response.json()["id"])


def _put_raw(
    client: TestClient, incident_id: str, headers: dict[str, str], data: bytes, ctype: str = ""
) -> Any:
    return client.put(
        f"/api/v1/incidents/{incident_id}/photo",
        content=data,
        headers={**headers, "Content-Type": ctype or "image/jpeg"},
    )


def _put_form(client: TestClient, incident_id: str, headers: dict[str, str], data: bytes) -> Any:
    return client.put(
        f"/api/v1/incidents/{incident_id}/photo",
        files={"file": ("photo.jpg", data, "image/jpeg")},
        headers=headers,
    )


def _stored(settings: Settings) -> set[str]:
    root = Path(settings.media_dir) / "photos"
    return {p.name for p in root.iterdir()} if root.exists() else set()


def _audits(db: Session, action: str) -> list[AuditEntry]:
    db.expire_all()
    query = select(AuditEntry).where(AuditEntry.action == action).order_by(col(AuditEntry.id))
    rows = list(db.exec(query).all())
    db.rollback()
    return rows


def _events(db: Session, incident_id: str, type_: str) -> list[IncidentEvent]:
    db.rollback()
    rows = db.exec(
        select(IncidentEvent).where(
            IncidentEvent.incident_id == uuid.UUID(incident_id), IncidentEvent.type == type_
        )
    ).all()
    return list(rows)


# --- upload and read ----------------------------------------------------------------------------


def test_reporting_guard_uploads_a_photo_and_reads_it_back_without_exif_or_gps(
    client: TestClient, db: Session, guard: dict[str, str], wang: Resident, settings: Settings
) -> None:
    incident_id = _report(client, guard, wang)
    assert client.get(f"/api/v1/incidents/{incident_id}", headers=guard).json()["photo_url"] is None

    response = _put_raw(client, incident_id, guard, _jpeg_with_gps())

    assert response.status_code == 200, response.text
    assert response.json()["photo_url"] == f"/api/v1/incidents/{incident_id}/photo"
    detail = client.get(f"/api/v1/incidents/{incident_id}", headers=guard).json()
    assert detail["photo_url"] == f"/api/v1/incidents/{incident_id}/photo"
    assert [e["type"] for e in detail["timeline"]].count("photo_added") == 1
    for query in ("", "?thumbnail=true", "?size=thumbnail"):
        photo = client.get(f"/api/v1/incidents/{incident_id}/photo{query}", headers=guard)
        assert photo.status_code == 200, photo.text
        assert photo.headers["content-type"] == "image/jpeg"
        assert photo.headers["cache-control"] == "private, no-store"
        image = Image.open(io.BytesIO(photo.content))
        assert dict(image.getexif()) == {}
        assert "comment" not in image.info
        assert b"SecretCam" not in photo.content and b"meter room" not in photo.content
    stored = _stored(settings)
    assert len(stored) == 2 and all(len(n) == 36 for n in stored)
    reads = _audits(db, "incident.photo_read")
    assert len(reads) == 3
    assert all(r.purpose == f"incident {incident_id}" for r in reads)
    assert len(_audits(db, "incident.photo_set")) == 1


def test_thumbnail_is_small(
    client: TestClient, guard: dict[str, str], wang: Resident, settings: Settings
) -> None:
    incident_id = _report(client, guard, wang)
    assert _put_form(client, incident_id, guard, _jpeg((2000, 1000))).status_code == 200
    thumb = client.get(f"/api/v1/incidents/{incident_id}/photo?thumbnail=true", headers=guard)
    assert Image.open(io.BytesIO(thumb.content)).size == (256, 128)
    full = client.get(f"/api/v1/incidents/{incident_id}/photo", headers=guard)
    assert Image.open(io.BytesIO(full.content)).size == (1600, 800)


def test_multipart_upload_like_the_resident_photo_route_works_and_replaces(
    client: TestClient, db: Session, guard: dict[str, str], wang: Resident, settings: Settings
) -> None:
    incident_id = _report(client, guard, wang)
    assert _put_form(client, incident_id, guard, _jpeg()).status_code == 200
    first = _stored(settings)
    response = _put_form(client, incident_id, guard, _jpeg((100, 100)))
    assert response.status_code == 200, response.text
    second = _stored(settings)
    assert len(second) == 2 and not (first & second)  # the old files went with the commit
    assert _events(db, incident_id, "photo_added")[-1].detail["replaced"] is True


def test_unknown_person_report_carries_a_photo(
    client: TestClient, guard: dict[str, str], site: Site
) -> None:
    response = client.post(
        "/api/v1/incidents",
        headers=guard,
        json={
            "description": "man, about 80, grey coat, asking for his door",
            "location": "Block 1, 3rd floor",
            "client_request_id": uuid.uuid4().hex,
        },
    )
    assert response.status_code == 201, response.text
    incident_id = response.json()["id"]
    assert response.json()["resident_id"] is None
    assert _put_raw(client, incident_id, guard, _jpeg()).status_code == 200
    staff = client.get(f"/api/v1/incidents/{incident_id}/photo", headers=guard)
    assert staff.status_code == 200


# --- refused uploads ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "ctype"),
    [
        (b"<html><script>alert(1)</script></html>", "image/jpeg"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "image/jpeg"),
        (b"GIF89a" + b"\x00" * 40, "image/gif"),
        (b'{"file": "abc"}', "application/json"),
    ],
    ids=["html-as-jpeg", "pdf-as-jpeg", "gif", "json"],
)
def test_a_file_disguised_as_a_photo_is_415_and_nothing_is_stored(
    client: TestClient,
    guard: dict[str, str],
    wang: Resident,
    settings: Settings,
    data: bytes,
    ctype: str,
) -> None:
    incident_id = _report(client, guard, wang)
    response = _put_raw(client, incident_id, guard, data, ctype)
    assert response.status_code == 415, response.text
    assert response.json() == {"detail": "photos must be JPEG, PNG or WebP"}
    assert _stored(settings) == set()


def test_damaged_jpeg_is_422_and_empty_body_is_422(
    client: TestClient, guard: dict[str, str], wang: Resident, settings: Settings
) -> None:
    incident_id = _report(client, guard, wang)
    data = _jpeg((800, 800))
    damaged = _put_raw(client, incident_id, guard, data[: len(data) // 2])
    assert damaged.status_code == 422
    assert damaged.json()["detail"][0]["loc"] == ["body", "file"]
    empty = _put_raw(client, incident_id, guard, b"")
    assert empty.status_code == 422
    wrong_field = client.put(
        f"/api/v1/incidents/{incident_id}/photo",
        files={"photo": ("p.jpg", _jpeg(), "image/jpeg")},
        headers=guard,
    )
    assert wrong_field.status_code == 422
    assert _stored(settings) == set()


@pytest.fixture
def small_limit_client(settings: Settings) -> Iterator[TestClient]:
    """The same database, with a 20 KiB photo limit."""
    app = create_app(settings.model_copy(update={"max_photo_bytes": 20 * 1024}))
    with TestClient(app, base_url="https://welfare.test") as test_client:
        yield test_client
    app.state.engine.dispose()


def test_oversized_photo_is_413(
    small_limit_client: TestClient,
    login: Callable[..., dict[str, str]],
    guard_user: User,
    wang: Resident,
    settings: Settings,
) -> None:
    client = small_limit_client
    headers = login(guard_user)  # a token valid for either app: same database and secret
    incident_id = _report(client, headers, wang)
    noise = Image.frombytes("RGB", (200, 200), os.urandom(200 * 200 * 3))
    out = io.BytesIO()
    noise.save(out, format="PNG")
    assert len(out.getvalue()) > 20 * 1024
    for response in (
        _put_raw(client, incident_id, headers, out.getvalue(), "image/png"),
        _put_form(client, incident_id, headers, out.getvalue()),
    ):
        assert response.status_code == 413, response.text
    assert _stored(settings) == set()


# --- who may ------------------------------------------------------------------------------------


def test_only_the_guards_on_the_incident_and_staff_may_add_or_see_the_photo(
    client: TestClient,
    make_user: Callable[..., User],
    login: Callable[..., dict[str, str]],
    make_site: Callable[..., Site],
    site: Site,
    guard: dict[str, str],
    wang: Resident,
) -> None:
    incident_id = _report(client, guard, wang)
    colleague = login(make_user(Role.guard, [site]))
    staff = login(make_user(Role.staff, [site]))
    elsewhere = login(make_user(Role.staff, [make_site(name="Elsewhere Court")]))

    assert _put_raw(client, incident_id, colleague, _jpeg()).status_code == 403
    assert _put_raw(client, incident_id, elsewhere, _jpeg()).status_code == 404
    assert _put_raw(client, incident_id, staff, _jpeg()).status_code == 200
    url = f"/api/v1/incidents/{incident_id}/photo"
    assert client.get(url, headers=colleague).status_code == 403
    assert client.get(url, headers=elsewhere).status_code == 404
    assert client.get(url, headers=staff).status_code == 200
    assert client.get(url, headers=guard).status_code == 200
    assert client.get(url).status_code == 401
    # The colleague takes the incident on: from then on they are on it.
    assert (
        client.post(f"/api/v1/incidents/{incident_id}/claim", headers=colleague).status_code == 201
    )
    assert client.get(url, headers=colleague).status_code == 200
    assert _put_raw(client, incident_id, colleague, _jpeg()).status_code == 200


def test_a_guard_whose_report_was_folded_into_an_open_incident_may_add_the_photo(
    client: TestClient,
    make_user: Callable[..., User],
    login: Callable[..., dict[str, str]],
    site: Site,
    guard: dict[str, str],
    wang: Resident,
) -> None:
    incident_id = _report(client, guard, wang)
    second = login(make_user(Role.guard, [site]))
    assert _report(client, second, wang, status=200) == incident_id  # the open one, reused
    assert _put_raw(client, incident_id, second, _jpeg()).status_code == 200


def test_a_closed_incident_refuses_a_photo_and_the_guard_loses_sight_of_it(
    client: TestClient,
    make_user: Callable[..., User],
    login: Callable[..., dict[str, str]],
    site: Site,
    guard: dict[str, str],
    wang: Resident,
    settings: Settings,
) -> None:
    incident_id = _report(client, guard, wang)
    assert _put_raw(client, incident_id, guard, _jpeg()).status_code == 200
    resolved = client.post(
        f"/api/v1/incidents/{incident_id}/resolve",
        headers=guard,
        json={"outcome": "handed_over", "handed_to": "son"},
    )
    assert resolved.status_code == 200, resolved.text
    before = _stored(settings)

    refused = _put_raw(client, incident_id, guard, _jpeg())

    assert refused.status_code == 409
    assert refused.json() == {"detail": "the incident is already resolved"}
    assert _stored(settings) == before
    url = f"/api/v1/incidents/{incident_id}/photo"
    assert client.get(url, headers=guard).status_code == 403
    staff = login(make_user(Role.staff, [site]))
    assert client.get(url, headers=staff).status_code == 200


# --- privacy: erasure and retention -------------------------------------------------------------


def test_withdrawing_consent_deletes_the_incident_photo_files(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    login: Callable[..., dict[str, str]],
    site: Site,
    guard: dict[str, str],
    wang: Resident,
    settings: Settings,
) -> None:
    incident_id = _report(client, guard, wang)
    assert _put_raw(client, incident_id, guard, _jpeg()).status_code == 200
    assert len(_stored(settings)) == 2
    staff = login(make_user(Role.staff, [site]))
    consent = db.exec(select(Consent).where(Consent.resident_id == wang.id)).one()

    response = client.post(
        f"/api/v1/residents/{wang.id}/consents/{consent.id}/withdraw",
        headers=staff,
        json={"reason": "family asked"},
    )

    assert response.status_code == 200, response.text
    assert _stored(settings) == set()
    db.rollback()  # a fresh snapshot: the withdrawal committed in another session
    incident = db.get(Incident, uuid.UUID(incident_id))
    assert incident is not None
    assert incident.photo_file is None and incident.thumbnail_file is None
    assert client.get(f"/api/v1/incidents/{incident_id}", headers=staff).json()["photo_url"] is None
    assert client.get(f"/api/v1/incidents/{incident_id}/photo", headers=staff).status_code == 404
    deleted = _events(db, incident_id, "photo_deleted")
    assert [e.detail for e in deleted] == [{"reason": "consent withdrawn"}]


def test_photos_are_deleted_by_housekeeping_after_the_retention_period(
    client: TestClient,
    db: Session,
    guard: dict[str, str],
    wang: Resident,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    settings: Settings,
) -> None:
    closed_id = _report(client, guard, wang)
    assert _put_raw(client, closed_id, guard, _jpeg()).status_code == 200
    client.post(f"/api/v1/incidents/{closed_id}/resolve", headers=guard, json={"outcome": "police"})
    other = make_resident()
    make_consent(other)
    open_id = _report(client, guard, other)
    assert _put_raw(client, open_id, guard, _jpeg()).status_code == 200
    assert len(_stored(settings)) == 4
    db.expire_all()
    closed = db.get(Incident, uuid.UUID(closed_id))
    assert closed is not None and closed.closed_at is not None
    days = settings.incident_photo_retention_days
    assert days == 30

    early = incident_photos.expire_photos(db, settings, closed.closed_at + dt.timedelta(days=29))
    assert early == 0
    db.commit()
    assert len(_stored(settings)) == 4

    # The worker's housekeeping runs it with the real clock: move the incident's close back.
    closed.closed_at = closed.closed_at - dt.timedelta(days=days, minutes=1)
    db.add(closed)
    db.commit()
    result = housekeeping(db, settings)
    db.commit()

    assert result.incident_photos == 1
    assert len(_stored(settings)) == 2  # only the open incident's photo is left
    db.expire_all()
    assert db.get(Incident, uuid.UUID(closed_id)).photo_file is None  # type: ignore[union-attr]
    assert db.get(Incident, uuid.UUID(open_id)).photo_file is not None  # type: ignore[union-attr]
    assert [e.detail for e in _events(db, closed_id, "photo_deleted")] == [{"reason": "retention"}]
    assert len(_audits(db, "incident.photo_delete")) == 1


def test_a_failed_transaction_leaves_no_files_behind(
    db: Session, wang: Resident, settings: Settings, guard_user: User
) -> None:
    from welfare.incidents import service as incidents
    from welfare.incidents.models import IncidentCreate

    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(resident_id=wang.id, client_request_id=uuid.uuid4().hex),
    )
    db.commit()
    incident_photos.set_photo(
        session=db, actor=SYSTEM, settings=settings, incident_id=opened.incident.id, data=_jpeg()
    )
    assert len(_stored(settings)) == 2
    db.rollback()
    assert _stored(settings) == set()


def test_withdrawing_only_the_photo_consent_deletes_the_incident_photos_and_says_so_first(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    login: Callable[..., dict[str, str]],
    page_login: Callable[..., str],
    site: Site,
    guard: dict[str, str],
    settings: Settings,
) -> None:
    park = make_resident()
    make_consent(park, scopes=["registry", "lost_person_response"])
    photo_consent = make_consent(park, scopes=["photo"])
    incident_id = _report(client, guard, park)
    assert _put_raw(client, incident_id, guard, _jpeg()).status_code == 200
    staff_user = make_user(Role.staff, [site])

    page_login(staff_user)
    page = client.get(f"/console/residents/{park.id}/consents/{photo_consent.id}/withdraw")
    assert page.status_code == 200
    assert "Photos guards took on 1 incident(s) (the files are deleted)." in page.text

    response = client.post(
        f"/api/v1/residents/{park.id}/consents/{photo_consent.id}/withdraw",
        headers=login(staff_user),
        json={"reason": "no photos, please"},
    )

    assert response.status_code == 200, response.text
    assert _stored(settings) == set()
    db.rollback()
    resident = db.get(Resident, park.id)
    assert resident is not None and resident.erased_at is None  # the record stays
    assert db.get(Incident, uuid.UUID(incident_id)).photo_file is None  # type: ignore[union-attr]
    withdrawal = _audits(db, "consent.withdraw")[-1]
    assert "incident photos" in str(withdrawal.detail)
