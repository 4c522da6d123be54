"""Which out-of-scope score separates Banking77's held-out intents best?

    .venv/bin/python -m bench.oos_scores --model /tmp/rasa-llm-training-bench/oos/model

Reads a model written by the ``oos`` step of bench.training_benchmarks (or any model
trained with that step's flags, e.g. ``oos_mpnet``), rebuilds that run's data split
(same flags, same seed), encodes TRAIN, the validation rows and TEST once each, and
compares scores that need no out-of-scope training data: the calibrated softmax
confidence (what the classifier uses), the energy score and the top logit, the
Mahalanobis distance to the nearest intent centre (shared covariance, raw and
L2-normalised vectors), the cosine similarity to the nearest (k = 1) and 10th nearest
training example, the same k = 1 cosine standardised by the predicted intent's own
spread (the mean and standard deviation of its TRAIN examples' nearest other example of
that intent), the k = 1 cosine in the *pretrained* encoder's space (the model's
``base_model``, or ``--base``: vectors fine-tuning has not pulled towards the trained
intents), and sums of the softmax confidence with these, each part standardised on the
in-scope validation rows. For each it prints the AUROC on TEST, TEST's in-scope
accuracy / out-of-scope recall at thresholds chosen on the out-of-scope validation rows
for target recalls 0.5 to 0.9 (the k-th lowest score), and the best recall any
threshold reaches while in-scope accuracy stays at 91.5 or more (read off TEST: an upper
bound, for comparison only).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Callable, Dict, Sequence

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from bench.training_benchmarks import banking77, held_out_intents
from rasa_llm.models.calibration import softmax
from rasa_llm.models.encoder_classifier import mean_pool
from rasa_llm.models.inference import predict
from rasa_llm.models.model_files import load_classifier
from training.classifier_data import prepare
from training.cli import parse_arguments
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


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    parser.add_argument(
        "--base", type=Path, default=None, help="pretrained encoder (default: its base_model)"
    )
    args = parser.parse_args(argv)
    train_csv, test_csv = banking77(args.data)
    flags = ["intent", "--train", str(train_csv), "--test", str(test_csv), "--out", "/tmp/x"]
    flags += ["--seed", "0", "--hold-out-labels", ",".join(held_out_intents(args.data))]
    data = prepare(parse_arguments(flags))
    model, tokenizer, meta = load_classifier(args.model, 0.0)
    temperature = float(meta["temperature"])

    def encode(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return predict(model, tokenizer, list(texts), 64, torch.device("cpu"), batch_size=128)

    base_path = args.base or Path(meta["base_model"])
    base = AutoModel.from_pretrained(base_path).eval()
    base_tokenizer = AutoTokenizer.from_pretrained(base_path)

    @torch.inference_mode()
    def pretrained(texts: Sequence[str]) -> np.ndarray:
        parts = []
        for start in range(0, len(texts), 128):
            batch = base_tokenizer(
                list(texts[start : start + 128]),
                padding=True,
                truncation=True,
                max_length=64,
                return_tensors="pt",
            )
            parts.append(mean_pool(base, batch["input_ids"], batch["attention_mask"]).numpy())
        return _normalise(np.concatenate(parts))

    train_vectors, _ = encode(data.train.texts)
    train_labels = np.asarray([data.labels.index(x) for x in data.train.labels])
    mahalanobis = _mahalanobis(train_vectors, train_labels, len(data.labels))
    mahalanobis_unit = _mahalanobis(_normalise(train_vectors), train_labels, len(data.labels))
    train_unit = _normalise(train_vectors)
    train_pretrained = pretrained(data.train.texts)
    # Each intent's spread: its TRAIN examples' cosine to their nearest other example of
    # the same intent (some intents are worded many ways, some few).
    own = train_unit @ train_unit.T
    np.fill_diagonal(own, -np.inf)
    own[train_labels[:, None] != train_labels[None, :]] = -np.inf
    leave_one_out = own.max(axis=1)
    del own
    members = [leave_one_out[train_labels == c] for c in range(len(data.labels))]
    spread_mean = np.asarray([x.mean() for x in members])
    spread_std = np.asarray([x.std() for x in members])

    def scores(texts: Sequence[str]) -> tuple[Dict[str, np.ndarray], np.ndarray]:
        vectors, logits = encode(texts)
        similarity = np.sort(_normalise(vectors) @ train_unit.T, axis=1)
        intent = logits.argmax(axis=1)
        return {
            "softmax": softmax(logits, temperature=temperature).max(axis=1),
            "energy": temperature * np.log(np.exp(logits / temperature).sum(axis=1)),
            "top logit": logits.max(axis=1),
            "Mahalanobis": mahalanobis(vectors),
            "Mahalanobis (unit)": mahalanobis_unit(_normalise(vectors)),
            "kNN k=1": similarity[:, -1],
            "kNN k=10": similarity[:, -10],
            "kNN k=1 per intent": (similarity[:, -1] - spread_mean[intent])
            / np.maximum(spread_std[intent], 1e-3),
            "pretrained kNN k=1": (pretrained(texts) @ train_pretrained.T).max(axis=1),
        }, logits

    # Each combination standardises its parts on the in-scope validation rows, which
    # training held out; no out-of-scope row sets them.
    validation_in, _ = scores(data.validation.texts)
    combined = {
        "softmax + kNN k=1": {"softmax": 1.0, "kNN k=1": 1.0},
        "softmax + 2 kNN k=1": {"softmax": 1.0, "kNN k=1": 2.0},
        "softmax + kNN per intent": {"softmax": 1.0, "kNN k=1 per intent": 1.0},
        "softmax + pretrained kNN": {"softmax": 1.0, "pretrained kNN k=1": 1.0},
        "softmax + kNN + pretrained kNN": {
            "softmax": 1.0,
            "kNN k=1": 1.0,
            "pretrained kNN k=1": 1.0,
        },
    }

    def with_combined(parts: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        def z(name: str) -> np.ndarray:
            reference = validation_in[name]
            return (parts[name] - reference.mean()) / reference.std()

        for name, weights in combined.items():
            parts[name] = np.sum([w * z(part) for part, w in weights.items()], axis=0)
        return parts

    # The threshold is the k-th lowest out-of-scope validation score (the pipeline's
    # rule puts it halfway to the next score: the same rows fall below it).
    validation_oos = with_combined(scores(data.validation_oos)[0])
    test_parts, test_logits = scores(data.test.texts)
    test = with_combined(test_parts)
    oos = np.asarray([x == data.oos_label for x in data.test.labels])
    truth = np.asarray(
        [data.labels.index(x) if not o else -1 for x, o in zip(data.test.labels, oos, strict=True)]
    )
    right = test_logits.argmax(axis=1) == truth
    print(f"closed-set accuracy on in-scope TEST rows: {right[~oos].mean():.4f}")
    for name, score in test.items():
        row = [f"{name:30s} AUROC {auroc(score, ~oos):.3f}"]  # in scope scores higher
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
    main(sys.argv[1:])
