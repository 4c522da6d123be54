"""Turn class probabilities into Rasa's ``intent`` and ``intent_ranking`` fields."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import numpy as np


def build_ranking(
    probs: np.ndarray, labels: Sequence[str], ranking_length: int
) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """The top label and the ranking, in the exact shape of Rasa's own classifiers.

    ``probs`` is one message's probability vector over ``labels``. The ranking is
    sorted by confidence (ties keep label order) and cut to ``ranking_length``
    entries, where 0 keeps all, as ``ranking_length`` does for DIETClassifier.
    Confidences are plain Python floats so that the parse result serialises to JSON.
    """
    order = np.argsort(-np.asarray(probs), kind="stable")
    ranking = [{"name": labels[i], "confidence": float(probs[i])} for i in order]
    if ranking_length > 0:
        ranking = ranking[:ranking_length]
    return dict(ranking[0]), ranking


def empty_intent() -> Dict[str, Any]:
    """What Rasa's classifiers set for a message without text."""
    return {"name": None, "confidence": 0.0}


def reject_below(
    intent: Dict[str, Any],
    ranking: List[Dict[str, Any]],
    threshold: float | None,
    name: str,
    *,
    score: float | None = None,
) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """``name`` when the top intent's confidence (or ``score``) is below ``threshold``.

    The shape is that of Rasa's ``FallbackClassifier``: the fallback intent goes first in
    the ranking and the other intents stay after it. Its confidence is the threshold, as
    there, when the threshold is on the confidence. A ``score`` (the neighbour score) is
    on another scale, which can be negative; then the fallback carries the top intent's
    confidence, so that it stays a probability and still ranks first.
    """
    value = intent.get("confidence", 0.0) if score is None else score
    if threshold is None or value >= threshold:
        return intent, ranking
    confidence = float(threshold) if score is None else float(intent.get("confidence", 0.0))
    fallback = {"name": name, "confidence": confidence}
    return dict(fallback), [dict(fallback), *ranking]
