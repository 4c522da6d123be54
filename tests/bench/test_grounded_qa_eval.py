"""bench.grounded_qa_eval scoring: SQuAD's exact match and token F1, containment, refusals."""

from __future__ import annotations

import pytest

from bench.grounded_qa_eval import normalise, score, token_f1


def test_normalisation_and_token_f1_follow_squad() -> None:
    assert normalise("The  Normans, in France!") == "normans in france"
    assert token_f1("in France", "France") == pytest.approx(2 / 3)
    assert token_f1("Paris", "France") == 0.0


def test_score_counts_answers_containment_and_refusals() -> None:
    rows = [
        {
            "answerable": True,
            "answers": ["France", "in France"],
            "reply": "France",
            "refused": False,
        },
        {
            "answerable": True,
            "answers": ["10th century"],
            "reply": "They arrived in the 10th century.",
            "refused": False,
        },
        {"answerable": True, "answers": ["Rollo"], "reply": "Sorry.", "refused": True},
        {"answerable": False, "answers": [], "reply": "Sorry.", "refused": True},
        {"answerable": False, "answers": [], "reply": "In 911.", "refused": False},
    ]
    figures = score(rows)
    assert figures["answerable"] == 3 and figures["unanswerable"] == 2
    assert figures["exact_match"] == pytest.approx(1 / 3, abs=1e-3)
    assert figures["contains_answer"] == pytest.approx(2 / 3, abs=1e-3)
    assert figures["wrongly_refused"] == pytest.approx(1 / 3, abs=1e-3)
    assert figures["refusal_accuracy"] == 0.5
    assert 1 / 3 < figures["token_f1"] < 1
