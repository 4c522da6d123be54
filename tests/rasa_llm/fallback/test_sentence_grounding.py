"""Sentence grounding: each reply sentence is matched to the passage sentences behind it."""

from __future__ import annotations

from typing import List

import pytest

from rasa_llm.fallback.reply_guard import GuardContext, ReplyGuard
from rasa_llm.fallback.sentence_grounding import ground
from rasa_llm.fallback.sentence_selector import PromptPassage
from rasa_llm.fallback.sentences import split_sentences

EU = (
    "Delivery to the 27 EU countries costs €9.95 and is free on orders of €120 or more. "
    "Delivery to Norway and Switzerland costs €14.95 and is never free. "
    "International Northwind orders travel with DHL Parcel and take 4-8 working days "
    "after dispatch. "
    "For Norway and Switzerland, the carrier collects import VAT and any duty from you on "
    "delivery, and Northwind cannot refund these charges."
)
RETURNS = (
    "Returns are free within 30 days of delivery. "
    "Print the prepaid label from your account and drop the parcel at any Evri shop."
)


def passages() -> List[PromptPassage]:
    return [
        PromptPassage(
            "shipping.md#eu", "Delivery to the EU", tuple(enumerate(split_sentences(EU)))
        ),
        PromptPassage(
            "returns.md#free", "Free returns", tuple(enumerate(split_sentences(RETURNS)))
        ),
    ]


@pytest.mark.parametrize(
    "reply",
    [
        # Faithful paraphrases: the passage's facts and words, in another order and frame
        # (grounding is lexical: "sending something back" for "returns" would not pass).
        "Yes, we deliver to Switzerland. Delivery there costs €14.95 and takes 4-8 working "
        "days after dispatch.",
        "Returns within 30 days of delivery are free.",
        "No. Northwind cannot refund the import VAT or duty the carrier collects.",
        "Yes.",
    ],
)
def test_a_faithful_answer_passes_with_evidence_for_every_sentence(reply: str) -> None:
    grounding = ground(reply, passages())
    assert grounding.failures == []
    for sentence in grounding.sentences:
        if sentence.sentence != "Yes.":
            assert sentence.evidence, sentence


@pytest.mark.parametrize(
    "reply, problem",
    [
        # Changed number: €9.95 is the EU's price, stated in the sentence beside it.
        ("Delivery to Switzerland costs €9.95.", "changed_fact"),
        ("Returns are free within 60 days of delivery.", "changed_fact"),
        # Changed name.
        ("Delivery to Sweden costs €14.95 and is never free.", "changed_name"),
        (
            "Print the prepaid label from your account and drop the parcel at any Royal Mail shop.",
            "changed_name",
        ),
        # Negation, both ways.
        ("Returns are not free within 30 days of delivery.", "negation"),
        ("Delivery to Norway and Switzerland costs €14.95 and is free.", "negation"),
        # An invented claim.
        ("We give loyal customers a discount on every order.", "unsupported_sentence"),
    ],
)
def test_a_changed_fact_name_or_negation_is_caught(reply: str, problem: str) -> None:
    failures = ground(reply, passages()).failures
    assert [f.problem for f in failures] == [problem]


def test_the_evidence_names_the_passage_and_sentence_that_say_it() -> None:
    grounding = ground(
        "Delivery to Switzerland costs €14.95. Returns are free within 30 days.", passages()
    )
    first, second = grounding.sentences
    assert [(e.passage_id, e.sentence_index) for e in first.evidence] == [("shipping.md#eu", 1)]
    assert [(e.passage_id, e.sentence_index) for e in second.evidence] == [("returns.md#free", 0)]
    stored = grounding.as_metadata()
    assert stored[0]["evidence"][0]["text"].startswith("Delivery to Norway and Switzerland")
    assert stored[1]["problem"] is None


def test_the_evidence_index_is_the_sentence_s_place_in_the_whole_passage() -> None:
    # The selector kept sentences 0 and 3 only: the index still says 3.
    kept = PromptPassage("f.md#x", "T", ((0, "Orders ship daily."), (3, "Refunds take 5 days.")))
    (sentence,) = ground("Refunds take 5 days.", [kept]).sentences
    assert [e.sentence_index for e in sentence.evidence] == [3]


def test_the_guard_fails_a_reply_on_a_failed_sentence_and_names_the_check() -> None:
    guard = ReplyGuard(min_support=0.75)
    context = GuardContext(
        passages=[p.text for p in passages()],
        customer_text="how much is delivery to switzerland",
        max_chars=600,
        instructions="Answer from KNOWLEDGE.",
        language="en",
        sentences=passages(),
    )
    assert guard.check("Delivery to Switzerland costs €14.95.", context) == []
    checks = [f.check for f in guard.check("Delivery to Switzerland is free.", context)]
    assert checks == ["negation"]
