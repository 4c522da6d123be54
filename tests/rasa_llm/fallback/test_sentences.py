"""drop_answer_word: the opening yes or no of a generated reply, and only that."""

from __future__ import annotations

import pytest

from rasa_llm.fallback.sentences import drop_answer_word


@pytest.mark.parametrize(
    ("reply", "sent"),
    [
        ("Yes, returns are free.", "Returns are free."),
        ("No. We deliver to Norway.", "We deliver to Norway."),
        ("no - the card costs £5.", "The card costs £5."),
        ("YES! It is free.", "It is free."),
    ],
)
def test_an_opening_yes_or_no_is_dropped(reply: str, sent: str) -> None:
    assert drop_answer_word(reply) == sent


@pytest.mark.parametrize(
    "reply",
    [
        "No returns are accepted after 30 days.",  # "No" begins the claim itself
        "Nothing is charged.",
        "Yesterday's orders left today.",
        "Returns are free. Yes, all of them.",  # only the opening word
        "Yes.",  # nothing would be left: the guard judges it as it is
    ],
)
def test_other_replies_are_unchanged(reply: str) -> None:
    assert drop_answer_word(reply) == reply
