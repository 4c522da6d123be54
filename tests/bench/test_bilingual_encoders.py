"""bench.bilingual_encoders reads the held-out sets as rasa test nlu does."""

from __future__ import annotations

from bench.bilingual_encoders import HELD_OUT, held_out


def test_held_out_messages_lose_their_entity_markup_and_keep_their_intent() -> None:
    english = held_out(HELD_OUT["en"])
    chinese = held_out(HELD_OUT["zh"])
    assert len(english) >= 300 and len(chinese) >= 150
    for text, intent in english + chinese:
        assert text and intent
        assert "](" not in text and "]{" not in text, text
    assert any("48213" in text or "订单" in text for text, _ in chinese)
