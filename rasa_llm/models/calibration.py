"""Temperature scaling and its measure, on plain arrays.

A fine-tuned network is over-confident: a 0.9 "confidence" is right far less than
90 % of the time, so a ``FallbackClassifier`` threshold would not mean what it says.
Temperature scaling (Guo et al., 2017) divides the logits by one scalar fitted on
held-out examples; it keeps the ranking and fixes the confidences.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

# Bounds for log(T): from T = 0.5 to T = 20. A small held-out set that the model
# gets all right would otherwise drive T towards 0 and every confidence to 1.0.
_LOG_T_BOUNDS = (-0.6931471805599453, 3.0)


def softmax(logits: np.ndarray, *, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature``, numerically stable."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=-1, keepdims=True)


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the true labels at one temperature."""
    probs = softmax(logits, temperature=temperature)
    picked = probs[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, None))))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises held-out NLL; 1.0 when there is nothing to fit."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return 1.0
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits, labels, float(np.exp(log_t))),
        bounds=_LOG_T_BOUNDS,
        method="bounded",
    )
    return float(np.exp(result.x))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, *, n_bins: int = 10) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width bins."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return 0.0
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Right-closed bins; a confidence of exactly 0 joins the first bin.
    bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            gap = abs(confidence[in_bin].mean() - correct[in_bin].mean())
            ece += in_bin.mean() * gap
    return float(ece)
