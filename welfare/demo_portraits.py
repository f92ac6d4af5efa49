"""Illustrated portraits for the demo's residents, drawn with Pillow when the demo is seeded.

The demo has no photographs of real people; a guard's card without a picture would not show how
the card works. Each resident gets a simple drawn face whose hair and clothing colours follow
their description ("white, short" hair, a "purple cardigan"), stored through the residents
service like an uploaded photo and marked as an illustration, which the pages then say (the
image carries the word too). Deterministic: the same description draws the same picture.
"""

from __future__ import annotations

import io
import random
import zlib

from PIL import Image, ImageDraw
from sqlmodel import Session, select

from welfare.authz import Actor
from welfare.residents import service as residents
from welfare.residents.models import Resident
from welfare.settings import Settings
from welfare.sites.models import Site

SIZE = 480
# The first colour word found in the description wins.
COLOURS = {
    "white": (238, 238, 232),
    "silver": (205, 205, 210),
    "grey": (150, 150, 155),
    "gray": (150, 150, 155),
    "black": (40, 38, 40),
    "brown": (110, 70, 40),
    "beige": (214, 196, 160),
    "purple": (120, 70, 150),
    "blue": (50, 90, 170),
    "navy": (30, 45, 90),
    "red": (180, 40, 40),
    "green": (60, 120, 70),
    "yellow": (225, 190, 60),
    "pink": (225, 140, 170),
}
SKIN = ((241, 204, 170), (226, 184, 146), (205, 160, 120))
BACKGROUNDS = ((214, 232, 240), (236, 228, 214), (222, 236, 220), (238, 222, 228))


def colour_in(text: str | None, default: tuple[int, int, int]) -> tuple[int, int, int]:
    words = (text or "").lower().replace(",", " ").split()
    for word in words:
        if word in COLOURS:
            return COLOURS[word]
    return default


def draw_portrait(resident: Resident) -> bytes:
    """A PNG portrait after the resident's description."""
    rng = random.Random(zlib.crc32((resident.full_name or "").encode()))
    hair = colour_in(resident.hair, (60, 50, 45))
    clothes = colour_in(resident.clothing, (90, 110, 130))
    skin = rng.choice(SKIN)
    image = Image.new("RGB", (SIZE, SIZE), rng.choice(BACKGROUNDS))
    draw = ImageDraw.Draw(image)
    # Shoulders and clothing, then the neck and the head.
    draw.ellipse((60, 330, 420, 620), fill=clothes)
    draw.rectangle((205, 280, 275, 350), fill=skin)
    hair_words = resident.hair or ""
    long_hair = resident.sex == "female" and not {"short", "bun"} & set(hair_words.split())
    if long_hair:
        draw.ellipse((120, 90, 360, 380), fill=hair)
    draw.ellipse((150, 110, 330, 320), fill=skin)
    # Hair: a cap over the top of the head; a bun when the description says so.
    draw.chord((140, 90, 340, 260), 180, 360, fill=hair)
    if "bun" in hair_words:
        draw.ellipse((205, 40, 275, 110), fill=hair)
    # Eyes, glasses, mouth.
    for x in (205, 275):
        draw.ellipse((x - 9, 205, x + 9, 223), fill=(45, 40, 40))
    if "glasses" in (resident.eyes or ""):
        for x in (205, 275):
            draw.ellipse((x - 26, 192, x + 26, 236), outline=(40, 40, 40), width=5)
        draw.line((231, 212, 249, 212), fill=(40, 40, 40), width=5)
    draw.arc((200, 240, 280, 290), 20, 160, fill=(150, 70, 70), width=5)
    # Said on the picture as well: nobody takes it for a photograph.
    draw.rectangle((0, SIZE - 44, SIZE, SIZE), fill=(255, 255, 255))
    draw.text((16, SIZE - 34), "ILLUSTRATION - not a photograph", fill=(60, 60, 60), font_size=22)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def add_portraits(session: Session, site: Site, settings: Settings) -> int:
    """A portrait for each of the site's residents without a photo; how many were drawn."""
    drawn = 0
    for resident in session.exec(
        select(Resident).where(Resident.site_id == site.id, Resident.photo_file.is_(None))  # type: ignore[union-attr]
    ).all():
        if resident.erased_at is not None:
            continue
        residents.set_photo(
            session=session,
            actor=Actor.system(),
            settings=settings,
            resident_id=resident.id,
            data=draw_portrait(resident),
            illustration=True,
        )
        drawn += 1
    return drawn
