"""The fallback's decisions with the real retriever, masker and guard; only the language
model is replaced, by a scripted backend that records what it was sent."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from rasa_llm.errors import InvalidComponentConfigError
from rasa_llm.fallback.generation_backend import (
    ChatMessage,
    GenerationError,
    GenerationTimeout,
)
from rasa_llm.fallback.generative_fallback import (
    FallbackRequest,
    GenerativeFallback,
    get_default_config,
    merged_config,
)
from rasa_llm.fallback.knowledge_base import KnowledgeBase
from rasa_llm.fallback.passage_retriever import PassageRetriever

KNOWLEDGE = {
    "refunds.md": """# Refunds

## Refund timing
Refunds to a credit card take 5-10 business days after we receive the returned item.

## Double charges
If you were charged twice for one order, the duplicate charge is refunded automatically
within 3 business days. You do not need to contact us.
""",
    "hours.md": """# Opening hours

## Customer service hours
Our customer service team answers Monday to Friday, 8am to 8pm, and Saturday 9am to 5pm.
""",
}
REFUND_ANSWER = "Refunds to a credit card take 5-10 business days after we receive the item."


class ScriptedBackend:
    """Answers with the next scripted item (a text or an exception to raise)."""

    name = "scripted"

    def __init__(self, *replies: Any) -> None:
        self.replies = list(replies)
        self.calls: List[List[ChatMessage]] = []

    async def generate(
        self, messages: List[ChatMessage], *, max_new_tokens: int, deadline_s: float
    ) -> str:
        self.calls.append(messages)
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return str(reply)

    async def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def retriever(tmp_path_factory: pytest.TempPathFactory) -> PassageRetriever:
    directory = tmp_path_factory.mktemp("knowledge")
    for name, text in KNOWLEDGE.items():
        (directory / name).write_text(text)
    return PassageRetriever(KnowledgeBase.from_directory(directory))


def _fallback(
    retriever: PassageRetriever, backend: ScriptedBackend, **config: Any
) -> GenerativeFallback:
    merged = merged_config({"business_name": "Northwind", **config})
    return GenerativeFallback(
        merged, knowledge=retriever.knowledge, retriever=retriever, backend=backend
    )


def _ask(fallback: GenerativeFallback, text: str, channel: Optional[str] = "rest", history=()):
    return asyncio.run(fallback.answer(FallbackRequest(text, tuple(history), channel)))


def test_a_grounded_reply_is_sent_and_the_prompt_holds_the_right_passage(retriever):
    backend = ScriptedBackend(REFUND_ANSWER)
    reply = _ask(_fallback(retriever, backend), "how long does a refund to my credit card take?")
    assert (reply.kind, reply.reason, reply.text) == ("generated", "generated", REFUND_ANSWER)
    assert reply.passages[0].passage.id == "refunds.md#refund-timing"
    system = backend.calls[0][0]["content"]
    assert "5-10 business days" in system and "Northwind" in system


def test_personal_data_never_reaches_the_model(retriever):
    backend = ScriptedBackend(REFUND_ANSWER)
    _ask(
        _fallback(retriever, backend),
        "I'm Sarah Connor, card 4111 1111 1111 1111, mail sarah@example.com: when is my refund?",
        history=[("customer", "call me on +44 20 7946 0958"), ("bot", "Sure.")],
    )
    prompt = " ".join(m["content"] for m in backend.calls[0])
    for secret in ("4111", "sarah@example.com", "7946", "Sarah Connor"):
        assert secret not in prompt
    assert "[CARD]" in prompt and "[EMAIL]" in prompt and "[PHONE]" in prompt


def test_an_invented_number_is_not_sent_the_best_passage_is(retriever):
    backend = ScriptedBackend("Refunds take 2 days and you get a 10% discount.")
    reply = _ask(_fallback(retriever, backend), "how long does a refund to my credit card take?")
    assert reply.kind == "passage"
    assert reply.reason.startswith("guard:unsupported")
    assert reply.text.startswith("Refunds to a credit card take 5-10 business days")


def test_asking_for_a_secret_is_never_sent(retriever):
    backend = ScriptedBackend("Please send me your card number and PIN so I can check the refund.")
    reply = _ask(_fallback(retriever, backend), "how long does a refund to my credit card take?")
    assert reply.kind == "passage" and reply.reason == "guard:asks_for_secret"


def test_the_models_refusal_ends_as_a_failed_reply_does(retriever):
    backend = ScriptedBackend("Sorry, I don't have that information.")
    reply = _ask(_fallback(retriever, backend), "how long does a refund to my credit card take?")
    assert (reply.kind, reply.reason) == ("passage", "model_refused")


@pytest.mark.parametrize("opening", ["Yes, r", "No. R", "yes - r"])
def test_an_opening_yes_or_no_is_not_sent(retriever, opening):
    # The passage supports the sentence, not the yes or the no in front of it.
    backend = ScriptedBackend(opening + REFUND_ANSWER[1:])
    reply = _ask(_fallback(retriever, backend), "does a refund to my credit card take long?")
    assert (reply.kind, reply.text) == ("generated", REFUND_ANSWER)


def test_a_true_sentence_sharing_no_word_with_the_question_is_not_an_answer(retriever):
    # Grounded in a retrieved passage, but about something the customer did not ask.
    backend = ScriptedBackend("You do not need to contact us.")
    fallback = _fallback(retriever, backend, min_answer_relevance=0.0)
    reply = _ask(fallback, "how long does a refund to my credit card take?")
    assert (reply.kind, reply.reason) == ("passage", "guard:off_topic_reply")


def test_the_business_name_alone_does_not_make_a_reply_on_topic(retriever):
    fallback = _fallback(retriever, ScriptedBackend())
    assert not fallback._shares_a_word("how many people work for Northwind", "Northwind is open.")
    assert fallback._shares_a_word("do Northwind refunds take long", "Refunds take 5 days.")


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (GenerationTimeout("slow"), "timeout"),
        (GenerationError("down"), "model_error"),
        (RuntimeError("bug"), "model_error"),
    ],
)
def test_model_failures_fall_back_to_the_passage(retriever, failure, reason):
    reply = _ask(
        _fallback(retriever, ScriptedBackend(failure)), "how long do credit card refunds take"
    )
    assert (reply.kind, reply.reason) == ("passage", reason)


def test_a_weakly_related_passage_is_not_sent_verbatim(retriever):
    backend = ScriptedBackend(RuntimeError("down"))
    fallback = _fallback(retriever, backend, min_relevance=0.0, passage_relevance=0.99)
    reply = _ask(fallback, "how long do credit card refunds take")
    assert (reply.kind, reply.reason) == ("scripted", "model_error")
    assert reply.text == get_default_config()["scripted_reply"]


def test_an_unrelated_question_gets_the_scripted_reply_without_asking_the_model(retriever):
    backend = ScriptedBackend()
    reply = _ask(_fallback(retriever, backend), "who will win the football world cup?")
    assert (reply.kind, reply.reason) == ("scripted", "low_relevance")
    assert backend.calls == []


def test_a_reply_too_long_for_sms_is_not_sent(retriever):
    long = "Our customer service team answers Monday to Friday, 8am to 8pm. " * 8
    fallback = _fallback(retriever, ScriptedBackend(long, long))
    assert (
        _ask(fallback, "when is customer service open?", channel="twilio").reason
        == "guard:too_long"
    )
    assert _ask(fallback, "when is customer service open?", channel="webchat").kind == "generated"


def test_a_short_follow_up_is_retrieved_with_the_previous_question(retriever):
    backend = ScriptedBackend(RuntimeError("down"))
    reply = _ask(
        _fallback(retriever, backend),
        "and on saturdays?",
        history=[("customer", "what are your customer service opening hours?"), ("bot", "…")],
    )
    assert reply.passages[0].passage.id == "hours.md#customer-service-hours"


def test_logs_hold_the_reason_not_the_customers_words(retriever, caplog):
    caplog.set_level(logging.INFO)
    _ask(
        _fallback(retriever, ScriptedBackend(REFUND_ANSWER)),
        "refund for Jane Doe to my credit card?",
    )
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "kind=generated" in logged
    assert "Jane" not in logged and "refund for" not in logged


def test_config_is_strict():
    with pytest.raises(InvalidComponentConfigError, match="top_kk.*did you mean 'top_k'"):
        merged_config({"top_kk": 3})
    with pytest.raises(InvalidComponentConfigError, match="deadline_s"):
        merged_config({"deadline_s": 0})
    with pytest.raises(InvalidComponentConfigError, match="reply_max_chars"):
        merged_config({"reply_max_chars": {"default": "long"}})
    defaults: Dict[str, Any] = merged_config({})
    assert defaults == get_default_config()


def test_from_config_reads_the_knowledge_dir_relative_to_the_bot(tmp_path: Path):
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "a.md").write_text("## A\nAlpha passage about parcels.\n")
    fallback = GenerativeFallback.from_config(
        {
            "knowledge_dir": "kb",
            "generation": {
                "backend": "openai",
                "openai": {"base_url": "http://127.0.0.1:9/v1", "model": "m"},
            },
        },
        bot_dir=tmp_path,
    )
    assert [p.id for p in fallback.knowledge.passages] == ["a.md#a"]
    asyncio.run(fallback.close())


class GatedBackend(ScriptedBackend):
    """A scripted backend that holds every reply until ``gate`` is set."""

    def __init__(self, *replies: Any) -> None:
        super().__init__(*replies)
        self.gate = asyncio.Event()
        self.inside = 0

    async def generate(
        self, messages: List[ChatMessage], *, max_new_tokens: int, deadline_s: float
    ) -> str:
        self.inside += 1
        try:
            await self.gate.wait()
            return await super().generate(
                messages, max_new_tokens=max_new_tokens, deadline_s=deadline_s
            )
        finally:
            self.inside -= 1


def test_a_full_queue_answers_busy_without_the_model_and_frees_its_places(retriever, caplog):
    caplog.set_level(logging.INFO)
    backend = GatedBackend(REFUND_ANSWER, GenerationError("down"), REFUND_ANSWER)
    # One reply written (max_concurrent 1), none may wait: the second is busy.
    fallback = _fallback(retriever, backend, max_queued=0, passage_relevance=0.99)
    question = "how long does a refund to my credit card take?"

    async def scenario() -> List[Any]:
        first = asyncio.create_task(fallback.answer(FallbackRequest(question, (), "rest")))
        while backend.inside < 1:
            await asyncio.sleep(0.01)
        busy = await fallback.answer(FallbackRequest(question, (), "rest"))
        assert fallback.pending == 1
        backend.gate.set()
        answered = await first
        # A failed generation gives its place back too.
        failed = await fallback.answer(FallbackRequest(question, (), "rest"))
        after = await fallback.answer(FallbackRequest(question, (), "rest"))
        return [busy, answered, failed, after]

    busy, answered, failed, after = asyncio.run(scenario())
    assert (busy.kind, busy.reason) == ("scripted", "busy")
    assert (answered.kind, failed.reason, after.kind) == ("generated", "model_error", "generated")
    assert fallback.pending == 0 and len(backend.calls) == 3
    assert "kind=scripted reason=busy" in " ".join(r.getMessage() for r in caplog.records)


def test_the_queue_bound_adds_to_the_replies_the_backend_writes_at_once(retriever):
    local = _fallback(
        retriever, ScriptedBackend(), max_queued=2, generation={"local": {"max_concurrent": 3}}
    )
    assert local.capacity == 5
    remote = _fallback(
        retriever,
        ScriptedBackend(),
        generation={
            "backend": "openai",
            "openai": {"base_url": "http://127.0.0.1:9/v1", "model": "m"},
        },
    )
    assert remote.capacity == 1 + get_default_config()["max_queued"] == 5


@pytest.mark.parametrize("bad", [-1, True, 1.5])
def test_max_queued_is_a_whole_number_of_zero_or_more(bad):
    with pytest.raises(InvalidComponentConfigError, match="max_queued"):
        merged_config({"max_queued": bad})
