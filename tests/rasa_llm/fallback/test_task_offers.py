"""Task offers: read strictly, picked by the answer's passage, sent only after an answer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from rasa_llm.errors import InvalidComponentConfigError
from rasa_llm.fallback import action_generative_fallback as module
from rasa_llm.fallback.action_generative_fallback import ActionGenerativeFallback
from rasa_llm.fallback.generative_fallback import FallbackReply
from rasa_llm.fallback.knowledge_base import KnowledgeBase
from rasa_llm.fallback.passage import Passage, RetrievedPassage
from rasa_llm.fallback.task_offers import OFFERS_ENV, TaskOffers, offers_path
from rasa_llm.server.intent_shortcuts import offered_payloads
from tests.rasa_llm.fallback.test_action_generative_fallback import _Answers

ROOT = Path(__file__).resolve().parents[3]
BOT = ROOT / "bot"

RETURN = {
    "text": "Would you like to start a return?",
    "button": "Start a return",
    "payload": "/return_item",
    "sections": ["returns.md#cost-of-return-shipping", "returns.md#return-window"],
}
CARDS = {
    "text": "Shall I block your card?",
    "button": "Block my card",
    "payload": "/lost_card",
    "sections": ["cards.md"],
}


def _passage(passage_id: str, score: float = 0.6) -> RetrievedPassage:
    source = passage_id.split("#", 1)[0]
    return RetrievedPassage(Passage(passage_id, source, "Title", "Text."), score)


def test_the_answers_section_picks_the_offer_then_its_file():
    offers = TaskOffers.from_mapping({"offers": [RETURN, CARDS]})
    assert offers.for_passage("returns.md#return-window").payload == "/return_item"
    assert offers.for_passage("cards.md#store-card-pin").payload == "/lost_card"
    assert offers.for_passage("returns.md#exchanges") is None
    assert offers.for_passage("shipping.md#late-parcels") is None
    [button] = offers.for_passage("returns.md#return-window").buttons()
    assert button == {"title": "Start a return", "payload": "/return_item"}


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ({"offer": []}, "did you mean 'offers'"),
        ({"offers": [{**RETURN, "buton": "x"}]}, "did you mean 'button'"),
        ({"offers": [{**RETURN, "payload": "return_item"}]}, r"offers\[0\].payload"),
        ({"offers": [{k: v for k, v in RETURN.items() if k != "text"}]}, r"offers\[0\].text"),
        ({"offers": [RETURN, {**CARDS, "sections": ["returns.md#return-window"]}]}, "two offers"),
        ({"offers": ["start a return"]}, r"offers\[0\]' is not a mapping"),
        ({"offers": [{**RETURN, "sections": "returns.md"}]}, "must be a list"),
    ],
)
def test_mistakes_in_the_file_name_the_key_and_the_fix(data: Dict[str, Any], names: str):
    with pytest.raises(InvalidComponentConfigError, match=names):
        TaskOffers.from_mapping(data)


def test_an_absent_file_means_no_offers_and_broken_yaml_fails(tmp_path: Path, monkeypatch):
    assert TaskOffers.from_file(tmp_path / "absent.yml").offers == []
    broken = tmp_path / "task_offers.yml"
    broken.write_text("offers: [unclosed\n")
    with pytest.raises(InvalidComponentConfigError, match="correct the YAML"):
        TaskOffers.from_file(broken)
    monkeypatch.delenv(OFFERS_ENV, raising=False)
    assert offers_path(tmp_path / "fallback.yml") == tmp_path / "task_offers.yml"
    monkeypatch.setenv(OFFERS_ENV, str(tmp_path / "other.yml"))
    assert offers_path(tmp_path / "fallback.yml") == tmp_path / "other.yml"


def test_the_bots_offers_name_real_sections_and_intents_of_its_domain():
    offers = TaskOffers.from_file(BOT / "task_offers.yml")
    known = set()
    for language in ("en", "zh"):
        passages = KnowledgeBase.from_directory(BOT / "knowledge" / language).passages
        known |= {p.id for p in passages} | {p.source for p in passages}
    domain = yaml.safe_load((BOT / "domain.yml").read_text())
    intents = {next(iter(i)) if isinstance(i, dict) else i for i in domain["intents"]}
    assert len(offers.offers) >= 8
    for offer in offers.offers:
        assert set(offer.sections) <= known, offer
        assert offer.payload[1:] in intents, offer
        assert offer.in_language("zh") is not None, offer
    # The sections of the questions offer their task.
    assert offers.for_passage("returns_and_refunds.md#cost-of-return-shipping").payload == (
        "/return_item"
    )
    assert offers.for_passage("payments.md#invoices-and-vat-receipts").payload == (
        "/request_invoice"
    )


def _tracker(active_loop: Optional[str] = None) -> Tracker:
    latest = {"text": "is return postage free?", "intent": {"name": "ask_policy"}}
    events = [{"event": "user", "text": latest["text"]}]
    loop = {"name": active_loop} if active_loop else {}
    return Tracker("s1", {}, latest, events, False, None, loop, "action_listen")


def _run(
    reply: FallbackReply, tmp_path: Path, monkeypatch, active_loop: Optional[str] = None
) -> List[Dict[str, Any]]:
    offers = tmp_path / "task_offers.yml"
    offers.write_text(yaml.safe_dump({"offers": [RETURN]}))
    monkeypatch.setenv(OFFERS_ENV, str(offers))
    monkeypatch.setenv(module.WARM_UP_ENV, "0")
    monkeypatch.setattr(module, "SERVICE", _Answers(reply))
    dispatcher = CollectingDispatcher()
    domain = {"responses": {"utter_cannot_answer": [{"text": "Sorry."}]}}
    tracker = _tracker(active_loop)
    assert asyncio.run(ActionGenerativeFallback().run(dispatcher, tracker, domain)) == []
    return dispatcher.messages


def test_an_answer_from_a_return_section_offers_a_return(tmp_path: Path, monkeypatch):
    answer = "Returning a Northwind order is free from anywhere in the UK."
    reply = FallbackReply(answer, "passage", "guard:support", [_passage(RETURN["sections"][0])])
    answered, offered = _run(reply, tmp_path, monkeypatch)
    assert answered["text"] == answer
    assert offered["text"] == "Would you like to start a return?"
    assert offered["buttons"] == [{"title": "Start a return", "payload": "/return_item"}]
    # The click comes back as a payload the bot offered, which the shortcut guard obeys.
    bot_event = {"event": "bot", "text": offered["text"], "data": {"buttons": offered["buttons"]}}
    from rasa.shared.core.events import BotUttered

    event = BotUttered.from_parameters(bot_event)
    assert "/return_item" in offered_payloads([event])


def test_no_offer_without_an_answer_another_topic_or_during_a_form(tmp_path, monkeypatch):
    returns = [_passage(RETURN["sections"][0])]
    scripted = FallbackReply("Sorry.", "scripted", "low_relevance", returns)
    assert [m.get("response") for m in _run(scripted, tmp_path, monkeypatch)] == [
        "utter_cannot_answer"
    ]
    other = FallbackReply("Cards text.", "generated", "generated", [_passage("cards.md#pin")])
    assert [m["text"] for m in _run(other, tmp_path, monkeypatch)] == ["Cards text."]
    during = FallbackReply("Free in the UK.", "passage", "timeout", returns)
    messages = _run(during, tmp_path, monkeypatch, active_loop="return_form")
    assert [m["text"] for m in messages] == ["Free in the UK."]
