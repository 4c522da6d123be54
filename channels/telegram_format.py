"""The bot's text as Telegram HTML, in messages that fit Telegram's limits.

Telegram's HTML parse mode is used because it needs only ``&``, ``<`` and ``>`` escaped
(MarkdownV2 reserves eighteen characters that ordinary replies are full of). A few
Markdown spans a response or a generated answer may hold become HTML: links
``[label](https://…)``, ``**bold**`` and ```code```; everything else is escaped and
shown as written, so no reply is ever refused for bad markup.

Limits are counted as Telegram counts them, in UTF-16 code units, on the HTML as sent
(a little stricter than Telegram, which counts after parsing). Text is split as plain
text and each piece is converted afterwards; the spaces inside a Markdown span, and the
places between its Chinese characters, are protected while splitting, so a link or a
bold phrase (``**您的订单已发货**``) is never cut in two.
"""

from __future__ import annotations

import html
import re
from typing import List

from channels.text_splitting import NO_BREAK, split_text

# Telegram's limits, in UTF-16 code units.
MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024

_SPANS = re.compile(
    r"\[(?P<label>[^\]\n]+)\]\((?P<url>https?://[^\s()]+)\)"
    r"|\*\*(?P<bold>[^*\n]+)\*\*"
    r"|`(?P<code>[^`\n]+)`"
)
# Private-use stand-ins for spaces inside a span while the text is split; a word joiner
# between each two of its characters forbids a break between Chinese ones.
_GUARDS = str.maketrans({" ": "\ue000", "\t": "\ue001"})
_UNGUARDS = str.maketrans({"\ue000": " ", "\ue001": "\t", NO_BREAK: None})


def escape(text: str) -> str:
    """Text safe inside Telegram HTML: only &, < and > are special outside attributes."""
    return html.escape(text, quote=False)


def utf16_length(text: str) -> int:
    """Telegram's length: emoji and other characters beyond the BMP count twice."""
    return len(text.encode("utf-16-le")) // 2


def to_html(text: str) -> str:
    """The text escaped for Telegram's HTML parse mode, with Markdown spans as tags."""
    out: List[str] = []
    position = 0
    for match in _SPANS.finditer(text):
        out.append(escape(text[position : match.start()]))
        if match.group("url"):
            url = html.escape(match.group("url"), quote=True)
            out.append(f'<a href="{url}">{escape(match.group("label"))}</a>')
        elif match.group("bold"):
            out.append(f"<b>{escape(match.group('bold'))}</b>")
        else:
            out.append(f"<code>{escape(match.group('code'))}</code>")
        position = match.end()
    out.append(escape(text[position:]))
    return "".join(out)


def html_pieces(text: str, *, limit: int = MESSAGE_LIMIT) -> List[str]:
    """``text`` as Telegram HTML messages of at most ``limit`` UTF-16 units each.

    Breaks prefer paragraphs, lines, sentences, then spaces (see
    :func:`channels.text_splitting.split_text`); a word is cut only when it alone is
    longer than the limit.
    """
    if "\ue000" in text or "\ue001" in text or NO_BREAK in text:
        guarded = text  # the text uses the stand-ins itself: split without protection
    else:
        guarded = _SPANS.sub(lambda match: NO_BREAK.join(match.group(0).translate(_GUARDS)), text)

    def measure(piece: str) -> int:
        return utf16_length(to_html(piece.translate(_UNGUARDS)))

    pieces = [
        to_html(piece.translate(_UNGUARDS)) for piece in split_text(guarded, limit, measure=measure)
    ]
    if all(utf16_length(piece) <= limit for piece in pieces):
        return pieces
    # Spans that match differently in a piece than in the whole text can make a piece
    # longer than measured; plain escaped text always measures exactly.
    plain = split_text(text, limit, measure=lambda piece: utf16_length(escape(piece)))
    return [escape(piece) for piece in plain]


def caption_fits(text: str) -> bool:
    """Whether ``text`` can go as a photo's caption instead of a message of its own."""
    return 0 < utf16_length(to_html(text.strip())) <= CAPTION_LIMIT
