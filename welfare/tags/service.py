"""Opaque resident tags and their QR labels."""

from __future__ import annotations

import io
import uuid

import qrcode
from PIL import Image, ImageDraw, ImageFont
from qrcode.constants import ERROR_CORRECT_Q
from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from welfare.audit.service import audit_resident
from welfare.authz import Actor, Permission
from welfare.consent.models import ConsentScope
from welfare.consent.scopes import has_scope
from welfare.db import utcnow
from welfare.errors import Conflict, NotFound
from welfare.phones import display_phone
from welfare.residents.models import Resident
from welfare.residents.service import load_resident
from welfare.sites.models import Site
from welfare.tags import codes
from welfare.tags.models import ResidentTag


def tag_url(public_base_url: str, code: str) -> str:
    """The URL printed on the label: the code only, nothing about the person."""
    return f"{public_base_url.rstrip('/')}/t/{code}"


def live_tag(session: Session, resident_id: uuid.UUID) -> ResidentTag | None:
    return session.exec(
        select(ResidentTag).where(
            ResidentTag.resident_id == resident_id, col(ResidentTag.revoked_at).is_(None)
        )
    ).first()


def scrub_for_erasure(session: Session, resident_id: uuid.UUID) -> None:
    """The record was erased: printed labels stop resolving, a scan of its tag finds nothing."""
    session.exec(delete(ResidentTag).where(col(ResidentTag.resident_id) == resident_id))  # type: ignore[call-overload]


def find_live_tag(session: Session, typed: str) -> ResidentTag | None:
    """The live tag behind a typed or scanned code (`codes.read_typed`: any case, spaces,
    dashes; tags issued before the printed codes by their exact token). None for an unknown or
    revoked code; raises `codes.MistypedCode` for one whose check character does not match."""
    code = codes.read_typed(typed)
    tag = (
        session.exec(
            select(ResidentTag).where(
                col(ResidentTag.code).in_(code.forms), col(ResidentTag.revoked_at).is_(None)
            )
        ).first()
        if code.forms
        else None
    )
    if tag is None and code.mistyped:
        raise codes.MistypedCode()
    return tag


def _revoke_live(session: Session, actor: Actor, resident_id: uuid.UUID) -> int:
    return session.exec(  # type: ignore[call-overload]
        update(ResidentTag)
        .where(col(ResidentTag.resident_id) == resident_id, col(ResidentTag.revoked_at).is_(None))
        .values(revoked_at=utcnow(), revoked_by=actor.user_id)
    ).rowcount


def issue_tag(*, session: Session, actor: Actor, resident_id: uuid.UUID) -> ResidentTag:
    """Issue a new code, revoking any earlier one (a lost wristband stops resolving)."""
    resident = load_resident(session, actor, resident_id, Permission.registry_write)
    if resident.erased_at is not None:
        raise Conflict("this record was erased after consent was withdrawn")
    if not has_scope(session, resident.id, ConsentScope.lost_person_response):
        raise Conflict("record a consent with the lost_person_response scope before issuing a tag")
    revoked = _revoke_live(session, actor, resident.id)
    tag = ResidentTag(resident_id=resident.id, code=codes.new_code(), issued_by=actor.user_id)
    session.add(tag)
    session.flush()
    audit_resident(
        session,
        actor,
        "tag.issue",
        resident,
        entity="tag",
        entity_id=tag.id,
        detail={"revoked_earlier": revoked},
    )
    return tag


def get_tag(*, session: Session, actor: Actor, resident_id: uuid.UUID) -> ResidentTag:
    resident = load_resident(session, actor, resident_id, Permission.registry_read)
    tag = live_tag(session, resident.id)
    if tag is None:
        raise NotFound("tag")
    return tag


def revoke_tag(*, session: Session, actor: Actor, resident_id: uuid.UUID) -> None:
    resident = load_resident(session, actor, resident_id, Permission.registry_write)
    if not _revoke_live(session, actor, resident.id):
        raise NotFound("tag")
    audit_resident(session, actor, "tag.revoke", resident, entity="tag")


def label_png(*, session: Session, actor: Actor, resident_id: uuid.UUID, base_url: str) -> bytes:
    """A printable label: the QR code of the tag URL, the code to type, the office phone; no
    personal data."""
    tag = get_tag(session=session, actor=actor, resident_id=resident_id)
    resident = session.get(Resident, tag.resident_id)
    site = session.get(Site, resident.site_id) if resident else None
    office = display_phone(site.office_phone) if site and site.office_phone else None
    png = render_label(tag_url(base_url, tag.code), printed_code(tag.code), office)
    if resident:
        audit_resident(session, actor, "tag.label", resident, entity="tag", entity_id=tag.id)
    return png


def printed_code(code: str) -> str | None:
    """The code to print for typing, or None for a tag issued before the printed codes (its
    token is case-sensitive and mixes up O and 0: only its QR is printed)."""
    return code if codes.is_valid(codes.normalise(code)) else None


CODE_FONT_SIZE = 40
CAPTION_FONT_SIZE = 18


def render_label(url: str, code: str | None, office_phone: str | None) -> bytes:
    """The QR at the top, the code under it in large print, then the caption."""
    qr_code = qrcode.QRCode(error_correction=ERROR_CORRECT_Q, box_size=8, border=4)
    qr_code.add_data(url)
    qr_code.make(fit=True)
    qr = qr_code.make_image(fill_color="black", back_color="white").get_image().convert("RGB")
    caption = (
        f"If found, please stay with me and call {office_phone}"
        if office_phone
        else ("If found, please stay with me and scan this code")
    )
    caption_font = ImageFont.load_default(size=CAPTION_FONT_SIZE)
    code_font = ImageFont.load_default(size=CODE_FONT_SIZE)
    measure = ImageDraw.Draw(qr)
    code_width = int(measure.textlength(code, font=code_font)) + 32 if code else 0
    caption_width = int(measure.textlength(caption, font=caption_font)) + 32
    code_height = CODE_FONT_SIZE + 16 if code else 0
    label = Image.new(
        "RGB", (max(qr.width, code_width, caption_width), qr.height + code_height + 40), "white"
    )
    label.paste(qr, ((label.width - qr.width) // 2, 0))
    draw = ImageDraw.Draw(label)
    if code:
        draw.text(
            (label.width // 2, qr.height + code_height // 2),
            code,
            fill="black",
            font=code_font,
            anchor="mm",
        )
    draw.text((16, qr.height + code_height + 6), caption, fill="black", font=caption_font)
    out = io.BytesIO()
    label.save(out, format="PNG")
    return out.getvalue()
