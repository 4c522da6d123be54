"""The rows a classifier run trains, validates and tests on, as its flags say.

:func:`prepare` reads TRAIN and TEST, sets out-of-scope rows aside (relabelling
``--hold-out-labels``), samples ``--per-class`` examples and holds out the validation
part; :func:`split_record` is how that split is stored with the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from training.arguments import DEFAULT_OOS_SCORE, ClassifierArguments
from training.dataset import LabelledTexts, PreparedData, load_labelled, sample_per_class
from training.errors import TrainingInputError

DEFAULT_OOS_LABEL = "out_of_scope"


def prepare(args: ClassifierArguments) -> PreparedData:
    """Load and check both files, then sample, relabel and split as the flags say."""
    from rasa_llm.constants import SENTIMENT_LABELS
    from rasa_llm.models.splits import stratified_split

    task = args.task

    def load(path: str) -> LabelledTexts:
        return load_labelled(
            Path(path), task, text_column=args.text_column, label_column=args.label_column
        )

    train, test = load(args.train), load(args.test)
    held_out = [x.strip() for x in (args.hold_out_labels or "").split(",") if x.strip()]
    oos_label = args.oos_label or (DEFAULT_OOS_LABEL if held_out else None)
    if held_out:
        unknown = sorted(set(held_out) - set(train.labels))
        if unknown:
            raise TrainingInputError(
                args.train, f"--hold-out-labels names {unknown}, not labels of TRAIN", "fix them"
            )
        train = _relabel(train, held_out, oos_label)
        test = _relabel(test, held_out, oos_label)
    in_scope = [i for i, label in enumerate(train.labels) if label != oos_label]
    oos_rows = [i for i, label in enumerate(train.labels) if label == oos_label]
    if oos_label and not oos_rows:
        raise TrainingInputError(
            args.train,
            f"no row has the out-of-scope label '{oos_label}'",
            "add out-of-scope examples to TRAIN (their share of it chooses the threshold), "
            "or drop --oos-label",
        )
    labels = sorted({train.labels[i] for i in in_scope})
    if len(labels) < 2:
        raise TrainingInputError(
            args.train, f"it has {len(labels)} class(es)", "a classifier needs at least two"
        )
    if task == "sentiment":
        wrong = sorted(set(labels) - set(SENTIMENT_LABELS))
        if wrong:
            raise TrainingInputError(
                args.train,
                f"sentiment labels must be among {list(SENTIMENT_LABELS)}, found {wrong}",
                "map them (e.g. 0/1/2 or 'pos') to negative, neutral and positive",
            )
    unseen = sorted(set(test.labels) - set(labels) - {oos_label})
    if unseen:
        raise TrainingInputError(
            args.test,
            f"labels {unseen[:10]} occur in TEST but never in TRAIN",
            "add training examples for them, drop those rows from TEST, or give them "
            "the --oos-label",
        )
    scoped = train.subset(in_scope)
    short: List[str] = []
    seed = args.data_seed
    if args.per_class:
        scoped, short = sample_per_class(scoped, args.per_class, seed)
    ids = [labels.index(x) for x in scoped.labels]
    train_idx, val_idx = stratified_split(ids, args.validation_fraction, seed)
    oos_texts = [train.texts[i] for i in oos_rows]
    exposed: List[str] = []
    fraction = args.oos_train_fraction
    if fraction and not oos_label:
        raise TrainingInputError(
            "--oos-train-fraction",
            "it needs out-of-scope rows, and no --oos-label (or --hold-out-labels) names them",
            "add --oos-label LABEL, or drop --oos-train-fraction",
        )
    if fraction:
        order = np.random.default_rng(seed).permutation(len(oos_texts))
        cut = int(round(fraction * len(oos_texts)))
        if cut >= len(oos_texts):
            raise TrainingInputError(
                args.train,
                f"--oos-train-fraction {fraction} leaves none of its {len(oos_texts)} "
                "out-of-scope rows to choose the threshold",
                "lower --oos-train-fraction or add out-of-scope rows",
            )
        exposed = [oos_texts[i] for i in sorted(order[:cut])]
        oos_texts = [oos_texts[i] for i in sorted(order[cut:])]
    if args.oos_score != DEFAULT_OOS_SCORE:
        # Checked before training, not after it: the score needs both.
        if not oos_label:
            raise TrainingInputError(
                "--oos-score",
                "it chooses a threshold on out-of-scope rows, and no --oos-label (or "
                "--hold-out-labels) names them",
                "add --oos-label LABEL, or drop --oos-score",
            )
        if len(val_idx) < 2:
            raise TrainingInputError(
                "--oos-score",
                f"{args.oos_score} is standardised on the in-scope validation rows, and "
                f"there are {len(val_idx)}",
                "raise --validation-fraction, or use --oos-score softmax",
            )
    return PreparedData(
        labels=labels,
        train=scoped.subset(train_idx),
        validation=scoped.subset(val_idx),
        validation_oos=oos_texts,
        train_oos=exposed,
        test=test,
        oos_label=oos_label,
        held_out_labels=held_out,
        short_labels=short,
    )


def split_record(args: ClassifierArguments, data: PreparedData) -> Dict[str, Any]:
    """How the run drew its validation rows, stored with the model.

    A soup (``--soup``) compares it with its own split: averaged weights can only be
    chosen on rows that none of the runs trained on.
    """
    import hashlib

    digest = hashlib.sha256()
    for text, label in zip(data.validation.texts, data.validation.labels, strict=True):
        digest.update(f"{label}\t{text}\n".encode())
    for text in data.validation_oos:
        digest.update(f"\t{text}\n".encode())
    return {
        "seed": args.data_seed,
        "validation_fraction": args.validation_fraction,
        "per_class": args.per_class,
        "validation_rows": len(data.validation),
        "validation_sha256": digest.hexdigest(),
    }


def _relabel(data: LabelledTexts, labels: Sequence[str], new: Optional[str]) -> LabelledTexts:
    return LabelledTexts(
        data.texts, [new if x in labels and new else x for x in data.labels], data.source
    )
