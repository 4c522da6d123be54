"""Evaluation figures against hand-computed examples, then against scikit-learn."""

from __future__ import annotations

from fractions import Fraction
from itertools import chain

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from rasa_llm.models.calibration import expected_calibration_error, softmax
from training.errors import TrainingInputError
from training.metrics import (
    auroc,
    choose_threshold,
    classification_figures,
    confusion_matrix,
    out_of_scope_figures,
    reliability_bins,
)

# Three classes, ten rows.
Y_TRUE = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
Y_PRED = [0, 0, 1, 2, 1, 1, 0, 2, 2, 1]
# By hand:
#   confusion  true 0: [2, 1, 1]   true 1: [1, 2, 0]   true 2: [0, 1, 2]
#   accuracy   (2 + 2 + 2) / 10 = 3/5
#   predicted  column sums 3, 4, 3; support row sums 4, 3, 3
#   precision  0: 2/3   1: 2/4 = 1/2   2: 2/3
#   recall     0: 2/4 = 1/2   1: 2/3   2: 2/3
#   F1         0: 2*(2/3)(1/2) / (2/3 + 1/2) = (2/3) / (7/6) = 4/7
#              1: same product and sum = 4/7
#              2: 2/3
#   macro-F1   (4/7 + 4/7 + 2/3) / 3 = (12 + 12 + 14) / 63 = 38/63
HAND = {
    "a": (Fraction(2, 3), Fraction(1, 2), Fraction(4, 7), 4),
    "b": (Fraction(1, 2), Fraction(2, 3), Fraction(4, 7), 3),
    "c": (Fraction(2, 3), Fraction(2, 3), Fraction(2, 3), 3),
}


def test_confusion_matrix_by_hand() -> None:
    matrix = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert matrix.dtype == np.int64
    assert matrix.tolist() == [[2, 1, 1], [1, 2, 0], [0, 1, 2]]


def test_classification_figures_by_hand() -> None:
    figures = classification_figures(confusion_matrix(Y_TRUE, Y_PRED, 3), ["a", "b", "c"])
    assert figures["accuracy"] == pytest.approx(float(Fraction(3, 5)))
    assert figures["macro_f1"] == pytest.approx(float(Fraction(38, 63)))
    for label, (precision, recall, f1, support) in HAND.items():
        got = figures["per_class"][label]
        assert got["precision"] == pytest.approx(float(precision))
        assert got["recall"] == pytest.approx(float(recall))
        assert got["f1"] == pytest.approx(float(f1))
        assert got["support"] == support and type(got["support"]) is int


def test_class_never_predicted_and_class_absent() -> None:
    # Label 1 occurs but is never predicted: precision 0, recall 0, F1 0, counted.
    # Label 2 occurs nowhere: listed with support 0, not counted.
    # F1 of 0: precision 2/3, recall 1 -> 2*(2/3) / (5/3) = 4/5; macro (4/5 + 0) / 2 = 2/5.
    figures = classification_figures(confusion_matrix([0, 0, 1], [0, 0, 0], 3), ["x", "y", "z"])
    assert figures["per_class"]["y"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert figures["per_class"]["z"]["support"] == 0
    assert figures["macro_f1"] == pytest.approx(0.4)


def test_class_predicted_but_never_true_counts_in_macro() -> None:
    # Label 1 is predicted once, never true: precision 0/1, F1 0, counted.
    # F1 of 0: precision 1, recall 1/2 -> 2/3; macro (2/3 + 0) / 2 = 1/3.
    figures = classification_figures(confusion_matrix([0, 0], [0, 1], 2), ["x", "y"])
    assert figures["macro_f1"] == pytest.approx(1 / 3)


def test_macro_f1_matches_sklearn_on_random_data() -> None:
    rng = np.random.default_rng(0)
    for n_labels in (2, 5, 12):
        y_true = rng.integers(0, n_labels, 300)
        # Mostly right, some noise, and one label never predicted.
        y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, n_labels, 300))
        y_pred[y_pred == n_labels - 1] = 0
        figures = classification_figures(
            confusion_matrix(y_true, y_pred, n_labels), [str(i) for i in range(n_labels)]
        )
        assert figures["macro_f1"] == pytest.approx(
            f1_score(y_true, y_pred, average="macro", zero_division=0)
        )
        assert figures["accuracy"] == pytest.approx(np.mean(y_true == y_pred))


def test_confusion_matrix_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="one prediction per row"):
        confusion_matrix([0, 1], [0], 2)
    with pytest.raises(ValueError, match="out-of-scope"):
        confusion_matrix([0, -1], [0, 0], 2)
    with pytest.raises(ValueError, match="3 labels"):
        classification_figures(np.zeros((2, 2)), ["a", "b", "c"])


def test_reliability_bins_weighted_gap_is_the_ece() -> None:
    rng = np.random.default_rng(1)
    probs = softmax(rng.normal(0, 2.5, size=(500, 4)))
    labels = rng.integers(0, 4, 500)
    for n_bins in (5, 10, 15):
        bins = reliability_bins(probs, labels, n_bins=n_bins)
        assert len(bins) == n_bins
        assert sum(b["count"] for b in bins) == 500
        gap = sum(b["count"] * abs(b["confidence"] - b["accuracy"]) for b in bins) / 500
        assert gap == pytest.approx(expected_calibration_error(probs, labels, n_bins=n_bins))


def test_reliability_bins_by_hand() -> None:
    # Confidences 0.6 (right), 0.7 (wrong), 0.95 (right), and 0.5 on the edge between
    # (0.4, 0.5] and (0.5, 0.6]: bins are right-closed, so it joins (0.4, 0.5].
    probs = np.array([[0.6, 0.4], [0.3, 0.7], [0.95, 0.05], [0.5, 0.5]])
    bins = reliability_bins(probs, np.array([0, 0, 0, 0]), n_bins=10)
    assert bins[4]["count"] == 1 and bins[4]["accuracy"] == 1.0  # (0.4, 0.5]
    assert bins[5]["count"] == 1 and bins[5]["confidence"] == pytest.approx(0.6)
    assert bins[6]["count"] == 1 and bins[6]["accuracy"] == 0.0
    assert bins[9]["count"] == 1 and bins[9]["confidence"] == pytest.approx(0.95)
    assert bins[0] == {"lower": 0.0, "upper": 0.1, "count": 0, "confidence": 0.0, "accuracy": 0.0}


def test_auroc_by_hand() -> None:
    assert auroc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0
    assert auroc([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == 0.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    # Pairs (pos, neg): (0.7, 0.7) tie = 1/2, (0.7, 0.2) = 1, (0.3, 0.7) = 0, (0.3, 0.2) = 1.
    assert auroc([0.7, 0.3, 0.7, 0.2], [True, True, False, False]) == pytest.approx(2.5 / 4)


def test_auroc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(2)
    positive = rng.random(400) < 0.3
    scores = np.round(rng.normal(positive.astype(float), 1.0), 1)  # rounding makes ties
    assert auroc(scores, positive) == pytest.approx(roc_auc_score(positive, scores))


def test_auroc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        auroc([0.1, 0.2], [True, True])


def _recall(threshold: float, oos: list) -> float:
    return float(np.mean(np.asarray(oos) < threshold))


def test_threshold_is_the_midpoint_above_the_kth_oos_confidence() -> None:
    oos = [0.40, 0.10, 0.90, 0.30, 0.20]
    in_scope = [0.50, 0.35, 0.95]
    # n = 5, k = ceil(0.6 * 5) = 3, c_k = 0.30; the next confidence is in-scope 0.35.
    threshold = choose_threshold(in_scope, oos, 0.6)
    assert threshold == pytest.approx((0.30 + 0.35) / 2)
    assert _recall(threshold, oos) >= 0.6
    assert not any(c < threshold for c in in_scope)
    # k = ceil(3.5) = 4, c_k = 0.40; the next confidence is 0.50: in-scope 0.35 falls.
    threshold = choose_threshold(in_scope, oos, 0.7)
    assert threshold == pytest.approx(0.45)
    assert _recall(threshold, oos) == pytest.approx(0.8)


def test_target_of_one_rejects_every_oos_confidence() -> None:
    oos = [0.40, 0.10, 0.90, 0.30, 0.20]
    threshold = choose_threshold([0.50, 0.35, 0.95], oos, 1.0)
    assert threshold == pytest.approx((0.90 + 0.95) / 2)
    assert _recall(threshold, oos) == 1.0
    # Nothing above the largest out-of-scope confidence: just above it.
    assert choose_threshold([0.6], [0.5, 0.99], 1.0) == pytest.approx(0.99 + 1e-6)
    assert choose_threshold([], [0.5, 0.99], 1.0) > 0.99


def test_threshold_with_ties() -> None:
    oos = [0.2, 0.3, 0.3, 0.8]
    in_scope = [0.3, 0.9]
    # k = 2, c_k = 0.3; everything <= 0.3 falls below, including the tied in-scope 0.3.
    threshold = choose_threshold(in_scope, oos, 0.5)
    assert threshold == pytest.approx(0.55)
    assert _recall(threshold, oos) == 0.75


def test_threshold_target_times_n_in_floating_point() -> None:
    # 0.07 * 100 = 7.000000000000001 in floating point; k must still be 7, not 8.
    oos = [i / 100 for i in range(100)]
    threshold = choose_threshold([], oos, 0.07)
    assert threshold == pytest.approx(0.065)
    assert _recall(threshold, oos) == pytest.approx(0.07)


def test_threshold_rejects_fewest_in_scope_messages() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        oos = list(np.round(rng.beta(2, 4, 15), 2))
        in_scope = list(np.round(rng.beta(5, 2, 30), 2))
        target = float(rng.uniform(0.05, 1.0))
        threshold = choose_threshold(in_scope, oos, target)
        assert _recall(threshold, oos) >= target
        rejected = sum(c < threshold for c in in_scope)
        # Every threshold that reaches the target rejects at least as many in-scope rows.
        values = sorted(set(chain(oos, in_scope)))
        candidates = values + [v + 1e-6 for v in values]
        best = min(sum(c < t for c in in_scope) for t in candidates if _recall(t, oos) >= target)
        assert rejected == best


def test_threshold_bad_input() -> None:
    with pytest.raises(TrainingInputError, match="validation data"):
        choose_threshold([0.5, 0.6], [], 0.9)
    for target in (0.0, -0.1, 1.01):
        with pytest.raises(ValueError, match=r"\(0, 1\]"):
            choose_threshold([0.5], [0.2], target)


def test_out_of_scope_figures_by_hand() -> None:
    # Rows 0-3 in scope, 4-6 out of scope; threshold 0.5 rejects rows 2, 4 and 5.
    confidence = np.array([0.9, 0.8, 0.4, 0.6, 0.3, 0.45, 0.7])
    predicted = np.array([0, 1, 1, 0, 2, 0, 1])
    true = np.array([0, 1, 1, 1, -1, -1, -1])
    is_oos = true == -1
    figures = out_of_scope_figures(confidence, predicted, true, is_oos, 0.5)
    # In scope: row 0 right, row 1 right, row 2 right but rejected, row 3 wrong -> 2/4.
    assert figures["in_scope_accuracy"] == pytest.approx(0.5)
    assert figures["oos_recall"] == pytest.approx(2 / 3)
    assert figures["oos_precision"] == pytest.approx(2 / 3)
    assert figures["in_scope_rejected"] == pytest.approx(1 / 4)
    # Scores 1 - confidence; pairs (oos, in): oos 0.7 beats all 4, 0.55 beats 3 (not 0.6),
    # 0.3 beats 0.1, 0.2 only -> (4 + 3 + 2) / 12.
    assert figures["auroc"] == pytest.approx(9 / 12)
    assert figures["threshold"] == 0.5
    # Strictly below: at a threshold of 0.45 the row with confidence 0.45 stays in scope.
    at_edge = out_of_scope_figures(confidence, predicted, true, is_oos, 0.45)
    assert at_edge["oos_recall"] == pytest.approx(1 / 3)
    # Nothing rejected: precision 0 by convention.
    assert out_of_scope_figures(confidence, predicted, true, is_oos, 0.0)["oos_precision"] == 0.0


def test_out_of_scope_figures_need_both_kinds_of_rows() -> None:
    with pytest.raises(ValueError, match="out-of-scope rows"):
        out_of_scope_figures(np.array([0.5]), np.array([0]), np.array([0]), np.array([False]), 0.3)
