"""The refusal gate: the model may start its refusal only when it is sure enough of it.

Under greedy decoding the fallback's fixed refusal ("Sorry, I don't have that
information.") wins the reply's first token whenever its first token is the single most
likely one, although an answer's probability is spread over many first tokens: a model
that gives the refusal 0.4 and every answer less refuses a question it can answer.
:class:`RefusalGate`, a transformers logits processor, blocks the refusal's first token
on the first new token when its probability is below a threshold; the model then writes
its best answer, which the fallback's grounding guard judges like any other. The local
backend adds it when ``generation.local.refusal_min_probability`` is set
(docs/decisions/refusal-gate.md).
"""

from __future__ import annotations

from typing import Any, Optional

import torch


def first_token(tokenizer: Any, text: str) -> Optional[int]:
    """The id of the first token of ``text`` as the model would write it, or None."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return int(ids[0]) if ids else None


class RefusalGate:
    """A transformers logits processor: on the first new token only, the refusal's
    first token is blocked when its probability is below ``min_probability``.
    """

    def __init__(self, token_id: int, min_probability: float, prompt_length: int) -> None:
        self.token_id = token_id
        self.min_probability = min_probability
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """On the first step only, rule out the refusal token where it is under the threshold."""
        if input_ids.shape[1] != self.prompt_length:
            return scores
        probability = torch.softmax(scores.float(), dim=-1)[:, self.token_id]
        blocked = probability < self.min_probability
        if bool(blocked.any()):
            scores = scores.clone()
            scores[blocked, self.token_id] = float("-inf")
        return scores
