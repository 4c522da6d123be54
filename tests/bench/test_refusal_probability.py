"""bench.refusal_probability scoring: shares refused at each threshold, and labels."""

from __future__ import annotations

from bench.refusal_probability import answerable, sweep


def test_sweep_counts_refusals_at_or_above_each_threshold() -> None:
    rows = [
        {"answerable": True, "probability": 0.2},
        {"answerable": True, "probability": 0.6},
        {"answerable": False, "probability": 0.6},
        {"answerable": False, "probability": 0.95},
    ]

    result = sweep(rows, thresholds=(0.5, 0.6, 0.9))

    assert result["counts"] == {"answerable": 2, "unanswerable": 2}
    assert result["refused_at"]["0.5"] == {"answerable": 0.5, "unanswerable": 1.0}
    assert result["refused_at"]["0.6"] == {"answerable": 0.5, "unanswerable": 1.0}
    assert result["refused_at"]["0.9"] == {"answerable": 0.0, "unanswerable": 0.5}


def test_a_set_without_unanswerable_rows_has_no_share() -> None:
    result = sweep([{"answerable": True, "probability": 0.1}], thresholds=(0.5,))
    assert result["refused_at"]["0.5"] == {"answerable": 0.0, "unanswerable": None}


def test_training_rows_are_answerable_unless_their_target_is_the_refusal() -> None:
    assert answerable({"answerable": False, "response": "It costs £5."}) is False
    assert answerable({"response": "It costs £5."}) is True
    assert answerable({"response": "Sorry, I don't have that information."}) is False
