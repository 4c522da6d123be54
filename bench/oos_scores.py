"""Which out-of-scope score separates Banking77's held-out intents best?

    .venv/bin/python -m bench.oos_scores --model /tmp/rasa-llm-training-bench/oos/model

Reads a model written by the ``oos`` step of bench.training_benchmarks (or any model
trained with that step's flags, e.g. ``oos_mpnet``), rebuilds that run's data split
(same flags, same seed), encodes TRAIN, the validation rows and TEST once each, and
compares scores that need no out-of-scope training data: the calibrated softmax
confidence (what the classifier uses), the energy score and the top logit, the
Mahalanobis distance to the nearest intent centre (shared covariance, raw and
L2-normalised vectors), the cosine similarity to the nearest (k = 1) and 10th nearest
training example, and the sum of the softmax confidence and the k = 1 cosine, each
standardised on the in-scope validation rows (weights 1:1 and 1:2). For each it prints
the AUROC on TEST, TEST's in-scope accuracy / out-of-scope recall at thresholds chosen
on the out-of-scope validation rows for target recalls 0.5 to 0.9 (the k-th lowest
score), and the best recall any threshold reaches while in-scope accuracy stays at 91.5
or more (read off TEST: an upper bound, for comparison only).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Callable, Dict, Sequence

import numpy as np
import torch

from bench.training_benchmarks import banking77, held_out_intents
from rasa_llm.calibration import softmax
from rasa_llm.fine_tuning import predict
from rasa_llm.transformer_intent_classifier import load_classifier
from training.classification import prepare
from training.cli import build_parser
from training.metrics import auroc

TARGETS = (0.5, 0.6, 0.7, 0.8, 0.9)


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _mahalanobis(
    train: np.ndarray, labels: np.ndarray, classes: int
) -> Callable[[np.ndarray], np.ndarray]:
    means = np.stack([train[labels == c].mean(axis=0) for c in range(classes)])
    centred = train - means[labels]
    covariance = centred.T @ centred / len(train)
    ridge = 1e-6 * np.trace(covariance) / train.shape[1]
    precision = np.linalg.pinv(covariance + ridge * np.eye(train.shape[1]))

    def score(x: np.ndarray) -> np.ndarray:  # higher = more in scope
        d = np.stack([np.einsum("ij,jk,ik->i", x - m, precision, x - m) for m in means], 1)
        return -d.min(axis=1)

    return score


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    args = parser.parse_args(argv)
    train_csv, test_csv = banking77(args.data)
    flags = ["intent", "--train", str(train_csv), "--test", str(test_csv), "--out", "/tmp/x"]
    flags += ["--seed", "0", "--hold-out-labels", ",".join(held_out_intents(args.data))]
    data = prepare(build_parser().parse_args(flags), "intent")
    model, tokenizer, meta = load_classifier(args.model, 0.0)
    temperature = float(meta["temperature"])

    def encode(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return predict(model, tokenizer, list(texts), 64, torch.device("cpu"), 128)

    train_vectors, _ = encode(data.train.texts)
    train_labels = np.asarray([data.labels.index(x) for x in data.train.labels])
    mahalanobis = _mahalanobis(train_vectors, train_labels, len(data.labels))
    mahalanobis_unit = _mahalanobis(_normalise(train_vectors), train_labels, len(data.labels))
    train_unit = _normalise(train_vectors)

    def scores(vectors: np.ndarray, logits: np.ndarray) -> Dict[str, np.ndarray]:
        similarity = np.sort(_normalise(vectors) @ train_unit.T, axis=1)
        return {
            "softmax": softmax(logits, temperature).max(axis=1),
            "energy": temperature * np.log(np.exp(logits / temperature).sum(axis=1)),
            "top logit": logits.max(axis=1),
            "Mahalanobis": mahalanobis(vectors),
            "Mahalanobis (unit)": mahalanobis_unit(_normalise(vectors)),
            "kNN k=1": similarity[:, -1],
            "kNN k=10": similarity[:, -10],
        }

    # Each combination standardises its parts on the in-scope validation rows, which
    # training held out; no out-of-scope row sets them.
    validation_in = scores(*encode(data.validation.texts))
    combined = {"softmax + kNN k=1": (1.0, 1.0), "softmax + 2 kNN k=1": (1.0, 2.0)}

    def with_combined(parts: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        def z(name: str) -> np.ndarray:
            reference = validation_in[name]
            return (parts[name] - reference.mean()) / reference.std()

        for name, (a, b) in combined.items():
            parts[name] = a * z("softmax") + b * z("kNN k=1")
        return parts

    # The threshold is the k-th lowest out-of-scope validation score (the pipeline's
    # rule puts it halfway to the next score: the same rows fall below it).
    validation_oos = with_combined(scores(*encode(data.validation_oos)))
    test_vectors, test_logits = encode(data.test.texts)
    test = with_combined(scores(test_vectors, test_logits))
    oos = np.asarray([x == data.oos_label for x in data.test.labels])
    truth = np.asarray(
        [data.labels.index(x) if not o else -1 for x, o in zip(data.test.labels, oos, strict=True)]
    )
    right = test_logits.argmax(axis=1) == truth
    print(f"closed-set accuracy on in-scope TEST rows: {right[~oos].mean():.4f}")
    for name, score in test.items():
        row = [f"{name:18s} AUROC {auroc(score, ~oos):.3f}"]  # in scope scores higher
        ordered = np.sort(validation_oos[name])
        for target in TARGETS:
            threshold = ordered[math.ceil(target * len(ordered)) - 1]
            kept = score > threshold
            row.append(
                f"{target}: {100 * (kept & right)[~oos].mean():.1f}/{100 * (~kept)[oos].mean():.1f}"
            )
        best = 0.0
        for threshold in np.unique(score):
            kept = score > threshold
            if (kept & right)[~oos].mean() >= 0.915:
                best = max(best, float((~kept)[oos].mean()))
        row.append(f"recall at in-scope >= 91.5: {100 * best:.1f}")
        print("  ".join(row))


if __name__ == "__main__":
    main()
