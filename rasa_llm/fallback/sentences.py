"""Cut text into sentences: the unit that prompts quote and that grounding checks.

Help-centre text is full of full stops that end nothing: prices ("£3.95"), web
addresses ("northwind.example/track"), abbreviations ("e.g.", "Mr."), numbered steps.
A sentence ends at ``.``, ``!`` or ``?`` followed by a space and a capital letter,
digit or opening quote, or at a line break; never inside a number or an address, and
never after a known abbreviation.
"""

from __future__ import annotations

import re
from typing import List

# Words after which a full stop does not end a sentence.
_ABBREVIATIONS = frozenset(
    "e.g i.e etc mr mrs ms dr st no nos approx incl excl vs ca cf fig jan feb mar apr jun "
    "jul aug sep sept oct nov dec mon tue wed thu fri sat sun ltd co inc".split()
)
_END = re.compile(r"([.!?]+[\"'”’)\]]*)\s+(?=[\"'“‘(\[]?[A-Z0-9£€$])")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
# "Yes," / "No." opening a reply: the word and its punctuation ("No returns" is kept).
_ANSWER_WORD = re.compile(r"^\s*(?:yes|no)\s*[.,!:;-]+\s*", re.IGNORECASE)


def split_sentences(text: str) -> List[str]:
    """The sentences of ``text`` in order, stripped; list items count as sentences."""
    sentences: List[str] = []
    for line in text.splitlines():
        line = _LIST_ITEM.sub("", line).strip()
        if not line:
            continue
        start = 0
        for match in _END.finditer(line):
            before = line[start : match.start()].rsplit(None, 1)
            last_word = before[-1].lower().rstrip(".") if before else ""
            if match.group(1) == "." and last_word in _ABBREVIATIONS:
                continue
            if match.group(1) == "." and len(last_word) == 1 and last_word.isalpha():
                continue  # an initial: "J. Smith"
            sentences.append(line[start : match.end(1)].strip())
            start = match.end()
        tail = line[start:].strip()
        if tail:
            sentences.append(tail)
    return sentences


def drop_answer_word(text: str) -> str:
    """``text`` without an opening "Yes," or "No.", its next word capitalised.

    A bare yes or no is a claim that no passage sentence can be matched to: a small
    model writes "No, returning an order is free" as readily as "Yes, ...". The facts
    after it are grounded; the word is not, so it is not sent.
    """
    rest = _ANSWER_WORD.sub("", text, count=1)
    if rest == text or not rest:
        return text
    return rest[0].upper() + rest[1:]
