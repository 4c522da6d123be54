"""A conversation in another language is answered from that language's knowledge base,
with the best passage and never by the (English-only) language model."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Optional

import pytest

from rasa_llm.errors import InvalidComponentConfigError
from rasa_llm.fallback.generative_fallback import (
    FallbackReply,
    FallbackRequest,
    GenerativeFallback,
    merged_config,
)
from rasa_llm.fallback.knowledge_base import KnowledgeBase
from rasa_llm.fallback.language_shelves import LanguageShelf, load_shelves
from rasa_llm.fallback.passage_retriever import PassageRetriever
from tests.rasa_llm.fallback.test_generative_fallback import REFUND_ANSWER, ScriptedBackend

CHINESE = {
    "refunds.md": """# 退款

## 退款时间
退回的商品到达仓库后，退款会在5-10个工作日内退回您的信用卡。

## 重复扣款
同一订单被扣款两次时，多扣的款项会在3个工作日内自动退回，无需联系我们。
""",
}


@pytest.fixture(scope="module")
def retriever() -> PassageRetriever:
    from tests.rasa_llm.fallback.test_generative_fallback import KNOWLEDGE

    return _retriever_over(KNOWLEDGE)


def _retriever_over(files: dict) -> PassageRetriever:
    import tempfile

    directory = Path(tempfile.mkdtemp())
    for name, text in files.items():
        (directory / name).write_text(text)
    return PassageRetriever(KnowledgeBase.from_directory(directory))


@pytest.fixture(scope="module")
def chinese() -> PassageRetriever:
    return _retriever_over(CHINESE)


def _fallback(
    retriever: PassageRetriever, chinese: PassageRetriever, backend: ScriptedBackend, **bars: Any
) -> GenerativeFallback:
    shelf = LanguageShelf(
        "zh",
        chinese,
        bars.get("min_relevance", 0.0),
        bars.get("passage_relevance", 0.0),
    )
    return GenerativeFallback(
        merged_config({"business_name": "Northwind"}),
        knowledge=retriever.knowledge,
        retriever=retriever,
        backend=backend,
        shelves={"zh": shelf},
    )


def _ask(fallback: GenerativeFallback, text: str, language: Optional[str]) -> FallbackReply:
    return asyncio.run(fallback.answer(FallbackRequest(text, (), "rest", language=language)))


def test_a_chinese_question_gets_the_chinese_passage_without_the_model(retriever, chinese):
    backend = ScriptedBackend(REFUND_ANSWER)
    reply = _ask(_fallback(retriever, chinese, backend), "被扣了两次钱怎么办", "zh")
    assert (reply.kind, reply.reason) == ("passage", "other_language")
    assert reply.text.startswith("同一订单被扣款两次")
    assert backend.calls == []


def test_the_message_language_decides_when_the_bot_keeps_no_slot(retriever, chinese):
    backend = ScriptedBackend(REFUND_ANSWER)
    reply = _ask(_fallback(retriever, chinese, backend), "退款多久能到我的信用卡", None)
    # Which Chinese passage is best is the encoder's job (MiniLM here reads Chinese
    # poorly; the bot's zh shelf uses multilingual-e5): the routing is what is tested.
    assert reply.kind == "passage" and reply.passages[0].passage.id.startswith("refunds.md#")
    assert backend.calls == []


def test_a_chinese_conversation_stays_on_the_chinese_shelf_for_a_bare_number(retriever, chinese):
    backend = ScriptedBackend(REFUND_ANSWER)
    reply = _ask(_fallback(retriever, chinese, backend), "48213", "zh")
    assert reply.kind in ("passage", "scripted") and backend.calls == []


def test_no_close_passage_gets_the_scripted_reply(retriever, chinese):
    backend = ScriptedBackend(REFUND_ANSWER)
    fallback = _fallback(retriever, chinese, backend, passage_relevance=1.0)
    reply = _ask(fallback, "你们的仓库在哪里", "zh")
    assert (reply.kind, reply.reason) == ("scripted", "low_relevance")
    assert backend.calls == []


def test_english_is_still_answered_by_the_model(retriever, chinese):
    backend = ScriptedBackend(REFUND_ANSWER)
    reply = _ask(
        _fallback(retriever, chinese, backend), "how long does a refund to my card take?", "en"
    )
    assert reply.kind == "generated" and len(backend.calls) == 1


def test_shelves_load_from_the_bot_directory(tmp_path: Path):
    (tmp_path / "kb_zh").mkdir()
    for name, text in CHINESE.items():
        (tmp_path / "kb_zh" / name).write_text(text)
    shelves = load_shelves(
        {"zh": {"knowledge_dir": "kb_zh", "passage_relevance": 0.6}},
        bot_dir=tmp_path,
        device="cpu",  # type: ignore[arg-type]
    )
    assert shelves["zh"].passage_relevance == 0.6
    assert shelves["zh"].min_relevance == 0.35
    assert len(shelves["zh"].retriever.knowledge.passages) == 2


@pytest.mark.parametrize(
    ("other", "message"),
    [
        ({"en": {"knowledge_dir": "kb"}}, "is the knowledge_language"),
        ({"zh": {}}, "knowledge_dir"),
        ({"zh": "knowledge/zh"}, "give a mapping"),
        ({"zh": {"knowledge_dir": "kb", "treshold": 0.5}}, "not a known key"),
        ({"zh": {"knowledge_dir": "kb", "passage_relevance": 2}}, "between 0 and 1"),
    ],
)
def test_bad_other_languages_are_refused_with_the_key(other: dict, message: str):
    with pytest.raises(InvalidComponentConfigError, match=message):
        merged_config({"other_languages": other})
