"""Split a reply into messages that fit a platform's limit without breaking words.

Channels split the *plain* text and escape or mark up each piece afterwards, measuring
a piece by its escaped length (``measure``), so markup is never cut in half. Breaks go,
in order of preference, at a blank line, a line break, the end of a sentence (``. ! ?``
before a space, or Chinese ``。！？`` and any closing quote after them), a Chinese clause
mark (``，、；：``), then at a space or between two Chinese characters, which is where
Chinese breaks lines, having no spaces. Chinese line-breaking rules (*kinsoku*) are
kept: a piece never starts with closing punctuation (``，。」》``…) nor ends with an
opening one (``「《（“``…). Only a single word longer than the limit is cut inside,
and never inside a character that shows as one: a combining mark, a variation selector,
an emoji's skin tone or ``ZWJ`` sequence, a flag (two regional indicators) stay with
what they belong to. :data:`NO_BREAK` (U+2060 WORD JOINER) between two characters
forbids the break there, as Unicode means it to (the Telegram format uses it to keep a
link or bold phrase whole).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Callable, List

NO_BREAK = "\u2060"

# Characters of scripts written without spaces (Han, kana, bopomofo, CJK radicals),
# their punctuation and full-width forms: a line may break before or after any of them,
# unless the rules below forbid it.
_CJK = (
    "\u2e80-\u2fdf\u3001-\u303f\u3040-\u309f\u30a0-\u30ff\u3100-\u312f\u31a0-\u31bf"
    "\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff01-\uff60\uffe0-\uffe6"
    "\U00020000-\U0003134f"
)
# Never at the start of a piece: closing brackets and quotes, punctuation, small kana,
# prolonged sound marks, and anything that attaches to the character before it.
_NO_START = (
    ")\\]}）］｝」』》〉】〕〗〙〛”’〞〟＞,.:;!?，。、：；！？｡､…‥・·～〜ー々ゝゞヽヾ%％‰°℃"
    "ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ"
    "\u0300-\u036f\u1ab0-\u1aff\u20d0-\u20ff\ufe00-\ufe0f\ufe20-\ufe2f\u200c\u200d"
    f"{NO_BREAK}\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f\U000e0100-\U000e01ef"
)
# Never at the end of a piece: opening brackets and quotes.
_NO_END = f"(\\[{{（［｛「『《〈【〔〖〘〚“‘〝＜\u200d{NO_BREAK}"
_CLOSERS = "”’」』）》〉】"

_BREAKS = (
    re.compile(r"\n\s*\n"),
    re.compile(r"\n"),
    re.compile(
        r"(?<=[.!?])\s+"
        rf"|(?:(?<=[。！？｡])|(?<=[。！？｡][{_CLOSERS}]))(?![{_NO_START}])\s*"
    ),
    re.compile(rf"(?<=[，、；：､])(?![{_NO_START}])\s*"),
    re.compile(rf"\s+|(?:(?<=[{_CJK}])|(?=[{_CJK}]))(?<![{_NO_END}])(?![{_NO_START}])"),
)
_WORDS = _BREAKS[-1]


def split_text(text: str, limit: int, *, measure: Callable[[str], int] = len) -> List[str]:
    """Pieces of ``text``, each with ``measure(piece) <= limit``, in order.

    Whitespace at the breaks is dropped; empty text gives no pieces. Joined with a
    space where the text had one and with nothing between Chinese characters, the
    pieces are the text again.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    text = text.strip()
    pieces: List[str] = []
    while text:
        if measure(text) <= limit:
            pieces.append(text)
            break
        cut = _best_break(text, limit, measure)
        head, text = text[: cut[0]].rstrip(), text[cut[1] :].lstrip()
        if head:
            pieces.append(head)
    return pieces


def _longest_prefix(text: str, limit: int, measure: Callable[[str], int]) -> int:
    """Length of the longest prefix of ``text`` whose measure fits (binary search)."""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if measure(text[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    return low


def _best_break(text: str, limit: int, measure: Callable[[str], int]) -> tuple[int, int]:
    """(end of this piece, start of the rest) for the best break that fits."""
    fits = _longest_prefix(text, limit, measure)
    window = text[: fits + 1]  # a break right after the last fitting character counts
    for pattern in _BREAKS:
        # A paragraph, sentence or clause break only wins when it keeps at least half of
        # what would fit; otherwise a later, plainer break makes fuller messages.
        floor = 1 if pattern is _WORDS else max(1, fits // 2)
        # An empty match (between Chinese characters) must leave a piece that fits.
        matches = [m for m in pattern.finditer(window) if floor <= m.start() <= fits]
        if matches:
            last = matches[-1]
            return last.start(), last.end()
    # One word longer than the limit: cut it, never leaving an empty piece.
    fits = max(fits, 1)
    # Do not cut a character that shows as one (a base and its marks, an emoji sequence).
    while fits > 1 and _is_continuation(text, fits):
        fits -= 1
    return fits, fits


def _is_continuation(text: str, index: int) -> bool:
    """Whether ``text[index]`` belongs to the character shown before it."""
    char, before = text[index], text[index - 1]
    if unicodedata.category(char) in ("Mn", "Mc", "Me") or before == "\u200d":
        return True
    if (
        char in "\u200d"
        or "\U0001f3fb" <= char <= "\U0001f3ff"
        or "\U000e0020" <= char <= "\U000e007f"
    ):
        return True
    if "\udc00" <= char <= "\udfff":  # a low surrogate, in text that kept them apart
        return True
    return _is_regional(char) and _regional_run(text, index) % 2 == 1


def _is_regional(char: str) -> bool:
    return "\U0001f1e6" <= char <= "\U0001f1ff"


def _regional_run(text: str, index: int) -> int:
    """How many regional indicators stand right before ``index`` (a flag is two)."""
    count = 0
    while index - count > 0 and _is_regional(text[index - count - 1]):
        count += 1
    return count
