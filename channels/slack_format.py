"""Rasa's replies as Slack messages, and Slack's markup out of what customers type.

Outgoing text is Slack ``mrkdwn``: the bot's own ``*bold*`` and ``_italics_`` keep
working, but ``&``, ``<`` and ``>`` are escaped, so generated text can never ping
``<!channel>``, mention ``<@U…>`` or forge a link. Text is split at one limit for every
message, 3,000 characters *after* escaping: that is the most a section block holds (the
piece above a row of buttons), and it stays under the 4,000 characters Slack advises for
a message's ``text`` (its hard limit, 40,000, truncates silently). Blocks are built with
``slack_sdk.models.blocks`` so Slack's own limits are checked before a call is made.

The few words the channel adds itself (the notification text of a message that is only
buttons, "You chose: …" after a click, an image's alt text) are in the language of the
message they belong to (:func:`reply_language`), English when it does not tell.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    ImageBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from rasa_llm.language.detection import BOT_LANGUAGES, first_language_told

# The most characters of (escaped) mrkdwn in one message or section block.
TEXT_LIMIT = SectionBlock.text_max_length
# Slack's limits for buttons: per actions block, per message, per label, per value.
BUTTONS_PER_BLOCK = ActionsBlock.elements_max_length
BLOCKS_PER_MESSAGE = 50
BUTTON_LABEL_LIMIT = ButtonElement.text_max_length
BUTTON_VALUE_LIMIT = ButtonElement.value_max_length
IMAGE_ALT_TEXT = "image from the assistant"
# The bot's languages, the main one first, and the channel's own words in each.
LANGUAGES = BOT_LANGUAGES
# Slack reads *bold* only after a space or an ASCII mark, so the Chinese note has a
# space before its asterisk.
WORDING: Dict[str, Dict[str, str]] = {
    "en": {
        "choose": "Choose an option",
        "chose": "You chose: *{choice}*",
        "image": IMAGE_ALT_TEXT,
    },
    "zh": {
        "choose": "请选择一个选项",
        "chose": "您选择了 *{choice}*",
        "image": "客服助手发送的图片",
    },
}
# Prefix of the action_id of our buttons: a click on anything else is not a button of ours.
ACTION_PREFIX = "rasa_button_"

Block = Dict[str, Any]


def reply_language(*texts: str) -> Optional[str]:
    """The language of the first of ``texts`` that tells one among the bot's, else None."""
    return first_language_told(texts, LANGUAGES)


def _words(language: Optional[str]) -> Dict[str, str]:
    return WORDING.get(language or LANGUAGES[0], WORDING[LANGUAGES[0]])


def escape_mrkdwn(text: str) -> str:
    """Slack's three control characters as entities; everything else as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape_mrkdwn(text: str) -> str:
    """The inverse of :func:`escape_mrkdwn` (``&amp;`` last, so ``&amp;lt;`` is ``&lt;``)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def split_mrkdwn(text: str, *, limit: int = TEXT_LIMIT) -> List[str]:
    """Escaped pieces of ``text``, each at most ``limit`` characters once escaped.

    The plain text is split and each piece escaped afterwards, so an entity such as
    ``&amp;`` is never cut in half.
    """
    from channels.text_splitting import split_text

    pieces = split_text(text, limit, measure=lambda piece: len(escape_mrkdwn(piece)))
    return [escape_mrkdwn(piece) for piece in pieces]


def _label(title: str) -> str:
    title = " ".join(title.split()) or "…"
    if len(title) <= BUTTON_LABEL_LIMIT:
        return title
    return title[: BUTTON_LABEL_LIMIT - 1].rstrip() + "…"


def button_blocks(buttons: Sequence[Dict[str, Any]]) -> List[Block]:
    """Actions blocks for Rasa's buttons, 25 to a block, in order.

    A button whose payload is longer than Slack allows cannot be clicked back into the
    same payload, so it is left out rather than sent cut.
    """
    elements = []
    for index, button in enumerate(buttons):
        payload = button.get("payload")
        title = str(button.get("title") or payload or "")
        if button.get("url"):
            elements.append(
                ButtonElement(
                    text=PlainTextObject(text=_label(title)),
                    action_id=f"{ACTION_PREFIX}{index}",
                    url=str(button["url"]),
                )
            )
        elif payload is not None and 0 < len(str(payload)) <= BUTTON_VALUE_LIMIT:
            elements.append(
                ButtonElement(
                    text=PlainTextObject(text=_label(title)),
                    action_id=f"{ACTION_PREFIX}{index}",
                    value=str(payload),
                )
            )
    blocks = []
    for start in range(0, len(elements), BUTTONS_PER_BLOCK):
        chunk = elements[start : start + BUTTONS_PER_BLOCK]
        blocks.append(ActionsBlock(elements=chunk, block_id=f"rasa_buttons_{start}").to_dict())
    return blocks


def section_block(mrkdwn: str) -> Block:
    """A section with already escaped mrkdwn (at most :data:`TEXT_LIMIT` characters)."""
    return SectionBlock(text=MarkdownTextObject(text=mrkdwn)).to_dict()


def image_block(
    url: str, *, alt_text: Optional[str] = None, language: Optional[str] = None
) -> Block:
    """A Block Kit image block for ``url``, with alt text (when none is given, the
    default one in ``language``).
    """
    alt = alt_text or _words(language)["image"]
    return ImageBlock(image_url=url, alt_text=alt[:2000]).to_dict()


def buttons_fallback(buttons: Iterable[Dict[str, Any]], *, language: Optional[str] = None) -> str:
    """Notification text for a message that is only buttons: their titles, or "Choose
    an option" in ``language`` when they have none.
    """
    titles = [str(b.get("title") or b.get("payload") or "") for b in buttons]
    return (
        escape_mrkdwn(" / ".join(title for title in titles if title)) or _words(language)["choose"]
    )


def with_choice_shown(
    blocks: Sequence[Block], chosen: str, *, language: Optional[str] = None
) -> List[Block]:
    """The clicked message's blocks with our buttons replaced by what was chosen, said
    in ``language``.

    Other blocks stay as they were; a second click on the same message is then
    impossible, which keeps one answer per question.
    """
    kept: List[Block] = [
        block
        for block in blocks
        if isinstance(block, dict)
        and not (block.get("type") == "actions" and _has_our_buttons(block))
    ]
    note = _words(language)["chose"].format(choice=escape_mrkdwn(chosen))
    kept.append(ContextBlock(elements=[MarkdownTextObject(text=note[:TEXT_LIMIT])]).to_dict())
    return kept


def _has_our_buttons(block: Block) -> bool:
    elements = block.get("elements")
    return isinstance(elements, list) and any(
        isinstance(element, dict) and str(element.get("action_id", "")).startswith(ACTION_PREFIX)
        for element in elements
    )


# --------------------------------------------------------------- incoming text
_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
_CHANNEL = re.compile(r"<#[A-Z0-9]+\|([^>]*)>")
_LINK = re.compile(r"<((?:https?|mailto|tel):[^|>]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!(?:[^|>]+)(?:\|([^>]*))?>")


def plain_text(text: str, *, remove_users: Iterable[str] = ()) -> str:
    """What a customer typed, without Slack's markup, for NLU.

    Mentions of the bot itself are dropped (``<@BOT> where is my order``); links and
    channel names become the text Slack shows; entities are unescaped last, so a typed
    ``&lt;`` stays the characters ``<`` and never turns into markup here.
    """
    dropped = set(remove_users)

    def mention(match: re.Match) -> str:
        return " " if match.group(1) in dropped else match.group(0)

    text = _MENTION.sub(mention, text)
    text = _CHANNEL.sub(lambda m: f"#{m.group(1)}", text)
    text = _LINK.sub(lambda m: m.group(2) or m.group(1).removeprefix("mailto:"), text)
    text = _SPECIAL.sub(lambda m: m.group(1) or "", text)
    return " ".join(unescape_mrkdwn(text).split())


def objects_in(value: Any) -> List[Dict[str, Any]]:
    """The objects of a list Slack sends; anything else there is ignored, not a crash."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def bot_user_ids(envelope: Dict[str, Any]) -> Set[str]:
    """The bot users an Events API envelope was delivered for (its ``authorizations``)."""
    return {
        str(item.get("user_id"))
        for item in objects_in(envelope.get("authorizations"))
        if item.get("is_bot") and item.get("user_id")
    }
