from pathlib import Path

import pytest

from rasa_llm.fallback.knowledge_base import KnowledgeBase, KnowledgeBaseError, split_passages

SHIPPING = """# Shipping

Intro line about shipping.

## Delivery times
Standard delivery takes 3-5 business days.

## Fees
Shipping costs $4.95; free over $50.

## Fees
Duplicate heading, second section.
"""


def test_sections_become_passages_with_stable_ids():
    passages = split_passages(SHIPPING, source="shipping.md")
    assert [p.id for p in passages] == [
        "shipping.md#intro",
        "shipping.md#delivery-times",
        "shipping.md#fees",
        "shipping.md#fees-2",
    ]
    assert passages[1].title == "Shipping › Delivery times"
    assert passages[1].text == "Standard delivery takes 3-5 business days."
    assert passages[0].title == "Shipping"


def test_file_without_sections_is_one_passage():
    passages = split_passages("Open 9-5.\n\nClosed on Sundays.\n", source="opening_hours.txt")
    assert len(passages) == 1
    assert passages[0].title == "Opening hours"
    assert passages[0].text == "Open 9-5.\n\nClosed on Sundays."


def test_directory_is_read_recursively_in_order(tmp_path: Path):
    (tmp_path / "b.md").write_text("## B\nbee\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.md").write_text("## A\nay\n")
    (tmp_path / "notes.json").write_text("{}")
    kb = KnowledgeBase.from_directory(tmp_path)
    assert [p.id for p in kb.passages] == ["b.md#b", "sub/a.md#a"]
    before = kb.fingerprint()
    (tmp_path / "b.md").write_text("## B\nbees\n")
    assert KnowledgeBase.from_directory(tmp_path).fingerprint() != before


def test_missing_or_empty_directory_says_how_to_fix(tmp_path: Path):
    with pytest.raises(KnowledgeBaseError, match="does not exist.*Fix"):
        KnowledgeBase.from_directory(tmp_path / "nope")
    with pytest.raises(KnowledgeBaseError, match="no passages.*Fix"):
        KnowledgeBase.from_directory(tmp_path)


def test_the_bots_knowledge_base_loads():
    kb = KnowledgeBase.from_directory(Path(__file__).parents[3] / "bot" / "knowledge" / "en")
    assert len(kb.passages) >= 20
    assert all(p.text.strip() for p in kb.passages)


def test_chinese_headings_are_their_own_ids(tmp_path: Path) -> None:
    (tmp_path / "refunds.md").write_text(
        "# 退款\n\n## 退款时间\n五个工作日。\n\n## 重复扣款 (FAQ)\n自动退回。\n"
    )
    ids = [p.id for p in KnowledgeBase.from_directory(tmp_path).passages]
    assert ids == ["refunds.md#退款时间", "refunds.md#重复扣款-faq"]


def test_the_bots_chinese_knowledge_base_has_the_english_one_s_sections() -> None:
    bot = Path(__file__).parents[3] / "bot" / "knowledge"
    english = KnowledgeBase.from_directory(bot / "en").passages
    chinese = KnowledgeBase.from_directory(bot / "zh").passages
    assert [p.source for p in chinese] == [p.source for p in english]
    assert len({p.id for p in chinese}) == len(chinese)
