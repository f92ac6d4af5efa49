"""Draw the guard app's icons (api/static/icons/icon-*.png): run once, commit the PNGs."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parents[1] / "api" / "static" / "icons"
BRAND = (11, 79, 138)


def icon(size: int) -> Image.Image:
    image = Image.new("RGB", (size, size), BRAND)
    draw = ImageDraw.Draw(image)
    # A white shield with a check mark, inside the maskable safe zone (the middle 80 %).
    s = size / 100
    shield = [
        (50 * s, 18 * s),
        (76 * s, 28 * s),
        (74 * s, 56 * s),
        (50 * s, 82 * s),
        (26 * s, 56 * s),
        (24 * s, 28 * s),
    ]
    draw.polygon(shield, fill="white")
    draw.line(
        [(37 * s, 50 * s), (47 * s, 60 * s), (64 * s, 40 * s)],
        fill=BRAND,
        width=max(2, int(7 * s)),
        joint="curve",
    )
    return image


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for size in (192, 512):
        icon(size).save(OUT / f"icon-{size}.png", optimize=True)
