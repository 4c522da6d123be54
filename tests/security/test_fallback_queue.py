"""Finding 4: every message that reaches the fallback may queue a language-model reply.

With the queue full (``max_queued`` replies waiting behind the model's
``max_concurrent`` slots), a new fallback must answer at once on the scripted path:
the best passage, or ``utter_cannot_answer``. The retriever, masker and guard are the
real ones; only the language model is a slow fake that answers when released.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Dict, List

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from rasa_llm.fallback import action_generative_fallback as action_module
from rasa_llm.fallback.action_generative_fallback import ActionGenerativeFallback, FallbackService
from rasa_llm.fallback.generation_backend import ChatMessage, GenerationTimeout
from rasa_llm.fallback.generative_fallback import (
    FallbackRequest,
    GenerativeFallback,
    get_default_config,
    merged_config,
)
from rasa_llm.fallback.knowledge_base import KnowledgeBase
from rasa_llm.fallback.passage_retriever import PassageRetriever

KNOWLEDGE = """# Refunds

## Refund timing
Refunds to a credit card take 5-10 business days after we receive the returned item.
"""
ANSWER = "Refunds to a credit card take 5-10 business days after we receive the item."
QUESTION = "how long does a refund to my credit card take?"


class SlowBackend:
    """A model that writes nothing until the test releases it (or its deadline ends)."""

    name = "slow"

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.waiting = 0

    async def generate(
        self, messages: List[ChatMessage], *, max_new_tokens: int, deadline_s: float
    ) -> str:
        self.waiting += 1
        try:
            await asyncio.wait_for(self.release.wait(), timeout=deadline_s)
        except asyncio.TimeoutError:
            raise GenerationTimeout("slow") from None
        finally:
            self.waiting -= 1
        return ANSWER

    async def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def retriever(tmp_path_factory: pytest.TempPathFactory) -> PassageRetriever:
    directory = tmp_path_factory.mktemp("knowledge")
    (directory / "refunds.md").write_text(KNOWLEDGE)
    return PassageRetriever(KnowledgeBase.from_directory(directory))


def fallback_with(
    retriever: PassageRetriever, backend: SlowBackend, **settings: Any
) -> GenerativeFallback:
    # The shipped defaults (local backend, max_concurrent 1), with a short deadline so
    # that a fallback which does wait for the model shows it within seconds.
    config = merged_config({"business_name": "Northwind", "deadline_s": 4.0, **settings})
    return GenerativeFallback(
        config, knowledge=retriever.knowledge, retriever=retriever, backend=backend
    )


def capacity() -> int:
    """Replies the model writes at once plus those that may wait for it, by default."""
    return 1 + int(get_default_config().get("max_queued", 4))


def test_with_the_queue_full_a_new_fallback_answers_at_once_with_the_passage(retriever, caplog):
    caplog.set_level(logging.INFO)
    backend = SlowBackend()
    fallback = fallback_with(retriever, backend)

    async def scenario() -> Dict[str, Any]:
        full = capacity()
        waiting = [
            asyncio.create_task(fallback.answer(FallbackRequest(QUESTION, (), "webchat")))
            for _ in range(full)
        ]
        while backend.waiting < full:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        extra = await fallback.answer(FallbackRequest(QUESTION, (), "webchat"))
        seconds = time.monotonic() - started
        backend.release.set()
        queued = await asyncio.gather(*waiting)
        return {"extra": extra, "seconds": seconds, "queued": queued}

    result = asyncio.run(scenario())
    extra = result["extra"]
    assert result["seconds"] < 1.0, f"the extra fallback waited {result['seconds']:.1f} s"
    assert (extra.kind, extra.reason) == ("passage", "busy")
    assert extra.text.startswith("Refunds to a credit card take 5-10 business days")
    # The queued ones were answered by the model once it was free.
    assert [r.kind for r in result["queued"]] == ["generated"] * capacity()
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "kind=passage reason=busy" in logged and "credit card take?" not in logged


def test_with_the_queue_full_the_action_sends_the_scripted_response(retriever, monkeypatch):
    backend = SlowBackend()
    # No passage is close enough to be sent verbatim: the scripted path is the response.
    fallback = fallback_with(retriever, backend, passage_relevance=0.99)

    class Loaded(FallbackService):
        def get(self) -> GenerativeFallback:  # type: ignore[override]
            return fallback

    monkeypatch.setenv(action_module.WARM_UP_ENV, "0")
    monkeypatch.setattr(action_module, "SERVICE", Loaded())
    domain = {"responses": {"utter_cannot_answer": [{"text": "Shall I get a person?"}]}}

    def tracker(text: str) -> Tracker:
        latest = {"text": text, "intent": {"name": "nlu_fallback"}}
        events = [{"event": "user", "text": text}]
        return Tracker("webchat:1", {}, latest, events, False, None, {}, "action_listen")

    async def run(text: str) -> List[Dict[str, Any]]:
        dispatcher = CollectingDispatcher()
        await ActionGenerativeFallback().run(dispatcher, tracker(text), domain)
        return dispatcher.messages

    async def scenario() -> Dict[str, Any]:
        full = capacity()
        waiting = [asyncio.create_task(run(QUESTION)) for _ in range(full)]
        while backend.waiting < full:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        extra = await run(QUESTION)
        seconds = time.monotonic() - started
        backend.release.set()
        await asyncio.gather(*waiting)
        return {"extra": extra, "seconds": seconds}

    result = asyncio.run(scenario())
    assert result["seconds"] < 1.0, f"the extra fallback waited {result['seconds']:.1f} s"
    assert [m["response"] for m in result["extra"]] == ["utter_cannot_answer"]
