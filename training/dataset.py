"""Labelled texts from CSV, JSON, JSON Lines or Rasa NLU YAML, checked row by row.

Every problem names the file and, where there is one, the row, and says how to fix
it: a newcomer's first run usually fails on the data, not on the model.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from training.errors import TrainingInputError

# Label columns tried in order when --label-column is not given: the contract's
# `label`, then Banking77's `category`, then names other data sets use.
LABEL_COLUMNS = ("label", "category", "intent", "sentiment")
TEXT_COLUMN = "text"
TABLE_SUFFIXES = (".csv", ".json", ".jsonl")
YAML_SUFFIXES = (".yml", ".yaml")


@dataclass
class LabelledTexts:
    """Texts and their labels, in file order."""

    texts: List[str]
    labels: List[str]
    source: str

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Iterable[int]) -> LabelledTexts:
        """The rows at ``indices``, in that order, from the same source."""
        picked = list(indices)
        return LabelledTexts(
            [self.texts[i] for i in picked], [self.labels[i] for i in picked], self.source
        )


@dataclass(frozen=True)
class PreparedData:
    """TRAIN and TEST split the way a classifier run uses them (``classifier_data.prepare``)."""

    labels: List[str]
    train: LabelledTexts
    validation: LabelledTexts
    validation_oos: List[str]
    train_oos: List[str]  # out-of-scope rows trained on as outliers (--oos-train-fraction)
    test: LabelledTexts  # in-scope and out-of-scope rows; out-of-scope ones carry oos_label
    oos_label: Optional[str]
    held_out_labels: List[str]
    short_labels: List[str]


def load_labelled(
    path: Path,
    task: str,
    *,
    text_column: str = TEXT_COLUMN,
    label_column: Optional[str] = None,
) -> LabelledTexts:
    """Read ``path``; ``task`` is ``intent`` or ``sentiment`` (which label Rasa YAML gives)."""
    if not path.exists():
        raise TrainingInputError(path, "the file does not exist", "check the path")
    if path.is_dir() or path.suffix.lower() in YAML_SUFFIXES:
        return _load_rasa(path, task)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise TrainingInputError(
            path,
            f"'{suffix or 'no suffix'}' is not a format the training tools read",
            "give a .csv, .json, .jsonl, or Rasa NLU .yml file (or a Rasa data directory)",
        )
    try:
        rows = _read_rows(path, suffix)
    except UnicodeDecodeError as e:
        raise TrainingInputError(
            path, f"it is not UTF-8 text ({e.reason})", f"save it as UTF-8 {suffix}"
        ) from e
    return _from_rows(path, rows, text_column, label_column)


def _read_rows(path: Path, suffix: str) -> List[Dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if suffix == ".csv":
        try:
            return list(csv.DictReader(text.splitlines()))
        except csv.Error as e:
            raise TrainingInputError(path, f"it is not valid CSV ({e})", "fix the file") from e
    try:
        if suffix == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            rows = json.loads(text)
    except json.JSONDecodeError as e:
        raise TrainingInputError(
            path, f"it is not valid JSON (line {e.lineno}: {e.msg})", "fix the file"
        ) from e
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise TrainingInputError(
            path,
            "it is not a list of objects",
            'write [{"text": "...", "label": "..."}, ...] (or one such object per line '
            "in a .jsonl file)",
        )
    return rows


def _from_rows(
    path: Path, rows: List[Dict[str, Any]], text_column: str, label_column: Optional[str]
) -> LabelledTexts:
    if not rows:
        raise TrainingInputError(path, "it holds no rows", "give a file with examples")
    columns = list(rows[0].keys())
    if label_column is None:
        label_column = next((c for c in LABEL_COLUMNS if c in columns), None)
    missing = [c for c in (text_column, label_column) if c is None or c not in columns]
    if missing:
        wanted = f"'{text_column}' and one of {', '.join(repr(c) for c in LABEL_COLUMNS)}"
        raise TrainingInputError(
            path,
            f"it has no {' or '.join(repr(c) for c in missing if c) or 'label'} column "
            f"(found: {', '.join(repr(c) for c in columns) or 'none'})",
            f"name the columns {wanted}, or pass --text-column / --label-column",
        )
    assert label_column is not None
    texts, labels = [], []
    for number, row in enumerate(rows, start=2 if path.suffix.lower() == ".csv" else 1):
        text = str(row.get(text_column) or "").strip()
        label = str(row.get(label_column) or "").strip()
        where = f"row {number}" if path.suffix.lower() == ".csv" else f"item {number}"
        if not label:
            raise TrainingInputError(
                path, f"{where} has an empty '{label_column}'", "label it or remove the row"
            )
        if not text:
            raise TrainingInputError(
                path, f"{where} has an empty '{text_column}'", "fill it in or remove the row"
            )
        texts.append(text)
        labels.append(label)
    return LabelledTexts(texts, labels, str(path))


def _load_rasa(path: Path, task: str) -> LabelledTexts:
    """Intent (or sentiment-metadata) examples of a Rasa NLU file or data directory."""
    from rasa.shared.nlu.training_data.loading import load_data
    from rasa.shared.utils.io import read_yaml_file

    files = (
        sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES) if path.is_dir() else [path]
    )
    nlu_files = []
    for file in files:
        try:
            content = read_yaml_file(file)
        except Exception as e:  # Rasa raises its own YamlSyntaxException
            raise TrainingInputError(
                file, f"it is not valid YAML ({type(e).__name__})", "fix the file"
            ) from e
        if isinstance(content, dict) and "nlu" in content:
            _check_blocks(file, content["nlu"])
            nlu_files.append(file)
    if not nlu_files:
        raise TrainingInputError(
            path,
            "it holds no Rasa NLU data (no file with an 'nlu:' section)",
            "point at a bot's data/nlu.yml or data/ directory, or give a CSV with "
            "text and label columns",
        )
    examples = []
    for file in nlu_files:
        examples.extend(load_data(str(file)).intent_examples)
    texts, labels = [], []
    for message in examples:
        label = _rasa_label(message, task)
        if label is not None and message.get("text"):
            texts.append(message.get("text"))
            labels.append(label)
    if not texts:
        what = "sentiment metadata" if task == "sentiment" else "intent examples"
        raise TrainingInputError(
            path,
            f"it holds no examples with {what}",
            "label examples with 'metadata: {sentiment: negative|neutral|positive}' (see "
            "bot/README.md)"
            if task == "sentiment"
            else "add intents with examples",
        )
    return LabelledTexts(texts, labels, str(path))


def _check_blocks(file: Path, blocks: Any) -> None:
    """An intent block without examples is an empty class: say which one."""
    for block in blocks or []:
        if isinstance(block, dict) and "intent" in block:
            examples = block.get("examples")
            if not examples or not str(examples).strip():
                raise TrainingInputError(
                    file,
                    f"intent '{block['intent']}' has no examples (an empty class)",
                    "add examples under it or delete the block",
                )


def _rasa_label(message: Any, task: str) -> Optional[str]:
    if task == "intent":
        return str(message.get("intent"))
    from rasa_llm.errors import TrainingDataError
    from rasa_llm.nlu.sentiment_data import sentiment_label

    try:
        return sentiment_label(message, "python -m training sentiment")
    except TrainingDataError as e:
        raise TrainingInputError("the Rasa NLU data", str(e), "fix the metadata") from e


def sample_per_class(
    data: LabelledTexts, per_class: int, seed: int, *, keep: Sequence[str] = ()
) -> Tuple[LabelledTexts, List[str]]:
    """``per_class`` examples of every label, drawn with ``seed``; ``keep`` labels stay whole.

    Returns the sample and the labels that had fewer examples than asked (all of
    theirs are kept).
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(data.labels)
    picked: List[int] = []
    short: List[str] = []
    for label in sorted(set(data.labels)):
        members = np.flatnonzero(labels == label)
        if label in keep:
            picked.extend(members.tolist())
            continue
        if len(members) < per_class:
            short.append(label)
        picked.extend(
            rng.choice(members, size=min(per_class, len(members)), replace=False).tolist()
        )
    return data.subset(sorted(picked)), short
