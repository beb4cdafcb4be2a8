"""The bitmap path: Vietnamese text drawn by Pillow with a font that has every glyph.

Used three ways, always the same code so they agree pixel for pixel: by the agent for
panels it draws itself (HUB75 matrices driven from the Pi), by the firmware simulator to
render what a board shows, and by the controller for the per-board preview.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from device_agents.led.driver import BoardContent, BoardStatus, LedController, LedError

FONT_CANDIDATES = (
    os.environ.get("COMMUNECAST_LED_FONT", ""),
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",  # Debian fonts-dejavu-core
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
)
COLORS = {"red": (255, 40, 20), "green": (40, 230, 60), "amber": (255, 170, 0), "yellow": (255, 230, 0),
          "white": (255, 255, 255), "orange": (255, 120, 0)}
# Characters whose stacked marks set the line height (Ễ, Ộ, Ậ, ỵ...).
TALL = "ỄỖẬỘẾỴỵgjpqyÁ"


class FontMissing(LedError):
    pass


def font_path() -> str:
    for p in FONT_CANDIDATES:
        if p and Path(p).is_file():
            return p
    raise FontMissing("no font with Vietnamese glyphs: install fonts-dejavu-core (scripts/setup.sh)")


@lru_cache(maxsize=32)
def font_for_height(height: int) -> ImageFont.FreeTypeFont:
    """The largest font whose Vietnamese capitals with two stacked marks fit `height` pixels."""
    path = font_path()
    size = height
    while size > 6:
        font = ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.BASIC)
        top, bottom = font.getbbox(TALL)[1], font.getbbox(TALL)[3]
        if bottom - min(top, 0) <= height - 2:
            return font
        size -= 1
    return ImageFont.truetype(path, 6, layout_engine=ImageFont.Layout.BASIC)


def layout(text: str, height: int) -> tuple[ImageFont.FreeTypeFont, int, int]:
    """Font, x start and baseline-independent y offset used by render() (for glyph checks too)."""
    font = font_for_height(height)
    top = min(font.getbbox(TALL)[1], 0)
    bottom = font.getbbox(TALL)[3]
    y = (height - (bottom - top)) // 2 - top
    return font, 1, y


def render(text: str, *, width: int = 128, height: int = 32, color: str = "amber",
           brightness: int = 100) -> Image.Image:
    """The board's pixels: one line of text; wider than the panel when the text scrolls."""
    font, x, y = layout(text, height)
    text_w = int(font.getlength(text)) + 2 * x if text else 0
    img = Image.new("RGB", (max(width, text_w), height), (0, 0, 0))
    rgb = COLORS.get(color, COLORS["amber"])
    scale = max(0, min(100, brightness)) / 100
    ImageDraw.Draw(img).text((x, y), text, font=font, fill=tuple(int(c * scale) for c in rgb))
    return img


def render_png(text: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    render(text, **kw).save(buf, format="PNG")  # type: ignore[arg-type]
    return buf.getvalue()


def glyph_mask(ch: str, height: int) -> Image.Image:
    """One character drawn alone exactly as render() would draw it (for glyph comparisons)."""
    font, x, y = layout(ch, height)
    img = Image.new("L", (int(font.getlength(ch)) + 2 * x + 2, height), 0)
    ImageDraw.Draw(img).text((x, y), ch, font=font, fill=255)
    return img


def missing_glyph_mask(height: int) -> Image.Image:
    """What the font draws for a code point it has no glyph for (.notdef)."""
    return glyph_mask("\ue000", height)  # a private-use code point no text font maps


# -- the driver for panels the Pi draws itself -----------------------------------------------------
FrameSink = Callable[[Image.Image], None]


class BitmapPanel(LedController):
    """A pixel panel (e.g. HUB75 matrix through a driver HAT): we draw every pixel ourselves.

    ``sink`` receives each frame: the real panel's driver, or the simulator that saves PNGs.
    """

    protocol = "bitmap"
    can_draw_pixels = True

    def __init__(self, sink: FrameSink, *, width: int = 192, height: int = 32) -> None:
        self.sink = sink
        self.width, self.height = width, height
        self.brightness = 100
        self.current: BoardContent | None = None

    async def open(self) -> None:
        font_path()

    async def close(self) -> None:
        return None

    async def _draw(self) -> None:
        c = self.current
        img = render(c.text if c else "", width=self.width, height=self.height,
                     color=c.color if c else "amber", brightness=self.brightness)
        await asyncio.to_thread(self.sink, img)

    async def show(self, content: BoardContent) -> str:
        self.current = content
        await self._draw()
        return content.text

    async def clear(self) -> None:
        self.current = None
        await self._draw()

    async def set_brightness(self, percent: int) -> None:
        self.brightness = percent
        await self._draw()

    async def ping(self) -> BoardStatus:
        return BoardStatus(True)
