"""Evaluation figures of a trained classifier, on plain arrays.

Accuracy, per-class precision/recall/F1 and macro-F1 from a confusion matrix; the bins of a
reliability diagram; AUROC; and the out-of-scope threshold with the figures it gives. Every
function takes and returns numpy arrays or plain numbers, so the figures can be checked
against hand-computed examples without a model.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence, Union

import numpy as np
from scipy.stats import rankdata

from training.errors import TrainingInputError

# Lists and numpy arrays are both welcome wherever a sequence of numbers is.
Ints = Union[Sequence[int], np.ndarray]
Floats = Union[Sequence[float], np.ndarray]
Bools = Union[Sequence[bool], np.ndarray]

# Added to the largest validation confidence when no confidence lies above the chosen one:
# the threshold must be strictly above it so that it is rejected.
_ABOVE_LAST = 1e-6
# target * n in floating point can land just above a whole number (0.07 * 100 =
# 7.000000000000001); without this slack, ceil would ask for one more rejection.
_CEIL_SLACK = 1e-9


def confusion_matrix(y_true: Ints, y_pred: Ints, n_labels: int) -> np.ndarray:
    """Counts of (true, predicted) label ids: rows are the true label, columns the prediction."""
    true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    pred = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    if len(true) != len(pred):
        raise ValueError(
            f"y_true has {len(true)} labels and y_pred {len(pred)}: pass one prediction per row"
        )
    for name, ids in (("y_true", true), ("y_pred", pred)):
        if len(ids) and (ids.min() < 0 or ids.max() >= n_labels):
            raise ValueError(
                f"{name} holds label ids outside 0..{n_labels - 1}: drop out-of-scope rows "
                "(id -1) before building the confusion matrix, or raise n_labels"
            )
    matrix = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(matrix, (true, pred), 1)
    return matrix


def square_confusion(confusion: np.ndarray, labels: Sequence[str], dtype: Any) -> np.ndarray:
    """``confusion`` as an array of ``dtype``; a ValueError unless it is one row and one
    column per label.
    """
    matrix = np.asarray(confusion, dtype=dtype)
    n = len(labels)
    if matrix.shape != (n, n):
        raise ValueError(
            f"confusion matrix has shape {matrix.shape} but there are {n} labels: "
            "pass the labels in label-id order, one per row"
        )
    return matrix


def classification_figures(confusion: np.ndarray, labels: Sequence[str]) -> Dict[str, Any]:
    """Accuracy, macro-F1 and per-class precision, recall, F1 and support.

    Conventions (those of scikit-learn with ``zero_division=0``):

    - precision of a class that is never predicted is 0; recall of a class that never occurs
      in the true labels is 0; F1 is 0 when precision + recall is 0;
    - macro-F1 is the plain mean of F1 over the labels that occur in the true labels or in
      the predictions (scikit-learn's default label set); a label that occurs in neither is
      listed in ``per_class`` with support 0 but does not count;
    - ``support`` is the number of rows whose true label is the class (an int).
    """
    confusion = square_confusion(confusion, labels, np.int64)
    n = len(labels)
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros(n), where=total > 0)
    counted = (support + predicted) > 0
    rows = int(confusion.sum())
    return {
        "accuracy": float(tp.sum() / rows) if rows else 0.0,
        "macro_f1": float(f1[counted].mean()) if counted.any() else 0.0,
        "per_class": {
            str(label): {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
    }


def reliability_bins(
    probs: np.ndarray, labels: np.ndarray, *, n_bins: int = 10
) -> List[Dict[str, float]]:
    """The bins of a reliability diagram over the top-class confidence.

    Equal-width, right-closed bins ``(lower, upper]`` as in
    ``rasa_llm.models.calibration.expected_calibration_error`` (a confidence of exactly 0 joins the
    first bin). Each bin holds its edges, ``count``, and the mean ``confidence`` and
    ``accuracy`` of its rows (0 when empty). The count-weighted mean of
    ``|confidence - accuracy|`` over the bins is the expected calibration error.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(
            f"probs must be (rows, classes) with one row per label; got shape {probs.shape} "
            f"for {len(labels)} labels"
        )
    confidence = probs.max(axis=1) if len(probs) else np.zeros(0)
    correct = (probs.argmax(axis=1) == labels) if len(probs) else np.zeros(0, dtype=bool)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # The same assignment as expected_calibration_error, so the two always agree.
    bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    result = []
    for b in range(n_bins):
        in_bin = bins == b
        count = int(in_bin.sum())
        result.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "count": count,
                "confidence": float(confidence[in_bin].mean()) if count else 0.0,
                "accuracy": float(correct[in_bin].mean()) if count else 0.0,
            }
        )
    return result


def auroc(scores: Floats, positive: Bools) -> float:
    """Area under the ROC curve: the chance that a positive outscores a negative.

    Computed from ranks (Mann-Whitney U); a tie between a positive and a negative counts
    half. Raises ValueError when all rows are positive or all negative.
    """
    scores_arr = np.asarray(scores, dtype=np.float64).reshape(-1)
    pos = np.asarray(positive, dtype=bool).reshape(-1)
    if len(scores_arr) != len(pos):
        raise ValueError(f"{len(scores_arr)} scores but {len(pos)} positive flags")
    n_pos = int(pos.sum())
    n_neg = len(pos) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"AUROC needs both classes; got {n_pos} positive and {n_neg} negative rows"
        )
    ranks = rankdata(scores_arr)  # ties get their average rank
    u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def choose_threshold(
    in_scope_confidence: Floats,
    oos_confidence: Floats,
    target_oos_recall: float,
) -> float:
    """The out-of-scope threshold for a target out-of-scope recall on validation data.

    A message is out of scope when its top confidence is strictly below the threshold.
    Let n be the number of out-of-scope validation confidences, k = ceil(target * n) (at
    least 1) and c_k the k-th smallest out-of-scope confidence. The threshold is halfway
    between c_k and the smallest validation confidence (in-scope or out-of-scope) strictly
    greater than c_k; if there is none, c_k + 1e-6. So exactly the validation confidences
    <= c_k fall below it: out-of-scope recall on validation is >= target (more when
    out-of-scope confidences tie with c_k), and no threshold that reaches the target rejects
    fewer in-scope messages.

    Raises TrainingInputError when there are no out-of-scope confidences and ValueError
    for a target outside (0, 1].
    """
    if not 0.0 < target_oos_recall <= 1.0:
        raise ValueError(f"target out-of-scope recall must be in (0, 1]; got {target_oos_recall}")
    oos = np.sort(np.asarray(oos_confidence, dtype=np.float64).reshape(-1))
    if len(oos) == 0:
        raise TrainingInputError(
            "validation data",
            "no out-of-scope examples to choose the out-of-scope threshold on",
            "add rows labelled with the out-of-scope label (--oos-label) to the training "
            "data, so that some fall into its validation part",
        )
    in_scope = np.asarray(in_scope_confidence, dtype=np.float64).reshape(-1)
    k = max(1, math.ceil(target_oos_recall * len(oos) - _CEIL_SLACK))
    c_k = float(oos[k - 1])
    everything = np.concatenate([in_scope, oos])
    above = everything[everything > c_k]
    if len(above) == 0:
        return c_k + _ABOVE_LAST
    next_up = float(above.min())
    middle = (c_k + next_up) / 2.0
    # Two neighbouring floats have no float between them; then the upper one still
    # keeps c_k below and next_up not below.
    return middle if middle > c_k else next_up


def out_of_scope_figures(
    confidence: np.ndarray,
    predicted: np.ndarray,
    true: np.ndarray,
    is_oos: np.ndarray,
    threshold: float,
) -> Dict[str, float]:
    """How well a threshold separates in-scope from out-of-scope messages.

    A row is rejected (called out of scope) when its confidence is strictly below the
    threshold. ``predicted``/``true`` are label ids; ``true`` is -1 on out-of-scope rows.

    - ``in_scope_accuracy``: share of in-scope rows not rejected and predicted right (the
      CLINC150 definition, Larson et al. 2019: a rejected in-scope row counts as wrong);
    - ``oos_recall``: share of out-of-scope rows rejected;
    - ``oos_precision``: share of rejected rows that are out of scope (0 if none rejected);
    - ``in_scope_rejected``: share of in-scope rows rejected;
    - ``auroc``: out-of-scope as the positive class, scored by 1 - confidence;
    - ``threshold``: the threshold used.
    """
    conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
    pred = np.asarray(predicted, dtype=np.int64).reshape(-1)
    gold = np.asarray(true, dtype=np.int64).reshape(-1)
    oos = np.asarray(is_oos, dtype=bool).reshape(-1)
    if not len(conf) == len(pred) == len(gold) == len(oos):
        raise ValueError(
            "confidence, predicted, true and is_oos need one entry per row; got lengths "
            f"{len(conf)}, {len(pred)}, {len(gold)}, {len(oos)}"
        )
    n_oos = int(oos.sum())
    n_in = len(oos) - n_oos
    if n_oos == 0 or n_in == 0:
        raise ValueError(
            f"out-of-scope figures need in-scope and out-of-scope rows; got {n_in} in-scope "
            f"and {n_oos} out-of-scope: keep out-of-scope rows in the evaluation data"
        )
    rejected = conf < threshold
    in_scope = ~oos
    n_rejected = int(rejected.sum())
    return {
        "in_scope_accuracy": float(
            np.mean(~rejected[in_scope] & (pred[in_scope] == gold[in_scope]))
        ),
        "oos_recall": float(rejected[oos].mean()),
        "oos_precision": float((rejected & oos).sum() / n_rejected) if n_rejected else 0.0,
        "in_scope_rejected": float(rejected[in_scope].mean()),
        "auroc": auroc(1.0 - conf, oos),
        "threshold": float(threshold),
    }
