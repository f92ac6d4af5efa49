"""A printable sheet of QR labels for one site: one label per tagged resident who may be found.

A label carries the tag URL (an opaque code), the code in large print for typing, and nothing
about the person: no name, no unit. A lost label must not tell its finder who is vulnerable or
where they live. Staff match a label to its resident by the reference, shown on the resident's
page: the printed code itself, or the last characters of a token issued before printed codes.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass

import qrcode
from qrcode.constants import ERROR_CORRECT_Q
from qrcode.image.svg import SvgPathImage
from sqlmodel import Session, col, select

from welfare.audit.service import audit_resident
from welfare.authz import Actor, Permission, require_site
from welfare.consent.models import ConsentScope
from welfare.consent.scopes import has_scope
from welfare.errors import NotFound
from welfare.residents.models import Resident
from welfare.sites.models import Household, Site
from welfare.tags.models import ResidentTag
from welfare.tags.service import printed_code, tag_url

REFERENCE_LENGTH = 6


def label_reference(code: str) -> str:
    """What is printed under a label's QR, to match the label to its card: the code itself when
    it is a printed code, otherwise the token's last few characters."""
    return printed_code(code) or code[-REFERENCE_LENGTH:]


@dataclass(frozen=True)
class Label:
    url: str
    reference: str
    qr_data_uri: str
    typeable: bool  # the reference is the whole code, printed large to be typed


def qr_svg_data_uri(url: str) -> str:
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_Q, box_size=10, border=2)
    code.add_data(url)
    code.make(fit=True)
    svg = code.make_image(image_factory=SvgPathImage).to_string()
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode()


def label_sheet(
    *, session: Session, actor: Actor, site_id: uuid.UUID, base_url: str
) -> tuple[Site, list[Label]]:
    """Labels for every live tag at the site whose resident holds a lost-person consent, in
    building and unit order. Each label printed is an audit entry (as for a single label)."""
    site = session.get(Site, site_id)
    if site is None:
        raise NotFound("site")
    require_site(actor, Permission.registry_read, site.id, "site")
    rows = session.exec(
        select(ResidentTag, Resident)
        .join(Resident, col(Resident.id) == ResidentTag.resident_id)
        .outerjoin(Household, col(Household.id) == Resident.household_id)
        .where(
            Resident.site_id == site.id,
            col(Resident.erased_at).is_(None),
            col(ResidentTag.revoked_at).is_(None),
        )
        .order_by(col(Household.building), col(Household.unit), col(ResidentTag.id))
    ).all()
    labels: list[Label] = []
    for tag, resident in rows:
        if not has_scope(session, resident.id, ConsentScope.lost_person_response):
            continue
        url = tag_url(base_url, tag.code)
        labels.append(
            Label(
                url=url,
                reference=label_reference(tag.code),
                qr_data_uri=qr_svg_data_uri(url),
                typeable=printed_code(tag.code) is not None,
            )
        )
        audit_resident(
            session,
            actor,
            "tag.label",
            resident,
            entity="tag",
            entity_id=tag.id,
            detail={"sheet": True},
        )
    return site, labels
