"""The conversation's language, kept in the ``language`` slot.

:class:`~rasa_llm.language.MessageLanguageDetector` gives each message a language, or
``None`` when the message does not tell. The conversation's language is that of the
latest message that told: a customer who writes Chinese is answered in Chinese, an
order number typed next ("48213") does not change that, and a customer who moves to
English is answered in English from that message on.

Rasa fills slots after each message in ``action_extract_slots``, from entities, intents
or text; none of those fits (an entity would have to be annotated on every message of
every test story). :func:`install_language_slot` adds one step to that action: when the
domain has a ``language`` slot and the latest message's ``language`` differs from it,
the slot is set. Declare the slot with a ``custom`` mapping so that Rasa itself leaves
it alone, and condition response variations on it::

    slots:
      language:
        type: categorical
        values: [en, zh]
        initial_value: en
        influence_conversation: false
        mappings:
          - type: custom

    responses:
      utter_greet:
        - text: "Hello! How can I help?"
        - text: "您好！请问有什么可以帮您？"
          condition:
            - type: slot
              name: language
              value: zh

Actions read the slot (``tracker.get_slot("language")``) for text they write
themselves.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, List, Optional

if TYPE_CHECKING:
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import Event
    from rasa.shared.core.trackers import DialogueStateTracker

__all__ = ["LANGUAGE_KEY", "LANGUAGE_SLOT", "install_language_slot", "language_slot_event"]

# The parse result's key and the slot's name.
LANGUAGE_KEY = "language"
LANGUAGE_SLOT = "language"
_INSTALLED = "_rasa_llm_language_slot"


def language_slot_event(
    tracker: DialogueStateTracker, domain: Domain, events: List[Event]
) -> Optional[Event]:
    """The ``SlotSet`` that moves the slot to the latest message's language, if any.

    ``events`` are those ``action_extract_slots`` returns; a ``language`` slot they set
    (a bot's own mapping) is left as it is.
    """
    from rasa.shared.core.events import SlotSet

    if LANGUAGE_SLOT not in {slot.name for slot in domain.slots}:
        return None
    if any(isinstance(e, SlotSet) and e.key == LANGUAGE_SLOT for e in events):
        return None
    message = tracker.latest_message
    language = (message.parse_data or {}).get(LANGUAGE_KEY) if message else None
    if not isinstance(language, str) or language == tracker.get_slot(LANGUAGE_SLOT):
        return None
    return SlotSet(LANGUAGE_SLOT, language)


def install_language_slot() -> None:
    """Make ``action_extract_slots`` keep the ``language`` slot up to date. Idempotent."""
    from rasa.core.actions.action import ActionExtractSlots

    if getattr(ActionExtractSlots.run, _INSTALLED, False):
        return
    original = ActionExtractSlots.run

    @functools.wraps(original)
    async def run(
        self: ActionExtractSlots,
        output_channel: Any,
        nlg: Any,
        tracker: DialogueStateTracker,
        domain: Domain,
    ) -> List[Event]:
        events = await original(self, output_channel, nlg, tracker, domain)
        extra = language_slot_event(tracker, domain, events)
        return [*events, extra] if extra is not None else events

    setattr(run, _INSTALLED, True)
    ActionExtractSlots.run = run  # type: ignore[method-assign]
