"""RefusalGate on plain score tensors; through the local backend in
test_local_transformers_backend.py."""

from __future__ import annotations

import torch

from rasa_llm.fallback.refusal_gate import RefusalGate


def test_refusal_gate_leaves_later_tokens_alone() -> None:
    gate = RefusalGate(token_id=1, min_probability=0.9, prompt_length=3)
    scores = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.05, 0.95, 0.0]]))

    first = gate(torch.zeros(2, 3, dtype=torch.long), scores)
    later = gate(torch.zeros(2, 4, dtype=torch.long), scores)

    # Row 0 (0.3 < 0.9) loses the refusal's token; row 1 (0.95) keeps it; the
    # caller's tensor is not changed, and after the first token nothing is.
    assert first[0, 1] == float("-inf") and first[1, 1] == scores[1, 1]
    assert torch.equal(later, scores) and scores[0, 1] != float("-inf")
