"""Resident photos: checked by content, re-encoded without metadata, stored under random names."""

from __future__ import annotations

import io
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image, TiffImagePlugin

from api.app import create_app
from welfare.residents.models import Resident
from welfare.settings import Settings
from welfare.sites.models import Site

Headers = Callable[..., dict[str, str]]

GPS_IFD = 0x8825
ORIENTATION = 0x0112
SECRET_COMMENT = b"taken at 12 Secret Road by Wang Lei"


@pytest.fixture
def staff(headers_for: Headers) -> dict[str, str]:
    return headers_for("staff")


@pytest.fixture
def resident(make_resident: Callable[..., Resident], make_consent: Callable[..., Any]) -> Resident:
    resident = make_resident()
    make_consent(resident)  # photos need the photo scope
    return resident


def _image(
    fmt: str = "JPEG", size: tuple[int, int] = (300, 200), mode: str = "RGB", **save: Any
) -> bytes:
    image = Image.new(mode, size, "red" if mode != "1" else 1)
    out = io.BytesIO()
    image.save(out, format=fmt, **save)
    return out.getvalue()


def _jpeg_with_exif_and_gps() -> bytes:
    """300x200 pixels, left half red, with camera, GPS and Orientation=6 (rotate 90 CW)."""
    image = Image.new("RGB", (300, 200), "blue")
    image.paste((255, 0, 0), (0, 0, 150, 200))
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[0x010F] = "SecretCam"  # Make
    exif[0x0131] = "Camera firmware 1.0"  # Software
    exif.get_ifd(GPS_IFD).update(
        {
            1: "N",  # GPSLatitudeRef
            2: (
                TiffImagePlugin.IFDRational(22, 1),
                TiffImagePlugin.IFDRational(16, 1),
                TiffImagePlugin.IFDRational(4321, 100),
            ),
            3: "E",
            4: (
                TiffImagePlugin.IFDRational(114, 1),
                TiffImagePlugin.IFDRational(10, 1),
                TiffImagePlugin.IFDRational(1234, 100),
            ),
        }
    )
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, comment=SECRET_COMMENT)
    data = out.getvalue()
    # The test image really carries what must be removed.
    check = Image.open(io.BytesIO(data))
    assert check.getexif()[ORIENTATION] == 6
    assert check.getexif().get_ifd(GPS_IFD)[1] == "N"
    assert check.info["comment"] == SECRET_COMMENT
    return data


def _put(
    client: TestClient,
    resident: Resident | uuid.UUID,
    headers: dict[str, str],
    data: bytes,
    name: str = "photo.jpg",
    content_type: str = "image/jpeg",
) -> Any:
    resident_id = resident.id if isinstance(resident, Resident) else resident
    return client.put(
        f"/api/v1/residents/{resident_id}/photo",
        files={"file": (name, data, content_type)},
        headers=headers,
    )


def _photos_dir(settings: Settings) -> Path:
    return Path(settings.media_dir) / "photos"


def _stored(settings: Settings) -> set[str]:
    root = _photos_dir(settings)
    return {p.name for p in root.iterdir()} if root.exists() else set()


def _download(
    client: TestClient, resident: Resident, headers: dict[str, str], size: str = "full"
) -> Image.Image:
    response = client.get(
        f"/api/v1/residents/{resident.id}/photo", params={"size": size}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["cache-control"] == "private, no-store"
    image = Image.open(io.BytesIO(response.content))
    image.load()
    assert image.format == "JPEG"
    return image


# --- accepted uploads ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mode", "name", "content_type"),
    [
        ("JPEG", "RGB", "photo.jpg", "image/jpeg"),
        ("JPEG", "L", "grey.jpeg", "image/jpeg"),
        ("JPEG", "CMYK", "print.jpg", "image/jpeg"),
        ("PNG", "RGB", "photo.png", "image/png"),
        ("PNG", "RGBA", "alpha.png", "image/png"),
        ("PNG", "P", "palette.png", "image/png"),
        ("WEBP", "RGB", "photo.webp", "image/webp"),
        # The content decides, not the name or the declared type.
        ("PNG", "RGB", "really-a-png.jpg", "application/octet-stream"),
    ],
)
def test_jpeg_png_and_webp_are_accepted_and_stored_as_jpeg(
    client: TestClient,
    staff: dict[str, str],
    resident: Resident,
    settings: Settings,
    fmt: str,
    mode: str,
    name: str,
    content_type: str,
) -> None:
    response = _put(client, resident, staff, _image(fmt, mode=mode), name, content_type)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["has_photo"] is True
    assert body["photo_url"] == f"/api/v1/residents/{resident.id}/photo"
    assert body["photo_updated_at"] is not None
    assert body["medical_notes"] == "Alzheimer's disease"
    image = _download(client, resident, staff)
    assert image.size == (300, 200)
    assert image.mode == "RGB"
    stored = _stored(settings)
    assert len(stored) == 2
    assert all(len(n) == 36 and n.endswith(".jpg") for n in stored)


def test_stored_jpeg_has_no_exif_no_gps_and_no_comment(
    client: TestClient, staff: dict[str, str], resident: Resident, settings: Settings
) -> None:
    response = _put(client, resident, staff, _jpeg_with_exif_and_gps())
    assert response.status_code == 200, response.text
    for size in ("full", "thumbnail"):
        image = _download(client, resident, staff, size)
        assert dict(image.getexif()) == {}
        assert "exif" not in image.info
        assert "comment" not in image.info
        assert "icc_profile" not in image.info
        assert "xmp" not in image.info
    for name in _stored(settings):
        raw = (_photos_dir(settings) / name).read_bytes()
        assert b"Exif" not in raw
        assert b"SecretCam" not in raw
        assert b"Secret Road" not in raw


def test_orientation_is_applied_before_exif_is_dropped(
    client: TestClient, staff: dict[str, str], resident: Resident
) -> None:
    assert _put(client, resident, staff, _jpeg_with_exif_and_gps()).status_code == 200
    image = _download(client, resident, staff)
    # 300x200 rotated by 90 degrees: the red left half is now on top.
    assert image.size == (200, 300)
    top = image.getpixel((100, 40))
    bottom = image.getpixel((100, 260))
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60


def test_thumbnail_is_at_most_256_pixels(
    client: TestClient, staff: dict[str, str], resident: Resident
) -> None:
    assert _put(client, resident, staff, _image(size=(2000, 1200))).status_code == 200
    thumb = _download(client, resident, staff, "thumbnail")
    assert max(thumb.size) == 256
    assert thumb.size == (256, 154)
    full = _download(client, resident, staff)
    assert full.size == (1600, 960)


def test_photo_size_parameter_must_be_full_or_thumbnail(
    client: TestClient, staff: dict[str, str], resident: Resident
) -> None:
    assert _put(client, resident, staff, _image()).status_code == 200
    response = client.get(f"/api/v1/residents/{resident.id}/photo?size=huge", headers=staff)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "size"]


# --- refused uploads ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "name", "content_type"),
    [
        (b"just some text, not a picture\n", "notes.txt", "text/plain"),
        (b"<html><body><script>alert(1)</script></body></html>", "photo.jpg", "image/jpeg"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "photo.svg", "image/svg+xml"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "photo.jpg", "image/jpeg"),
        (_image("GIF"), "photo.gif", "image/gif"),
        (_image("GIF"), "photo.jpg", "image/jpeg"),
        (_image("BMP"), "photo.jpg", "image/jpeg"),
        (_image("TIFF"), "photo.jpg", "image/jpeg"),
    ],
)
def test_what_is_not_jpeg_png_or_webp_is_415(
    client: TestClient,
    staff: dict[str, str],
    resident: Resident,
    settings: Settings,
    data: bytes,
    name: str,
    content_type: str,
) -> None:
    response = _put(client, resident, staff, data, name, content_type)
    assert response.status_code == 415
    assert response.json() == {"detail": "photos must be JPEG, PNG or WebP"}
    assert _stored(settings) == set()


@pytest.mark.parametrize(
    "data",
    [
        _image("JPEG", size=(400, 400))[:600],
        _image("PNG", size=(400, 400), mode="RGB")[:100],
        _image("WEBP", size=(400, 400))[:60],
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
        b"\xff\xd8\xff\xe0" + b"\x00" * 64,
    ],
    ids=["truncated-jpeg", "truncated-png", "truncated-webp", "png-garbage", "jpeg-garbage"],
)
def test_truncated_or_corrupt_image_is_422_not_500(
    client: TestClient, staff: dict[str, str], resident: Resident, settings: Settings, data: bytes
) -> None:
    response = _put(client, resident, staff, data)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == [
        {
            "loc": ["body", "file"],
            "msg": "the image is damaged or cannot be read: use a JPEG, PNG or WebP photo",
            "type": "value_error",
        }
    ]
    assert _stored(settings) == set()


def test_truncated_jpeg_is_422_naming_the_file(
    client: TestClient, staff: dict[str, str], resident: Resident
) -> None:
    data = _image("JPEG", size=(800, 800))
    response = _put(client, resident, staff, data[: len(data) // 2])
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "file"]


@pytest.mark.parametrize(
    "offset",
    [20, 40, 45],
    ids=["header-width", "chunk-type", "image-data"],
)
def test_corrupt_png_is_422(
    client: TestClient, staff: dict[str, str], resident: Resident, offset: int
) -> None:
    data = bytearray(_image("PNG", size=(64, 64)))
    data[offset] ^= 0xFF  # the chunk's checksum no longer matches, or its type is gibberish
    response = _put(client, resident, staff, bytes(data))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "file"]


def test_empty_file_is_422(client: TestClient, staff: dict[str, str], resident: Resident) -> None:
    response = _put(client, resident, staff, b"")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "file"]


def test_missing_file_field_is_422(
    client: TestClient, staff: dict[str, str], resident: Resident
) -> None:
    response = client.put(
        f"/api/v1/residents/{resident.id}/photo",
        files={"photo": ("photo.jpg", _image(), "image/jpeg")},
        headers=staff,
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "file"]
    json_body = client.put(
        f"/api/v1/residents/{resident.id}/photo", json={"file": "abc"}, headers=staff
    )
    assert json_body.status_code == 422


@pytest.fixture
def small_limit_client(settings: Settings) -> Iterator[TestClient]:
    """The same database, with a 20 KiB photo limit."""
    app = create_app(settings.model_copy(update={"max_photo_bytes": 20 * 1024}))
    with TestClient(app, base_url="https://welfare.test") as test_client:
        yield test_client
    app.state.engine.dispose()


def test_photo_over_the_configured_limit_is_413(
    small_limit_client: TestClient,
    staff: dict[str, str],
    resident: Resident,
    settings: Settings,
) -> None:
    small = _image("PNG", size=(64, 64))
    assert len(small) < 20 * 1024
    assert _put(small_limit_client, resident, staff, small).status_code == 200
    stored = _stored(settings)
    noisy = Image.frombytes("L", (400, 400), random.Random(7).randbytes(400 * 400))
    out = io.BytesIO()
    noisy.save(out, format="PNG")
    assert 20 * 1024 < len(out.getvalue()) < 256 * 1024  # under the body cap, over the photo cap
    response = _put(small_limit_client, resident, staff, out.getvalue(), "big.png", "image/png")
    assert response.status_code == 413
    assert "detail" in response.json()
    assert _stored(settings) == stored  # the old photo is kept


def test_photo_over_5_mib_is_413_with_default_settings(
    client: TestClient, staff: dict[str, str], resident: Resident, settings: Settings
) -> None:
    assert settings.max_photo_bytes == 5 * 1024 * 1024
    just_over = b"\xff\xd8\xff\xe0" + b"\x00" * (5 * 1024 * 1024)
    response = _put(client, resident, staff, just_over)
    assert response.status_code == 413
    assert "detail" in response.json()
    far_over = b"\x00" * (7 * 1024 * 1024)
    assert _put(client, resident, staff, far_over).status_code == 413
    assert _stored(settings) == set()


@pytest.mark.parametrize(
    "size", [(7000, 7000), (10000, 10000), (20000, 10000)], ids=["49MP", "100MP", "200MP"]
)
def test_huge_pixel_dimensions_are_413(
    client: TestClient,
    staff: dict[str, str],
    resident: Resident,
    settings: Settings,
    size: tuple[int, int],
) -> None:
    bomb = _image("PNG", size=size, mode="1")
    assert len(bomb) < 1024 * 1024  # one colour compresses to almost nothing
    response = _put(client, resident, staff, bomb, "bomb.png", "image/png")
    assert response.status_code == 413
    assert response.json()["detail"] == "photo has too many pixels"
    assert _stored(settings) == set()


# --- replace and delete -------------------------------------------------------------------------


def test_replacing_a_photo_deletes_the_old_files(
    client: TestClient, staff: dict[str, str], resident: Resident, settings: Settings
) -> None:
    assert _put(client, resident, staff, _image(size=(300, 200))).status_code == 200
    first = _stored(settings)
    assert len(first) == 2
    assert _put(client, resident, staff, _image("PNG", size=(100, 150))).status_code == 200
    second = _stored(settings)
    assert len(second) == 2
    assert first.isdisjoint(second)
    assert _download(client, resident, staff).size == (100, 150)


def test_refused_replacement_keeps_the_old_photo(
    client: TestClient, staff: dict[str, str], resident: Resident, settings: Settings
) -> None:
    assert _put(client, resident, staff, _image(size=(300, 200))).status_code == 200
    before = _stored(settings)
    assert _put(client, resident, staff, _image("GIF")).status_code == 415
    assert _stored(settings) == before
    assert _download(client, resident, staff).size == (300, 200)


def test_delete_removes_the_files(
    client: TestClient, staff: dict[str, str], resident: Resident, settings: Settings
) -> None:
    assert _put(client, resident, staff, _image()).status_code == 200
    url = f"/api/v1/residents/{resident.id}/photo"
    response = client.delete(url, headers=staff)
    assert response.status_code == 204
    assert _stored(settings) == set()
    missing = client.get(url, headers=staff)
    assert missing.status_code == 404
    assert missing.json() == {"detail": "photo not found"}
    assert client.get(f"{url}?size=thumbnail", headers=staff).status_code == 404
    again = client.delete(url, headers=staff)
    assert again.status_code == 404
    record = client.get(f"/api/v1/residents/{resident.id}", headers=staff).json()
    assert record["has_photo"] is False
    assert record["photo_url"] is None
    assert record["photo_updated_at"] is None


def test_no_photo_yet_is_404(client: TestClient, staff: dict[str, str], resident: Resident) -> None:
    response = client.get(f"/api/v1/residents/{resident.id}/photo", headers=staff)
    assert response.status_code == 404
    assert response.json() == {"detail": "photo not found"}


# --- who may --------------------------------------------------------------------------------------


def test_guard_cannot_read_or_change_photos(
    client: TestClient,
    staff: dict[str, str],
    headers_for: Headers,
    resident: Resident,
    settings: Settings,
) -> None:
    assert _put(client, resident, staff, _image()).status_code == 200
    stored = _stored(settings)
    guard = headers_for("guard")
    url = f"/api/v1/residents/{resident.id}/photo"
    read = client.get(url, headers=guard)
    assert read.status_code == 403
    assert read.headers["content-type"] == "application/json"
    assert client.get(f"{url}?size=thumbnail", headers=guard).status_code == 403
    assert _put(client, resident, guard, _image()).status_code == 403
    assert client.delete(url, headers=guard).status_code == 403
    assert _stored(settings) == stored


def test_another_sites_staff_gets_404_for_photos(
    client: TestClient,
    staff: dict[str, str],
    headers_for: Headers,
    make_site: Callable[..., Site],
    resident: Resident,
    settings: Settings,
) -> None:
    assert _put(client, resident, staff, _image()).status_code == 200
    stored = _stored(settings)
    other = headers_for("staff", [make_site(name="Other")])
    url = f"/api/v1/residents/{resident.id}/photo"
    assert client.get(url, headers=other).status_code == 404
    assert _put(client, resident, other, _image()).status_code == 404
    assert client.delete(url, headers=other).status_code == 404
    assert _stored(settings) == stored


def test_photos_need_sign_in(client: TestClient, resident: Resident) -> None:
    url = f"/api/v1/residents/{resident.id}/photo"
    assert client.get(url).status_code == 401
    assert client.put(url, files={"file": ("a.jpg", _image(), "image/jpeg")}).status_code == 401


def test_photo_for_unknown_or_malformed_resident(
    client: TestClient, staff: dict[str, str], settings: Settings
) -> None:
    unknown = _put(client, uuid.uuid4(), staff, _image())
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "resident not found"}
    assert _stored(settings) == set()
    malformed = client.get("/api/v1/residents/photo/photo", headers=staff)
    assert malformed.status_code == 422
