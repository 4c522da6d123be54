"""Split a reply into messages that fit a platform's limit without breaking words.

Channels split the *plain* text and escape or mark up each piece afterwards, measuring
a piece by its escaped length (``measure``), so markup is never cut in half. Breaks go,
in order of preference, at a blank line, a line break, the end of a sentence, a space;
only a single word longer than the limit is cut inside.
"""

from __future__ import annotations

import re
from typing import Callable, List

_BREAKS = (
    re.compile(r"\n\s*\n"),
    re.compile(r"\n"),
    re.compile(r"(?<=[.!?])\s+"),
    re.compile(r"\s+"),
)


def split_text(text: str, limit: int, *, measure: Callable[[str], int] = len) -> List[str]:
    """Pieces of ``text``, each with ``measure(piece) <= limit``, in order.

    Whitespace at the breaks is dropped; empty text gives no pieces.
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
        # A paragraph or sentence break only wins when it keeps at least half of what
        # would fit; otherwise a later, plainer break makes fuller messages.
        floor = 1 if pattern is _BREAKS[-1] else max(1, fits // 2)
        matches = [m for m in pattern.finditer(window) if m.start() >= floor]
        if matches:
            last = matches[-1]
            return last.start(), last.end()
    # One word longer than the limit: cut it, never leaving an empty piece.
    fits = max(fits, 1)
    # Do not cut a surrogate pair or a combining mark away from its base character.
    while fits > 1 and _is_continuation(text[fits]):
        fits -= 1
    return fits, fits


def _is_continuation(char: str) -> bool:
    import unicodedata

    return unicodedata.combining(char) != 0 or "\udc00" <= char <= "\udfff"
