"""Find the knowledge-base passages closest to a customer's question.

Uses the same shipped MiniLM encoder as the NLU components (mean pooling, unit
vectors), so a bot needs no second model download. The passages are embedded once
when the retriever is built; a question costs one encoder pass (a few ms on a CPU).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import List, Optional, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rasa_llm.fallback.knowledge_base import KnowledgeBase
from rasa_llm.fallback.passage import Passage, RetrievedPassage
from rasa_llm.models.encoder_classifier import mean_pool
from rasa_llm.models.model_files import default_encoder_path, load_pretrained

# Questions are short; passages are cut to what the encoder was trained on.
_MAX_TOKENS = 256
_BATCH = 32


class PassageRetriever:
    """Cosine top-k over the passages of a :class:`KnowledgeBase`."""

    def __init__(
        self,
        knowledge: KnowledgeBase,
        *,
        encoder_path: Optional[Path] = None,
        device: torch.device | str = "cpu",
        query_prefix: str = "",
        passage_prefix: str = "",
    ) -> None:
        self.knowledge = knowledge
        # Some encoders were trained with a marker before each kind of text (e5:
        # "query: ", "passage: ").
        self.query_prefix = query_prefix
        self.device = torch.device(device)
        encoder, tokenizer = load_pretrained(Path(encoder_path or default_encoder_path()))
        # nn.Module.to moves in place; transformers' typing of it confuses mypy.
        torch.nn.Module.to(encoder, self.device)
        self._encoder: PreTrainedModel = encoder.eval()
        self._tokenizer: PreTrainedTokenizerBase = tokenizer
        # The action server answers several conversations at once from threads; the
        # tokenizer and module are not documented as thread-safe, and a pass is a few ms.
        self._lock = threading.Lock()
        self._matrix = self.embed(
            [passage_prefix + _passage_document(p) for p in knowledge.passages]
        )

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit-length mean-pooled embeddings, one row per text."""
        rows: List[torch.Tensor] = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), _BATCH):
                batch = self._tokenizer(
                    list(texts[start : start + _BATCH]),
                    padding=True,
                    truncation=True,
                    max_length=_MAX_TOKENS,
                    return_tensors="pt",
                ).to(self.device)
                pooled = mean_pool(self._encoder, batch["input_ids"], batch["attention_mask"])
                rows.append(torch.nn.functional.normalize(pooled, dim=-1).cpu())
        if not rows:
            return torch.zeros((0, self._encoder.config.hidden_size))
        return torch.cat(rows)

    def retrieve(self, question: str, *, top_k: int) -> List[RetrievedPassage]:
        """The ``top_k`` passages by cosine similarity, best first."""
        if not question.strip() or top_k <= 0:
            return []
        scores = self._matrix @ self.embed([self.query_prefix + question])[0]
        best = torch.topk(scores, k=min(top_k, len(self.knowledge.passages)))
        return [
            RetrievedPassage(self.knowledge.passages[int(i)], float(s))
            for s, i in zip(best.values, best.indices, strict=True)
        ]


def _passage_document(passage: Passage) -> str:
    # The title carries the subject ("Cards › Replacement"); questions name it too.
    return f"{passage.title}. {passage.text}"
