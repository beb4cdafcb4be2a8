"""Draws the panel's app icons (controller/web/static/icons/*.png) with Pillow.

Why a script and not hand-made files: the PNGs in the repository are exactly what this
draws (a white loudspeaker on the header's blue), so anyone can change the colour or the
shape and regenerate them: `python scripts/make_icons.py`. No third-party artwork.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parents[1] / "controller" / "web" / "static" / "icons"
BLUE = (14, 58, 91, 255)  # .top background in panel.css (theme colour #0e3a5b)
WHITE = (255, 255, 255, 255)


def loudspeaker(size: int, *, padding: float) -> Image.Image:
    """The header logo (base.html's SVG) on a square: `padding` of the side is kept clear
    (maskable icons must keep their drawing inside the middle 80 %)."""
    img = Image.new("RGBA", (size, size), BLUE)
    draw = ImageDraw.Draw(img)
    inner = size * (1 - 2 * padding)
    u = inner / 24  # the SVG's 24-unit viewBox

    def p(x: float, y: float) -> tuple[float, float]:
        return size * padding + x * u, size * padding + y * u

    draw.polygon([p(3, 10), p(7, 10), p(12, 6), p(12, 18), p(7, 14), p(3, 14)], fill=WHITE)
    width = max(2, round(2 * u))
    draw.arc([*p(10, 7), *p(17, 17)], start=-50, end=50, fill=WHITE, width=width)
    draw.arc([*p(9, 3.5), *p(21.5, 20.5)], start=-50, end=50, fill=WHITE, width=width)
    return img


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for size in (192, 512):
        loudspeaker(size, padding=0.12).save(OUT / f"icon-{size}.png", optimize=True)
        loudspeaker(size, padding=0.22).save(OUT / f"maskable-{size}.png", optimize=True)
    loudspeaker(180, padding=0.12).save(OUT / "apple-touch-icon.png", optimize=True)


if __name__ == "__main__":
    main()
