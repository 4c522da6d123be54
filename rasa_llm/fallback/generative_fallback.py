"""Answer what the bot has no story for: retrieve, generate, guard, or fall back safely.

The order of a reply: mask personal data → retrieve passages → keep the sentences
closest to the question → build the prompt → generate under a deadline → ground each
sentence of the reply in the passage sentences and check it. The model's refusal form
(it was trained to say it does not know when the sentences lack the answer), a reply
that fails any check, a model error and a missed deadline all end the same way: the
best passage verbatim when it is relevant enough, otherwise the scripted reply. A
grounded reply that is not about the question (``min_answer_relevance``) ends so too.
The customer always gets an answer; logs get the reason code, never the customer's
words. A generated reply carries its grounding: for each of its sentences, the passage
sentences that support it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Literal, Mapping, Optional, Sequence, Tuple

from rasa_llm.fallback.backend_factory import concurrent_replies, create_backend
from rasa_llm.fallback.content_words import content_words
from rasa_llm.fallback.fallback_config import COMPONENT, get_default_config, merged_config
from rasa_llm.fallback.generation_backend import (
    GenerationBackend,
    GenerationError,
    GenerationTimeout,
)
from rasa_llm.fallback.knowledge_base import KnowledgeBase
from rasa_llm.fallback.language_detector import detect_language
from rasa_llm.fallback.language_shelves import LanguageShelf, load_shelves
from rasa_llm.fallback.passage import RetrievedPassage
from rasa_llm.fallback.passage_retriever import PassageRetriever
from rasa_llm.fallback.pii_masker import PiiMasker
from rasa_llm.fallback.prompt_builder import PromptBuilder, is_refusal
from rasa_llm.fallback.reply_guard import GuardContext, ReplyGuard
from rasa_llm.fallback.sentence_grounding import Grounding
from rasa_llm.fallback.sentence_selector import PromptPassage, SentenceSelector, SourcePassage
from rasa_llm.fallback.sentences import drop_answer_word
from rasa_llm.models.device import resolve_device

logger = logging.getLogger(__name__)

# The settings moved to fallback_config; their old home still names them.
__all__ = [
    "COMPONENT",
    "FallbackReply",
    "FallbackRequest",
    "GenerativeFallback",
    "get_default_config",
    "merged_config",
]

ReplyKind = Literal["generated", "passage", "scripted"]


@dataclass(frozen=True)
class FallbackRequest:
    """The customer's latest message and what came before it."""

    text: str
    # Earlier turns, oldest first: ("customer" | "bot", text).
    history: Sequence[Tuple[str, str]] = ()
    # The input channel's name (rest, webchat, slack, telegram, twilio), if known.
    channel: Optional[str] = None
    # The conversation's language (the `language` slot), if the bot keeps one; the
    # message's own language otherwise.
    language: Optional[str] = None


@dataclass(frozen=True)
class FallbackReply:
    """What to send, and why (the reason is a code that is safe to log)."""

    text: str
    kind: ReplyKind
    reason: str
    passages: List[RetrievedPassage] = field(default_factory=list)
    seconds: float = 0.0
    # For a generated reply: each sentence with the passage sentences that support it.
    grounding: Optional[Grounding] = None
    # The language of the knowledge base answered from, when it is one of
    # other_languages (None: the main one).
    other_language: Optional[str] = None


class GenerativeFallback:
    """One per action-server process: the retriever and the model load once."""

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        knowledge: KnowledgeBase,
        retriever: PassageRetriever,
        backend: GenerationBackend,
        masker: Optional[PiiMasker] = None,
        guard: Optional[ReplyGuard] = None,
        shelves: Optional[Mapping[str, LanguageShelf]] = None,
    ) -> None:
        self.config = dict(config)
        # Other languages' knowledge, answered without the model (language_shelves).
        self.shelves = dict(shelves or {})
        self.knowledge = knowledge
        self.retriever = retriever
        self.backend = backend
        self.masker = masker or PiiMasker(use_spacy_names=bool(config["mask_names"]))
        self.guard = guard or ReplyGuard(min_support=float(config["min_support"]))
        self.prompt = PromptBuilder(
            business_name=str(config["business_name"]),
            max_sentences=int(config["max_sentences"]),
        )
        self.selector = SentenceSelector(
            retriever.embed, max_sentences=int(config["prompt_sentences"])
        )
        # Replies being written or waiting for the model, and how many may be: counted
        # under a thread lock, so a process that answers on several event loops (or
        # threads) still shares one bound.
        self.capacity = concurrent_replies(config["generation"]) + int(config["max_queued"])
        self._pending = 0
        self._pending_lock = threading.Lock()

    @property
    def instructions(self) -> str:
        """The system instructions the model gets (without the passages)."""
        return self.prompt.instructions

    @classmethod
    def from_config(
        cls, config: Optional[Mapping[str, Any]], *, bot_dir: Path | str = "."
    ) -> GenerativeFallback:
        """Validate ``config``, load the knowledge base, the encoder and the backend."""
        merged = merged_config(config or {})
        knowledge_dir = Path(bot_dir) / str(merged["knowledge_dir"])
        knowledge = KnowledgeBase.from_directory(knowledge_dir)
        device = resolve_device(COMPONENT, str(merged["device"]))
        encoder = Path(merged["encoder"]) if merged["encoder"] else None
        retriever = PassageRetriever(knowledge, encoder_path=encoder, device=device)
        shelves = load_shelves(merged["other_languages"], bot_dir=Path(bot_dir), device=device)
        backend = create_backend(merged["generation"])
        return cls(
            merged, knowledge=knowledge, retriever=retriever, backend=backend, shelves=shelves
        )

    async def answer(self, request: FallbackRequest) -> FallbackReply:
        """A reply for the customer; never raises for anything the model or input does."""
        started = time.monotonic()
        reply = await self._answer(request, started)
        reply = FallbackReply(
            reply.text,
            reply.kind,
            reply.reason,
            reply.passages,
            time.monotonic() - started,
            reply.grounding,
            reply.other_language,
        )
        best = reply.passages[0].score if reply.passages else 0.0
        logger.info(
            "generative fallback: kind=%s reason=%s best_score=%.2f seconds=%.2f",
            reply.kind,
            reply.reason,
            best,
            reply.seconds,
        )
        return reply

    async def _answer(self, request: FallbackRequest, started: float) -> FallbackReply:
        config = self.config
        question, history, language = await asyncio.to_thread(self._prepare, request)
        shelf = self.shelves.get(request.language or language or "")
        if shelf is not None:
            return await asyncio.to_thread(self._from_shelf, shelf, question)
        query = question
        if len(question.split()) < 4 and history and history[-1][0] == "customer":
            # "and for cards?" only makes sense with the customer's previous message.
            query = f"{history[-1][1]} {question}"
        found = await asyncio.to_thread(self.retriever.retrieve, query, top_k=int(config["top_k"]))
        relevant = [p for p in found if p.score >= float(config["min_relevance"])]
        if not relevant:
            return self._scripted("low_relevance", found)

        selected = await asyncio.to_thread(self._select, query, relevant)
        messages = self.prompt.build(question, selected, history=history)
        if not self._admit():
            return self._fallback("busy", relevant, language)
        remaining = float(config["deadline_s"]) - (time.monotonic() - started)
        try:
            text = await self.backend.generate(
                messages, max_new_tokens=int(config["max_new_tokens"]), deadline_s=remaining
            )
        except GenerationTimeout:
            return self._fallback("timeout", relevant, language)
        except GenerationError as e:
            logger.warning("generative fallback: backend failed (%s)", type(e).__name__)
            return self._fallback("model_error", relevant, language)
        except Exception as e:  # the customer must get an answer whatever broke
            logger.exception("generative fallback: unexpected %s", type(e).__name__)
            return self._fallback("model_error", relevant, language)
        finally:
            self._leave()

        if is_refusal(text):
            # The model found no answer in the sentences it was shown; the whole best
            # passage may still hold one, so it ends as a failed reply does.
            return self._fallback("model_refused", relevant, language)
        text = drop_answer_word(text)
        context = GuardContext(
            passages=[p.text for p in selected],
            customer_text=question,
            max_chars=self.max_chars(request.channel),
            instructions=self.instructions,
            language=language,
            sentences=selected,
        )
        grounding = self.guard.ground(text, context)
        failures = self.guard.check(text, context, grounding=grounding)
        if failures:
            return self._fallback(f"guard:{failures[0].check}", relevant, language)
        if not self._shares_a_word(question, text):
            return self._fallback("guard:off_topic_reply", relevant, language)
        relevance = await asyncio.to_thread(self._relevance, question, text)
        if relevance < float(config["min_answer_relevance"]):
            return self._fallback("guard:off_topic_reply", relevant, language)
        return FallbackReply(text.strip(), "generated", "generated", relevant, 0.0, grounding)

    def _from_shelf(self, shelf: LanguageShelf, question: str) -> FallbackReply:
        """Another language's best passage, or the scripted reply (no model)."""
        relevant, sendable = shelf.best_passage(question)
        if sendable:
            text = relevant[0].passage.text
            return FallbackReply(
                text, "passage", "other_language", relevant, other_language=shelf.language
            )
        return self._scripted("low_relevance", relevant)

    def _relevance(self, question: str, reply: str) -> float:
        """Cosine of the reply to the customer's message (retrieval encoder)."""
        vectors = self.retriever.embed([question, reply])
        return float(vectors[0] @ vectors[1])

    def _shares_a_word(self, question: str, reply: str) -> bool:
        """Whether the reply uses a content word of the question besides the business name.

        "how many people work for Northwind" answered with Northwind's phone number
        is close in embedding space (both are about Northwind) and shares no word.
        """
        name = set(content_words(str(self.config["business_name"])))
        return bool((set(content_words(question)) - name) & set(content_words(reply)))

    def _select(self, query: str, relevant: List[RetrievedPassage]) -> List[PromptPassage]:
        sources = [SourcePassage(p.passage.id, p.passage.title, p.passage.text) for p in relevant]
        return self.selector.select(query, sources)

    @property
    def pending(self) -> int:
        """Replies the model is writing or that wait for it, now."""
        return self._pending

    def _admit(self) -> bool:
        """Take a place in the model's queue; False when all ``capacity`` are taken."""
        with self._pending_lock:
            if self._pending >= self.capacity:
                return False
            self._pending += 1
            return True

    def _leave(self) -> None:
        with self._pending_lock:
            self._pending -= 1

    def _prepare(self, request: FallbackRequest) -> Tuple[str, List[Tuple[str, str]], Any]:
        # Masking runs spaCy: done off the event loop with the other CPU work.
        question = self.masker.mask(request.text).text
        turns = list(request.history)[-int(self.config["history_turns"]) :]
        history = [
            (role, self.masker.mask(text).text if role == "customer" else text)
            for role, text in turns
        ]
        return question, history, detect_language(question)

    def max_chars(self, channel: Optional[str]) -> int:
        """The longest generated reply allowed on ``channel``."""
        limits: Mapping[str, int] = self.config["reply_max_chars"]
        return int(limits.get(channel or "", limits.get("default", 600)))

    def _fallback(
        self, reason: str, passages: List[RetrievedPassage], language: Optional[str]
    ) -> FallbackReply:
        best = passages[0] if passages else None
        same_language = language in (None, self.config["knowledge_language"])
        if best and same_language and best.score >= float(self.config["passage_relevance"]):
            return FallbackReply(best.passage.text, "passage", reason, passages)
        return self._scripted(reason, passages)

    def _scripted(self, reason: str, passages: List[RetrievedPassage]) -> FallbackReply:
        return FallbackReply(str(self.config["scripted_reply"]), "scripted", reason, passages)

    async def close(self) -> None:
        """Release the backend (HTTP sessions, threads)."""
        await self.backend.close()
