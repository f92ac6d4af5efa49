"""Resident photos: checked, re-encoded (which drops EXIF and GPS) and stored under random names."""

from __future__ import annotations

import io
import os
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PIL import Image, ImageOps, UnidentifiedImageError
from sqlmodel import Session

from welfare.db import on_commit, on_rollback
from welfare.errors import InvalidInput, PayloadTooLarge, UnsupportedMedia
from welfare.settings import Settings

ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
MAX_PIXELS = 40_000_000  # refuse decompression bombs well before Pillow's own limit
JPEG_QUALITY = 85


@dataclass(frozen=True)
class ProcessedPhoto:
    photo: bytes
    thumbnail: bytes
    width: int
    height: int


def process_photo(data: bytes, *, max_bytes: int, max_side: int, thumb_side: int) -> ProcessedPhoto:
    """Validate an upload by its content (not its name or declared type) and re-encode it."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"photo is larger than {max_bytes // 1024} KiB")
    if not data:
        raise InvalidInput("file", "the file is empty: choose the photo again")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                if probe.format not in ACCEPTED_FORMATS:
                    raise UnsupportedMedia("photos must be JPEG, PNG or WebP")
                if probe.width * probe.height > MAX_PIXELS:
                    raise PayloadTooLarge("photo has too many pixels")
                probe.verify()
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                image = ImageOps.exif_transpose(image)
                image = image.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard (beyond ~89 million pixels) fires while opening, before ours.
        raise PayloadTooLarge("photo has too many pixels") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, UnidentifiedImageError) and not _has_accepted_signature(data):
            raise UnsupportedMedia("photos must be JPEG, PNG or WebP") from exc
        raise InvalidInput(
            "file", "the image is damaged or cannot be read: use a JPEG, PNG or WebP photo"
        ) from exc

    image.thumbnail((max_side, max_side))
    photo = _encode(image)
    thumb = image.copy()
    thumb.thumbnail((thumb_side, thumb_side))
    return ProcessedPhoto(
        photo=photo, thumbnail=_encode(thumb), width=image.width, height=image.height
    )


def _has_accepted_signature(data: bytes) -> bool:
    """Starts like a JPEG, PNG or WebP file: a damaged one of those is 422, not 415."""
    return (
        data.startswith(b"\xff\xd8\xff")
        or data.startswith(b"\x89PNG\r\n\x1a\n")
        or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
    )


def _encode(image: Image.Image) -> bytes:
    # A fresh encode from the pixels alone: no EXIF, GPS, ICC profile, XMP or comment. Pillow's
    # JPEG writer copies `info["comment"]` from the image by itself, so `info` is emptied first.
    clean = image.copy()
    clean.info = {}
    out = io.BytesIO()
    clean.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()


class PhotoStore:
    """Files under `<media_dir>/photos` with random names that say nothing about the person."""

    def __init__(self, media_dir: Path) -> None:
        self.root = Path(media_dir) / "photos"

    def save(self, data: bytes) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        name = secrets.token_hex(16) + ".jpg"
        tmp = self.root / (name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self.root / name)
        return name

    def path(self, name: str) -> Path:
        if "/" in name or "\\" in name or name.startswith("."):
            raise ValueError("bad photo file name")
        return self.root / name

    def read(self, name: str) -> bytes:
        return self.path(name).read_bytes()

    def delete(self, name: str | None) -> None:
        if name:
            self.path(name).unlink(missing_ok=True)


class HasPhotoFiles(Protocol):
    photo_file: str | None
    thumbnail_file: str | None


def store_photo(
    session: Session, settings: Settings, holder: HasPhotoFiles, data: bytes
) -> ProcessedPhoto:
    """Check and re-encode `data`, store it and its thumbnail and point `holder` (a resident, an
    incident) at them. The files follow the transaction: the new ones are deleted if it rolls
    back, the ones they replace once it commits. Nothing is stored before the image passes."""
    processed = process_photo(
        data,
        max_bytes=settings.max_photo_bytes,
        max_side=settings.photo_max_side,
        thumb_side=settings.thumbnail_side,
    )
    store = PhotoStore(settings.media_dir)
    old = (holder.photo_file, holder.thumbnail_file)
    holder.photo_file = store.save(processed.photo)
    holder.thumbnail_file = store.save(processed.thumbnail)
    new = (holder.photo_file, holder.thumbnail_file)
    on_rollback(session, lambda: [store.delete(name) for name in new])
    on_commit(session, lambda: [store.delete(name) for name in old])
    return processed
