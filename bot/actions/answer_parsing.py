"""What a customer's answer to a form's question holds: an order number, an email
address, a full name or a delivery problem. Pure functions of the text, with no store
and no tracker; form_validation.py decides what to do with what they find.
"""

from __future__ import annotations

import re
from typing import Any, Optional, Tuple

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]{2,}")
_EMAIL_LEAD_INS = frozenset(
    "is it's its it email e-mail address mail use try at on me here sorry oops ok okay".split()
)
_NAME_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")

# Keywords that turn a free-text description into a problem type, checked in order:
# "item is missing" is a wrong or missing item before "missing" could mean the parcel.
PROBLEM_KEYWORDS: Tuple[Tuple[str, Tuple[str, ...]], ...] = tuple(
    (kind, tuple(words.split("|")))
    for kind, words in (
        (
            "wrong_item",
            "wrong|incorrect|not what i ordered|missing item|item missing|item is missing"
            "|missing from|not in the box|part missing|missing part",
        ),
        (
            "damaged",
            "damage|broken|broke|faulty|smashed|cracked|dent|scratched|not working"
            "|doesn't work|does not work|defective",
        ),
        (
            "lost",
            "lost|never arrived|never came|never got|not received|stolen|marked as delivered"
            "|says delivered|said delivered|shows delivered|parcel is missing|missing",
        ),
        (
            "late",
            "late|delay|not arrived|hasn't arrived|has not arrived|not here|still waiting"
            "|not come|hasn't come|taking too long|overdue|slow|not yet",
        ),
    )
)
PROBLEM_TYPES = tuple(kind for kind, _ in PROBLEM_KEYWORDS)


def normalise_order_number(value: Any) -> Optional[str]:
    """The 5-digit number in an answer: '#10 023' or "it's 10023" -> '10023'.

    None unless the answer holds a group of exactly 5 digits (spaces inside allowed).
    """
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    groups = (g.replace(" ", "") for g in re.findall(r"\d+(?: \d+)*", str(value)))
    return next((g for g in groups if len(g) == 5), None)


def normalise_email(value: Any) -> Optional[str]:
    """The email address in an answer ("it's Jane.Doe@example.com" -> lower case)."""
    if isinstance(value, list):
        value = value[0] if value else None
    text = str(value or "").strip()
    found = _EMAIL.search(text)
    if not found:
        return None
    # "my email is x@y.com" holds an address; "jane doe@y.com" is one with a space in
    # it, which must be asked again rather than shortened to doe@y.com.
    before = text[: found.start()].split()
    if before and before[-1].lower().strip(",:;") not in _EMAIL_LEAD_INS:
        return None
    return found.group(0).strip("<>.,;").lower()


def normalise_full_name(value: Any) -> Optional[str]:
    """At least two words of letters (hyphens and apostrophes inside words are fine)."""
    words = str(value or "").split()
    if len(words) < 2 or not all(_NAME_WORD.fullmatch(word) for word in words):
        return None
    return " ".join(words)


def normalise_problem_type(value: Any) -> Optional[str]:
    """One of PROBLEM_TYPES, named or described in the answer ('it arrived broken' -> 'damaged')."""
    text = " ".join(str(value or "").lower().replace("_", " ").split())
    if text.replace(" ", "_") in PROBLEM_TYPES:
        return text.replace(" ", "_")
    for kind, keywords in PROBLEM_KEYWORDS:
        if any(keyword in text for keyword in keywords):
            return kind
    return None
