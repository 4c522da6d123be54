"""The rasa_sdk action: what it reads from the tracker and what it sends on failure."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Dict, List

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from rasa_llm.errors import RasaLLMError
from rasa_llm.fallback import action_generative_fallback as module
from rasa_llm.fallback.action_generative_fallback import (
    ActionGenerativeFallback,
    FallbackService,
    conversation,
    load_config,
)
from rasa_llm.fallback.generative_fallback import FallbackReply


def _tracker(*texts: str) -> Tracker:
    events: List[Dict[str, Any]] = []
    for n, text in enumerate(texts):
        kind = "user" if n % 2 == 0 else "bot"
        events.append({"event": kind, "text": text})
    latest = {"text": texts[-1], "intent": {"name": "nlu_fallback"}}
    return Tracker("s1", {}, latest, events, False, None, {}, "action_listen")


def test_conversation_is_the_latest_text_and_what_came_before():
    latest, history = conversation(_tracker("hi", "Hello!", "do you ship to Mars?"))
    assert latest == "do you ship to Mars?"
    assert history == [("customer", "hi"), ("bot", "Hello!")]


def test_config_file_errors_say_what_to_fix(tmp_path: Path):
    assert load_config(tmp_path / "absent.yml") == {}
    bad = tmp_path / "fallback.yml"
    bad.write_text("top_k: [unclosed\n")
    with pytest.raises(RasaLLMError, match="Cannot read.*Fix"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(RasaLLMError, match="must be a mapping"):
        load_config(bad)


class _Broken(FallbackService):
    def get(self):  # type: ignore[override]
        raise RasaLLMError("knowledge directory missing")


class _Answers(FallbackService):
    def __init__(self, reply: FallbackReply) -> None:
        super().__init__()
        self.reply = reply

    def get(self):  # type: ignore[override]
        reply = self.reply

        class _Fallback:
            async def answer(self, request: Any) -> FallbackReply:
                return reply

        return _Fallback()


def _run(service: FallbackService, domain: Dict[str, Any], monkeypatch) -> List[Dict[str, Any]]:
    monkeypatch.setenv(module.WARM_UP_ENV, "0")
    monkeypatch.setattr(module, "SERVICE", service)
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionGenerativeFallback().run(dispatcher, _tracker("hm?"), domain))
    assert events == []
    return dispatcher.messages


def test_a_broken_fallback_still_answers_with_the_scripted_response(monkeypatch):
    domain = {"responses": {"utter_cannot_answer": [{"text": "Sorry, shall I get a person?"}]}}
    [message] = _run(_Broken(), domain, monkeypatch)
    assert message["response"] == "utter_cannot_answer"
    [message] = _run(_Broken(), {}, monkeypatch)
    assert message["text"] and message["response"] is None


def test_generated_and_scripted_replies(monkeypatch):
    domain = {"responses": {"utter_cannot_answer": [{"text": "Sorry."}]}}
    generated = FallbackReply("Refunds take 5-10 business days.", "generated", "generated")
    [message] = _run(_Answers(generated), domain, monkeypatch)
    assert message["text"] == "Refunds take 5-10 business days."
    scripted = FallbackReply("config text", "scripted", "low_relevance")
    [message] = _run(_Answers(scripted), domain, monkeypatch)
    assert message["response"] == "utter_cannot_answer"


class _LeakyError(FallbackService):
    def get(self):  # type: ignore[override]
        raise ValueError("could not parse 'my card is 4111 1111 1111 1111'")


def test_an_unexpected_error_is_logged_without_its_text(monkeypatch, caplog):
    domain = {"responses": {"utter_cannot_answer": [{"text": "Sorry."}]}}
    [message] = _run(_LeakyError(), domain, monkeypatch)
    assert message["response"] == "utter_cannot_answer"
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "ValueError" in logged and "4111" not in logged


def test_the_evidence_of_a_generated_reply_is_stored_in_the_bot_event_metadata(monkeypatch):
    from rasa.core.actions.action import create_bot_utterance

    from rasa_llm.fallback.passage import Passage, RetrievedPassage
    from rasa_llm.fallback.sentence_grounding import ground
    from rasa_llm.fallback.sentence_selector import PromptPassage

    shown = PromptPassage(
        "shipping.md#eu",
        "Delivery to the EU",
        ((0, "Delivery to the EU costs €9.95."), (1, "Delivery to Switzerland costs €14.95.")),
    )
    text = "Yes, we deliver to Switzerland. It costs €14.95."
    passage = RetrievedPassage(Passage("shipping.md#eu", "shipping.md", "T", "…"), 0.71)
    reply = FallbackReply(text, "generated", "generated", [passage], 1.5, ground(text, [shown]))
    [message] = _run(_Answers(reply), {}, monkeypatch)
    # Rasa turns the action's message into a BotUttered event: the key lands in metadata.
    event = create_bot_utterance(dict(message))
    why = event.metadata[module.METADATA_KEY]
    assert event.text == text
    assert why["kind"] == "generated" and why["passages"] == [
        {"id": "shipping.md#eu", "score": 0.71}
    ]
    first, second = why["grounding"]
    assert first["evidence"][0]["sentence"] == 1 and second["evidence"][0]["sentence"] == 1
    assert second["evidence"][0]["text"] == "Delivery to Switzerland costs €14.95."
    assert second["evidence"][0]["passage"] == "shipping.md#eu"


def test_a_scripted_reply_says_why_in_its_metadata_too(monkeypatch):
    domain = {"responses": {"utter_cannot_answer": [{"text": "Sorry."}]}}
    scripted = FallbackReply("config text", "scripted", "model_refused")
    [message] = _run(_Answers(scripted), domain, monkeypatch)
    assert message[module.METADATA_KEY]["reason"] == "model_refused"
    assert message[module.METADATA_KEY]["grounding"] is None
