"""Keep only the passage sentences that matter for the question.

A small model on a CPU spends most of a reply reading its prompt: two whole passages
are about 450 tokens. The retrieved passages are cut into sentences
(:func:`~rasa_llm.fallback.sentences.split_sentences`), each sentence is embedded with
the encoder the retriever already runs, and the ``max_sentences`` closest to the
question are kept, in their passage's order, under their passage's title. Training
(:mod:`training.grounded_data`) selects with this same class, so the model learns on
prompts shaped like the ones it answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Sequence, Tuple

import torch

from rasa_llm.fallback.sentences import split_sentences

# Texts -> unit-length embeddings, one row per text (PassageRetriever.embed).
Embed = Callable[[Sequence[str]], torch.Tensor]


@dataclass(frozen=True)
class SourcePassage:
    """A passage to select from: an id for evidence, a title, and its text."""

    id: str
    title: str
    text: str


@dataclass(frozen=True)
class PromptPassage:
    """The sentences of one passage that go into the prompt.

    ``sentences`` are ``(index, text)``: the index is the sentence's position in the
    whole passage, so evidence can name it after others were left out.
    """

    id: str
    title: str
    sentences: Tuple[Tuple[int, str], ...]

    @property
    def text(self) -> str:
        """The selected sentences, joined with spaces."""
        return " ".join(text for _, text in self.sentences)


class SentenceSelector:
    """The ``max_sentences`` sentences closest to a question, from a few passages."""

    def __init__(self, embed: Embed, *, max_sentences: int = 4, min_per_passage: int = 1):
        if max_sentences < 1:
            raise ValueError(f"max_sentences must be at least 1, got {max_sentences}")
        self._embed = embed
        self.max_sentences = max_sentences
        # The best passage always keeps at least this many sentences; every other
        # passage keeps its best sentence only if it earns a place.
        self.min_per_passage = min_per_passage

    def select(self, question: str, passages: Sequence[SourcePassage]) -> List[PromptPassage]:
        """Passages (best first, as given) cut to their sentences closest to ``question``.

        A passage left with no sentence is dropped.
        """
        split = [split_sentences(p.text) for p in passages]
        flat = [(p, i, s) for p, sentences in enumerate(split) for i, s in enumerate(sentences)]
        if not flat:
            return []
        vectors = self._embed([question] + [s for _, _, s in flat])
        scores = (vectors[1:] @ vectors[0]).tolist()
        ranked = sorted(range(len(flat)), key=lambda k: -scores[k])
        chosen = set()
        # The first (best retrieved) passage keeps its best sentences regardless.
        for k in [k for k in ranked if flat[k][0] == 0][: self.min_per_passage]:
            chosen.add(k)
        for k in ranked:
            if len(chosen) >= self.max_sentences:
                break
            chosen.add(k)
        selected: List[PromptPassage] = []
        for p, passage in enumerate(passages):
            kept = tuple((flat[k][1], flat[k][2]) for k in sorted(chosen) if flat[k][0] == p)
            if kept:
                selected.append(PromptPassage(passage.id, passage.title, kept))
        return selected
