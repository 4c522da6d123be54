"""Tiny data and a tiny local BERT for the training pipeline's tests; nothing downloads."""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import pytest

from tests.rasa_llm.conftest import WORDS, build_tiny_bert

# Words of each class; a text is three to five of its class's words plus fillers, so
# a 2-layer BERT learns the classes in a few epochs.
CLASS_WORDS: Dict[str, Sequence[str]] = {
    "order_status": ("where", "order", "parcel", "package", "delivery", "track", "shipped"),
    "refund": ("refund", "money", "back", "return", "item", "broken", "send"),
    "greet": ("hello", "hi", "hey", "good", "morning", "evening", "friend"),
    "out_of_scope": ("weather", "football", "recipe", "song", "movie", "joke", "planet"),
}
SENTIMENT_WORDS: Dict[str, Sequence[str]] = {
    "negative": ("terrible", "awful", "worst", "hate", "angry", "furious"),
    "neutral": ("where", "order", "parcel", "item", "when", "is"),
    "positive": ("great", "thanks", "love", "lovely", "happy", "good"),
}
FILLERS = ("the", "a", "my", "please", "it", "this", "is")
VOCABULARY = sorted(
    {*WORDS, *FILLERS, *(w for ws in CLASS_WORDS.values() for w in ws)}
    | {w for ws in SENTIMENT_WORDS.values() for w in ws}
)


def make_rows(
    classes: Dict[str, Sequence[str]], per_class: int, seed: int
) -> List[Tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for label, words in classes.items():
        for _ in range(per_class):
            picked = rng.sample(list(words), rng.randint(2, 4)) + rng.sample(FILLERS, 1)
            rng.shuffle(picked)
            rows.append((" ".join(picked), label))
    rng.shuffle(rows)
    return rows


def write_csv(
    path: Path, rows: Sequence[Tuple[str, str]], header: Tuple[str, str] = ("text", "label")
) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-encoder"), VOCABULARY)


@pytest.fixture()
def intent_files(tmp_path: Path) -> Tuple[Path, Path]:
    """TRAIN (20 per intent and 20 out-of-scope) and TEST (8 of each), as CSV."""
    train = write_csv(tmp_path / "train.csv", make_rows(CLASS_WORDS, 20, seed=1))
    test = write_csv(tmp_path / "test.csv", make_rows(CLASS_WORDS, 8, seed=2))
    return train, test


def tiny_args(encoder: Path, out: Path, train: Path, test: Path, *extra: str) -> List[str]:
    """Command-line flags for a fast run on the tiny encoder."""
    return [
        "--train", str(train), "--test", str(test), "--out", str(out),
        "--model", str(encoder), "--device", "cpu", "--epochs", "6", "--batch-size", "8",
        "--lr", "1e-3", "--head-lr", "1e-2", "--patience", "0", "--no-progress",
        "--validation-fraction", "0.2", "--seed", "3", *extra,
    ]  # fmt: skip


def tiny_intent_run(folder: Path, encoder: Path, *extra: str) -> Path:
    """One tiny intent run with out-of-scope rows (target recall 0.75); its OUT folder."""
    from training.cli import main

    train = write_csv(folder / "train.csv", make_rows(CLASS_WORDS, 20, seed=1))
    test = write_csv(folder / "test.csv", make_rows(CLASS_WORDS, 8, seed=2))
    out = folder / "out"
    args = tiny_args(encoder, out, train, test, "--oos-label", "out_of_scope")
    assert main(["intent", *args, "--target-oos-recall", "0.75", *extra]) == 0
    return out
