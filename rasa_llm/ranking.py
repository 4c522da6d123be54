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
    intent: Dict[str, Any], ranking: List[Dict[str, Any]], threshold: float | None, name: str
) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """``name`` at ``threshold`` confidence when the top intent is below it.

    The shape and the confidence are those of Rasa's ``FallbackClassifier``: the fallback
    intent goes first in the ranking and the other intents stay after it.
    """
    if threshold is None or intent.get("confidence", 0.0) >= threshold:
        return intent, ranking
    fallback = {"name": name, "confidence": float(threshold)}
    return dict(fallback), [dict(fallback), *ranking]
