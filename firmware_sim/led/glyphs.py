"""Glyph-level checks of rendered LED boards: is each character really drawn as itself? (used by tests)"""

from __future__ import annotations

import unicodedata

from PIL import Image

from device_agents.led.bitmap import glyph_mask, layout, missing_glyph_mask


def _bits(img: Image.Image) -> set[tuple[int, int]]:
    """The lit pixels. Lit is relative to the brightest one: at night (22:00-05:00) boards dim
    to 40 %, and a dimmed glyph keeps its shape."""
    g = img.convert("L")
    w, h = g.size
    px = g.load()
    brightest = g.getextrema()[1]
    threshold = max(16, min(96, int(brightest) // 2))  # type: ignore[call-overload]
    return {(x, y) for y in range(h) for x in range(w) if px[x, y] >= threshold}  # type: ignore[index]


def iou(a: set[tuple[int, int]], b: set[tuple[int, int]]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def glyph_scores(board: Image.Image, text: str, height: int) -> list[tuple[str, float, float, float]]:
    """Per visible character: (char, match with its own glyph, with .notdef, with its base letter).

    The board image is cut where render() put each character (±2 px for kerning and rounding).
    """
    font, x0, _ = layout(text, height)
    board_bits = _bits(board)
    notdef = _bits(missing_glyph_mask(height))
    out = []
    for i, ch in enumerate(text):
        if ch.isspace():
            continue
        own = _bits(glyph_mask(ch, height))
        base_ch = unicodedata.normalize("NFD", ch)[0]
        base = _bits(glyph_mask(base_ch, height)) if base_ch != ch else set()
        x = round(x0 + font.getlength(text[:i])) - x0
        best = (0.0, 0.0, 0.0)
        for dx in range(-2, 3):
            crop = {(px - x - dx, py) for px, py in board_bits
                    if x + dx <= px < x + dx + max(1, int(font.getlength(ch))) + 2}
            score = (iou(crop, own), iou(crop, notdef), iou(crop, base) if base else 0.0)
            if score[0] > best[0]:
                best = score
        out.append((ch, *best))
    return out
