"""What a customer's answer to a form's question holds: an order number, an email
address, a full name or a delivery problem. Pure functions of the text, with no store
and no tracker; form_validation.py decides what to do with what they find.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Optional, Tuple

# Chinese characters and punctuation are never part of an address here: "我的邮箱是
# jane@example.com" (no space in Chinese) holds jane@example.com.
_NOT_ADDRESS = "\\s@\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef"
_EMAIL = re.compile(f"[^{_NOT_ADDRESS}:]+@[^{_NOT_ADDRESS}]+\\.[^{_NOT_ADDRESS}.]{{2,}}")
_HAN = re.compile("[\u3400-\u9fff\uf900-\ufaff]")
_HAN_NAME = re.compile("[\u3400-\u9fff\uf900-\ufaff·]{2,}")
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
            "|missing from|not in the box|part missing|missing part"
            "|发错|错发|不是我买的|不是我订的|少发|漏发|缺件|少了",
        ),
        (
            "damaged",
            "damage|broken|broke|faulty|smashed|cracked|dent|scratched|not working"
            "|doesn't work|does not work|defective"
            "|损坏|坏了|破损|破了|碎了|摔坏|压坏|故障|不能用|用不了|划痕|划伤",
        ),
        (
            "lost",
            "lost|never arrived|never came|never got|not received|stolen|marked as delivered"
            "|says delivered|said delivered|shows delivered|parcel is missing|missing"
            "|丢了|丢失|没收到|没有收到|被偷|显示签收|显示已签收|显示送达|显示已送达",
        ),
        (
            "late",
            "late|delay|not arrived|hasn't arrived|has not arrived|not here|still waiting"
            "|not come|hasn't come|taking too long|overdue|slow|not yet"
            "|还没到|没到|延迟|延误|太慢|还在等|超时|晚了",
        ),
    )
)
PROBLEM_TYPES = tuple(kind for kind, _ in PROBLEM_KEYWORDS)


def ascii_text(value: Optional[str]) -> Optional[str]:
    """``value`` in Unicode's compatibility form (NFKC): the full-width digits, letters
    and signs a Chinese keyboard types ("４８２１３", "ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ")
    become ASCII ones. None stays None.
    """
    return None if value is None else unicodedata.normalize("NFKC", value)


def normalise_order_number(value: Any) -> Optional[str]:
    """The 5-digit number in an answer: '#10 023', "it's 10023" or '４８２１３' -> ASCII digits.

    None unless the answer holds a group of exactly 5 digits (spaces inside allowed).
    """
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    text = ascii_text(str(value)) or ""
    # re's \d also matches other scripts' digits ("٤٨٢١٣"), which NFKC leaves alone.
    groups = (g.replace(" ", "") for g in re.findall(r"[0-9]+(?: [0-9]+)*", text))
    return next((g for g in groups if len(g) == 5), None)


def normalise_email(value: Any) -> Optional[str]:
    """The email address in an answer ("it's Jane.Doe@example.com" -> lower case)."""
    if isinstance(value, list):
        value = value[0] if value else None
    text = (ascii_text(str(value or "")) or "").strip()
    found = _EMAIL.search(text)
    if not found:
        return None
    # "my email is x@y.com" holds an address; "jane doe@y.com" is one with a space in
    # it, which must be asked again rather than shortened to doe@y.com.
    before = text[: found.start()].split()
    lead_in = before[-1].lower().strip(",:;") if before else ""
    if lead_in and lead_in not in _EMAIL_LEAD_INS and not _HAN.search(lead_in):
        return None
    return found.group(0).strip("<>.,;").lower()


def normalise_full_name(value: Any) -> Optional[str]:
    """At least two words of letters (hyphens and apostrophes inside words are fine), or
    a name in Chinese characters, which has no spaces ("王小明").
    """
    words = str(value or "").split()
    if len(words) == 1 and _HAN_NAME.fullmatch(words[0]):
        return words[0]
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
