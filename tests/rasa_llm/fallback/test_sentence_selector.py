"""SentenceSelector keeps the passage sentences closest to the question, in order."""

from __future__ import annotations

from typing import Sequence

import pytest
import torch

from rasa_llm.fallback.sentence_selector import SentenceSelector, SourcePassage
from rasa_llm.fallback.sentences import split_sentences

VOCABULARY = "refund card days delivery switzerland price returns label shop open".split()


def bag_of_words(texts: Sequence[str]) -> torch.Tensor:
    """A stand-in encoder: unit vectors of vocabulary counts (plus a constant)."""
    rows = []
    for text in texts:
        lowered = text.lower()
        row = [float(lowered.count(w)) for w in VOCABULARY] + [0.1]
        rows.append(row)
    return torch.nn.functional.normalize(torch.tensor(rows), dim=-1)


REFUNDS = SourcePassage(
    "refunds.md#timing",
    "Refunds",
    "We refund within 14 days. A card refund takes 5-10 days to show. "
    "The shop is open on Sundays. Returns need a label.",
)
DELIVERY = SourcePassage(
    "shipping.md#eu",
    "Delivery",
    "Delivery to Switzerland has a price of €14.95. Delivery takes 4-8 days.",
)


def test_the_closest_sentences_are_kept_in_passage_order_with_their_indices() -> None:
    selector = SentenceSelector(bag_of_words, max_sentences=2)
    (kept,) = selector.select("when will the card refund show", [REFUNDS])
    assert kept.id == "refunds.md#timing" and kept.title == "Refunds"
    assert [i for i, _ in kept.sentences] == [0, 1]
    assert kept.text == "We refund within 14 days. A card refund takes 5-10 days to show."


def test_the_best_passage_keeps_a_sentence_and_others_only_if_they_earn_one() -> None:
    selector = SentenceSelector(bag_of_words, max_sentences=2)
    selected = selector.select("price of delivery to switzerland", [REFUNDS, DELIVERY])
    # The retriever ranked refunds first, so it keeps its best sentence; delivery's best
    # sentence is the closest overall.
    assert [p.id for p in selected] == ["refunds.md#timing", "shipping.md#eu"]
    assert selected[1].sentences[0][0] == 0
    assert sum(len(p.sentences) for p in selected) == 2


def test_nothing_to_select_gives_nothing_and_a_zero_budget_is_refused() -> None:
    assert SentenceSelector(bag_of_words).select("q", [SourcePassage("a", "A", "  ")]) == []
    with pytest.raises(ValueError, match="at least 1"):
        SentenceSelector(bag_of_words, max_sentences=0)


@pytest.mark.parametrize(
    "text, sentences",
    [
        ("Costs £3.95. Free over £50!", ["Costs £3.95.", "Free over £50!"]),
        ("Track it at https://northwind.example/track. It is quick.", None),
        ("Ask Mr. Smith, e.g. by phone. He knows.", ["Ask Mr. Smith, e.g. by phone.", "He knows."]),
        ("- first item\n- second item", ["first item", "second item"]),
    ],
)
def test_sentences_do_not_end_inside_prices_addresses_or_abbreviations(
    text: str, sentences: object
) -> None:
    found = split_sentences(text)
    if sentences is None:
        assert found == ["Track it at https://northwind.example/track.", "It is quick."]
    else:
        assert found == sentences
