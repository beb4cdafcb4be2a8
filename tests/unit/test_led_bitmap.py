"""The bitmap path draws Vietnamese with real glyphs; text-only paths say what they lose."""

from __future__ import annotations

from device_agents.led.bitmap import glyph_mask, missing_glyph_mask, render
from device_agents.led.text import to_board_ascii
from firmware_sim.led.glyphs import _bits, glyph_scores, iou

VIETNAMESE = "ÀÁẢÃẠĂẮẰẲẴẶÂẤẦẨẪẬĐÈÉẺẼẸÊẾỀỂỄỆÌÍỈĨỊÒÓỎÕỌÔỐỒỔỖỘƠỚỜỞỠỢÙÚỦŨỤƯỨỪỬỮỰỲÝỶỸỴ"


def test_every_vietnamese_letter_has_its_own_glyph() -> None:
    notdef = _bits(missing_glyph_mask(32))
    for ch in VIETNAMESE + VIETNAMESE.lower():
        own = _bits(glyph_mask(ch, 32))
        assert own, f"{ch!r} draws nothing"
        assert iou(own, notdef) < 0.5, f"{ch!r} is drawn as the missing-glyph box"


def test_a_bitmap_board_shows_every_mark() -> None:
    text = "Bão số 9 – Ủy ban xã: sơ tán ngay"
    board = render(text, width=192, height=32)
    for ch, own, notdef, base in glyph_scores(board, text, 32):
        assert own >= 0.6 and own > notdef + 0.3, ch
        if base:
            assert own > base, f"{ch!r} lost its marks"


def test_text_only_transliteration_is_exact_and_admits_loss() -> None:
    t = to_board_ascii("Chuyển đổi số – Thông báo lịch tiêm chủng ngày 05/12")
    assert t.text == "Chuyen doi so - Thong bao lich tiem chung ngay 05/12"
    assert t.lossy and "đ" in t.replaced and "ể" in t.replaced
    plain = to_board_ascii("Hop xa luc 8h")
    assert not plain.lossy and plain.text == "Hop xa luc 8h"
