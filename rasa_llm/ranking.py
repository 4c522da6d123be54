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
