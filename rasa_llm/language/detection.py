"""Which of the bot's languages a customer's message is written in.

The bot answers in the customer's language, so every message is given one of the bot's
languages, or ``None`` when the message does not say (an order number, "ok", an emoji):
the conversation then keeps the language it had. Two steps:

1. Chinese by its characters. A Han character stands for a syllable or a word where a
   Latin letter is a fraction of one, so each counts three letters' weight. A message
   whose Han weight is at least its Latin letters' is Chinese, English words and numbers
   inside it included ("我的order 48213呢", "帮我查下order status"); so is a message of Han
   characters and no Latin letters, one character ("好") included. A message with one
   Han character among English words ("I want to return the 杯") is not.
2. Otherwise :func:`rasa_llm.fallback.language_detector.detect_language`, which reads
   Latin script by function words and says ``None`` rather than guess on short text.
   When that cannot decide either, two Han characters or more make it Chinese. A
   language the bot does not speak (Spanish, Japanese) gives the bot's first
   language: the customer is answered, in the language the bot was built in first.
"""

from __future__ import annotations

from typing import Optional, Sequence

from rasa_llm.fallback.language_detector import detect_language

__all__ = ["BOT_LANGUAGES", "CHINESE", "first_language_told", "is_han", "message_language"]

CHINESE = "zh"
# The languages the shipped bot and channels speak, the main one first.
BOT_LANGUAGES = ("en", "zh")
# A Han character weighs this many Latin letters (as in the fallback's detector).
HAN_WEIGHT = 3
# A message the Latin-script reading cannot decide is Chinese with this many Han
# characters ("我想退货 because it is broken").
MIN_HAN_TO_TIP = 2


def is_han(char: str) -> bool:
    """Whether ``char`` is a Chinese (Han) character: the unified blocks and extension A."""
    code = ord(char)
    return 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF


def _is_kana(char: str) -> bool:
    return 0x3040 <= ord(char) <= 0x30FF


def message_language(text: str, languages: Sequence[str]) -> Optional[str]:
    """``text``'s language among ``languages`` (first = the bot's main one), or ``None``.

    ``None`` means the text does not tell (too short, numbers, unclear); a language
    outside ``languages`` that the text clearly is gives ``languages[0]``.
    """
    if not languages:
        raise ValueError("languages must name at least one language")
    han = sum(1 for char in text if is_han(char))
    kana = any(_is_kana(char) for char in text)
    latin = sum(1 for char in text if char.isascii() and char.isalpha())
    if han and not kana and (HAN_WEIGHT * han >= latin or not latin):
        detected: Optional[str] = CHINESE
    else:
        detected = detect_language(text)
        if detected is None and han >= MIN_HAN_TO_TIP and not kana:
            detected = CHINESE
    if detected is None:
        return None
    return detected if detected in languages else languages[0]


def first_language_told(texts: Sequence[str], languages: Sequence[str]) -> Optional[str]:
    """The language of the first of ``texts`` that tells one among ``languages``, else None.

    For the words a channel adds to a bot message ("Reply with the number."): they
    follow the message's text, else its buttons' titles.
    """
    for text in texts:
        language = message_language(text, languages)
        if language is not None:
            return language
    return None
