"""How many SMS segments a text costs, and how to split a reply into affordable messages.

An SMS travels as GSM-7 when every character is in the GSM 03.38 alphabet: 160
septets fit one segment, 153 fit each part of a longer, concatenated message (the
rest carries the header that joins the parts), and a character of the extension table
(``€ [ ] { } ^ ~ |``, backslash and form feed) costs two septets, escape plus character, which
a part never separates. A single character outside the alphabet (an emoji, a curly
quote, most non-Latin scripts) switches the *whole* message to UCS-2: 70 UTF-16 code
units in one segment, 67 per part, and a surrogate pair is never split either.

Twilio bills per segment and refuses bodies over 1,600 characters, so replies are
split into messages of at most ``max_segments`` segments, at paragraph, sentence or
word breaks, or between two Chinese characters
(:func:`channels.text_splitting.split_text`). Typographic look-alikes (curly quotes,
dashes, ellipsis, non-breaking spaces) are best replaced (:func:`gsm_lookalikes`), as
Twilio's own *Smart Encoding* does: one ``’`` in a bot reply would otherwise halve what
a segment holds. They are replaced only in a message that the replacement makes GSM-7
(:func:`sms_body`): a Chinese reply travels as UCS-2 whatever its quotes, so its ``“”``
and ``——`` stay as Chinese is written instead of turning into ``""`` and ``--``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

from channels.text_splitting import split_text

GSM7 = "GSM-7"
UCS2 = "UCS-2"

# GSM 03.38 basic character set (the escape 0x1B is not a character of its own).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each costs the escape septet plus its own.
_GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

SINGLE_GSM7 = 160
PART_GSM7 = 153
SINGLE_UCS2 = 70
PART_UCS2 = 67
# Twilio rejects a message body longer than this (error 21617).
TWILIO_MAX_BODY_CHARS = 1600
# Twilio advises against more; it is also the most `max_segments` accepts.
MAX_SEGMENTS = 10

_LOOKALIKES = {
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u2035\u02bc\u02b9\u00b4\uff07", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb\uff02", '"'),
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
    **dict.fromkeys("\u00a0\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f", " "),
    "\u2026": "...",
    "\u2022": "-",
    "\u200b": "",
    "\ufeff": "",
}
_LOOKALIKE_TABLE = str.maketrans(_LOOKALIKES)


@dataclass(frozen=True)
class SegmentCount:
    """What one message costs: its encoding, its length in that encoding, its segments."""

    encoding: str  # GSM7 or UCS2
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int  # 0 for an empty text


def is_gsm7(text: str) -> bool:
    """Whether ``text`` can travel as GSM-7 (basic alphabet plus extension table)."""
    return all(char in _GSM_BASIC or char in _GSM_EXTENSION for char in text)


def gsm_lookalikes(text: str) -> str:
    """``text`` with typographic quotes, dashes, ellipsis and odd spaces made GSM-7."""
    return text.translate(_LOOKALIKE_TABLE)


def sms_body(text: str, *, smart_encoding: bool = True) -> str:
    """``text`` as sent: with look-alikes replaced when that makes it GSM-7, else as is."""
    if smart_encoding and not is_gsm7(text):
        replaced = gsm_lookalikes(text)
        if is_gsm7(replaced):
            return replaced
    return text


def count_segments(text: str) -> SegmentCount:
    """The encoding, length and number of segments of one SMS with body ``text``."""
    if is_gsm7(text):
        widths = [2 if char in _GSM_EXTENSION else 1 for char in text]
        return SegmentCount(GSM7, sum(widths), _pack(widths, SINGLE_GSM7, PART_GSM7))
    widths = [2 if ord(char) > 0xFFFF else 1 for char in text]  # surrogate pairs
    return SegmentCount(UCS2, sum(widths), _pack(widths, SINGLE_UCS2, PART_UCS2))


def segment_count(text: str) -> int:
    """The number of segments one SMS with body ``text`` is billed as."""
    return count_segments(text).segments


def _pack(widths: List[int], single: int, part: int) -> int:
    """Segments for characters of the given widths, never splitting one character."""
    total = sum(widths)
    if total == 0:
        return 0
    if total <= single:
        return 1
    segments, used = 1, 0
    for width in widths:
        if used + width > part:
            segments, used = segments + 1, 0
        used += width
    return segments


def utf16_length(text: str) -> int:
    """Characters as Twilio counts them for its 1,600 limit (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def split_sms(
    text: str, *, max_segments: int = MAX_SEGMENTS, smart_encoding: bool = False
) -> List[str]:
    """``text`` as messages of at most ``max_segments`` segments and 1,600 characters.

    Each message is measured on its own, so a part with an emoji costs UCS-2 while
    the others stay GSM-7; with ``smart_encoding`` each is :func:`sms_body` of its
    text. Words are only cut when one alone does not fit; Chinese breaks after a
    sentence or clause, else between two characters.
    """
    if not 1 <= max_segments <= MAX_SEGMENTS:
        raise ValueError(f"max_segments must be between 1 and {MAX_SEGMENTS}, not {max_segments}")

    def body(piece: str) -> str:
        return sms_body(piece, smart_encoding=smart_encoding)

    def measure(piece: str) -> int:
        sent = body(piece)
        if utf16_length(sent) > TWILIO_MAX_BODY_CHARS:
            return max_segments + 1
        return segment_count(sent)

    return [body(piece) for piece in split_text(text, max_segments, measure=measure)]
