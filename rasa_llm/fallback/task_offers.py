"""Task offers: after an answer from the knowledge base, the task its section is about.

A customer who asks "is return postage free?" gets the answer about return postage
from ``action_generative_fallback``; a bot that can also start the return says so
("Would you like to start a return?") with a button whose payload starts the task
(``/return_item``). The bot sent that button, so the intent-shortcut guard
(``rasa_llm/server/intent_shortcuts.py``) honours a click on it; typed ``/intents`` stay text.

Which task goes with which answer is the bot's to say, in ``task_offers.yml`` beside
``fallback.yml`` (``RASA_LLM_TASK_OFFERS`` names another file; no file, no offers)::

    offers:
      - text: Would you like to start a return?
        button: Start a return
        payload: /return_item
        sections:                       # knowledge-base passage ids, or whole files
          - returns_and_refunds.md#return-window
          - returns_and_refunds.md#cost-of-return-shipping
          - returns_and_refunds.md#退货期限    # another language's sections too
        languages:                      # the offer in the bot's other languages
          zh: {text: 需要我帮您申请退货吗？, button: 申请退货}

The answer's best passage picks the offer: its id (``<file>#<section slug>``, as
:class:`~rasa_llm.fallback.knowledge_base.KnowledgeBase` names sections) first, then
its file. A section belongs to one offer at most. The action makes no offer while a
form is open (the customer is in the middle of a task) or when it could not answer
from a passage (the scripted reply already offers a person), nor in a conversation in
a language the offer has no wording for.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import yaml

from rasa_llm.config_validation import validate_config
from rasa_llm.errors import InvalidComponentConfigError

__all__ = ["OFFERS_ENV", "TaskOffer", "TaskOffers", "offers_path", "task_offers"]

COMPONENT = "action_generative_fallback (task_offers.yml)"
OFFERS_ENV = "RASA_LLM_TASK_OFFERS"
DEFAULT_OFFERS_FILE = "task_offers.yml"

# The keys of one offer; all but `languages` are required.
_OFFER_KEYS: Dict[str, Any] = {
    "text": "",
    "button": "",
    "payload": "",
    "sections": [],
    "languages": {},
}
_OFFER_TYPES: Dict[str, Any] = {
    "text": str,
    "button": str,
    "payload": str,
    "sections": list,
    "languages": dict,
}
_REQUIRED = ("text", "button", "payload", "sections")


@dataclass(frozen=True)
class TaskOffer:
    """One offer: the question, and the button that starts the task."""

    text: str
    button: str
    payload: str
    sections: Tuple[str, ...]
    # Language -> (text, button) in the bot's other languages.
    translations: Mapping[str, Tuple[str, str]] = field(default_factory=dict)

    def buttons(self) -> List[Dict[str, str]]:
        """The offer's button, as ``dispatcher.utter_message(buttons=...)`` takes it."""
        return [{"title": self.button, "payload": self.payload}]

    def in_language(self, language: Optional[str]) -> Optional[TaskOffer]:
        """The offer in another ``language`` (None: as written), or None without wording."""
        if language is None:
            return self
        if language not in self.translations:
            return None
        text, button = self.translations[language]
        return TaskOffer(text, button, self.payload, self.sections, self.translations)


class TaskOffers:
    """The bot's offers, looked up by the passage an answer came from."""

    def __init__(self, offers: List[TaskOffer]) -> None:
        self.offers = list(offers)
        self._by_section: Dict[str, TaskOffer] = {}
        for offer in self.offers:
            for section in offer.sections:
                if section in self._by_section:
                    raise InvalidComponentConfigError(
                        COMPONENT,
                        "sections",
                        f"lists '{section}' under two offers",
                        "keep each section under the one offer that fits it best.",
                    )
                self._by_section[section] = offer

    @classmethod
    def from_mapping(cls, data: Any) -> TaskOffers:
        """Offers from the parsed YAML; errors name the key and the fix."""
        if data is None:
            return cls([])
        if not isinstance(data, Mapping):
            raise InvalidComponentConfigError(
                COMPONENT, "offers", "is missing", "write 'offers:' followed by a list."
            )
        validate_config(COMPONENT, data, {"offers": []}, {"offers": list})
        return cls([_offer(index, item) for index, item in enumerate(data.get("offers") or [])])

    @classmethod
    def from_file(cls, path: Path) -> TaskOffers:
        """The offers in ``path``; an absent file means none."""
        if not path.is_file():
            return cls([])
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise InvalidComponentConfigError(
                COMPONENT,
                "offers",
                f"cannot be read from '{path}': {' '.join(str(e).split())}",
                "correct the YAML.",
            ) from e
        return cls.from_mapping(data)

    def for_passage(self, passage_id: str) -> Optional[TaskOffer]:
        """The offer for an answer from ``passage_id`` (``<file>#<slug>``), if any."""
        found = self._by_section.get(passage_id)
        if found is None:
            found = self._by_section.get(passage_id.split("#", 1)[0])
        return found


def _offer(index: int, item: Any) -> TaskOffer:
    key = f"offers[{index}]"
    if not isinstance(item, Mapping):
        raise InvalidComponentConfigError(
            COMPONENT, key, "is not a mapping", "give text, button, payload and sections."
        )
    validate_config(COMPONENT, item, _OFFER_KEYS, _OFFER_TYPES)
    missing = [name for name in _REQUIRED if not item.get(name)]
    if missing:
        raise InvalidComponentConfigError(
            COMPONENT, f"{key}.{missing[0]}", "is missing or empty", "give every key a value."
        )
    payload = str(item["payload"]).strip()
    if not payload.startswith("/"):
        raise InvalidComponentConfigError(
            COMPONENT,
            f"{key}.payload",
            f"is '{payload}', not an intent",
            "write the task's intent with a slash, e.g. /return_item.",
        )
    sections = tuple(str(s).strip() for s in item["sections"])
    if not all(sections):
        raise InvalidComponentConfigError(
            COMPONENT, f"{key}.sections", "has an empty entry", "remove it."
        )
    translations = {
        str(language): _wording(f"{key}.languages.{language}", given)
        for language, given in (item.get("languages") or {}).items()
    }
    return TaskOffer(
        str(item["text"]).strip(), str(item["button"]).strip(), payload, sections, translations
    )


def _wording(key: str, given: Any) -> Tuple[str, str]:
    if not isinstance(given, Mapping):
        raise InvalidComponentConfigError(
            COMPONENT, key, "is not a mapping", "give its text and button."
        )
    validate_config(COMPONENT, given, {"text": "", "button": ""}, {"text": str, "button": str})
    if not str(given.get("text", "")).strip() or not str(given.get("button", "")).strip():
        raise InvalidComponentConfigError(
            COMPONENT, key, "lacks its text or button", "give both in that language."
        )
    return str(given["text"]).strip(), str(given["button"]).strip()


def offers_path(config_file: Path) -> Path:
    """Where the offers are read from: ``RASA_LLM_TASK_OFFERS``, else beside ``config_file``."""
    named = os.environ.get(OFFERS_ENV)
    return Path(named) if named else config_file.parent / DEFAULT_OFFERS_FILE


_LOADED: Dict[Path, TaskOffers] = {}
_LOCK = threading.Lock()


def task_offers(path: Path) -> TaskOffers:
    """The offers in ``path``, read once per process (a broken file raises every time)."""
    with _LOCK:
        if path not in _LOADED:
            _LOADED[path] = TaskOffers.from_file(path)
        return _LOADED[path]
