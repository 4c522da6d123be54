"""The conversation's language in the `language` slot, through Rasa's own slot filling
and response selection."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Optional, Sequence

import pytest
from rasa.core.actions.action import ActionExtractSlots
from rasa.core.channels.channel import CollectingOutputChannel
from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, Event, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from rasa_llm.language import install_language_slot

DOMAIN = """
version: "3.1"
intents: [greet, inform]
entities: [order_number]
slots:
  language:
    type: categorical
    values: [en, zh]
    initial_value: en
    influence_conversation: false
    mappings:
      - type: custom
  order_number:
    type: text
    mappings:
      - type: from_entity
        entity: order_number
responses:
  utter_greet:
    - text: "Hello!"
    - text: "您好！"
      condition:
        - type: slot
          name: language
          value: zh
"""


@pytest.fixture(scope="module")
def domain() -> Domain:
    install_language_slot()
    return Domain.from_yaml(DOMAIN)


def _said(
    text: str, language: Optional[str], *, entities: Sequence[Dict[str, Any]] = ()
) -> UserUttered:
    parse: Dict[str, Any] = {
        "intent": {"name": "inform", "confidence": 1.0},
        "entities": list(entities),
        "language": language,
    }
    return UserUttered(text, parse["intent"], list(entities), parse_data=parse)


def _turn(tracker: DialogueStateTracker, domain: Domain, said: UserUttered) -> List[Event]:
    tracker.update(said)
    events = asyncio.run(
        ActionExtractSlots(None).run(
            CollectingOutputChannel(), TemplatedNaturalLanguageGenerator({}), tracker, domain
        )
    )
    for event in events:
        tracker.update(event)
    tracker.update(ActionExecuted("action_listen"))
    return events


def _greeting(tracker: DialogueStateTracker, domain: Domain) -> str:
    nlg = TemplatedNaturalLanguageGenerator(domain.responses)
    reply = asyncio.run(nlg.generate("utter_greet", tracker, "rest"))
    return reply["text"]


def test_the_slot_follows_the_latest_message_that_tells(domain: Domain) -> None:
    tracker = DialogueStateTracker.from_events("c", [], slots=domain.slots)
    assert _greeting(tracker, domain) == "Hello!"

    assert _turn(tracker, domain, _said("我的订单到哪了", "zh")) == [SlotSet("language", "zh")]
    assert _greeting(tracker, domain) == "您好！"

    # An order number says nothing about the language: it stays Chinese, and the
    # number's own slot is filled as before.
    entity = {"entity": "order_number", "value": "48213", "start": 0, "end": 5}
    events = _turn(tracker, domain, _said("48213", None, entities=[entity]))
    assert events == [SlotSet("order_number", "48213")]
    assert tracker.get_slot("language") == "zh"

    # Same language again: no event.
    assert _turn(tracker, domain, _said("谢谢", "zh")) == []

    assert _turn(tracker, domain, _said("thanks, bye", "en")) == [SlotSet("language", "en")]
    assert _greeting(tracker, domain) == "Hello!"


def test_a_domain_without_the_slot_is_left_alone() -> None:
    install_language_slot()
    domain = Domain.from_yaml('version: "3.1"\nintents: [inform]\n')
    tracker = DialogueStateTracker.from_events("c", [], slots=domain.slots)
    assert _turn(tracker, domain, _said("我的订单到哪了", "zh")) == []


def test_installing_twice_wraps_once(domain: Domain) -> None:
    install_language_slot()
    run = ActionExtractSlots.run
    install_language_slot()
    assert ActionExtractSlots.run is run
    tracker = DialogueStateTracker.from_events("c", [], slots=domain.slots)
    assert _turn(tracker, domain, _said("退款", "zh")) == [SlotSet("language", "zh")]
