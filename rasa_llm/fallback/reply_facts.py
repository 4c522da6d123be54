"""Finding the checkable facts in a reply and in the passages it must be grounded in.

A fact is a number (an amount or a percentage included; currencies are not compared),
a date, a time, a URL, an e-mail address or a phone number: what a small model invents
most often and a customer acts on. Each fact comes with keys that identify it whatever
its spelling ("5pm" and "17:00", "14 March 2024" and "2024-03-14", "+44 20 7946 0958"
and "020 7946 0958"); :class:`~rasa_llm.fallback.reply_guard.ReplyGuard` takes a
reply's fact as grounded when one of its keys is among the passages' keys
(:func:`source_keys`).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, List, Set, Tuple

from rasa_llm.fallback.pii_masker import EMAIL_PATTERN, find_phone_spans

__all__ = ["Fact", "extract_facts", "source_keys"]

_MONTHS = {
    name: index + 1
    for index, names in enumerate(
        "january jan|february feb|march mar|april apr|may|june jun|july jul|august aug|"
        "september sep sept|october oct|november nov|december dec".split("|")
    )
    for name in names.split()
}
# "May" only capitalised: "orders over 5 may ship separately" holds no date.
_MONTH = (
    r"(?P<mon>"
    + "|".join(sorted((m for m in _MONTHS if m != "may"), key=len, reverse=True))
    + r"|(?-i:May))\.?"
)
_ORDINAL = r"(?:st|nd|rd|th)?"
_DATE_PATTERNS = [
    re.compile(rf"\b{_MONTH}\s+(?P<d>\d{{1,2}})(?!\d){_ORDINAL}(?:,?\s+(?P<y>\d{{4}}))?\b", re.I),
    re.compile(
        rf"\b(?P<d>\d{{1,2}}){_ORDINAL}\s+(?:of\s+)?{_MONTH}(?:,?\s+(?P<y>\d{{4}}))?\b", re.I
    ),
    re.compile(r"\b(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b"),
    re.compile(r"\b(?P<a>\d{1,2})[/.](?P<b>\d{1,2})[/.](?P<y>\d{2}|\d{4})\b"),
]
_TIME = re.compile(
    r"\b(?P<h>\d{1,2})(?:[:.](?P<m>\d{2}))?\s?(?P<ap>[ap])\.?m\b|\b(?P<h24>\d{1,2}):(?P<m24>\d{2})\b",
    re.I,
)
_URL = re.compile(
    r"\b(?:https?://|www\.)[^\s<>\"')\]]+|\b(?:[a-z0-9-]+\.)+(?:com|org|net|io|co|uk|de|fr|es|"
    r"it|nl|eu|info|biz|app|help|shop|store)\b(?:/[^\s<>\"')\]]*)?",
    re.I,
)
_NUMBER = re.compile(
    r"(?<![\w.,])(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:[.,](?P<frac>\d+))?(?![\d,.]\d)"
    r"(?P<pct>\s?(?:%|percent\b|per\s+cent\b))?",
    re.I,
)
_LIST_MARKER = re.compile(r"^\s*\d{1,2}[.)]\s", re.M)
_SPELLED = {
    word: value
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
_SPELLED.update(thirty=30, forty=40, fifty=50, sixty=60, ninety=90, hundred=100)


# A fact of a reply: its check code, the token as written, and the keys any one of
# which, found among the passages' keys, grounds it.
Fact = Tuple[str, str, Set[Tuple[Any, ...]]]


def extract_facts(text: str) -> List[Fact]:
    """Every fact of ``text``; each found span is blanked so that no digit counts twice."""
    facts: List[Fact] = []
    work = _LIST_MARKER.sub(lambda m: " " * len(m.group(0)), text)

    def take(spans: List[Tuple[int, int]]) -> List[str]:
        nonlocal work
        tokens = [work[start:end] for start, end in spans]
        for start, end in spans:
            work = work[:start] + " " * (end - start) + work[end:]
        return tokens

    def matches(pattern: re.Pattern[str]) -> List[re.Match[str]]:
        found = list(pattern.finditer(work))
        take([m.span() for m in found])
        return found

    for match in matches(EMAIL_PATTERN):
        facts.append(("unsupported_email", match[0], {("email", match[0].lower())}))
    for match in matches(_URL):
        url = re.sub(r"^(?:https?://)?(?:www\.)?", "", match[0].lower()).rstrip(".,;:!?/")
        facts.append(("unsupported_url", match[0], {("url", url)}))
    for token in take(find_phone_spans(work)):
        # "+44 20 7946 0958" and "020 7946 0958" are one number: either may end the other.
        digits = re.sub(r"\D", "", token).lstrip("0")
        keys = {("phone_end", digits)} | {("phone", digits[i:]) for i in range(len(digits) - 6)}
        facts.append(("unsupported_phone", token, keys))
    for pattern in _DATE_PATTERNS:
        for match in matches(pattern):
            facts.append(("unsupported_date", match[0], _date_keys(match)))
    for match in matches(_TIME):
        facts.append(("unsupported_time", match[0].strip(), _time_keys(match)))
    for match in matches(_NUMBER):
        value = Decimal(match["int"].replace(",", "") + "." + (match["frac"] or "0"))
        kind = "percent" if match["pct"] else "number"
        facts.append(
            ("unsupported_number", match[0].strip(), {(kind, format(value.normalize(), "f"))})
        )
    return facts


def source_keys(passages: str) -> Set[Tuple[Any, ...]]:
    """The keys the passages' facts provide, in every form a reply may use them."""
    keys: Set[Tuple[Any, ...]] = set()
    for code, _, fact_keys in extract_facts(passages):
        for key in fact_keys:
            if key[0] == "url":  # "example.com" is grounded by "example.com/returns"
                parts = key[1].split("/")
                keys.update(("url", "/".join(parts[: i + 1])) for i in range(len(parts)))
            elif key[0] == "phone_end":
                keys.add(("phone", key[1]))
                digits = key[1]
                keys.update(("phone_end", digits[i:]) for i in range(len(digits) - 6))
            elif key[0] == "phone":
                continue  # two numbers that merely end alike are not one number
            elif key[0] == "date":  # a date with a year also grounds the date without
                keys.update({key, key[:3] + (None,)})
            elif key[0] == "percent":  # "10%" also grounds a plain 10
                keys.update({key, ("number", key[1])})
            elif code != "unsupported_time" or key[0] == "time":
                keys.add(key)
    words = re.findall(r"[a-z]+", passages.lower())
    keys.update(("number", str(_SPELLED[w])) for w in words if w in _SPELLED)
    return keys


def _date_keys(match: re.Match[str]) -> Set[Tuple[Any, ...]]:
    groups = match.groupdict()
    year = int(groups["y"]) if groups.get("y") else None
    if year is not None and year < 100:
        year += 2000
    if groups.get("mon"):
        pairs = [(_MONTHS[groups["mon"].lower()], int(groups["d"]))]
    elif groups.get("m"):
        pairs = [(int(groups["m"]), int(groups["d"]))]
    else:  # 03/05/2024 is 5 March in Europe and 3 May in the US: either may match
        pairs = [(int(groups["a"]), int(groups["b"])), (int(groups["b"]), int(groups["a"]))]
    return {("date", m, d, year) for m, d in pairs if 1 <= m <= 12 and 1 <= d <= 31}


def _time_keys(match: re.Match[str]) -> Set[Tuple[Any, ...]]:
    if match["h24"] is not None:
        hour, minute = int(match["h24"]), int(match["m24"])
        # "5:00" may mean 17:00 when written without am/pm.
        hours = {hour, hour + 12} if hour < 12 else {hour}
    else:
        hour, minute = int(match["h"]) % 12, int(match["m"] or 0)
        hours = {hour + (12 if match["ap"].lower() == "p" else 0)}
    keys: Set[Tuple[Any, ...]] = {("time", h, minute) for h in hours}
    if minute == 0:  # on the hour, a plain "5" grounds it too ("open from 9 to 5")
        keys.update(("number", str(h % 12 or 12)) for h in hours)
        keys.update(("number", str(h)) for h in hours)
    return keys
