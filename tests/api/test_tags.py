from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import pytest
import qrcode
from fastapi.testclient import TestClient
from PIL import Image
from qrcode.constants import ERROR_CORRECT_Q
from sqlmodel import Session, select

from tests.conftest import SYSTEM
from welfare import consents
from welfare.consent.models import ConsentCreate
from welfare.residents.models import Resident
from welfare.settings import Settings
from welfare.tags import codes
from welfare.tags import service as tags
from welfare.tags.models import ResidentTag

Headers = Callable[..., dict[str, str]]


def _consent(db: Session, resident: Resident, scopes: list[str]) -> Any:
    consent = consents.record_consent(
        session=db,
        actor=SYSTEM,
        resident_id=resident.id,
        data=ConsentCreate(
            given_by_kind="resident", given_by_name="Wang Jianguo", method="written", scopes=scopes
        ),
    )
    db.commit()
    return consent


@pytest.fixture
def consented(db: Session, make_resident: Callable[..., Resident]) -> Resident:
    resident = make_resident()
    _consent(db, resident, ["registry", "lost_person_response"])
    return resident


def test_issued_tag_is_opaque_random_and_its_url_carries_no_personal_data(
    client: TestClient, consented: Resident, headers_for: Headers, settings: Settings
) -> None:
    response = client.post(f"/api/v1/residents/{consented.id}/tag", headers=headers_for("staff"))
    assert response.status_code == 201, response.text
    body = response.json()
    code = body["code"]
    # A printed code: three groups of five from Crockford's alphabet, 70 random bits and a check.
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){2}", code), code
    assert codes.is_valid(codes.normalise(code))
    assert str(consented.id).replace("-", "") not in code and str(consented.id) not in body["url"]
    assert body["url"] == f"{settings.public_base_url}/t/{code}"
    for personal in ("Wang", "1609", "Jianguo"):
        assert personal not in body["url"]


def test_reissuing_revokes_the_earlier_code(
    client: TestClient, db: Session, consented: Resident, headers_for: Headers
) -> None:
    staff = headers_for("staff")
    first = client.post(f"/api/v1/residents/{consented.id}/tag", headers=staff).json()["code"]
    second = client.post(f"/api/v1/residents/{consented.id}/tag", headers=staff).json()["code"]
    assert first != second
    rows = {t.code: t for t in db.exec(select(ResidentTag)).all()}
    assert rows[first].revoked_at is not None and rows[second].revoked_at is None
    assert (
        client.get(f"/api/v1/residents/{consented.id}/tag", headers=staff).json()["code"] == second
    )


def test_revoked_tag_is_gone_and_revoking_again_is_404(
    client: TestClient, consented: Resident, headers_for: Headers
) -> None:
    staff = headers_for("staff")
    client.post(f"/api/v1/residents/{consented.id}/tag", headers=staff)
    assert client.delete(f"/api/v1/residents/{consented.id}/tag", headers=staff).status_code == 204
    assert client.get(f"/api/v1/residents/{consented.id}/tag", headers=staff).status_code == 404
    assert client.delete(f"/api/v1/residents/{consented.id}/tag", headers=staff).status_code == 404
    assert client.get(f"/api/v1/residents/{consented.id}/tag.png", headers=staff).status_code == 404


def test_no_tag_without_the_lost_person_consent(
    client: TestClient, db: Session, make_resident: Callable[..., Resident], headers_for: Headers
) -> None:
    resident = make_resident()
    staff = headers_for("staff")
    assert client.post(f"/api/v1/residents/{resident.id}/tag", headers=staff).status_code == 409
    _consent(db, resident, ["registry", "welfare_visits"])
    assert client.post(f"/api/v1/residents/{resident.id}/tag", headers=staff).status_code == 409


def test_label_is_a_png_qr_code_of_the_tag_url(
    client: TestClient, consented: Resident, headers_for: Headers
) -> None:
    staff = headers_for("staff")
    url = client.post(f"/api/v1/residents/{consented.id}/tag", headers=staff).json()["url"]
    response = client.get(f"/api/v1/residents/{consented.id}/tag.png", headers=staff)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "PNG" and image.width >= 200
    # The label must encode exactly the tag URL: compare its modules with a fresh QR of it.
    expected = qrcode.QRCode(error_correction=ERROR_CORRECT_Q, box_size=8, border=4)
    expected.add_data(url)
    expected.make(fit=True)
    matrix = expected.get_matrix()
    box, offset = 8, (image.width - len(matrix) * 8) // 2
    pixels = image.convert("L")
    read = [
        [
            pixels.getpixel((offset + c * box + box // 2, r * box + box // 2)) < 128
            for c in range(len(matrix))
        ]
        for r in range(len(matrix))
    ]
    assert read == matrix


def _dark_rows(image: Image.Image, top: int, bottom: int) -> list[int]:
    pixels = image.convert("L")
    width = range(image.width)
    return [y for y in range(top, bottom) if any(pixels.getpixel((x, y)) < 128 for x in width)]


def _qr_height(url: str) -> int:
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_Q, box_size=8, border=4)
    qr.add_data(url)
    qr.make(fit=True)
    return len(qr.get_matrix()) * 8


def test_the_label_prints_the_code_large_under_the_qr(
    client: TestClient, consented: Resident, headers_for: Headers
) -> None:
    staff = headers_for("staff")
    tag = client.post(f"/api/v1/residents/{consented.id}/tag", headers=staff).json()
    assert tag["url"].endswith("/t/" + tag["code"])  # the QR's URL carries the printed code
    image = Image.open(io.BytesIO(client.get(tag["label_url"], headers=staff).content))
    qr_height, band = _qr_height(tag["url"]), tags.CODE_FONT_SIZE + 16
    # The code's line: letters about as tall as the font size, twice the caption's.
    code_rows = _dark_rows(image, qr_height, qr_height + band)
    assert code_rows and code_rows[-1] - code_rows[0] >= tags.CODE_FONT_SIZE * 0.6
    assert _dark_rows(image, qr_height + band, image.height)  # then the caption
    # The line is drawn from the code: another code, another label.
    assert tags.render_label(tag["url"], codes.new_code(), None) != tags.render_label(
        tag["url"], tag["code"], None
    )


def test_a_tag_issued_before_printed_codes_keeps_its_label_without_a_code_line(
    client: TestClient, db: Session, consented: Resident, headers_for: Headers
) -> None:
    token = "Zq3r_-8kT0bNw9LmPa2vXg"  # secrets.token_urlsafe(16), as tags were issued before
    db.add(ResidentTag(resident_id=consented.id, code=token))
    db.commit()
    staff = headers_for("staff")
    url = client.get(f"/api/v1/residents/{consented.id}/tag", headers=staff).json()["url"]
    assert url.endswith("/t/" + token)
    png = client.get(f"/api/v1/residents/{consented.id}/tag.png", headers=staff).content
    assert Image.open(io.BytesIO(png)).height == _qr_height(url) + 40  # QR and caption only


def test_erasure_deletes_the_tag(
    client: TestClient,
    db: Session,
    settings: Settings,
    make_resident: Callable[..., Resident],
    headers_for: Headers,
) -> None:
    resident = make_resident()
    consent = _consent(db, resident, ["registry", "lost_person_response"])
    staff = headers_for("staff")
    assert client.post(f"/api/v1/residents/{resident.id}/tag", headers=staff).status_code == 201
    withdraw = f"/api/v1/residents/{resident.id}/consents/{consent.id}/withdraw"
    assert client.post(withdraw, headers=staff, json={}).status_code == 200
    assert db.exec(select(ResidentTag).where(ResidentTag.resident_id == resident.id)).all() == []


def test_guard_cannot_issue_or_print_tags(
    client: TestClient, consented: Resident, headers_for: Headers
) -> None:
    guard = headers_for("guard")
    assert client.post(f"/api/v1/residents/{consented.id}/tag", headers=guard).status_code == 403
    assert client.get(f"/api/v1/residents/{consented.id}/tag.png", headers=guard).status_code == 403
